/* Unit tests for the agent's outbox, driven without sockets: seqs and the
 * window, cumulative and out-of-order ACKs, resends, alarms in their own
 * sequence, the bounds, the spool at exit and during an outage, and a run
 * taken over after a kill. Real spool files under a mkdtemp folder. */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "log.h"
#include "outbox.h"
#include "proto.h"

#define QUEUE_MAX 4096
#define SPOOL_MAX (4u * 1024u * 1024u)

static char base[64];

/* A folder for one test's spool. */
static void test_dir(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", base, name);
}

/* Add a batch of one "load" row at time t. */
static int add_batch(struct outbox *ob, uint64_t t)
{
	static const char *const fields[] = {"load1"};
	double v = (double)t;
	struct proto_row row = {t, "", &v};
	struct proto_group g = {"load", "", 1, fields, 1, &row};
	return outbox_add_batch(ob, &g, 1);
}

/* What a handed-out frame says: its type, seq and (for a batch) row time. */
struct seen {
	enum proto_type type;
	uint64_t seq;
	uint64_t time_ms;
};

/* Decode a frame the outbox handed out; type 0 when it does not decode. */
static struct seen decode(const uint8_t *data, size_t len)
{
	struct seen s = {0};
	struct proto_msg m;
	size_t used;
	const char *err;
	if (!data || proto_decode(data, len, PROTO_MAX_PAYLOAD, &m, &used, &err) != PROTO_OK ||
	    used != len)
		return s;
	s.type = m.type;
	if (m.type == PROTO_METRICS) {
		s.seq = m.u.metrics.seq;
		if (m.u.metrics.ngroups && m.u.metrics.groups[0].nrows)
			s.time_ms = m.u.metrics.groups[0].rows[0].time_ms;
	} else if (m.type == PROTO_ALARM) {
		s.seq = m.u.alarm.seq;
		s.time_ms = m.u.alarm.time_ms;
	}
	proto_msg_free(&m);
	return s;
}

/* The next alarm handed out, decoded (type 0 when none is). */
static struct seen send_alarm(struct outbox *ob)
{
	size_t len = 0;
	const uint8_t *p = outbox_next_alarm(ob, &len);
	return decode(p, len);
}

/* The seq of the next batch handed out, 0 when none is. */
static uint64_t send_batch(struct outbox *ob)
{
	size_t len = 0;
	const uint8_t *p = outbox_next_batch(ob, &len);
	if (!p)
		return 0;
	struct seen s = decode(p, len);
	return s.type == PROTO_METRICS ? s.seq : 0;
}

/* Hand out every batch the window allows; the number handed out, with
 * the first and last seq. */
static size_t send_all(struct outbox *ob, uint64_t *first, uint64_t *last)
{
	size_t n = 0;
	uint64_t seq;
	while ((seq = send_batch(ob)) != 0) {
		if (n == 0 && first)
			*first = seq;
		if (last)
			*last = seq;
		n++;
	}
	return n;
}

/* A file's size, or -1 when it is absent. */
static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

/* Seqs count up from 1 in the run given; at most OUTBOX_WINDOW go unacked. */
static void test_seq_and_window(void)
{
	struct outbox *ob = outbox_create(NULL, QUEUE_MAX, SPOOL_MAX, 42);
	CHECK(ob && outbox_run_id(ob) == 42);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 100; t++)
		CHECK(add_batch(ob, 1000 + t) == 0);
	CHECK(outbox_batches(ob) == 100 && outbox_ready(ob) == OUTBOX_WINDOW);
	uint64_t first = 0, last = 0;
	CHECK(send_all(ob, &first, &last) == OUTBOX_WINDOW);
	CHECK(first == 1 && last == OUTBOX_WINDOW);
	CHECK(outbox_ready(ob) == 0 && outbox_in_flight(ob) == OUTBOX_WINDOW);
	CHECK(outbox_ack(ob, 10) == 1 && outbox_batches(ob) == 90);
	CHECK(outbox_ready(ob) == 10 && outbox_in_flight(ob) == OUTBOX_WINDOW - 10);
	CHECK(send_all(ob, &first, &last) == 10 && first == 65 && last == 74);
	CHECK(outbox_spool_bytes(ob) == 0 && outbox_dropped(ob) == 0);
	outbox_destroy(ob);
}

