/* The host commit record: slots round-trip, a torn or stale slot loses to
 * the other, and a file with neither reads as new. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "state.h"
#include "util.h"

/* A record with n files. */
static struct state sample(uint64_t seq, uint32_t n)
{
	struct state s;
	memset(&s, 0, sizeof s);
	s.run_id = 0x1122334455667788ull;
	s.last_seq = seq;
	s.nfiles = n;
	for (uint32_t i = 0; i < n; i++) {
		snprintf(s.files[i].metric, sizeof s.files[i].metric, "metric_%u", i);
		s.files[i].size = 1000ull * i + seq;
		s.files[i].rolled = 900ull * i;
		s.files[i].m1_size = 800ull * i + 1;
		s.files[i].m1_rolled = 700ull * i;
		s.files[i].h1_size = 600ull * i + 2;
		s.files[i].newest = 1764633600000ull + i;
	}
	return s;
}

/* Encode then decode gives every field back. */
static void test_round_trip(void)
{
	static uint8_t slot[STATE_SLOT];
	struct state a = sample(42, STATE_FILES_MAX), b;
	a.gen = 7;
	snprintf(a.files[0].metric, sizeof a.files[0].metric, "%s",
	         "abcdefghijklmnopqrstuvwxyz012345");
	size_t used = state_encode(&a, slot);
	CHECK(used == 36 + 80 * STATE_FILES_MAX + 4 + 4);
	CHECK(state_decode(slot, STATE_SLOT, &b) == 0);
	CHECK(b.gen == 7 && b.run_id == a.run_id && b.last_seq == 42);
	CHECK(b.nfiles == STATE_FILES_MAX);
	CHECK_STR(b.files[0].metric, "abcdefghijklmnopqrstuvwxyz012345");
	CHECK_STR(b.files[5].metric, "metric_5");
	CHECK(b.files[95].size == 95042);
	CHECK(b.files[95].rolled == 85500 && b.files[95].m1_size == 76001 &&
	      b.files[95].m1_rolled == 66500 && b.files[95].h1_size == 57002 &&
	      b.files[95].newest == 1764633600095ull && !b.legacy);
	/* Every single flipped byte in the used part is caught. */
	int caught = 0;
	for (size_t i = 0; i < used; i++) {
		slot[i] ^= 0x10;
		caught += state_decode(slot, STATE_SLOT, &b) != 0;
		slot[i] ^= 0x10;
	}
	CHECK(caught == (int)used);
	CHECK(state_decode(slot, 39, &b) != 0);
}

/* Writes alternate slots; the newest valid one is read; a torn newest slot
 * falls back to the one before. */
static void test_file_slots(void)
{
	char path[] = "/tmp/pimon-state-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	struct state s = sample(1, 3), r;
	CHECK(state_read(fd, &r) == 1);
	CHECK(state_write(fd, &s) == 0);
	CHECK(state_read(fd, &r) == 0 && r.last_seq == 1);
	s.last_seq = 2;
	CHECK(state_write(fd, &s) == 0);
	CHECK(state_read(fd, &r) == 0 && r.last_seq == 2 && r.gen == s.gen);
	s.last_seq = 3;
	CHECK(state_write(fd, &s) == 0);
	CHECK(state_read(fd, &r) == 0 && r.last_seq == 3);
	/* Tear the slot just written (gen 3 lives in slot 1). */
	off_t off = (off_t)(s.gen % 2) * STATE_SLOT + 20;
	uint8_t junk[100];
	memset(junk, 0xab, sizeof junk);
	CHECK(pwrite(fd, junk, sizeof junk, off) == (ssize_t)sizeof junk);
	CHECK(state_read(fd, &r) == 0 && r.last_seq == 2);
	close(fd);
	unlink(path);
}

/* A version 2 slot, as the server before rollups wrote it. */
static void v2_slot(uint8_t *slot, uint64_t gen, uint64_t seq)
{
	memset(slot, 0, STATE_SLOT_V2);
	util_put_be32(slot, 0x504d5354u);
	util_put_be32(slot + 4, 2);
	util_put_be64(slot + 8, gen);
	util_put_be64(slot + 16, 7);
	util_put_be64(slot + 24, seq);
	util_put_be32(slot + 32, 1);
	memcpy(slot + 36, "cpu", 3);
	util_put_be64(slot + 36 + 32, 1234);
	uint8_t *p = slot + 36 + 40;
	util_put_be32(p, 1);
	util_put_be64(p + 4, 7);
	util_put_be64(p + 12, seq);
	p += 20;
	util_put_be32(p, util_crc32(0, slot, (size_t)(p - slot)));
}

/* A file of version 2 slots is read (the newer of its two), its files'
 * rollup offsets unknown; the first version 3 write goes where it
 * overlaps neither old slot, so tearing it leaves the old record. */
static void test_legacy_slots(void)
{
	char path[] = "/tmp/pimon-state-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	static uint8_t slot[STATE_SLOT_V2];
	v2_slot(slot, 4, 40);
	CHECK(pwrite(fd, slot, sizeof slot, 0) == (ssize_t)sizeof slot);
	v2_slot(slot, 5, 50);
	CHECK(pwrite(fd, slot, sizeof slot, STATE_SLOT_V2) == (ssize_t)sizeof slot);
	struct state r;
	CHECK(state_read(fd, &r) == 0 && r.legacy && r.gen == 5 && r.last_seq == 50);
	CHECK(r.nfiles == 1 && r.files[0].size == 1234 && r.files[0].rolled == 0 &&
	      r.files[0].m1_size == 0 && r.files[0].newest == 0);
	CHECK(r.runs.n == 1 && r.runs.r[0].seq == 50);
	r.last_seq = 60;
	CHECK(state_write(fd, &r) == 0 && r.gen % 2 == 1);
	struct state r2;
	CHECK(state_read(fd, &r2) == 0 && !r2.legacy && r2.last_seq == 60);
	/* Tear it: the version 2 record is still there. */
	uint8_t junk[100];
	memset(junk, 0xab, sizeof junk);
	CHECK(pwrite(fd, junk, sizeof junk, STATE_SLOT + 20) == (ssize_t)sizeof junk);
	CHECK(state_read(fd, &r2) == 0 && r2.legacy && r2.last_seq == 50);
	close(fd);
	unlink(path);
}

int main(void)
{
	test_round_trip();
	test_file_slots();
	test_legacy_slots();
	return check_report("state");
}
