/* Fuzz the frame decoder: any bytes decode, ask for more, or fail cleanly;
 * whatever decodes re-encodes to the very same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input: decode frames back to back until the bytes run out. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	struct proto_buf out = {0};
	while (off < size) {
		struct proto_msg msg;
		size_t used = 0;
		const char *err;
		if (proto_decode(data + off, size - off, PROTO_MAX_PAYLOAD, &msg, &used, &err) !=
		    PROTO_OK)
			break;
		proto_buf_reset(&out);
		if (proto_encode(&msg, &out, &err) != 0 || out.len != used ||
		    memcmp(out.data, data + off, used) != 0)
			abort();
		proto_msg_free(&msg);
		off += used;
	}
	proto_buf_free(&out);
	return 0;
}