/* ACKs are cumulative; one below the window, or below one already taken,
 * does nothing; none makes the outbox forget a batch not yet sent. */
static void test_ack_order(void)
{
	struct outbox *ob = outbox_create(NULL, QUEUE_MAX, SPOOL_MAX, 1);
	if (!ob)
		return;
	CHECK(outbox_ack(ob, 5) == 0); /* nothing sent yet */
	for (uint64_t t = 1; t <= 20; t++)
		add_batch(ob, t);
	CHECK(outbox_ack(ob, 20) == 0 && outbox_batches(ob) == 20);
	uint64_t first = 0, last = 0;
	for (int i = 0; i < 8; i++)
		send_batch(ob);
	/* A server that acks past what it got forgets only what was sent. */
	CHECK(outbox_ack(ob, 15) == 1 && outbox_batches(ob) == 12);
	CHECK(send_batch(ob) == 9);
	CHECK(outbox_ack(ob, 8) == 0 && outbox_batches(ob) == 12); /* below the window */
	CHECK(outbox_ack(ob, 3) == 0 && outbox_batches(ob) == 12); /* below one taken */
	CHECK(outbox_ack(ob, 9) == 1 && outbox_batches(ob) == 11);
	CHECK(outbox_ack(ob, 8) == 0 && outbox_batches(ob) == 11);
	CHECK(send_all(ob, &first, &last) == 11 && first == 10 && last == 20);
	/* Cumulative: one ACK forgets many. */
	CHECK(outbox_ack(ob, 18) == 1 && outbox_batches(ob) == 2);
	CHECK(outbox_ack(ob, 20) == 1 && outbox_batches(ob) == 0);
	CHECK(outbox_in_flight(ob) == 0);
	outbox_destroy(ob);
}

/* No ACK progress: a rewind sends every unacked batch again, oldest first,
 * with the same seq and bytes. */
static void test_resend(void)
{
	struct outbox *ob = outbox_create(NULL, QUEUE_MAX, SPOOL_MAX, 1);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 6; t++)
		add_batch(ob, 100 * t);
	size_t len1 = 0;
	const uint8_t *p = outbox_next_batch(ob, &len1);
	uint8_t copy[256];
	CHECK(p && len1 <= sizeof copy);
	if (p && len1 <= sizeof copy)
		memcpy(copy, p, len1);
	CHECK(send_all(ob, NULL, NULL) == 5 && outbox_in_flight(ob) == 6);
	outbox_rewind(ob);
	CHECK(outbox_in_flight(ob) == 0 && outbox_ready(ob) == 6);
	size_t len2 = 0;
	p = outbox_next_batch(ob, &len2);
	CHECK(p && len2 == len1 && memcmp(p, copy, len1) == 0);
	CHECK(decode(p, len2).seq == 1 && decode(p, len2).time_ms == 100);
	/* A late ACK for what went before the rewind still counts. */
	CHECK(outbox_ack(ob, 3) == 1 && outbox_batches(ob) == 3);
	CHECK(outbox_in_flight(ob) == 0 && send_batch(ob) == 4);
	outbox_rewind(ob);
	CHECK(send_batch(ob) == 4 && send_batch(ob) == 5);
	outbox_destroy(ob);
}

