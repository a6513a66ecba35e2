/* Small helpers both daemons use: clocks, files, host names. */
#ifndef PIMON_UTIL_H
#define PIMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Wall clock, Unix milliseconds. */
uint64_t util_now_ms(void);

/* Monotonic clock, milliseconds. */
uint64_t util_mono_ms(void);

/* Read at most size-1 bytes of path into buf and NUL-terminate it.
 * Returns the length read, or -1 with errno set. */
ssize_t util_read_file(const char *path, char *buf, size_t size);

/* Join dir and name into out ("dir/name"); -1 if it does not fit. */
int util_path_join(char *out, size_t size, const char *dir, const char *name);

/* Create dir and its parents with mode 0755; 0 or -1 with errno set. */
int util_mkdirs(const char *dir);

/* Non-zero if s is a safe host name: 1..64 of [A-Za-z0-9._-], not starting
 * with '.' or '-'. Such a name can be used as a folder name. */
int util_valid_name(const char *s);

/* Non-zero if s is a safe metric or field key: 1..32 of [a-z0-9_]. */
int util_valid_key(const char *s);

/* Split "host:port" or "[v6]:port" into host and port. 0 or -1. */
int util_split_hostport(const char *s, char *host, size_t hostlen, int *port);

/* Longest text util_format_double writes, its NUL included. */
#define UTIL_DOUBLE_MAX 32

/* Write v into out (UTIL_DOUBLE_MAX bytes) in the shortest form strtod reads
 * back to the same bits: "inf" and "-inf" for infinities, "" for NaN. Returns
 * the length. */
int util_format_double(char *out, double v);

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32) of len bytes, continuing
 * from crc (0 to start). */
uint32_t util_crc32(uint32_t crc, const void *data, size_t len);

/* Write all len bytes to fd, again after EINTR and short writes. 0, or -1
 * with errno set (ENOSPC when a write wrote nothing). */
int util_write_all(int fd, const void *buf, size_t len);

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d, and the
 * date of such a day (H. Hinnant's algorithms). */
int64_t util_days_from_civil(int64_t y, unsigned m, unsigned d);
void util_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

/* Big-endian stores and loads, independent of alignment. */
void util_put_be32(uint8_t *p, uint32_t v);
void util_put_be64(uint8_t *p, uint64_t v);
uint32_t util_get_be32(const uint8_t *p);
uint64_t util_get_be64(const uint8_t *p);

#endif
