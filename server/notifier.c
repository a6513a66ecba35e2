/* Notify commands: a queue filled by any thread, children started and
 * reaped on the main thread's base. */
#include "notifier.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

extern char **environ;

/* The PIMON_* variables of one alarm. */
#define JOB_VARS 9

struct job {
	STAILQ_ENTRY(job) link;
	char *env[JOB_VARS + 1];
	char what[160]; /* "host/name firing", for logs */
};

/* A command that runs. */
struct child {
	LIST_ENTRY(child) link;
	struct notifier *n;
	pid_t pid;
	int timed_out;
	struct event *timer;
	char what[160];
};

struct notifier {
	struct event_base *base;
	struct event *wake; /* the queue has work: activated from any thread */
	struct event *sigchld;
	char **argv; /* NULL: no command */
	double timeout;
	int max_running;
	int running;
	LIST_HEAD(, child) children;
	pthread_mutex_t lock;
	STAILQ_HEAD(, job) queue; /* MUST hold lock */
	size_t queued;            /* MUST hold lock */
	atomic_uint_fast64_t started, ok, failed, dropped;
};

static void notifier_pump(struct notifier *n);

/* Free a job. */
static void job_free(struct job *j)
{
	for (int i = 0; i < JOB_VARS; i++)
		free(j->env[i]);
	free(j);
}

/* Free an argv copy. */
static void argv_free(char **argv)
{
	for (size_t i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* Copy the configured command; NULL when there is none (or no memory). */
static char **argv_copy(const struct pimon_config *cfg, int *oom)
{
	*oom = 0;
	if (cfg->server.nnotify_command == 0)
		return NULL;
	char **argv = calloc(cfg->server.nnotify_command + 1, sizeof *argv);
	for (size_t i = 0; argv && i < cfg->server.nnotify_command; i++) {
		argv[i] = strdup(cfg->server.notify_command[i]);
		if (!argv[i]) {
			argv_free(argv);
			argv = NULL;
		}
	}
	*oom = argv == NULL;
	return argv;
}

/* A child ended, or could not be waited for: count, log, free. */
static void child_done(struct child *c, int status)
{
	struct notifier *n = c->n;
	if (c->timed_out) {
		atomic_fetch_add(&n->failed, 1);
		log_warn("notify", "%s: command killed after %.1f s", c->what, n->timeout);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		atomic_fetch_add(&n->ok, 1);
		log_debug("notify", "%s: command done", c->what);
	} else if (WIFEXITED(status)) {
		atomic_fetch_add(&n->failed, 1);
		log_warn("notify", "%s: command exited with status %d", c->what,
		         WEXITSTATUS(status));
	} else {
		atomic_fetch_add(&n->failed, 1);
		log_warn("notify", "%s: command killed by signal %d", c->what,
		         WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
	LIST_REMOVE(c, link);
	event_free(c->timer);
	free(c);
	n->running--;
}

/* SIGCHLD: reap every child that ended, then start waiting ones. */
static void notifier_sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	struct notifier *n = arg;
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0)
			break;
		struct child *c;
		LIST_FOREACH(c, &n->children, link)
		if (c->pid == pid)
			break;
		if (c)
			child_done(c, status);
	}
	notifier_pump(n);
}

/* A command ran past its timeout: kill its process group. */
static void notifier_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct child *c = arg;
	c->timed_out = 1;
	kill(-c->pid, SIGKILL);
}

/* The queue has work. */
static void notifier_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	notifier_pump(arg);
}

/* The environment for a job: ours without PIMON_* variables, then the job's. */
static char **job_environ(const struct job *j)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + JOB_VARS + 1, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "PIMON_", 6) != 0)
			env[k++] = environ[i];
	for (int i = 0; i < JOB_VARS; i++)
		env[k++] = j->env[i];
	return env;
}

/* Start one job's command in its own process group. */
static void notifier_start(struct notifier *n, struct job *j)
{
	char **env = job_environ(j);
	struct child *c = calloc(1, sizeof *c);
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	int rc = ENOMEM;
	if (!env || !c)
		goto fail;
	c->n = n;
	snprintf(c->what, sizeof c->what, "%s", j->what);
	c->timer = evtimer_new(n->base, notifier_timeout_cb, c);
	if (!c->timer)
		goto fail;
	sigset_t none, dflt;
	sigemptyset(&none);
	sigemptyset(&dflt);
	int sigs[] = {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP};
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&dflt, sigs[i]);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
	                                    POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dflt);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	rc = posix_spawn(&c->pid, n->argv[0], &fa, &attr, n->argv, env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0)
		goto fail;
	atomic_fetch_add(&n->started, 1);
	n->running++;
	LIST_INSERT_HEAD(&n->children, c, link);
	struct timeval tv = {(time_t)n->timeout,
	                     (suseconds_t)((n->timeout - (double)(time_t)n->timeout) * 1e6)};
	evtimer_add(c->timer, &tv);
	free(env);
	job_free(j);
	return;
fail:
	atomic_fetch_add(&n->failed, 1);
	log_err("notify", "%s: cannot run %s: %s", j->what, n->argv[0], strerror(rc));
	if (c && c->timer)
		event_free(c->timer);
	free(c);
	free(env);
	job_free(j);
}

