/* disk collector: space and inodes of each real mounted file system. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "log.h"

static const char *const disk_fields[DISK_NFIELDS] = {
    "total_bytes",  "used_bytes",  "avail_bytes",     "used_pct",
    "inodes_total", "inodes_used", "inodes_used_pct",
};

/* File systems that store data on a disk or a share. Everything else
 * (proc, sysfs, tmpfs, cgroup, overlay, squashfs snaps, autofs...) is not
 * reported. */
static const char *const disk_types[] = {
    "ext2",    "ext3",   "ext4", "xfs",  "btrfs",    "bcachefs", "vfat",  "msdos",
    "exfat",   "f2fs",   "zfs",  "jfs",  "reiserfs", "ntfs",     "ntfs3", "fuseblk",
    "hfsplus", "nilfs2", "nfs",  "nfs4", "cifs",     "smb3",
};

/* Mount table held between runs so the array is grown once. */
struct disk_state {
	struct disk_mount *mounts;
	size_t cap;
};

/* Non-zero for a type listed in disk_types. */
int disk_type_wanted(const char *type)
{
	for (size_t i = 0; i < sizeof disk_types / sizeof disk_types[0]; i++) {
		if (strcmp(type, disk_types[i]) == 0)
			return 1;
	}
	return 0;
}

/* Value of an octal digit, or -1. */
static int disk_octal(char c)
{
	return c >= '0' && c <= '7' ? c - '0' : -1;
}

/* Decode \ooo escapes (\040 space, \011 tab, \134 backslash) in place. */
static void disk_unescape(char *s)
{
	char *out = s;
	while (*s) {
		if (s[0] == '\\' && disk_octal(s[1]) >= 0 && disk_octal(s[2]) >= 0 &&
		    disk_octal(s[3]) >= 0) {
			int v = disk_octal(s[1]) * 64 + disk_octal(s[2]) * 8 + disk_octal(s[3]);
			if (v > 0 && v < 256) {
				*out++ = (char)v;
				s += 4;
				continue;
			}
		}
		*out++ = *s++;
	}
	*out = '\0';
}

/* Cut the next blank-separated field out of *p in place, or NULL. */
static char *disk_field(char **p)
{
	char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0')
		return NULL;
	char *start = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return start;
}

/* Non-zero if device was already kept among the first n mounts. */
static int disk_seen(const struct disk_mount *m, size_t n, const char *device)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(m[i].device, device) == 0)
			return 1;
	}
	return 0;
}

/* Split one line of the mount table into m; 0, or -1 when it is short. */
static int disk_parse_line(char *line, struct disk_mount *m)
{
	char *p = line;
	char *device = disk_field(&p);
	char *dir = disk_field(&p);
	char *type = disk_field(&p);
	if (!device || !dir || !type)
		return -1;
	disk_unescape(device);
	disk_unescape(dir);
	m->device = device;
	m->dir = dir;
	m->type = type;
	return 0;
}

/* Keep the wanted, first-per-device mounts of a mount table. */
size_t disk_parse_mounts(char *buf, struct disk_mount *out, size_t max)
{
	size_t n = 0;
	char *line = buf;
	while (line && *line && n < max) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		struct disk_mount m;
		if (disk_parse_line(line, &m) == 0 && disk_type_wanted(m.type) &&
		    !disk_seen(out, n, m.device))
			out[n++] = m;
		line = nl ? nl + 1 : NULL;
	}
	return n;
}

/* part as a percentage of whole, 0 when whole is 0. */
static double disk_pct(double part, double whole)
{
	return whole > 0.0 ? 100.0 * part / whole : 0.0;
}

/* statvfs a mount point: sizes as df computes them, and inodes. */
int disk_stat(const char *dir, double out[DISK_NFIELDS])
{
	struct statvfs st;
	if (statvfs(dir, &st) < 0)
		return -1;
	if (st.f_blocks == 0) {
		errno = ENODATA;
		return -1;
	}
	double unit = (double)(st.f_frsize ? st.f_frsize : st.f_bsize);
	double total = (double)st.f_blocks * unit;
	double free_all = (double)st.f_bfree * unit;
	double avail = (double)st.f_bavail * unit;
	double used = total > free_all ? total - free_all : 0.0;
	double inodes = (double)st.f_files;
	double inodes_used = st.f_files > st.f_ffree ? (double)(st.f_files - st.f_ffree) : 0.0;
	out[0] = total;
	out[1] = used;
	out[2] = avail;
	out[3] = disk_pct(used, used + avail);
	out[4] = inodes;
	out[5] = inodes_used;
	out[6] = disk_pct(inodes_used, inodes);
	return 0;
}

/* Lines in buf, an upper bound on its mounts. */
static size_t disk_count_lines(const char *buf)
{
	size_t n = 1;
	for (const char *p = buf; (p = strchr(p, '\n')); p++)
		n++;
	return n;
}

/* Allocate the mount table. */
static int disk_init(struct collector *col)
{
	col->state = calloc(1, sizeof(struct disk_state));
	return col->state ? 0 : -1;
}

/* Free the mount table. */
static void disk_fini(struct collector *col)
{
	struct disk_state *st = col->state;
	if (st)
		free(st->mounts);
	free(st);
	col->state = NULL;
}

/* Read the mount table, preferring <proc>/mounts over <proc>/self/mounts. */
static int disk_read_mounts(struct collector *col, struct collect_ctx *ctx)
{
	if (collect_ctx_read(ctx, ctx->proc, "mounts", COLLECT_WHOLE) >= 0)
		return 0;
	if (collect_ctx_read(ctx, ctx->proc, "self/mounts", COLLECT_WHOLE) >= 0)
		return 0;
	collector_fail(col, "%s: %s", ctx->path, strerror(errno));
	return -1;
}

/* Make room for n mounts. */
static int disk_reserve(struct disk_state *st, size_t n)
{
	if (n <= st->cap)
		return 0;
	struct disk_mount *m = realloc(st->mounts, n * sizeof *m);
	if (!m)
		return -1;
	st->mounts = m;
	st->cap = n;
	return 0;
}

/* Add one mount's row, or skip it with a debug line if it cannot be read. */
static void disk_add(struct collector *col, const struct disk_mount *m, uint64_t now_ms)
{
	double v[DISK_NFIELDS];
	if (strlen(m->dir) > PROTO_INST_MAX) {
		log_debug("collect", "disk: mount point too long, skipped: %.60s...", m->dir);
		return;
	}
	if (disk_stat(m->dir, v) < 0) {
		log_debug("collect", "disk: %s (%s): %s, skipped", m->dir, m->device,
		          strerror(errno));
		return;
	}
	double *row = rowset_add(&col->rows, now_ms, m->dir);
	if (row)
		memcpy(row, v, sizeof v);
}

/* One row per real, readable mounted file system. */
static int disk_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	struct disk_state *st = col->state;
	if (disk_read_mounts(col, ctx) < 0)
		return -1;
	if (disk_reserve(st, disk_count_lines(ctx->buf)) < 0) {
		collector_fail(col, "out of memory for the mount table");
		return -1;
	}
	size_t n = disk_parse_mounts(ctx->buf, st->mounts, st->cap);
	for (size_t i = 0; i < n; i++)
		disk_add(col, &st->mounts[i], now_ms);
	return 0;
}

const struct collector_ops disk_ops = {
    .metric = "disk",
    .inst_key = "mount",
    .fields = disk_fields,
    .nfields = DISK_NFIELDS,
    .init = disk_init,
    .fini = disk_fini,
    .run = disk_run,
};
