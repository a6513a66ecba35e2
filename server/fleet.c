/* The fleet the data folder knows. At start every host folder becomes a
 * listed host, down since its last event, before any agent connects, so a
 * Pi that died while the server was away still reads down. Forgetting a
 * host leaves a marker in its folder that keeps it out of later starts
 * until it reports again. Runs on the main thread (load) and the HTTP
 * thread (forget). */
#include "fleet.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "csvread.h"
#include "log.h"
#include "util.h"

/* The marker file forgetting leaves in a host's folder. */
#define FLEET_FORGOTTEN "forgotten"

/* The last event of a host from its events.csv: its time and, when it
 * left the host down, its reason. 0, or -1 when there is none. */
static int fleet_last_event(const char *dir, uint64_t *t, char *reason, size_t size)
{
	char path[4400];
	struct csvread *r =
	    util_path_join(path, sizeof path, dir, "events.csv") == 0 ? csvread_open(path) : NULL;
	if (!r)
		return -1;
	const char *line;
	size_t len;
	off_t next;
	int rc = -1;
	char out[4096];
	char *f[8];
	for (off_t off = csvread_tail(r, 1); csvread_line(r, off, &line, &len, &next) > 0;
	     off = next) {
		if (!line || len >= sizeof out || csvread_split(line, len, out, f, 8) < 3 ||
		    csvread_time(f[0], strlen(f[0]), t) < 0)
			continue;
		/* Up when the server stopped without saying so: a crash. */
		snprintf(reason, size, "%s", strcmp(f[1], "down") == 0 ? f[2] : "server restarted");
		rc = 0;
	}
	csvread_close(r);
	return rc;
}

/* Whether the host's folder holds a forget marker newer than its last event. */
static int fleet_is_forgotten(const char *dir, uint64_t last_event_ms)
{
	char path[4400];
	struct stat sb;
	if (util_path_join(path, sizeof path, dir, FLEET_FORGOTTEN) < 0 || lstat(path, &sb) < 0 ||
	    !S_ISREG(sb.st_mode))
		return 0;
	uint64_t marked =
	    (uint64_t)sb.st_mtim.tv_sec * 1000 + (uint64_t)sb.st_mtim.tv_nsec / 1000000;
	return marked >= last_event_ms;
}

/* List every host folder under <data_dir>/hosts in the registry. */
int fleet_load(struct registry *reg, const char *data_dir)
{
	char hosts[4200], dir[4400];
	snprintf(hosts, sizeof hosts, "%s/hosts", data_dir);
	DIR *d = opendir(hosts);
	if (!d) {
		log_err("fleet", "%s: %s", hosts, strerror(errno));
		return -1;
	}
	int n = 0, forgotten = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!util_valid_name(de->d_name))
			continue;
		struct stat sb;
		if (util_path_join(dir, sizeof dir, hosts, de->d_name) < 0 || lstat(dir, &sb) < 0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		uint64_t t = 0;
		char reason[32] = "no events";
		if (fleet_last_event(dir, &t, reason, sizeof reason) < 0)
			t = (uint64_t)sb.st_mtim.tv_sec * 1000;
		if (fleet_is_forgotten(dir, t)) {
			forgotten++;
			continue;
		}
		if (registry_known(reg, de->d_name, t, reason) == 0)
			n++;
	}
	closedir(d);
	log_info("fleet", "%d hosts known from %s (%d forgotten)", n, hosts, forgotten);
	return n;
}

/* Forget the host now and at later starts; its files stay. */
int fleet_forget(struct registry *reg, const char *data_dir, const char *name)
{
	int rc = registry_forget(reg, name);
	if (rc < 0)
		return rc;
	char dir[4400], path[4400];
	int n = snprintf(dir, sizeof dir, "%s/hosts/%s", data_dir, name);
	int fd = n > 0 && (size_t)n < sizeof dir &&
	                 util_path_join(path, sizeof path, dir, FLEET_FORGOTTEN) == 0
	             ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644)
	             : -1;
	if (fd < 0 || futimens(fd, NULL) < 0) {
		log_err("fleet",
		        "host %s: cannot mark its folder %s: %s; it is listed again at the "
		        "next start",
		        name, dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -3;
	}
	close(fd);
	return 0;
}
