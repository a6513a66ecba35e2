/* Agent checks: each configured command runs in a child of its own process
 * group on the agent's base; its output comes through a non-blocking pipe,
 * the group is killed at the timeout, and the Nagios-style result goes to
 * the owner's callback. */
#include "checks.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* After the SIGKILL at a timeout, how long the process may take to be
 * reaped before the result is reported anyway (it may be stuck in the
 * kernel, e.g. on a dead NFS mount); it is reaped whenever it goes. */
#define CHECKS_REAP_GRACE_MS 2000
/* Reads per wakeup, so that a check flooding its pipe cannot hold the base. */
#define CHECKS_READS_PER_WAKEUP 16
/* How long checks_destroy waits for killed processes to be reaped. */
#define CHECKS_DESTROY_WAIT_MS 2000
/* New checks start spread over this many ms after checks_configure. */
#define CHECKS_FIRST_SPREAD_MS 800
/* Longest interval or timeout accepted, s. */
#define CHECKS_SECONDS_MAX 1e7
/* What the child writes before exiting 127 when execv fails. */
#define CHECKS_EXEC_FAILED "cannot run "

/* One configured check and its run in progress, if any. */
struct check {
	struct checks *owner;
	char name[PROTO_KEY_MAX + 1];
	char metric[PROTO_KEY_MAX + 1]; /* "check_<name>", cut to a key */
	char **argv;                    /* NULL-terminated copy of the command */
	uint64_t interval_ms;
	double timeout;         /* s */
	uint64_t next_ms;       /* monotonic time of the next run */
	struct event *timer;    /* the next run */
	struct event *deadline; /* the run's timeout, then the grace after the kill */
	int fresh;              /* created by the checks_configure in progress */
	int kept;               /* named again by the checks_configure in progress */
	/* The run in progress, when pid is not 0. */
	pid_t pid;            /* also the process group */
	int fd;               /* read end of the output pipe; -1 after EOF */
	struct event *reader; /* on fd */
	char *out;            /* the first CHECK_OUTPUT_MAX bytes of output */
	size_t len;           /* bytes in out */
	int cut;              /* more output was read and thrown away */
	double run_timeout;   /* s, as it was when the run started */
	uint64_t start_ms;    /* monotonic */
	uint64_t end_ms;      /* monotonic, when reaped */
	int reaped;           /* waitpid has given its status */
	int lost;             /* someone else reaped it: status unknown */
	int wstatus;          /* from waitpid */
	int timed_out;        /* killed at the timeout */
	int reported;         /* result already given (the kill did not take) */
};

struct checks {
	struct event_base *base;
	checks_result_fn fn;
	void *arg;
	struct event *sigchld;
	struct check **list;
	size_t n;
	pid_t *dying; /* killed processes of removed checks, not reaped yet */
	size_t ndying, dying_cap;
	uint64_t skipped;
};

static void check_timer_cb(evutil_socket_t fd, short what, void *arg);
static void check_deadline_cb(evutil_socket_t fd, short what, void *arg);
static void check_read_cb(evutil_socket_t fd, short what, void *arg);

/* ---- Parsing a plugin's output ---- */

/* A unit of measure perfdata may carry: the field name's suffix and the
 * factor to seconds or bytes. Byte units are powers of 1024, as
 * Monitoring-Plugins use them. */
struct unit {
	const char *uom;
	const char *suffix;
	double factor;
};

static const struct unit units[] = {
    {"%", "_pct", 1.0},
    {"s", "_s", 1.0},
    {"ms", "_s", 1e-3},
    {"us", "_s", 1e-6},
    {"B", "_bytes", 1.0},
    {"KB", "_bytes", 1024.0},
    {"MB", "_bytes", 1048576.0},
    {"GB", "_bytes", 1073741824.0},
    {"TB", "_bytes", 1099511627776.0},
    {"KiB", "_bytes", 1024.0},
    {"MiB", "_bytes", 1048576.0},
    {"GiB", "_bytes", 1073741824.0},
    {"TiB", "_bytes", 1099511627776.0},
    {"c", "_total", 1.0},
};

