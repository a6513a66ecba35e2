/* Per-host CSV files: one per metric, header first, rows appended. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

struct store_file {
	char metric[PROTO_KEY_MAX + 1];
	int fd; /* O_APPEND */
};

/* Where a file ended before the batch in progress wrote to it. */
struct store_undo {
	int fd;
	off_t size;
};

struct store {
	char dir[4096];
	char name[PROTO_NAME_MAX + 1];
	struct store_file *files;
	size_t nfiles;
	char *buf; /* one group's rows, formatted before a single write */
	size_t buflen, bufcap;
	struct store_undo *undo; /* files written by the batch in progress */
	size_t nundo, undocap;
	FILE *events;
	int failing; /* a write failed; cleared by the next success */
};

struct store_log {
	pthread_mutex_t lock;
	FILE *fp;
	char path[4096];
};

/* Create the host's folder and an empty file table. */
struct store *store_open(const char *data_dir, const char *name)
{
	struct store *st = calloc(1, sizeof *st);
	if (!st)
		return NULL;
	int n = snprintf(st->dir, sizeof st->dir, "%s/hosts/%s", data_dir, name);
	if (n < 0 || (size_t)n >= sizeof st->dir) {
		log_err("store", "host %s: data path too long", name);
		free(st);
		return NULL;
	}
	snprintf(st->name, sizeof st->name, "%s", name);
	if (util_mkdirs(st->dir) < 0) {
		log_err("store", "host %s: cannot create %s: %s", name, st->dir, strerror(errno));
		free(st);
		return NULL;
	}
	return st;
}

/* Flush and close everything the store holds. */
void store_close(struct store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->nfiles; i++)
		close(st->files[i].fd);
	if (st->events)
		fclose(st->events);
	free(st->files);
	free(st->buf);
	free(st->undo);
	free(st);
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

/* Open path for appending; write header if new or empty. When an existing
 * file has another header, move it aside so columns never mix. */
static FILE *open_csv(const char *path, const char *header)
{
	FILE *fp = fopen(path, "a+e");
	if (!fp)
		return NULL;
	char first[4096];
	rewind(fp);
	if (fgets(first, sizeof first, fp)) {
		first[strcspn(first, "\r\n")] = '\0';
		if (strcmp(first, header) == 0) {
			fseek(fp, 0, SEEK_END);
			return fp;
		}
		fclose(fp);
		char aside[4200];
		snprintf(aside, sizeof aside, "%s.%llu.old", path, (unsigned long long)util_now_ms());
		if (rename(path, aside) < 0)
			return NULL;
		log_notice("store", "%s had other columns; moved to %s", path, aside);
		fp = fopen(path, "a+e");
		if (!fp)
			return NULL;
	}
	fseek(fp, 0, SEEK_END);
	if (fprintf(fp, "%s\n", header) < 0) {
		fclose(fp);
		return NULL;
	}
	return fp;
}

