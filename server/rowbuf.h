/* A growable text buffer for rows formatted before one write. */
#ifndef PIMON_ROWBUF_H
#define PIMON_ROWBUF_H

#include <stddef.h>

struct rowbuf {
	char *data;
	size_t len, cap;
};

/* Append printf-style text; -1 when out of memory (the buffer keeps what
 * it had). */
__attribute__((format(printf, 2, 3))) int rowbuf_printf(struct rowbuf *b, const char *fmt, ...);

/* Free the text; the buffer is empty and reusable. */
void rowbuf_free(struct rowbuf *b);

#endif
