/* The agent's one session to the server: connect, HELLO, batches at the
 * server's interval, heartbeats, reconnect with capped exponential backoff
 * and jitter that starts over only after a stable session. With several
 * servers (agent.server, or the peers of a WELCOME) it ranks them by
 * rendezvous hashing of the host's name, uses its first choice, fails over
 * down the ranking and returns after agent.return_delay. What waits for
 * an ACK (queue, alarms, spool, runs) is the outbox's (outbox.h); the link
 * sends what it hands out and tells it what was acked.
 * Single-threaded: everything runs on the agent's event base. */
#ifndef PIMON_LINK_H
#define PIMON_LINK_H

#include <event2/event.h>

#include "auth.h"
#include "collect.h"
#include "tls_client.h"
#include "config.h"

struct link;

/* A link to cfg->agent.server's ranking for the host called name, proving key (NULL
 * for none) in HELLO, over TLS with tls (NULL for plain TCP); NULL on error. */
struct link *link_create(struct event_base *base, const struct pimon_config *cfg,
                         struct collect *col, const char *name, const struct auth_key *key,
                         struct tls_client *tls);

/* Start connecting. */
void link_start(struct link *l);

/* Send groups (a check's perfdata) as a batch of their own, delivered like
 * every batch. 0, or -1 if they cannot be encoded (logged). */
int link_send_groups(struct link *l, const struct proto_group *groups, size_t n);

/* Send an alarm's new state (source and level as in proto.h): ahead of
 * queued batches, kept until acked, spooled while the server is away.
 * 0, or -1 if it cannot be encoded (logged). */
int link_alarm(struct link *l, uint8_t source, const char *name, uint8_t level, const char *message,
               uint64_t time_ms);

/* Say BYE if connected, then leave the base's loop once it is sent (or
 * after a short deadline). */
void link_shutdown(struct link *l);

/* Free the link and its queue. */
void link_destroy(struct link *l);

#endif
