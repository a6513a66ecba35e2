/* Built-in collectors: read /proc and /sys under configurable roots and
 * produce metric groups for METRICS frames. Single-threaded: one owner. */
#ifndef PIMON_COLLECT_H
#define PIMON_COLLECT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct collect_roots {
	const char *proc;       /* "/proc" */
	const char *sys;        /* "/sys" */
	const char *os_release; /* "/etc/os-release" */
	const char *utmp;       /* "/var/run/utmp" */
};

struct collect;

/* Create collector state (previous counters for rates); all collectors on. */
struct collect *collect_create(const struct collect_roots *roots);
void collect_destroy(struct collect *c);

/* Whether diskio reports partitions as well as whole devices (0 or 1). */
void collect_diskio_partitions(struct collect *c, int on);

/* Enable exactly the named collectors. Unknown names are logged and
 * skipped; returns how many were unknown. */
int collect_select(struct collect *c, const char *const *names, size_t n);

/* Run the enabled collectors, stamping rows with now_ms. Rate collectors
 * (cpu, net, procs, diskio, vmstat) give rows from their second run on. *groups stays valid until
 * the next collect_run or collect_destroy. Returns the number of groups. */
size_t collect_run(struct collect *c, uint64_t now_ms, const struct proto_group **groups);

/* Fill HELLO's system facts (os, kernel, model, boot_id, uptime_s); the
 * strings are owned by c. */
void collect_sysinfo(struct collect *c, struct proto_hello *hello);

/* Non-zero if name is a built-in collector. */
int collect_known(const char *name);

#endif
