/* The agent's delivery bookkeeping (outbox.h).
 *
 * Batches wait in a ring, oldest first, which doubles while the server is
 * away (up to queue_max slots) and shrinks again once all is acked; alarms
 * wait in a list of their own. Each entry remembers whether the spool file
 * holds it too.
 *
 * A run's sequence numbers never repeat. A run lasts as long as its spool
 * file: a restarted agent goes on with the run the spool names, and starts
 * a new run when there is no spool (nothing of the old one is left to
 * send). So that a run taken over cannot hand a new batch a seq the server
 * already holds, every spool file carries marks: records whose data is
 * OUTBOX_MARK_SIZE bytes, "SEQMARK1" then the alarm mark (u64, big-endian),
 * and whose seq is the batch mark. While the file exists, its highest marks
 * are at or past every batch and alarm seq that has left the agent in the
 * run: a new file starts with them, and before a seq past them leaves, a
 * mark OUTBOX_MARK_AHEAD further on is written and synced. On load the
 * run goes on after the highest mark and the highest seq spooled.
 * Single-threaded: MUST be used only from the agent's event loop thread. */
#include "outbox.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "spool.h"
#include "util.h"

/* Slots the batch ring starts with and shrinks back to: a connected agent
 * keeps 1 kB of ring, not queue_max slots. */
#define OUTBOX_QUEUE_MIN 32
/* A mark record's data: the magic, then the alarm mark. */
#define OUTBOX_MARK_MAGIC "SEQMARK1"
#define OUTBOX_MARK_SIZE  16

/* An encoded METRICS or ALARM frame waiting for its ACK. */
struct pending {
	uint64_t seq;
	uint8_t *data;
	size_t len;
	int spooled; /* also in the spool file */
};

struct outbox {
	struct spool *spool; /* NULL: memory only */
	int on_disk;         /* the spool file exists, marks and all */
	int stale;           /* the file holds entries no longer kept */
	int mark_failing;    /* a mark could not be written; logged once */
	int marks_loaded;    /* the spool taken over held marks */
	uint64_t run_id;
	uint64_t next_seq, next_aseq;
	uint64_t left_b, left_a;   /* highest seqs that may have left the agent in the run */
	uint64_t mark_b, mark_a;   /* the highest marks the spool file holds */
	uint64_t sent_b, sent_a;   /* highest seqs this process handed out */
	uint64_t acked_b, acked_a; /* highest ACKs taken */
	struct pending *queue;     /* ring of unacked batches, oldest first */
	size_t qhead, qlen, qcap;
	size_t qmax;            /* queue_max: qcap grows up to it */
	size_t qsent;           /* of those, handed out on this connection */
	size_t qbytes;          /* bytes the queue holds */
	size_t bmax;            /* spool_max */
	uint64_t dropped;       /* batches lost to the bounds, this run */
	struct pending *alarms; /* unacked ALARM frames, oldest first */
	size_t nalarms, acap;
	size_t asent; /* of those, handed out on this connection */
	uint64_t dropped_alarms;
	struct proto_buf scratch;
};

/* The larger of two seqs. */
static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* Fill out with a mark record's data for alarm mark ma. */
static void outbox_mark_encode(uint8_t out[OUTBOX_MARK_SIZE], uint64_t ma)
{
	memcpy(out, OUTBOX_MARK_MAGIC, 8);
	util_put_be64(out + 8, ma);
}

/* Whether a spooled record's data is a mark; then *ma is its alarm mark. */
static int outbox_mark_parse(const uint8_t *data, size_t len, uint64_t *ma)
{
	if (len != OUTBOX_MARK_SIZE || memcmp(data, OUTBOX_MARK_MAGIC, 8) != 0)
		return 0;
	*ma = util_get_be64(data + 8);
	return 1;
}

/* Forget the oldest batch (acked or dropped). */
static void outbox_pop(struct outbox *ob)
{
	struct pending *p = &ob->queue[ob->qhead];
	if (p->spooled)
		ob->stale = 1;
	ob->qbytes -= p->len;
	free(p->data);
	ob->qhead = (ob->qhead + 1) % ob->qcap;
	ob->qlen--;
	if (ob->qsent)
		ob->qsent--;
}

/* Move the ring into cap slots, oldest first at 0; 0, or -1 (nothing
 * changed) when out of memory. */
