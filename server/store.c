/* Per-host CSV files: for each metric the raw rows of the open day, its
 * minute and hour rollups (rollup.c), and a commit record (state.c) saying
 * which batch the files hold completely and how far the rollups go. Rows
 * past the record are from a batch never acked: store_open cuts them off,
 * and the agent sends that batch again. Rollup rows are folded from the
 * rows past the record's offsets only, so after any crash they continue
 * where the record says, each row folded once.
 *
 * A metric's open files close when a row of a later UTC day arrives (the
 * hour file: a later month), or when its columns change: the open buckets
 * are written, everything synced and committed, and the files renamed to
 * "<metric>.<ms>.csv" for the housekeeper to compress (docs/STORAGE.md).
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
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "rollup.h"
#include "rowbuf.h"
#include "safefs.h"
#include "series.h"
#include "state.h"
#include "util.h"

/* How often a failure still going on is logged again, per host. */
#define STORE_FAIL_LOG_MS 60000

/* Share of RLIMIT_NOFILE the stores keep open between batches, at least
 * STORE_FDS_MIN. */
#define STORE_FDS_SHARE 32
#define STORE_FDS_MIN   16

/* Row times a clock can plausibly give (docs/STORAGE.md): from 2020-01-01
 * to this far ahead of the server's clock. */
#define STORE_TIME_MIN   1577836800000ull
#define STORE_TIME_AHEAD 600000ull

#define STORE_DAY_MS 86400000ull

/* A metric's open files: raw rows, minute rows, hour rows. */
enum { TIER_RAW, TIER_1M, TIER_1H, TIERS };

/* The folder of each tier's files inside the host's. */
static const char *const tier_folder[TIERS] = {NULL, "1m", "1h"};

struct tier_file {
	int fd;                /* O_APPEND; -1 while released */
	unsigned char checked; /* header verified in this run */
	unsigned char dirty;   /* written since the last sync */
	off_t size;            /* where the file ends (only this store writes it) */
	uint64_t commit;       /* its length in the commit record */
};

/* Packed: every connected host holds one per metric. */
struct store_file {
	char metric[PROTO_KEY_MAX + 1];
	unsigned char instanced; /* its rows name an instance */
	/* rolled[l]: the rows of tier l before this offset are folded into
	 * tier l + 1; open[l], bucket[l]: the rows from there on are of one
	 * bucket, that one (not known after a start). */
	unsigned char open[2];
	uint64_t shape; /* hash of the raw header verified */
	struct tier_file t[TIERS];
	uint64_t rolled[2], rolled_commit[2];
	uint64_t bucket[2];
	uint64_t newest, newest_commit; /* the latest raw row time (0: unknown) */
};

/* A file's state before the batch in progress first wrote to it. */
struct store_undo {
	size_t file;
	off_t size[TIERS];
	uint64_t rolled[2], bucket[2], newest;
	unsigned char open[2];
};