/* Alarms go ahead of batches, in a sequence of their own, acked apart. */
static void test_alarms(void)
{
	struct outbox *ob = outbox_create(NULL, QUEUE_MAX, SPOOL_MAX, 1);
	if (!ob)
		return;
	add_batch(ob, 1);
	CHECK(outbox_add_alarm(ob, PROTO_ALARM_LOCAL, "disk", PROTO_LEVEL_WARNING, "full", 5) == 0);
	CHECK(outbox_add_alarm(ob, PROTO_ALARM_CHECK, "ping", PROTO_LEVEL_CRITICAL, "", 6) == 0);
	CHECK(outbox_add_alarm(ob, 9, "bad", PROTO_LEVEL_OK, "", 7) < 0); /* no such source */
	CHECK(outbox_alarms(ob) == 2);
	CHECK(outbox_ready(ob) == 0 && send_batch(ob) == 0); /* alarms first */
	size_t len;
	struct seen a = send_alarm(ob);
	CHECK(a.type == PROTO_ALARM && a.seq == 1 && a.time_ms == 5);
	CHECK(send_batch(ob) == 0);
	a = send_alarm(ob);
	CHECK(a.type == PROTO_ALARM && a.seq == 2 && a.time_ms == 6);
	CHECK(outbox_next_alarm(ob, &len) == NULL);
	CHECK(send_batch(ob) == 1 && outbox_in_flight(ob) == 3);
	/* Each ACK counts in its own sequence. */
	CHECK(outbox_ack(ob, 1) == 1 && outbox_alarms(ob) == 2 && outbox_batches(ob) == 0);
	CHECK(outbox_alarm_ack(ob, 1) == 1 && outbox_alarms(ob) == 1);
	CHECK(outbox_alarm_ack(ob, 0) == 0 && outbox_alarms(ob) == 1);
	outbox_rewind(ob);
	a = send_alarm(ob);
	CHECK(a.seq == 2);
	CHECK(outbox_alarm_ack(ob, 9) == 1 && outbox_alarms(ob) == 0);
	CHECK(outbox_add_alarm(ob, PROTO_ALARM_LOCAL, "disk", PROTO_LEVEL_OK, "", 8) == 0);
	a = send_alarm(ob);
	CHECK(a.seq == 3);
	outbox_destroy(ob);
}

/* Past queue_max batches, or spool_max bytes, the oldest go, counted, in
 * flight or not. */
static void test_bounds(void)
{
	struct outbox *ob = outbox_create(NULL, 5, SPOOL_MAX, 1);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 3; t++)
		add_batch(ob, t);
	CHECK(send_batch(ob) == 1 && send_batch(ob) == 2);
	for (uint64_t t = 4; t <= 8; t++)
		add_batch(ob, t);
	CHECK(outbox_batches(ob) == 5 && outbox_dropped(ob) == 3);
	CHECK(outbox_in_flight(ob) == 0 && send_batch(ob) == 4);
	outbox_destroy(ob);

	/* Bytes: measure one batch, then allow three. */
	ob = outbox_create(NULL, QUEUE_MAX, SPOOL_MAX, 1);
	if (!ob)
		return;
	add_batch(ob, 1);
	size_t len = 0;
	CHECK(outbox_next_batch(ob, &len) != NULL && len > 0);
	outbox_destroy(ob);
	ob = outbox_create(NULL, QUEUE_MAX, 3 * len, 1);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 10; t++)
		add_batch(ob, t);
	CHECK(outbox_batches(ob) == 3 && outbox_dropped(ob) == 7);
	CHECK(send_batch(ob) == 8);
	outbox_destroy(ob);
}

/* Spooled while the server is away and at exit; read back after a
 * restart in the same run, with the count of lost batches; removed once
 * all is acked, after which a restart starts a new run. */
