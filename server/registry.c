/* The host registry: a hash table of hosts, each with its own lock. */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_util.h"
#include "log.h"
#include "latest.h"
#include "safefs.h"
#include "store.h"
#include "util.h"

enum host_state { HOST_DOWN, HOST_UP };

/* A session is alive while heard from within two heartbeats and a second. */
#define REGISTRY_ALIVE_MS(hb_ms) (2 * (uint64_t)(hb_ms) + 1000)

/* name_conflict resolves once no second agent was refused for this long:
 * longer than the agents' longest back-off (agent.reconnect.max). */
#define REGISTRY_CONFLICT_CLEAR_MS (120 * 1000)

/* storage_retention_cut resolves after a day without a cut. */
#define REGISTRY_STORAGE_CLEAR_MS (86400 * 1000ull)

/* What HELLO says about the system, each string sized to its text, in one
 * block replaced whole by the next HELLO. */
struct facts {
	const char *version;
	const char *os;
	const char *kernel;
	const char *model;
	char boot_id[]; /* then the other strings */
};

/* A host has two locks. h->lock serialises everything done to it, store
 * I/O included (writes, fdatasync under server.sync "batch" or
 * "interval"). h->view guards what readers see: a field marked "view"
 * changes only under both, lock then view, and readers (registry_visit,
 * on the HTTP thread) take h->view alone, so a scrape never waits for a
 * host's disk. No store I/O happens under h->view; alarm rows are appended
 * (without a sync) while the book changes under it. */
struct host {
	struct host *next; /* hash chain; MUST hold the registry lock */
	pthread_mutex_t lock;
	pthread_mutex_t view;
	/* Fields below, but the name: MUST hold h->lock; "view" ones: h->view too. */
	char addr[64];
	enum host_state state; /* view, as are addr and the next six */
	char reason[32];
	uint64_t since_ms;
	uint64_t last_seen_ms;
	struct session_ref session;
	struct facts *facts; /* NULL until the first attach */
	uint64_t uptime_s;
	uint64_t boot_ms;      /* view: HELLO's time less its uptime; 0 unknown */
	uint64_t run_id;       /* of the current session */
	struct latest *latest; /* view; NULL until the first batch */
	struct store *store;
	struct alarm_book *alarms; /* view (the book's contents too); NULL until the first attach */
	int attached;              /* a session said HELLO since the server started */
	int forgotten;             /* left out of listings until it comes back; MUST hold r->lock */
	uint64_t conflict_ms;      /* when a second agent of this name was last refused */
	uint64_t storage_cut_ms;   /* when the storage cap last deleted its data */
	char name[];               /* immutable */
};

struct registry {
	enum registry_sync sync;
	pthread_mutex_t lock;
	struct host **buckets;
	size_t nbuckets;
	size_t nhosts;
	char data_dir[4096];
	int data_fd;           /* data_dir, a link or not: configuration */
	int hosts_fd;          /* <data_dir>/hosts, never through a link */
	struct shapes *shapes; /* the latest values' metric shapes */
	struct store_log *events;
	struct store_log *alarm_log; /* <data_dir>/alarms.csv */
	uint64_t alive_ms;           /* a session heard from this recently is alive */
	alarm_emit_fn notify;        /* set before sessions start */
	void *notify_arg;
};

/* What an alarm event is written for. */
struct emit_ctx {
	struct registry *r;
	struct host *h;
	int failed; /* the host's alarms.csv could not take a row */
};

/* FNV-1a over the name. */
static size_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return (size_t)h;
}

/* Open the data folder and its hosts folder, creating them if missing;
 * hosts must not be a link (the data folder may: it is configuration). */
