/* The remote_write sender.
 *
 * Each receiver has a thread of its own, a curl easy handle, and per host
 * and metric a cursor (rw_cursor.h) into the host's raw files: the closed
 * files "<metric>.<ms>.csv" oldest first, then the open "<metric>.csv" up
 * to the length its commit record gives, so only committed rows are read.
 * A step reads from the cursors until the request holds
 * max_samples_per_send samples (a row is never split), POSTs it, and on a
 * 2xx (or a 4xx other than 429, counted and skipped) moves the cursors in
 * memory and writes each host's cursor file before the next request: a
 * row is sent again only when the server stops between a 2xx and that
 * write. A 5xx, a 429 or a network error leaves the cursors where they
 * were; the same rows go again after a back-off.
 *
 * The cursors in memory are the threads' own; the housekeeper reads them
 * (remote_write_holds) under the sender's lock, taken by a thread only
 * around the update after a request. */
#include "remote_write.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "csvread.h"
#include "log.h"
#include "pimon_version.h"
#include "promname.h"
#include "rw_cursor.h"
#include "rw_encode.h"
#include "safefs.h"
#include "series.h"
#include "state.h"
#include "util.h"

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

#define RW_DIR         "remote_write"
#define RW_POLL_MS     250     /* between looks for new rows when caught up */
#define RW_BACKOFF_MIN 30      /* ms, first retry */
#define RW_BACKOFF_MAX 5000    /* ms, longest wait between retries */
#define RW_CHUNK       1048576 /* bytes of a file read at once */
#define RW_HEADER_MAX  8192

/* A host as one receiver knows it: its cursors and the series it sent
 * (for stale markers). */
struct rw_host {
	char name[PROTO_NAME_MAX + 1];
	struct rw_cursor cur[RW_CURSOR_MAX];
	size_t ncur;
	char **series; /* "metric\037field\037instance" sent since the start */
	size_t nseries, capseries;
};

/* A cursor change of the request being built: host hi's cursors after it. */
struct rw_pending {
	size_t hi;
	struct rw_cursor cur[RW_CURSOR_MAX];
	size_t ncur;
};

/* A host that went down, its stale markers not yet sent. */
struct rw_down {
	char host[PROTO_NAME_MAX + 1];
	uint64_t t_ms;
};

struct rw_receiver {
	struct remote_write *rw;
	const struct pimon_remote_write *cfg;
	int dirfd; /* <data_dir>/remote_write/<name> */
	CURL *curl;
	struct curl_slist *headers;
	char *bearer;
	char *password;
	struct rw_host *hosts; /* sorted by name */
	size_t nhosts, caphosts;
	struct rw_pending *pend;
	size_t npend, cappend;
	struct rw_batch *batch;
	uint64_t batch_dropped; /* samples of the request past max_age */
	struct state *st;       /* scratch: a host's commit record */
	struct rw_down *down;   /* guarded by the sender's lock */
	size_t ndown, capdown;
	uint64_t backoff_ms;
	int failing;      /* a request failed and is being retried (logged once) */
	long retry_after; /* seconds of the last 429's Retry-After, -1: none */
	char body[256];   /* the start of the last answer, for log lines */
	size_t bodylen;
	_Atomic uint64_t counters[RWC_COUNT];
	_Atomic uint64_t lag_ms;
	pthread_t thread;
	int started;
};

struct remote_write {
	int data_fd, hosts_fd;
	struct rw_receiver *recv;
	size_t nrecv;
	pthread_mutex_t lock; /* the receivers' cursors, for readers, and down */
	pthread_mutex_t sleep_lock;
	pthread_cond_t wake;
	atomic_int stopping;
};

/* Add n to counter c of receiver r. */
static void rw_count(struct rw_receiver *r, enum remote_write_counter c, uint64_t n)
{
	atomic_fetch_add_explicit(&r->counters[c], n, memory_order_relaxed);
}

/* The first line of file path, which must be a regular file (no link):
 * malloc'd, or NULL (logged). */
static char *rw_read_secret(const char *what, const char *path)
{
	int fd = safefs_file_open(AT_FDCWD, path, O_RDONLY);
	char buf[4096];
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		log_err("remote_write", "%s %s: cannot read: %s", what, path, strerror(errno));
		return NULL;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0]) {
		log_err("remote_write", "%s %s is empty", what, path);
		return NULL;
	}
	char *s = strdup(buf);
	if (!s)
		log_err("remote_write", "out of memory");
	return s;
}

/* Sleep ms unless stopping; returns non-zero when stopping. */
static int rw_sleep(struct remote_write *rw, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&rw->sleep_lock);
	while (!atomic_load(&rw->stopping))
		if (pthread_cond_timedwait(&rw->wake, &rw->sleep_lock, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&rw->sleep_lock);
	return atomic_load(&rw->stopping);
}

/* The host entry of name, created (sorted) when create is set and it is
 * new, its cursors read from disk; NULL when absent or out of memory. */
static struct rw_host *rw_host_get(struct rw_receiver *r, const char *name, int create)
{
	size_t lo = 0, hi = r->nhosts;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(r->hosts[mid].name, name);
		if (c == 0)
			return &r->hosts[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!create)
		return NULL;
	struct rw_host one;
	memset(&one, 0, sizeof one);
	snprintf(one.name, sizeof one.name, "%s", name);
	if (rw_cursor_load(r->dirfd, name, one.cur, RW_CURSOR_MAX, &one.ncur) < 0) {
		log_err("remote_write",
		        "receiver %s: host %s: cursor file unreadable (%s): "
		        "sending its raw files from their start",
		        r->cfg->name, name, strerror(errno));
		one.ncur = 0;
	}
	/* The housekeeper reads the hosts under the lock: change them under it. */
	pthread_mutex_lock(&r->rw->lock);
	if (r->nhosts == r->caphosts) {
		size_t cap = r->caphosts ? r->caphosts * 2 : 16;
		struct rw_host *h = realloc(r->hosts, cap * sizeof *h);
		if (!h) {
			pthread_mutex_unlock(&r->rw->lock);
			return NULL;
		}
		r->hosts = h;
		r->caphosts = cap;
	}
	memmove(&r->hosts[lo + 1], &r->hosts[lo], (r->nhosts - lo) * sizeof *r->hosts);
	r->hosts[lo] = one;
	r->nhosts++;
	pthread_mutex_unlock(&r->rw->lock);
	/* pending entries name hosts by index: those from lo on moved up */
	for (size_t i = 0; i < r->npend; i++)
		if (r->pend[i].hi >= lo)
			r->pend[i].hi++;
	return &r->hosts[lo];
}