static int outbox_resize(struct outbox *ob, size_t cap)
{
	struct pending *q = calloc(cap, sizeof *q);
	if (!q)
		return -1;
	for (size_t i = 0; i < ob->qlen; i++)
		q[i] = ob->queue[(ob->qhead + i) % ob->qcap];
	free(ob->queue);
	ob->queue = q;
	ob->qcap = cap;
	ob->qhead = 0;
	return 0;
}

/* Keep an encoded batch; past queue_max batches or spool_max bytes the
 * oldest go, counted. The ring doubles when full, up to queue_max. */
static void outbox_keep(struct outbox *ob, uint64_t seq, const uint8_t *data, size_t len,
                        int spooled)
{
	if (ob->qlen == ob->qcap && ob->qcap < ob->qmax &&
	    outbox_resize(ob, ob->qcap * 2 < ob->qmax ? ob->qcap * 2 : ob->qmax) < 0)
		log_warn("outbox", "out of memory: the queue stays at %zu batches", ob->qcap);
	while (ob->qlen && (ob->qlen == ob->qcap || ob->qbytes + len > ob->bmax)) {
		outbox_pop(ob);
		if (ob->dropped++ % 100 == 0)
			log_warn("outbox",
			         "unacked batches over the bound (%zu, %zu bytes): dropping the "
			         "oldest (%llu so far)",
			         ob->qlen + 1, ob->qbytes, (unsigned long long)ob->dropped);
	}
	uint8_t *copy = malloc(len);
	if (!copy) {
		ob->dropped++;
		log_err("outbox", "out of memory: batch %llu lost", (unsigned long long)seq);
		return;
	}
	memcpy(copy, data, len);
	struct pending *p = &ob->queue[(ob->qhead + ob->qlen) % ob->qcap];
	*p = (struct pending){seq, copy, len, spooled};
	ob->qlen++;
	ob->qbytes += len;
}

/* Keep an encoded ALARM; past OUTBOX_ALARMS_MAX the oldest goes. */
static void outbox_alarm_keep(struct outbox *ob, uint64_t seq, const uint8_t *data, size_t len,
                              int spooled)
{
	uint8_t *copy = malloc(len);
	if (!copy) {
		log_err("outbox", "out of memory: alarm %llu lost", (unsigned long long)seq);
		return;
	}
	if (ob->nalarms == ob->acap && ob->acap < OUTBOX_ALARMS_MAX) {
		size_t cap = ob->acap ? ob->acap * 2 : 8;
		struct pending *a = realloc(ob->alarms, cap * sizeof *a);
		if (a) {
			ob->alarms = a;
			ob->acap = cap;
		}
	}
	if (ob->nalarms == ob->acap && ob->nalarms == 0) {
		free(copy);
		log_err("outbox", "out of memory: alarm %llu lost", (unsigned long long)seq);
		return;
	}
	if (ob->nalarms == ob->acap) {
		if (ob->alarms[0].spooled)
			ob->stale = 1;
		free(ob->alarms[0].data);
		memmove(ob->alarms, ob->alarms + 1, (ob->nalarms - 1) * sizeof *ob->alarms);
		ob->nalarms--;
		if (ob->asent)
			ob->asent--;
		if (ob->dropped_alarms++ % 100 == 0)
			log_warn("outbox", "%zu unacked alarms: dropping the oldest (%llu so far)",
			         ob->acap, (unsigned long long)ob->dropped_alarms);
	}
	memcpy(copy, data, len);
	ob->alarms[ob->nalarms++] = (struct pending){seq, copy, len, spooled};
}

/* With nothing left unacked, remove the spool file. */
static void outbox_settle(struct outbox *ob)
{
	if (ob->qlen || ob->nalarms || !ob->spool || (!ob->on_disk && !ob->stale))
		return;
	if (spool_clear(ob->spool) < 0) {
		ob->stale = 1; /* rewritten at the next write */
		return;
	}
	ob->on_disk = 0;
	ob->stale = 0;
	ob->mark_b = 0;
	ob->mark_a = 0;
}

/* One record of a spool left by an earlier process: a mark, an alarm or a
 * batch (the frame's type byte tells the last two apart). */
static int outbox_load_record(void *arg, uint64_t seq, const uint8_t *data, size_t len)
{
	struct outbox *ob = arg;
	uint64_t ma;
	if (outbox_mark_parse(data, len, &ma)) {
		ob->marks_loaded = 1;
		ob->left_b = max_u64(ob->left_b, seq);
		ob->left_a = max_u64(ob->left_a, ma);
	} else if (len > 3 && data[3] == PROTO_ALARM) {
		outbox_alarm_keep(ob, seq, data, len, 1);
		ob->next_aseq = max_u64(ob->next_aseq, seq + 1);
	} else {
		outbox_keep(ob, seq, data, len, 1);
		ob->next_seq = max_u64(ob->next_seq, seq + 1);
	}
	return 0;
}