static int registry_open_dirs(struct registry *r)
{
	char why[64];
	if (util_mkdirs(r->data_dir) < 0 ||
	    (r->data_fd = open(r->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_err("registry", "cannot create %s: %s", r->data_dir, strerror(errno));
		return -1;
	}
	r->hosts_fd = safefs_dir_open(r->data_fd, "hosts", 1);
	if (r->hosts_fd < 0) {
		int err = errno;
		if (safefs_refused(err))
			log_err("registry", "%s/hosts %s: refusing to use it", r->data_dir,
			        safefs_why(err, why, sizeof why));
		else
			log_err("registry", "cannot create %s/hosts: %s", r->data_dir,
			        strerror(err));
		return -1;
	}
	return 0;
}

/* Create an empty registry and open <data_dir>/events.csv. */
struct registry *registry_create(const char *data_dir, enum registry_sync sync)
{
	struct registry *r = calloc(1, sizeof *r);
	if (!r) {
		log_err("registry", "out of memory");
		return NULL;
	}
	r->sync = sync;
	r->alive_ms = REGISTRY_ALIVE_MS(3000);
	r->data_fd = r->hosts_fd = -1;
	snprintf(r->data_dir, sizeof r->data_dir, "%s", data_dir);
	r->nbuckets = 1024;
	r->buckets = calloc(r->nbuckets, sizeof *r->buckets);
	r->shapes = shapes_create();
	if (!r->buckets || !r->shapes) {
		log_err("registry", "out of memory");
		goto fail;
	}
	if (registry_open_dirs(r) < 0)
		goto fail;
	r->events = store_log_open(r->data_fd, data_dir, "events.csv", STORE_EVENT_HEADER);
	if (!r->events)
		goto fail;
	r->alarm_log = store_log_open(r->data_fd, data_dir, "alarms.csv", ALARM_CSV_HEADER);
	if (!r->alarm_log)
		goto fail_events;
	pthread_mutex_init(&r->lock, NULL);
	return r;
fail_events:
	store_log_close(r->events);
fail:
	if (r->hosts_fd >= 0)
		close(r->hosts_fd);
	if (r->data_fd >= 0)
		close(r->data_fd);
	shapes_destroy(r->shapes);
	free(r->buckets);
	free(r);
	return NULL;
}

/* The data folder, open while the registry lives. */
int registry_data_fd(const struct registry *r)
{
	return r->data_fd;
}

/* <data_dir>/hosts, open while the registry lives. */
int registry_hosts_fd(const struct registry *r)
{
	return r->hosts_fd;
}

/* Free every host and the table. */
void registry_destroy(struct registry *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct host *h = r->buckets[i];
		while (h) {
			struct host *next = h->next;
			store_close(h->store);
			alarm_book_free(h->alarms);
			free(h->facts);
			latest_free(r->shapes, h->latest);
			pthread_mutex_destroy(&h->lock);
			pthread_mutex_destroy(&h->view);
			free(h);
			h = next;
		}
	}
	store_log_close(r->events);
	store_log_close(r->alarm_log);
	close(r->hosts_fd);
	close(r->data_fd);
	shapes_destroy(r->shapes);
	pthread_mutex_destroy(&r->lock);
	free(r->buckets);
	free(r);
}

/* Agents send a frame at least every hb_ms; before any session. */
void registry_set_heartbeat(struct registry *r, uint64_t hb_ms)
{
	r->alive_ms = REGISTRY_ALIVE_MS(hb_ms);
}

/* Set the notifier; before any session. */
void registry_set_notify(struct registry *r, alarm_emit_fn fn, void *arg)
{
	r->notify = fn;
	r->notify_arg = arg;
}

/* Open the file name of the host's folder with flags, neither being a
 * link; -1 with errno, and in *failed the path that was refused. */
static int host_file_open(struct registry *r, const struct host *h, const char *name, int flags,
                          char *failed, size_t size)
{
	int dfd = safefs_dir_open(r->hosts_fd, h->name, 0);
	if (dfd < 0) {
		snprintf(failed, size, "%s/hosts/%s", r->data_dir, h->name);
		return -1;
	}
	int fd = safefs_file_open(dfd, name, flags);
	int err = errno;
	close(dfd);
	if (fd < 0)
		snprintf(failed, size, "%s/hosts/%s/%s", r->data_dir, h->name, name);
	errno = err;
	return fd;
}

/* Append one row to a host's alarms.csv, writing the header first into a
 * new file. The file is open only for the write: alarms are rare, and a
 * descriptor per host would cost the server sessions. 0 or -1 (logged). */
static int host_alarm_append(struct registry *r, const struct host *h, const char *line)
{
	char path[4200], buf[2200], why[64];
	int fd =
	    host_file_open(r, h, "alarms.csv", O_WRONLY | O_APPEND | O_CREAT, path, sizeof path);
	if (fd < 0) {
		if (safefs_refused(errno))
			log_err("registry", "host %s: %s %s: alarm not recorded there", h->name,
			        path, safefs_why(errno, why, sizeof why));
		else
			log_err("registry", "host %s: %s: cannot write an alarm: %s", h->name, path,
			        strerror(errno));
		return -1;
	}
	snprintf(path, sizeof path, "%s/hosts/%s/alarms.csv", r->data_dir, h->name);
	struct stat st;
	int rc = -1;
	if (fstat(fd, &st) == 0) {
		int n = snprintf(buf, sizeof buf, "%s%s%s\n", st.st_size ? "" : ALARM_CSV_HEADER,
		                 st.st_size ? "" : "\n", line);
		if (n > 0 && (size_t)n < sizeof buf && write(fd, buf, (size_t)n) == n)
			rc = 0;
		else if (ftruncate(fd, st.st_size) < 0) /* no partial row (a full disk) */
			log_err("registry", "%s: cannot cut a partial row", path);
	}
	if (rc < 0)
		log_err("registry", "%s: cannot write an alarm: %s", path, strerror(errno));
	close(fd);
	return rc;
}

/* Write a fire or resolve to the host's and the server's alarms.csv, log
 * it, and hand it to the notifier. Runs under the host's lock. */
static void registry_emit(void *arg, const struct alarm_event *ev)
{
	struct emit_ctx *ctx = arg;
	char line[2048];
	alarm_csv_line(ev, line, sizeof line);
	if (host_alarm_append(ctx->r, ctx->h, line) < 0)
		ctx->failed = 1;
	store_log_append(ctx->r->alarm_log, line);
	log_notice("alarm", "%s %s%s%s %s %s: %s", ev->host, ev->name, ev->instance[0] ? " " : "",
	           ev->instance, alarm_level_name(ev->level), ev->firing ? "firing" : "resolved",
	           ev->message);
	if (ctx->r->notify)
		ctx->r->notify(ctx->r->notify_arg, ev);
}

/* Open the host's alarm book and log, once; a log that cannot be read
 * (logged) leaves the book empty. -1 when out of memory. MUST hold
 * h->lock. */
static int host_open_alarms(struct registry *r, struct host *h)
{
	char path[4200], why[64];
	struct alarm_book *book = alarm_book_create();
	if (!book)
		return -1;
	int dfd = safefs_dir_open(r->hosts_fd, h->name, 0);
	int rc = dfd < 0 ? -1 : alarm_book_load(book, dfd, "alarms.csv");
	int err = errno;
	if (dfd >= 0)
		close(dfd);
	if (rc < 0) {
		snprintf(path, sizeof path, "%s/hosts/%s%s", r->data_dir, h->name,
		         dfd >= 0 ? "/alarms.csv" : "");
		log_err("registry", "host %s: %s%s%s: its active alarms are not known", h->name,
		        path, safefs_refused(err) ? " " : ": ", safefs_why(err, why, sizeof why));
	}
	pthread_mutex_lock(&h->view);
	h->alarms = book;
	pthread_mutex_unlock(&h->view);
	return 0;
}

/* Double the table when it gets crowded. MUST hold r->lock. */
static void registry_grow(struct registry *r)
{
	size_t n = r->nbuckets * 2;
	struct host **b = calloc(n, sizeof *b);
	if (!b)
		return;
	for (size_t i = 0; i < r->nbuckets; i++) {
		struct host *h = r->buckets[i];
		while (h) {
			struct host *next = h->next;
			size_t k = name_hash(h->name) & (n - 1);
			h->next = b[k];
			b[k] = h;
			h = next;
		}
	}
	free(r->buckets);
	r->buckets = b;
	r->nbuckets = n;
}

/* Find the host called name. MUST hold r->lock. */
static struct host *registry_find(struct registry *r, const char *name)
{
	size_t k = name_hash(name) & (r->nbuckets - 1);
	struct host *h;
	for (h = r->buckets[k]; h; h = h->next)
		if (strcmp(h->name, name) == 0)
			break;
	return h;
}

/* Find the host called name, creating it if new; a forgotten host is
 * remembered again. */
static struct host *registry_get(struct registry *r, const char *name)
{
	pthread_mutex_lock(&r->lock);
	struct host *h = registry_find(r, name);
	if (h) {
		h->forgotten = 0;
		goto out;
	}
	size_t len = strlen(name) + 1;
	h = calloc(1, sizeof *h + len);
	if (!h)
		goto out;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->view, NULL);
	memcpy(h->name, name, len);
	h->session.worker = -1;
	size_t k = name_hash(name) & (r->nbuckets - 1);
	h->next = r->buckets[k];
	r->buckets[k] = h;
	if (++r->nhosts > r->nbuckets)
		registry_grow(r);
out:
	pthread_mutex_unlock(&r->lock);
	return h;
}