/* Read the host's cursor files of a receiver at start. */
static void rw_load_all(struct rw_receiver *r)
{
	int fd = openat(r->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	size_t ext = strlen(RW_CURSOR_EXT);
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (n <= ext || n - ext > PROTO_NAME_MAX ||
		    strcmp(de->d_name + n - ext, RW_CURSOR_EXT))
			continue;
		char host[PROTO_NAME_MAX + 1];
		snprintf(host, sizeof host, "%.*s", (int)(n - ext), de->d_name);
		rw_host_get(r, host, 1);
	}
	closedir(d);
}

/* The cursor of metric in a cursor array, NULL when none. */
static struct rw_cursor *rw_cursor_find(struct rw_cursor *c, size_t n, const char *metric)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(c[i].metric, metric) == 0)
			return &c[i];
	return NULL;
}

/* Whether receiver r still needs host's closed file (metric, ms). Caller
 * holds the lock. */
static int rw_receiver_holds(struct rw_receiver *r, const char *host, const char *metric,
                             uint64_t ms)
{
	struct rw_host *h = rw_host_get(r, host, 0);
	struct rw_cursor *c = h ? rw_cursor_find(h->cur, h->ncur, metric) : NULL;
	if (!c)
		return 1;
	return c->closed ? ms >= c->ms : ms > c->ms;
}

/* Whether some receiver needs the file. */
int remote_write_holds(struct remote_write *rw, const char *host, const char *metric, uint64_t ms)
{
	int held = 0;
	pthread_mutex_lock(&rw->lock);
	for (size_t i = 0; i < rw->nrecv && !held; i++)
		held = rw_receiver_holds(&rw->recv[i], host, metric, ms);
	pthread_mutex_unlock(&rw->lock);
	return held;
}

/* Queue stale markers of host for every receiver. */
void remote_write_host_down(struct remote_write *rw, const char *host, uint64_t t_ms)
{
	pthread_mutex_lock(&rw->lock);
	for (size_t i = 0; i < rw->nrecv; i++) {
		struct rw_receiver *r = &rw->recv[i];
		if (r->ndown == r->capdown) {
			size_t cap = r->capdown ? r->capdown * 2 : 8;
			struct rw_down *d = realloc(r->down, cap * sizeof *d);
			if (!d) {
				log_err("remote_write", "out of memory: no stale markers for %s",
				        host);
				continue;
			}
			r->down = d;
			r->capdown = cap;
		}
		snprintf(r->down[r->ndown].host, sizeof r->down[0].host, "%s", host);
		r->down[r->ndown++].t_ms = t_ms;
	}
	pthread_mutex_unlock(&rw->lock);
}

/* The metric files of one host folder: metrics of the commit record and
 * of closed files, each with its closed files' ms in order. */
struct rw_metric {
	char name[PROTO_KEY_MAX + 1];
	uint64_t committed; /* of the open file, by the commit record */
	uint64_t *ms;       /* closed files, ascending */
	size_t nms, capms;
};

struct rw_listing {
	struct rw_metric *m;
	size_t n, cap;
};

/* Free a listing. */
static void rw_listing_free(struct rw_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->m[i].ms);
	free(l->m);
	memset(l, 0, sizeof *l);
}

/* The listing's entry of metric, added when new; NULL out of memory. */
static struct rw_metric *rw_listing_metric(struct rw_listing *l, const char *metric)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->m[i].name, metric) == 0)
			return &l->m[i];
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct rw_metric *m = realloc(l->m, cap * sizeof *m);
		if (!m)
			return NULL;
		l->m = m;
		l->cap = cap;
	}
	struct rw_metric *m = &l->m[l->n++];
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "%s", metric);
	return m;
}

/* Ascending u64. */
static int rw_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* "<metric>.<ms>.csv": 0 with metric and ms, else -1. */
static int rw_closed_name(const char *name, char metric[PROTO_KEY_MAX + 1], uint64_t *ms)
{
	const char *dot = strchr(name, '.');
	if (!dot || dot == name || (size_t)(dot - name) > PROTO_KEY_MAX)
		return -1;
	memcpy(metric, name, (size_t)(dot - name));
	metric[dot - name] = '\0';
	const char *p = dot + 1;
	uint64_t v = 0;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > UINT64_MAX / 10 - 9)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (strcmp(p, ".csv") != 0 || !util_valid_key(metric))
		return -1;
	*ms = v;
	return 0;
}

/* The commit record of host folder hostfd, read twice to the same
 * generation so that a record being written is not half read: 0, 1 when
 * there is none, -1 when it cannot be read now. */
