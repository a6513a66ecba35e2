/* SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), self-contained, so the
 * agent proves its secret without loading a crypto library. */
#ifndef PIMON_SHA256_H
#define PIMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_SIZE       32
#define SHA256_BLOCK_SIZE 64

struct sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes hashed so far */
	uint8_t block[SHA256_BLOCK_SIZE];
	size_t used; /* bytes waiting in block */
};

/* Start a digest. */
void sha256_init(struct sha256 *s);

/* Hash len more bytes. */
void sha256_update(struct sha256 *s, const void *data, size_t len);

/* Pad, write the digest to out and wipe s. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_SIZE]);

/* The digest of one buffer. */
void sha256(const void *data, size_t len, uint8_t out[SHA256_SIZE]);

/* HMAC-SHA256(key, msg); a key longer than a block is hashed first. */
void hmac_sha256(const void *key, size_t keylen, const void *msg, size_t len,
                 uint8_t out[SHA256_SIZE]);

#endif