/* Start waiting jobs while there is room. */
static void notifier_pump(struct notifier *n)
{
	while (n->running < n->max_running) {
		pthread_mutex_lock(&n->lock);
		struct job *j = STAILQ_FIRST(&n->queue);
		if (j) {
			STAILQ_REMOVE_HEAD(&n->queue, link);
			n->queued--;
		}
		pthread_mutex_unlock(&n->lock);
		if (!j)
			break;
		if (n->argv)
			notifier_start(n, j);
		else
			job_free(j);
	}
}

struct notifier *notifier_create(struct event_base *base, const struct pimon_config *cfg)
{
	struct notifier *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->base = base;
	pthread_mutex_init(&n->lock, NULL);
	STAILQ_INIT(&n->queue);
	LIST_INIT(&n->children);
	n->wake = event_new(base, -1, 0, notifier_wake_cb, n);
	n->sigchld = evsignal_new(base, SIGCHLD, notifier_sigchld_cb, n);
	if (!n->wake || !n->sigchld || evsignal_add(n->sigchld, NULL) < 0 ||
	    notifier_configure(n, cfg) < 0) {
		notifier_destroy(n);
		return NULL;
	}
	return n;
}

int notifier_configure(struct notifier *n, const struct pimon_config *cfg)
{
	int oom;
	char **argv = argv_copy(cfg, &oom);
	if (oom)
		return -1;
	argv_free(n->argv);
	n->argv = argv;
	n->timeout = cfg->server.notify_timeout;
	n->max_running = cfg->server.notify_max_running;
	notifier_pump(n);
	return 0;
}

/* "NAME=value" in a new string; NULL on out of memory. */
static char *env_var(const char *name, const char *value)
{
	size_t len = strlen(name) + strlen(value) + 2;
	char *s = malloc(len);
	if (s)
		snprintf(s, len, "%s=%s", name, value);
	return s;
}

/* Queue ev; the main thread runs it when a slot is free. */
void notifier_submit(struct notifier *n, const struct alarm_event *ev)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		atomic_fetch_add(&n->dropped, 1);
		return;
	}
	char value[64] = "", time[32], duration[64] = "";
	if (!isnan(ev->value))
		snprintf(value, sizeof value, "%.10g", ev->value);
	snprintf(time, sizeof time, "%" PRIu64, ev->time_ms);
	if (!ev->firing)
		snprintf(duration, sizeof duration, "%.3f", ev->duration_s);
	const char *vars[JOB_VARS][2] = {
	    {"PIMON_HOST", ev->host},
	    {"PIMON_ALARM", ev->name},
	    {"PIMON_INSTANCE", ev->instance},
	    {"PIMON_LEVEL", alarm_level_name(ev->level)},
	    {"PIMON_STATE", ev->firing ? "firing" : "resolved"},
	    {"PIMON_VALUE", value},
	    {"PIMON_MESSAGE", ev->message},
	    {"PIMON_TIME", time},
	    {"PIMON_DURATION_S", duration},
	};
	for (int i = 0; i < JOB_VARS; i++) {
		j->env[i] = env_var(vars[i][0], vars[i][1]);
		if (!j->env[i]) {
			job_free(j);
			atomic_fetch_add(&n->dropped, 1);
			return;
		}
	}
	snprintf(j->what, sizeof j->what, "%s/%s%s%s %s", ev->host, ev->name,
	         ev->instance[0] ? ":" : "", ev->instance, ev->firing ? "firing" : "resolved");
	pthread_mutex_lock(&n->lock);
	int full = n->queued >= NOTIFIER_QUEUE_MAX;
	if (!full) {
		STAILQ_INSERT_TAIL(&n->queue, j, link);
		n->queued++;
	}
	pthread_mutex_unlock(&n->lock);
	if (full) {
		if (atomic_fetch_add(&n->dropped, 1) % 100 == 0)
			log_warn("notify", "%s: %d alarms wait already; not notified", j->what,
			         NOTIFIER_QUEUE_MAX);
		job_free(j);
		return;
	}
	event_active(n->wake, EV_TIMEOUT, 0);
}

void notifier_counts(struct notifier *n, uint64_t *started, uint64_t *ok, uint64_t *failed,
                     uint64_t *dropped)
{
	*started = atomic_load(&n->started);
	*ok = atomic_load(&n->ok);
	*failed = atomic_load(&n->failed);
	*dropped = atomic_load(&n->dropped);
}

/* Kill and reap what runs, drop what waits. */
void notifier_destroy(struct notifier *n)
{
	if (!n)
		return;
	struct child *c;
	while ((c = LIST_FIRST(&n->children))) {
		kill(-c->pid, SIGKILL);
		int status = 0;
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		c->timed_out = 0;
		log_warn("notify", "%s: command killed at shutdown", c->what);
		child_done(c, status);
	}
	struct job *j;
	size_t left = 0;
	while ((j = STAILQ_FIRST(&n->queue))) {
		STAILQ_REMOVE_HEAD(&n->queue, link);
		job_free(j);
		left++;
	}
	if (left)
		log_warn("notify", "%zu alarms not notified: shutting down", left);
	if (n->wake)
		event_free(n->wake);
	if (n->sigchld)
		event_free(n->sigchld);
	argv_free(n->argv);
	pthread_mutex_destroy(&n->lock);
	free(n);
}
