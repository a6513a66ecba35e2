/* Unit tests for the agent's checks: the output parser over fixed strings,
 * and real runs on an event base: Debian's Monitoring-Plugins, scripts
 * written to a temp folder, a missing program, a hang killed at its
 * timeout, a flood of output, a reload that removes a running check, and
 * no zombies left behind. */
#include <errno.h>
#include <dirent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "checks.h"
#include "log.h"
#include "proto.h"
#include "util.h"

#define PLUGINS "/usr/lib/nagios/plugins"
/* Deadline for anything the tests wait for: generous, as the machine may be
 * slow and the test may run under valgrind or a sanitizer. */
#define WAIT_S      30.0
#define MAX_RESULTS 256
/* A descriptor left open without FD_CLOEXEC, which no check may see. */
#define LEAKED_FD 42

/* A result as the callback saw it, copied. */
struct got {
	char name[PROTO_KEY_MAX + 1];
	enum check_status status;
	char message[PROTO_TEXT_MAX + 1];
	size_t nfields;
	char fields[PROTO_MAX_FIELDS][PROTO_KEY_MAX + 1];
	double values[PROTO_MAX_FIELDS];
};

static struct got results[MAX_RESULTS];
static size_t nresults;
static char tmp[64];

/* ---- Parser ---- */

/* The value of field name in p, or NAN. */
static double parsed_value(const struct check_parsed *p, const char *name)
{
	for (size_t i = 0; i < p->nperf; i++)
		if (strcmp(p->names[i], name) == 0)
			return p->values[i];
	return NAN;
}

/* Parse a C string. */
static size_t parse_str(const char *s, struct check_parsed *p)
{
	return checks_parse(s, strlen(s), p);
}

/* Non-zero if s is valid UTF-8. */
static int utf8_valid(const char *s)
{
	const unsigned char *u = (const unsigned char *)s;
	while (*u) {
		int n = *u < 0x80             ? 0
		        : (*u & 0xe0) == 0xc0 ? 1
		        : (*u & 0xf0) == 0xe0 ? 2
		        : (*u & 0xf8) == 0xf0 ? 3
		                              : -1;
		if (n < 0)
			return 0;
		u++;
		for (int i = 0; i < n; i++, u++)
			if ((*u & 0xc0) != 0x80)
				return 0;
	}
	return 1;
}

static void test_parse_plain(void)
{
	struct check_parsed p;
	CHECK(parse_str("DISK OK - free space: / 3326 MB (56%);\n", &p) == 0);
	CHECK_STR(p.message, "DISK OK - free space: / 3326 MB (56%);");
	CHECK(p.nperf == 0);
	CHECK(p.nskipped == 0);
	/* Trimmed; control bytes and a NUL become spaces. */
	const char raw[] = "  \tOK\tall\x01good\0x \r\n";
	checks_parse(raw, sizeof raw - 1, &p);
	CHECK_STR(p.message, "OK all good x");
}

static void test_parse_perfdata(void)
{
	struct check_parsed p;
	CHECK(
	    parse_str("LOAD OK - total load average: 0.25, 0.45, 0.46|load1=0.250;5.000;10.000;0; "
	              "load5=0.450;4.000;8.000;0; load15=0.460;3.000;6.000;0; \n",
	              &p) == 3);
	CHECK_STR(p.message, "LOAD OK - total load average: 0.25, 0.45, 0.46");
	CHECK_STR(p.names[0], "load1");
	CHECK_STR(p.names[1], "load5");
	CHECK_STR(p.names[2], "load15");
	CHECK_NEAR(p.values[0], 0.25, 1e-9);
	CHECK_NEAR(p.values[2], 0.46, 1e-9);
	CHECK(p.nskipped == 0);
}

