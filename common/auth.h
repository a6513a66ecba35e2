/* Agent authentication: a shared (or per-host) secret proven by an HMAC
 * over the server's fresh nonce, the host name and the agent's run id, so
 * the secret never crosses the wire and a recorded HELLO cannot be replayed. */
#ifndef PIMON_AUTH_H
#define PIMON_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define AUTH_KEY_MAX    256
#define AUTH_KEY_MIN    16
#define AUTH_PROOF_SIZE 32 /* HMAC-SHA256 */

struct auth_key {
	uint8_t bytes[AUTH_KEY_MAX];
	size_t len;
};

/* Read a secret from path: owner-only permissions, 16..256 bytes, one
 * trailing newline ignored. 0, or -1 with errbuf saying why (naming the
 * file). */
int auth_key_load(const char *path, struct auth_key *key, char *errbuf, size_t errlen);

/* The secret a setting names: with path empty, *out is NULL and nothing is
 * read; otherwise key is loaded and *out points at it. 0, or -1 with
 * "SETTING: why" logged. */
int auth_key_setting(const char *setting, const char *path, struct auth_key *key,
                     const struct auth_key **out);

/* The proof for (nonce, name, run_id) under key. */
void auth_proof(const struct auth_key *key, const uint8_t nonce[PROTO_NONCE_SIZE], const char *name,
                uint64_t run_id, uint8_t out[AUTH_PROOF_SIZE]);

/* Non-zero when proof (len bytes) is right; compares in constant time. */
int auth_check(const struct auth_key *key, const uint8_t nonce[PROTO_NONCE_SIZE], const char *name,
               uint64_t run_id, const uint8_t *proof, size_t len);

/* Fill a nonce from the system's random source; 0 or -1. */
int auth_nonce(uint8_t nonce[PROTO_NONCE_SIZE]);

#endif