static void test_spool_reload(void)
{
	char dir[128], path[160];
	test_dir(dir, sizeof dir, "reload");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct outbox *ob = outbox_create(dir, 12, SPOOL_MAX, 7);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 10; t++)
		add_batch(ob, 1000 + t);
	outbox_flush(ob); /* the outage goes on: appended */
	CHECK(file_size(path) > 0 && (long long)outbox_spool_bytes(ob) == file_size(path));
	for (uint64_t t = 11; t <= 14; t++)
		add_batch(ob, 1000 + t);
	CHECK(outbox_dropped(ob) == 2);
	CHECK(outbox_add_alarm(ob, PROTO_ALARM_LOCAL, "fan", PROTO_LEVEL_WARNING, "slow", 3) == 0);
	outbox_flush(ob); /* at exit: rewritten, two batches left it */
	outbox_destroy(ob);

	ob = outbox_create(dir, 12, SPOOL_MAX, 8);
	if (!ob)
		return;
	CHECK(outbox_run_id(ob) == 7 && outbox_batches(ob) == 12 && outbox_alarms(ob) == 1);
	CHECK(outbox_dropped(ob) == 2);
	size_t len;
	struct seen a = send_alarm(ob);
	CHECK(a.type == PROTO_ALARM && a.seq == 1);
	const uint8_t *p = outbox_next_batch(ob, &len);
	struct seen b = decode(p, len);
	CHECK(b.seq == 3 && b.time_ms == 1003);
	uint64_t first = 0, last = 0;
	CHECK(send_all(ob, &first, &last) == 11 && first == 4 && last == 14);
	add_batch(ob, 1015);
	CHECK(send_batch(ob) > 14);
	CHECK(outbox_alarm_ack(ob, 1) == 1 && file_size(path) > 0);
	CHECK(outbox_ack(ob, UINT64_MAX) == 1 && outbox_batches(ob) == 0);
	CHECK(file_size(path) == -1 && outbox_spool_bytes(ob) == 0);
	outbox_flush(ob); /* nothing left: no file at exit */
	CHECK(file_size(path) == -1);
	outbox_destroy(ob);

	ob = outbox_create(dir, 12, SPOOL_MAX, 9);
	if (!ob)
		return;
	CHECK(outbox_run_id(ob) == 9 && outbox_batches(ob) == 0 && outbox_dropped(ob) == 0);
	add_batch(ob, 2000);
	CHECK(send_batch(ob) == 1);
	outbox_destroy(ob);
}

/* The bug of issue 13: killed while catching up (the spool still holds the
 * outage's batches, the server acked more than that), the restarted agent
 * must go on in the same run past every seq it had sent, and resend the
 * spooled batches with their own seqs and bytes. */
static void test_restart_after_kill(void)
{
	char dir[128];
	test_dir(dir, sizeof dir, "kill");
	struct outbox *ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 70);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 20; t++)
		add_batch(ob, t);
	outbox_flush(ob); /* the outage */
	size_t len1 = 0;
	const uint8_t *p = outbox_next_batch(ob, &len1); /* back: the catch-up */
	uint8_t copy[256];
	CHECK(p && len1 <= sizeof copy);
	if (p && len1 <= sizeof copy)
		memcpy(copy, p, len1);
	send_all(ob, NULL, NULL);
	/* New batches queue behind the backlog, so the queue never empties. */
	for (uint64_t t = 21; t <= 25; t++)
		add_batch(ob, t);
	CHECK(outbox_ack(ob, 20) == 1 && outbox_batches(ob) == 5);
	uint64_t last = 0;
	CHECK(send_all(ob, NULL, &last) == 5 && last == 25);
	CHECK(outbox_ack(ob, 23) == 1 && outbox_batches(ob) == 2);
	outbox_destroy(ob); /* kill -9: no flush */

	ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 71);
	if (!ob)
		return;
	CHECK(outbox_run_id(ob) == 70 && outbox_batches(ob) == 20);
	size_t len2 = 0;
	p = outbox_next_batch(ob, &len2);
	CHECK(p && len2 == len1 && memcmp(p, copy, len1) == 0);
	uint64_t first = 0;
	CHECK(send_all(ob, &first, &last) == 19 && first == 2 && last == 20);
	add_batch(ob, 26);
	uint64_t seq = send_batch(ob);
	CHECK(seq > 25 && seq <= 25 + OUTBOX_MARK_AHEAD + 1);
	outbox_destroy(ob); /* killed again */

	/* Past one mark, another is written before anything goes beyond it. An
	 * unacked alarm keeps the spool file while batches are acked. */
	ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 72);
	if (!ob)
		return;
	CHECK(outbox_run_id(ob) == 70);
	CHECK(outbox_add_alarm(ob, PROTO_ALARM_LOCAL, "x", PROTO_LEVEL_WARNING, "", 1) == 0);
	struct seen a = send_alarm(ob);
	CHECK(a.seq == 1);
	send_all(ob, NULL, NULL);
	uint64_t top = 0;
	for (int i = 0; i < 3 * OUTBOX_MARK_AHEAD; i++) {
		add_batch(ob, 100 + (uint64_t)i);
		uint64_t s = send_batch(ob);
		CHECK(s > top);
		top = s > top ? s : top;
		outbox_ack(ob, s);
	}
	CHECK(outbox_batches(ob) == 0 && outbox_alarms(ob) == 1 && outbox_spool_bytes(ob) > 0);
	outbox_destroy(ob);

	ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 73);
	if (!ob)
		return;
	CHECK(outbox_run_id(ob) == 70 && outbox_alarms(ob) == 1);
	add_batch(ob, 5000);
	CHECK(outbox_add_alarm(ob, PROTO_ALARM_LOCAL, "x", PROTO_LEVEL_OK, "", 2) == 0);
	a = send_alarm(ob);
	CHECK(a.seq == 1);
	a = send_alarm(ob);
	CHECK(a.seq > 1);
	/* Batches the file still holds go first (the server acks them again),
	 * then the new one, past everything sent before. */
	CHECK(send_all(ob, NULL, &last) >= 1 && last > top);
	outbox_destroy(ob);
}