/* Non-zero for the blanks around a message and between perfdata items. */
static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Non-zero for an ASCII digit. */
static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Copy n bytes of s into dst (PROTO_TEXT_MAX + 1 bytes) as a message:
 * blanks trimmed at both ends, cut to PROTO_TEXT_MAX bytes at a UTF-8
 * boundary, control bytes turned into spaces, other bytes that are not
 * UTF-8 into \xNN. */
static void text_copy(char *dst, const char *s, size_t n)
{
	while (n && is_blank(*s)) {
		s++;
		n--;
	}
	while (n && is_blank(s[n - 1]))
		n--;
	if (n > PROTO_TEXT_MAX) {
		n = PROTO_TEXT_MAX;
		/* s[n] is the first byte dropped; drop the rest of its character. */
		for (int i = 0; i < 3 && n && ((unsigned char)s[n] & 0xc0) == 0x80; i++)
			n--;
		while (n && is_blank(s[n - 1]))
			n--;
	}
	char spaced[PROTO_TEXT_MAX];
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		spaced[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
	}
	/* What is still not UTF-8 text is written as \xNN. */
	proto_text_clean(dst, PROTO_TEXT_MAX, spaced, n);
}

/* Format a message into dst (PROTO_TEXT_MAX + 1 bytes), cut as text_copy
 * cuts. */
static void __attribute__((format(printf, 2, 3))) text_format(char *dst, const char *fmt, ...)
{
	char buf[2 * PROTO_TEXT_MAX + 128];
	va_list ap;
	va_start(ap, fmt);
	if (vsnprintf(buf, sizeof buf, fmt, ap) < 0)
		buf[0] = '\0';
	va_end(ap);
	text_copy(dst, buf, strnlen(buf, sizeof buf));
}

/* Build a field name in out: label lowercased, anything outside [a-z0-9]
 * as one '_' between words, "value" when nothing is left, then suffix and
 * tail, the label part cut so that the whole is at most PROTO_KEY_MAX. */
static void field_name(char *out, const char *label, size_t n, const char *suffix, const char *tail)
{
	size_t room = PROTO_KEY_MAX - strlen(suffix) - strlen(tail);
	size_t k = 0;
	int gap = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = label[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		if (!((ch >= 'a' && ch <= 'z') || is_digit(ch))) {
			gap = 1;
			continue;
		}
		if (gap && k > 0) {
			if (k + 2 > room)
				break;
			out[k++] = '_';
		}
		if (k + 1 > room)
			break;
		out[k++] = ch;
		gap = 0;
	}
	if (k == 0) {
		memcpy(out, "value", 5);
		k = 5;
	}
	out[k] = '\0';
	strcat(out, suffix);
	strcat(out, tail);
}

/* Non-zero if name is already a field of the group p describes. */
static int name_taken(const struct check_parsed *p, const char *name)
{
	if (strcmp(name, "status") == 0 || strcmp(name, "duration_s") == 0)
		return 1;
	for (size_t i = 0; i < p->nperf; i++)
		if (strcmp(p->names[i], name) == 0)
			return 1;
	return 0;
}

/* Scan a perfdata number ([-+]digits[.digits][e[-+]digits]) at s; the
 * bytes used, or 0 when it is not one. */
static size_t scan_number(const char *s, size_t n, double *v)
{
	size_t i = 0, digits = 0;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	for (; i < n && is_digit(s[i]); i++)
		digits++;
	if (i < n && s[i] == '.')
		for (i++; i < n && is_digit(s[i]); i++)
			digits++;
	if (digits == 0)
		return 0;
	if (i + 1 < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t j = i + 1;
		if (j < n && (s[j] == '-' || s[j] == '+'))
			j++;
		size_t first = j;
		while (j < n && is_digit(s[j]))
			j++;
		if (j > first)
			i = j;
	}
	char buf[64];
	if (i >= sizeof buf)
		return 0;
	memcpy(buf, s, i);
	buf[i] = '\0';
	*v = strtod(buf, NULL);
	return isfinite(*v) ? i : 0;
}

