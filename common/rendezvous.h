/* Rendezvous (highest-random-weight) hashing: which servers a host should
 * use, best first. Every agent, pimon-bench and the tests rank the same
 * way, so a fleet shares its servers without asking anyone. Pure: no I/O. */
#ifndef PIMON_RENDEZVOUS_H
#define PIMON_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

/* Servers ranked at most (the WELCOME peer limit and agent.server alike). */
#define RENDEZVOUS_MAX 16

/* The weight of server address addr for the host called name: 64-bit
 * FNV-1a over name, one 0 byte and addr, finished by MurmurHash3's fmix64
 * so that every input bit moves every output bit. */
uint64_t rendezvous_weight(const char *name, const char *addr);

/* Fill order[0..n) with the indexes of addrs, best first: highest weight,
 * ties broken by the smaller address (strcmp). n <= RENDEZVOUS_MAX. */
void rendezvous_rank(const char *name, const char *const *addrs, size_t n, size_t *order);

#endif
