/* The rules every string of the protocol follows: text, host names, keys,
 * and the names the server keeps for its own files. PROTOCOL.md "Strings"
 * states them; the codec applies them to every field it decodes and
 * encodes, so whatever passes proto_decode may be trusted downstream. */
#include "proto.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Metric names the server uses for files of its own in a host's folder. */
static const char *const reserved_metrics[] = {"alarms", "events"};

/* Bytes of the UTF-8 sequence starting at s (at most n available) that
 * encodes one allowed character, or 0 if none does. Allowed: any scalar
 * value but C0 controls, DEL, surrogates; no overlong forms. */
static size_t text_char(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c < 0x20 || c == 0x7f)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0) /* overlong */
			return 0;
		if (c == 0xed && s[1] >= 0xa0) /* surrogate */
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90) /* overlong */
			return 0;
		if (c == 0xf4 && s[1] >= 0x90) /* past U+10FFFF */
			return 0;
		return 4;
	}
	return 0;
}

/* Whether the n bytes at s are text: valid UTF-8 without control characters. */
bool proto_text_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		k = text_char(p + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* Copy src (n bytes) to dst as text of at most max bytes (dst holds max + 1):
 * each byte that breaks the text rule becomes "\xNN", and the copy stops at
 * the last whole character that fits. Returns the bytes written. */
size_t proto_text_clean(char *dst, size_t max, const char *src, size_t n)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t i = 0, o = 0, k;

	while (i < n) {
		k = text_char(p + i, n - i);
		if (k == 0) {
			if (o + 4 > max)
				break;
			snprintf(dst + o, 5, "\\x%02x", p[i]);
			o += 4;
			i++;
			continue;
		}
		if (o + k > max)
			break;
		memcpy(dst + o, p + i, k);
		o += k;
		i += k;
	}
	dst[o] = '\0';
	return o;
}

/* Whether s is a host name: 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -. */
bool proto_host_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PROTO_NAME_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* Whether the n bytes at s are a port: 1..65535 in decimal, no leading zero. */
static bool port_valid(const char *s, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v <= 65535;
}

/* Whether s is a server address: "host:port" or "[v6]:port". */
bool proto_addr_valid(const char *s)
{
	size_t n = strlen(s);
	const char *colon;
	size_t hl;

	if (n == 0 || n > PROTO_ADDR_MAX)
		return false;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || close == s + 1)
			return false;
		for (const char *p = s + 1; p < close; p++)
			if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
			      (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
				return false;
		return port_valid(close + 2, strlen(close + 2));
	}
	colon = strchr(s, ':');
	if (!colon || strchr(colon + 1, ':'))
		return false;
	hl = (size_t)(colon - s);
	if (hl == 0 || hl > 253 || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < hl; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return port_valid(colon + 1, n - hl - 1);
}

/* Whether s is a key (metric, instance key, field or alarm name): 1..32 of a-z 0-9 _. */
bool proto_key_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PROTO_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return true;
}

/* Whether a metric may not be called s: the server's own files take the name. */
bool proto_metric_reserved(const char *s)
{
	for (size_t i = 0; i < sizeof reserved_metrics / sizeof reserved_metrics[0]; i++)
		if (strcmp(s, reserved_metrics[i]) == 0)
			return true;
	return false;
}

/* The reserved metric names, NULL-terminated, for documentation and messages. */
const char *proto_reserved_metric(size_t i)
{
	return i < sizeof reserved_metrics / sizeof reserved_metrics[0] ? reserved_metrics[i]
	                                                                : NULL;
}