static void test_parse_units(void)
{
	struct check_parsed p;
	parse_str("OK | 'disk usage /'=45%;80;90 time=250ms size=2KB 'in bytes'=10B cnt=7c "
	          "big=1.5TB u=5us t=3s mb=3MB gb=2GB temp=41.5C plain=-2.5e3 kib=1KiB",
	          &p);
	CHECK_STR(p.message, "OK");
	CHECK(p.nperf == 13);
	CHECK(p.nskipped == 0);
	CHECK_NEAR(parsed_value(&p, "disk_usage_pct"), 45.0, 1e-9);
	CHECK_NEAR(parsed_value(&p, "time_s"), 0.25, 1e-12);
	CHECK_NEAR(parsed_value(&p, "size_bytes"), 2048.0, 1e-9);
	CHECK_NEAR(parsed_value(&p, "in_bytes_bytes"), 10.0, 1e-9);
	CHECK_NEAR(parsed_value(&p, "cnt_total"), 7.0, 1e-9);
	CHECK_NEAR(parsed_value(&p, "big_bytes"), 1.5 * 1099511627776.0, 1.0);
	CHECK_NEAR(parsed_value(&p, "u_s"), 5e-6, 1e-15);
	CHECK_NEAR(parsed_value(&p, "t_s"), 3.0, 1e-12);
	CHECK_NEAR(parsed_value(&p, "mb_bytes"), 3.0 * 1048576.0, 1e-6);
	CHECK_NEAR(parsed_value(&p, "gb_bytes"), 2.0 * 1073741824.0, 1e-3);
	CHECK_NEAR(parsed_value(&p, "temp"), 41.5, 1e-9); /* unknown unit: no suffix */
	CHECK_NEAR(parsed_value(&p, "plain"), -2500.0, 1e-9);
	CHECK_NEAR(parsed_value(&p, "kib_bytes"), 1024.0, 1e-9);
	/* A quote inside a quoted label. */
	parse_str("OK | 'it''s here'=1 ''=2", &p);
	CHECK(p.nperf == 2);
	CHECK_STR(p.names[0], "it_s_here");
	CHECK_STR(p.names[1], "value");
}

static void test_parse_long_output(void)
{
	struct check_parsed p;
	/* Nagios 3: after the first line, everything after the first '|'. */
	parse_str("CRITICAL - first | a=1\nline two, no perfdata\nline three | b=2\nc=3 'd e'=4\n"
	          "x | y=5\n",
	          &p);
	CHECK_STR(p.message, "CRITICAL - first");
	CHECK(p.nperf == 5);
	CHECK_NEAR(parsed_value(&p, "a"), 1, 1e-9);
	CHECK_NEAR(parsed_value(&p, "b"), 2, 1e-9);
	CHECK_NEAR(parsed_value(&p, "c"), 3, 1e-9);
	CHECK_NEAR(parsed_value(&p, "d_e"), 4, 1e-9);
	CHECK_NEAR(parsed_value(&p, "y"), 5, 1e-9);
	CHECK(p.nskipped == 2); /* "x" and "|" */
	/* Long text without perfdata on the first line. */
	parse_str("WARNING - no perf here\nmore text\n| z=9\n", &p);
	CHECK_STR(p.message, "WARNING - no perf here");
	CHECK(p.nperf == 1 && strcmp(p.names[0], "z") == 0);
	/* A first line over PROTO_TEXT_MAX is cut, at a UTF-8 boundary. */
	char line[1200];
	memset(line, 'a', 600);
	strcpy(line + 600, "|a=1\n");
	parse_str(line, &p);
	CHECK(strlen(p.message) == PROTO_TEXT_MAX);
	CHECK(p.nperf == 1);
	line[0] = '\0';
	for (int i = 0; i < 300; i++)
		strcat(line, "\xc3\xa9"); /* é, two bytes */
	parse_str(line, &p);
	CHECK(strlen(p.message) == PROTO_TEXT_MAX - 1);
	CHECK(utf8_valid(p.message));
	line[0] = 'x';
	line[1] = '\0';
	for (int i = 0; i < 100; i++)
		strcat(line, "\xe2\x82\xac"); /* €, three bytes */
	parse_str(line, &p);
	CHECK(strlen(p.message) == PROTO_TEXT_MAX - 2);
	CHECK(utf8_valid(p.message));
}

static void test_parse_empty(void)
{
	struct check_parsed p;
	CHECK(checks_parse(NULL, 0, &p) == 0);
	CHECK_STR(p.message, "");
	CHECK(p.nperf == 0);
	parse_str(" \r\n\n", &p);
	CHECK_STR(p.message, "");
	parse_str("|a=1", &p);
	CHECK_STR(p.message, "");
	CHECK(p.nperf == 1);
	/* No newline at the end. */
	parse_str("OK - fine|x=1;2;3", &p);
	CHECK_STR(p.message, "OK - fine");
	CHECK(p.nperf == 1 && p.values[0] == 1.0);
	parse_str("OK - no newline", &p);
	CHECK_STR(p.message, "OK - no newline");
}

