/* A remote_write request being assembled: series (a label set each) and
 * their samples, encoded as a WriteRequest with every series' labels
 * sorted by name and its samples in time order, snappy block compressed.
 * Pure: no I/O. */
#ifndef PIMON_RW_ENCODE_H
#define PIMON_RW_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* A label: name and value, copied by rw_batch_add. */
struct rw_label {
	const char *name;
	const char *value;
};

/* The special NaN Prometheus reads as "this series ended" (stale marker). */
#define RW_STALE_NAN_BITS 0x7ff0000000000002ull

struct rw_batch;

/* An empty batch; NULL when out of memory. */
struct rw_batch *rw_batch_new(void);
void rw_batch_free(struct rw_batch *b);

/* Forget every series and sample, keeping the memory. */
void rw_batch_reset(struct rw_batch *b);

/* Add the sample (t_ms, value) to the series of n labels (in any order;
 * at most 16). 0, or -1 when out of memory. */
int rw_batch_add(struct rw_batch *b, const struct rw_label *labels, size_t n, int64_t t_ms,
                 double value);

/* The samples added since the last reset. */
size_t rw_batch_samples(const struct rw_batch *b);

/* The earliest and latest sample times (0 when none). */
void rw_batch_span(const struct rw_batch *b, int64_t *first, int64_t *last);

/* The batch as a snappy-compressed WriteRequest in *out (malloc'd, *len
 * bytes). 0, or -1 when out of memory. */
int rw_batch_encode(struct rw_batch *b, char **out, size_t *len);

/* The stale marker as a double. */
double rw_stale_nan(void);

#endif