static int rw_read_state(int hostfd, struct state *st)
{
	int fd = safefs_file_open(hostfd, STATE_FILE_NAME, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	int rc = -1;
	for (int tries = 0; tries < 5 && rc < 0; tries++) {
		int a = state_read(fd, st);
		uint64_t gen = st->gen;
		if (a != 0) {
			rc = a;
			break;
		}
		static _Thread_local struct state again;
		if (state_read(fd, &again) == 0 && again.gen == gen)
			rc = 0;
	}
	close(fd);
	return rc;
}

static int rw_list_closed(int hostfd, struct rw_listing *l);

/* List host folder hostfd: the metrics of its commit record and of its
 * closed files. 0 or -1. */
static int rw_list_host(struct rw_receiver *r, int hostfd, struct rw_listing *l)
{
	int rc = rw_read_state(hostfd, r->st);
	if (rc < 0)
		return -1;
	if (rc == 0)
		for (uint32_t i = 0; i < r->st->nfiles; i++) {
			struct rw_metric *m = rw_listing_metric(l, r->st->files[i].metric);
			if (!m)
				return -1;
			m->committed = r->st->files[i].size;
		}
	return rw_list_closed(hostfd, l);
}

/* The closed files of host folder hostfd into l, listed afresh (metrics
 * seen only here added). 0 or -1. */
static int rw_list_closed(int hostfd, struct rw_listing *l)
{
	for (size_t i = 0; i < l->n; i++)
		l->m[i].nms = 0;
	int fd = openat(hostfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char metric[PROTO_KEY_MAX + 1];
		uint64_t ms;
		if (rw_closed_name(de->d_name, metric, &ms) < 0)
			continue;
		struct rw_metric *m = rw_listing_metric(l, metric);
		if (m && m->nms == m->capms) {
			size_t cap = m->capms ? m->capms * 2 : 4;
			uint64_t *v = realloc(m->ms, cap * sizeof *v);
			if (!v)
				m = NULL;
			else {
				m->ms = v;
				m->capms = cap;
			}
		}
		if (!m) {
			closedir(d);
			return -1;
		}
		m->ms[m->nms++] = ms;
	}
	closedir(d);
	for (size_t i = 0; i < l->n; i++)
		if (l->m[i].nms)
			qsort(l->m[i].ms, l->m[i].nms, sizeof(uint64_t), rw_u64_cmp);
	return 0;
}

/* Note a series of host sent, for its stale markers. */
static void rw_note_series(struct rw_host *h, const char *metric, const char *field,
                           const char *inst)
{
	char key[PROTO_KEY_MAX * 2 + PROTO_INST_MAX + 4];
	snprintf(key, sizeof key, "%s\037%s\037%s", metric, field, inst ? inst : "");
	for (size_t i = 0; i < h->nseries; i++)
		if (strcmp(h->series[i], key) == 0)
			return;
	if (h->nseries == h->capseries) {
		size_t cap = h->capseries ? h->capseries * 2 : 16;
		char **s = realloc(h->series, cap * sizeof *s);
		if (!s)
			return;
		h->series = s;
		h->capseries = cap;
	}
	char *copy = strdup(key);
	if (copy)
		h->series[h->nseries++] = copy;
}

/* The labels of (host, metric's field, instance) into l; the count, or 0
 * when the field is not exported. */
static size_t rw_labels(const struct rw_receiver *r, const char *host, const char *metric,
                        const char *field, const char *inst, struct prom_name *pn,
                        struct rw_label *l)
{
	if (promname_series(metric, field, pn) < 0)
		return 0;
	size_t n = 0;
	l[n++] = (struct rw_label){"__name__", pn->family};
	l[n++] = (struct rw_label){"job", r->cfg->job};
	l[n++] = (struct rw_label){"host", host};
	if (inst && pn->inst_label)
		l[n++] = (struct rw_label){pn->inst_label, inst};
	if (pn->extra_name && pn->extra_value)
		l[n++] = (struct rw_label){pn->extra_name, pn->extra_value};
	return n;
}

/* A parsed header's fields, named once per file. */
struct rw_file {
	int fd;
	uint64_t limit; /* read up to here */
	uint64_t data;  /* where the first row starts */
	struct series_columns cols;
};

/* Read the header of f->fd: its columns and where rows start. 0 or -1
 * (no complete header yet: nothing to read). */
static int rw_file_header(struct rw_file *f)
{
	char buf[RW_HEADER_MAX];
	ssize_t n = pread(f->fd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return -1;
	char *nl = memchr(buf, '\n', (size_t)n);
	if (!nl)
		return -1;
	*nl = '\0';
	if (nl > buf && nl[-1] == '\r')
		nl[-1] = '\0';
	f->data = (uint64_t)(nl - buf) + 1;
	return series_columns_parse(buf, -1, &f->cols);
}

/* Add the samples of one row to the request; the samples it adds (kept
 * or dropped), and rows past max_age counted in r->batch_dropped. -1 when
 * out of memory. */
static long rw_add_row(struct rw_receiver *r, struct rw_host *h, const char *metric,
                       const struct rw_file *f, const char *line, size_t len, uint64_t now)
{
	char *out = malloc(len + 1);
	char *fields[PROTO_MAX_FIELDS + 2];
	if (!out)
		return -1;
	int n = csvread_split(line, len, out, fields, PROTO_MAX_FIELDS + 2);
	long added = 0;
	uint64_t t;
	if (n < 1 || csvread_time(fields[0], strlen(fields[0]), &t) < 0) {
		free(out);
		return 0;
	}
	int inst = f->cols.inst_key[0] != '\0';
	const char *instance = inst && n > 1 ? fields[1] : NULL;
	int first = inst ? 2 : 1;
	int old = r->cfg->max_age > 0 && (double)t < (double)now - r->cfg->max_age * 1000.0;
	for (int i = first; i < n && i - first < f->cols.nfields; i++) {
		if (!fields[i][0])
			continue;
		char *end;
		double v = strtod(fields[i], &end);
		if (*end)
			continue;
		struct prom_name pn;
		struct rw_label l[8];
		size_t nl =
		    rw_labels(r, h->name, metric, f->cols.fields[i - first], instance, &pn, l);
		if (!nl)
			continue;
		added++;
		if (old) {
			r->batch_dropped++;
			continue;
		}
		if (rw_batch_add(r->batch, l, nl, (int64_t)t, v * pn.scale) < 0) {
			free(out);
			return -1;
		}
		rw_note_series(h, metric, f->cols.fields[i - first], instance);
	}
	free(out);
	return added;
}

/* Read rows of f from *off into the request while it has room; *off moves
 * past every row taken. Returns 1 when the request is full, 0 when the
 * file's readable part is all taken, -1 on an error. */
static int rw_read_file(struct rw_receiver *r, struct rw_host *h, const char *metric,
                        struct rw_file *f, uint64_t *off, uint64_t now)
{
	size_t max = (size_t)r->cfg->max_samples_per_send;
	if (*off < f->data)
		*off = f->data;
	static _Thread_local char buf[RW_CHUNK];
	while (*off < f->limit) {
		size_t want = f->limit - *off > RW_CHUNK ? RW_CHUNK : (size_t)(f->limit - *off);
		ssize_t n = pread(f->fd, buf, want, (off_t)*off);
		if (n <= 0)
			return n < 0 ? -1 : 0;
		size_t pos = 0;
		int took = 0;
		for (;;) {
			char *nl = memchr(buf + pos, '\n', (size_t)n - pos);
			if (!nl)
				break;
			size_t len = (size_t)(nl - (buf + pos));
			size_t eol = len;
			if (len && buf[pos + len - 1] == '\r')
				len--;
			size_t cols = (size_t)f->cols.nfields;
			if (rw_batch_samples(r->batch) + r->batch_dropped + cols > max &&
			    rw_batch_samples(r->batch) + r->batch_dropped > 0)
				return 1;
			if (rw_add_row(r, h, metric, f, buf + pos, len, now) < 0)
				return -1;
			pos += eol + 1;
			*off += eol + 1;
			took = 1;
		}
		if (!took)
			return 0; /* a line longer than a chunk, or not yet whole */
	}
	return 0;
}

/* Open the closed file (metric, ms) of hostfd as f: -1 when gone. */
static int rw_open_closed(int hostfd, const char *metric, uint64_t ms, struct rw_file *f)
{
	char name[PROTO_KEY_MAX + 32];
	snprintf(name, sizeof name, "%s.%" PRIu64 ".csv", metric, ms);
	f->fd = safefs_file_open(hostfd, name, O_RDONLY);
	struct stat sb;
	if (f->fd < 0)
		return -1;
	if (fstat(f->fd, &sb) < 0) {
		close(f->fd);
		f->fd = -1;
		return -1;
	}
	f->limit = (uint64_t)sb.st_size;
	return 0;
}

/* The first closed ms of m after ms (all of them when after is 0 and
 * none was seen); 0 when none. */
static uint64_t rw_next_closed(const struct rw_metric *m, uint64_t after, int any)
{
	for (size_t i = 0; i < m->nms; i++)
		if (any || m->ms[i] > after)
			return m->ms[i];
	return 0;
}

/* Move cursor c past its file onto the next: the next closed file after
 * ms, else the open file (ino, its committed part). */
static void rw_cursor_next(struct rw_cursor *c, const struct rw_metric *m, uint64_t after, int any,
                           uint64_t open_ino)
{
	uint64_t next = rw_next_closed(m, after, any);
	if (next) {
		c->closed = 1;
		c->ms = next;
		c->ino = 0;
	} else {
		c->closed = 0;
		c->ino = open_ino;
		c->ms = m->nms ? m->ms[m->nms - 1] : after;
	}
	c->off = 0;
}

/* Take rows of one metric of host h into the request from cursor c.
 * openfd: the open file (its inode open_ino), -1 when there is none.
 * Returns 1 when the request is full, 0 when the metric is all taken,
 * -1 on an error. */
static int rw_take_metric(struct rw_receiver *r, struct rw_host *h, int hostfd,
                          const struct rw_metric *m, struct rw_cursor *c, int openfd,
                          uint64_t open_ino, uint64_t now)
{
	if (!c->metric[0]) {
		snprintf(c->metric, sizeof c->metric, "%s", m->name);
		rw_cursor_next(c, m, 0, 1, open_ino);
	}
	for (int hops = 0; hops < 1000; hops++) {
		struct rw_file f = {.fd = -1};
		int own = 0;
		if (!c->closed) {
			if (open_ino && c->ino == open_ino) {
				f.fd = openfd;
				f.limit = m->committed;
			} else {
				/* The open file was closed: find it by inode among the
				 * closed files after c->ms. */
				int found = 0;
				for (size_t i = 0; i < m->nms && !found; i++) {
					if (m->ms[i] <= c->ms)
						continue;
					char name[PROTO_KEY_MAX + 32];
					struct stat sb;
					snprintf(name, sizeof name, "%s.%" PRIu64 ".csv", m->name,
					         m->ms[i]);
					if (fstatat(hostfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
					    (uint64_t)sb.st_ino == c->ino) {
						c->closed = 1;
						c->ms = m->ms[i];
						found = 1;
					}
				}
				if (!found) {
					if (!c->ino) {
						/* no open file when the cursor began */
						if (!m->nms && !open_ino)
							return 0;
					} else {
						rw_count(r, RWC_files_lost, 1);
						log_warn(
						    "remote_write",
						    "receiver %s: host %s: %s.csv went before all "
						    "of it was sent",
						    r->cfg->name, h->name, m->name);
					}
					rw_cursor_next(c, m, c->ms, 0, open_ino);
					if (!c->closed && !open_ino)
						return 0;
					continue;
				}
			}
		}
		if (c->closed) {
			if (rw_open_closed(hostfd, m->name, c->ms, &f) < 0) {
				rw_count(r, RWC_files_lost, 1);
				log_warn("remote_write",
				         "receiver %s: host %s: %s.%" PRIu64
				         ".csv went before all of it was sent",
				         r->cfg->name, h->name, m->name, c->ms);
				rw_cursor_next(c, m, c->ms, 0, open_ino);
				continue;
			}
			own = 1;
		}
		int rc = 0;
		if (f.limit > 0 && rw_file_header(&f) == 0)
			rc = rw_read_file(r, h, m->name, &f, &c->off, now);
		else if (f.limit > 0 && own && c->off == 0)
			log_warn("remote_write",
			         "receiver %s: host %s: %s.%" PRIu64
			         ".csv has no header it can read: skipped",
			         r->cfg->name, h->name, m->name, c->ms);
		int done = rc == 0;
		if (own)
			close(f.fd);
		if (rc != 0)
			return rc;
		if (!c->closed)
			return 0; /* the open file: the rest is not committed yet */
		if (done) {
			uint64_t ms = c->ms;
			if (!rw_next_closed(m, ms, 0) && !open_ino)
				return 0; /* stay at the end until the next file exists */
			rw_cursor_next(c, m, ms, 0, open_ino);
		}
	}
	return 0;
}

/* The pending cursors of host index hi (created from its cursors). */
static struct rw_pending *rw_pending_for(struct rw_receiver *r, size_t hi)
{
	for (size_t i = 0; i < r->npend; i++)
		if (r->pend[i].hi == hi)
			return &r->pend[i];
	if (r->npend == r->cappend) {
		size_t cap = r->cappend ? r->cappend * 2 : 16;
		struct rw_pending *p = realloc(r->pend, cap * sizeof *p);
		if (!p)
			return NULL;
		r->pend = p;
		r->cappend = cap;
	}
	struct rw_pending *p = &r->pend[r->npend++];
	p->hi = hi;
	memcpy(p->cur, r->hosts[hi].cur, sizeof p->cur);
	p->ncur = r->hosts[hi].ncur;
	return p;
}

/* Take rows of every metric of one host into the request. 1 when full. */
static int rw_take_host(struct rw_receiver *r, const char *name, uint64_t now)
{
	int hostfd = safefs_dir_open(r->rw->hosts_fd, name, 0);
	if (hostfd < 0)
		return 0;
	struct rw_listing l = {0};
	int full = 0;
	int openfd[RW_CURSOR_MAX];
	uint64_t ino[RW_CURSOR_MAX];
	struct rw_host *h = rw_host_get(r, name, 1);
	if (!h || rw_list_host(r, hostfd, &l) < 0)
		goto out;
	/* Open the open files, then list the closed files and read the record
	 * again, so each committed length is of a file no older than the one
	 * opened. */
	size_t nm = l.n > RW_CURSOR_MAX ? RW_CURSOR_MAX : l.n;
	for (size_t i = 0; i < nm; i++) {
		char fname[PROTO_KEY_MAX + 8];
		struct stat sb;
		snprintf(fname, sizeof fname, "%s.csv", l.m[i].name);
		openfd[i] = safefs_file_open(hostfd, fname, O_RDONLY);
		ino[i] = openfd[i] >= 0 && fstat(openfd[i], &sb) == 0 ? (uint64_t)sb.st_ino : 0;
	}
	/* The closed files listed again after the open ones were opened: one
	 * closed in between is among them, so a cursor finds it by inode. */
	if (rw_list_closed(hostfd, &l) < 0) {
		for (size_t i = 0; i < nm; i++)
			if (openfd[i] >= 0)
				close(openfd[i]);
		goto out;
	}
	if (rw_read_state(hostfd, r->st) == 0)
		for (size_t i = 0; i < nm; i++) {
			l.m[i].committed = 0;
			for (uint32_t j = 0; j < r->st->nfiles; j++)
				if (strcmp(r->st->files[j].metric, l.m[i].name) == 0)
					l.m[i].committed = r->st->files[j].size;
		}
	else
		for (size_t i = 0; i < nm; i++)
			l.m[i].committed = 0;
	size_t hi = (size_t)(h - r->hosts);
	for (size_t i = 0; i < nm && !full; i++) {
		struct rw_pending *p = rw_pending_for(r, hi);
		if (!p)
			break;
		struct rw_cursor *c = rw_cursor_find(p->cur, p->ncur, l.m[i].name);
		if (!c) {
			if (p->ncur == RW_CURSOR_MAX)
				continue;
			c = &p->cur[p->ncur++];
			memset(c, 0, sizeof *c);
		}
		int rc =
		    rw_take_metric(r, &r->hosts[hi], hostfd, &l.m[i], c, openfd[i], ino[i], now);
		if (rc < 0)
			log_warn("remote_write", "receiver %s: host %s: cannot read %s: %s",
			         r->cfg->name, name, l.m[i].name, strerror(errno));
		full = rc == 1;
	}
	/* A host whose cursors did not move needs no pending entry. */
	if (r->npend && r->pend[r->npend - 1].hi == hi) {
		struct rw_pending *p = &r->pend[r->npend - 1];
		if (p->ncur == r->hosts[hi].ncur &&
		    memcmp(p->cur, r->hosts[hi].cur, p->ncur * sizeof *p->cur) == 0)
			r->npend--;
	}
	for (size_t i = 0; i < nm; i++)
		if (openfd[i] >= 0)
			close(openfd[i]);
out:
	rw_listing_free(&l);
	close(hostfd);
	return full;
}

/* Ascending host names. */
static int rw_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Build the next request from every host's cursors. */
static void rw_build(struct rw_receiver *r, uint64_t now)
{
	rw_batch_reset(r->batch);
	r->batch_dropped = 0;
	r->npend = 0;
	int fd = openat(r->rw->hosts_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		log_warn("remote_write", "receiver %s: cannot list hosts/: %s", r->cfg->name,
		         strerror(errno));
		return;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > PROTO_NAME_MAX)
			continue;
		if (n == cap) {
			char **g = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof *names);
			if (!g)
				break;
			names = g;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, rw_name_cmp);
	int full = 0;
	for (size_t i = 0; i < n; i++) {
		if (!full)
			full = rw_take_host(r, names[i], now);
		free(names[i]);
	}
	free(names);
}

/* Whether any pending cursor differs from the host's. */
static int rw_moved(const struct rw_receiver *r)
{
	for (size_t i = 0; i < r->npend; i++) {
		const struct rw_pending *p = &r->pend[i];
		const struct rw_host *h = &r->hosts[p->hi];
		if (p->ncur != h->ncur || memcmp(p->cur, h->cur, p->ncur * sizeof *p->cur) != 0)
			return 1;
	}
	return 0;
}

/* The request is done with (accepted or refused for good): the pending
 * cursors become the hosts', each changed host's cursor file written. */
static void rw_commit(struct rw_receiver *r)
{
	for (size_t i = 0; i < r->npend; i++) {
		struct rw_pending *p = &r->pend[i];
		struct rw_host *h = &r->hosts[p->hi];
		if (p->ncur == h->ncur && memcmp(p->cur, h->cur, p->ncur * sizeof *p->cur) == 0)
			continue;
		if (rw_cursor_save(r->dirfd, h->name, p->cur, p->ncur) < 0)
			log_err("remote_write",
			        "receiver %s: host %s: cannot write its cursor file: %s (rows "
			        "already sent go again after a restart)",
			        r->cfg->name, h->name, strerror(errno));
		pthread_mutex_lock(&r->rw->lock);
		memcpy(h->cur, p->cur, sizeof h->cur);
		h->ncur = p->ncur;
		pthread_mutex_unlock(&r->rw->lock);
	}
	r->npend = 0;
}

/* curl: the start of the answer's body, for log lines. */
static size_t rw_on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct rw_receiver *r = arg;
	size_t n = size * nmemb;
	size_t room = sizeof r->body - 1 - r->bodylen;
	size_t take = n < room ? n : room;
	memcpy(r->body + r->bodylen, ptr, take);
	r->bodylen += take;
	r->body[r->bodylen] = '\0';
	return n;
}

/* curl: a Retry-After header of seconds. */
static size_t rw_on_header(char *buf, size_t size, size_t nitems, void *arg)
{
	struct rw_receiver *r = arg;
	size_t n = size * nitems;
	static const char name[] = "retry-after:";
	if (n > sizeof name && strncasecmp(buf, name, sizeof name - 1) == 0) {
		char tmp[32];
		size_t len =
		    n - (sizeof name - 1) < sizeof tmp - 1 ? n - (sizeof name - 1) : sizeof tmp - 1;
		memcpy(tmp, buf + sizeof name - 1, len);
		tmp[len] = '\0';
		char *end;
		long v = strtol(tmp, &end, 10);
		if (end != tmp && v >= 0)
			r->retry_after = v > 3600 ? 3600 : v;
	}
	return n;
}

/* curl: abandon a request when the server stops. */
static int rw_on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct rw_receiver *r = arg;
	return atomic_load(&r->rw->stopping) ? 1 : 0;
}

