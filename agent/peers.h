/* The server list a WELCOME taught the agent, kept in its spool folder
 * (<spool_dir>/<name>/servers, one "host:port" a line) so that a restarted
 * agent still ranks the fleet's servers, not only its bootstrap address.
 * Plain file I/O on the caller's thread; no state between calls. */
#ifndef PIMON_PEERS_H
#define PIMON_PEERS_H

#include <stddef.h>

#include "proto.h"
#include "rendezvous.h"

/* One list: n addresses, each valid (proto_addr_valid). */
struct peers {
	size_t n;
	char addr[RENDEZVOUS_MAX][PROTO_ADDR_MAX + 1];
};

/* Parse len bytes of a servers file: 1..RENDEZVOUS_MAX lines, each an
 * address, the last ending in a newline. 0, or -1 with *why set. */
int peers_parse(const char *buf, size_t len, struct peers *out, const char **why);

/* Read dir/servers into out: 1 when loaded, 0 when there is none, -1 when
 * it cannot be read or parsed (logged; the caller goes on without it). */
int peers_load(const char *dir, struct peers *out);

/* Write list (n addresses) to dir/servers, replacing it atomically (a
 * synced temporary file renamed over it). 0, or -1 (logged). */
int peers_save(const char *dir, const char *const *list, size_t n);

#endif
