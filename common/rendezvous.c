/* Rendezvous hashing of host names over server addresses. */
#include "rendezvous.h"

#include <string.h>

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME  0x100000001b3ull

/* FNV-1a of the bytes of s, continuing from h. */
static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * FNV64_PRIME;
	return h;
}

/* MurmurHash3's 64-bit finaliser. */
static uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ull;
	k ^= k >> 33;
	return k;
}

/* The weight of addr for name. */
uint64_t rendezvous_weight(const char *name, const char *addr)
{
	uint64_t h = fnv1a(FNV64_OFFSET, name);
	h = (h ^ 0) * FNV64_PRIME; /* the separator: "ab"+"c" is not "a"+"bc" */
	return fmix64(fnv1a(h, addr));
}

/* Whether server i ranks before server j. */
static int ranks_before(uint64_t wi, const char *ai, uint64_t wj, const char *aj)
{
	return wi != wj ? wi > wj : strcmp(ai, aj) < 0;
}

/* Rank addrs for name, best first (an insertion sort: n is small). */
void rendezvous_rank(const char *name, const char *const *addrs, size_t n, size_t *order)
{
	uint64_t w[RENDEZVOUS_MAX];
	if (n > RENDEZVOUS_MAX)
		n = RENDEZVOUS_MAX;
	for (size_t i = 0; i < n; i++) {
		w[i] = rendezvous_weight(name, addrs[i]);
		size_t k = i;
		while (k > 0 &&
		       ranks_before(w[i], addrs[i], w[order[k - 1]], addrs[order[k - 1]])) {
			order[k] = order[k - 1];
			k--;
		}
		order[k] = i;
	}
}
