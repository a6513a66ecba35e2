/* Each host's latest values as interned shapes and plain arrays of values. */
#include "latest.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

/* What a metric's rows look like. Shared by every host that sends it and
 * immutable once in the table; freed when the last host lets go. */
struct shape {
	struct shape *next; /* hash chain; MUST hold the table lock */
	size_t refs;        /* MUST hold the table lock */
	uint64_t hash;
	uint8_t nfields;
	const char *metric;
	const char *inst_key;
	const char *fields[]; /* nfields pointers, then the strings they point to */
};

struct shapes {
	pthread_mutex_t lock;
	struct shape **buckets;
	size_t nbuckets; /* a power of two */
	size_t n;
};

/* One metric's last rows: nrows rows of the shape's fields, then for an
 * instanced metric each row's instance, NUL-terminated, in row order. */
struct rows {
	uint32_t nrows;
	uint32_t size; /* bytes allocated after the header */
	double values[];
};

struct entry {
	const struct shape *shape;
	struct rows *rows;
};

struct latest {
	uint32_t n;
	uint32_t hint; /* where the next group's metric probably is */
	struct entry e[];
};

/* FNV-1a over a string and its NUL, continuing from h. */
static uint64_t hash_str(uint64_t h, const char *s)
{
	do
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	while (*s++);
	return h;
}

/* The hash of a group's shape. */
static uint64_t shape_hash(const struct proto_group *g)
{
	uint64_t h = hash_str(1469598103934665603ull, g->metric);
	h = hash_str(h, g->inst_key);
	for (unsigned i = 0; i < g->nfields; i++)
		h = hash_str(h, g->fields[i]);
	return h ^ g->nfields;
}

/* Whether the group has this shape. */
static int shape_is(const struct shape *sh, const struct proto_group *g)
{
	if (sh->nfields != g->nfields || strcmp(sh->metric, g->metric) != 0 ||
	    strcmp(sh->inst_key, g->inst_key) != 0)
		return 0;
	for (unsigned i = 0; i < g->nfields; i++)
		if (strcmp(sh->fields[i], g->fields[i]) != 0)
			return 0;
	return 1;
}

/* A new shape copied from the group, with one reference. */
static struct shape *shape_new(const struct proto_group *g, uint64_t hash)
{
	size_t size = sizeof(struct shape) + g->nfields * sizeof(char *);
	size_t lm = strlen(g->metric) + 1, lk = strlen(g->inst_key) + 1;
	size += lm + lk;
	for (unsigned i = 0; i < g->nfields; i++)
		size += strlen(g->fields[i]) + 1;
	struct shape *sh = malloc(size);
	if (!sh)
		return NULL;
	char *p = (char *)&sh->fields[g->nfields];
	sh->next = NULL;
	sh->refs = 1;
	sh->hash = hash;
	sh->nfields = g->nfields;
	sh->metric = memcpy(p, g->metric, lm);
	p += lm;
	sh->inst_key = memcpy(p, g->inst_key, lk);
	p += lk;
	for (unsigned i = 0; i < g->nfields; i++) {
		size_t lf = strlen(g->fields[i]) + 1;
		sh->fields[i] = memcpy(p, g->fields[i], lf);
		p += lf;
	}
	return sh;
}

/* Create an empty table. */
struct shapes *shapes_create(void)
{
	struct shapes *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->nbuckets = 64;
	s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
	if (!s->buckets) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

/* Free the table and any shape still in it. */
void shapes_destroy(struct shapes *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct shape *sh = s->buckets[i];
		while (sh) {
			struct shape *next = sh->next;
			free(sh);
			sh = next;
		}
	}
	pthread_mutex_destroy(&s->lock);
	free(s->buckets);
	free(s);
}

