/* A host's commit record in two checksummed slots.
 *
 * Slot layout, big-endian, STATE_SLOT bytes, zero-padded:
 *   0  magic "PMST"       4  version u32 = 1     8  gen u64
 *  16  run_id u64        24  last_seq u64       32  nfiles u32
 *  36  nfiles x { metric name, 32 bytes NUL-padded; size u64 }
 *  36 + 40 * nfiles: CRC-32 u32 of every byte before it.
 * Slot gen % 2 is at offset (gen % 2) * STATE_SLOT. */
#include "state.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define STATE_MAGIC    0x504d5354u /* "PMST" */
#define STATE_VERSION  1
#define STATE_FILE_REC 40

/* Encode s into one slot. */
void state_encode(const struct state *s, uint8_t slot[STATE_SLOT])
{
	memset(slot, 0, STATE_SLOT);
	util_put_be32(slot, STATE_MAGIC);
	util_put_be32(slot + 4, STATE_VERSION);
	util_put_be64(slot + 8, s->gen);
	util_put_be64(slot + 16, s->run_id);
	util_put_be64(slot + 24, s->last_seq);
	uint32_t n = s->nfiles > STATE_FILES_MAX ? STATE_FILES_MAX : s->nfiles;
	util_put_be32(slot + 32, n);
	uint8_t *p = slot + 36;
	for (uint32_t i = 0; i < n; i++, p += STATE_FILE_REC) {
		memcpy(p, s->files[i].metric, strnlen(s->files[i].metric, PROTO_KEY_MAX));
		util_put_be64(p + 32, s->files[i].size);
	}
	util_put_be32(p, util_crc32(0, slot, (size_t)(p - slot)));
}

/* Decode one slot after checking magic, version, count and CRC. */
int state_decode(const uint8_t *slot, size_t len, struct state *s)
{
	if (len < 40 || util_get_be32(slot) != STATE_MAGIC ||
	    util_get_be32(slot + 4) != STATE_VERSION)
		return -1;
	uint32_t n = util_get_be32(slot + 32);
	size_t end = 36 + (size_t)n * STATE_FILE_REC;
	if (n > STATE_FILES_MAX || end + 4 > len)
		return -1;
	if (util_crc32(0, slot, end) != util_get_be32(slot + end))
		return -1;
	s->gen = util_get_be64(slot + 8);
	s->run_id = util_get_be64(slot + 16);
	s->last_seq = util_get_be64(slot + 24);
	s->nfiles = n;
	const uint8_t *p = slot + 36;
	for (uint32_t i = 0; i < n; i++, p += STATE_FILE_REC) {
		memcpy(s->files[i].metric, p, PROTO_KEY_MAX);
		s->files[i].metric[PROTO_KEY_MAX] = '\0';
		s->files[i].size = util_get_be64(p + 32);
	}
	return 0;
}

/* Newest valid slot of the two. */
int state_read(int fd, struct state *s)
{
	static _Thread_local uint8_t buf[2 * STATE_SLOT];
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	if (n < 0)
		return -1;
	struct state a, b;
	int ok_a = n >= STATE_SLOT && state_decode(buf, STATE_SLOT, &a) == 0;
	int ok_b = n >= 2 * STATE_SLOT && state_decode(buf + STATE_SLOT, STATE_SLOT, &b) == 0;
	if (ok_a && (!ok_b || a.gen >= b.gen))
		*s = a;
	else if (ok_b)
		*s = b;
	else
		return 1;
	return 0;
}

/* Write the next generation into the other slot. */
int state_write(int fd, struct state *s)
{
	static _Thread_local uint8_t slot[STATE_SLOT];
	s->gen++;
	state_encode(s, slot);
	off_t off = (off_t)(s->gen % 2) * STATE_SLOT;
	ssize_t n = pwrite(fd, slot, STATE_SLOT, off);
	if (n == STATE_SLOT)
		return 0;
	if (n >= 0)
		errno = ENOSPC;
	return -1;
}