/* One "label=value[UOM];..." item: add its field, or count it skipped. */
static void perf_item(struct check_parsed *p, const char *label, size_t llen, const char *val,
                      size_t vlen)
{
	double v;
	size_t used = scan_number(val, vlen, &v);
	if (used == 0) {
		p->nskipped++; /* "U", empty or not a number */
		return;
	}
	size_t end = used;
	while (end < vlen && val[end] != ';')
		end++;
	const char *uom = val + used;
	size_t ulen = end - used;
	if (ulen > 8) {
		p->nskipped++;
		return;
	}
	for (size_t i = 0; i < ulen; i++) {
		char ch = uom[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '%')) {
			p->nskipped++;
			return;
		}
	}
	if (p->nperf == CHECK_PERF_MAX) {
		p->nskipped++;
		return;
	}
	const char *suffix = ""; /* an unknown unit keeps the value as it is */
	double factor = 1.0;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strlen(units[i].uom) == ulen && memcmp(units[i].uom, uom, ulen) == 0) {
			suffix = units[i].suffix;
			factor = units[i].factor;
			break;
		}
	}
	char *name = p->names[p->nperf];
	field_name(name, label, llen, suffix, "");
	for (unsigned k = 2; name_taken(p, name); k++) {
		char tail[16];
		snprintf(tail, sizeof tail, "_%u", k);
		field_name(name, label, llen, suffix, tail);
	}
	p->values[p->nperf++] = v * factor;
}

/* Split n bytes of perfdata into items separated by blanks; labels may be
 * quoted with single quotes ('' for a quote) and then hold blanks. */
static void perf_parse(struct check_parsed *p, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && is_blank(s[i]))
			i++;
		if (i == n)
			break;
		const char *label;
		size_t llen;
		int quoted = s[i] == '\'';
		if (quoted) {
			size_t j = i + 1;
			for (;;) {
				const char *q = memchr(s + j, '\'', n - j);
				if (!q) {
					p->nskipped++; /* unterminated: nothing after it is usable
					                */
					return;
				}
				j = (size_t)(q - s);
				if (j + 1 < n && s[j + 1] == '\'') {
					j += 2;
					continue;
				}
				break;
			}
			label = s + i + 1;
			llen = j - i - 1;
			i = j + 1;
		} else {
			label = s + i;
			while (i < n && !is_blank(s[i]) && s[i] != '=')
				i++;
			llen = (size_t)(s + i - label);
		}
		/* An unquoted label may not be empty; "''=1" is "value". */
		if (i == n || s[i] != '=' || (llen == 0 && !quoted)) {
			while (i < n && !is_blank(s[i]))
				i++;
			p->nskipped++;
			continue;
		}
		size_t v0 = ++i;
		while (i < n && !is_blank(s[i]))
			i++;
		perf_item(p, label, llen, s + v0, i - v0);
	}
}

/* Split a plugin's output into its message and perfdata fields. */
size_t checks_parse(const char *out, size_t len, struct check_parsed *p)
{
	p->message[0] = '\0';
	p->nperf = 0;
	p->nskipped = 0;
	if (len == 0)
		return 0;
	const char *nl = memchr(out, '\n', len);
	size_t first = nl ? (size_t)(nl - out) : len;
	const char *bar = memchr(out, '|', first);
	text_copy(p->message, out, bar ? (size_t)(bar - out) : first);
	if (bar)
		perf_parse(p, bar + 1, first - (size_t)(bar + 1 - out));
	if (nl) {
		/* Long output: everything after the first '|' of the later lines. */
		const char *rest = nl + 1;
		size_t rlen = len - first - 1;
		const char *bar2 = memchr(rest, '|', rlen);
		if (bar2)
			perf_parse(p, bar2 + 1, rlen - (size_t)(bar2 + 1 - rest));
	}
	return p->nperf;
}

/* Name of a status. */
const char *checks_status_name(enum check_status s)
{
	switch (s) {
	case CHECK_OK:
		return "OK";
	case CHECK_WARNING:
		return "WARNING";
	case CHECK_CRITICAL:
		return "CRITICAL";
	case CHECK_UNKNOWN:
		break;
	}
	return "UNKNOWN";
}

/* ---- Runs ---- */

/* Milliseconds as a timeval. */
static struct timeval ms_tv(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	return tv;
}

/* Seconds from the config as milliseconds, at least 1. */
static uint64_t seconds_ms(double s)
{
	uint64_t ms = (uint64_t)(s * 1000.0 + 0.5);
	return ms ? ms : 1;
}

/* Hand one result to the owner. Everything it points to is on this stack,
 * so the callback may reconfigure (and free the check) as it likes. */
