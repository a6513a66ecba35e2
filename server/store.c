/* Per-host CSV files: one per metric, header first, rows appended, and a
 * commit record (state.c) saying which batch the files hold completely.
 * Rows past the record are from a batch never acked: store_open cuts them
 * off, and the agent sends that batch again.
 *
 * A host costs no descriptor between batches once the server's stores hold
 * more than a share of its descriptor limit (the rest is for sessions): a
 * store over that share closes its files after each commit and opens them
 * again at the next batch. Rows are formatted in a buffer that lives only
 * for the write, so an idle host costs a few hundred bytes here.
 *
 * Every file is opened relative to the host's folder with safefs, which
 * follows no symbolic link, and the folder itself is checked each time it
 * is opened: a host whose folder is unsafe is refused, and a batch for a
 * file that is unsafe is not stored (nor acked). */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "safefs.h"
#include "state.h"
#include "util.h"

/* How often a failure still going on is logged again, per host. */
#define STORE_FAIL_LOG_MS 60000

/* Share of RLIMIT_NOFILE the stores keep open between batches, at least
 * STORE_FDS_MIN. */
#define STORE_FDS_SHARE 32
#define STORE_FDS_MIN   16

struct store_file {
	char metric[PROTO_KEY_MAX + 1];
	int fd;          /* O_APPEND; -1 while released */
	int checked;     /* header verified in this run */
	uint64_t shape;  /* hash of the header verified */
	int dirty;       /* written since the last sync */
	off_t size;      /* where the file ends (only this store writes it) */
	uint64_t commit; /* its length in the commit record */
};

/* Where a file ended before the batch in progress wrote to it. */
struct store_undo {
	size_t file;
	off_t size;
};

/* One group's rows, formatted before a single write. */
struct rowbuf {
	char *data;
	size_t len, cap;
};

struct store {
	char *dir; /* the host's folder, for log lines */
	char name[PROTO_NAME_MAX + 1];
	int hosts_fd; /* <data_dir>/hosts: the registry's, borrowed */
	int dir_fd;   /* the host's folder; -1 while released */
	struct store_file *files;
	size_t nfiles;
	struct store_undo *undo; /* files written by the batch in progress */
	size_t nundo, undocap;
	int state_fd;    /* -1 while released */
	uint64_t gen;    /* of the commit record last read or written */
	uint64_t run_id; /* the last whole batch: run and seq */
	uint64_t last_seq;
	struct runs runs;     /* every recent run's highest batch stored */
	int persisted;        /* the record is on disk */
	int failing;          /* a write failed; cleared by the next success */
	uint64_t fail_log_ms; /* when the failure was last logged */
};

/* Descriptors every store holds, and how many they may keep between
 * batches. */
static atomic_int store_fds;
static int store_fds_budget;
static pthread_once_t store_budget_once = PTHREAD_ONCE_INIT;

struct store_log {
	pthread_mutex_t lock;
	FILE *fp;
	char path[4096];
};

/* The budget: a share of the descriptor limit. */
static void store_budget_init(void)
{
	struct rlimit rl;
	rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur / STORE_FDS_SHARE : 0;
	if (n > 1000000)
		n = 1000000;
	store_fds_budget = n < STORE_FDS_MIN ? STORE_FDS_MIN : (int)n;
}

/* The host's folder, opened again (and checked again) after a release,
 * counted; -1 with errno. */
static int store_dir(struct store *st)
{
	if (st->dir_fd < 0) {
		st->dir_fd = safefs_dir_open(st->hosts_fd, st->name, 0);
		if (st->dir_fd < 0)
			return -1;
		atomic_fetch_add(&store_fds, 1);
	}
	return st->dir_fd;
}

/* Open a file of the host's folder that the store keeps, counted. */
static int store_fd_open(struct store *st, const char *name, int flags)
{
	int dfd = store_dir(st);
	int fd = dfd < 0 ? -1 : safefs_file_open(dfd, name, flags);
	if (fd >= 0)
		atomic_fetch_add(&store_fds, 1);
	return fd;
}