/* Record a state change and write it to both events files. MUST hold h->lock. */
static void host_transition(struct registry *r, struct host *h, enum host_state state,
                            const char *reason, const char *detail)
{
	uint64_t now = util_now_ms();
	const char *st = state == HOST_UP ? "up" : "down";
	char addr[160], det[600], line[1024];
	store_csv_field(addr, sizeof addr, h->addr);
	store_csv_field(det, sizeof det, detail ? detail : "");
	snprintf(line, sizeof line, "%" PRIu64 ",%s,%s,%s,%s", now, st, reason, addr, det);
	if (h->store)
		store_write_event(h->store, line);
	snprintf(line, sizeof line, "%" PRIu64 ",%s,%s,%s,%s,%s", now, h->name, st, reason, addr,
	         det);
	store_log_append(r->events, line);
	log_info("registry", "host %s (%s): %s, %s%s%s", h->name, h->addr, st, reason,
	         detail ? ": " : "", detail ? detail : "");
	/* The state and the alarms it raises or resolves change at once for
	 * readers: none sees a host down without its host_down. */
	struct emit_ctx ctx = {r, h, 0};
	pthread_mutex_lock(&h->view);
	h->state = state;
	h->since_ms = now;
	snprintf(h->reason, sizeof h->reason, "%s", reason);
	if (h->alarms && state == HOST_UP)
		alarm_host_up(h->alarms, h->name, now, registry_emit, &ctx);
	else if (h->alarms && strcmp(reason, "shutdown") != 0)
		alarm_host_down(h->alarms, h->name, now, reason, registry_emit, &ctx);
	pthread_mutex_unlock(&h->view);
}