static void test_parse_megabytes(void)
{
	size_t len = 3u << 20;
	char *big = malloc(len);
	if (!big) {
		CHECK(0);
		return;
	}
	/* One endless first line. */
	memset(big, 'x', len);
	struct check_parsed p;
	checks_parse(big, len, &p);
	CHECK(strlen(p.message) == PROTO_TEXT_MAX);
	/* Many lines, perfdata at the very end. */
	for (size_t i = 0; i < len; i += 8)
		memcpy(big + i, "1234567\n", 8);
	memcpy(big + len - 12, "| last=77\n", 10);
	big[len - 2] = ' ';
	big[len - 1] = '\n';
	checks_parse(big, len, &p);
	CHECK_STR(p.message, "1234567");
	CHECK(p.nperf == 1);
	CHECK_NEAR(parsed_value(&p, "last"), 77.0, 1e-9);
	free(big);
}

static void test_parse_invalid(void)
{
	struct check_parsed p;
	parse_str("OK | a=U b= =5 c d=1x2 e=abc f=1;2;3 g=-2.5e3 h=0x10 i=inf j=1.2.3 k=5;;;; "
	          "'open=1",
	          &p);
	CHECK_STR(p.message, "OK");
	CHECK(p.nperf == 3);
	CHECK_NEAR(parsed_value(&p, "f"), 1.0, 1e-9);
	CHECK_NEAR(parsed_value(&p, "g"), -2500.0, 1e-9);
	CHECK_NEAR(parsed_value(&p, "k"), 5.0, 1e-9);
	/* a b =5 c d e h i j 'open */
	CHECK(p.nskipped == 10);
	/* Only perfdata is parsed, never the message. */
	parse_str("OK a=1 | ", &p);
	CHECK(p.nperf == 0);
}

static void test_parse_names(void)
{
	struct check_parsed p;
	parse_str("OK | 'Load 1'=1 __X--Y__=2 /=3B status=4 duration=5s a=6 a=7 a=8 a_2=9 "
	          "'!!!'=10 Ünïcode=11",
	          &p);
	CHECK(p.nperf == 11);
	CHECK_STR(p.names[0], "load_1");
	CHECK_STR(p.names[1], "x_y");
	CHECK_STR(p.names[2], "value_bytes");
	CHECK_STR(p.names[3], "status_2");
	CHECK_STR(p.names[4], "duration_s_2");
	CHECK_STR(p.names[5], "a");
	CHECK_STR(p.names[6], "a_2");
	CHECK_STR(p.names[7], "a_3");
	CHECK_STR(p.names[8], "a_2_2");
	CHECK_STR(p.names[9], "value");
	CHECK_STR(p.names[10], "n_code");
	CHECK_NEAR(p.values[10], 11.0, 1e-9);
	/* Long labels are cut to PROTO_KEY_MAX with the unit suffix kept. */
	parse_str(
	    "OK | abcdefghijklmnopqrstuvwxyz0123456789=1% abcdefghijklmnopqrstuvwxyz0123456789=2%"
	    " abcdefghijklmnopqrstuvwxyz_________9=3",
	    &p);
	CHECK(p.nperf == 3);
	CHECK_STR(p.names[0], "abcdefghijklmnopqrstuvwxyz01_pct");
	CHECK_STR(p.names[1], "abcdefghijklmnopqrstuvwxyz_pct_2");
	CHECK_STR(p.names[2], "abcdefghijklmnopqrstuvwxyz_9");
	for (size_t i = 0; i < p.nperf; i++)
		CHECK(util_valid_key(p.names[i]));
	/* At most CHECK_PERF_MAX fields; the rest are dropped. */
	char buf[4096] = "OK |";
	for (int i = 0; i < 40; i++) {
		char item[32];
		snprintf(item, sizeof item, " m=%d", i);
		strcat(buf, item);
	}
	parse_str(buf, &p);
	CHECK(p.nperf == CHECK_PERF_MAX);
	CHECK(p.nskipped == 40 - CHECK_PERF_MAX);
	CHECK_STR(p.names[0], "m");
	CHECK_STR(p.names[1], "m_2");
	CHECK_STR(p.names[CHECK_PERF_MAX - 1], "m_30");
	for (size_t i = 0; i < p.nperf; i++) {
		CHECK(util_valid_key(p.names[i]));
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(p.names[i], p.names[j]) != 0);
	}
}

/* ---- Runner ---- */