static void checks_report(struct checks *c, const struct check *k, enum check_status status,
                          const char *message, const struct check_parsed *perf, double duration_s)
{
	char name[PROTO_KEY_MAX + 1], metric[PROTO_KEY_MAX + 1];
	memcpy(name, k->name, sizeof name);
	memcpy(metric, k->metric, sizeof metric);
	const char *fields[PROTO_MAX_FIELDS] = {"status", "duration_s"};
	double values[PROTO_MAX_FIELDS] = {(double)status, duration_s};
	size_t nfields = 2;
	for (size_t i = 0; perf && i < perf->nperf; i++) {
		fields[nfields] = perf->names[i];
		values[nfields++] = perf->values[i];
	}
	uint64_t now = util_now_ms();
	struct proto_row row = {now, "", values};
	struct proto_group group = {metric, "", (uint8_t)nfields, fields, 1, &row};
	struct check_result r = {name, status, message, now, &group};
	log_debug("checks", "%s: %s: %s (%.2f s)", name, checks_status_name(status), message,
	          duration_s);
	c->fn(c->arg, &r);
}

/* Stop reading k's output: EOF, a read error or the kill at the timeout. */
static void check_close_pipe(struct check *k)
{
	if (k->reader) {
		event_free(k->reader);
		k->reader = NULL;
	}
	if (k->fd >= 0) {
		close(k->fd);
		k->fd = -1;
	}
}

/* Forget k's run; the process must be reaped or handed to c->dying. */
static void check_end_run(struct check *k)
{
	check_close_pipe(k);
	evtimer_del(k->deadline);
	free(k->out);
	k->out = NULL;
	k->len = 0;
	k->cut = 0;
	k->pid = 0;
	k->reaped = k->lost = k->wstatus = 0;
	k->timed_out = k->reported = 0;
}

