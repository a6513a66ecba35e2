/* Assembling and encoding remote_write requests. Series are found by a
 * hash of their sorted labels in an open-addressed table; samples keep
 * the order they were added in until the encoding sorts them by time
 * (stable, so equal times keep file order). */
#include "rw_encode.h"

#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "remote.pb-c.h"

#define RW_LABELS_MAX 16

struct rw_sample {
	int64_t t;
	double v;
	size_t seq; /* order added: ties keep it */
};

struct rw_series {
	uint64_t hash;
	size_t nlabels;
	char *names[RW_LABELS_MAX];
	char *values[RW_LABELS_MAX];
	struct rw_sample *s;
	size_t n, cap;
};

struct rw_batch {
	struct rw_series *series;
	size_t nseries, cap;
	size_t *slots; /* index + 1 into series, 0: free */
	size_t nslots;
	size_t samples;
	int64_t first, last;
};

/* Create an empty batch. */
struct rw_batch *rw_batch_new(void)
{
	return calloc(1, sizeof(struct rw_batch));
}

/* Free one series' copies. */
static void rw_series_clear(struct rw_series *s)
{
	for (size_t i = 0; i < s->nlabels; i++) {
		free(s->names[i]);
		free(s->values[i]);
	}
	free(s->s);
	memset(s, 0, sizeof *s);
}

/* Forget the batch's contents. */
void rw_batch_reset(struct rw_batch *b)
{
	for (size_t i = 0; i < b->nseries; i++)
		rw_series_clear(&b->series[i]);
	b->nseries = 0;
	if (b->slots)
		memset(b->slots, 0, b->nslots * sizeof *b->slots);
	b->samples = 0;
	b->first = b->last = 0;
}

/* Free the batch. */
void rw_batch_free(struct rw_batch *b)
{
	if (!b)
		return;
	rw_batch_reset(b);
	free(b->series);
	free(b->slots);
	free(b);
}

/* Order labels by name (names are unique in a series). */
static int rw_label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rw_label *)a)->name, ((const struct rw_label *)b)->name);
}

/* FNV-1a over sorted labels, NUL-separated. */
static uint64_t rw_labels_hash(const struct rw_label *l, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		for (const char *p = l[i].name; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ 0xffu) * 1099511628211ull;
		for (const char *p = l[i].value; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ 0xfeu) * 1099511628211ull;
	}
	return h;
}

/* Non-zero if series s has exactly the sorted labels l. */
static int rw_series_is(const struct rw_series *s, uint64_t h, const struct rw_label *l, size_t n)
{
	if (s->hash != h || s->nlabels != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->names[i], l[i].name) != 0 || strcmp(s->values[i], l[i].value) != 0)
			return 0;
	return 1;
}

/* Double the slot table and place every series again. */
static int rw_batch_grow_slots(struct rw_batch *b)
{
	size_t n = b->nslots ? b->nslots * 2 : 256;
	size_t *slots = calloc(n, sizeof *slots);
	if (!slots)
		return -1;
	for (size_t i = 0; i < b->nseries; i++) {
		size_t j = (size_t)(b->series[i].hash & (n - 1));
		while (slots[j])
			j = (j + 1) & (n - 1);
		slots[j] = i + 1;
	}
	free(b->slots);
	b->slots = slots;
	b->nslots = n;
	return 0;
}

/* The series of sorted labels l, created when new; NULL when out of memory. */
static struct rw_series *rw_batch_series(struct rw_batch *b, const struct rw_label *l, size_t n)
{
	if ((b->nseries + 1) * 2 > b->nslots && rw_batch_grow_slots(b) < 0)
		return NULL;
	uint64_t h = rw_labels_hash(l, n);
	size_t j = (size_t)(h & (b->nslots - 1));
	for (; b->slots[j]; j = (j + 1) & (b->nslots - 1))
		if (rw_series_is(&b->series[b->slots[j] - 1], h, l, n))
			return &b->series[b->slots[j] - 1];
	if (b->nseries == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct rw_series *s = realloc(b->series, cap * sizeof *s);
		if (!s)
			return NULL;
		b->series = s;
		b->cap = cap;
	}
	struct rw_series *s = &b->series[b->nseries];
	memset(s, 0, sizeof *s);
	s->hash = h;
	for (size_t i = 0; i < n; i++) {
		s->names[i] = strdup(l[i].name);
		s->values[i] = strdup(l[i].value);
		s->nlabels = i + 1;
		if (!s->names[i] || !s->values[i]) {
			rw_series_clear(s);
			return NULL;
		}
	}
	b->slots[j] = ++b->nseries;
	return s;
}