/* Shapes in the table. */
size_t shapes_count(struct shapes *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->n;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* Double the table when it gets crowded. MUST hold s->lock. */
static void shapes_grow(struct shapes *s)
{
	size_t n = s->nbuckets * 2;
	struct shape **b = calloc(n, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < s->nbuckets; i++) {
		struct shape *sh = s->buckets[i];
		while (sh) {
			struct shape *next = sh->next;
			size_t k = (size_t)sh->hash & (n - 1);
			sh->next = b[k];
			b[k] = sh;
			sh = next;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

/* A reference to the group's shape, interned if new; NULL when out of memory. */
static const struct shape *shapes_get(struct shapes *s, const struct proto_group *g)
{
	uint64_t hash = shape_hash(g);
	pthread_mutex_lock(&s->lock);
	size_t k = (size_t)hash & (s->nbuckets - 1);
	struct shape *sh;
	for (sh = s->buckets[k]; sh; sh = sh->next)
		if (sh->hash == hash && shape_is(sh, g))
			break;
	if (sh) {
		sh->refs++;
	} else if ((sh = shape_new(g, hash))) {
		sh->next = s->buckets[k];
		s->buckets[k] = sh;
		if (++s->n > s->nbuckets)
			shapes_grow(s);
	}
	pthread_mutex_unlock(&s->lock);
	return sh;
}

/* Let go of a reference; the last one takes the shape out and frees it. */
static void shapes_put(struct shapes *s, const struct shape *shape)
{
	if (!shape)
		return;
	pthread_mutex_lock(&s->lock);
	struct shape **pp = &s->buckets[(size_t)shape->hash & (s->nbuckets - 1)];
	while (*pp && *pp != shape)
		pp = &(*pp)->next;
	struct shape *sh = *pp;
	if (sh && --sh->refs == 0) {
		*pp = sh->next;
		s->n--;
		free(sh);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Copy the rows the metric keeps (the last, or all when instanced) into
 * *rp, reusing its memory when the size is the same. -1 when out of
 * memory (*rp is then unchanged). */
static int rows_fill(struct rows **rp, const struct proto_group *g)
{
	int inst = g->inst_key[0] != '\0';
	uint32_t first = inst ? 0 : g->nrows - 1;
	uint32_t nrows = g->nrows - first;
	size_t nvalues = (size_t)nrows * g->nfields;
	size_t size = nvalues * sizeof(double);
	for (uint32_t r = first; inst && r < g->nrows; r++)
		size += strlen(g->rows[r].instance) + 1;
	if (size > UINT32_MAX)
		return -1;
	struct rows *rw = *rp;
	if (!rw || rw->size != size) {
		rw = realloc(rw, sizeof *rw + size);
		if (!rw)
			return -1;
		rw->size = (uint32_t)size;
		*rp = rw;
	}
	rw->nrows = nrows;
	double *v = rw->values;
	for (uint32_t r = first; r < g->nrows; r++, v += g->nfields)
		if (g->nfields)
			memcpy(v, g->rows[r].values, g->nfields * sizeof(double));
	char *p = (char *)v;
	for (uint32_t r = first; inst && r < g->nrows; r++) {
		size_t len = strlen(g->rows[r].instance) + 1;
		memcpy(p, g->rows[r].instance, len);
		p += len;
	}
	return 0;
}

/* Index of the metric's entry, or l->n when it has none. */
static uint32_t latest_find(const struct latest *l, const char *metric)
{
	if (l->hint < l->n && strcmp(l->e[l->hint].shape->metric, metric) == 0)
		return l->hint;
	uint32_t i;
	for (i = 0; i < l->n; i++)
		if (strcmp(l->e[i].shape->metric, metric) == 0)
			break;
	return i;
}

/* Take out entry i, letting go of its rows and shape. */
static void latest_drop(struct shapes *s, struct latest *l, uint32_t i)
{
	free(l->e[i].rows);
	shapes_put(s, l->e[i].shape);
	memmove(&l->e[i], &l->e[i + 1], (l->n - i - 1) * sizeof l->e[0]);
	l->n--;
}

/* Keep the group's rows as the metric's latest values. */
int latest_set(struct shapes *s, struct latest **lp, const struct proto_group *g)
{
	if (g->nrows == 0)
		return 0;
	struct latest *l = *lp;
	uint32_t i = l ? latest_find(l, g->metric) : 0;
	if (!l || i == l->n) {
		uint32_t n = l ? l->n : 0;
		struct latest *grown = realloc(l, sizeof *grown + (n + 1) * sizeof grown->e[0]);
		if (!grown)
			return -1;
		*lp = l = grown;
		l->n = n + 1;
		l->e[n] = (struct entry){NULL, NULL};
		i = n;
	}
	struct entry *e = &l->e[i];
	l->hint = i + 1;
	if (!e->shape || !shape_is(e->shape, g)) {
		const struct shape *sh = shapes_get(s, g);
		if (!sh)
			goto drop;
		shapes_put(s, e->shape);
		e->shape = sh;
	}
	if (rows_fill(&e->rows, g) < 0)
		goto drop;
	return 0;
drop:
	latest_drop(s, l, i);
	return -1;
}

/* Every value of every metric, in order. */
void latest_foreach(const struct latest *l, latest_fn fn, void *arg)
{
	for (uint32_t i = 0; l && i < l->n; i++) {
		const struct shape *sh = l->e[i].shape;
		const struct rows *rw = l->e[i].rows;
		const char *inst = (const char *)(rw->values + (size_t)rw->nrows * sh->nfields);
		struct latest_value v = {sh->metric, sh->inst_key, NULL, NULL, 0};
		for (uint32_t r = 0; r < rw->nrows; r++) {
			v.instance = sh->inst_key[0] ? inst : NULL;
			const double *values = rw->values + (size_t)r * sh->nfields;
			v.field = NULL;
			if (sh->nfields == 0)
				fn(arg, &v);
			for (unsigned f = 0; f < sh->nfields; f++) {
				v.field = sh->fields[f];
				v.value = values[f];
				fn(arg, &v);
			}
			if (sh->inst_key[0])
				inst += strlen(inst) + 1;
		}
	}
}

/* The object being built by latest_json; failed once a put fails. */
struct latest_build {
	json_t *root;
	int failed;
};

/* The object under key in o, created empty when missing; NULL when out of memory. */
static json_t *object_child(json_t *o, const char *key)
{
	json_t *c = json_object_get(o, key);
	if (c || json_put(o, key, c = json_object()) == 0)
		return c;
	return NULL;
}

/* Put one value where latest_json's shape wants it. */
static void latest_build_value(void *arg, const struct latest_value *v)
{
	struct latest_build *b = arg;
	json_t *o = b->failed ? NULL : object_child(b->root, v->metric);
	if (o && v->instance)
		o = object_child(o, v->instance);
	if (!o || (v->field && json_put(o, v->field, json_number(v->value)) < 0))
		b->failed = 1;
}

/* Every metric's latest values as a new object, from latest_foreach;
 * NULL if it cannot be built. */
json_t *latest_json(const struct latest *l)
{
	struct latest_build b = {json_object(), 0};
	if (!b.root)
		return NULL;
	latest_foreach(l, latest_build_value, &b);
	if (b.failed) {
		json_decref(b.root);
		return NULL;
	}
	return b.root;
}

/* Free the values and let go of the shapes. */
void latest_free(struct shapes *s, struct latest *l)
{
	if (!l)
		return;
	for (uint32_t i = 0; i < l->n; i++) {
		free(l->e[i].rows);
		shapes_put(s, l->e[i].shape);
	}
	free(l);
}