/* POST body: the HTTP status, or 0 on a network error (its text in r->body). */
static long rw_post(struct rw_receiver *r, const char *body, size_t len)
{
	r->bodylen = 0;
	r->body[0] = '\0';
	r->retry_after = -1;
	CURL *c = r->curl;
	CURLcode rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	if (rc == CURLE_OK) {
		rw_count(r, RWC_requests, 1);
		rc = curl_easy_perform(c);
	}
	long status = 0;
	if (rc == CURLE_OK)
		rc = curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		snprintf(r->body, sizeof r->body, "%s", curl_easy_strerror(rc));
		return 0;
	}
	return status;
}

/* A retry's wait: the back-off doubled from RW_BACKOFF_MIN up to
 * RW_BACKOFF_MAX, a random point of its upper half. */
static uint64_t rw_backoff(struct rw_receiver *r)
{
	r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : RW_BACKOFF_MIN;
	if (r->backoff_ms > RW_BACKOFF_MAX)
		r->backoff_ms = RW_BACKOFF_MAX;
	uint64_t half = r->backoff_ms / 2;
	return half + (uint64_t)random() % (half + 1);
}

/* Send the request until it is accepted or refused for good (or the
 * server stops). Returns 1 when it is done with, 0 when stopping. */
static int rw_send(struct rw_receiver *r, size_t samples, enum remote_write_counter what)
{
	char *body = NULL;
	size_t len = 0;
	if (rw_batch_encode(r->batch, &body, &len) < 0) {
		log_err("remote_write", "receiver %s: out of memory encoding a request",
		        r->cfg->name);
		return 0;
	}
	int done = 0;
	for (int attempt = 0; !atomic_load(&r->rw->stopping); attempt++) {
		if (attempt)
			rw_count(r, RWC_retries, 1);
		long status = rw_post(r, body, len);
		if (status >= 200 && status < 300) {
			rw_count(r, what, samples);
			rw_count(r, RWC_bytes_sent, len);
			r->backoff_ms = 0;
			if (r->failing)
				log_notice("remote_write", "receiver %s: accepting again",
				           r->cfg->name);
			r->failing = 0;
			done = 1;
			break;
		}
		if (status >= 400 && status < 500 && status != 429) {
			rw_count(r, RWC_samples_failed, samples);
			log_warn("remote_write",
			         "receiver %s: refused %zu samples with %ld: %s (not sent again)",
			         r->cfg->name, samples, status, r->body);
			r->backoff_ms = 0;
			done = 1;
			break;
		}
		uint64_t wait = status == 429 && r->retry_after >= 0
		                    ? (uint64_t)r->retry_after * 1000
		                    : rw_backoff(r);
		if (status == 429 && r->retry_after >= 0)
			r->backoff_ms = 0;
		if (!r->failing)
			log_warn("remote_write",
			         "receiver %s: %s%ld %s: sending again until it is "
			         "accepted",
			         r->cfg->name, status ? "HTTP " : "", status, r->body);
		r->failing = 1;
		log_debug("remote_write", "receiver %s: %s%ld %s: again in %" PRIu64 " ms",
		          r->cfg->name, status ? "HTTP " : "", status, r->body, wait);
		if (rw_sleep(r->rw, wait))
			break;
	}
	free(body);
	return done;
}