/* Collect k's child if it has exited; non-zero once it is reaped. */
static int check_reap(struct check *k)
{
	if (k->reaped)
		return 1;
	int st = 0;
	pid_t r;
	do
		r = waitpid(k->pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return 0;
	k->reaped = 1;
	k->lost = r < 0; /* ECHILD: reaped by someone else */
	k->wstatus = st;
	k->end_ms = util_mono_ms();
	return 1;
}

/* The run is over (reaped, output ended or given up): end it and report
 * what it came to, unless that was done already. Reporting is the last
 * thing: the callback may free k. */
static void check_finish(struct checks *c, struct check *k)
{
	struct check_parsed parsed;
	char msg[PROTO_TEXT_MAX + 1];
	enum check_status status = CHECK_UNKNOWN;
	const struct check_parsed *perf = NULL;
	size_t len = k->len;
	if (k->cut) {
		/* Only whole lines: a cut item would give a wrong value. */
		while (len > 0 && k->out[len - 1] != '\n')
			len--;
		if (len == 0)
			len = k->len;
	}
	checks_parse(k->out, len, &parsed);
	const char *said = parsed.message[0] ? parsed.message : "no output";
	if (k->timed_out) {
		text_format(msg, "timed out after %.1f s", k->run_timeout);
	} else if (k->lost) {
		text_format(msg, "exit status lost: the process was reaped elsewhere");
	} else if (WIFEXITED(k->wstatus)) {
		int code = WEXITSTATUS(k->wstatus);
		perf = &parsed;
		if (code <= CHECK_UNKNOWN) {
			status = (enum check_status)code;
			text_format(msg, "%s", said);
		} else if (code == 127 && strncmp(parsed.message, CHECKS_EXEC_FAILED,
		                                  strlen(CHECKS_EXEC_FAILED)) == 0) {
			text_format(msg, "%s", parsed.message);
			log_warn("checks", "%s: %s", k->name, msg);
		} else if (parsed.message[0]) {
			text_format(msg, "unexpected exit status %d: %s", code, parsed.message);
		} else {
			text_format(msg, "unexpected exit status %d", code);
		}
	} else if (WIFSIGNALED(k->wstatus)) {
		int sig = WTERMSIG(k->wstatus);
		const char *abbrev = sigabbrev_np(sig);
		char signame[32];
		if (abbrev)
			snprintf(signame, sizeof signame, "SIG%s", abbrev);
		else
			snprintf(signame, sizeof signame, "signal %d", sig);
		if (parsed.message[0])
			text_format(msg, "killed by %s: %s", signame, parsed.message);
		else
			text_format(msg, "killed by %s", signame);
	} else {
		text_format(msg, "ended with wait status %#x", (unsigned)k->wstatus);
	}
	uint64_t end = k->reaped ? k->end_ms : util_mono_ms();
	double duration = (double)(end - k->start_ms) / 1000.0;
	int reported = k->reported;
	check_end_run(k);
	if (!reported)
		checks_report(c, k, status, msg, perf, duration);
}

/* Move k's run on: it is over once the child is reaped and its output has
 * ended. */
static void check_progress(struct checks *c, struct check *k)
{
	if (k->pid && k->fd < 0 && check_reap(k))
		check_finish(c, k);
}

/* Write s to fd, as far as it goes. Async-signal-safe. */
static void write_str(int fd, const char *s)
{
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

/* In the child: its own process group, default signal handling, stdin
 * from /dev/null, stdout and stderr to the pipe, no other descriptor; then
 * the command, or 127 with a line saying why not. Async-signal-safe calls
 * only. */
static void __attribute__((noreturn)) child_exec(char **argv, int null, int out, int maxfd)
{
	setpgid(0, 0);
	for (int s = 1; s < NSIG; s++) {
		struct sigaction old;
		if (sigaction(s, NULL, &old) == 0 && old.sa_handler != SIG_DFL) {
			struct sigaction dfl = {.sa_handler = SIG_DFL};
			sigemptyset(&dfl.sa_mask);
			sigaction(s, &dfl, NULL);
		}
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Above 2 first, so the dup2s below cannot clobber one with the other. */
	int o = fcntl(out, F_DUPFD, 3), i = fcntl(null, F_DUPFD, 3);
	if (o < 0 || i < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0)
		_exit(127);
	if (close_range(3, ~0u, 0) < 0)
		for (int fd = 3; fd < maxfd; fd++)
			close(fd);
	execv(argv[0], argv);
	const char *why = strerrordesc_np(errno);
	write_str(1, CHECKS_EXEC_FAILED);
	write_str(1, argv[0]);
	write_str(1, ": ");
	write_str(1, why ? why : "error");
	write_str(1, "\n");
	_exit(127);
}

/* Start a run of k: a child in its own process group writing to a pipe
 * read on the base. When that cannot be done, say so and report UNKNOWN;
 * that report is the last thing, as it may free k. */
static void check_start(struct checks *c, struct check *k)
{
	int fds[2] = {-1, -1}, null = -1, err = 0;
	const char *what = "out of memory";
	long maxfd = sysconf(_SC_OPEN_MAX);
	if (maxfd < 0 || maxfd > 65536)
		maxfd = 65536;
	k->out = malloc(CHECK_OUTPUT_MAX);
	if (!k->out)
		goto fail;
	if (pipe2(fds, O_CLOEXEC) < 0 || fcntl(fds[0], F_SETFL, O_NONBLOCK) < 0) {
		err = errno;
		what = "pipe";
		goto fail;
	}
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0) {
		err = errno;
		what = "/dev/null";
		goto fail;
	}
	k->reader = event_new(c->base, fds[0], EV_READ | EV_PERSIST, check_read_cb, k);
	if (!k->reader)
		goto fail;
	/* No signal handler of ours may run in the child before exec. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	k->start_ms = util_mono_ms();
	pid_t pid = fork();
	if (pid == 0)
		child_exec(k->argv, null, fds[1], (int)maxfd);
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		what = "fork";
		goto fail;
	}
	setpgid(pid, pid); /* as the child does: whichever runs first */
	close(fds[1]);
	close(null);
	k->pid = pid;
	k->fd = fds[0];
	event_add(k->reader, NULL);
	k->run_timeout = k->timeout;
	struct timeval tv = ms_tv(seconds_ms(k->run_timeout));
	evtimer_add(k->deadline, &tv);
	log_debug("checks", "%s: started %s as pid %d", k->name, k->argv[0], (int)pid);
	return;
fail:
	if (k->reader) {
		event_free(k->reader);
		k->reader = NULL;
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (null >= 0)
		close(null);
	free(k->out);
	k->out = NULL;
	char msg[PROTO_TEXT_MAX + 1];
	if (err)
		text_format(msg, "cannot start: %s: %s", what, strerror(err));
	else
		text_format(msg, "cannot start: %s", what);
	log_warn("checks", "%s: %s", k->name, msg);
	checks_report(c, k, CHECK_UNKNOWN, msg, NULL, 0.0);
}

/* Output is ready: keep the first CHECK_OUTPUT_MAX bytes, throw the rest
 * away so the child never blocks on a full pipe. */
static void check_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check *k = arg;
	char discard[16384];
	for (int i = 0; i < CHECKS_READS_PER_WAKEUP; i++) {
		ssize_t n;
		if (k->len < CHECK_OUTPUT_MAX)
			n = read(fd, k->out + k->len, CHECK_OUTPUT_MAX - k->len);
		else
			n = read(fd, discard, sizeof discard);
		if (n > 0) {
			if (k->len < CHECK_OUTPUT_MAX)
				k->len += (size_t)n;
			else
				k->cut = 1;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0)
			log_warn("checks", "%s: reading its output: %s", k->name, strerror(errno));
		check_close_pipe(k); /* EOF, or an error that ends the output all the same */
		check_progress(k->owner, k);
		return;
	}
}

/* The run's timeout, or the grace after the kill at the timeout. */
static void check_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check *k = arg;
	struct checks *c = k->owner;
	if (k->timed_out) {
		/* Killed CHECKS_REAP_GRACE_MS ago and still there: report now; the
		 * next runs are skipped until it is reaped. */
		log_warn("checks", "%s: pid %d is still there %.1f s after SIGKILL", k->name,
		         (int)k->pid, CHECKS_REAP_GRACE_MS / 1000.0);
		char msg[PROTO_TEXT_MAX + 1];
		text_format(msg, "timed out after %.1f s", k->run_timeout);
		k->reported = 1;
		checks_report(c, k, CHECK_UNKNOWN, msg, NULL,
		              (double)(util_mono_ms() - k->start_ms) / 1000.0);
		return;
	}
	int exited = k->reaped; /* and something it started holds the pipe */
	if (kill(-k->pid, SIGKILL) < 0 && errno != ESRCH)
		log_warn("checks", "%s: cannot kill process group %d: %s", k->name, (int)k->pid,
		         strerror(errno));
	if (!exited)
		kill(k->pid, SIGKILL); /* in case it left its group */
	check_close_pipe(k);
	if (!exited) {
		log_info("checks", "%s: timed out after %.1f s; process group %d killed", k->name,
		         k->run_timeout, (int)k->pid);
		k->timed_out = 1;
		if (!check_reap(k)) {
			struct timeval tv = ms_tv(CHECKS_REAP_GRACE_MS);
			evtimer_add(k->deadline, &tv);
			return;
		}
	}
	check_finish(c, k);
}

/* Reap what can be reaped of the removed checks' processes. */
static void checks_reap_dying(struct checks *c)
{
	for (size_t i = 0; i < c->ndying;) {
		pid_t r = waitpid(c->dying[i], NULL, WNOHANG);
		if (r == 0 || (r < 0 && errno == EINTR)) {
			i++;
			continue;
		}
		c->dying[i] = c->dying[--c->ndying];
	}
}

/* SIGCHLD: reap every child of ours that has exited and move its run on.
 * The scan starts again after each result, as the callback may have
 * reconfigured. */
static void checks_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct checks *c = arg;
	checks_reap_dying(c);
again:
	for (size_t i = 0; i < c->n; i++) {
		struct check *k = c->list[i];
		if (k->pid && !k->reaped && check_reap(k) && k->fd < 0) {
			check_finish(c, k);
			goto again;
		}
	}
}

