/* pimon-server: accept agents, track which hosts are alive, store their
 * data, answer the HTTP API. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alarm.h"
#include "config.h"
#include "fleet.h"
#include "housekeep.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "notifier.h"
#include "notify.h"
#include "pimon_version.h"
#include "registry.h"
#include "remote_write.h"
#include "server.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: pimon-server [options]\n"
	        "  -c, --config FILE    configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	        "  -t, --test           check the configuration and exit (0 good, 2 bad)\n"
	        "  -l, --listen ADDR    agents' address, host:port (server.listen)\n"
	        "  -w, --workers N      worker threads (server.workers)\n"
	        "  -d, --data-dir DIR   where host data is stored (server.data_dir)\n"
	        "  -H, --http ADDR      HTTP API address, \"\" to disable (server.http.listen)\n"
	        "  -v, --verbose        log more (repeat for debug)\n"
	        "  -h, --help           show this help\n"
	        "  -V, --version        show the version\n");
}

/* SIGTERM or SIGINT: leave the main loop to shut down in order. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	log_notice("main", "signal %d: shutting down", (int)sig);
	event_base_loopexit(arg, NULL);
}

/* The file the server was started with, read again on SIGHUP. */
static const char *config_path;

/* heartbeat.timeout after the start: the hosts that have not come back
 * since are down, with an alarm. */
static void on_expect_timer(evutil_socket_t fd, short what, void *arg)
{
	registry_expect(((struct server *)arg)->registry);
}

/* SIGHUP: load the configuration file again and put its alarm rules and
 * notify settings in force. A bad file changes nothing; other settings
 * need a restart. */
static void on_hup_signal(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;
	struct pimon_config next;
	char err[512];
	config_defaults(&next);
	if (config_load(&next, config_path, err, sizeof err) < 0) {
		log_err("main", "SIGHUP: %s; the rules in force stay", err);
		config_free(&next);
		return;
	}
	struct ruleset *rs = ruleset_create(&next);
	if (!rs || notifier_configure(srv->notifier, &next) < 0) {
		log_err("main", "SIGHUP: out of memory; the rules in force stay");
		ruleset_unref(rs);
		config_free(&next);
		return;
	}
	log_notice("main", "SIGHUP: %s: %zu alarm rules and the notify settings reloaded",
	           next.path ? next.path : "built-in defaults", ruleset_count(rs));
	rules_holder_set(srv->rules, rs);
	config_free(&next);
}

/* The storage cap cut a host's data: its alarm. */
static void on_storage_cut(void *arg, const char *host, uint64_t now_ms, const char *message)
{
	registry_storage_cut(arg, host, now_ms, message);
}

/* A sweep ended: resolve the cut alarms that have been quiet for a day. */
static void on_storage_settle(void *arg, uint64_t now_ms)
{
	registry_storage_settle(arg, now_ms);
}

/* Whether a remote_write receiver still needs a closed raw file. */
static int on_storage_hold(void *arg, const char *host, const char *metric, uint64_t ms)
{
	return remote_write_holds(arg, host, metric, ms);
}

/* Start the storage housekeeper on the registry's folders; fatal if not. */
static struct housekeep *start_housekeep(const struct pimon_config *cfg, struct registry *reg,
                                         struct remote_write *rw)
{
	const struct housekeep_config hc = {
	    .sweep_ms = (uint64_t)cfg->server.storage_sweep * 1000,
	    .close_delay_ms = (uint64_t)cfg->server.storage_close_delay * 1000,
	    .raw_days = cfg->server.storage_raw_days,
	    .minute_days = cfg->server.storage_minute_days,
	    .hour_days = cfg->server.storage_hour_days,
	    .max_bytes = (uint64_t)cfg->server.storage_max_bytes,
	};
	const struct housekeep_hooks hooks = {on_storage_cut, on_storage_settle, reg,
	                                      remote_write_count(rw) ? on_storage_hold : NULL, rw};
	struct housekeep *hk =
	    housekeep_create(registry_data_fd(reg), registry_hosts_fd(reg), &hc, &hooks);
	if (!hk || housekeep_start(hk) < 0)
		log_fatal("main", "cannot start the storage housekeeper");
	return hk;
}