/* Send stale markers of the hosts that went down and whose rows are sent. */
static void rw_send_stale(struct rw_receiver *r)
{
	for (;;) {
		struct rw_down d;
		pthread_mutex_lock(&r->rw->lock);
		int have = r->ndown > 0;
		if (have) {
			d = r->down[0];
			memmove(r->down, r->down + 1, (r->ndown - 1) * sizeof *r->down);
			r->ndown--;
		}
		pthread_mutex_unlock(&r->rw->lock);
		if (!have)
			return;
		struct rw_host *h = rw_host_get(r, d.host, 0);
		if (!h || !h->nseries)
			continue;
		rw_batch_reset(r->batch);
		for (size_t i = 0; i < h->nseries; i++) {
			char key[PROTO_KEY_MAX * 2 + PROTO_INST_MAX + 4];
			snprintf(key, sizeof key, "%s", h->series[i]);
			char *field = strchr(key, '\037');
			char *inst = field ? strchr(field + 1, '\037') : NULL;
			if (!inst)
				continue;
			*field++ = '\0';
			*inst++ = '\0';
			struct prom_name pn;
			struct rw_label l[8];
			size_t nl =
			    rw_labels(r, h->name, key, field, inst[0] ? inst : NULL, &pn, l);
			if (nl &&
			    rw_batch_add(r->batch, l, nl, (int64_t)d.t_ms, rw_stale_nan()) < 0)
				break;
		}
		if (!rw_send(r, rw_batch_samples(r->batch), RWC_stale_sent))
			return;
	}
}

