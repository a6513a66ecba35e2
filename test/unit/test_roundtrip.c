/* Property test: whatever the protocol's validation accepts, written through
 * the real store, reads back through the real series reader exactly: every
 * instance name, every value bit for bit (NaN as no value), in random
 * metric shapes. PIMON_SEED repeats a run; the seed is printed. */
#include <dirent.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "csvread.h"
#include "proto.h"
#include "series.h"
#include "store.h"

#define ROUNDS      12
#define MAX_METRICS 5
#define MAX_INSTS   6
#define MAX_ROWS    400 /* rows of one metric over a test: within series' point limit */

static uint64_t rng_state;

/* xorshift64*: the next pseudo-random number. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

/* A number below n. */
static unsigned pick(unsigned n)
{
	return (unsigned)(rng() % n);
}

/* A random key of a-z 0-9 _, distinct from the names in avoid. */
static void random_key(char *out, const char *const *avoid, unsigned navoid)
{
	static const char alpha[] = "abcdefghijklmnopqrstuvwxyz0123456789_";
	for (;;) {
		unsigned n = 1 + pick(PROTO_KEY_MAX);
		for (unsigned i = 0; i < n; i++)
			out[i] = alpha[pick(sizeof alpha - 1)];
		out[n] = '\0';
		int clash = strcmp(out, "time") == 0 || proto_metric_reserved(out);
		for (unsigned i = 0; i < navoid && !clash; i++)
			clash = strcmp(out, avoid[i]) == 0;
		if (!clash)
			return;
	}
}

/* Characters an instance may hold, CSV's special ones among them. */
static const char *const inst_chars[] = {
    "a",
    "Z",
    "0",
    " ",
    ",",
    "\"",
    "'",
    "\\",
    "/",
    "-",
    ";",
    "=",
    "#",
    "%",
    "{",
    "}",
    "\xc3\xa9",         /* é */
    "\xc2\xa0",         /* no-break space */
    "\xc2\x85",         /* NEL, a C1 control: allowed */
    "\xe2\x80\xa8",     /* line separator */
    "\xe2\x82\xac",     /* € */
    "\xef\xbb\xbf",     /* BOM */
    "\xef\xbf\xbd",     /* replacement character */
    "\xf0\x9f\x8d\x93", /* a strawberry */
    "\xf4\x8f\xbf\xbf", /* U+10FFFF */
};

/* A random instance name the validation layer accepts; never empty. */
static void random_instance(char *out)
{
	size_t n = 0, want = 1 + pick(PROTO_INST_MAX);
	while (n < want) {
		const char *c = inst_chars[pick(sizeof inst_chars / sizeof inst_chars[0])];
		size_t k = strlen(c);
		if (n + k > want)
			break;
		memcpy(out + n, c, k);
		n += k;
	}
	if (n == 0)
		out[n++] = 'x';
	out[n] = '\0';
	CHECK(proto_text_valid(out, n));
}