/* The result callback: check what every result must be, and keep a copy. */
static void on_result(void *arg, const struct check_result *r)
{
	const struct proto_group *g = r->group;
	CHECK(r->status <= CHECK_UNKNOWN);
	CHECK(r->message && r->message[0] && strlen(r->message) <= PROTO_TEXT_MAX);
	CHECK(g && g->nrows == 1 && g->nfields >= 2 && g->nfields <= PROTO_MAX_FIELDS);
	if (!g || g->nrows != 1 || g->nfields < 2)
		return;
	char metric[64];
	snprintf(metric, sizeof metric, "check_%s", r->name);
	CHECK(strncmp(g->metric, metric, PROTO_KEY_MAX) == 0);
	CHECK_STR(g->inst_key, "");
	CHECK_STR(g->rows[0].instance, "");
	CHECK(g->rows[0].time_ms == r->time_ms);
	CHECK_STR(g->fields[0], "status");
	CHECK_STR(g->fields[1], "duration_s");
	CHECK(g->rows[0].values[0] == (double)r->status);
	CHECK(g->rows[0].values[1] >= 0.0);
	for (size_t i = 0; i < g->nfields; i++) {
		CHECK(util_valid_key(g->fields[i]));
		for (size_t j = 0; j < i; j++)
			CHECK(strcmp(g->fields[i], g->fields[j]) != 0);
	}
	/* It encodes as a METRICS frame. */
	struct proto_msg m = {.type = PROTO_METRICS};
	m.u.metrics.seq = 1;
	m.u.metrics.ngroups = 1;
	m.u.metrics.groups = g;
	struct proto_buf buf = {0};
	const char *err = NULL;
	CHECK(proto_encode(&m, &buf, &err) == 0);
	proto_buf_free(&buf);
	if (nresults == MAX_RESULTS)
		return;
	struct got *got = &results[nresults++];
	snprintf(got->name, sizeof got->name, "%s", r->name);
	got->status = r->status;
	snprintf(got->message, sizeof got->message, "%s", r->message);
	got->nfields = g->nfields;
	for (size_t i = 0; i < g->nfields; i++) {
		snprintf(got->fields[i], sizeof got->fields[i], "%s", g->fields[i]);
		got->values[i] = g->rows[0].values[i];
	}
}

/* The latest result of check name, or NULL. */
static const struct got *result_of(const char *name)
{
	for (size_t i = nresults; i-- > 0;)
		if (strcmp(results[i].name, name) == 0)
			return &results[i];
	return NULL;
}

/* How many results check name gave. */
static size_t results_of(const char *name)
{
	size_t n = 0;
	for (size_t i = 0; i < nresults; i++)
		n += strcmp(results[i].name, name) == 0;
	return n;
}

/* The value of a result's field, or NAN. */
static double got_value(const struct got *g, const char *field)
{
	for (size_t i = 0; g && i < g->nfields; i++)
		if (strcmp(g->fields[i], field) == 0)
			return g->values[i];
	return NAN;
}

/* A direct child of this process, as /proc shows it. */
struct child {
	pid_t pid;
	char state;
	char comm[32];
};

/* The children of this process, at most max. */
static size_t children(struct child *out, size_t max)
{
	size_t n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		char path[300], buf[1024];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		if (util_read_file(path, buf, sizeof buf) < 0)
			continue;
		char *open = strchr(buf, '('), *close = strrchr(buf, ')');
		char state;
		int ppid;
		if (!open || !close || sscanf(close + 1, " %c %d", &state, &ppid) != 2 ||
		    ppid != (int)getpid())
			continue;
		out[n].pid = (pid_t)atoi(buf);
		out[n].state = state;
		size_t len = (size_t)(close - open - 1);
		if (len >= sizeof out[n].comm)
			len = sizeof out[n].comm - 1;
		memcpy(out[n].comm, open + 1, len);
		out[n].comm[len] = '\0';
		n++;
	}
	closedir(d);
	return n;
}

/* The pid of a live child running comm, or 0. */
static pid_t child_named(const char *comm)
{
	struct child ch[64];
	size_t n = children(ch, 64);
	for (size_t i = 0; i < n; i++)
		if (strcmp(ch[i].comm, comm) == 0 && ch[i].state != 'Z')
			return ch[i].pid;
	return 0;
}

/* Children of this process that are zombies. */
static size_t zombies(void)
{
	struct child ch[64];
	size_t n = children(ch, 64), z = 0;
	for (size_t i = 0; i < n; i++)
		z += ch[i].state == 'Z';
	return z;
}

/* Non-zero if no process is left in process group pgid. */
static int group_gone(pid_t pgid)
{
	return kill(-pgid, 0) < 0 && errno == ESRCH;
}

/* Non-zero if process pid has ended: gone, or a zombie. */
static int dead(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (util_read_file(path, buf, sizeof buf) < 0)
		return errno == ENOENT || errno == ESRCH;
	const char *close = strrchr(buf, ')');
	return close && close[1] == ' ' && close[2] == 'Z';
}

