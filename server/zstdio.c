/* zstd files: one frame per file written, any number of frames read (so a
 * file made by concatenating frames, as zstd(1) allows, reads too). */
#include "zstdio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "safefs.h"
#include "util.h"

/* Compress, write to a temporary file, sync, rename, sync the folder. */
int zstdio_save(int dirfd, const char *name, const void *data, size_t len)
{
	char tmp[512];
	int n = snprintf(tmp, sizeof tmp, "%s.tmp", name);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	size_t cap = ZSTD_compressBound(len);
	char *out = malloc(cap ? cap : 1);
	if (!out)
		return -1;
	size_t clen = ZSTD_compress(out, cap, data, len, ZSTDIO_LEVEL);
	if (ZSTD_isError(clen)) {
		free(out);
		errno = ENOMEM;
		return -1;
	}
	int fd = safefs_file_open(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC);
	int rc = -1;
	if (fd >= 0 && util_write_all(fd, out, clen) == 0 && fdatasync(fd) == 0 && close(fd) == 0) {
		fd = -1;
		if (renameat(dirfd, tmp, dirfd, name) == 0 && fsync(dirfd) == 0)
			rc = 0;
	}
	int saved = errno;
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
	free(out);
	errno = saved;
	return rc;
}

/* Read the compressed file, then decompress frame after frame into a
 * buffer grown as needed. */
int zstdio_load(int dirfd, const char *name, char **buf, size_t *len)
{
	*buf = NULL;
	*len = 0;
	int fd = safefs_file_open(dirfd, name, O_RDONLY);
	struct stat sb;
	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) < 0 || sb.st_size < 0 || (uint64_t)sb.st_size > ZSTDIO_MAX) {
		int saved = sb.st_size > 0 ? EFBIG : errno;
		close(fd);
		errno = saved;
		return -1;
	}
	size_t clen = (size_t)sb.st_size;
	char *in = malloc(clen ? clen : 1);
	size_t got = 0;
	while (in && got < clen) {
		ssize_t n = read(fd, in + got, clen - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	int saved = errno;
	close(fd);
	if (!in || got < clen) {
		free(in);
		errno = in ? (saved ? saved : EIO) : ENOMEM;
		return -1;
	}
	ZSTD_DStream *ds = ZSTD_createDStream();
	size_t cap = clen * 4 + 4096, olen = 0;
	char *out = ds ? malloc(cap + 1) : NULL;
	int err = out ? 0 : ENOMEM;
	ZSTD_inBuffer ib = {in, clen, 0};
	size_t last = 1; /* 0 once a frame is complete */
	while (!err && ib.pos < ib.size) {
		if (olen == cap) {
			if (cap >= ZSTDIO_MAX) {
				err = EFBIG;
				break;
			}
			size_t ncap = cap * 2 > ZSTDIO_MAX ? ZSTDIO_MAX : cap * 2;
			char *nb = realloc(out, ncap + 1);
			if (!nb) {
				err = ENOMEM;
				break;
			}
			out = nb;
			cap = ncap;
		}
		ZSTD_outBuffer ob = {out, cap, olen};
		last = ZSTD_decompressStream(ds, &ob, &ib);
		if (ZSTD_isError(last))
			err = EILSEQ;
		olen = ob.pos;
	}
	/* Input ended inside a frame: truncated. */
	if (!err && last != 0 && clen > 0)
		err = EILSEQ;
	ZSTD_freeDStream(ds);
	free(in);
	if (err) {
		free(out);
		errno = err;
		return -1;
	}
	out[olen] = '\0';
	*buf = out;
	*len = olen;
	return 0;
}