/* A double with the given bits. */
static double bits(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

/* A random value: the edges of binary64 more often than chance would give. */
static double random_value(void)
{
	static const double edges[] = {0.0,
	                               -0.0,
	                               1.0 / 3,
	                               -2.0 / 3,
	                               0.1,
	                               1e-300,
	                               1.7e308,
	                               -1.7e308,
	                               DBL_MAX,
	                               -DBL_MAX,
	                               DBL_MIN,
	                               4.9406564584124654e-324,
	                               -4.9406564584124654e-324,
	                               2.2250738585072009e-308,
	                               123456789.125,
	                               9007199254740993.0};
	switch (pick(6)) {
	case 0:
		return edges[pick(sizeof edges / sizeof edges[0])];
	case 1:
		return pick(2) ? INFINITY : -INFINITY;
	case 2:
		return NAN;
	case 3: {
		double d;
		do
			d = bits(rng());
		while (isnan(d) || isinf(d));
		return d;
	}
	case 4:
		return bits(rng() & 0x800fffffffffffffull); /* subnormal */
	default:
		return (double)(int64_t)rng() / (double)(1 + pick(1000));
	}
}

/* One metric's shape and every row written to it, for reading back. */
struct metric {
	char name[PROTO_KEY_MAX + 1];
	char inst_key[PROTO_KEY_MAX + 1];
	unsigned nfields;
	char fields[8][PROTO_KEY_MAX + 1];
	const char *field_ptrs[8];
	unsigned ninsts;
	char insts[MAX_INSTS][PROTO_INST_MAX + 1];
	unsigned nrows;
	uint64_t time[MAX_ROWS];
	unsigned inst[MAX_ROWS];
	double values[MAX_ROWS][8];
	uint64_t next_time;
};

/* A new metric of random shape; names distinct from the other metrics'. */
static void metric_init(struct metric *m, struct metric *all, unsigned nall)
{
	const char *avoid[MAX_METRICS + 10];
	unsigned na = 0;
	for (unsigned i = 0; i < nall; i++)
		avoid[na++] = all[i].name;
	memset(m, 0, sizeof *m);
	random_key(m->name, avoid, na);
	na = 0;
	if (pick(3)) {
		random_key(m->inst_key, avoid, 0);
		avoid[na++] = m->inst_key;
		m->ninsts = 1 + pick(MAX_INSTS);
		for (unsigned i = 0; i < m->ninsts; i++) {
			random_instance(m->insts[i]);
			for (unsigned j = 0; j < i; j++)
				if (strcmp(m->insts[i], m->insts[j]) == 0)
					snprintf(m->insts[i], sizeof m->insts[i], "dup%u", i);
		}
	}
	m->nfields = 1 + pick(8);
	for (unsigned i = 0; i < m->nfields; i++) {
		random_key(m->fields[i], avoid, na);
		avoid[na++] = m->fields[i];
		m->field_ptrs[i] = m->fields[i];
	}
	m->next_time = 1700000000000ull + pick(100000);
}

/* Add up to n rows to the metric and write them as one group of a batch. */
static void metric_write(struct store *st, struct metric *m, unsigned n)
{
	struct proto_row rows[64];
	if (n > 64)
		n = 64;
	if (m->nrows + n > MAX_ROWS)
		n = MAX_ROWS - m->nrows;
	if (n == 0)
		return;
	for (unsigned r = 0; r < n; r++) {
		unsigned i = m->nrows + r;
		m->time[i] = m->next_time;
		m->next_time += 1 + pick(20);
		m->inst[i] = m->ninsts ? pick(m->ninsts) : 0;
		for (unsigned f = 0; f < m->nfields; f++)
			m->values[i][f] = random_value();
		rows[r] = (struct proto_row){m->time[i], m->ninsts ? m->insts[m->inst[i]] : "",
		                             m->values[i]};
	}
	struct proto_group g = {m->name, m->inst_key, (uint8_t)m->nfields, m->field_ptrs, n, rows};
	CHECK(store_write_group(st, &g) == 0);
	m->nrows += n;
}

/* Whether two doubles have the same bits. */
static int same_bits(double a, double b)
{
	return memcmp(&a, &b, sizeof a) == 0;
}

/* Instances seen by series_tail, to compare with what was written. */
struct seen {
	const struct metric *m;
	unsigned found[MAX_INSTS];
	unsigned strangers;
};

/* series_tail's callback: count the instance. */
static void seen_instance(const char *instance, void *arg)
{
	struct seen *s = arg;
	for (unsigned i = 0; i < s->m->ninsts; i++)
		if (strcmp(instance, s->m->insts[i]) == 0) {
			s->found[i]++;
			return;
		}
	s->strangers++;
}

/* Read every field of every instance back and compare, value by value. */
static void metric_check(const char *dir, const struct metric *m)
{
	char path[512];
	snprintf(path, sizeof path, "%s/hosts/h1/%s.csv", dir, m->name);
	struct csvread *r = csvread_open(AT_FDCWD, path);
	CHECK(r != NULL);
	if (!r)
		return;
	struct series_columns cols;
	CHECK(series_columns_parse(csvread_header(r), m->ninsts > 0, &cols) == 0);
	CHECK(cols.nfields == (int)m->nfields);
	CHECK_STR(cols.inst_key, m->inst_key);
	struct series_range rg = {m->time[0], m->time[m->nrows - 1], 0};
	rg.points = (unsigned)(rg.to - rg.from + 1);
	unsigned ninsts = m->ninsts ? m->ninsts : 1;
	for (unsigned f = 0; f < m->nfields; f++) {
		int column = series_columns_find(&cols, m->fields[f]);
		CHECK(column > 0);
		for (unsigned k = 0; k < ninsts; k++) {
			struct series_buckets bk;
			struct series_filter flt = {column, m->ninsts > 0,
			                            m->ninsts ? m->insts[k] : NULL, 0, 0};
			uint64_t rows = 0, want_rows = 0;
			CHECK(series_buckets_init(&bk, &rg) == 0 && bk.width == 1);
			CHECK(series_read(r, 0, &rg, &flt, &bk, &rows) == 0);
			for (unsigned i = 0; i < m->nrows; i++) {
				if (m->ninsts && m->inst[i] != k)
					continue;
				want_rows++;
				const struct series_bucket *b = &bk.b[m->time[i] - rg.from];
				double v = m->values[i][f];
				if (isnan(v)) {
					CHECK(b->count == 0);
					continue;
				}
				CHECK(b->count == 1);
				if (!(b->count == 1 && same_bits(b->min, v) &&
				      same_bits(b->max, v) && same_bits(series_bucket_avg(b), v)))
					fprintf(stderr,
					        "  %s.%s[%s] at %llu: wrote %.17g, read %.17g\n",
					        m->name, m->fields[f], m->ninsts ? m->insts[k] : "",
					        (unsigned long long)m->time[i], v, b->min);
				CHECK(same_bits(b->min, v) && same_bits(b->max, v));
				CHECK(same_bits(series_bucket_avg(b), v));
			}
			CHECK(rows == want_rows);
			series_buckets_free(&bk);
		}
	}
	/* The instance list comes back whole and with nothing else in it. */
	struct seen s = {m, {0}, 0};
	uint64_t last = 0;
	series_tail(r, MAX_ROWS + 1, m->ninsts > 0, &last, seen_instance, &s);
	CHECK(last == m->time[m->nrows - 1]);
	CHECK(s.strangers == 0);
	for (unsigned i = 0; i < m->ninsts; i++) {
		unsigned want = 0;
		for (unsigned j = 0; j < m->nrows; j++)
			want += m->inst[j] == i;
		CHECK(s.found[i] == want);
	}
	csvread_close(r);
}

/* Remove the test's data folder. */
static void remove_tree(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0);
}