/* A condition the runner tests wait for. */
struct until {
	const char *name; /* a check's name */
	size_t count;     /* results of it wanted */
	pid_t pgid;       /* or: a process group that must be gone, its leader reaped */
	pid_t dead;       /* or: a process that must have ended */
	const char *comm; /* or: a child running this */
};

/* Non-zero once u holds. */
static int until_done(const struct until *u)
{
	if (u->name)
		return results_of(u->name) >= u->count;
	if (u->pgid)
		return group_gone(u->pgid) && kill(u->pgid, 0) < 0;
	if (u->dead)
		return dead(u->dead);
	if (u->comm)
		return child_named(u->comm) != 0;
	return 1;
}

/* Run the base until u holds or WAIT_S pass; non-zero if it holds. */
static int run_until(struct event_base *base, struct until u)
{
	uint64_t end = util_mono_ms() + (uint64_t)(WAIT_S * 1000);
	while (!until_done(&u)) {
		if (util_mono_ms() > end) {
			fprintf(stderr, "gave up waiting for %s\n",
			        u.name   ? u.name
			        : u.comm ? u.comm
			                 : "a process group to go");
			return 0;
		}
		struct timeval tv = {0, 20 * 1000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	return 1;
}

/* A check entry; argv is kept by the caller. */
static struct pimon_check entry(const char *name, char **argv, double interval, double timeout)
{
	size_t n = 0;
	while (argv[n])
		n++;
	struct pimon_check e = {(char *)name, argv, n, interval, timeout};
	return e;
}

/* Write an executable #!/bin/sh script tmp/name with body; its path goes
 * to path. */
static void write_script(const char *name, const char *body, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", tmp, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
		exit(1);
	}
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(path, 0755);
}

static void test_run_plugins(struct event_base *base)
{
	if (access(PLUGINS "/check_disk", X_OK) != 0 || access(PLUGINS "/check_load", X_OK) != 0 ||
	    access(PLUGINS "/check_procs", X_OK) != 0) {
		printf("skipping the Monitoring-Plugins runs: no %s/check_disk, check_load and "
		       "check_procs (install monitoring-plugins-basic)\n",
		       PLUGINS);
		return;
	}
	char *disk[] = {PLUGINS "/check_disk", "-w", "0", "-c", "0", "-p", "/", NULL};
	char *load[] = {PLUGINS "/check_load", "-w", "1000,1000,1000", "-c",
	                "2000,2000,2000",      NULL};
	char *procs[] = {PLUGINS "/check_procs", "-w", "1000000", "-c", "2000000", NULL};
	struct pimon_check list[] = {
	    entry("disk", disk, 3600, WAIT_S),
	    entry("load", load, 3600, WAIT_S),
	    entry("procs", procs, 3600, WAIT_S),
	};
	struct checks *c = checks_create(base, on_result, NULL);
	CHECK(c != NULL);
	CHECK(checks_configure(c, list, 3) == 0);
	CHECK(run_until(base, (struct until){.name = "disk", .count = 1}));
	CHECK(run_until(base, (struct until){.name = "load", .count = 1}));
	CHECK(run_until(base, (struct until){.name = "procs", .count = 1}));
	const struct got *g = result_of("disk");
	if (g) {
		CHECK(g->status == CHECK_OK);
		CHECK(strncmp(g->message, "DISK OK", 7) == 0);
		CHECK(got_value(g, "value_bytes") > 0); /* the label "/" */
	}
	g = result_of("load");
	if (g) {
		CHECK(g->status == CHECK_OK);
		CHECK(strncmp(g->message, "LOAD OK", 7) == 0);
		CHECK(got_value(g, "load1") >= 0);
		CHECK(got_value(g, "load5") >= 0);
		CHECK(got_value(g, "load15") >= 0);
	}
	g = result_of("procs");
	if (g) {
		CHECK(g->status == CHECK_OK);
		CHECK(strncmp(g->message, "PROCS OK", 8) == 0);
		CHECK(got_value(g, "procs") >= 1);
	}
	/* A threshold the machine is sure to break. */
	char *crit[] = {PLUGINS "/check_procs", "-w", "0", "-c", "0", NULL};
	struct pimon_check one = entry("procs_crit", crit, 3600, WAIT_S);
	CHECK(checks_configure(c, &one, 1) == 0);
	CHECK(run_until(base, (struct until){.name = "procs_crit", .count = 1}));
	g = result_of("procs_crit");
	CHECK(g && g->status == CHECK_CRITICAL);
	checks_destroy(c);
}

static void test_run_scripts(struct event_base *base)
{
	char ok[256], warn[256], crit[256], unknown[256], seven[256], sig[256], err[256], fds[256];
	write_script("ok.sh", "echo 'OK - all fine | a=1;2;3 b=5ms'\nexit 0", ok, sizeof ok);
	write_script("warn.sh", "echo 'WARNING - meh'\necho 'details|w=2'\nexit 1", warn,
	             sizeof warn);
	write_script("crit.sh", "echo 'CRITICAL - broken|c=3%'\nexit 2", crit, sizeof crit);
	write_script("unknown.sh", "echo 'UNKNOWN - who knows'\nexit 3", unknown, sizeof unknown);
	write_script("seven.sh", "echo 'weird'\nexit 7", seven, sizeof seven);
	write_script("sig.sh", "echo 'about to die'\nkill -TERM $$", sig, sizeof sig);
	write_script("stderr.sh", "read x\necho \"CRITICAL - on stderr [$x]\" >&2\nexit 2", err,
	             sizeof err);
	write_script("fds.sh",
	             "if [ -e /proc/self/fd/$1 ]; then echo \"CRITICAL - fd $1 open\"; exit 2; fi\n"
	             "echo \"OK - fd $1 closed\"",
	             fds, sizeof fds);
	char *a_ok[] = {ok, NULL}, *a_warn[] = {warn, NULL}, *a_crit[] = {crit, NULL};
	char *a_unknown[] = {unknown, NULL}, *a_seven[] = {seven, NULL}, *a_sig[] = {sig, NULL};
	char *a_err[] = {err, NULL};
	char fdarg[16];
	snprintf(fdarg, sizeof fdarg, "%d", LEAKED_FD);
	char *a_fds[] = {fds, fdarg, NULL};
	char *a_missing[] = {"/nonexistent/pimon-no-such-check", "x", NULL};
	char *a_bad[] = {ok, NULL};
	struct pimon_check list[] = {
	    entry("ok", a_ok, 0.2, WAIT_S),
	    entry("warn", a_warn, 3600, WAIT_S),
	    entry("crit", a_crit, 3600, WAIT_S),
	    entry("unknown", a_unknown, 3600, WAIT_S),
	    entry("seven", a_seven, 3600, WAIT_S),
	    entry("sig", a_sig, 3600, WAIT_S),
	    entry("stderr", a_err, 3600, WAIT_S),
	    entry("fds", a_fds, 3600, WAIT_S),
	    entry("missing", a_missing, 3600, WAIT_S),
	    entry("Bad-Name", a_bad, 3600, WAIT_S), /* left out */
	    entry("nointerval", a_bad, 0, WAIT_S),  /* left out */
	};
	size_t n = sizeof list / sizeof list[0];
	/* Open and inheritable here; the checks must not see it. */
	int null = open("/dev/null", O_RDONLY);
	int leaked = dup2(null, LEAKED_FD);
	CHECK(leaked == LEAKED_FD);
	close(null);
	struct checks *c = checks_create(base, on_result, NULL);
	CHECK(c != NULL);
	CHECK(checks_configure(c, list, n) == 0);
	const char *names[] = {"warn", "crit",   "unknown", "seven",
	                       "sig",  "stderr", "fds",     "missing"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		CHECK(run_until(base, (struct until){.name = names[i], .count = 1}));
	/* ok runs every 0.2 s. */
	CHECK(run_until(base, (struct until){.name = "ok", .count = 3}));

	const struct got *g = result_of("ok");
	CHECK(g && g->status == CHECK_OK);
	CHECK(g && strcmp(g->message, "OK - all fine") == 0);
	CHECK(g && g->nfields == 4);
	CHECK_NEAR(got_value(g, "a"), 1.0, 1e-9);
	CHECK_NEAR(got_value(g, "b_s"), 0.005, 1e-12);
	g = result_of("warn");
	CHECK(g && g->status == CHECK_WARNING && strcmp(g->message, "WARNING - meh") == 0);
	CHECK_NEAR(got_value(g, "w"), 2.0, 1e-9);
	g = result_of("crit");
	CHECK(g && g->status == CHECK_CRITICAL && strcmp(g->message, "CRITICAL - broken") == 0);
	CHECK_NEAR(got_value(g, "c_pct"), 3.0, 1e-9);
	g = result_of("unknown");
	CHECK(g && g->status == CHECK_UNKNOWN && strcmp(g->message, "UNKNOWN - who knows") == 0);
	g = result_of("seven");
	CHECK(g && g->status == CHECK_UNKNOWN);
	CHECK(g && strcmp(g->message, "unexpected exit status 7: weird") == 0);
	g = result_of("sig");
	CHECK(g && g->status == CHECK_UNKNOWN);
	CHECK(g && strcmp(g->message, "killed by SIGTERM: about to die") == 0);
	g = result_of("stderr");
	CHECK(g && g->status == CHECK_CRITICAL);
	CHECK(g && strcmp(g->message, "CRITICAL - on stderr []") == 0); /* stdin is empty */
	g = result_of("fds");
	CHECK(g && g->status == CHECK_OK);
	if (g && g->status != CHECK_OK)
		fprintf(stderr, "fds: %s\n", g->message);
	g = result_of("missing");
	CHECK(g && g->status == CHECK_UNKNOWN);
	CHECK(g && strcmp(g->message, "cannot run /nonexistent/pimon-no-such-check: No such file "
	                              "or directory") == 0);
	CHECK(results_of("Bad-Name") == 0);
	CHECK(results_of("nointerval") == 0);
	checks_destroy(c);
	close(leaked);
}

static void test_run_timeout(struct event_base *base)
{
	char *a_sleep[] = {"/bin/sleep", "100", NULL};
	struct pimon_check hang = entry("hang", a_sleep, 3600, 0.5);
	struct checks *c = checks_create(base, on_result, NULL);
	CHECK(c != NULL);
	CHECK(checks_configure(c, &hang, 1) == 0);
	CHECK(run_until(base, (struct until){.comm = "sleep"}));
	pid_t pid = child_named("sleep");
	CHECK(pid > 0);
	CHECK(run_until(base, (struct until){.name = "hang", .count = 1}));
	const struct got *g = result_of("hang");
	CHECK(g && g->status == CHECK_UNKNOWN);
	CHECK(g && strcmp(g->message, "timed out after 0.5 s") == 0);
	CHECK(got_value(g, "duration_s") >= 0.45);
	if (pid > 0) {
		CHECK(group_gone(pid));
		CHECK(kill(pid, 0) < 0 && errno == ESRCH); /* reaped, not a zombie */
	}

	/* The child exits but leaves something holding the pipe: at the
	 * timeout the group is killed and the child's own result reported. */
	char held[256];
	write_script("held.sh", "/bin/sleep 100 &\necho \"OK - pid $$ left $! | x=1\"\nexit 0",
	             held, sizeof held);
	char *a_held[] = {held, NULL};
	struct pimon_check h = entry("held", a_held, 3600, 1.0);
	/* The orphan comes to this process, to be reaped here whatever init
	 * does, so that its group can be seen gone. qemu-user has no
	 * subreapers (EINVAL): there the case is left out. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
		CHECK(errno == EINVAL);
		printf("no child subreaper here (%s): the held-pipe case is skipped\n",
		       strerror(errno));
		checks_destroy(c);
		return;
	}
	uint64_t t0 = util_mono_ms();
	CHECK(checks_configure(c, &h, 1) == 0);
	CHECK(run_until(base, (struct until){.name = "held", .count = 1}));
	g = result_of("held");
	CHECK(g && g->status == CHECK_OK);
	int hp = 0, left = 0;
	CHECK(g && sscanf(g->message, "OK - pid %d left %d", &hp, &left) == 2 && left > 0);
	CHECK_NEAR(got_value(g, "x"), 1.0, 1e-9);
	CHECK(util_mono_ms() - t0 >= 950); /* reported at the timeout, not before */
	if (left > 0) {
		CHECK(run_until(base, (struct until){.dead = (pid_t)left}));
		CHECK(waitpid((pid_t)left, NULL, 0) == (pid_t)left);
		CHECK(group_gone((pid_t)hp));
	}
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	checks_destroy(c);
}

static void test_run_flood(struct event_base *base)
{
	struct rusage before, after;
	getrusage(RUSAGE_SELF, &before);
	char *a_seq[] = {"/usr/bin/seq", "1", "2000000", NULL};
	struct pimon_check flood = entry("flood", a_seq, 3600, WAIT_S);
	struct checks *c = checks_create(base, on_result, NULL);
	CHECK(c != NULL);
	CHECK(checks_configure(c, &flood, 1) == 0);
	CHECK(run_until(base, (struct until){.name = "flood", .count = 1}));
	const struct got *g = result_of("flood");
	CHECK(g && g->status == CHECK_OK);
	CHECK(g && strcmp(g->message, "1") == 0);
	getrusage(RUSAGE_SELF, &after);
	/* seq prints about 15 MB; the runner keeps CHECK_OUTPUT_MAX of it. */
	long grown_kb = after.ru_maxrss - before.ru_maxrss;
	CHECK(grown_kb < 8 * 1024);
	if (grown_kb >= 8 * 1024)
		fprintf(stderr, "flood: the process grew by %ld KiB\n", grown_kb);
	checks_destroy(c);
}

static void test_run_skip(struct event_base *base)
{
	char *a_sleep[] = {"/bin/sleep", "2", NULL};
	struct pimon_check slow = entry("slow", a_sleep, 0.1, WAIT_S);
	struct checks *c = checks_create(base, on_result, NULL);
	CHECK(c != NULL);
	CHECK(checks_configure(c, &slow, 1) == 0);
	CHECK(run_until(base, (struct until){.name = "slow", .count = 1}));
	const struct got *g = result_of("slow");
	CHECK(g && g->status == CHECK_OK && strcmp(g->message, "no output") == 0);
	CHECK(checks_skipped(c) >= 1);
	checks_destroy(c);
}

static void test_run_reconfigure(struct event_base *base)
{
	char stay[256];
	write_script("stay.sh", "/bin/sleep 1\necho 'OK - stayed'", stay, sizeof stay);
	char *a_hold[] = {"/bin/sleep", "100", NULL};
	char *a_stay[] = {stay, NULL};
	struct pimon_check list[] = {
	    entry("hold", a_hold, 3600, WAIT_S),
	    entry("stay", a_stay, 3600, WAIT_S),
	};
	struct checks *c = checks_create(base, on_result, NULL);
	CHECK(c != NULL);
	CHECK(checks_configure(c, list, 2) == 0);
	CHECK(run_until(base, (struct until){.comm = "sleep"}));
	CHECK(run_until(base, (struct until){.comm = "stay.sh"}));
	pid_t hold = child_named("sleep");
	CHECK(hold > 0);
	CHECK(results_of("stay") == 0);
	/* hold goes and is killed; stay keeps its run. */
	CHECK(checks_configure(c, &list[1], 1) == 0);
	if (hold > 0)
		CHECK(run_until(base, (struct until){.pgid = hold}));
	CHECK(run_until(base, (struct until){.name = "stay", .count = 1}));
	const struct got *g = result_of("stay");
	CHECK(g && g->status == CHECK_OK && strcmp(g->message, "OK - stayed") == 0);
	CHECK(results_of("hold") == 0);
	/* A check that stays takes a new interval at once: hourly, then 0.2 s. */
	char fast[256];
	write_script("fast.sh", "echo 'OK - fast'", fast, sizeof fast);
	char *a_fast[] = {fast, NULL};
	struct pimon_check f = entry("fast", a_fast, 3600, WAIT_S);
	CHECK(checks_configure(c, &f, 1) == 0);
	CHECK(run_until(base, (struct until){.name = "fast", .count = 1}));
	f.interval = 0.2;
	CHECK(checks_configure(c, &f, 1) == 0);
	CHECK(run_until(base, (struct until){.name = "fast", .count = 3}));
	/* Nothing configured: every check goes. */
	CHECK(checks_configure(c, NULL, 0) == 0);
	checks_destroy(c);

	/* Destroy kills a run in progress. */
	c = checks_create(base, on_result, NULL);
	CHECK(c != NULL);
	CHECK(checks_configure(c, list, 1) == 0);
	CHECK(run_until(base, (struct until){.comm = "sleep"}));
	hold = child_named("sleep");
	checks_destroy(c);
	if (hold > 0)
		CHECK(group_gone(hold) && kill(hold, 0) < 0);
	CHECK(results_of("hold") == 0);
}

/* Remove one entry of the temp folder. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	log_init("test-checks", LOG_WARN);
	test_parse_plain();
	test_parse_perfdata();
	test_parse_units();
	test_parse_long_output();
	test_parse_empty();
	test_parse_megabytes();
	test_parse_invalid();
	test_parse_names();

	snprintf(tmp, sizeof tmp, "/tmp/pimon-checks-XXXXXX");
	if (!mkdtemp(tmp)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	struct event_base *base = event_base_new();
	if (!base) {
		fprintf(stderr, "cannot create an event base\n");
		return 1;
	}
	test_run_plugins(base);
	test_run_scripts(base);
	test_run_timeout(base);
	test_run_flood(base);
	test_run_skip(base);
	test_run_reconfigure(base);
	CHECK(zombies() == 0);
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
	event_base_free(base);
	nftw(tmp, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	return check_report("test-checks");
}
