/* Unit tests for the agent's saved server list: the parser on good and bad
 * text, and a save read back, replacing the old file without a leftover. */
#include "peers.h"
#include "check.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Parse text; the status. */
static int parse(const char *text, struct peers *p)
{
	const char *why = NULL;
	int rc = peers_parse(text, strlen(text), p, &why);
	CHECK(rc == 0 || why != NULL);
	return rc;
}

/* Good lists parse whole and in order; anything else is refused. */
static void test_parse(void)
{
	struct peers p;
	CHECK(parse("10.0.0.1:8080\npimon-b.lan:8080\n[::1]:9000\n", &p) == 0);
	CHECK(p.n == 3);
	CHECK_STR(p.addr[0], "10.0.0.1:8080");
	CHECK_STR(p.addr[2], "[::1]:9000");
	static const char *const bad[] = {
	    "",        "\n",     "10.0.0.1:8080", "10.0.0.1:8080\n\n", "a:1\nb\n",
	    "a:1\r\n", "a:01\n", "a b:1\n",       "a:1\n:2\n",         "[::1]:99999\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(parse(bad[i], &p) == -1);
	char many[17 * 8 + 1] = "";
	for (int i = 0; i < 17; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "h%02d:80\n", i);
	CHECK(parse(many, &p) == -1);
	many[16 * 7] = '\0';
	CHECK(parse(many, &p) == 0 && p.n == 16);
	char nul[] = "a:1\nb\0c:2\n";
	const char *why;
	CHECK(peers_parse(nul, sizeof nul - 1, &p, &why) == -1);
}

/* What is saved loads back; a second save replaces it; no .tmp is left. */
static void test_save_load(const char *dir)
{
	struct peers p;
	static const char *const one[] = {"10.0.0.1:8080", "10.0.0.2:8080"};
	static const char *const two[] = {"pimon-c.lan:8080"};
	char tmp[300], path[300];
	snprintf(tmp, sizeof tmp, "%s/servers.tmp", dir);
	snprintf(path, sizeof path, "%s/servers", dir);
	CHECK(peers_load(dir, &p) == 0);
	CHECK(peers_save(dir, one, 2) == 0);
	CHECK(peers_load(dir, &p) == 1 && p.n == 2);
	CHECK_STR(p.addr[1], "10.0.0.2:8080");
	CHECK(peers_save(dir, two, 1) == 0);
	CHECK(peers_load(dir, &p) == 1 && p.n == 1);
	CHECK_STR(p.addr[0], "pimon-c.lan:8080");
	CHECK(access(tmp, F_OK) < 0 && errno == ENOENT);
	FILE *f = fopen(path, "w");
	CHECK(f && fputs("not an address\n", f) >= 0 && fclose(f) == 0);
	CHECK(peers_load(dir, &p) == -1);
	CHECK(unlink(path) == 0);
	char missing[300];
	snprintf(missing, sizeof missing, "%s/none", dir);
	CHECK(peers_save(missing, one, 2) == -1);
}

int main(void)
{
	char dir[] = "/tmp/pimon-peers-XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	log_init("test-peers", LOG_ERR);
	test_parse();
	test_save_load(dir);
	rmdir(dir);
	return check_report("peers");
}
