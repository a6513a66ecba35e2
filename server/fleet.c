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
#include "safefs.h"
#include "util.h"

/* The marker file forgetting leaves in a host's folder. */
#define FLEET_FORGOTTEN "forgotten"

/* The last event of a host from its events.csv in folder dfd: its time
 * and, when it left the host down, its reason. 0, or -1 when there is none. */
static int fleet_last_event(int dfd, uint64_t *t, char *reason, size_t size)
{
	struct csvread *r = csvread_open(dfd, "events.csv");
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

/* Whether folder dfd holds a forget marker newer than the host's last event. */
static int fleet_is_forgotten(int dfd, uint64_t last_event_ms)
{
	struct stat sb;
	if (fstatat(dfd, FLEET_FORGOTTEN, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
		return 0;
	uint64_t marked =
	    (uint64_t)sb.st_mtim.tv_sec * 1000 + (uint64_t)sb.st_mtim.tv_nsec / 1000000;
	return marked >= last_event_ms;
}

/* One host folder of the data folder listed in the registry: 1 listed, 0
 * left out (forgotten, or not a folder the server may use: logged). */
static int fleet_load_one(struct registry *reg, const char *data_dir, const char *name,
                          int *forgotten)
{
	int dfd = safefs_dir_open(registry_hosts_fd(reg), name, 0);
	if (dfd < 0) {
		char why[64];
		if (errno != ENOENT)
			log_warn("fleet", "%s/hosts/%s %s: not listed", data_dir, name,
			         safefs_why(errno, why, sizeof why));
		return 0;
	}
	struct stat sb;
	uint64_t t = 0;
	char reason[32] = "no events";
	if (fleet_last_event(dfd, &t, reason, sizeof reason) < 0)
		t = fstat(dfd, &sb) == 0 ? (uint64_t)sb.st_mtim.tv_sec * 1000 : 0;
	int listed = 0;
	if (fleet_is_forgotten(dfd, t))
		(*forgotten)++;
	else
		listed = registry_known(reg, name, t, reason) == 0;
	close(dfd);
	return listed;
}

/* List every host folder under <data_dir>/hosts in the registry. */
int fleet_load(struct registry *reg, const char *data_dir)
{
	/* A descriptor of its own to list: reading moves its offset. */
	int lfd = openat(registry_hosts_fd(reg), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd < 0 ? NULL : fdopendir(lfd);
	if (!d) {
		log_err("fleet", "%s/hosts: %s", data_dir, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	int n = 0, forgotten = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (util_valid_name(de->d_name))
			n += fleet_load_one(reg, data_dir, de->d_name, &forgotten);
	closedir(d);
	log_info("fleet", "%d hosts known from %s/hosts (%d forgotten)", n, data_dir, forgotten);
	return n;
}

/* Forget the host now and at later starts; its files stay. */
int fleet_forget(struct registry *reg, const char *data_dir, const char *name)
{
	int rc = registry_forget(reg, name);
	if (rc < 0)
		return rc;
	char why[64];
	int dfd = safefs_dir_open(registry_hosts_fd(reg), name, 0);
	int fd =
	    dfd < 0 ? -1 : safefs_file_open(dfd, FLEET_FORGOTTEN, O_WRONLY | O_CREAT | O_TRUNC);
	if (fd < 0 || futimens(fd, NULL) < 0) {
		log_err("fleet",
		        "host %s: cannot mark %s/hosts/%s: %s; it is listed again at the next "
		        "start",
		        name, data_dir, name, safefs_why(errno, why, sizeof why));
		rc = -3;
	}
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}
