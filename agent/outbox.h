/* The agent's delivery bookkeeping: batches and alarms kept until the
 * server acks them, the run and sequence numbers they carry, the bounds on
 * what is kept, and the spool that carries them through outages and
 * restarts. No sockets and no event loop: the link asks what to send next
 * and says what was acked. The rules are PROTOCOL.md's "Delivery".
 * Single-threaded: MUST be used only from the agent's event loop thread. */
#ifndef PIMON_OUTBOX_H
#define PIMON_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Batches sent and not yet acked, at most. */
#define OUTBOX_WINDOW 64
/* Unacked alarms kept, at most; past this the oldest go (logged). */
#define OUTBOX_ALARMS_MAX 1024
/* While a spool file exists, a batch or alarm beyond the file's mark waits
 * until a mark this far past it is written and synced. */
#define OUTBOX_MARK_AHEAD 1024

struct outbox;

/* Batches and alarms for one host, at most queue_max (at least 1) batches
 * and spool_max bytes of them, spooled in dir (NULL: memory only; a dir that
 * cannot be used is logged and means memory only too). A spool left in dir
 * is loaded and its run continued past everything it may have sent;
 * without one the outbox starts run run_id at seq 1. NULL when out of
 * memory (logged). */
struct outbox *outbox_create(const char *dir, size_t queue_max, size_t spool_max, uint64_t run_id);

/* Free the outbox; the spool file stays as it is (outbox_flush first to
 * write what it lacks). NULL is a no-op. */
void outbox_destroy(struct outbox *ob);

/* The run every HELLO names. */
uint64_t outbox_run_id(const struct outbox *ob);

/* Encode groups as the next batch and keep it; past the bounds the oldest
 * batches go, counted. 0, or -1 if they cannot be encoded (logged). */
int outbox_add_batch(struct outbox *ob, const struct proto_group *groups, size_t n);

/* Encode an alarm's new state (source and level as in proto.h) with the
 * next alarm seq and keep it. 0, or -1 if it cannot be encoded (logged). */
int outbox_add_alarm(struct outbox *ob, uint8_t source, const char *name, uint8_t level,
                     const char *message, uint64_t time_ms);

/* The next alarm to write on this connection (oldest first), taken as
 * sent; NULL when every alarm went, or when its seq cannot be recorded in
 * the spool first (logged). The frame stays valid until the next call. */
const uint8_t *outbox_next_alarm(struct outbox *ob, size_t *len);

/* The next batch to write on this connection, taken as sent: NULL while an
 * alarm is unsent, OUTBOX_WINDOW batches are unacked, every batch went, or
 * its seq cannot be recorded in the spool first (logged). The frame stays
 * valid until the next call. */
const uint8_t *outbox_next_batch(struct outbox *ob, size_t *len);

/* Batches outbox_next_batch would hand out now, as the window allows. */
size_t outbox_ready(const struct outbox *ob);

/* Batches and alarms written on this connection and not yet acked. */
size_t outbox_in_flight(const struct outbox *ob);

/* A new connection, or no ACK progress: every unacked batch and alarm
 * goes again, oldest first. */
void outbox_rewind(struct outbox *ob);

/* ACK: forget the batches up to seq, but never one not yet sent; an ACK
 * below one already taken in this run is ignored. Once nothing is left the
 * spool is removed. 1 when something was forgotten, else 0. */
int outbox_ack(struct outbox *ob, uint64_t seq);

/* ALARM_ACK: the same for alarms, in their own sequence. */
int outbox_alarm_ack(struct outbox *ob, uint64_t seq);

/* Write to the spool what it lacks: while the server is away, and at exit.
 * Everything acked removes the file. */
void outbox_flush(struct outbox *ob);

/* Batches kept (unacked). */
size_t outbox_batches(const struct outbox *ob);

/* Alarms kept (unacked). */
size_t outbox_alarms(const struct outbox *ob);

/* Batches lost to the bounds in this run, an earlier process's included. */
uint64_t outbox_dropped(const struct outbox *ob);

/* Bytes the spool file holds now (0 without one). */
uint64_t outbox_spool_bytes(const struct outbox *ob);

#endif