/* Arm k's timer for k->next_ms (at once if that has passed). */
static void check_arm(struct check *k, uint64_t now)
{
	struct timeval tv = ms_tv(k->next_ms > now ? k->next_ms - now : 0);
	evtimer_add(k->timer, &tv);
}

/* Time for a run: start it, or skip it while the previous one goes on. */
static void check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check *k = arg;
	uint64_t now = util_mono_ms();
	/* The next run, one interval on; any that were missed are skipped. */
	k->next_ms += k->interval_ms;
	if (k->next_ms <= now)
		k->next_ms += ((now - k->next_ms) / k->interval_ms + 1) * k->interval_ms;
	check_arm(k, now);
	if (k->pid) {
		k->owner->skipped++;
		log_debug("checks", "%s: still running after %.1f s; this run is skipped", k->name,
		          (double)(now - k->start_ms) / 1000.0);
		return;
	}
	check_start(k->owner, k);
}

/* End k's run without a result: kill its process group; a child that is
 * not reaped yet goes to c->dying, which MUST have room for it. */
static void check_abort(struct checks *c, struct check *k)
{
	if (!k->pid)
		return;
	kill(-k->pid, SIGKILL);
	if (!k->reaped) {
		kill(k->pid, SIGKILL);
		if (!check_reap(k))
			c->dying[c->ndying++] = k->pid;
	}
	log_debug("checks", "%s: run of pid %d killed", k->name, (int)k->pid);
	check_end_run(k);
}