/* One round: a fresh store, random metrics, batches, then everything read back. */
static void round_trip_once(void)
{
	char dir[] = "/tmp/pimon-test-roundtrip-XXXXXX", hosts[64];
	CHECK(mkdtemp(dir) != NULL);
	snprintf(hosts, sizeof hosts, "%s/hosts", dir);
	CHECK(mkdir(hosts, 0755) == 0);
	int hosts_fd = open(hosts, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(hosts_fd >= 0);
	struct store *st = store_open(hosts_fd, dir, "h1");
	CHECK(st != NULL);
	if (!st) {
		close(hosts_fd);
		return;
	}
	static struct metric ms[MAX_METRICS];
	unsigned nm = 1 + pick(MAX_METRICS);
	for (unsigned i = 0; i < nm; i++)
		metric_init(&ms[i], ms, i);
	for (uint64_t seq = 1; seq <= 20; seq++) {
		for (unsigned i = 0; i < nm; i++)
			if (pick(4))
				metric_write(st, &ms[i], 1 + pick(30));
		store_batch_done(st, 42, seq);
		CHECK(store_persist(st, 0) == 0);
	}
	for (unsigned i = 0; i < nm; i++)
		if (ms[i].nrows == 0)
			metric_write(st, &ms[i], 1);
	store_batch_done(st, 42, 21);
	CHECK(store_persist(st, 0) == 0);
	for (unsigned i = 0; i < nm; i++)
		metric_check(dir, &ms[i]);
	store_close(st);
	/* And again after the store closed and opened: recovery cut nothing. */
	st = store_open(hosts_fd, dir, "h1");
	CHECK(st != NULL);
	if (st)
		store_close(st);
	for (unsigned i = 0; i < nm; i++)
		metric_check(dir, &ms[i]);
	close(hosts_fd);
	remove_tree(dir);
}

int main(void)
{
	const char *seed = getenv("PIMON_SEED");
	rng_state =
	    seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	if (rng_state == 0)
		rng_state = 1;
	printf("seed %llu (PIMON_SEED repeats it)\n", (unsigned long long)rng_state);
	for (int i = 0; i < ROUNDS; i++)
		round_trip_once();
	return check_report("roundtrip");
}
