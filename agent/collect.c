/* Built-in collectors: lifecycle, selection and the run loop, plus the
 * row storage and text helpers the collector files share. */
#include "collect.h"
#include "collect_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const struct collector_ops *const collect_table[] = {
    &cpu_ops,   &mem_ops,   &disk_ops,    &load_ops,   &temp_ops,   &net_ops,
    &users_ops, &procs_ops, &pi_ops,      &diskio_ops, &vmstat_ops, &pressure_ops,
    &clock_ops, &wifi_ops,  &cpufreq_ops, &host_ops,   &cores_ops,
};

#define COLLECT_N (sizeof collect_table / sizeof collect_table[0])

/* The i-th built-in collector, NULL past the last. */
const struct collector_ops *collect_ops_at(size_t i)
{
	return i < COLLECT_N ? collect_table[i] : NULL;
}

struct collect {
	struct collect_ctx ctx;
	struct collector cols[COLLECT_N];
	struct proto_group groups[2 * COLLECT_N]; /* what the last run returned */
	struct sys_facts sys;
};

/* Copy a root path, falling back to a default when none is given. */
static char *collect_dup_root(const char *root, const char *fallback)
{
	return strdup(root && root[0] ? root : fallback);
}

/* Set up one collector's group shape and private state. */
int collector_init(struct collector *col, const struct collector_ops *ops)
{
	col->ops = ops;
	col->enabled = 1;
	col->rows.group.metric = ops->metric;
	col->rows.group.inst_key = ops->inst_key;
	col->rows.group.fields = ops->fields;
	col->rows.group.nfields = ops->nfields;
	col->summary.group.metric = ops->summary_metric;
	col->summary.group.inst_key = "";
	col->summary.group.fields = ops->summary_fields;
	col->summary.group.nfields = ops->summary_nfields;
	return ops->init ? ops->init(col) : 0;
}

/* Create collector state with every built-in collector enabled. */
struct collect *collect_create(const struct collect_roots *roots)
{
	struct collect *c = calloc(1, sizeof *c);
	if (!c)
		goto error;
	c->ctx.proc = collect_dup_root(roots ? roots->proc : NULL, "/proc");
	c->ctx.sys = collect_dup_root(roots ? roots->sys : NULL, "/sys");
	c->ctx.os_release = collect_dup_root(roots ? roots->os_release : NULL, "/etc/os-release");
	c->ctx.utmp = collect_dup_root(roots ? roots->utmp : NULL, "/var/run/utmp");
	c->ctx.dev = "/dev";
	c->ctx.size = COLLECT_BUF_SIZE;
	c->ctx.buf = malloc(c->ctx.size);
	if (!c->ctx.proc || !c->ctx.sys || !c->ctx.os_release || !c->ctx.utmp || !c->ctx.buf)
		goto error;
	for (size_t i = 0; i < COLLECT_N; i++) {
		if (collector_init(&c->cols[i], collect_table[i]) < 0)
			goto error;
	}
	return c;
error:
	log_err("collect", "cannot allocate collector state");
	collect_destroy(c);
	return NULL;
}

/* Free all collector state, row storage and buffers. */
void collect_destroy(struct collect *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < COLLECT_N; i++)
		collector_fini(&c->cols[i]);
	collect_ctx_close_kept(&c->ctx);
	free(c->ctx.proc);
	free(c->ctx.sys);
	free(c->ctx.os_release);
	free(c->ctx.utmp);
	free(c->ctx.buf);
	free(c);
}

/* Free one collector's state and rows; safe on a zeroed collector. */
void collector_fini(struct collector *col)
{
	if (col->ops && col->ops->fini)
		col->ops->fini(col);
	free(col->rows.rows);
	free(col->rows.values);
	free(col->rows.inst);
	free(col->summary.rows);
	free(col->summary.values);
	free(col->summary.inst);
	memset(col, 0, sizeof *col);
}

/* Index of a built-in collector by metric name, or -1. */
static int collect_find(const char *name)
{
	for (size_t i = 0; i < COLLECT_N; i++) {
		if (name && strcmp(collect_table[i]->metric, name) == 0)
			return (int)i;
	}
	return -1;
}