/* HELLO's system facts in one block; NULL when out of memory. */
static struct facts *facts_new(const struct proto_hello *hello)
{
	size_t lb = strlen(hello->boot_id) + 1, lv = strlen(hello->version) + 1;
	size_t lo = strlen(hello->os) + 1, lk = strlen(hello->kernel) + 1;
	size_t lm = strlen(hello->model) + 1;
	struct facts *f = malloc(sizeof *f + lb + lv + lo + lk + lm);
	if (!f)
		return NULL;
	char *p = f->boot_id;
	memcpy(p, hello->boot_id, lb);
	f->version = memcpy(p += lb, hello->version, lv);
	f->os = memcpy(p += lv, hello->os, lo);
	f->kernel = memcpy(p += lo, hello->kernel, lk);
	f->model = memcpy(p += lk, hello->model, lm);
	return f;
}

/* Whether hello comes from a second agent of the host's name while its
 * session is alive: another run from another boot. A restarted agent (same
 * boot) or a Pi back from a power cut (its old session silent) is not one.
 * MUST hold h->lock. */
static int host_is_twin(const struct registry *r, const struct host *h,
                        const struct proto_hello *hello, uint64_t now)
{
	return h->session.id != 0 && h->state == HOST_UP && h->facts &&
	       now < h->last_seen_ms + r->alive_ms && hello->run_id != h->run_id &&
	       strcmp(h->facts->boot_id, hello->boot_id) != 0;
}

/* Refuse a twin: log it, raise name_conflict naming both agents, and say
 * why in out for the BYE. MUST hold h->lock. */
static void host_refuse_twin(struct registry *r, struct host *h, const struct proto_hello *hello,
                             const char *addr, uint64_t now, char *out, size_t size)
{
	char full[1024];
	snprintf(full, sizeof full,
	         "name conflict: %s is connected from %s (boot %s); %s (boot %s) is refused",
	         h->name, h->addr, h->facts->boot_id, addr, hello->boot_id);
	/* Cut as text: it is a BYE's reason and an alarm's message. */
	proto_text_clean(out, size - 1 < PROTO_TEXT_MAX ? size - 1 : PROTO_TEXT_MAX, full,
	                 strlen(full));
	log_warn("registry", "host %s: %s", h->name, out);
	h->conflict_ms = now;
	if (h->alarms) {
		struct emit_ctx ctx = {r, h, 0};
		pthread_mutex_lock(&h->view);
		alarm_server_fire(h->alarms, h->name, ALARM_NAME_CONFLICT, PROTO_LEVEL_WARNING, now,
		                  out, registry_emit, &ctx);
		pthread_mutex_unlock(&h->view);
	}
}

