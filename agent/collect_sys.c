/* System facts for HELLO: OS name, kernel, board model, boot id, uptime. */
#include "collect_int.h"
#include "collect_parse.h"

#include <string.h>

#include "util.h"

/* Unquote an os-release value ("...", '...' or bare) into out, cut on a
 * UTF-8 boundary. */
static void sys_unquote(const char *v, char *out, size_t size)
{
	char full[2 * PROTO_TEXT_MAX + 2];
	char q = (*v == '"' || *v == '\'') ? *v++ : '\0';
	size_t n = 0;
	for (; *v && *v != '\n' && n + 1 < sizeof full; v++) {
		if (q && *v == q)
			break;
		if (q == '"' && v[0] == '\\' && v[1] && v[1] != '\n')
			v++;
		full[n++] = *v;
	}
	full[n] = '\0';
	text_trim_end(full);
	text_copy(out, size, full);
}

/* The value of KEY= at the start of a line of buf, or NULL. */
static const char *sys_find_key(const char *buf, const char *key)
{
	size_t n = strlen(key);
	for (const char *p = buf; p; p = text_next_line(p)) {
		if (strncmp(p, key, n) == 0 && p[n] == '=')
			return p + n + 1;
	}
	return NULL;
}

/* PRETTY_NAME, else NAME, else "Linux". */
void sys_parse_os_release(const char *buf, char *out, size_t size)
{
	const char *v = sys_find_key(buf, "PRETTY_NAME");
	if (!v || *v == '\n' || *v == '\0')
		v = sys_find_key(buf, "NAME");
	if (v)
		sys_unquote(v, out, size);
	if (!v || out[0] == '\0')
		text_copy(out, size, "Linux");
}

/* Whole seconds of the first number in /proc/uptime. */
uint64_t sys_parse_uptime(const char *buf)
{
	uint64_t s;
	const char *p = buf;
	return text_next_u64(&p, &s) == 0 ? s : 0;
}

/* Read root/rel into out, trimmed and cut to size; "" when unreadable. */
static int sys_read_text(struct collect_ctx *ctx, const char *root, const char *rel, char *out,
                         size_t size)
{
	out[0] = '\0';
	if (collect_ctx_read(ctx, root, rel, COLLECT_ONCE) < 0)
		return -1;
	/* Device-tree strings end in a NUL; text_trim_end stops there. */
	text_trim_end(ctx->buf);
	const char *s = ctx->buf;
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	text_copy(out, size, s);
	return out[0] ? 0 : -1;
}

/* Read the OS name, with the os-release spec's fallback location. */
static void sys_read_os(struct collect_ctx *ctx, char *out, size_t size)
{
	const char *path = ctx->os_release;
	ssize_t n = util_read_file(path, ctx->buf, ctx->size);
	if (n < 0 && strcmp(path, "/etc/os-release") == 0)
		n = util_read_file("/usr/lib/os-release", ctx->buf, ctx->size);
	sys_parse_os_release(n < 0 ? "" : ctx->buf, out, size);
}

/* Gather every fact; the board model comes from the device tree if any. */
void sys_read(struct collect_ctx *ctx, struct sys_facts *f)
{
	sys_read_os(ctx, f->os, sizeof f->os);
	sys_read_text(ctx, ctx->proc, "sys/kernel/osrelease", f->kernel, sizeof f->kernel);
	if (sys_read_text(ctx, ctx->sys, "firmware/devicetree/base/model", f->model,
	                  sizeof f->model) < 0)
		sys_read_text(ctx, ctx->proc, "device-tree/model", f->model, sizeof f->model);
	sys_read_text(ctx, ctx->proc, "sys/kernel/random/boot_id", f->boot_id, sizeof f->boot_id);
	f->uptime_s = 0;
	if (collect_ctx_read(ctx, ctx->proc, "uptime", 0) >= 0)
		f->uptime_s = sys_parse_uptime(ctx->buf);
}