/* Free a copy made by argv_copy. */
static void argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* Free a check that has no run. */
static void check_free(struct check *k)
{
	if (!k)
		return;
	if (k->timer)
		event_free(k->timer);
	if (k->deadline)
		event_free(k->deadline);
	argv_free(k->argv);
	free(k);
}

/* A new check called name, with its timers, no command yet. */
static struct check *check_new(struct checks *c, const char *name)
{
	struct check *k = calloc(1, sizeof *k);
	if (!k)
		return NULL;
	k->owner = c;
	k->fd = -1;
	snprintf(k->name, sizeof k->name, "%s", name);
	snprintf(k->metric, sizeof k->metric, "check_%s", name);
	k->timer = evtimer_new(c->base, check_timer_cb, k);
	k->deadline = evtimer_new(c->base, check_deadline_cb, k);
	if (!k->timer || !k->deadline) {
		check_free(k);
		return NULL;
	}
	return k;
}

/* A NULL-terminated copy of n arguments, or NULL. */
static char **argv_copy(char *const *src, size_t n)
{
	char **argv = calloc(n + 1, sizeof *argv);
	if (!argv)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		argv[i] = strdup(src[i]);
		if (!argv[i]) {
			argv_free(argv);
			return NULL;
		}
	}
	return argv;
}

/* Non-zero if the entry can be run; otherwise log why not. */
static int check_usable(const struct pimon_check *pc)
{
	const char *why = NULL;
	if (!pc->name || !util_valid_key(pc->name))
		why = "the name must be 1 to 32 of [a-z0-9_]";
	else if (!pc->command || pc->ncommand == 0 || !pc->command[0] || !pc->command[0][0])
		why = "no command";
	else if (!(pc->interval > 0 && pc->interval < CHECKS_SECONDS_MAX) ||
	         !(pc->timeout > 0 && pc->timeout < CHECKS_SECONDS_MAX))
		why = "interval and timeout must be positive";
	for (size_t i = 0; !why && i < pc->ncommand; i++)
		if (!pc->command[i])
			why = "a command argument is missing";
	if (why)
		log_warn("checks", "check '%s' left out: %s", pc->name ? pc->name : "", why);
	return why == NULL;
}

/* The configured check called name, or NULL. */
static struct check *checks_find(struct checks *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->list[i]->name, name) == 0)
			return c->list[i];
	return NULL;
}

/* Create the runner; it watches SIGCHLD on base from now on. */
struct checks *checks_create(struct event_base *base, checks_result_fn fn, void *arg)
{
	struct checks *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->base = base;
	c->fn = fn;
	c->arg = arg;
	c->sigchld = evsignal_new(base, SIGCHLD, checks_sigchld_cb, c);
	if (!c->sigchld || evsignal_add(c->sigchld, NULL) < 0) {
		log_err("checks", "cannot watch SIGCHLD");
		if (c->sigchld)
			event_free(c->sigchld);
		free(c);
		return NULL;
	}
	return c;
}

/* Replace the set of checks; every allocation comes before the first
 * change, so on failure the old set stays as it was. */
