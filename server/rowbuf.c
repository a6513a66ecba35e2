/* Row buffers: doubled as they fill, so a long batch costs a few
 * reallocations. */
#include "rowbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Format into the room left, growing the buffer until the text fits. */
int rowbuf_printf(struct rowbuf *b, const char *fmt, ...)
{
	for (;;) {
		size_t room = b->cap - b->len;
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return 0;
		}
		size_t cap = b->cap ? b->cap * 2 : 4096;
		while (cap - b->len <= (size_t)n)
			cap *= 2;
		char *nb = realloc(b->data, cap);
		if (!nb)
			return -1;
		b->data = nb;
		b->cap = cap;
	}
}

/* Give the memory back. */
void rowbuf_free(struct rowbuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
