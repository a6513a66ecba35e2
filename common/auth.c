/* Agent authentication with HMAC-SHA256 from sha256.c: no crypto library. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sha256.h"
#include "util.h"

/* Load and check a secret file. */
int auth_key_load(const char *path, struct auth_key *key, char *errbuf, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) < 0) {
		snprintf(errbuf, errlen, "%s: cannot read: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(errbuf, errlen, "%s: readable by others (mode %03o); chmod 600 it", path,
		         (unsigned)(sb.st_mode & 0777));
		close(fd);
		return -1;
	}
	uint8_t buf[AUTH_KEY_MAX + 2];
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n < AUTH_KEY_MIN || n > AUTH_KEY_MAX) {
		snprintf(errbuf, errlen, "%s: a secret must be %d to %d bytes", path, AUTH_KEY_MIN,
		         AUTH_KEY_MAX);
		return -1;
	}
	memcpy(key->bytes, buf, (size_t)n);
	key->len = (size_t)n;
	explicit_bzero(buf, sizeof buf);
	return 0;
}

/* Load the secret a setting names, if it names one. */
int auth_key_setting(const char *setting, const char *path, struct auth_key *key,
                     const struct auth_key **out)
{
	*out = NULL;
	if (!path[0])
		return 0;
	char err[512];
	if (auth_key_load(path, key, err, sizeof err) < 0) {
		log_err("auth", "%s: %s", setting, err);
		return -1;
	}
	*out = key;
	return 0;
}

/* HMAC-SHA256(key, nonce || u8 name length || name || run_id big-endian). */
void auth_proof(const struct auth_key *key, const uint8_t nonce[PROTO_NONCE_SIZE], const char *name,
                uint64_t run_id, uint8_t out[AUTH_PROOF_SIZE])
{
	uint8_t msg[PROTO_NONCE_SIZE + 1 + PROTO_NAME_MAX + 8];
	size_t nl = strnlen(name, PROTO_NAME_MAX);
	memcpy(msg, nonce, PROTO_NONCE_SIZE);
	msg[PROTO_NONCE_SIZE] = (uint8_t)nl;
	memcpy(msg + PROTO_NONCE_SIZE + 1, name, nl);
	util_put_be64(msg + PROTO_NONCE_SIZE + 1 + nl, run_id);
	hmac_sha256(key->bytes, key->len, msg, PROTO_NONCE_SIZE + 1 + nl + 8, out);
}

/* Recompute and compare in constant time. */
int auth_check(const struct auth_key *key, const uint8_t nonce[PROTO_NONCE_SIZE], const char *name,
               uint64_t run_id, const uint8_t *proof, size_t len)
{
	uint8_t want[AUTH_PROOF_SIZE];
	if (len != AUTH_PROOF_SIZE)
		return 0;
	auth_proof(key, nonce, name, run_id, want);
	uint8_t diff = 0;
	for (size_t i = 0; i < AUTH_PROOF_SIZE; i++)
		diff |= (uint8_t)(want[i] ^ proof[i]);
	explicit_bzero(want, sizeof want);
	return diff == 0;
}

/* A nonce from the kernel's CSPRNG (getrandom blocks only until it is
 * seeded, early at boot). */
int auth_nonce(uint8_t nonce[PROTO_NONCE_SIZE])
{
	ssize_t n;
	do
		n = getrandom(nonce, PROTO_NONCE_SIZE, 0);
	while (n < 0 && errno == EINTR);
	return n == PROTO_NONCE_SIZE ? 0 : -1;
}