/* Attach a session that completed HELLO. */
struct host *registry_attach(struct registry *r, const struct proto_hello *hello, const char *addr,
                             struct session_ref self, struct session_ref *old, char *refused,
                             size_t refused_size)
{
	old->worker = -1;
	old->id = 0;
	refused[0] = '\0';
	struct host *h = registry_get(r, hello->name);
	if (!h)
		return NULL;
	pthread_mutex_lock(&h->lock);
	uint64_t now = util_now_ms();
	if (host_is_twin(r, h, hello, now)) {
		host_refuse_twin(r, h, hello, addr, now, refused, refused_size);
		pthread_mutex_unlock(&h->lock);
		return NULL;
	}
	if (!h->store) {
		h->store = store_open(r->hosts_fd, r->data_dir, h->name);
		if (!h->store) {
			pthread_mutex_unlock(&h->lock);
			return NULL;
		}
	}
	if (!h->alarms && host_open_alarms(r, h) < 0)
		log_err("registry", "host %s: alarms cannot be recorded", h->name);
	char detail[256];
	if (h->session.id != 0) {
		*old = h->session;
		snprintf(detail, sizeof detail, "session from %s replaced by one from %s", h->addr,
		         addr);
		pthread_mutex_lock(&h->view);
		snprintf(h->addr, sizeof h->addr, "%s", addr);
		pthread_mutex_unlock(&h->view);
		host_transition(r, h, HOST_UP, "replaced", detail);
	}
	pthread_mutex_lock(&h->view);
	snprintf(h->addr, sizeof h->addr, "%s", addr);
	pthread_mutex_unlock(&h->view);
	const char *boot_id = h->facts ? h->facts->boot_id : "";
	if (boot_id[0] && strcmp(boot_id, hello->boot_id) != 0) {
		snprintf(detail, sizeof detail, "boot id %s -> %s", boot_id, hello->boot_id);
		host_transition(r, h, HOST_UP, "rebooted", detail);
	} else if (old->id == 0) {
		host_transition(r, h, HOST_UP, "connected", NULL);
	}
	struct facts *f = facts_new(hello), *old_facts = NULL;
	pthread_mutex_lock(&h->view);
	h->session = self;
	h->last_seen_ms = util_now_ms();
	if (f) {
		old_facts = h->facts;
		h->facts = f;
	}
	h->uptime_s = hello->uptime_s;
	/* Unknown (0) when the agent gave no uptime, or one past the clock. */
	uint64_t up_ms = hello->uptime_s * 1000;
	h->boot_ms = hello->uptime_s && up_ms / 1000 == hello->uptime_s && up_ms < h->last_seen_ms
	                 ? h->last_seen_ms - up_ms
	                 : 0;
	pthread_mutex_unlock(&h->view);
	free(old_facts);
	if (!f)
		log_err("registry", "host %s: out of memory: system facts not updated", h->name);
	h->attached = 1;
	h->run_id = hello->run_id;
	pthread_mutex_unlock(&h->lock);
	return h;
}

/* Note a frame on session sid; bring a timed-out host back. */
void registry_seen(struct registry *r, struct host *h, uint64_t sid)
{
	pthread_mutex_lock(&h->lock);
	if (h->session.id == sid) {
		pthread_mutex_lock(&h->view);
		h->last_seen_ms = util_now_ms();
		pthread_mutex_unlock(&h->view);
		if (h->state == HOST_DOWN)
			host_transition(r, h, HOST_UP, "resumed", NULL);
		if (h->conflict_ms &&
		    h->last_seen_ms > h->conflict_ms + REGISTRY_CONFLICT_CLEAR_MS) {
			h->conflict_ms = 0;
			struct emit_ctx ctx = {r, h, 0};
			pthread_mutex_lock(&h->view);
			if (h->alarms)
				alarm_server_resolve(h->alarms, h->name, ALARM_NAME_CONFLICT,
				                     h->last_seen_ms, "no second agent for 120 s",
				                     registry_emit, &ctx);
			pthread_mutex_unlock(&h->view);
		}
	}
	pthread_mutex_unlock(&h->lock);
}