struct store {
	char *dir; /* the host's folder, for log lines */
	char name[PROTO_NAME_MAX + 1];
	int hosts_fd;       /* <data_dir>/hosts: the registry's, borrowed */
	int dir_fd;         /* the host's folder; -1 while released */
	int tier_fd[TIERS]; /* 1m/ and 1h/; -1 while released */
	struct store_file *files;
	size_t nfiles;
	struct store_undo *undo; /* files written by the batch in progress */
	size_t nundo, undocap;
	int state_fd;    /* -1 while released */
	uint64_t gen;    /* of the commit record last read or written */
	int legacy;      /* the record on disk is of an older version */
	uint64_t run_id; /* the last whole batch: run and seq */
	uint64_t last_seq;
	struct runs runs;      /* every recent run's highest batch stored */
	int persisted;         /* the record is on disk */
	int failing;           /* a write failed; cleared by the next success */
	uint64_t fail_log_ms;  /* when the failure was last logged */
	int retiming;          /* rows are being stored at the server's time */
	int retimed;           /* and this batch had one */
	uint64_t retimed_rows; /* such rows since store_take_retimed */
	uint64_t fold_delay;   /* ms past a minute's end before it is folded */
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

/* FNV-1a of a header line, to tell a group's shape from the file's (and
 * of a host's name, for its moment in each minute). */
static uint64_t header_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

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

/* The folder of a tier's files, created when create is set and it is
 * missing; -1 with errno. */
static int store_tier_dir(struct store *st, int tier, int create)
{
	if (tier == TIER_RAW)
		return store_dir(st);
	if (st->tier_fd[tier] < 0) {
		int dfd = store_dir(st);
		st->tier_fd[tier] = dfd < 0 ? -1 : safefs_dir_open(dfd, tier_folder[tier], create);
		if (st->tier_fd[tier] < 0)
			return -1;
		atomic_fetch_add(&store_fds, 1);
	}
	return st->tier_fd[tier];
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
		for (int t = 0; t < TIERS; t++)
			store_fd_close(&st->files[i].t[t].fd);
	store_fd_close(&st->state_fd);
	store_fd_close(&st->tier_fd[TIER_1M]);
	store_fd_close(&st->tier_fd[TIER_1H]);
	store_fd_close(&st->dir_fd);
	if (st->nundo == 0) { /* between batches: memory too */
		free(st->undo);
		st->undo = NULL;
		st->undocap = 0;
	}
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

/* Move file name of folder dfd ("cpu.csv") aside as "cpu.<ms>.csv", ms
 * the time now (later if that name is taken: nothing is ever replaced);
 * the new name goes to out. 0, or -1 with errno (ENOENT: no such file). */
static int csv_move_aside(int dfd, const char *name, char *out, size_t size)
{
	size_t len = strlen(name);
	if (len < 5 || strcmp(name + len - 4, ".csv") != 0) {
		errno = EINVAL;
		return -1;
	}
	for (uint64_t ms = util_now_ms();; ms++) {
		int n = snprintf(out, size, "%.*s.%llu.csv", (int)(len - 4), name,
		                 (unsigned long long)ms);
		if (n < 0 || (size_t)n >= size) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (renameat2(dfd, name, dfd, out, RENAME_NOREPLACE) == 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
}

/* Open the file name of folder dfd (dir, for log lines) for appending,
 * its first line being header: write the header when the file is new or
 * empty; move a file with other columns aside so columns never mix.
 * Returns an O_APPEND descriptor or -1 with errno. */
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
		if (csv_move_aside(dfd, name, aside, sizeof aside) < 0)
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

/* Add a metric to the table, every file released. */
static struct store_file *store_add_file(struct store *st, const char *metric)
{
	if (st->nfiles >= STATE_FILES_MAX) {
		errno = EMFILE;
		return NULL;
	}
	struct store_file *nf = realloc(st->files, (st->nfiles + 1) * sizeof *nf);
	if (!nf)
		return NULL;
	st->files = nf;
	struct store_file *f = &st->files[st->nfiles++];
	memset(f, 0, sizeof *f);
	snprintf(f->metric, sizeof f->metric, "%s", metric);
	for (int t = 0; t < TIERS; t++)
		f->t[t].fd = -1;
	return f;
}

/* The latest time of the last rows of a tier file (0 if none). */
static uint64_t store_tail_time(int dfd, const char *name)
{
	struct csvread *r = dfd < 0 ? NULL : csvread_open(dfd, name);
	uint64_t last = 0;
	if (r) {
		series_tail(r, 16, 0, &last, NULL, NULL);
		csvread_close(r);
	}
	return last;
}

/* Bring one tier file of a metric named in the commit record back to its
 * committed length (0: its header only). */
static void store_recover_tier(struct store *st, struct store_file *f, int tier, uint64_t size)
{
	char name[PROTO_KEY_MAX + 8];
	snprintf(name, sizeof name, "%s.csv", f->metric);
	int dfd = store_tier_dir(st, tier, 0);
	int fd = dfd < 0 ? -1 : safefs_file_open(dfd, name, O_RDWR | O_APPEND);
	if (fd < 0) {
		if (errno != ENOENT)
			store_open_failed(st, name);
		return;
	}
	atomic_fetch_add(&store_fds, 1);
	store_cut(st, name, fd, size ? (off_t)size : first_line_len(fd));
	off_t end = lseek(fd, 0, SEEK_END);
	f->t[tier].fd = fd;
	f->t[tier].size = end > 0 ? end : 0;
	f->t[tier].commit = (uint64_t)f->t[tier].size;
}

/* Cut the open files of folder dfd (a tier's) that the commit record does
 * not name to their header: none of their rows was acked. */
static void store_recover_unknown(struct store *st, int dfd, const char *where)
{
	if (dfd < 0)
		return;
	/* A descriptor of its own: reading the folder moves its offset. */
	int lfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (!d) {
		log_err("store", "host %s: cannot list %s%s: %s", st->name, st->dir, where,
		        strerror(errno));
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
		/* A closed file ("cpu.<ms>.csv") holds committed rows only. */
		if (len - 4 > PROTO_KEY_MAX || !util_valid_key(metric))
			continue;
		int known = 0;
		for (size_t i = 0; i < st->nfiles; i++)
			known |= strcmp(st->files[i].metric, metric) == 0;
		if (known)
			continue;
		int fd = safefs_file_open(dfd, de->d_name, O_RDWR);
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

/* Bring the files back to the commit record: open every file it names at
 * its committed length; cut metric files it does not name to their header
 * (the host's events.csv and alarms.csv are logs, not batches). A file
 * that is a link is left alone (and logged): no batch is stored in it. */
static void store_recover(struct store *st, const struct state *committed)
{
	for (uint32_t i = 0; i < committed->nfiles; i++) {
		const struct state_file *sf = &committed->files[i];
		if (!util_valid_key(sf->metric))
			continue;
		struct store_file *f = store_add_file(st, sf->metric);
		if (!f)
			break;
		store_recover_tier(st, f, TIER_RAW, sf->size);
		store_recover_tier(st, f, TIER_1M, sf->m1_size);
		store_recover_tier(st, f, TIER_1H, sf->h1_size);
		f->rolled[0] = f->rolled_commit[0] = sf->rolled;
		f->rolled[1] = f->rolled_commit[1] = sf->m1_rolled;
		f->newest = f->newest_commit = sf->newest;
		if (committed->legacy && f->t[TIER_RAW].size > 0)
			log_notice("store",
			           "host %s: %s/%s.csv was written before rollups: its rows are "
			           "rolled up with the next batch",
			           st->name, st->dir, f->metric);
	}
	store_recover_unknown(st, st->dir_fd, "");
	for (int t = TIER_1M; t < TIERS; t++)
		store_recover_unknown(st, store_tier_dir(st, t, 0), tier_folder[t]);
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
	for (int t = 0; t < TIERS; t++)
		st->tier_fd[t] = -1;
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
	st->fold_delay = header_hash(name) % rollup_width(ROLLUP_MINUTE);
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
	st->legacy = rc == 0 && committed.legacy;
	st->run_id = committed.run_id;
	st->last_seq = committed.last_seq;
	st->runs = committed.runs;
	st->persisted = 1;
	store_release(st);
	return st;
fail:
	for (size_t i = 0; i < st->nfiles; i++)
		for (int t = 0; t < TIERS; t++)
			store_fd_close(&st->files[i].t[t].fd);
	free(st->files);
	store_fd_close(&st->state_fd);
	for (int t = TIER_1M; t < TIERS; t++)
		store_fd_close(&st->tier_fd[t]);
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
		for (int t = 0; t < TIERS; t++)
			store_fd_close(&st->files[i].t[t].fd);
	store_fd_close(&st->state_fd);
	for (int t = TIER_1M; t < TIERS; t++)
		store_fd_close(&st->tier_fd[t]);
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

/* Write the commit record into the slot after the last one: every file
 * at its committed length. */
static int store_write_state(struct store *st)
{
	if (st->state_fd < 0) {
		st->state_fd = store_fd_open(st, STATE_FILE_NAME, O_RDWR);
		if (st->state_fd < 0)
			return -1;
	}
	static _Thread_local struct state c; /* 8 kB: not on a worker's stack */
	c.nfiles = 0;
	c.gen = st->gen;
	c.legacy = st->legacy;
	c.run_id = st->run_id;
	c.last_seq = st->last_seq;
	c.runs = st->runs;
	for (size_t i = 0; i < st->nfiles && c.nfiles < STATE_FILES_MAX; i++) {
		const struct store_file *f = &st->files[i];
		struct state_file *sf = &c.files[c.nfiles++];
		snprintf(sf->metric, sizeof sf->metric, "%s", f->metric);
		sf->size = f->t[TIER_RAW].commit;
		sf->m1_size = f->t[TIER_1M].commit;
		sf->h1_size = f->t[TIER_1H].commit;
		sf->rolled = f->rolled_commit[0];
		sf->m1_rolled = f->rolled_commit[1];
		sf->newest = f->newest_commit;
	}
	if (state_write(st->state_fd, &c) < 0)
		return -1;
	st->gen = c.gen;
	st->legacy = 0;
	return 0;
}

/* The commit record written and synced now: for a metric's files closing,
 * which must be on disk before any row of the files after them. */
static int store_write_state_sync(struct store *st)
{
	if (store_write_state(st) < 0 || fdatasync(st->state_fd) < 0)
		return -1;
	return 0;
}

/* A metric's tier file open for appending, its header (the raw one, or
 * the rollups' made from it) written or checked the first time in this
 * run. -1 with errno. */
static int store_tier_open(struct store *st, struct store_file *f, int tier, const char *header)
{
	struct tier_file *tf = &f->t[tier];
	if (tf->fd >= 0 && tf->checked)
		return tf->fd;
	char name[PROTO_KEY_MAX + 8];
	snprintf(name, sizeof name, "%s.csv", f->metric);
	int dfd = store_tier_dir(st, tier, 1);
	if (dfd < 0)
		return -1;
	if (tf->checked) {
		/* Released after an earlier batch: open it again. */
		tf->fd = safefs_file_open(dfd, name, O_RDWR | O_APPEND);
		if (tf->fd >= 0) {
			atomic_fetch_add(&store_fds, 1);
			return tf->fd;
		}
		if (errno != ENOENT)
			return -1;
		tf->checked = 0;
	}
	char rheader[PROTO_MAX_FIELDS * 3 * (PROTO_KEY_MAX + 6) + 128];
	if (tier != TIER_RAW && rollup_header(header, f->instanced, rheader, sizeof rheader) < 0) {
		errno = EINVAL;
		return -1;
	}
	int moved = 0;
	int fd = csv_prepare(dfd, st->dir, name, tier == TIER_RAW ? header : rheader, &moved);
	if (fd < 0)
		return -1;
	atomic_fetch_add(&store_fds, 1);
	store_fd_close(&tf->fd);
	tf->fd = fd;
	off_t end = lseek(fd, 0, SEEK_END);
	tf->size = end > 0 ? end : 0;
	if (moved || tf->commit > (uint64_t)tf->size) {
		/* A new file: the record names its header, not the old rows. */
		tf->commit = (uint64_t)tf->size;
		if (tier < TIER_1H) {
			f->rolled[tier] = f->rolled_commit[tier] = 0;
			f->open[tier] = 0;
		}
		if (store_write_state_sync(st) < 0)
			return -1;
	}
	tf->checked = 1;
	tf->dirty = 1;
	return fd;
}

/* Fold the rows of tier level past rolled[level] into the next tier and
 * append them there; after minute rows of an hour not in progress, fold
 * those into hour rows too. With final, every bucket is written (the
 * files are closing). header: the raw header. 0 or -1 (errno). */
static int store_roll(struct store *st, struct store_file *f, int level, int final,
                      const char *header)
{
	struct tier_file *src = &f->t[level];
	if ((off_t)f->rolled[level] >= src->size && src->size > 0) {
		f->open[level] = 0;
		return 0;
	}
	char name[PROTO_KEY_MAX + 8];
	snprintf(name, sizeof name, "%s.csv", f->metric);
	/* Through the descriptor the store writes with when it holds one. */
	int dfd = src->fd >= 0 ? -1 : store_tier_dir(st, level, 0);
	struct csvread *r = src->fd >= 0 ? csvread_fd(src->fd, src->size)
	                    : dfd < 0    ? NULL
	                                 : csvread_open(dfd, name);
	if (!r) {
		if (errno != ENOENT)
			return -1;
		f->open[level] = 0;
		return 0;
	}
	struct rowbuf out = {0};
	struct rollup_state rs;
	off_t from = (off_t)f->rolled[level];
	if (src->size - from > 1024 * 1024)
		log_notice("store", "host %s: rolling up %lld bytes of %s%s%s", st->name,
		           (long long)(src->size - from), level ? tier_folder[level] : "",
		           level ? "/" : "", name);
	int rc = rollup_fold(r, level, f->instanced, from, src->size, final, &out, &rs);
	csvread_close(r);
	if (rc < 0)
		return -1;
	if (out.len > 0) {
		int fd = store_tier_open(st, f, level + 1, header);
		if (fd < 0 || util_write_all(fd, out.data, out.len) < 0) {
			rowbuf_free(&out);
			return -1;
		}
		f->t[level + 1].size += (off_t)out.len;
		f->t[level + 1].dirty = 1;
	}
	rowbuf_free(&out);
	f->rolled[level] = (uint64_t)rs.rolled;
	f->open[level] = rs.open;
	f->bucket[level] = rs.open_bucket;
	if (level == 0 && rs.wrote && !final) {
		uint64_t w = rollup_width(ROLLUP_HOUR);
		if (!f->open[1] || rs.lo - rs.lo % w != f->bucket[1] ||
		    rs.hi - rs.hi % w != f->bucket[1])
			return store_roll(st, f, 1, 0, header);
	}
	return 0;
}

/* A month number of a time, to tell when the hour file closes. */
static long store_month(uint64_t t)
{
	time_t s = (time_t)(t / 1000);
	struct tm tm;
	if (!gmtime_r(&s, &tm))
		return 0;
	return (long)tm.tm_year * 12 + tm.tm_mon;
}

/* Close a metric's open files: the first ntiers of raw, minute, hour (the
 * others stay open). Every bucket is written, the files synced, the record
 * committed and synced, the files renamed "<metric>.<ms>.csv" for the
 * housekeeper, and the record committed again with them gone, before any
 * row of the next files. header: the files' raw header. 0 or -1 (errno). */
static int store_rotate(struct store *st, struct store_file *f, int ntiers, const char *header)
{
	for (int t = 0; t < TIERS; t++)
		if ((uint64_t)f->t[t].size != f->t[t].commit && f->t[t].checked) {
			errno = EINVAL; /* rows of this very batch are in it */
			return -1;
		}
	if (store_roll(st, f, 0, 1, header) < 0 || store_roll(st, f, 1, 1, header) < 0)
		return -1;
	char name[PROTO_KEY_MAX + 8], aside[PROTO_KEY_MAX + 40];
	snprintf(name, sizeof name, "%s.csv", f->metric);
	for (int t = 0; t < TIERS; t++) {
		struct tier_file *tf = &f->t[t];
		if (tf->dirty && tf->fd >= 0 && fdatasync(tf->fd) < 0)
			return -1;
		tf->dirty = 0;
		tf->commit = (uint64_t)tf->size;
	}
	f->rolled_commit[0] = f->rolled[0];
	f->rolled_commit[1] = f->rolled[1];
	f->newest_commit = f->newest;
	if (store_write_state_sync(st) < 0)
		return -1;
	int rc = 0;
	for (int t = 0; t < ntiers; t++) {
		int dfd = store_tier_dir(st, t, 0);
		if (dfd < 0 && errno == ENOENT)
			continue;
		if (dfd < 0 ||
		    (csv_move_aside(dfd, name, aside, sizeof aside) < 0 && errno != ENOENT) ||
		    fsync(dfd) < 0) {
			rc = -1;
			break;
		}
		struct tier_file *tf = &f->t[t];
		store_fd_close(&tf->fd);
		tf->checked = 0;
		tf->size = 0;
		tf->commit = 0;
		if (t < TIER_1H) {
			f->rolled[t] = f->rolled_commit[t] = 0;
			f->open[t] = 0;
		}
	}
	f->newest = f->newest_commit = 0;
	int saved = errno;
	if (store_write_state_sync(st) < 0)
		return -1;
	errno = saved;
	return rc;
}

/* The metric's files for a group, opened (and the raw header checked) the
 * first time in this run, and opened again after a release. Files with
 * other columns (an agent upgrade) are closed first. NULL on error. */
static struct store_file *store_file_for(struct store *st, const struct proto_group *g,
                                         const char *header)
{
	struct store_file *f = NULL;
	for (size_t i = 0; i < st->nfiles && !f; i++)
		if (strcmp(st->files[i].metric, g->metric) == 0)
			f = &st->files[i];
	uint64_t shape = header_hash(header);
	if (!f && !(f = store_add_file(st, g->metric)))
		return NULL;
	struct tier_file *raw = &f->t[TIER_RAW];
	if (raw->checked && f->shape == shape)
		return store_tier_open(st, f, TIER_RAW, header) < 0 ? NULL : f;
	/* What the files hold now, to fold and close them when it is not this. */
	char name[PROTO_KEY_MAX + 8], first[4096];
	snprintf(name, sizeof name, "%s.csv", g->metric);
	int dfd = store_dir(st);
	if (dfd < 0)
		return NULL;
	int fd = safefs_file_open(dfd, name, O_RDONLY);
	ssize_t n = 0;
	if (fd >= 0) {
		n = pread(fd, first, sizeof first - 1, 0);
		close(fd);
	} else if (errno != ENOENT) {
		return NULL;
	}
	if (n > 0) {
		first[n] = '\0';
		first[strcspn(first, "\r\n")] = '\0';
		if (strcmp(first, header) != 0) {
			struct series_columns cols;
			if (!raw->checked)
				f->instanced =
				    series_columns_parse(first, -1, &cols) == 0 && cols.inst_key[0];
			log_notice("store",
			           "%s/%s: columns changed from \"%s\" to \"%s\"; its rows so far "
			           "stay readable",
			           st->dir, name, first, header);
			if (store_rotate(st, f, TIERS, first) < 0)
				return NULL;
		}
	}
	f->shape = shape;
	f->instanced = g->inst_key[0] != '\0';
	raw->checked = 0;
	return store_tier_open(st, f, TIER_RAW, header) < 0 ? NULL : f;
}

/* Remember a file's state before the batch writes to it, once per batch,
 * so the batch can be undone. */
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
	struct store_undo *u = &st->undo[st->nundo++];
	const struct store_file *f = &st->files[file];
	u->file = file;
	for (int t = 0; t < TIERS; t++)
		u->size[t] = f->t[t].size;
	memcpy(u->rolled, f->rolled, sizeof u->rolled);
	memcpy(u->bucket, f->bucket, sizeof u->bucket);
	memcpy(u->open, f->open, sizeof u->open);
	u->newest = f->newest;
	return 0;
}

/* Cut every file the batch touched back to where it ended before, so a
 * batch is stored whole or not at all (and can be resent without
 * duplicating rows), rollups included. */
void store_batch_abort(struct store *st)
{
	int saved = errno;
	for (size_t i = 0; i < st->nundo; i++) {
		struct store_file *f = &st->files[st->undo[i].file];
		const struct store_undo *was = &st->undo[i];
		for (int t = 0; t < TIERS; t++) {
			struct tier_file *tf = &f->t[t];
			if (tf->size != was->size[t] && tf->fd >= 0 &&
			    ftruncate(tf->fd, was->size[t]) < 0)
				log_err("store", "host %s: cannot undo a partial batch: %s",
				        st->name, strerror(errno));
			tf->size = was->size[t];
		}
		memcpy(f->rolled, was->rolled, sizeof f->rolled);
		memcpy(f->open, was->open, sizeof f->open);
		memcpy(f->bucket, was->bucket, sizeof f->bucket);
		f->newest = was->newest;
	}
	st->nundo = 0;
	errno = saved;
}

/* The time a row is stored at: its own, or the server's when its own is
 * one no clock in service gives (docs/STORAGE.md). */
static uint64_t store_row_time(struct store *st, uint64_t t, uint64_t now)
{
	if (t >= STORE_TIME_MIN && t <= now + STORE_TIME_AHEAD)
		return t;
	st->retimed_rows++;
	if (!st->retiming)
		log_warn("store",
		         "host %s: a row is stamped %llu, which no working clock gives; storing "
		         "such rows at the server's time",
		         st->name, (unsigned long long)t);
	st->retiming = 1;
	st->retimed = 1;
	return now;
}

/* Append the group's rows with one write, closing the metric's day first
 * when they are of a later one, and fold them into the rollups. */
int store_write_group(struct store *st, const struct proto_group *g)
{
	char file[PROTO_KEY_MAX + 8], header[2048];
	snprintf(file, sizeof file, "%s.csv", g->metric);
	group_header(g, header, sizeof header);
	struct store_file *f = store_file_for(st, g, header);
	if (!f)
		return store_fail(st, file, STORE_UNACKED);
	uint64_t now = util_now_ms(), newest = 0;
	uint64_t *times = malloc((g->nrows ? g->nrows : 1) * sizeof *times);
	if (!times) {
		errno = ENOMEM;
		return store_fail(st, file, STORE_UNACKED);
	}
	uint64_t oldest = UINT64_MAX;
	for (uint32_t r = 0; r < g->nrows; r++) {
		times[r] = store_row_time(st, g->rows[r].time_ms, now);
		if (times[r] > newest)
			newest = times[r];
		if (times[r] < oldest)
			oldest = times[r];
	}
	if (f->newest == 0 && f->t[TIER_RAW].size > 0)
		f->newest = f->newest_commit = store_tail_time(store_dir(st), file);
	if (f->newest && newest / STORE_DAY_MS > f->newest / STORE_DAY_MS) {
		int ntiers = store_month(newest) > store_month(f->newest) ? TIERS : TIER_1H;
		if (store_rotate(st, f, ntiers, header) < 0 ||
		    store_tier_open(st, f, TIER_RAW, header) < 0) {
			free(times);
			return store_fail(st, file, STORE_UNACKED);
		}
	}
	char inst[PROTO_INST_MAX * 2 + 3];
	struct rowbuf b = {0};
	int rc = 0, roll = !f->open[0];
	uint64_t w = rollup_width(ROLLUP_MINUTE);
	/* A minute is written once rows of another arrive, but not before
	 * the host's moment in the minute after it: hosts share a clock, and
	 * all writing at once would stall their workers. Until then readers
	 * take the minute from the raw rows. */
	int due = !f->open[0] || now >= f->bucket[0] + w + st->fold_delay;
	for (uint32_t r = 0; r < g->nrows && rc == 0; r++) {
		const struct proto_row *row = &g->rows[r];
		uint64_t t = times[r];
		roll |= due && t - t % w != f->bucket[0];
		rc = rowbuf_printf(&b, "%llu", (unsigned long long)t);
		if (g->inst_key[0]) {
			store_csv_field(inst, sizeof inst, row->instance);
			rc |= rowbuf_printf(&b, ",%s", inst);
		}
		for (unsigned i = 0; i < g->nfields && rc == 0; i++) {
			char num[UTIL_DOUBLE_MAX];
			util_format_double(num, row->values[i]);
			rc = rowbuf_printf(&b, ",%s", num);
		}
		rc |= rowbuf_printf(&b, "\n");
	}
	free(times);
	if (rc < 0) {
		rowbuf_free(&b);
		errno = ENOMEM;
		return store_fail(st, file, STORE_UNACKED);
	}
	struct tier_file *raw = &f->t[TIER_RAW];
	if (store_note_undo(st, (size_t)(f - st->files)) < 0 ||
	    util_write_all(raw->fd, b.data, b.len) < 0) {
		rowbuf_free(&b);
		return store_fail(st, file, STORE_UNACKED);
	}
	raw->size += (off_t)b.len;
	raw->dirty = 1;
	rowbuf_free(&b);
	/* Rows older than the latest before them (a backlog, a clock stepped
	 * back): the bucket left open is not the latest written, which is how
	 * readers tell the buckets still open. Write every bucket now; later
	 * rows of one add a row that readers merge. */
	int disorder = f->newest && oldest < f->newest;
	if (newest > f->newest)
		f->newest = newest;
	if (roll && store_roll(st, f, 0, 0, header) < 0)
		return store_fail(st, file, STORE_UNACKED);
	if (disorder &&
	    (store_roll(st, f, 0, 1, header) < 0 || store_roll(st, f, 1, 1, header) < 0))
		return store_fail(st, file, STORE_UNACKED);
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
		rc = util_write_all(fd, buf, len + 1);
		free(buf);
	}
	close(fd);
	store_release(st);
	return rc < 0 ? store_fail(st, "events.csv", STORE_NO_EVENT) : 0;
}

/* Close the files of metrics the batch had no rows for whose latest row
 * is of a day before the batch's (a check removed, a disk gone): they
 * would otherwise stay open, uncompressed and never expire. */
static void store_close_idle(struct store *st, uint64_t newest)
{
	char name[PROTO_KEY_MAX + 8], header[4096];
	for (size_t i = 0; i < st->nfiles; i++) {
		struct store_file *f = &st->files[i];
		int written = 0;
		for (size_t u = 0; u < st->nundo; u++)
			written |= st->undo[u].file == i;
		if (written || f->t[TIER_RAW].size == 0)
			continue;
		snprintf(name, sizeof name, "%s.csv", f->metric);
		int dfd = store_dir(st);
		if (f->newest == 0)
			f->newest = f->newest_commit = store_tail_time(dfd, name);
		if (f->newest == 0 || f->newest / STORE_DAY_MS >= newest / STORE_DAY_MS)
			continue;
		int fd = dfd < 0 ? -1 : safefs_file_open(dfd, name, O_RDONLY);
		ssize_t n = fd < 0 ? -1 : pread(fd, header, sizeof header - 1, 0);
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		header[n] = '\0';
		header[strcspn(header, "\r\n")] = '\0';
		if (!f->t[TIER_RAW].checked) {
			struct series_columns cols;
			f->instanced =
			    series_columns_parse(header, -1, &cols) == 0 && cols.inst_key[0];
		}
		int ntiers = store_month(newest) > store_month(f->newest) ? TIERS : TIER_1H;
		uint64_t last = f->newest;
		if (store_rotate(st, f, ntiers, header) < 0)
			log_err("store", "host %s: cannot close %s/%s, whose rows stopped: %s",
			        st->name, st->dir, name, strerror(errno));
		else
			log_info("store", "host %s: closed %s/%s: no rows since %llu", st->name,
			         st->dir, name, (unsigned long long)last);
	}
}

/* The batch (run_id, seq) is whole in the files: it becomes the commit
 * record, kept in memory until store_persist writes it. */
void store_batch_done(struct store *st, uint64_t run_id, uint64_t seq)
{
	st->run_id = run_id;
	st->last_seq = seq;
	runs_stored(&st->runs, run_id, seq);
	for (size_t i = 0; i < st->nfiles; i++) {
		struct store_file *f = &st->files[i];
		for (int t = 0; t < TIERS; t++)
			f->t[t].commit = (uint64_t)f->t[t].size;
		f->rolled_commit[0] = f->rolled[0];
		f->rolled_commit[1] = f->rolled[1];
		f->newest_commit = f->newest;
	}
	uint64_t newest = 0;
	for (size_t u = 0; u < st->nundo; u++)
		if (st->files[st->undo[u].file].newest > newest)
			newest = st->files[st->undo[u].file].newest;
	if (newest)
		store_close_idle(st, newest);
	st->nundo = 0;
	st->persisted = 0;
	/* A batch without implausible times ends a streak of them. */
	st->retiming = st->retimed;
	st->retimed = 0;
}

/* Write the commit record; with sync, the data reaches the disk before the
 * record and the record before this returns. 0 or -1. */
int store_persist(struct store *st, int sync)
{
	if (sync) {
		for (size_t i = 0; i < st->nfiles; i++) {
			struct store_file *f = &st->files[i];
			for (int t = 0; t < TIERS; t++) {
				struct tier_file *tf = &f->t[t];
				if (!tf->dirty)
					continue;
				char name[PROTO_KEY_MAX + 8];
				snprintf(name, sizeof name, "%s.csv", f->metric);
				if (tf->fd < 0) {
					int dfd = store_tier_dir(st, t, 0);
					tf->fd = dfd < 0 ? -1
					                 : safefs_file_open(dfd, name,
					                                    O_RDWR | O_APPEND);
					if (tf->fd >= 0)
						atomic_fetch_add(&store_fds, 1);
				}
				if (tf->fd < 0 || fdatasync(tf->fd) < 0)
					return store_fail(st, name, STORE_UNACKED);
				tf->dirty = 0;
			}
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

/* Rows stored at the server's time since the last call. */
uint64_t store_take_retimed(struct store *st)
{
	uint64_t n = st->retimed_rows;
	st->retimed_rows = 0;
	return n;
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
