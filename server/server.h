/* What every part of pimon-server shares: the configuration, the registry
 * and the worker pool. Set up by main before any thread starts. */
#ifndef PIMON_SERVER_H
#define PIMON_SERVER_H

#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "registry.h"

struct worker;
struct rules_holder;
struct notifier;
struct housekeep;
struct remote_write;

struct server {
	const struct pimon_config *cfg;
	struct registry *registry;
	struct worker **workers;
	int nworkers;
	const struct auth_key *auth_key;   /* shared agent secret, NULL if none */
	const char *auth_hosts_dir;        /* per-host secrets, NULL if none */
	struct ssl_ctx_st *tls_ctx;        /* agents' sessions in TLS, NULL: plain */
	struct ssl_ctx_st *http_tls_ctx;   /* HTTPS, NULL: plain HTTP */
	const struct auth_key *http_admin; /* token POST needs, NULL: none */
	const struct auth_key *http_read;  /* token reading needs, NULL: none */
	uint64_t started_ms;               /* wall clock at start, Unix ms */
	uint64_t started_mono_ms;          /* monotonic clock at start */
	struct rules_holder *rules;        /* alarm rules in force */
	struct notifier *notifier;         /* runs server.notify.command */
	struct housekeep *housekeep;       /* compresses and expires stored data */
	struct remote_write *remote_write; /* feeds server.remote_write receivers */
};

#endif