/* Take over what an earlier process left in the spool: its run, past its
 * marks, its unacked batches and alarms, its count of lost batches. */
static void outbox_load(struct outbox *ob)
{
	uint64_t run_id = 0, dropped = 0;
	int n = spool_load(ob->spool, &run_id, &dropped, outbox_load_record, ob);
	if (n < 0) {
		log_err("outbox", "the spool cannot be read: unacked batches live in memory only");
		spool_close(ob->spool);
		ob->spool = NULL;
		return;
	}
	ob->on_disk = spool_bytes(ob->spool) > 0;
	if (n > 0) {
		ob->run_id = run_id;
		ob->dropped += dropped;
		ob->next_seq = max_u64(ob->next_seq, ob->left_b + 1);
		ob->next_aseq = max_u64(ob->next_aseq, ob->left_a + 1);
		ob->mark_b = ob->left_b;
		ob->mark_a = ob->left_a;
		/* A file without marks (spool version 1) gets them when next written. */
		if (!ob->marks_loaded)
			ob->stale = 1;
		log_notice("outbox",
		           "%zu unacked batches and %zu alarms from the spool will be sent (%llu "
		           "batches lost before); run %016llx goes on at seq %llu",
		           ob->qlen, ob->nalarms, (unsigned long long)dropped,
		           (unsigned long long)ob->run_id, (unsigned long long)ob->next_seq);
	}
	outbox_settle(ob);
}

/* Create the outbox and take over a spool left in dir. */
struct outbox *outbox_create(const char *dir, size_t queue_max, size_t spool_max, uint64_t run_id)
{
	struct outbox *ob = calloc(1, sizeof *ob);
	if (!ob)
		goto fail;
	ob->qmax = queue_max ? queue_max : 1;
	ob->bmax = spool_max;
	ob->qcap = ob->qmax < OUTBOX_QUEUE_MIN ? ob->qmax : OUTBOX_QUEUE_MIN;
	ob->queue = calloc(ob->qcap, sizeof *ob->queue);
	if (!ob->queue)
		goto fail;
	ob->run_id = run_id;
	ob->next_seq = 1;
	ob->next_aseq = 1;
	if (dir) {
		ob->spool = spool_open(dir);
		if (!ob->spool)
			log_warn("outbox", "no spool in %s: unacked batches live in memory only",
			         dir);
		else
			outbox_load(ob);
	}
	return ob;
fail:
	log_err("outbox", "out of memory");
	free(ob);
	return NULL;
}

/* Free everything; the spool file is left as it is. */
void outbox_destroy(struct outbox *ob)
{
	if (!ob)
		return;
	spool_close(ob->spool);
	while (ob->qlen)
		outbox_pop(ob);
	free(ob->queue);
	for (size_t i = 0; i < ob->nalarms; i++)
		free(ob->alarms[i].data);
	free(ob->alarms);
	proto_buf_free(&ob->scratch);
	free(ob);
}

/* The run HELLO names. */
uint64_t outbox_run_id(const struct outbox *ob)
{
	return ob->run_id;
}

/* Bring the spool file up to date with marks mb and ma. A new or stale
 * file is written whole (every kept entry); otherwise the marks are
 * appended if higher than the file's, and with entries the alarms and
 * batches it lacks too; synced when sync. 0, or -1 (logged by the spool). */
