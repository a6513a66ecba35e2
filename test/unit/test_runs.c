/* Unit tests for the per-run high-water marks and their place in the
 * commit record: marks never fall, interleaved runs keep their own, the
 * least recently stored run goes first, and a version 1 record reads back
 * as one run. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "runs.h"
#include "state.h"
#include "util.h"

/* Two agents of one name taking turns keep their own marks. */
static void test_interleaved_runs(void)
{
	struct runs rs = {0};
	CHECK(runs_seq(&rs, 7) == 0);
	runs_stored(&rs, 7, 1);
	runs_stored(&rs, 7, 2);
	runs_stored(&rs, 9, 1);
	runs_stored(&rs, 7, 3);
	runs_stored(&rs, 9, 5);
	CHECK(runs_seq(&rs, 7) == 3);
	CHECK(runs_seq(&rs, 9) == 5);
	CHECK(rs.n == 2 && rs.r[0].run_id == 9);
	/* A mark never falls, whatever is stored later. */
	runs_stored(&rs, 9, 2);
	CHECK(runs_seq(&rs, 9) == 5);
	CHECK(runs_seq(&rs, 8) == 0);
}

/* Past RUNS_MAX runs, the least recently stored one is forgotten. */
static void test_oldest_goes_first(void)
{
	struct runs rs = {0};
	for (uint64_t i = 1; i <= RUNS_MAX; i++)
		runs_stored(&rs, i, i * 10);
	runs_stored(&rs, 1, 11); /* run 1 is the most recent again */
	runs_stored(&rs, 100, 1);
	CHECK(rs.n == RUNS_MAX);
	CHECK(runs_seq(&rs, 2) == 0); /* the least recent */
	CHECK(runs_seq(&rs, 1) == 11);
	CHECK(runs_seq(&rs, 3) == 30);
	CHECK(runs_seq(&rs, 100) == 1);
	CHECK(rs.r[0].run_id == 100 && rs.r[1].run_id == 1);
}

/* The marks travel in the commit record, a full one included. */
static void test_record_round_trip(void)
{
	static struct state s, back;
	static uint8_t slot[STATE_SLOT];
	memset(&s, 0, sizeof s);
	s.gen = 3;
	s.run_id = 42;
	s.last_seq = 9;
	s.nfiles = STATE_FILES_MAX;
	for (uint32_t i = 0; i < s.nfiles; i++) {
		snprintf(s.files[i].metric, sizeof s.files[i].metric, "metric_%u", i);
		s.files[i].size = 1000 + i;
	}
	for (uint64_t i = 1; i <= RUNS_MAX + 3; i++)
		runs_stored(&s.runs, i, i * 7);
	state_encode(&s, slot);
	CHECK(state_decode(slot, sizeof slot, &back) == 0);
	CHECK(back.runs.n == RUNS_MAX);
	CHECK(memcmp(&back.runs, &s.runs, sizeof s.runs) == 0);
	CHECK(back.nfiles == STATE_FILES_MAX && back.files[5].size == 1005);
	/* A flipped bit of a mark is caught by the CRC. */
	slot[36 + STATE_FILES_MAX * 40 + 4 + 3] ^= 1;
	CHECK(state_decode(slot, sizeof slot, &back) == -1);
}

/* A record written by the version before runs reads back as its one run. */
static void test_version_1_record(void)
{
	static uint8_t slot[STATE_SLOT];
	struct state s;
	memset(slot, 0, sizeof slot);
	util_put_be32(slot, 0x504d5354u);
	util_put_be32(slot + 4, 1);
	util_put_be64(slot + 8, 5);
	util_put_be64(slot + 16, 77);
	util_put_be64(slot + 24, 123);
	util_put_be32(slot + 32, 1);
	memcpy(slot + 36, "cpu", 3);
	util_put_be64(slot + 36 + 32, 4096);
	util_put_be32(slot + 76, util_crc32(0, slot, 76));
	CHECK(state_decode(slot, sizeof slot, &s) == 0);
	CHECK(s.gen == 5 && s.run_id == 77 && s.last_seq == 123 && s.nfiles == 1);
	CHECK(strcmp(s.files[0].metric, "cpu") == 0 && s.files[0].size == 4096);
	CHECK(s.runs.n == 1 && runs_seq(&s.runs, 77) == 123);
}

int main(void)
{
	test_interleaved_runs();
	test_oldest_goes_first();
	test_record_round_trip();
	test_version_1_record();
	return check_report("runs");
}