/* One receiver's thread: build, send, commit; when caught up, stale
 * markers, then wait for new rows. */
static void *rw_main(void *arg)
{
	struct rw_receiver *r = arg;
	/* "rw-<name>" as the thread's comm, so that its CPU time can be told
	 * apart under /proc/<pid>/task/; the kernel keeps 15 bytes. */
	char comm[16];
	snprintf(comm, sizeof comm, "rw-%s", r->cfg->name);
	int rc = pthread_setname_np(pthread_self(), comm);
	if (rc != 0)
		log_warn("remote_write", "receiver %s: cannot name its thread %s: %s", r->cfg->name,
		         comm, strerror(rc));
	log_info("remote_write", "receiver %s: sending to %s", r->cfg->name, r->cfg->url);
	while (!atomic_load(&r->rw->stopping)) {
		uint64_t now = util_now_ms();
		rw_build(r, now);
		size_t samples = rw_batch_samples(r->batch);
		int full = samples + r->batch_dropped >= (size_t)r->cfg->max_samples_per_send;
		if (!samples && !rw_moved(r)) {
			atomic_store(&r->lag_ms, 0);
			rw_send_stale(r);
			rw_sleep(r->rw, RW_POLL_MS);
			continue;
		}
		int64_t first, last;
		rw_batch_span(r->batch, &first, &last);
		atomic_store(&r->lag_ms,
		             samples && (uint64_t)first < now ? now - (uint64_t)first : 0);
		if (samples && !rw_send(r, samples, RWC_samples_sent))
			break;
		rw_count(r, RWC_samples_dropped, r->batch_dropped);
		rw_commit(r);
		if (!full)
			atomic_store(&r->lag_ms, 0);
	}
	return NULL;
}

