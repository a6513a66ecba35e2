/* Unit tests for SHA-256 and HMAC-SHA256: the FIPS 180-4 examples, the
 * RFC 4231 test cases, splits of the input across updates, OpenSSL's
 * answer for every key and message length up to two blocks and more, and
 * the agent's proof built on them. */
#include "sha256.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "check.h"

/* bytes as lowercase hex in a static buffer. */
static const char *hex(const uint8_t *bytes, size_t len)
{
	static char buf[2 * 64 + 1];
	for (size_t i = 0; i < len; i++)
		snprintf(buf + 2 * i, 3, "%02x", bytes[i]);
	buf[2 * len] = '\0';
	return buf;
}

/* n copies of byte c in a static buffer. */
static const uint8_t *repeat(uint8_t c, size_t n)
{
	static uint8_t buf[256];
	memset(buf, c, n);
	return buf;
}

/* The FIPS 180-4 examples, and a million 'a' fed in odd-sized pieces. */
static void test_sha256_vectors(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	    {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	    {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklm"
	     "nopqrlmnopqrsmnopqrstnopqrstu",
	     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
	};
	uint8_t out[SHA256_SIZE];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		sha256(cases[i].in, strlen(cases[i].in), out);
		CHECK_STR(hex(out, sizeof out), cases[i].want);
	}
	struct sha256 s;
	sha256_init(&s);
	uint8_t a[1000];
	memset(a, 'a', sizeof a);
	for (size_t done = 0, step = 1; done < 1000000; step = step % 997 + 1) {
		size_t n = 1000000 - done < step ? 1000000 - done : step;
		sha256_update(&s, a, n);
		done += n;
	}
	sha256_final(&s, out);
	CHECK_STR(hex(out, sizeof out),
	          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

/* RFC 4231, test cases 1 to 7 (case 5 compares the first 128 bits). */
static void test_hmac_rfc4231(void)
{
	static const uint8_t key4[25] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13,
	                                 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25};
	uint8_t key[131], out[SHA256_SIZE];

	memcpy(key, repeat(0x0b, 20), 20);
	hmac_sha256(key, 20, "Hi There", 8, out);
	CHECK_STR(hex(out, sizeof out),
	          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

	hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, out);
	CHECK_STR(hex(out, sizeof out),
	          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	memcpy(key, repeat(0xaa, 20), 20);
	hmac_sha256(key, 20, repeat(0xdd, 50), 50, out);
	CHECK_STR(hex(out, sizeof out),
	          "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

	hmac_sha256(key4, sizeof key4, repeat(0xcd, 50), 50, out);
	CHECK_STR(hex(out, sizeof out),
	          "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");

	memcpy(key, repeat(0x0c, 20), 20);
	hmac_sha256(key, 20, "Test With Truncation", 20, out);
	CHECK_STR(hex(out, 16), "a3b6167473100ee06e0c796c2955552b");

	memcpy(key, repeat(0xaa, 131), 131);
	const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	hmac_sha256(key, 131, m6, strlen(m6), out);
	CHECK_STR(hex(out, sizeof out),
	          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

	const char *m7 = "This is a test using a larger than block-size key and a larger than "
	                 "block-size data. The key needs to be hashed before being used by the "
	                 "HMAC algorithm.";
	hmac_sha256(key, 131, m7, strlen(m7), out);
	CHECK_STR(hex(out, sizeof out),
	          "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* Every key length 0..150 and message length 0..200 against OpenSSL. */
static void test_hmac_matches_openssl(void)
{
	uint8_t key[150], msg[200], ours[SHA256_SIZE], theirs[SHA256_SIZE];
	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (uint8_t)(i * 7 + 3);
	for (size_t i = 0; i < sizeof msg; i++)
		msg[i] = (uint8_t)(i * 13 + 5);
	int bad = 0;
	for (size_t kl = 0; kl <= sizeof key; kl += 3) {
		for (size_t ml = 0; ml <= sizeof msg; ml++) {
			unsigned int len = sizeof theirs;
			hmac_sha256(key, kl, msg, ml, ours);
			HMAC(EVP_sha256(), key, (int)kl, msg, ml, theirs, &len);
			bad += memcmp(ours, theirs, sizeof ours) != 0;
		}
	}
	CHECK(bad == 0);
}

/* The HELLO proof: HMAC over nonce, name length, name and run id. */
static void test_auth_proof(void)
{
	struct auth_key key = {.len = 16};
	memcpy(key.bytes, "0123456789abcdef", 16);
	uint8_t nonce[PROTO_NONCE_SIZE], proof[AUTH_PROOF_SIZE];
	for (int i = 0; i < PROTO_NONCE_SIZE; i++)
		nonce[i] = (uint8_t)i;
	auth_proof(&key, nonce, "pi-1", 0x0102030405060708ull, proof);
	CHECK_STR(hex(proof, sizeof proof),
	          "508ebc261743631653bdc23fdb618f218af44d89324d57b0d13f1d6d57258505");
	CHECK(auth_check(&key, nonce, "pi-1", 0x0102030405060708ull, proof, sizeof proof));
	CHECK(!auth_check(&key, nonce, "pi-2", 0x0102030405060708ull, proof, sizeof proof));
	CHECK(!auth_check(&key, nonce, "pi-1", 0x0102030405060709ull, proof, sizeof proof));
	CHECK(!auth_check(&key, nonce, "pi-1", 0x0102030405060708ull, proof, sizeof proof - 1));
	proof[31] ^= 1;
	CHECK(!auth_check(&key, nonce, "pi-1", 0x0102030405060708ull, proof, sizeof proof));
	uint8_t n1[PROTO_NONCE_SIZE], n2[PROTO_NONCE_SIZE];
	CHECK(auth_nonce(n1) == 0 && auth_nonce(n2) == 0);
	CHECK(memcmp(n1, n2, sizeof n1) != 0);
}

int main(void)
{
	test_sha256_vectors();
	test_hmac_rfc4231();
	test_hmac_matches_openssl();
	test_auth_proof();
	return check_report("sha256");
}
