/* The host commit record: slots round-trip, a torn or stale slot loses to
 * the other, and a file with neither reads as new. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "state.h"

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
	state_encode(&a, slot);
	CHECK(state_decode(slot, STATE_SLOT, &b) == 0);
	CHECK(b.gen == 7 && b.run_id == a.run_id && b.last_seq == 42);
	CHECK(b.nfiles == STATE_FILES_MAX);
	CHECK_STR(b.files[0].metric, "abcdefghijklmnopqrstuvwxyz012345");
	CHECK_STR(b.files[5].metric, "metric_5");
	CHECK(b.files[95].size == 95042);
	/* Every single flipped byte in the used part is caught. */
	size_t used = 36 + 40 * STATE_FILES_MAX + 4;
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

int main(void)
{
	test_round_trip();
	test_file_slots();
	return check_report("state");
}