/* Close a kept descriptor, counted. */
static void store_fd_close(int *fd)
{
	if (*fd < 0)
		return;
	close(*fd);
	*fd = -1;
	atomic_fetch_sub(&store_fds, 1);
}

/* Over the budget, give back this store's descriptors until its next
 * batch. */
static void store_release(struct store *st)
{
	if (atomic_load(&store_fds) <= store_fds_budget)
		return;
	for (size_t i = 0; i < st->nfiles; i++)
		store_fd_close(&st->files[i].fd);
	store_fd_close(&st->state_fd);
	store_fd_close(&st->dir_fd);
}

/* Quote a CSV field when it holds a comma, quote or line break. */
void store_csv_field(char *out, size_t size, const char *s)
{
	if (size == 0)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		snprintf(out, size, "%s", s);
		return;
	}
	size_t o = 0;
	if (o + 1 < size)
		out[o++] = '"';
	for (; *s && o + 3 < size; s++) {
		if (*s == '"')
			out[o++] = '"';
		out[o++] = *s;
	}
	if (o + 1 < size)
		out[o++] = '"';
	out[o] = '\0';
}

/* Header line a group's file must start with. */
static void group_header(const struct proto_group *g, char *out, size_t size)
{
	size_t o = (size_t)snprintf(out, size, "time");
	if (g->inst_key[0])
		o += (size_t)snprintf(out + o, size - o, ",%s", g->inst_key);
	for (unsigned i = 0; i < g->nfields && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, ",%s", g->fields[i]);
}

/* Open the file name of folder dfd (dir, for log lines) for appending,
 * its first line being header: write the header when the file is new or
 * empty; move a file with other columns aside so columns never mix.
 * Returns an O_APPEND descriptor or -1 with errno. */
/* The name an earlier generation of file name ("cpu.csv") takes when its
 * columns change: "cpu.<Unix ms>.csv", which no metric name can be. */
static int csv_generation_name(const char *name, char *out, size_t size)
{
	size_t len = strlen(name);
	if (len < 5 || strcmp(name + len - 4, ".csv") != 0)
		return -1;
	int n = snprintf(out, size, "%.*s.%llu.csv", (int)(len - 4), name,
	                 (unsigned long long)util_now_ms());
	return n > 0 && (size_t)n < size ? 0 : -1;
}

