/* Reading CSV files that workers append to: the size at open bounds what
 * is read, and a last line without its newline (a row being written) is
 * never returned. The same reader runs over a buffer in memory (a
 * decompressed segment): its window then points into the buffer instead
 * of being read into. Each reader is used by one thread. */
#include "csvread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safefs.h"

/* Buffer size, and so the longest line read (longer ones are skipped). */
#define CSVREAD_BUF (64 * 1024)

/* Below this many bytes the binary search gives way to reading forward. */
#define CSVREAD_LINEAR 4096

struct csvread {
	int fd;          /* -1 when reading memory */
	int fd_borrowed; /* fd is the caller's: not closed */
	const char *mem; /* the bytes read, when not a file */
	char *mem_owned; /* mem, when the reader frees it */
	off_t size;      /* the file's size when opened */
	off_t data;      /* where the first row starts */
	char *header;
	const char *buf; /* the window: own, or a part of mem */
	off_t buf_off;   /* file offset of buf[0] */
	size_t buf_len;
	char own[]; /* CSVREAD_BUF bytes for a file */
};

/* Load the buffer with the bytes from off on, up to end at most; -1 on a
 * read error. */
static int csvread_fill(struct csvread *r, off_t off, off_t end)
{
	size_t want = (size_t)(end - off < CSVREAD_BUF ? end - off : CSVREAD_BUF);
	ssize_t n;
	if (r->mem) {
		r->buf = r->mem + off;
		r->buf_off = off;
		r->buf_len = want;
		return 0;
	}
	do
		n = pread(r->fd, r->own, want, off);
	while (n < 0 && errno == EINTR);
	r->buf_off = off;
	r->buf_len = n > 0 ? (size_t)n : 0;
	return n < 0 ? -1 : 0;
}

/* Read the header line of a reader whose fd or mem and size are set:
 * 0, or -1 (errno set). */
static int csvread_start(struct csvread *r)
{
	r->buf_off = 0;
	r->buf_len = 0;
	const char *line;
	size_t len;
	int rc = csvread_line(r, 0, &line, &len, &r->data);
	if (rc < 0)
		return -1;
	if (rc == 0 || !line) {
		len = 0;
		r->data = r->size;
	}
	r->header = malloc(len + 1);
	if (!r->header)
		return -1;
	memcpy(r->header, line, len);
	r->header[len] = '\0';
	return 0;
}