static int outbox_spool_write(struct outbox *ob, uint64_t mb, uint64_t ma, int entries, int sync)
{
	int whole = ob->stale || !ob->on_disk;
	mb = max_u64(mb, ob->mark_b);
	ma = max_u64(ma, ob->mark_a);
	struct spool_record *recs = calloc(1 + ob->nalarms + ob->qlen, sizeof *recs);
	if (!recs) {
		log_err("outbox", "out of memory: the spool is not written");
		return -1;
	}
	uint8_t mark[OUTBOX_MARK_SIZE];
	size_t n = 0;
	if (whole || mb > ob->mark_b || ma > ob->mark_a) {
		outbox_mark_encode(mark, ma);
		recs[n++] = (struct spool_record){mb, mark, sizeof mark};
	}
	if (whole || entries) {
		for (size_t i = 0; i < ob->nalarms; i++) {
			struct pending *p = &ob->alarms[i];
			if (whole || !p->spooled)
				recs[n++] = (struct spool_record){p->seq, p->data, p->len};
		}
		for (size_t i = 0; i < ob->qlen; i++) {
			struct pending *p = &ob->queue[(ob->qhead + i) % ob->qcap];
			if (whole || !p->spooled)
				recs[n++] = (struct spool_record){p->seq, p->data, p->len};
		}
	}
	int rc = 0;
	if (whole && (ob->on_disk || spool_bytes(ob->spool) > 0))
		rc = spool_rewrite(ob->spool, ob->run_id, ob->dropped, recs, n);
	else if (n)
		rc = spool_append(ob->spool, ob->run_id, ob->dropped, recs, n);
	if (rc == 0 && sync && !whole)
		rc = spool_sync(ob->spool);
	free(recs);
	if (rc < 0)
		return -1;
	ob->on_disk = 1;
	ob->stale = 0;
	ob->mark_b = mb;
	ob->mark_a = ma;
	if (whole || entries) {
		for (size_t i = 0; i < ob->nalarms; i++)
			ob->alarms[i].spooled = 1;
		for (size_t i = 0; i < ob->qlen; i++)
			ob->queue[(ob->qhead + i) % ob->qcap].spooled = 1;
	}
	return 0;
}

/* Before batch seq b and alarm seq a leave: while a spool file exists, it
 * must hold marks at or past them. 0 when they may go, -1 when not. */
static int outbox_reserve(struct outbox *ob, uint64_t b, uint64_t a)
{
	if (!ob->spool || !ob->on_disk || (b <= ob->mark_b && a <= ob->mark_a))
		return 0;
	uint64_t mb = b > ob->mark_b ? b + OUTBOX_MARK_AHEAD : ob->mark_b;
	uint64_t ma = a > ob->mark_a ? a + OUTBOX_MARK_AHEAD : ob->mark_a;
	if (outbox_spool_write(ob, mb, ma, 0, 1) < 0) {
		if (!ob->mark_failing)
			log_err("outbox",
			        "run %016llx: cannot record in the spool how far it has sent; "
			        "batches past seq %llu wait",
			        (unsigned long long)ob->run_id, (unsigned long long)ob->mark_b);
		ob->mark_failing = 1;
		return -1;
	}
	if (ob->mark_failing)
		log_notice("outbox", "run %016llx: sending past the spool's mark again",
		           (unsigned long long)ob->run_id);
	ob->mark_failing = 0;
	return 0;
}

/* Encode the next batch and keep it. */
int outbox_add_batch(struct outbox *ob, const struct proto_group *groups, size_t n)
{
	struct proto_msg m = {.type = PROTO_METRICS};
	m.u.metrics.seq = ob->next_seq;
	m.u.metrics.ngroups = (uint32_t)n;
	m.u.metrics.groups = groups;
	const char *err;
	proto_buf_reset(&ob->scratch);
	if (proto_encode(&m, &ob->scratch, &err) < 0) {
		log_err("outbox", "cannot encode a batch: %s", err);
		return -1;
	}
	ob->next_seq++;
	outbox_keep(ob, m.u.metrics.seq, ob->scratch.data, ob->scratch.len, 0);
	return 0;
}

/* Encode an alarm with the next alarm seq and keep it. */
int outbox_add_alarm(struct outbox *ob, uint8_t source, const char *name, uint8_t level,
                     const char *message, uint64_t time_ms)
{
	struct proto_msg m = {.type = PROTO_ALARM};
	m.u.alarm = (struct proto_alarm){ob->next_aseq, time_ms, level, source, name, message};
	const char *err;
	proto_buf_reset(&ob->scratch);
	if (proto_encode(&m, &ob->scratch, &err) < 0) {
		log_err("outbox", "cannot encode alarm %s: %s", name, err);
		return -1;
	}
	ob->next_aseq++;
	outbox_alarm_keep(ob, m.u.alarm.seq, ob->scratch.data, ob->scratch.len, 0);
	return 0;
}

/* Hand out the oldest alarm not yet written on this connection. */
const uint8_t *outbox_next_alarm(struct outbox *ob, size_t *len)
{
	if (ob->asent >= ob->nalarms)
		return NULL;
	const struct pending *p = &ob->alarms[ob->asent];
	if (outbox_reserve(ob, 0, p->seq) < 0)
		return NULL;
	ob->asent++;
	ob->sent_a = max_u64(ob->sent_a, p->seq);
	ob->left_a = max_u64(ob->left_a, p->seq);
	*len = p->len;
	return p->data;
}