int checks_configure(struct checks *c, const struct pimon_check *list, size_t n)
{
	struct check **next = calloc(n ? n : 1, sizeof *next);
	char ***argvs = calloc(n ? n : 1, sizeof *argvs);
	const struct pimon_check **src = calloc(n ? n : 1, sizeof *src);
	size_t m = 0, nnew = 0, removed = 0;
	if (!next || !argvs || !src)
		goto oom;
	for (size_t i = 0; i < n; i++) {
		const struct pimon_check *pc = &list[i];
		if (!check_usable(pc))
			continue;
		int dup = 0;
		for (size_t j = 0; j < m && !dup; j++)
			dup = strcmp(next[j]->name, pc->name) == 0;
		if (dup) {
			log_warn("checks", "check '%s' left out: the name is used twice", pc->name);
			continue;
		}
		argvs[m] = argv_copy(pc->command, pc->ncommand);
		if (!argvs[m])
			goto oom;
		struct check *k = checks_find(c, pc->name);
		if (k) {
			k->kept = 1;
		} else {
			k = check_new(c, pc->name);
			if (!k) {
				argv_free(argvs[m]);
				argvs[m] = NULL;
				goto oom;
			}
			k->fresh = 1;
			nnew++;
		}
		next[m] = k;
		src[m++] = pc;
	}
	/* Room to remember the processes of removed checks until reaped. */
	for (size_t i = 0; i < c->n; i++)
		if (!c->list[i]->kept && c->list[i]->pid && !c->list[i]->reaped)
			removed++;
	if (c->ndying + removed > c->dying_cap) {
		size_t cap = c->ndying + removed;
		pid_t *d = realloc(c->dying, cap * sizeof *d);
		if (!d)
			goto oom;
		c->dying = d;
		c->dying_cap = cap;
	}

	uint64_t now = util_mono_ms();
	size_t j = 0;
	for (size_t i = 0; i < m; i++) {
		struct check *k = next[i];
		argv_free(k->argv);
		k->argv = argvs[i];
		k->timeout = src[i]->timeout;
		uint64_t interval = seconds_ms(src[i]->interval);
		if (k->fresh) {
			k->interval_ms = interval;
			k->next_ms = now + CHECKS_FIRST_SPREAD_MS * j++ / nnew;
			check_arm(k, now);
		} else if (interval != k->interval_ms) {
			k->interval_ms = interval;
			if (k->next_ms > now + interval)
				k->next_ms = now + interval;
			check_arm(k, now);
		}
		k->fresh = 0;
	}
	for (size_t i = 0; i < c->n; i++) {
		struct check *k = c->list[i];
		if (k->kept)
			continue;
		check_abort(c, k);
		check_free(k);
	}
	for (size_t i = 0; i < m; i++)
		next[i]->kept = 0;
	free(c->list);
	c->list = next;
	c->n = m;
	free(argvs);
	free(src);
	log_info("checks", "%zu checks configured (%zu new)", m, nnew);
	return 0;
oom:
	for (size_t i = 0; i < m; i++) {
		argv_free(argvs[i]);
		if (next[i]->fresh)
			check_free(next[i]);
		else
			next[i]->kept = 0;
	}
	free(next);
	free(argvs);
	free(src);
	log_err("checks", "out of memory: the checks stay as they were");
	return -1;
}

/* Kill every run, wait a little for the reaping, free everything. */
void checks_destroy(struct checks *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct check *k = c->list[i];
		if (k->pid) {
			kill(-k->pid, SIGKILL);
			if (!k->reaped)
				kill(k->pid, SIGKILL);
		}
	}
	uint64_t end = util_mono_ms() + CHECKS_DESTROY_WAIT_MS;
	for (;;) {
		size_t left = 0;
		checks_reap_dying(c);
		for (size_t i = 0; i < c->n; i++)
			if (c->list[i]->pid && !check_reap(c->list[i]))
				left++;
		left += c->ndying;
		if (left == 0 || util_mono_ms() >= end) {
			if (left)
				log_warn("checks", "%zu killed checks not reaped; leaving them",
				         left);
			break;
		}
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < c->n; i++) {
		check_end_run(c->list[i]);
		check_free(c->list[i]);
	}
	free(c->list);
	free(c->dying);
	event_free(c->sigchld);
	free(c);
}

/* Runs skipped so far. */
uint64_t checks_skipped(const struct checks *c)
{
	return c->skipped;
}
