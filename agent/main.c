/* pimon-agent: collect this machine's metrics and report them to
 * pimon-server, or print one snapshot with --once. */
#include <event2/event.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "collect.h"
#include "config.h"
#include "link.h"
#include "local.h"
#include "log.h"
#include "notify.h"
#include "metric_json.h"
#include "pimon_version.h"
#include "tls_client.h"
#include "util.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: pimon-agent [options]\n"
	        "       pimon-agent alarm [-c FILE] [--socket PATH] [--level LEVEL] [--name NAME] "
	        "TEXT\n"
	        "  -c, --config FILE    configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	        "  -t, --test           check the configuration and exit (0 good, 2 bad)\n"
	        "  -1, --once           print one snapshot as JSON and exit (no server)\n"
	        "  -s, --server ADDR    server address, host:port (agent.server)\n"
	        "  -n, --name NAME      host name to report (agent.name)\n"
	        "      --proc-root DIR  read /proc from DIR (agent.proc_root)\n"
	        "      --sys-root DIR   read /sys from DIR (agent.sys_root)\n"
	        "      --spool-dir DIR  keep unacked batches in DIR/NAME (agent.spool_dir)\n"
	        "      --alarm-socket PATH  socket for local alarms, \"\" for none "
	        "(agent.alarm_socket)\n"
	        "  -v, --verbose        log more (repeat for debug)\n"
	        "  -h, --help           show this help\n"
	        "  -V, --version        show the version\n");
}

/* Two samples 250 ms apart so rates have a base; print the second. */
static int run_once(struct collect *col, const char *name)
{
	const struct proto_group *groups;
	collect_run(col, util_now_ms(), &groups);
	struct timespec gap = {0, 250 * 1000 * 1000};
	nanosleep(&gap, NULL);
	uint64_t now = util_now_ms();
	size_t n = collect_run(col, now, &groups);
	struct proto_hello facts = {0};
	collect_sysinfo(col, &facts);
	json_t *out =
	    json_pack("{s:s, s:I, s:{s:s, s:s, s:s, s:s, s:I}, s:o}", "name", name, "time",
	              (json_int_t)now, "system", "os", facts.os, "kernel", facts.kernel, "model",
	              facts.model, "boot_id", facts.boot_id, "uptime_s", (json_int_t)facts.uptime_s,
	              "metrics", metric_json_groups(groups, n));
	if (!out || json_dumpf(out, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(10)) < 0)
		return 1;
	putchar('\n');
	json_decref(out);
	return 0;
}

/* `pimon-agent alarm`: hand the running agent an alarm through its local
 * socket. Exit 0 taken, 1 refused, 2 bad usage, 3 no agent answered. */
static int run_alarm(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"socket", required_argument, NULL, 's'},
	    {"level", required_argument, NULL, 'l'},  {"name", required_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *socket = NULL, *level = "warning", *name = "local";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:s:l:n:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 's':
			socket = optarg;
			break;
		case 'l':
			level = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			printf("usage: pimon-agent alarm [-c FILE] [--socket PATH] [--level LEVEL] "
			       "[--name NAME] TEXT\n"
			       "  LEVEL: ok (resolves), warning (default), critical, unknown\n"
			       "  NAME:  1..32 of a-z 0-9 _ (default \"local\")\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "pimon-agent alarm: expected one TEXT argument\n");
		return 2;
	}
	const char *text = argv[optind];
	if (strchr(text, '\n') || strchr(text, '\t')) {
		fprintf(stderr, "pimon-agent alarm: TEXT must be one line without tabs\n");
		return 2;
	}
	struct pimon_config cfg;
	int status = config_load_cli(&cfg, "pimon-agent", path, 0);
	if (status >= 0)
		return status;
	if (socket)
		config_set_str(&cfg.agent.alarm_socket, socket);
	if (!cfg.agent.alarm_socket[0]) {
		fprintf(stderr, "pimon-agent alarm: agent.alarm_socket is \"\" in %s\n",
		        cfg.path ? cfg.path : "the built-in defaults");
		config_free(&cfg);
		return 2;
	}
	char answer[256];
	int rc =
	    local_send(cfg.agent.alarm_socket, level, name, text, 10000, answer, sizeof answer);
	if (rc < 0)
		fprintf(stderr, "pimon-agent alarm: no agent at %s: %s\n", cfg.agent.alarm_socket,
		        strerror(errno));
	else if (rc > 0)
		fprintf(stderr, "pimon-agent alarm: %s\n", answer);
	config_free(&cfg);
	return rc < 0 ? 3 : rc;
}

/* The running agent: its link, checks and local alarm socket. */
struct agent {
	struct link *link;
	struct checks *checks;
	struct local *local;
	const char *config_path;
	/* The level last sent for each configured check; -1 none yet. */
	struct check_state {
		char name[PROTO_KEY_MAX + 1];
		int level;
	} * states;
	size_t nstates;
};

