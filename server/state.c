/* A host's commit record in two checksummed slots.
 *
 * Slot layout, big-endian, STATE_SLOT bytes, zero-padded:
 *   0  magic "PMST"       4  version u32 = 3     8  gen u64
 *  16  run_id u64        24  last_seq u64       32  nfiles u32
 *  36  nfiles x { metric name, 32 bytes NUL-padded; size, rolled,
 *      m1_size, m1_rolled, h1_size, newest: u64 each }
 *   then nruns u32, nruns x { run_id u64; seq u64 }, most recent first
 *   then CRC-32 u32 of every byte before it.
 * Slot gen % 2 is at offset (gen % 2) * STATE_SLOT.
 *
 * Versions 1 and 2 (4096-byte slots at 0 and 4096; file records of name
 * and size only; version 1 without runs, its one run the record's) are
 * read too. The first version 3 record after one goes to the slot at
 * STATE_SLOT, which overlaps neither old slot, so a torn write there
 * leaves the old record readable. */
#include "state.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define STATE_MAGIC       0x504d5354u /* "PMST" */
#define STATE_VERSION     3
#define STATE_FILE_REC    80
#define STATE_FILE_REC_V2 40
#define STATE_RUN_REC     16

_Static_assert(36 + STATE_FILES_MAX * STATE_FILE_REC + 4 + RUNS_MAX * STATE_RUN_REC + 4 <=
                   STATE_SLOT,
               "a full commit record fits its slot");

/* Encode s into one slot. */
size_t state_encode(const struct state *s, uint8_t slot[STATE_SLOT])
{
	memset(slot, 0, 36);
	util_put_be32(slot, STATE_MAGIC);
	util_put_be32(slot + 4, STATE_VERSION);
	util_put_be64(slot + 8, s->gen);
	util_put_be64(slot + 16, s->run_id);
	util_put_be64(slot + 24, s->last_seq);
	uint32_t n = s->nfiles > STATE_FILES_MAX ? STATE_FILES_MAX : s->nfiles;
	util_put_be32(slot + 32, n);
	uint8_t *p = slot + 36;
	for (uint32_t i = 0; i < n; i++, p += STATE_FILE_REC) {
		const struct state_file *f = &s->files[i];
		memset(p, 0, 32);
		memcpy(p, f->metric, strnlen(f->metric, PROTO_KEY_MAX));
		util_put_be64(p + 32, f->size);
		util_put_be64(p + 40, f->rolled);
		util_put_be64(p + 48, f->m1_size);
		util_put_be64(p + 56, f->m1_rolled);
		util_put_be64(p + 64, f->h1_size);
		util_put_be64(p + 72, f->newest);
	}
	uint32_t nr = s->runs.n > RUNS_MAX ? RUNS_MAX : s->runs.n;
	util_put_be32(p, nr);
	p += 4;
	for (uint32_t i = 0; i < nr; i++, p += STATE_RUN_REC) {
		util_put_be64(p, s->runs.r[i].run_id);
		util_put_be64(p + 8, s->runs.r[i].seq);
	}
	util_put_be32(p, util_crc32(0, slot, (size_t)(p - slot)));
	return (size_t)(p + 4 - slot);
}

/* Decode one slot of version 1, 2 or 3 after checking magic, counts and
 * CRC. */
int state_decode(const uint8_t *slot, size_t len, struct state *s)
{
	if (len < 40 || util_get_be32(slot) != STATE_MAGIC)
		return -1;
	uint32_t version = util_get_be32(slot + 4);
	if (version < 1 || version > STATE_VERSION)
		return -1;
	uint32_t n = util_get_be32(slot + 32);
	if (n > STATE_FILES_MAX)
		return -1;
	size_t rec = version >= 3 ? STATE_FILE_REC : STATE_FILE_REC_V2;
	size_t end = 36 + (size_t)n * rec;
	uint32_t nr = 0;
	if (version >= 2) {
		if (end + 4 > len)
			return -1;
		nr = util_get_be32(slot + end);
		if (nr > RUNS_MAX)
			return -1;
		end += 4 + (size_t)nr * STATE_RUN_REC;
	}
	if (end + 4 > len || util_crc32(0, slot, end) != util_get_be32(slot + end))
		return -1;
	s->gen = util_get_be64(slot + 8);
	s->run_id = util_get_be64(slot + 16);
	s->last_seq = util_get_be64(slot + 24);
	s->nfiles = n;
	s->legacy = version < 3;
	const uint8_t *p = slot + 36;
	for (uint32_t i = 0; i < n; i++, p += rec) {
		struct state_file *f = &s->files[i];
		memset(f, 0, sizeof *f);
		memcpy(f->metric, p, PROTO_KEY_MAX);
		f->metric[PROTO_KEY_MAX] = '\0';
		f->size = util_get_be64(p + 32);
		if (version >= 3) {
			f->rolled = util_get_be64(p + 40);
			f->m1_size = util_get_be64(p + 48);
			f->m1_rolled = util_get_be64(p + 56);
			f->h1_size = util_get_be64(p + 64);
			f->newest = util_get_be64(p + 72);
		}
	}
	memset(&s->runs, 0, sizeof s->runs);
	if (version == 1) {
		if (s->run_id || s->last_seq)
			runs_stored(&s->runs, s->run_id, s->last_seq);
		return 0;
	}
	p += 4;
	s->runs.n = nr;
	for (uint32_t i = 0; i < nr; i++, p += STATE_RUN_REC) {
		s->runs.r[i].run_id = util_get_be64(p);
		s->runs.r[i].seq = util_get_be64(p + 8);
	}
	return 0;
}

/* Newest valid record of the slots: version 3 at 0 and STATE_SLOT, older
 * versions at 0 and STATE_SLOT_V2. */
int state_read(int fd, struct state *s)
{
	static _Thread_local uint8_t buf[2 * STATE_SLOT];
	static _Thread_local struct state cand;
	ssize_t n = pread(fd, buf, sizeof buf, 0);
	if (n < 0)
		return -1;
	static const size_t offs[] = {0, STATE_SLOT_V2, STATE_SLOT};
	int found = 0;
	for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
		size_t len = offs[i] == STATE_SLOT_V2 ? STATE_SLOT_V2 : STATE_SLOT;
		if ((size_t)n < offs[i] + 40)
			continue;
		if (len > (size_t)n - offs[i])
			len = (size_t)n - offs[i];
		if (state_decode(buf + offs[i], len, &cand) < 0)
			continue;
		/* A version 3 record only where version 3 puts them, and back. */
		if ((offs[i] == STATE_SLOT_V2) != cand.legacy && offs[i] != 0)
			continue;
		if (!found || cand.gen > s->gen)
			*s = cand;
		found = 1;
	}
	return found ? 0 : 1;
}

/* Write the next generation into the other slot. */
int state_write(int fd, struct state *s)
{
	static _Thread_local uint8_t slot[STATE_SLOT];
	s->gen++;
	if (s->legacy && s->gen % 2 == 0)
		s->gen++; /* slot 0 would overwrite both old slots */
	s->legacy = 0;
	/* Only the record's bytes: what follows its CRC is never read. */
	size_t len = state_encode(s, slot);
	off_t off = (off_t)(s->gen % 2) * STATE_SLOT;
	ssize_t n = pwrite(fd, slot, len, off);
	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = ENOSPC;
	return -1;
}