/* A reader over the caller's descriptor, up to size bytes. */
struct csvread *csvread_fd(int fd, off_t size)
{
	struct csvread *r = malloc(sizeof *r + CSVREAD_BUF);
	if (!r)
		return NULL;
	r->mem = NULL;
	r->mem_owned = NULL;
	r->buf = r->own;
	r->fd = fd;
	r->fd_borrowed = 1;
	r->size = size;
	if (csvread_start(r) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

/* Open the file, never through a link, and keep its header. */
struct csvread *csvread_open(int dirfd, const char *name)
{
	struct csvread *r = malloc(sizeof *r + CSVREAD_BUF);
	if (!r)
		return NULL;
	r->mem = NULL;
	r->mem_owned = NULL;
	r->fd_borrowed = 0;
	r->buf = r->own;
	r->fd = safefs_file_open(dirfd, name, O_RDONLY);
	struct stat sb;
	if (r->fd < 0 || fstat(r->fd, &sb) < 0)
		goto fail;
	r->size = sb.st_size;
	if (csvread_start(r) < 0)
		goto fail;
	return r;
fail:
	if (r->fd >= 0) {
		int saved = errno;
		close(r->fd);
		errno = saved;
	}
	free(r);
	return NULL;
}

/* A reader over the caller's bytes; nothing is copied. */
struct csvread *csvread_mem(const char *buf, size_t len)
{
	struct csvread *r = malloc(sizeof *r);
	if (!r)
		return NULL;
	r->fd = -1;
	r->fd_borrowed = 0;
	r->mem = buf;
	r->mem_owned = NULL;
	r->buf = buf;
	r->size = (off_t)len;
	if (csvread_start(r) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

/* Close and free. */
void csvread_close(struct csvread *r)
{
	if (!r)
		return;
	if (r->fd >= 0 && !r->fd_borrowed)
		close(r->fd);
	free(r->mem_owned);
	free(r->header);
	free(r);
}

/* From now on the reader frees its bytes. */
void csvread_own(struct csvread *r, char *buf)
{
	r->mem_owned = buf;
}

/* Let r close its descriptor: one that csvread_fd borrowed becomes its own. */
void csvread_own_fd(struct csvread *r)
{
	r->fd_borrowed = 0;
}

/* The header line. */
const char *csvread_header(const struct csvread *r)
{
	return r->header;
}

/* Where the rows start. */
off_t csvread_data(const struct csvread *r)
{
	return r->data;
}

/* A line longer than the buffer: find where the next one starts. */
static int csvread_skip_long(struct csvread *r, off_t off, const char **line, size_t *len,
                             off_t *next)
{
	for (;;) {
		if (csvread_fill(r, off, r->size) < 0)
			return -1;
		if (r->buf_len == 0)
			return 0;
		const char *nl = memchr(r->buf, '\n', r->buf_len);
		if (nl) {
			*line = NULL;
			*len = 0;
			*next = off + (nl - r->buf) + 1;
			return 1;
		}
		off += (off_t)r->buf_len;
	}
}

/* The complete line at off, from the buffer when it holds it. */
int csvread_line(struct csvread *r, off_t off, const char **line, size_t *len, off_t *next)
{
	if (off < 0 || off >= r->size)
		return 0;
	if ((off < r->buf_off || off >= r->buf_off + (off_t)r->buf_len) &&
	    csvread_fill(r, off, r->size) < 0)
		return -1;
	size_t skip = (size_t)(off - r->buf_off);
	const char *nl = memchr(r->buf + skip, '\n', r->buf_len - skip);
	if (!nl && skip > 0) {
		/* The line runs past the buffer: load it from its start. */
		if (csvread_fill(r, off, r->size) < 0)
			return -1;
		skip = 0;
		nl = memchr(r->buf, '\n', r->buf_len);
	}
	if (!nl) {
		if (r->buf_len < CSVREAD_BUF)
			return 0; /* the end, or a row still being written */
		return csvread_skip_long(r, off + (off_t)r->buf_len, line, len, next);
	}
	*line = r->buf + skip;
	*len = (size_t)(nl - *line);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	*next = off + (nl - (r->buf + skip)) + 1;
	return 1;
}

/* The first row starting at or after from_off and before hi whose time
 * parses: 1 with its start, time and end, or 0 when there is none. */
static int csvread_probe(struct csvread *r, off_t from_off, off_t hi, off_t *start, uint64_t *t,
                         off_t *next)
{
	const char *line;
	size_t len;
	off_t off;
	/* The line holding from_off - 1 ends where the next line starts. */
	if (csvread_line(r, from_off - 1, &line, &len, &off) <= 0)
		return 0;
	while (off < hi) {
		if (csvread_line(r, off, &line, &len, next) <= 0)
			return 0;
		if (line && csvread_time(line, len, t) == 0) {
			*start = off;
			return 1;
		}
		off = *next;
	}
	return 0;
}

/* Binary search on byte offsets, resynchronising on newlines, then read
 * forward over the last few rows. Rows before lo are all earlier than
 * from; the first row at or after from starts before hi or at it. */
off_t csvread_seek(struct csvread *r, uint64_t from)
{
	off_t lo = r->data, hi = r->size;
	while (hi - lo > CSVREAD_LINEAR) {
		off_t mid = lo + (hi - lo) / 2, start, next;
		uint64_t t;
		if (!csvread_probe(r, mid, hi, &start, &t, &next))
			hi = mid;
		else if (t < from)
			lo = next;
		else
			hi = start;
	}
	const char *line;
	size_t len;
	off_t next;
	uint64_t t;
	for (off_t off = lo; csvread_line(r, off, &line, &len, &next) > 0; off = next)
		if (line && csvread_time(line, len, &t) == 0 && t >= from)
			return off;
	return r->size;
}

/* Count newlines backwards from the end: the n-th last complete row starts
 * just after the (n+1)-th, the first one found ending the last complete
 * row. The header's newline bounds the search. */
off_t csvread_tail(struct csvread *r, size_t n)
{
	off_t pos = r->size, found = -1;
	size_t seen = 0;
	while (found < 0 && r->data > 0 && pos > r->data - 1) {
		off_t start = pos - CSVREAD_BUF < r->data - 1 ? r->data - 1 : pos - CSVREAD_BUF;
		if (csvread_fill(r, start, pos) < 0 || r->buf_len != (size_t)(pos - start))
			break;
		for (size_t i = r->buf_len; i-- > 0 && found < 0;)
			if (r->buf[i] == '\n' && ++seen == n + 1)
				found = start + (off_t)i + 1;
		pos = start;
	}
	r->buf_len = 0; /* the buffer may end short of the file's end */
	return found < 0 ? r->data : found;
}

/* One field, quoted or not, from *p; its text goes to *o. */
static int csvread_field(const char **p, const char *end, char **o)
{
	const char *s = *p;
	char *d = *o;
	if (s < end && *s == '"') {
		for (s++;; s++) {
			if (s >= end)
				return -1;
			if (*s == '"') {
				if (s + 1 < end && s[1] == '"')
					s++;
				else
					break;
			}
			*d++ = *s;
		}
		s++; /* the closing quote */
		while (s < end && *s != ',')
			*d++ = *s++; /* lenient: text after the quote */
	} else {
		while (s < end && *s != ',')
			*d++ = *s++;
	}
	*d++ = '\0';
	*p = s;
	*o = d;
	return 0;
}

/* Split a CSV line into unquoted, NUL-terminated fields. */
/* Split up to max fields; past them, -1 when strict, else stop. */
static int csvread_split_upto(const char *line, size_t len, char *out, char **fields, int max,
                              int strict)
{
	const char *p = line, *end = line + len;
	int n = 0;
	for (;;) {
		if (n == max)
			return strict ? -1 : n;
		fields[n++] = out;
		if (csvread_field(&p, end, &out) < 0)
			return -1;
		if (p >= end)
			return n;
		p++; /* the comma */
	}
}

int csvread_split(const char *line, size_t len, char *out, char **fields, int max)
{
	return csvread_split_upto(line, len, out, fields, max, 1);
}

/* The first max fields only. */
int csvread_split_first(const char *line, size_t len, char *out, char **fields, int max)
{
	return csvread_split_upto(line, len, out, fields, max, 0);
}

/* Leading decimal time of a row. */
int csvread_time(const char *line, size_t len, uint64_t *t)
{
	uint64_t v = 0;
	size_t i = 0;
	for (; i < len && line[i] != ','; i++) {
		if (line[i] < '0' || line[i] > '9' || i >= 19)
			return -1;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (i == 0)
		return -1;
	*t = v;
	return 0;
}
