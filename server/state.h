/* A host's commit record: the agent run and last sequence stored, how
 * long each metric's open files (raw, minute, hour) were when that batch
 * was complete, how far its rollups go, and the highest batch stored of
 * each recent run. Kept beside the
 * host's data in two checksummed slots written in turn, so a torn write
 * leaves the previous record readable. */
#ifndef PIMON_STATE_H
#define PIMON_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "runs.h"

#define STATE_SLOT      8192
#define STATE_SLOT_V2   4096 /* versions 1 and 2, still read */
#define STATE_FILES_MAX 96
#define STATE_FILE_NAME "commit.state"

struct state_file {
	char metric[PROTO_KEY_MAX + 1];
	uint64_t size;      /* <metric>.csv */
	uint64_t rolled;    /* the raw rows before this offset are in minute rows */
	uint64_t m1_size;   /* 1m/<metric>.csv */
	uint64_t m1_rolled; /* the minute rows before this offset are in hour rows */
	uint64_t h1_size;   /* 1h/<metric>.csv */
	uint64_t newest;    /* the latest row time in <metric>.csv (0: unknown) */
};

struct state {
	uint64_t gen; /* bumped by every write; the newer valid slot wins */
	uint64_t run_id;
	uint64_t last_seq;
	uint32_t nfiles;
	struct state_file files[STATE_FILES_MAX];
	struct runs runs; /* every recent run's highest batch stored */
	int legacy;       /* read from a version 1 or 2 slot (no rollups) */
};

/* Encode s into the start of one slot; the bytes used (the rest of the
 * slot is left as it was). */
size_t state_encode(const struct state *s, uint8_t slot[STATE_SLOT]);

/* Decode one slot; 0 if it holds a valid record, -1 if not. */
int state_decode(const uint8_t *slot, size_t len, struct state *s);

/* Read both slots of fd into s, taking the newest valid one. 0 when one was
 * found, 1 when there is none (a new or empty file), -1 on a read error. */
int state_read(int fd, struct state *s);

/* Write s (gen bumped first) into the slot after the one last written;
 * after a legacy record, into the slot that cannot overlap it. 0 or -1
 * with errno set. */
int state_write(int fd, struct state *s);

#endif