/* Hand an alarm event to the notifier; a host going down to the
 * remote_write receivers too (its stale markers). */
static void notify_alarm(void *arg, const struct alarm_event *ev)
{
	struct server *srv = arg;
	notifier_submit(srv->notifier, ev);
	if (ev->firing && strcmp(ev->name, ALARM_HOST_DOWN) == 0 && srv->remote_write)
		remote_write_host_down(srv->remote_write, ev->host, ev->time_ms);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},   {"test", no_argument, NULL, 't'},
	    {"listen", required_argument, NULL, 'l'},   {"workers", required_argument, NULL, 'w'},
	    {"data-dir", required_argument, NULL, 'd'}, {"http", required_argument, NULL, 'H'},
	    {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *listen = NULL, *data_dir = NULL, *http_addr = NULL;
	int workers = 0, check_only = 0, verbose = 0, c;
	while ((c = getopt_long(argc, argv, "c:tl:w:d:H:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check_only = 1;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'w': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 1 || n > 256) {
				fprintf(stderr, "pimon-server: --workers: %s is not in 1..256\n",
				        optarg);
				return 2;
			}
			workers = (int)n;
			break;
		}
		case 'd':
			data_dir = optarg;
			break;
		case 'H':
			http_addr = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("pimon-server %s\n", PIMON_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pimon-server: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	struct pimon_config cfg;
	config_path = path;
	int status = config_load_cli(&cfg, "pimon-server", path, check_only);
	if (status >= 0)
		return status;
	if (listen)
		config_set_str(&cfg.server.listen, listen);
	if (data_dir)
		config_set_str(&cfg.server.data_dir, data_dir);
	if (http_addr)
		config_set_str(&cfg.server.http_listen, http_addr);
	if (workers)
		cfg.server.workers = workers;

	int level = config_log_level(cfg.server.log_level) + verbose;
	log_init("pimon-server", level > LOG_DEBUG ? LOG_DEBUG : (enum log_level)level);
	if (evthread_use_pthreads() < 0)
		log_fatal("main", "libevent has no pthreads support");
	/* Tests turn on libevent's checks of lock use. */
	if (getenv("PIMON_LOCK_DEBUG"))
		evthread_enable_lock_debugging();
	signal(SIGPIPE, SIG_IGN);

	struct server srv = {.cfg = &cfg,
	                     .nworkers = cfg.server.workers,
	                     .started_ms = util_now_ms(),
	                     .started_mono_ms = util_mono_ms()};
	static struct auth_key key, admin, reader;
	if (auth_key_setting("server.auth.token_file", cfg.server.auth_token_file, &key,
	                     &srv.auth_key) < 0 ||
	    auth_key_setting("server.http.admin_token_file", cfg.server.http_admin_token_file,
	                     &admin, &srv.http_admin) < 0 ||
	    auth_key_setting("server.http.read_token_file", cfg.server.http_read_token_file,
	                     &reader, &srv.http_read) < 0) {
		config_free(&cfg);
		return 2;
	}
	if (cfg.server.auth_hosts_dir[0])
		srv.auth_hosts_dir = cfg.server.auth_hosts_dir;
	char terr[512];
	if (cfg.server.tls_cert[0]) {
		srv.tls_ctx = tls_server_ctx(cfg.server.tls_cert, cfg.server.tls_key,
		                             cfg.server.tls_ca, terr, sizeof terr);
		if (!srv.tls_ctx) {
			log_err("main", "server.tls: %s", terr);
			config_free(&cfg);
			return 2;
		}
	}
	if (cfg.server.http_tls_cert[0]) {
		srv.http_tls_ctx = tls_server_ctx(cfg.server.http_tls_cert, cfg.server.http_tls_key,
		                                  NULL, terr, sizeof terr);
		if (!srv.http_tls_ctx) {
			log_err("main", "server.http.tls: %s", terr);
			config_free(&cfg);
			return 2;
		}
	}
	if (!srv.auth_key && !srv.auth_hosts_dir)
		log_warn("main", "NO AUTHENTICATION: any agent that connects is accepted; set "
		                 "server.auth.token_file to require a secret");
	struct event_base *base = event_base_new();
	if (!base)
		log_fatal("main", "cannot create the main event base");
	enum registry_sync sync = strcmp(cfg.server.sync, "none") == 0    ? SYNC_NONE
	                          : strcmp(cfg.server.sync, "batch") == 0 ? SYNC_BATCH
	                                                                  : SYNC_INTERVAL;
	srv.registry = registry_create(cfg.server.data_dir, sync);
	if (!srv.registry)
		log_fatal("main", "cannot use data folder %s", cfg.server.data_dir);
	registry_set_heartbeat(srv.registry, (uint64_t)(cfg.server.heartbeat_interval * 1000.0));
	if (fleet_load(srv.registry, cfg.server.data_dir) < 0)
		log_fatal("main", "cannot read the hosts of data folder %s", cfg.server.data_dir);
	struct ruleset *rules = ruleset_create(&cfg);
	srv.rules = rules ? rules_holder_create(rules) : NULL;
	srv.notifier = notifier_create(base, &cfg);
	if (!srv.rules || !srv.notifier)
		log_fatal("main", "cannot set up the alarm rules and notifier");
	registry_set_notify(srv.registry, notify_alarm, &srv);
	srv.remote_write = remote_write_create(&cfg, registry_data_fd(srv.registry),
	                                       registry_hosts_fd(srv.registry));
	if (!srv.remote_write)
		log_fatal("main", "cannot set up server.remote_write");
	srv.housekeep = start_housekeep(&cfg, srv.registry, srv.remote_write);
	if (remote_write_start(srv.remote_write) < 0)
		log_fatal("main", "cannot start the remote_write sender");
	log_info("main", "%zu alarm rules; notify command: %s", ruleset_count(rules),
	         cfg.server.nnotify_command ? cfg.server.notify_command[0] : "none");
	workers_start(&srv);
	struct http *http = NULL;
	if (cfg.server.http_listen[0]) {
		http = http_start(&srv, cfg.server.http_listen);
		if (!http)
			log_fatal("main", "cannot start the HTTP API on %s",
			          cfg.server.http_listen);
	}
	struct listener *lst = listener_start(&srv, base, cfg.server.listen);
	if (!lst)
		log_fatal("main", "cannot listen on %s", cfg.server.listen);

	struct event *sigterm = evsignal_new(base, SIGTERM, on_stop_signal, base);
	struct event *sigint = evsignal_new(base, SIGINT, on_stop_signal, base);
	struct event *sighup = evsignal_new(base, SIGHUP, on_hup_signal, &srv);
	if (!sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0)
		log_fatal("main", "cannot install signal handlers");
	double ht = cfg.server.heartbeat_timeout;
	struct timeval expect_tv = {(time_t)ht, (suseconds_t)((ht - (double)(time_t)ht) * 1e6)};
	struct event *expect = evtimer_new(base, on_expect_timer, &srv);
	if (!expect || evtimer_add(expect, &expect_tv) < 0)
		log_fatal("main", "cannot set the timer for hosts that do not come back");
	log_notice("main", "pimon-server %s ready: %d workers, data in %s", PIMON_VERSION,
	           srv.nworkers, cfg.server.data_dir);

	notify_send("READY=1");
	event_base_dispatch(base);

	notify_send("STOPPING=1");
	listener_stop(lst);
	/* The HTTP thread reads the workers: stop it before they go. */
	http_stop(http);
	workers_stop(&srv);
	housekeep_stop(srv.housekeep);
	housekeep_destroy(srv.housekeep);
	remote_write_stop(srv.remote_write);
	remote_write_destroy(srv.remote_write);
	notifier_destroy(srv.notifier);
	rules_holder_destroy(srv.rules);
	registry_destroy(srv.registry);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_free(expect);
	event_base_free(base);
	SSL_CTX_free(srv.tls_ctx);
	SSL_CTX_free(srv.http_tls_ctx);
	log_notice("main", "stopped");
	config_free(&cfg);
	return 0;
}