/* Mark the host down if sid is its current session. */
void registry_down(struct registry *r, struct host *h, uint64_t sid, const char *reason)
{
	pthread_mutex_lock(&h->lock);
	if (h->session.id == sid) {
		if (h->state == HOST_UP)
			host_transition(r, h, HOST_DOWN, reason, NULL);
		if (strcmp(reason, "timeout") != 0) {
			pthread_mutex_lock(&h->view);
			h->session.id = 0;
			h->session.worker = -1;
			pthread_mutex_unlock(&h->view);
		}
	}
	pthread_mutex_unlock(&h->lock);
}

/* Write a batch to the host's files and keep its latest values. */
int registry_store(struct registry *r, struct host *h, uint64_t sid, const struct proto_metrics *m,
                   const struct ruleset *rs, uint64_t *stored, uint64_t *retimed)
{
	int rc = 0;
	*retimed = 0;
	pthread_mutex_lock(&h->lock);
	if (h->session.id != sid) {
		rc = -1;
		goto out;
	}
	/* Stored before, in this run: acked, not written again. */
	if (m->seq <= store_run_seq(h->store, h->run_id))
		goto done;
	for (uint32_t i = 0; i < m->ngroups && rc == 0; i++)
		rc = store_write_group(h->store, &m->groups[i]);
	if (rc < 0)
		store_batch_abort(h->store);
	if (rc == 0) {
		store_batch_done(h->store, h->run_id, m->seq);
		if (r->sync != SYNC_INTERVAL && store_persist(h->store, r->sync == SYNC_BATCH) < 0)
			rc = -1;
		struct emit_ctx ctx = {r, h, 0};
		pthread_mutex_lock(&h->view);
		for (uint32_t i = 0; i < m->ngroups; i++) {
			if (latest_set(r->shapes, &h->latest, &m->groups[i]) < 0)
				log_err("registry", "host %s: out of memory: latest %s dropped",
				        h->name, m->groups[i].metric);
			if (rs && h->alarms)
				alarm_eval_group(h->alarms, rs, h->name, &m->groups[i],
				                 registry_emit, &ctx);
		}
		pthread_mutex_unlock(&h->view);
	}
	*retimed = store_take_retimed(h->store);
done:
	*stored = store_run_seq(h->store, h->run_id);
out:
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* Record an agent's alarm; on a failed write the book is put back so the
 * resend the missing ACK brings records it again. */
int registry_alarm(struct registry *r, struct host *h, uint64_t sid, const struct proto_alarm *a)
{
	int rc = -1;
	pthread_mutex_lock(&h->lock);
	pthread_mutex_lock(&h->view);
	if (h->session.id != sid || !h->alarms)
		goto out;
	struct alarm_book *saved = alarm_book_copy(h->alarms);
	if (!saved)
		goto out;
	struct emit_ctx ctx = {r, h, 0};
	alarm_agent(h->alarms, h->name, h->run_id, a, registry_emit, &ctx);
	if (ctx.failed) {
		alarm_book_restore(h->alarms, saved);
		goto out;
	}
	alarm_book_free(saved);
	rc = 0;
out:
	pthread_mutex_unlock(&h->view);
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* Every host pointer, taken under the registry lock; *n set. The caller
 * frees the array. */
static struct host **registry_all(struct registry *r, size_t *n)
{
	pthread_mutex_lock(&r->lock);
	*n = 0;
	struct host **hosts = malloc((r->nhosts ? r->nhosts : 1) * sizeof *hosts);
	for (size_t i = 0; hosts && i < r->nbuckets; i++)
		for (struct host *h = r->buckets[i]; h; h = h->next)
			if (!h->forgotten)
				hosts[(*n)++] = h;
	pthread_mutex_unlock(&r->lock);
	return hosts;
}

/* Order alarms by host, then name, then instance. */
static int cmp_alarm_json(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	static const char *const keys[] = {"host", "name", "instance"};
	for (int i = 0; i < 3; i++) {
		int c = strcmp(json_string_value(json_object_get(x, keys[i])),
		               json_string_value(json_object_get(y, keys[i])));
		if (c)
			return c;
	}
	return 0;
}

/* Every active alarm of every host, each host read under its own lock,
 * sorted; NULL (logged) if the answer cannot be built. */
json_t *registry_alarms_json(struct registry *r)
{
	size_t n;
	struct host **hosts = registry_all(r, &n);
	json_t *all = json_array();
	int rc = hosts && all ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		pthread_mutex_lock(&hosts[i]->view);
		if (hosts[i]->alarms)
			rc = alarm_book_json(hosts[i]->alarms, hosts[i]->name, all);
		pthread_mutex_unlock(&hosts[i]->view);
	}
	free(hosts);
	size_t len = json_array_size(all);
	json_t **items = rc == 0 ? malloc((len ? len : 1) * sizeof *items) : NULL;
	json_t *sorted = items ? json_array() : NULL;
	for (size_t i = 0; sorted && i < len; i++)
		items[i] = json_array_get(all, i);
	if (sorted)
		qsort(items, len, sizeof *items, cmp_alarm_json);
	for (size_t i = 0; sorted && i < len; i++)
		if (json_array_append(sorted, items[i]) < 0) {
			json_decref(sorted);
			sorted = NULL;
		}
	free(items);
	json_decref(all);
	if (!sorted)
		log_err("registry", "cannot list the active alarms: out of memory");
	return sorted;
}

/* The host's name; immutable after creation. */
const char *host_name(const struct host *h)
{
	return h->name;
}

/* The host as readers see it. MUST hold h->view. */
static void host_view_fill(const struct host *h, struct host_view *v)
{
	const struct facts *f = h->facts;
	*v = (struct host_view){
	    .name = h->name,
	    .addr = h->addr,
	    .up = h->state == HOST_UP,
	    .reason = h->reason,
	    .since_ms = h->since_ms,
	    .last_seen_ms = h->last_seen_ms,
	    .boot_ms = h->boot_ms,
	    .worker = h->session.worker,
	    .version = f ? f->version : "",
	    .os = f ? f->os : "",
	    .kernel = f ? f->kernel : "",
	    .model = f ? f->model : "",
	    .boot_id = f ? f->boot_id : "",
	    .uptime_s = h->uptime_s,
	    .latest = h->latest,
	    .alarms = h->alarms,
	};
}

/* Hand the host to fn under its view lock; fn's result. */
static int host_visit(struct host *h, registry_visit_fn fn, void *arg)
{
	struct host_view v;
	pthread_mutex_lock(&h->view);
	host_view_fill(h, &v);
	int rc = fn(arg, &v);
	pthread_mutex_unlock(&h->view);
	return rc;
}

/* Order host pointers by name (immutable, so no lock). */
static int cmp_host_name(const void *a, const void *b)
{
	return strcmp((*(struct host *const *)a)->name, (*(struct host *const *)b)->name);
}

/* Every listed host, by name, each under its own view lock. */
int registry_visit(struct registry *r, registry_visit_fn fn, void *arg)
{
	size_t n;
	struct host **hosts = registry_all(r, &n);
	if (!hosts) {
		log_err("registry", "cannot list the hosts: out of memory");
		return -1;
	}
	qsort(hosts, n, sizeof *hosts, cmp_host_name);
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = host_visit(hosts[i], fn, arg);
	free(hosts);
	return rc;
}

/* The host called name, found under the registry lock, handed to fn. */
int registry_visit_host(struct registry *r, const char *name, registry_visit_fn fn, void *arg,
                        int *rc)
{
	pthread_mutex_lock(&r->lock);
	struct host *h = registry_find(r, name);
	if (h && h->forgotten)
		h = NULL;
	pthread_mutex_unlock(&r->lock);
	if (!h)
		return -1;
	*rc = host_visit(h, fn, arg);
	return 0;
}

/* Where the named host's live session is. */
int registry_session(struct registry *r, const char *name, struct session_ref *ref)
{
	pthread_mutex_lock(&r->lock);
	struct host *h = registry_find(r, name);
	pthread_mutex_unlock(&r->lock);
	if (!h)
		return -1;
	pthread_mutex_lock(&h->view);
	*ref = h->session;
	pthread_mutex_unlock(&h->view);
	return ref->id ? 0 : -2;
}

/* Make the host's stored batches durable: sync data, then the record. */
int registry_sync(struct registry *r, struct host *h)
{
	pthread_mutex_lock(&h->lock);
	int rc = h->store ? store_persist(h->store, 1) : 0;
	pthread_mutex_unlock(&h->lock);
	return rc;
}

/* Know a host from the data folder before it connects: down since its last
 * event, its active alarms read back from its alarms.csv. 0, or -1 (logged). */
int registry_known(struct registry *r, const char *name, uint64_t since_ms, const char *reason)
{
	struct host *h = registry_get(r, name);
	if (!h) {
		log_err("registry", "host %s: out of memory: not listed", name);
		return -1;
	}
	pthread_mutex_lock(&h->lock);
	pthread_mutex_lock(&h->view);
	h->state = HOST_DOWN;
	h->since_ms = since_ms;
	h->last_seen_ms = since_ms;
	snprintf(h->reason, sizeof h->reason, "%s", reason);
	pthread_mutex_unlock(&h->view);
	if (!h->alarms && host_open_alarms(r, h) < 0)
		log_err("registry", "host %s: its alarms cannot be read back", h->name);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* Raise host_down for every known host that has not said HELLO since the
 * server started (and is not down with an alarm already). */
void registry_expect(struct registry *r)
{
	size_t n;
	struct host **hosts = registry_all(r, &n);
	uint64_t now = util_now_ms();
	for (size_t i = 0; hosts && i < n; i++) {
		struct host *h = hosts[i];
		pthread_mutex_lock(&h->lock);
		if (!h->attached && h->alarms) {
			struct emit_ctx ctx = {r, h, 0};
			pthread_mutex_lock(&h->view);
			alarm_host_down(h->alarms, h->name, now, "absent", registry_emit, &ctx);
			pthread_mutex_unlock(&h->view);
		}
		pthread_mutex_unlock(&h->lock);
	}
	free(hosts);
}

/* Leave the host out of every listing until it says HELLO again; its files
 * stay. 0, -1 when there is no such host, -2 while it is connected. */
int registry_forget(struct registry *r, const char *name)
{
	pthread_mutex_lock(&r->lock);
	struct host *h = registry_find(r, name);
	int rc = -1;
	if (h && !h->forgotten) {
		pthread_mutex_lock(&h->view);
		rc = h->session.id != 0 ? -2 : 0;
		if (rc == 0)
			h->forgotten = 1;
		pthread_mutex_unlock(&h->view);
	}
	pthread_mutex_unlock(&r->lock);
	if (rc == 0)
		log_notice("registry", "host %s forgotten: no longer listed, its files are kept",
		           name);
	return rc;
}

/* Raise storage_retention_cut for a host the cap cut. */
void registry_storage_cut(struct registry *r, const char *name, uint64_t now_ms,
                          const char *message)
{
	pthread_mutex_lock(&r->lock);
	struct host *h = registry_find(r, name);
	pthread_mutex_unlock(&r->lock);
	if (!h) {
		log_info("registry", "host %s: storage cut, but the host is not known: no alarm",
		         name);
		return;
	}
	pthread_mutex_lock(&h->lock);
	if (!h->alarms && host_open_alarms(r, h) < 0)
		log_err("registry", "host %s: out of memory: storage_retention_cut not raised",
		        h->name);
	h->storage_cut_ms = now_ms;
	if (h->alarms) {
		struct emit_ctx ctx = {r, h, 0};
		pthread_mutex_lock(&h->view);
		alarm_server_fire(h->alarms, h->name, ALARM_STORAGE_CUT, PROTO_LEVEL_WARNING,
		                  now_ms, message, registry_emit, &ctx);
		pthread_mutex_unlock(&h->view);
	}
	pthread_mutex_unlock(&h->lock);
}

/* Resolve storage_retention_cut where no cut came for a day. */
void registry_storage_settle(struct registry *r, uint64_t now_ms)
{
	size_t n;
	struct host **hosts = registry_all(r, &n);
	for (size_t i = 0; hosts && i < n; i++) {
		struct host *h = hosts[i];
		pthread_mutex_lock(&h->lock);
		if (h->alarms && alarm_book_has(h->alarms, ALARM_STORAGE_CUT)) {
			if (!h->storage_cut_ms) {
				h->storage_cut_ms = now_ms;
			} else if (now_ms >= h->storage_cut_ms + REGISTRY_STORAGE_CLEAR_MS) {
				struct emit_ctx ctx = {r, h, 0};
				pthread_mutex_lock(&h->view);
				alarm_server_resolve(h->alarms, h->name, ALARM_STORAGE_CUT, now_ms,
				                     "no storage cut for a day", registry_emit,
				                     &ctx);
				pthread_mutex_unlock(&h->view);
			}
		}
		pthread_mutex_unlock(&h->lock);
	}
	free(hosts);
}
