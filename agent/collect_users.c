/* users collector: one row per login session in utmp, named by its tty,
 * and a users_totals row of totals. */
#include "collect_int.h"
#include "collect_parse.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <utmp.h>

#include "log.h"
#include "util.h"

/* Most sessions reported in one run; later ttys are dropped with a debug line. */
#define USERS_MAX 64

_Static_assert(sizeof((struct utmp *)0)->ut_line <= USERS_LINE_MAX, "ut_line fits a session");
_Static_assert(sizeof((struct utmp *)0)->ut_user <= USERS_NAME_MAX, "ut_user fits a session");

static const char *const users_fields[USERS_NFIELDS] = {"login_time", "idle_s"};

static const char *const users_summary_fields[USERS_SUMMARY_NFIELDS] = {
    "count",
    "remote",
    "distinct_users",
};

/* Copy a utmp text field, which need not end in a NUL, into dst. */
static void users_copy_field(char *dst, const char *src, size_t size)
{
	size_t n = strnlen(src, size);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* A session from a USER_PROCESS record with a user and a tty; 0 or -1. */
static int users_from_record(const struct utmp *ut, struct users_session *s)
{
	if (ut->ut_type != USER_PROCESS)
		return -1;
	users_copy_field(s->line, ut->ut_line, sizeof ut->ut_line);
	users_copy_field(s->user, ut->ut_user, sizeof ut->ut_user);
	if (s->line[0] == '\0' || s->user[0] == '\0')
		return -1;
	s->remote = ut->ut_host[0] != '\0';
	s->login_s = ut->ut_tv.tv_sec;
	return 0;
}

/* Add s to the n sessions in out, or update the one on its tty if s is
 * newer; returns the new count. */
static size_t users_store(struct users_session *out, size_t n, size_t max,
                          const struct users_session *s)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(out[i].line, s->line) != 0)
			continue;
		if (s->login_s >= out[i].login_s)
			out[i] = *s;
		return n;
	}
	if (n == max) {
		log_debug("collect", "users: more than %zu sessions, \"%s\" dropped", max, s->line);
		return n;
	}
	out[n] = *s;
	return n + 1;
}

/* Parse fixed-size utmp records into sessions, one per tty. */
size_t users_parse_utmp(const void *buf, size_t len, struct users_session *out, size_t max)
{
	const unsigned char *p = buf;
	size_t n = 0;
	for (size_t off = 0; len - off >= sizeof(struct utmp); off += sizeof(struct utmp)) {
		struct utmp ut;
		struct users_session s;
		memcpy(&ut, p + off, sizeof ut); /* buf need not be aligned */
		if (users_from_record(&ut, &s) == 0)
			n = users_store(out, n, max, &s);
	}
	return n;
}

/* Non-zero if no session before s[i] belongs to s[i]'s user. */
static int users_first_of_user(const struct users_session *s, size_t i)
{
	for (size_t k = 0; k < i; k++) {
		if (strcmp(s[k].user, s[i].user) == 0)
			return 0;
	}
	return 1;
}

/* Count sessions, remote ones and distinct user names. */
void users_summarise(const struct users_session *s, size_t n, double out[USERS_SUMMARY_NFIELDS])
{
	size_t remote = 0, distinct = 0;
	for (size_t i = 0; i < n; i++) {
		remote += s[i].remote != 0;
		distinct += (size_t)users_first_of_user(s, i);
	}
	out[0] = (double)n;
	out[1] = (double)remote;
	out[2] = (double)distinct;
}

/* Whole seconds since the tty under ctx->dev was last used (its atime),
 * NaN when it cannot be found. */
static double users_idle(struct collect_ctx *ctx, const char *line, uint64_t now_ms)
{
	struct stat st;
	if (strstr(line, "..") || util_path_join(ctx->path, sizeof ctx->path, ctx->dev, line) < 0 ||
	    stat(ctx->path, &st) < 0)
		return NAN;
	int64_t idle = (int64_t)(now_ms / 1000) - (int64_t)st.st_atime;
	return idle > 0 ? (double)idle : 0.0;
}

/* Add one session's row, its instance the tty made safe. */
static void users_add(struct collector *col, struct collect_ctx *ctx, const struct users_session *s,
                      uint64_t now_ms)
{
	char inst[USERS_LINE_MAX + 1];
	memcpy(inst, s->line, sizeof inst);
	text_sanitise(inst);
	double idle = users_idle(ctx, s->line, now_ms);
	double *row = rowset_add(&col->rows, now_ms, inst);
	if (!row)
		return;
	row[0] = (double)s->login_s;
	row[1] = idle;
}

/* One row per session and the totals; nothing, quietly, without utmp. */
static int users_run(struct collector *col, struct collect_ctx *ctx, uint64_t now_ms)
{
	ssize_t len = collect_ctx_read_file(ctx, ctx->utmp, COLLECT_WHOLE);
	if (len < 0 && errno == ENOENT) {
		log_debug("collect", "users: %s: %s, no sessions to report", ctx->path,
		          strerror(errno));
		return 0;
	}
	if (len < 0) {
		collector_fail(col, "%s: %s", ctx->path, strerror(errno));
		return -1;
	}
	struct users_session s[USERS_MAX];
	size_t n = users_parse_utmp(ctx->buf, (size_t)len, s, USERS_MAX);
	for (size_t i = 0; i < n; i++)
		users_add(col, ctx, &s[i], now_ms);
	double *sum = rowset_add(&col->summary, now_ms, "");
	if (sum)
		users_summarise(s, n, sum);
	return 0;
}

const struct collector_ops users_ops = {
    .metric = "users",
    .inst_key = "tty",
    .fields = users_fields,
    .nfields = USERS_NFIELDS,
    .summary_metric = "users_totals",
    .summary_fields = users_summary_fields,
    .summary_nfields = USERS_SUMMARY_NFIELDS,
    .run = users_run,
};