/* Set up receiver r from its configuration; -1 (logged) on error. */
static int rw_receiver_init(struct remote_write *rw, struct rw_receiver *r,
                            const struct pimon_remote_write *cfg, int rootfd)
{
	r->rw = rw;
	r->cfg = cfg;
	r->dirfd = safefs_dir_open(rootfd, cfg->name, 1);
	if (r->dirfd < 0) {
		char why[128];
		log_err("remote_write", "receiver %s: cannot open %s/%s: %s", cfg->name, RW_DIR,
		        cfg->name, safefs_why(errno, why, sizeof why));
		return -1;
	}
	r->batch = rw_batch_new();
	r->st = malloc(sizeof *r->st);
	r->curl = curl_easy_init();
	if (!r->batch || !r->st || !r->curl) {
		log_err("remote_write", "receiver %s: out of memory", cfg->name);
		return -1;
	}
	for (int c = 0; c < RWC_COUNT; c++)
		atomic_init(&r->counters[c], 0);
	atomic_init(&r->lag_ms, 0);
	static const char *const fixed[] = {
	    "Content-Encoding: snappy",
	    "Content-Type: application/x-protobuf",
	    "X-Prometheus-Remote-Write-Version: 0.1.0",
	    "Expect:",
	};
	char line[4096];
	for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
		if (!(r->headers = curl_slist_append(r->headers, fixed[i])))
			goto oom;
	for (size_t i = 0; i < cfg->nheaders; i++)
		if (!(r->headers = curl_slist_append(r->headers, cfg->headers[i])))
			goto oom;
	if (cfg->bearer_token_file[0]) {
		if (!(r->bearer = rw_read_secret("bearer_token_file", cfg->bearer_token_file)))
			return -1;
		snprintf(line, sizeof line, "Authorization: Bearer %s", r->bearer);
		if (!(r->headers = curl_slist_append(r->headers, line)))
			goto oom;
	}
	CURL *c = r->curl;
	int bad = 0;
	bad |= curl_easy_setopt(c, CURLOPT_URL, cfg->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "pimon-server/" PIMON_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(cfg->timeout * 1000.0)) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rw_on_body) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, r) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, rw_on_header) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HEADERDATA, r) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, rw_on_progress) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_XFERINFODATA, r) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
	if (cfg->ca_file[0])
		bad |= curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file) != CURLE_OK;
	if (cfg->basic_auth_username[0]) {
		if (!cfg->basic_auth_password_file[0]) {
			log_err("remote_write",
			        "receiver %s: basic_auth_username needs "
			        "basic_auth_password_file",
			        cfg->name);
			return -1;
		}
		r->password =
		    rw_read_secret("basic_auth_password_file", cfg->basic_auth_password_file);
		if (!r->password)
			return -1;
		bad |= curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_USERNAME, cfg->basic_auth_username) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_PASSWORD, r->password) != CURLE_OK;
	}
	if (bad) {
		log_err("remote_write", "receiver %s: libcurl refused a setting", cfg->name);
		return -1;
	}
	rw_load_all(r);
	return 0;
