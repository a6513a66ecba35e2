/* Configuration: one libconfig file with a server and an agent group.
 * One table of keys (config.c) drives loading, validation and defaults. */
#ifndef PIMON_CONFIG_H
#define PIMON_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH "/etc/pimon.cfg"

/* One alarm rule (server.alarms): fires when metric compares true against
 * value for for_s seconds, resolves when it no longer does (or, with a
 * clear threshold, once it is past clear). */
struct pimon_rule {
	char *name;   /* alarm name, a key: [a-z0-9_]{1,32} */
	char *metric; /* "group.field", e.g. "disk.used_pct" */
	char *op;     /* ">", ">=", "<" or "<=" */
	double value;
	double clear; /* NAN: resolves as soon as the comparison is false */
	double for_s; /* seconds the comparison must hold before firing */
	char *level;  /* "warning" or "critical" */
	char **hosts; /* fnmatch patterns of host names; none: every host */
	size_t nhosts;
};

/* One agent check (agent.checks): a Monitoring-Plugins style command run
 * every interval seconds, killed after timeout seconds. */
struct pimon_check {
	char *name;     /* a key: [a-z0-9_]{1,32} */
	char **command; /* argv; command[0] is the program, never a shell */
	size_t ncommand;
	double interval;
	double timeout;
};

/* One Prometheus remote_write receiver (server.remote_write). */
struct pimon_remote_write {
	char *name;                /* a key: [a-z0-9_]{1,32}; names its cursors' folder */
	char *url;                 /* http:// or https:// */
	char *bearer_token_file;   /* "" for none */
	char *basic_auth_username; /* "" for none */
	char *basic_auth_password_file;
	char **headers; /* "Name: value" sent with every request */
	size_t nheaders;
	char *ca_file;            /* "" for the system's CAs */
	char *job;                /* the job label */
	int max_samples_per_send; /* samples in one request at most */
	double max_age;           /* s; older samples are dropped (0: none is) */
	double timeout;           /* s for one request */
};

struct pimon_config {
	char *path; /* file that was loaded, NULL for built-in defaults */
	struct {
		char *listen;              /* "0.0.0.0:8080", "[::]:8080" */
		int workers;               /* event-base threads owning sessions */
		char *data_dir;            /* hosts/<name>/<metric>.csv live here */
		int max_frame;             /* largest frame payload accepted, bytes */
		double heartbeat_timeout;  /* s without a frame before a host is down */
		double heartbeat_interval; /* s between agent heartbeats (WELCOME) */
		double collect_interval;   /* s between batches (WELCOME) */
		char **collect_metrics;    /* collectors agents run (WELCOME) */
		size_t ncollect_metrics;
		char *http_listen; /* "" disables the HTTP API */
		char *tls_cert;    /* "" for plain TCP */
		char *tls_key;
		char *tls_ca;        /* client certificates required when set */
		char *http_tls_cert; /* "" for plain HTTP */
		char *http_tls_key;
		char *http_admin_token_file; /* POST needs its token; "" for open */
		char *http_read_token_file;  /* reading needs it (or admin); "" open */
		char *auth_token_file;       /* shared agent secret; "" lets anyone in */
		char *auth_hosts_dir;        /* per-host secrets, by host name */
		double hello_timeout;        /* s to send HELLO after connecting */
		int max_sessions;            /* connections held at once */
		int max_output;              /* bytes queued to a peer before reading pauses */
		int http_max_header;         /* bytes */
		int http_max_body;           /* bytes */
		double http_timeout;         /* s */
		struct pimon_rule *alarms;   /* threshold rules */
		size_t nalarms;
		char **notify_command; /* argv run for each fire and resolve; none: off */
		size_t nnotify_command;
		double notify_timeout;    /* s before a notify command is killed */
		int notify_max_running;   /* notify commands at once; more wait */
		char *sync;               /* "none", "batch" or "interval" */
		double sync_interval;     /* s between syncs under "interval" */
		int storage_sweep;        /* s between housekeeping sweeps */
		int storage_close_delay;  /* s over which hosts' closed files are staggered */
		int storage_raw_days;     /* compressed raw days kept */
		int storage_minute_days;  /* compressed minute days kept */
		int storage_hour_days;    /* compressed hour months kept, in days */
		double storage_max_bytes; /* cap on hosts/; 0: 80 % of its file system */
		struct pimon_remote_write *remote_write; /* receivers fed the stored rows */
		size_t nremote_write;
		char *log_level;
		char **peers; /* "host:port" sent in WELCOME to agents that ask */
		size_t npeers;
	} server;
	struct {
		char **server; /* "host:port" of each server, in the order tried */
		size_t nserver;
		char *name; /* "" means the machine's host name */
		char *proc_root;
		char *sys_root;
		int diskio_partitions; /* 1: diskio reports partitions too */
		double reconnect_min;  /* s, first backoff step */
		double reconnect_max;  /* s, backoff cap */
		double return_delay;   /* s before trying the first choice again */
		int queue_max;         /* unacked batches kept */
		char *spool_dir;       /* unacked batches on disk */
		int spool_max;         /* bytes of unacked batches kept */
		double spool_flush;    /* s between spool writes while away */
		char *auth_token_file; /* this agent's secret; "" for none */
		char *tls_ca;          /* "" for plain TCP */
		char *tls_cert;
		char *tls_key;
		char *tls_server_name; /* "" means the host of each agent.server */
		int catchup_rate;      /* batches/s when catching up */
		struct pimon_check *checks;
		size_t nchecks;
		char *alarm_socket; /* Unix socket for `pimon-agent alarm`; "" for none */
		char *log_level;
	} agent;
};

/* Fill cfg with built-in defaults. */
void config_defaults(struct pimon_config *cfg);

/* Load path over the defaults. path NULL means CONFIG_DEFAULT_PATH, where a
 * missing file leaves the defaults. Returns 0, or -1 with errbuf set to
 * "FILE:LINE: what is wrong" (or "FILE: ..." when no line applies). */
int config_load(struct pimon_config *cfg, const char *path, char *errbuf, size_t errlen);

/* Load an open file, named name in messages, over the defaults; cfg
 * changes only on success. 0, or -1 with errbuf set as for config_load. */
int config_load_stream(struct pimon_config *cfg, FILE *fp, const char *name, char *errbuf,
                       size_t errlen);

/* Load path as a program's command line asks: on a bad file print
 * "PROG: FILE:LINE: what" to stderr; with check_only say the file is valid
 * and stop. Returns -1 to go on, or the exit status (0, or 2 for a bad
 * file); cfg is freed whenever the status is not -1. */
int config_load_cli(struct pimon_config *cfg, const char *prog, const char *path, int check_only);

/* Replace a string value with a copy of value (a command-line override). */
void config_set_str(char **slot, const char *value);

/* Replace a list with the one item value (a command-line override). */
void config_set_list(char ***list, size_t *n, const char *value);

/* Release every string of cfg. */
void config_free(struct pimon_config *cfg);

/* Parse a level name ("err", "warn", "notice", "info", "debug") to its
 * number; -1 if unknown. */
int config_log_level(const char *name);

/* Names the collect.metrics list may hold. */
extern const char *const config_metric_names[];

/* Write the documented example file (etc/pimon.cfg): every key with its
 * meaning, allowed values and default. 0, or -1 on a write error. */
int config_write_example(FILE *out);

/* Write the key reference of pimon.cfg(5) in scdoc (docs/man): every key
 * with its type, meaning, allowed values and default. 0, or -1 on a write
 * error or for a key without documentation (named on stderr). */
int config_write_man(FILE *out);

#endif