/* Make diskio report partitions too, or not. */
void collect_diskio_partitions(struct collect *c, int on)
{
	c->ctx.diskio_partitions = on != 0;
}

/* Non-zero if name is a built-in collector. */
int collect_known(const char *name)
{
	return collect_find(name) >= 0;
}

/* Enable exactly the named collectors; count and log the unknown ones. */
int collect_select(struct collect *c, const char *const *names, size_t n)
{
	int unknown = 0;
	for (size_t i = 0; i < COLLECT_N; i++)
		c->cols[i].enabled = 0;
	for (size_t i = 0; i < n; i++) {
		int k = collect_find(names[i]);
		if (k < 0) {
			log_warn("collect", "unknown collector \"%s\" skipped",
			         names[i] ? names[i] : "(null)");
			unknown++;
			continue;
		}
		c->cols[k].enabled = 1;
	}
	return unknown;
}

/* Hand out a rowset's group as groups[n] if it has rows; the new count. */
static size_t collect_put(struct collect *c, size_t n, struct rowset *rs)
{
	if (rs->group.nrows == 0)
		return n;
	rowset_finish(rs);
	c->groups[n] = rs->group;
	return n + 1;
}

/* Run the enabled collectors and hand out their non-empty groups. */
size_t collect_run(struct collect *c, uint64_t now_ms, const struct proto_group **groups)
{
	size_t n = 0;
	for (size_t i = 0; i < COLLECT_N; i++) {
		struct collector *col = &c->cols[i];
		if (!col->enabled)
			continue;
		rowset_reset(&col->rows);
		rowset_reset(&col->summary);
		if (col->ops->run(col, &c->ctx, now_ms) < 0)
			continue;
		n = collect_put(c, n, &col->rows);
		n = collect_put(c, n, &col->summary);
	}
	*groups = c->groups;
	return n;
}

/* Fill HELLO's system facts; leaves name, version, caps and auth alone. */
void collect_sysinfo(struct collect *c, struct proto_hello *hello)
{
	sys_read(&c->ctx, &c->sys);
	hello->os = c->sys.os;
	hello->kernel = c->sys.kernel;
	hello->model = c->sys.model;
	hello->boot_id = c->sys.boot_id;
	hello->uptime_s = c->sys.uptime_s;
}

/* Cut a full buffer after its last complete line. */
static ssize_t collect_cut_line(char *buf, size_t len)
{
	char *nl = memrchr(buf, '\n', len);
	size_t keep = nl ? (size_t)(nl - buf) + 1 : 0;
	buf[keep] = '\0';
	return (ssize_t)keep;
}

/* FNV-1a hash of a path, to skip most string compares in the kept list. */
static uint32_t collect_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

/* Read fd from offset 0 into buf (size bytes, one kept for the NUL) with
 * pread. A read shorter than asked is the end: /proc and /sys files
 * (seq_file and sysfs) fill the whole request while they have data, so no
 * read is spent on seeing 0 at the end. A file that cannot seek (a FIFO
 * standing in for one, as tools/cross-test makes) is read with read()
 * until it ends. */
static ssize_t collect_pread_all(int fd, char *buf, size_t size)
{
	size_t off = 0;
	int stream = 0;
	while (off < size - 1) {
		size_t want = size - 1 - off;
		ssize_t n =
		    stream ? read(fd, buf + off, want) : pread(fd, buf + off, want, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ESPIPE && !stream && off == 0) {
			stream = 1;
			continue;
		}
		if (n < 0)
			return -1;
		off += (size_t)n;
		if (n == 0 || (!stream && (size_t)n < want))
			break;
	}
	buf[off] = '\0';
	return (ssize_t)off;
}

/* The kept entry for ctx->path, or NULL. */
static struct collect_kept *collect_kept_find(struct collect_ctx *ctx, uint32_t hash)
{
	for (size_t i = 0; i < ctx->nkept; i++) {
		struct collect_kept *k = &ctx->kept[i];
		if (k->hash == hash && strcmp(k->path, ctx->path) == 0)
			return k;
	}
	return NULL;
}

