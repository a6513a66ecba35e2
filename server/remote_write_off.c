/* The remote_write sender of a build without its libraries (libprotobuf-c,
 * libsnappy, libcurl): no receiver can be configured. */
#include "remote_write.h"

#include "log.h"

const char *const remote_write_counter_names[] = {
#define X(name, help) #name,
    REMOTE_WRITE_COUNTERS(X)
#undef X
};

const char *const remote_write_counter_help[] = {
#define X(name, help) help,
    REMOTE_WRITE_COUNTERS(X)
#undef X
};

/* The sender stands for nothing here: cfg's receivers are refused. */
struct remote_write {
	int unused;
};

/* A sender without receivers; NULL (logged) when some are configured. */
struct remote_write *remote_write_create(const struct pimon_config *cfg, int data_fd, int hosts_fd)
{
	static struct remote_write none;
	if (cfg->server.nremote_write) {
		log_err("remote_write", "this pimon-server was built without remote_write "
		                        "(meson -Dremote_write=enabled needs libprotobuf-c, "
		                        "libsnappy and libcurl)");
		return NULL;
	}
	return &none;
}

/* Nothing to start. */
int remote_write_start(struct remote_write *rw)
{
	return 0;
}

/* Nothing to stop. */
void remote_write_stop(struct remote_write *rw)
{
}

/* Nothing to free. */
void remote_write_destroy(struct remote_write *rw)
{
}

/* No receiver holds a file. */
int remote_write_holds(struct remote_write *rw, const char *host, const char *metric, uint64_t ms)
{
	return 0;
}

/* No receiver wants stale markers. */
void remote_write_host_down(struct remote_write *rw, const char *host, uint64_t t_ms)
{
}

/* No receivers. */
size_t remote_write_count(const struct remote_write *rw)
{
	return 0;
}

/* Never called: there are no receivers. */
const char *remote_write_name(const struct remote_write *rw, size_t i)
{
	return "";
}

/* Never called: there are no receivers. */
uint64_t remote_write_counter(const struct remote_write *rw, size_t i, enum remote_write_counter c)
{
	return 0;
}

/* Never called: there are no receivers. */
double remote_write_lag(const struct remote_write *rw, size_t i)
{
	return 0;
}