/* The state of the check called name, or NULL. */
static struct check_state *agent_state(struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->nstates; i++)
		if (strcmp(a->states[i].name, name) == 0)
			return &a->states[i];
	return NULL;
}

/* A check finished: its perfdata becomes a batch, a change of its state
 * (or its first result) an alarm. */
static void on_check_result(void *arg, const struct check_result *r)
{
	struct agent *a = arg;
	link_send_groups(a->link, r->group, 1);
	struct check_state *st = agent_state(a, r->name);
	if (!st || st->level == (int)r->status)
		return;
	if (st->level >= 0)
		log_notice("main", "check %s: %s -> %s: %s", r->name,
		           checks_status_name((enum check_status)st->level),
		           checks_status_name(r->status), r->message);
	st->level = (int)r->status;
	link_alarm(a->link, PROTO_ALARM_CHECK, r->name, (uint8_t)r->status, r->message, r->time_ms);
}

/* Put a list of checks in force: states are kept for checks that stay; a
 * removed check that was not OK resolves. */
static int agent_set_checks(struct agent *a, const struct pimon_check *list, size_t n)
{
	struct check_state *states = calloc(n ? n : 1, sizeof *states);
	if (!states || checks_configure(a->checks, list, n) < 0) {
		free(states);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		struct check_state *old = agent_state(a, list[i].name);
		snprintf(states[i].name, sizeof states[i].name, "%s", list[i].name);
		states[i].level = old ? old->level : -1;
	}
	for (size_t i = 0; i < a->nstates; i++) {
		int kept = 0;
		for (size_t j = 0; j < n && !kept; j++)
			kept = strcmp(list[j].name, a->states[i].name) == 0;
		if (!kept && a->states[i].level > 0)
			link_alarm(a->link, PROTO_ALARM_CHECK, a->states[i].name, PROTO_LEVEL_OK,
			           "check removed from the configuration", util_now_ms());
	}
	free(a->states);
	a->states = states;
	a->nstates = n;
	return 0;
}

/* `pimon-agent alarm` handed us an alarm. */
static int on_local_alarm(void *arg, uint8_t level, const char *name, const char *message)
{
	struct agent *a = arg;
	log_notice("main", "local alarm %s %s: %s", name, level == 0 ? "ok" : "raised", message);
	return link_alarm(a->link, PROTO_ALARM_LOCAL, name, level, message, util_now_ms());
}

/* SIGHUP: load the file again and put its checks in force; a bad file
 * changes nothing. Other settings need a restart. */
static void on_hup_signal(evutil_socket_t sig, short what, void *arg)
{
	struct agent *a = arg;
	struct pimon_config next;
	char err[512];
	config_defaults(&next);
	if (config_load(&next, a->config_path, err, sizeof err) < 0) {
		log_err("main", "SIGHUP: %s; the checks in force stay", err);
		config_free(&next);
		return;
	}
	if (agent_set_checks(a, next.agent.checks, next.agent.nchecks) < 0)
		log_err("main", "SIGHUP: out of memory; the checks in force stay");
	else
		log_notice("main", "SIGHUP: %s: %zu checks in force",
		           next.path ? next.path : "built-in defaults", next.agent.nchecks);
	config_free(&next);
}