static int csv_prepare(int dfd, const char *dir, const char *name, const char *header, int *moved)
{
	*moved = 0;
	int fd = safefs_file_open(dfd, name, O_RDWR | O_CREAT | O_APPEND);
	if (fd < 0)
		return -1;
	char first[4096];
	ssize_t n = pread(fd, first, sizeof first - 1, 0);
	if (n < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	if (n > 0) {
		first[n] = '\0';
		first[strcspn(first, "\r\n")] = '\0';
		if (strcmp(first, header) == 0)
			return fd;
		close(fd);
		char aside[300];
		if (csv_generation_name(name, aside, sizeof aside) < 0 ||
		    renameat(dfd, name, dfd, aside) < 0)
			return -1;
		log_notice("store",
		           "%s/%s: columns changed from \"%s\" to \"%s\"; its rows so far "
		           "stay readable as %s/%s",
		           dir, name, first, header, dir, aside);
		*moved = 1;
		fd = safefs_file_open(dfd, name, O_RDWR | O_CREAT | O_APPEND);
		if (fd < 0)
			return -1;
	}
	size_t hl = strlen(header);
	char line[2100];
	snprintf(line, sizeof line, "%s\n", header);
	if (write(fd, line, hl + 1) != (ssize_t)(hl + 1)) {
		int saved = errno;
		if (ftruncate(fd, 0) < 0)
			saved = errno;
		close(fd);
		errno = saved ? saved : ENOSPC;
		return -1;
	}
	return fd;
}

/* What a failed write means for the agent. */
#define STORE_UNACKED  "not acking until it is stored"
#define STORE_NO_EVENT "the event is not recorded there"

/* Log a failure to store in file (a name in the host's folder), and what
 * follows from it, once per streak, and again each STORE_FAIL_LOG_MS while
 * it lasts. A refusal with the folder not open was the folder's. */
static int store_fail(struct store *st, const char *file, const char *effect)
{
	int err = errno;
	uint64_t now = util_mono_ms();
	if (!st->failing || now - st->fail_log_ms >= STORE_FAIL_LOG_MS) {
		char why[64];
		int dir = st->dir_fd < 0;
		if (safefs_refused(err))
			log_err("store", "host %s: %s%s%s %s: refusing to store; %s", st->name,
			        st->dir, dir ? "" : "/", dir ? "" : file,
			        safefs_why(err, why, sizeof why), effect);
		else
			log_err("store", "host %s: %s: %s; %s", st->name, file, strerror(err),
			        effect);
		st->fail_log_ms = now;
	}
	st->failing = 1;
	errno = err;
	return -1;
}

/* Log why file of the host's folder ("" for the folder itself) cannot be
 * opened; errno is kept. */
static void store_open_failed(const struct store *st, const char *file)
{
	int err = errno;
	char why[64];
	if (safefs_refused(err))
		log_err("store", "host %s: %s%s%s %s: refusing to store", st->name, st->dir,
		        *file ? "/" : "", file, safefs_why(err, why, sizeof why));
	else
		log_err("store", "host %s: cannot open %s%s%s: %s", st->name, st->dir,
		        *file ? "/" : "", file, strerror(err));
	errno = err;
}

/* Length of a file's first line including its newline; 0 if none. */
static off_t first_line_len(int fd)
{
	char buf[4096];
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	if (n <= 0)
		return 0;
	char *nl = memchr(buf, '\n', (size_t)n);
	return nl ? (off_t)(nl - buf + 1) : 0;
}

/* Add a metric file, open as fd (counted), to the table. */
static struct store_file *store_add_file(struct store *st, const char *metric, int fd)
{
	struct store_file *nf = realloc(st->files, (st->nfiles + 1) * sizeof *nf);
	if (!nf)
		return NULL;
	st->files = nf;
	struct store_file *f = &st->files[st->nfiles++];
	memset(f, 0, sizeof *f);
	snprintf(f->metric, sizeof f->metric, "%s", metric);
	f->fd = fd;
	off_t end = lseek(fd, 0, SEEK_END);
	f->size = end > 0 ? end : 0;
	f->commit = (uint64_t)f->size;
	return f;
}

/* Cut the file name, open as fd, back to size (rows of a batch never
 * committed). */
static void store_cut(struct store *st, const char *name, int fd, off_t size)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0 || sb.st_size == size)
		return;
	if (sb.st_size < size) {
		log_warn("store",
		         "host %s: %s/%s is %lld bytes shorter than its last commit (lost in a "
		         "power cut?)",
		         st->name, st->dir, name, (long long)(size - sb.st_size));
		return;
	}
	if (ftruncate(fd, size) < 0)
		log_err("store", "host %s: cannot cut %s/%s back: %s", st->name, st->dir, name,
		        strerror(errno));
	else
		log_notice("store", "host %s: %s/%s: removed %lld bytes of a batch never acked",
		           st->name, st->dir, name, (long long)(sb.st_size - size));
}

/* Bring the files back to the commit record: open every file it names at
 * its committed length; cut metric files it does not name to their header
 * (the host's events.csv and alarms.csv are logs, not batches). A file
 * that is a link is left alone (and logged): no batch is stored in it. */