/* Keep fd open as ctx->path's if there is room and the kernel makes the
 * file anew on each read (procfs, sysfs). A regular file, as in a fixture
 * tree, may be replaced by a rename, which a kept descriptor would never
 * see. 0 if kept, -1 if the caller is to close fd. */
static int collect_kept_add(struct collect_ctx *ctx, uint32_t hash, int fd)
{
	struct statfs fs;
	if (ctx->nkept == COLLECT_KEEP_MAX || fstatfs(fd, &fs) < 0 ||
	    (fs.f_type != PROC_SUPER_MAGIC && fs.f_type != SYSFS_MAGIC))
		return -1;
	char *path = strdup(ctx->path);
	if (!path)
		return -1;
	struct collect_kept *k = &ctx->kept[ctx->nkept++];
	k->path = path;
	k->hash = hash;
	k->fd = fd;
	return 0;
}

/* Close and forget kept entry k (a file gone or failing). */
static void collect_kept_drop(struct collect_ctx *ctx, struct collect_kept *k)
{
	close(k->fd);
	free(k->path);
	*k = ctx->kept[--ctx->nkept];
}

/* Read ctx->path once: through its kept descriptor if it has one (opened
 * again if that read fails: the file went away and came back), else
 * opened, read, and kept or closed. */
static ssize_t collect_ctx_read_once(struct collect_ctx *ctx, int flags)
{
	uint32_t hash = 0;
	if (!(flags & COLLECT_ONCE)) {
		hash = collect_hash(ctx->path);
		struct collect_kept *k = collect_kept_find(ctx, hash);
		if (k) {
			ssize_t n = collect_pread_all(k->fd, ctx->buf, ctx->size);
			if (n >= 0)
				return n;
			collect_kept_drop(ctx, k);
		}
	}
	int fd = open(ctx->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = collect_pread_all(fd, ctx->buf, ctx->size);
	if (n >= 0 && !(flags & COLLECT_ONCE) && collect_kept_add(ctx, hash, fd) == 0)
		return n;
	int saved = errno;
	close(fd);
	errno = saved;
	return n;
}

/* Read ctx->path into the shared buffer, growing it if asked. */
static ssize_t collect_ctx_load(struct collect_ctx *ctx, int flags)
{
	for (;;) {
		ssize_t n = collect_ctx_read_once(ctx, flags);
		if (n < 0 || (size_t)n < ctx->size - 1)
			return n;
		if (!(flags & COLLECT_WHOLE) || ctx->size >= COLLECT_BUF_MAX) {
			log_debug("collect", "%s: longer than %zu bytes, cut", ctx->path,
			          ctx->size);
			return collect_cut_line(ctx->buf, (size_t)n);
		}
		char *bigger = realloc(ctx->buf, ctx->size * 2);
		if (!bigger)
			return collect_cut_line(ctx->buf, (size_t)n);
		ctx->buf = bigger;
		ctx->size *= 2;
	}
}

/* Read a file under a root into the shared buffer. */
ssize_t collect_ctx_read(struct collect_ctx *ctx, const char *root, const char *rel, int flags)
{
	if (util_path_join(ctx->path, sizeof ctx->path, root, rel) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return collect_ctx_load(ctx, flags);
}

/* Read a file named by its whole path into the shared buffer. */
ssize_t collect_ctx_read_file(struct collect_ctx *ctx, const char *path, int flags)
{
	size_t len = strlen(path);
	if (len >= sizeof ctx->path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memmove(ctx->path, path, len + 1);
	return collect_ctx_load(ctx, flags | COLLECT_ONCE);
}

/* Close the files collect_ctx_read kept open. */
void collect_ctx_close_kept(struct collect_ctx *ctx)
{
	while (ctx->nkept > 0)
		collect_kept_drop(ctx, &ctx->kept[ctx->nkept - 1]);
}

/* Log a collector failure: warn once, then debug. */
void collector_fail(struct collector *col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (col->warned) {
		log_debug("collect", "%s: %s", col->ops->metric, msg);
		return;
	}
	col->warned = 1;
	log_warn("collect", "%s: %s (further failures logged at debug)", col->ops->metric, msg);
}

/* Forget the previous run's rows, keeping the storage. */
void rowset_reset(struct rowset *rs)
{
	rs->group.nrows = 0;
	rs->group.rows = NULL;
}

/* Grow a rowset's arrays to hold cap rows. */
static int rowset_grow(struct rowset *rs, uint32_t cap)
{
	size_t nf = rs->group.nfields;
	struct proto_row *rows = realloc(rs->rows, cap * sizeof *rows);
	if (!rows)
		return -1;
	rs->rows = rows;
	double *values = realloc(rs->values, cap * nf * sizeof *values);
	if (!values)
		return -1;
	rs->values = values;
	if (rs->group.inst_key[0]) {
		char *inst = realloc(rs->inst, (size_t)cap * (PROTO_INST_MAX + 1));
		if (!inst)
			return -1;
		rs->inst = inst;
	}
	rs->cap = cap;
	return 0;
}

/* Append a row and return its value slots. */
double *rowset_add(struct rowset *rs, uint64_t time_ms, const char *instance)
{
	uint32_t i = rs->group.nrows;
	if (i >= COLLECT_MAX_ROWS) {
		log_debug("collect", "%s: more than %d rows, dropping \"%s\"", rs->group.metric,
		          COLLECT_MAX_ROWS, instance);
		return NULL;
	}
	if (i == rs->cap && rowset_grow(rs, rs->cap ? rs->cap * 2 : 4) < 0) {
		log_warn("collect", "%s: out of memory for rows", rs->group.metric);
		return NULL;
	}
	rs->rows[i].time_ms = time_ms;
	if (rs->inst)
		text_copy(rs->inst + (size_t)i * (PROTO_INST_MAX + 1), PROTO_INST_MAX + 1,
		          instance);
	rs->group.nrows = i + 1;
	double *v = rs->values + (size_t)i * rs->group.nfields;
	memset(v, 0, rs->group.nfields * sizeof *v);
	return v;
}

/* Instance string of row i ("" for groups without instances). */
const char *rowset_instance(const struct rowset *rs, uint32_t i)
{
	return rs->inst ? rs->inst + (size_t)i * (PROTO_INST_MAX + 1) : "";
}

/* Point each row at its values and instance now that storage is final. */
void rowset_finish(struct rowset *rs)
{
	for (uint32_t i = 0; i < rs->group.nrows; i++) {
		rs->rows[i].values = rs->values + (size_t)i * rs->group.nfields;
		rs->rows[i].instance = rowset_instance(rs, i);
	}
	rs->group.rows = rs->rows;
}

/* Parse an unsigned decimal after blanks, advancing past it. */
int text_next_u64(const char **p, uint64_t *out)
{
	const char *s = *p;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	uint64_t v = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*out = v;
	*p = s;
	return 0;
}

/* Parse digits with an optional fraction; no locale, no exponent. */
int text_next_decimal(const char **p, double *out)
{
	uint64_t whole;
	if (text_next_u64(p, &whole) < 0)
		return -1;
	double v = (double)whole;
	const char *s = *p;
	if (*s == '.') {
		double scale = 0.1;
		for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10.0)
			v += (*s - '0') * scale;
	}
	*out = v;
	*p = s;
	return 0;
}

/* Drop trailing whitespace, newlines included. */
void text_trim_end(char *s)
{
	size_t n = strlen(s);
	while (n > 0 &&
	       (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

/* Bounded copy as protocol text: bytes that are not UTF-8 text become
 * "\xNN", and no character is split (proto_text_clean). */
void text_copy(char *dst, size_t size, const char *src)
{
	if (size == 0)
		return;
	proto_text_clean(dst, size - 1, src, strlen(src));
}

/* Start of the next line, or NULL when p is on the last one. */
const char *text_next_line(const char *p)
{
	const char *nl = strchr(p, '\n');
	return nl && nl[1] ? nl + 1 : NULL;
}

/* Make s safe as an instance: no commas, no control characters. */
void text_sanitise(char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == ',' || ch < 0x20 || ch == 0x7f)
			*s = '_';
	}
}