/* The open file for a metric, opening it the first time; -1 on error. */
static int store_file_for(struct store *st, const struct proto_group *g)
{
	for (size_t i = 0; i < st->nfiles; i++)
		if (strcmp(st->files[i].metric, g->metric) == 0)
			return st->files[i].fd;
	char path[4200], header[2048];
	snprintf(path, sizeof path, "%s/%s.csv", st->dir, g->metric);
	group_header(g, header, sizeof header);
	FILE *fp = open_csv(path, header);
	if (!fp)
		return -1;
	if (fflush(fp) != 0) {
		fclose(fp);
		return -1;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	fclose(fp);
	if (fd < 0)
		return -1;
	struct store_file *nf = realloc(st->files, (st->nfiles + 1) * sizeof *nf);
	if (!nf) {
		close(fd);
		return -1;
	}
	st->files = nf;
	snprintf(st->files[st->nfiles].metric, sizeof st->files[0].metric, "%s", g->metric);
	st->files[st->nfiles].fd = fd;
	st->nfiles++;
	return fd;
}

/* Log a failure once per streak of failures. */
static int store_fail(struct store *st, const char *what)
{
	if (!st->failing)
		log_err("store", "host %s: %s: %s", st->name, what, strerror(errno));
	st->failing = 1;
	return -1;
}

/* Append printf-style text to the row buffer; -1 when out of memory. */
__attribute__((format(printf, 2, 3))) static int buf_printf(struct store *st, const char *fmt, ...)
{
	for (;;) {
		size_t room = st->bufcap - st->buflen;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(st->buf ? st->buf + st->buflen : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < room) {
			st->buflen += (size_t)n;
			return 0;
		}
		size_t cap = st->bufcap ? st->bufcap * 2 : 16384;
		while (cap - st->buflen <= (size_t)n)
			cap *= 2;
		char *nb = realloc(st->buf, cap);
		if (!nb)
			return -1;
		st->buf = nb;
		st->bufcap = cap;
	}
}

/* Remember where fd ends, once per batch, so the batch can be undone. */
static int store_note_undo(struct store *st, int fd)
{
	for (size_t i = 0; i < st->nundo; i++)
		if (st->undo[i].fd == fd)
			return 0;
	if (st->nundo == st->undocap) {
		size_t cap = st->undocap ? st->undocap * 2 : 8;
		struct store_undo *nu = realloc(st->undo, cap * sizeof *nu);
		if (!nu)
			return -1;
		st->undo = nu;
		st->undocap = cap;
	}
	off_t size = lseek(fd, 0, SEEK_END);
	if (size < 0)
		return -1;
	st->undo[st->nundo].fd = fd;
	st->undo[st->nundo].size = size;
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
	for (size_t i = 0; i < st->nundo; i++)
		if (ftruncate(st->undo[i].fd, st->undo[i].size) < 0)
			log_err("store", "host %s: cannot undo a partial batch: %s", st->name,
			        strerror(errno));
	st->nundo = 0;
	errno = saved;
}

/* Append the group's rows with one write. */
int store_write_group(struct store *st, const struct proto_group *g)
{
	int fd = store_file_for(st, g);
	if (fd < 0)
		return store_fail(st, g->metric);
	char inst[PROTO_INST_MAX * 2 + 3];
	st->buflen = 0;
	int rc = 0;
	for (uint32_t r = 0; r < g->nrows && rc == 0; r++) {
		const struct proto_row *row = &g->rows[r];
		rc = buf_printf(st, "%llu", (unsigned long long)row->time_ms);
		if (g->inst_key[0]) {
			store_csv_field(inst, sizeof inst, row->instance);
			rc |= buf_printf(st, ",%s", inst);
		}
		for (unsigned i = 0; i < g->nfields && rc == 0; i++) {
			if (isfinite(row->values[i]))
				rc = buf_printf(st, ",%.15g", row->values[i]);
			else
				rc = buf_printf(st, ",");
		}
		rc |= buf_printf(st, "\n");
	}
	if (rc < 0) {
		errno = ENOMEM;
		return store_fail(st, g->metric);
	}
	if (store_note_undo(st, fd) < 0 || write_all(fd, st->buf, st->buflen) < 0)
		return store_fail(st, g->metric);
	return 0;
}

/* Append one event line to the host's events.csv. */
int store_write_event(struct store *st, const char *line)
{
	if (!st->events) {
		char path[4200];
		snprintf(path, sizeof path, "%s/events.csv", st->dir);
		st->events = open_csv(path, STORE_HOST_EVENT_HEADER);
		if (!st->events)
			return store_fail(st, "events.csv");
	}
	if (fprintf(st->events, "%s\n", line) < 0 || fflush(st->events) != 0) {
		clearerr(st->events);
		return store_fail(st, "events.csv");
	}
	return 0;
}

/* A whole batch was written: a failure streak is over. */
void store_batch_done(struct store *st)
{
	st->nundo = 0;
	if (st->failing) {
		log_notice("store", "host %s: writing again", st->name);
		st->failing = 0;
	}
}

/* Open a shared log file such as <data_dir>/events.csv. */
struct store_log *store_log_open(const char *path, const char *header)
{
	struct store_log *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->fp = open_csv(path, header);
	if (!l->fp) {
		log_err("store", "cannot open %s: %s", path, strerror(errno));
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->lock, NULL);
	snprintf(l->path, sizeof l->path, "%s", path);
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