/* SIGTERM/SIGINT: say goodbye and stop. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	log_notice("main", "signal %d: stopping", (int)sig);
	link_shutdown(arg);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "alarm") == 0)
		return run_alarm(argc - 1, argv + 1);
	enum { OPT_PROC = 256, OPT_SYS, OPT_SPOOL, OPT_ALARM_SOCKET };
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"test", no_argument, NULL, 't'},
	    {"once", no_argument, NULL, '1'},
	    {"server", required_argument, NULL, 's'},
	    {"name", required_argument, NULL, 'n'},
	    {"proc-root", required_argument, NULL, OPT_PROC},
	    {"sys-root", required_argument, NULL, OPT_SYS},
	    {"verbose", no_argument, NULL, 'v'},
	    {"spool-dir", required_argument, NULL, OPT_SPOOL},
	    {"alarm-socket", required_argument, NULL, OPT_ALARM_SOCKET},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *server = NULL, *name = NULL, *proc = NULL, *sys = NULL;
	const char *spool = NULL, *alarm_socket = NULL;
	int check_only = 0, once = 0, verbose = 0, c;
	while ((c = getopt_long(argc, argv, "c:t1s:n:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check_only = 1;
			break;
		case '1':
			once = 1;
			break;
		case 's':
			server = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case OPT_PROC:
			proc = optarg;
			break;
		case OPT_SYS:
			sys = optarg;
			break;
		case OPT_SPOOL:
			spool = optarg;
			break;
		case OPT_ALARM_SOCKET:
			alarm_socket = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("pimon-agent %s\n", PIMON_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "pimon-agent: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	struct pimon_config cfg;
	int status = config_load_cli(&cfg, "pimon-agent", path, check_only);
	if (status >= 0)
		return status;
	if (server)
		config_set_list(&cfg.agent.server, &cfg.agent.nserver, server);
	if (name)
		config_set_str(&cfg.agent.name, name);
	if (proc)
		config_set_str(&cfg.agent.proc_root, proc);
	if (sys)
		config_set_str(&cfg.agent.sys_root, sys);
	if (spool)
		config_set_str(&cfg.agent.spool_dir, spool);
	if (alarm_socket)
		config_set_str(&cfg.agent.alarm_socket, alarm_socket);
	char hostname[PROTO_NAME_MAX + 1] = "";
	if (cfg.agent.name[0] == '\0' && gethostname(hostname, sizeof hostname - 1) == 0)
		config_set_str(&cfg.agent.name, hostname);
	if (!util_valid_name(cfg.agent.name)) {
		fprintf(stderr, "pimon-agent: host name '%s' is not valid: use --name\n",
		        cfg.agent.name);
		config_free(&cfg);
		return 2;
	}

	int level = config_log_level(cfg.agent.log_level) + verbose;
	log_init("pimon-agent", level > LOG_DEBUG ? LOG_DEBUG : (enum log_level)level);
	static struct auth_key key;
	const struct auth_key *keyp;
	if (auth_key_setting("agent.auth.token_file", cfg.agent.auth_token_file, &key, &keyp) < 0) {
		config_free(&cfg);
		return 2;
	}
	struct tls_client *tls = NULL;
	if (cfg.agent.tls_ca[0]) {
		char terr[512];
		tls = tls_client_create(cfg.agent.tls_ca, cfg.agent.tls_cert, cfg.agent.tls_key,
		                        terr, sizeof terr);
		if (!tls) {
			log_err("main", "agent.tls: %s", terr);
			config_free(&cfg);
			return 2;
		}
	}
	struct collect_roots roots = {cfg.agent.proc_root, cfg.agent.sys_root, "/etc/os-release",
	                              "/var/run/utmp"};
	struct collect *col = collect_create(&roots);
	if (!col)
		log_fatal("main", "cannot set up the collectors");
	collect_diskio_partitions(col, cfg.agent.diskio_partitions);
	if (once) {
		/* What a server enables by default (server.collect.metrics);
		 * unknown names are logged and skipped there. */
		(void)collect_select(col, (const char *const *)cfg.server.collect_metrics,
		                     cfg.server.ncollect_metrics);
		int rc = run_once(col, cfg.agent.name);
		collect_destroy(col);
		tls_client_destroy(tls);
		config_free(&cfg);
		return rc;
	}

	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	if (!base)
		log_fatal("main", "cannot create the event base");
	struct link *link = link_create(base, &cfg, col, cfg.agent.name, keyp, tls);
	if (!link)
		log_fatal("main", "cannot set up the link to %s", cfg.agent.server[0]);
	struct agent agent = {.link = link, .config_path = path};
	agent.checks = checks_create(base, on_check_result, &agent);
	if (!agent.checks || agent_set_checks(&agent, cfg.agent.checks, cfg.agent.nchecks) < 0)
		log_fatal("main", "cannot set up the checks");
	if (cfg.agent.alarm_socket[0])
		agent.local = local_create(base, cfg.agent.alarm_socket, on_local_alarm, &agent);
	struct event *sigterm = evsignal_new(base, SIGTERM, on_stop_signal, link);
	struct event *sigint = evsignal_new(base, SIGINT, on_stop_signal, link);
	struct event *sighup = evsignal_new(base, SIGHUP, on_hup_signal, &agent);
	if (!sigterm || !sigint || !sighup || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0 || evsignal_add(sighup, NULL) < 0)
		log_fatal("main", "cannot install signal handlers");
	if (cfg.agent.nserver > 1)
		log_notice("main", "pimon-agent %s: host %s, %zu servers ranked by name",
		           PIMON_VERSION, cfg.agent.name, cfg.agent.nserver);
	else
		log_notice("main", "pimon-agent %s: host %s, server %s", PIMON_VERSION,
		           cfg.agent.name, cfg.agent.server[0]);
	link_start(link);
	notify_send("READY=1");
	event_base_dispatch(base);
	notify_send("STOPPING=1");

	local_destroy(agent.local);
	checks_destroy(agent.checks);
	free(agent.states);
	link_destroy(link);
	tls_client_destroy(tls);
	event_free(sigterm);
	event_free(sigint);
	event_free(sighup);
	event_base_free(base);
	collect_destroy(col);
	config_free(&cfg);
	log_notice("main", "stopped");
	return 0;
}