/* Hand out the oldest batch not yet written on this connection. */
const uint8_t *outbox_next_batch(struct outbox *ob, size_t *len)
{
	if (outbox_ready(ob) == 0)
		return NULL;
	const struct pending *p = &ob->queue[(ob->qhead + ob->qsent) % ob->qcap];
	if (outbox_reserve(ob, p->seq, 0) < 0)
		return NULL;
	ob->qsent++;
	ob->sent_b = max_u64(ob->sent_b, p->seq);
	ob->left_b = max_u64(ob->left_b, p->seq);
	*len = p->len;
	return p->data;
}

/* How many batches the window lets go now; none while alarms wait. */
size_t outbox_ready(const struct outbox *ob)
{
	if (ob->asent < ob->nalarms)
		return 0;
	size_t limit = ob->qlen < OUTBOX_WINDOW ? ob->qlen : OUTBOX_WINDOW;
	return ob->qsent < limit ? limit - ob->qsent : 0;
}

/* Written on this connection and unacked. */
size_t outbox_in_flight(const struct outbox *ob)
{
	return ob->qsent + ob->asent;
}

/* Everything unacked goes again, oldest first. */
void outbox_rewind(struct outbox *ob)
{
	ob->qsent = 0;
	ob->asent = 0;
}

/* Forget the batches the ACK covers, as far as they were sent. */
int outbox_ack(struct outbox *ob, uint64_t seq)
{
	if (seq < ob->acked_b) {
		log_debug("outbox", "ACK %llu below %llu, already taken: ignored",
		          (unsigned long long)seq, (unsigned long long)ob->acked_b);
		return 0;
	}
	/* acked_b <= sent_b, so this never goes down. */
	ob->acked_b = seq < ob->sent_b ? seq : ob->sent_b;
	int moved = 0;
	while (ob->qlen && ob->queue[ob->qhead].seq <= ob->acked_b) {
		outbox_pop(ob);
		moved = 1;
	}
	if (!moved)
		return 0;
	/* A backlog drained: give the grown ring back. */
	if (ob->qlen == 0 && ob->qcap > OUTBOX_QUEUE_MIN)
		outbox_resize(ob, OUTBOX_QUEUE_MIN);
	outbox_settle(ob);
	return 1;
}

/* Forget the alarms the ALARM_ACK covers, as far as they were sent. */
int outbox_alarm_ack(struct outbox *ob, uint64_t seq)
{
	if (seq < ob->acked_a) {
		log_debug("outbox", "ALARM_ACK %llu below %llu, already taken: ignored",
		          (unsigned long long)seq, (unsigned long long)ob->acked_a);
		return 0;
	}
	ob->acked_a = seq < ob->sent_a ? seq : ob->sent_a;
	size_t n = 0;
	while (n < ob->nalarms && ob->alarms[n].seq <= ob->acked_a) {
		if (ob->alarms[n].spooled)
			ob->stale = 1;
		free(ob->alarms[n].data);
		n++;
	}
	if (n == 0)
		return 0;
	memmove(ob->alarms, ob->alarms + n, (ob->nalarms - n) * sizeof *ob->alarms);
	ob->nalarms -= n;
	ob->asent = ob->asent > n ? ob->asent - n : 0;
	outbox_settle(ob);
	return 1;
}

/* Write what the spool lacks, or remove it once all is acked. */
void outbox_flush(struct outbox *ob)
{
	if (!ob->spool)
		return;
	if (ob->qlen == 0 && ob->nalarms == 0) {
		outbox_settle(ob);
		return;
	}
	outbox_spool_write(ob, ob->left_b, ob->left_a, 1, 0);
}

/* Batches kept. */
size_t outbox_batches(const struct outbox *ob)
{
	return ob->qlen;
}

/* Alarms kept. */
size_t outbox_alarms(const struct outbox *ob)
{
	return ob->nalarms;
}

/* Batches lost to the bounds. */
uint64_t outbox_dropped(const struct outbox *ob)
{
	return ob->dropped;
}

/* The spool file's size. */
uint64_t outbox_spool_bytes(const struct outbox *ob)
{
	return ob->spool ? spool_bytes(ob->spool) : 0;
}