static void store_recover(struct store *st, const struct state *committed)
{
	char name[PROTO_KEY_MAX + 8];
	for (uint32_t i = 0; i < committed->nfiles; i++) {
		const struct state_file *sf = &committed->files[i];
		if (!util_valid_key(sf->metric))
			continue;
		snprintf(name, sizeof name, "%s.csv", sf->metric);
		int fd = store_fd_open(st, name, O_WRONLY | O_APPEND);
		if (fd < 0) {
			if (errno != ENOENT)
				store_open_failed(st, name);
			continue;
		}
		store_cut(st, name, fd, (off_t)sf->size);
		if (!store_add_file(st, sf->metric, fd))
			store_fd_close(&fd);
	}
	/* A descriptor of its own: reading the folder moves its offset. */
	int lfd = openat(st->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (!d) {
		log_err("store", "host %s: cannot list %s: %s", st->name, st->dir, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (len < 5 || strcmp(de->d_name + len - 4, ".csv") != 0 ||
		    strcmp(de->d_name, "events.csv") == 0 || strcmp(de->d_name, "alarms.csv") == 0)
			continue;
		char metric[PROTO_KEY_MAX + 1];
		snprintf(metric, sizeof metric, "%.*s", (int)(len - 4), de->d_name);
		/* An earlier generation ("cpu.<ms>.csv") holds committed rows only. */
		if (len - 4 > PROTO_KEY_MAX || !util_valid_key(metric))
			continue;
		int known = 0;
		for (size_t i = 0; i < st->nfiles; i++)
			known |= strcmp(st->files[i].metric, metric) == 0;
		if (known)
			continue;
		int fd = safefs_file_open(st->dir_fd, de->d_name, O_RDWR);
		if (fd < 0) {
			if (errno != ENOENT)
				store_open_failed(st, de->d_name);
			continue;
		}
		store_cut(st, de->d_name, fd, first_line_len(fd));
		close(fd);
	}
	closedir(d);
}

/* Create the host's folder, read its commit record and repair the files. */
struct store *store_open(int hosts_fd, const char *data_dir, const char *name)
{
	pthread_once(&store_budget_once, store_budget_init);
	struct store *st = calloc(1, sizeof *st);
	if (!st) {
		log_err("store", "host %s: out of memory", name);
		return NULL;
	}
	st->state_fd = -1;
	st->dir_fd = -1;
	st->hosts_fd = hosts_fd;
	char dir[4096];
	int n = snprintf(dir, sizeof dir, "%s/hosts/%s", data_dir, name);
	if (n < 0 || (size_t)n >= sizeof dir) {
		log_err("store", "host %s: data path too long", name);
		goto fail;
	}
	st->dir = strdup(dir);
	if (!st->dir) {
		log_err("store", "host %s: out of memory", name);
		goto fail;
	}
	snprintf(st->name, sizeof st->name, "%s", name);
	st->dir_fd = safefs_dir_open(hosts_fd, name, 1);
	if (st->dir_fd < 0) {
		store_open_failed(st, "");
		goto fail;
	}
	atomic_fetch_add(&store_fds, 1);
	char path[4200];
	snprintf(path, sizeof path, "%s/%s", st->dir, STATE_FILE_NAME);
	/* A record file, valid or not, is made before any row is written: with
	 * one, rows it does not cover were never acked. */
	int existed = 1;
	st->state_fd = store_fd_open(st, STATE_FILE_NAME, O_RDWR);
	if (st->state_fd < 0 && errno == ENOENT) {
		existed = 0;
		st->state_fd = store_fd_open(st, STATE_FILE_NAME, O_RDWR | O_CREAT | O_EXCL);
	}
	if (st->state_fd < 0) {
		store_open_failed(st, STATE_FILE_NAME);
		goto fail;
	}
	/* Both slots allocated now, so a full disk cannot refuse a commit. */
	int err = posix_fallocate(st->state_fd, 0, 2 * STATE_SLOT);
	if (err != 0 && err != EOPNOTSUPP && err != EINVAL) {
		errno = err;
		log_err("store", "host %s: cannot allocate %s: %s", name, path, strerror(errno));
		goto fail;
	}
	struct state committed;
	int rc = state_read(st->state_fd, &committed);
	if (rc < 0) {
		log_err("store", "host %s: cannot read %s: %s", name, path, strerror(errno));
		goto fail;
	}
	if (rc == 1)
		memset(&committed, 0, sizeof committed);
	if (rc == 0 || existed)
		store_recover(st, &committed);
	st->gen = committed.gen;
	st->run_id = committed.run_id;
	st->last_seq = committed.last_seq;
	st->runs = committed.runs;
	st->persisted = 1;
	store_release(st);
	return st;
fail:
	store_fd_close(&st->state_fd);
	store_fd_close(&st->dir_fd);
	free(st->dir);
	free(st);
	return NULL;
}

/* Sync and close everything the store holds. */
void store_close(struct store *st)
{
	if (!st)
		return;
	store_persist(st, 1);
	for (size_t i = 0; i < st->nfiles; i++)
		store_fd_close(&st->files[i].fd);
	store_fd_close(&st->state_fd);
	store_fd_close(&st->dir_fd);
	free(st->files);
	free(st->undo);
	free(st->dir);
	free(st);
}

/* The highest batch of run_id in the files, 0 for none. */
uint64_t store_run_seq(const struct store *st, uint64_t run_id)
{
	return runs_seq(&st->runs, run_id);
}

/* FNV-1a of a header line, to tell a group's shape from the file's. */
static uint64_t header_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int store_write_state(struct store *st);

/* The metric's rows come with other columns (an agent upgrade): close its
 * file, whose rows are all committed, for csv_prepare to move it aside as
 * an earlier generation and start the new one. 0, or -1 (errno set). */
static int store_new_generation(struct store *st, struct store_file *f)
{
	if ((uint64_t)f->size != f->commit) {
		/* Rows of this very batch are in it: two shapes in one batch. */
		errno = EINVAL;
		return -1;
	}
	/* The earlier generation is whole on disk before it moves. */
	if (f->fd >= 0 && f->dirty && fdatasync(f->fd) < 0)
		return -1;
	f->dirty = 0;
	store_fd_close(&f->fd);
	f->checked = 0;
	return 0;
}

/* The file for a metric, opened (and its header checked) the first time
 * in this run, and opened again after a release; NULL on error. */
static struct store_file *store_file_for(struct store *st, const struct proto_group *g)
{
	struct store_file *f = NULL;
	for (size_t i = 0; i < st->nfiles && !f; i++)
		if (strcmp(st->files[i].metric, g->metric) == 0)
			f = &st->files[i];
	char name[PROTO_KEY_MAX + 8], header[2048];
	group_header(g, header, sizeof header);
	uint64_t shape = header_hash(header);
	if (f && f->checked && f->shape != shape && store_new_generation(st, f) < 0)
		return NULL;
	if (f && f->checked && f->fd >= 0)
		return f;
	snprintf(name, sizeof name, "%s.csv", g->metric);
	if (f && f->checked) {
		/* Released after an earlier batch: open it again. */
		f->fd = store_fd_open(st, name, O_WRONLY | O_APPEND);
		if (f->fd >= 0)
			return f;
		if (errno != ENOENT)
			return NULL;
		f->checked = 0;
	}
	int dfd = store_dir(st);
	int moved = 0;
	int fd = dfd < 0 ? -1 : csv_prepare(dfd, st->dir, name, header, &moved);
	if (fd < 0)
		return NULL;
	atomic_fetch_add(&store_fds, 1);
	if (!f && st->nfiles >= STATE_FILES_MAX) {
		store_fd_close(&fd);
		errno = EMFILE;
		return NULL;
	}
	if (!f) {
		if (!(f = store_add_file(st, g->metric, fd))) {
			store_fd_close(&fd);
			return NULL;
		}
	} else {
		store_fd_close(&f->fd);
		f->fd = fd;
		off_t end = lseek(fd, 0, SEEK_END);
		f->size = end > 0 ? end : 0;
		if (moved) {
			/* A new generation: the record names its header, not the old rows. */
			f->commit = (uint64_t)f->size;
			if (store_write_state(st) < 0)
				return NULL;
		}
	}
	f->checked = 1;
	f->shape = shape;
	f->dirty = 1;
	return f;
}

/* Append printf-style text to the row buffer; -1 when out of memory. */
__attribute__((format(printf, 2, 3))) static int buf_printf(struct rowbuf *b, const char *fmt, ...)
{
	for (;;) {
		size_t room = b->cap - b->len;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return 0;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *nb = realloc(b->data, cap);
		if (!nb)
			return -1;
		b->data = nb;
		b->cap = cap;
	}
}

/* Remember where file i ends, once per batch, so the batch can be undone. */
static int store_note_undo(struct store *st, size_t file)
{
	for (size_t i = 0; i < st->nundo; i++)
		if (st->undo[i].file == file)
			return 0;
	if (st->nundo == st->undocap) {
		size_t cap = st->undocap ? st->undocap * 2 : 8;
		struct store_undo *nu = realloc(st->undo, cap * sizeof *nu);
		if (!nu)
			return -1;
		st->undo = nu;
		st->undocap = cap;
	}
	st->undo[st->nundo].file = file;
	st->undo[st->nundo].size = st->files[file].size;
	st->nundo++;
	return 0;
}

/* Write the whole buffer; 0 or -1 with errno set. */
static int write_all(int fd, const char *data, size_t len)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Cut every file the batch touched back to where it ended before, so a
 * batch is stored whole or not at all (and can be resent without
 * duplicating rows). */
void store_batch_abort(struct store *st)
{
	int saved = errno;
	for (size_t i = 0; i < st->nundo; i++) {
		struct store_file *f = &st->files[st->undo[i].file];
		if (ftruncate(f->fd, st->undo[i].size) < 0)
			log_err("store", "host %s: cannot undo a partial batch: %s", st->name,
			        strerror(errno));
		f->size = st->undo[i].size;
	}
	st->nundo = 0;
	errno = saved;
}

/* Append the group's rows with one write. */
int store_write_group(struct store *st, const struct proto_group *g)
{
	char file[PROTO_KEY_MAX + 8];
	snprintf(file, sizeof file, "%s.csv", g->metric);
	struct store_file *f = store_file_for(st, g);
	if (!f)
		return store_fail(st, file, STORE_UNACKED);
	char inst[PROTO_INST_MAX * 2 + 3];
	struct rowbuf b = {0};
	int rc = 0;
	for (uint32_t r = 0; r < g->nrows && rc == 0; r++) {
		const struct proto_row *row = &g->rows[r];
		rc = buf_printf(&b, "%llu", (unsigned long long)row->time_ms);
		if (g->inst_key[0]) {
			store_csv_field(inst, sizeof inst, row->instance);
			rc |= buf_printf(&b, ",%s", inst);
		}
		for (unsigned i = 0; i < g->nfields && rc == 0; i++) {
			char num[UTIL_DOUBLE_MAX];
			util_format_double(num, row->values[i]);
			rc = buf_printf(&b, ",%s", num);
		}
		rc |= buf_printf(&b, "\n");
	}
	if (rc < 0) {
		free(b.data);
		errno = ENOMEM;
		return store_fail(st, file, STORE_UNACKED);
	}
	if (store_note_undo(st, (size_t)(f - st->files)) < 0 ||
	    write_all(f->fd, b.data, b.len) < 0) {
		free(b.data);
		return store_fail(st, file, STORE_UNACKED);
	}
	free(b.data);
	f->size += (off_t)b.len;
	f->dirty = 1;
	return 0;
}

/* Append one event line to the host's events.csv. */
int store_write_event(struct store *st, const char *line)
{
	/* Events are rare: the file is opened for each, not kept, and the
	 * folder given back when descriptors are short. */
	int dfd = store_dir(st), moved;
	int fd =
	    dfd < 0 ? -1 : csv_prepare(dfd, st->dir, "events.csv", STORE_HOST_EVENT_HEADER, &moved);
	if (fd < 0) {
		store_fail(st, "events.csv", STORE_NO_EVENT);
		store_release(st);
		return -1;
	}
	size_t len = strlen(line);
	char *buf = malloc(len + 1);
	int rc = -1;
	if (buf) {
		memcpy(buf, line, len);
		buf[len] = '\n';
		rc = write_all(fd, buf, len + 1);
		free(buf);
	}
	close(fd);
	store_release(st);
	return rc < 0 ? store_fail(st, "events.csv", STORE_NO_EVENT) : 0;
}

/* The batch (run_id, seq) is whole in the files: it becomes the commit
 * record, kept in memory until store_persist writes it. */
void store_batch_done(struct store *st, uint64_t run_id, uint64_t seq)
{
	st->run_id = run_id;
	st->last_seq = seq;
	runs_stored(&st->runs, run_id, seq);
	for (size_t i = 0; i < st->nfiles; i++)
		st->files[i].commit = (uint64_t)st->files[i].size;
	st->nundo = 0;
	st->persisted = 0;
}

/* Write the commit record into the slot after the last one. */
static int store_write_state(struct store *st)
{
	if (st->state_fd < 0) {
		st->state_fd = store_fd_open(st, STATE_FILE_NAME, O_RDWR);
		if (st->state_fd < 0)
			return -1;
	}
	struct state c = {
	    .gen = st->gen, .run_id = st->run_id, .last_seq = st->last_seq, .runs = st->runs};
	for (size_t i = 0; i < st->nfiles && c.nfiles < STATE_FILES_MAX; i++) {
		struct state_file *sf = &c.files[c.nfiles++];
		snprintf(sf->metric, sizeof sf->metric, "%s", st->files[i].metric);
		sf->size = st->files[i].commit;
	}
	if (state_write(st->state_fd, &c) < 0)
		return -1;
	st->gen = c.gen;
	return 0;
}

/* Write the commit record; with sync, the data reaches the disk before the
 * record and the record before this returns. 0 or -1. */
int store_persist(struct store *st, int sync)
{
	if (sync) {
		for (size_t i = 0; i < st->nfiles; i++) {
			struct store_file *f = &st->files[i];
			if (!f->dirty)
				continue;
			char name[PROTO_KEY_MAX + 8];
			snprintf(name, sizeof name, "%s.csv", f->metric);
			if (f->fd < 0)
				f->fd = store_fd_open(st, name, O_WRONLY | O_APPEND);
			if (f->fd < 0 || fdatasync(f->fd) < 0)
				return store_fail(st, name, STORE_UNACKED);
			f->dirty = 0;
		}
	}
	if (!st->persisted) {
		if (store_write_state(st) < 0)
			return store_fail(st, STATE_FILE_NAME, STORE_UNACKED);
		st->persisted = 1;
		if (sync && fdatasync(st->state_fd) < 0)
			return store_fail(st, STATE_FILE_NAME, STORE_UNACKED);
	}
	if (st->failing) {
		log_notice("store", "host %s: storing again", st->name);
		st->failing = 0;
	}
	store_release(st);
	return 0;
}

/* Open a shared log file such as <data_dir>/events.csv. */
struct store_log *store_log_open(int dirfd, const char *dir, const char *name, const char *header)
{
	struct store_log *l = calloc(1, sizeof *l);
	if (!l) {
		log_err("store", "%s/%s: out of memory", dir, name);
		return NULL;
	}
	int moved;
	int fd = csv_prepare(dirfd, dir, name, header, &moved);
	l->fp = fd >= 0 ? fdopen(fd, "a") : NULL;
	if (!l->fp) {
		int err = errno;
		char why[64];
		if (fd >= 0)
			close(fd);
		if (safefs_refused(err))
			log_err("store", "%s/%s %s: refusing to write through it", dir, name,
			        safefs_why(err, why, sizeof why));
		else
			log_err("store", "cannot open %s/%s: %s", dir, name, strerror(err));
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	snprintf(l->path, sizeof l->path, "%s/%s", dir, name);
	return l;
}

/* Append one line under the log's lock. */
int store_log_append(struct store_log *l, const char *line)
{
	pthread_mutex_lock(&l->lock);
	int rc = (fprintf(l->fp, "%s\n", line) < 0 || fflush(l->fp) != 0) ? -1 : 0;
	if (rc < 0) {
		clearerr(l->fp);
		log_err("store", "%s: %s", l->path, strerror(errno));
	}
	pthread_mutex_unlock(&l->lock);
	return rc;
}

/* Close the shared log. */
void store_log_close(struct store_log *l)
{
	if (!l)
		return;
	fclose(l->fp);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
