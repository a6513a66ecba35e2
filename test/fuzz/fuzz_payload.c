/* Fuzz each message's payload parser (HELLO and its auth field, METRICS,
 * ...): the first byte picks the type, the rest is the payload behind a
 * valid header, so the fuzzer spends its time past the header checks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One input: a header for type data[0] and payload data[1..]. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size - 1 > PROTO_MAX_PAYLOAD)
		return 0;
	size_t len = size - 1;
	uint8_t *frame = malloc(PROTO_HEADER_SIZE + len);
	if (!frame)
		return 0;
	frame[0] = PROTO_MAGIC >> 8;
	frame[1] = PROTO_MAGIC & 0xff;
	frame[2] = PROTO_VERSION;
	frame[3] = (uint8_t)(1 + data[0] % 8);
	for (int i = 0; i < 4; i++)
		frame[4 + i] = (uint8_t)(len >> (24 - 8 * i));
	memcpy(frame + PROTO_HEADER_SIZE, data + 1, len);
	struct proto_msg msg;
	size_t used;
	const char *err;
	if (proto_decode(frame, PROTO_HEADER_SIZE + len, PROTO_MAX_PAYLOAD, &msg, &used, &err) ==
	    PROTO_OK) {
		struct proto_buf out = {0};
		if (proto_encode(&msg, &out, &err) != 0 || out.len != used ||
		    memcmp(out.data, frame, used) != 0)
			abort();
		proto_buf_free(&out);
		proto_msg_free(&msg);
	}
	free(frame);
	return 0;
}
