/* pimon-agent: collect this machine's metrics and report them to
 * pimon-server, or print one snapshot with --once. */
#include <event2/event.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "config.h"
#include "link.h"
#include "log.h"
#include "notify.h"
#include "metric_json.h"
#include "pimon_version.h"
#include "util.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: pimon-agent [options]\n"
	             "  -c, --config FILE    configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	             "  -t, --test           check the configuration and exit (0 good, 2 bad)\n"
	             "  -1, --once           print one snapshot as JSON and exit (no server)\n"
	             "  -s, --server ADDR    server address, host:port (agent.server)\n"
	             "  -n, --name NAME      host name to report (agent.name)\n"
	             "      --proc-root DIR  read /proc from DIR (agent.proc_root)\n"
	             "      --sys-root DIR   read /sys from DIR (agent.sys_root)\n"
	             "      --spool-dir DIR  keep unacked batches in DIR/NAME (agent.spool_dir)\n"
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

/* SIGTERM/SIGINT: say goodbye and stop. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	log_notice("main", "signal %d: stopping", (int)sig);
	link_shutdown(arg);
}

int main(int argc, char **argv)
{
	enum { OPT_PROC = 256, OPT_SYS, OPT_SPOOL };
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
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = NULL, *server = NULL, *name = NULL, *proc = NULL, *sys = NULL;
	const char *spool = NULL;
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
		config_set_str(&cfg.agent.server, server);
	if (name)
		config_set_str(&cfg.agent.name, name);
	if (proc)
		config_set_str(&cfg.agent.proc_root, proc);
	if (sys)
		config_set_str(&cfg.agent.sys_root, sys);
	if (spool)
		config_set_str(&cfg.agent.spool_dir, spool);
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
	SSL_CTX *tls = NULL;
	if (cfg.agent.tls_ca[0]) {
		char terr[512];
		tls = tls_client_ctx(cfg.agent.tls_ca, cfg.agent.tls_cert, cfg.agent.tls_key, terr,
		                     sizeof terr);
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
	if (once) {
		int rc = run_once(col, cfg.agent.name);
		collect_destroy(col);
		SSL_CTX_free(tls);
		config_free(&cfg);
		return rc;
	}

	signal(SIGPIPE, SIG_IGN);
	struct event_base *base = event_base_new();
	if (!base)
		log_fatal("main", "cannot create the event base");
	struct link *link = link_create(base, &cfg, col, cfg.agent.name, keyp, tls);
	if (!link)
		log_fatal("main", "cannot set up the link to %s", cfg.agent.server);
	struct event *sigterm = evsignal_new(base, SIGTERM, on_stop_signal, link);
	struct event *sigint = evsignal_new(base, SIGINT, on_stop_signal, link);
	if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0)
		log_fatal("main", "cannot install signal handlers");
	log_notice("main", "pimon-agent %s: host %s, server %s", PIMON_VERSION, cfg.agent.name,
	           cfg.agent.server);
	link_start(link);
	notify_send("READY=1");
	event_base_dispatch(base);
	notify_send("STOPPING=1");

	link_destroy(link);
	SSL_CTX_free(tls);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(base);
	collect_destroy(col);
	config_free(&cfg);
	log_notice("main", "stopped");
	return 0;
}