oom:
	log_err("remote_write", "receiver %s: out of memory", cfg->name);
	return -1;
}

/* Create the sender. */
struct remote_write *remote_write_create(const struct pimon_config *cfg, int data_fd, int hosts_fd)
{
	struct remote_write *rw = calloc(1, sizeof *rw);
	if (!rw) {
		log_err("remote_write", "out of memory");
		return NULL;
	}
	rw->data_fd = data_fd;
	rw->hosts_fd = hosts_fd;
	atomic_init(&rw->stopping, 0);
	pthread_mutex_init(&rw->lock, NULL);
	pthread_mutex_init(&rw->sleep_lock, NULL);
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&rw->wake, &ca) != 0) {
		log_err("remote_write", "cannot make the sleep condition");
		free(rw);
		return NULL;
	}
	pthread_condattr_destroy(&ca);
	size_t n = cfg->server.nremote_write;
	if (!n)
		return rw;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_err("remote_write", "libcurl cannot start");
		goto fail;
	}
	int rootfd = safefs_dir_open(data_fd, RW_DIR, 1);
	if (rootfd < 0) {
		char why[128];
		log_err("remote_write", "cannot open %s in the data folder: %s", RW_DIR,
		        safefs_why(errno, why, sizeof why));
		goto fail;
	}
	rw->recv = calloc(n, sizeof *rw->recv);
	if (!rw->recv) {
		close(rootfd);
		goto fail;
	}
	rw->nrecv = n;
	for (size_t i = 0; i < n; i++)
		rw->recv[i].dirfd = -1;
	for (size_t i = 0; i < n; i++)
		if (rw_receiver_init(rw, &rw->recv[i], &cfg->server.remote_write[i], rootfd) < 0) {
			close(rootfd);
			goto fail;
		}
	close(rootfd);
	srandom((unsigned)util_mono_ms() ^ (unsigned)getpid());
	return rw;
fail:
	remote_write_destroy(rw);
	return NULL;
}

/* Start each receiver's thread. */
int remote_write_start(struct remote_write *rw)
{
	for (size_t i = 0; i < rw->nrecv; i++) {
		int rc = pthread_create(&rw->recv[i].thread, NULL, rw_main, &rw->recv[i]);
		if (rc != 0) {
			log_err("remote_write", "cannot start a thread: %s", strerror(rc));
			return -1;
		}
		rw->recv[i].started = 1;
	}
	return 0;
}

/* Stop the threads. */
void remote_write_stop(struct remote_write *rw)
{
	if (!rw)
		return;
	pthread_mutex_lock(&rw->sleep_lock);
	atomic_store(&rw->stopping, 1);
	pthread_cond_broadcast(&rw->wake);
	pthread_mutex_unlock(&rw->sleep_lock);
	for (size_t i = 0; i < rw->nrecv; i++)
		if (rw->recv[i].started) {
			pthread_join(rw->recv[i].thread, NULL);
			rw->recv[i].started = 0;
		}
}

/* Free the sender. */
void remote_write_destroy(struct remote_write *rw)
{
	if (!rw)
		return;
	for (size_t i = 0; i < rw->nrecv; i++) {
		struct rw_receiver *r = &rw->recv[i];
		if (r->curl)
			curl_easy_cleanup(r->curl);
		curl_slist_free_all(r->headers);
		free(r->bearer);
		free(r->password);
		for (size_t j = 0; j < r->nhosts; j++) {
			for (size_t k = 0; k < r->hosts[j].nseries; k++)
				free(r->hosts[j].series[k]);
			free(r->hosts[j].series);
		}
		free(r->hosts);
		free(r->pend);
		free(r->down);
		free(r->st);
		rw_batch_free(r->batch);
		if (r->dirfd >= 0)
			close(r->dirfd);
	}
	free(rw->recv);
	if (rw->nrecv)
		curl_global_cleanup();
	pthread_cond_destroy(&rw->wake);
	pthread_mutex_destroy(&rw->lock);
	pthread_mutex_destroy(&rw->sleep_lock);
	free(rw);
}

/* Receivers. */
size_t remote_write_count(const struct remote_write *rw)
{
	return rw ? rw->nrecv : 0;
}

/* Receiver i's name. */
const char *remote_write_name(const struct remote_write *rw, size_t i)
{
	return rw->recv[i].cfg->name;
}

/* Receiver i's counter c. */
uint64_t remote_write_counter(const struct remote_write *rw, size_t i, enum remote_write_counter c)
{
	return atomic_load_explicit(&rw->recv[i].counters[c], memory_order_relaxed);
}

/* Receiver i's lag in seconds. */
double remote_write_lag(const struct remote_write *rw, size_t i)
{
	return (double)atomic_load(&rw->recv[i].lag_ms) / 1000.0;
}