/* Add one sample to its series. */
int rw_batch_add(struct rw_batch *b, const struct rw_label *labels, size_t n, int64_t t_ms,
                 double value)
{
	struct rw_label l[RW_LABELS_MAX];
	if (n > RW_LABELS_MAX)
		return -1;
	memcpy(l, labels, n * sizeof *l);
	qsort(l, n, sizeof *l, rw_label_cmp);
	struct rw_series *s = rw_batch_series(b, l, n);
	if (!s)
		return -1;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct rw_sample *ns = realloc(s->s, cap * sizeof *ns);
		if (!ns)
			return -1;
		s->s = ns;
		s->cap = cap;
	}
	s->s[s->n++] = (struct rw_sample){t_ms, value, b->samples};
	if (!b->samples || t_ms < b->first)
		b->first = t_ms;
	if (!b->samples || t_ms > b->last)
		b->last = t_ms;
	b->samples++;
	return 0;
}

/* Samples added. */
size_t rw_batch_samples(const struct rw_batch *b)
{
	return b->samples;
}

/* The batch's time span. */
void rw_batch_span(const struct rw_batch *b, int64_t *first, int64_t *last)
{
	*first = b->first;
	*last = b->last;
}

/* Time order; equal times in the order added. */
static int rw_sample_cmp(const void *a, const void *b)
{
	const struct rw_sample *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The stale marker. */
double rw_stale_nan(void)
{
	uint64_t bits = RW_STALE_NAN_BITS;
	double v;
	memcpy(&v, &bits, sizeof v);
	return v;
}

/* Encode the batch: protobuf, then snappy. */
int rw_batch_encode(struct rw_batch *b, char **out, size_t *len)
{
	int rc = -1;
	char *raw = NULL;
	Prometheus__TimeSeries *ts = calloc(b->nseries ? b->nseries : 1, sizeof *ts);
	Prometheus__TimeSeries **tsp = calloc(b->nseries ? b->nseries : 1, sizeof *tsp);
	Prometheus__Label *lab = calloc(b->nseries * RW_LABELS_MAX + 1, sizeof *lab);
	Prometheus__Label **labp = calloc(b->nseries * RW_LABELS_MAX + 1, sizeof *labp);
	Prometheus__Sample *smp = calloc(b->samples + 1, sizeof *smp);
	Prometheus__Sample **smpp = calloc(b->samples + 1, sizeof *smpp);
	if (!ts || !tsp || !lab || !labp || !smp || !smpp)
		goto out;
	size_t nl = 0, ns = 0;
	for (size_t i = 0; i < b->nseries; i++) {
		struct rw_series *s = &b->series[i];
		prometheus__time_series__init(&ts[i]);
		tsp[i] = &ts[i];
		ts[i].n_labels = s->nlabels;
		ts[i].labels = &labp[nl];
		for (size_t j = 0; j < s->nlabels; j++, nl++) {
			prometheus__label__init(&lab[nl]);
			lab[nl].name = s->names[j];
			lab[nl].value = s->values[j];
			labp[nl] = &lab[nl];
		}
		qsort(s->s, s->n, sizeof *s->s, rw_sample_cmp);
		ts[i].n_samples = s->n;
		ts[i].samples = &smpp[ns];
		for (size_t j = 0; j < s->n; j++, ns++) {
			prometheus__sample__init(&smp[ns]);
			smp[ns].timestamp = s->s[j].t;
			smp[ns].value = s->s[j].v;
			smpp[ns] = &smp[ns];
		}
	}
	Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
	req.n_timeseries = b->nseries;
	req.timeseries = tsp;
	size_t rawlen = prometheus__write_request__get_packed_size(&req);
	raw = malloc(rawlen ? rawlen : 1);
	if (!raw)
		goto out;
	prometheus__write_request__pack(&req, (uint8_t *)raw);
	size_t cap = snappy_max_compressed_length(rawlen);
	*out = malloc(cap ? cap : 1);
	if (!*out)
		goto out;
	*len = cap;
	if (snappy_compress(raw, rawlen, *out, len) != SNAPPY_OK) {
		free(*out);
		*out = NULL;
		goto out;
	}
	rc = 0;
out:
	free(raw);
	free(ts);
	free(tsp);
	free(lab);
	free(labp);
	free(smp);
	free(smpp);
	return rc;
}
