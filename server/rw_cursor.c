/* Cursor files of remote_write receivers.
 *
 * Text, one line per metric after a first line naming the format:
 *   pimon-rw-cursor 1
 *   <metric> closed <ms> <off>
 *   <metric> open <ino> <ms> <off>
 */
#include "rw_cursor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safefs.h"
#include "util.h"

#define RW_CURSOR_MAGIC "pimon-rw-cursor 1\n"
#define RW_CURSOR_TEXT  (RW_CURSOR_MAX * 96 + 32)

/* The text of n cursors. */
size_t rw_cursor_format(const struct rw_cursor *c, size_t n, char *out, size_t size)
{
	size_t len = (size_t)snprintf(out, size, "%s", RW_CURSOR_MAGIC);
	for (size_t i = 0; i < n && len < size; i++) {
		int w = c[i].closed
		            ? snprintf(out + len, size - len, "%s closed %" PRIu64 " %" PRIu64 "\n",
		                       c[i].metric, c[i].ms, c[i].off)
		            : snprintf(out + len, size - len,
		                       "%s open %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", c[i].metric,
		                       c[i].ino, c[i].ms, c[i].off);
		if (w < 0)
			return 0;
		len += (size_t)w;
	}
	return len < size ? len : 0;
}

/* A decimal u64 at *p, up to a space or newline; -1 when none. */
static int rw_cursor_u64(const char **p, const char *end, uint64_t *v)
{
	uint64_t x = 0;
	const char *s = *p;
	if (s >= end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		uint64_t d = (uint64_t)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	*p = s;
	return 0;
}

/* One line "<metric> closed|open ...", end at its newline. */
static int rw_cursor_line(const char *p, const char *end, struct rw_cursor *c)
{
	const char *sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp || sp == p || (size_t)(sp - p) > PROTO_KEY_MAX)
		return -1;
	memset(c, 0, sizeof *c);
	memcpy(c->metric, p, (size_t)(sp - p));
	if (!util_valid_key(c->metric))
		return -1;
	p = sp + 1;
	if ((size_t)(end - p) > 7 && memcmp(p, "closed ", 7) == 0) {
		c->closed = 1;
		p += 7;
	} else if ((size_t)(end - p) > 5 && memcmp(p, "open ", 5) == 0) {
		p += 5;
		if (rw_cursor_u64(&p, end, &c->ino) < 0 || p >= end || *p++ != ' ')
			return -1;
	} else {
		return -1;
	}
	if (rw_cursor_u64(&p, end, &c->ms) < 0 || p >= end || *p++ != ' ' ||
	    rw_cursor_u64(&p, end, &c->off) < 0)
		return -1;
	return p == end ? 0 : -1;
}

/* Parse a cursor file's text. */
int rw_cursor_parse(const char *text, size_t len, struct rw_cursor *c, size_t max, size_t *n)
{
	size_t ml = strlen(RW_CURSOR_MAGIC);
	if (len < ml || memcmp(text, RW_CURSOR_MAGIC, ml) != 0)
		return -1;
	const char *p = text + ml, *end = text + len;
	*n = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl || *n >= max || rw_cursor_line(p, nl, &c[*n]) < 0)
			return -1;
		for (size_t i = 0; i < *n; i++)
			if (strcmp(c[i].metric, c[*n].metric) == 0)
				return -1;
		(*n)++;
		p = nl + 1;
	}
	return 0;
}

/* Replace host's cursor file. */
int rw_cursor_save(int dirfd, const char *host, const struct rw_cursor *c, size_t n)
{
	char name[PROTO_NAME_MAX + 16], tmp[PROTO_NAME_MAX + 24];
	char *text = malloc(RW_CURSOR_TEXT);
	if (!text)
		return -1;
	size_t len = rw_cursor_format(c, n, text, RW_CURSOR_TEXT);
	snprintf(name, sizeof name, "%s%s", host, RW_CURSOR_EXT);
	snprintf(tmp, sizeof tmp, "%s.tmp", name);
	int fd = -1, rc = -1;
	if (!len) {
		errno = EOVERFLOW;
		goto out;
	}
	fd = safefs_file_open(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC);
	if (fd < 0 || util_write_all(fd, text, len) < 0 || fsync(fd) < 0)
		goto out;
	if (renameat(dirfd, tmp, dirfd, name) < 0 || fsync(dirfd) < 0)
		goto out;
	rc = 0;
out:
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	free(text);
	return rc;
}

/* Read host's cursor file. */
int rw_cursor_load(int dirfd, const char *host, struct rw_cursor *c, size_t max, size_t *n)
{
	char name[PROTO_NAME_MAX + 16];
	snprintf(name, sizeof name, "%s%s", host, RW_CURSOR_EXT);
	*n = 0;
	int fd = safefs_file_open(dirfd, name, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT ? 1 : -1;
	char *text = malloc(RW_CURSOR_TEXT);
	ssize_t len = text ? read(fd, text, RW_CURSOR_TEXT) : -1;
	int saved = errno;
	close(fd);
	int rc = -1;
	if (len >= 0 && len < RW_CURSOR_TEXT)
		rc = rw_cursor_parse(text, (size_t)len, c, max, n);
	else
		errno = len < 0 ? saved : EFBIG;
	if (rc < 0 && len >= 0)
		errno = EINVAL;
	free(text);
	return rc;
}