/* A spool written before marks (version 1) is read, its run goes on after
 * its last seq, and it is rewritten with a mark before anything is sent. */
static void test_spool_version_1(void)
{
	char dir[128], path[160];
	test_dir(dir, sizeof dir, "v1");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct outbox *ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 5);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 3; t++)
		add_batch(ob, t);
	outbox_flush(ob);
	outbox_destroy(ob);
	/* Turn the file into what an older agent wrote: version 1, no mark (the
	 * first record, 16 + 16 bytes after the header). */
	FILE *f = fopen(path, "rb");
	uint8_t img[4096];
	size_t n = f ? fread(img, 1, sizeof img, f) : 0;
	if (f)
		fclose(f);
	CHECK(n > 64 && n < sizeof img && img[11] == 2);
	if (n <= 64 || n >= sizeof img)
		return;
	img[11] = 1;
	memmove(img + 32, img + 64, n - 64);
	f = fopen(path, "wb");
	CHECK(f && fwrite(img, 1, n - 32, f) == n - 32);
	if (f)
		fclose(f);

	ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 6);
	if (!ob)
		return;
	CHECK(outbox_run_id(ob) == 5 && outbox_batches(ob) == 3);
	add_batch(ob, 4);
	CHECK(send_batch(ob) == 1);
	f = fopen(path, "rb");
	n = f ? fread(img, 1, sizeof img, f) : 0;
	if (f)
		fclose(f);
	CHECK(n > 32 && img[11] == 2 && memcmp(img + 32 + 16, "SEQMARK1", 8) == 0);
	uint64_t last = 0;
	CHECK(send_all(ob, NULL, &last) == 3 && last == 4);
	outbox_destroy(ob);
}

/* While the mark cannot be written, nothing goes past it. */
static void test_mark_unwritable(void)
{
	char dir[128], path[160];
	test_dir(dir, sizeof dir, "unwritable");
	snprintf(path, sizeof path, "%s/spool.dat", dir);
	struct outbox *ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 11);
	if (!ob)
		return;
	for (uint64_t t = 1; t <= 3; t++)
		add_batch(ob, t);
	outbox_flush(ob);
	outbox_destroy(ob);
	ob = outbox_create(dir, QUEUE_MAX, SPOOL_MAX, 12);
	if (!ob)
		return;
	/* A folder where the file was: neither append nor rewrite can work. */
	CHECK(unlink(path) == 0 && mkdir(path, 0700) == 0);
	CHECK(outbox_batches(ob) == 3 && outbox_ready(ob) == 3);
	CHECK(send_batch(ob) == 0 && outbox_in_flight(ob) == 0);
	CHECK(rmdir(path) == 0);
	CHECK(send_batch(ob) == 1);
	outbox_destroy(ob);
}

/* Remove one entry of the temporary tree for nftw. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	snprintf(base, sizeof base, "/tmp/pimon-outbox-XXXXXX");
	if (!mkdtemp(base)) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	log_init("test-outbox", LOG_ERR);
	test_seq_and_window();
	test_ack_order();
	test_resend();
	test_alarms();
	test_bounds();
	test_spool_reload();
	test_restart_after_kill();
	test_spool_version_1();
	test_mark_unwritable();
	nftw(base, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	return check_report("outbox");
}
