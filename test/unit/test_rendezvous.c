/* Unit tests for rendezvous hashing: pinned weights (the integration test
 * computes the same in Python), a stable ranking, and the moves a change of
 * the server set causes: adding one moves about 1/(N+1) of the hosts, all
 * to the new one; removing one moves only its own hosts. */
#include "rendezvous.h"
#include "check.h"

#include <stdio.h>

#define NHOSTS 10000

static const char *const servers[] = {"10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080",
                                      "10.0.0.4:8080", "pimon-e.lan:8080"};

/* The name of host i. */
static const char *host(unsigned i)
{
	static char name[32];
	snprintf(name, sizeof name, "pi-%05u", i);
	return name;
}

/* The first choice of host i among the first n servers. */
static size_t first(unsigned i, size_t n)
{
	size_t order[RENDEZVOUS_MAX];
	rendezvous_rank(host(i), servers, n, order);
	return order[0];
}

/* The weights are pinned: a change breaks every fleet's spread. */
static void test_weights_pinned(void)
{
	CHECK(rendezvous_weight("pi-kitchen", "10.0.0.1:8080") == 0xb59c6c3ccfe85da1ull);
	CHECK(rendezvous_weight("", "") == 0xb9034ad37056f5fbull);
	CHECK(rendezvous_weight("ab", "c") != rendezvous_weight("a", "bc"));
}

/* A ranking is a permutation, by falling weight, the same every time and
 * whatever order the servers are listed in. */
static void test_rank_stable(void)
{
	const char *rev[5];
	size_t a[RENDEZVOUS_MAX], b[RENDEZVOUS_MAX], c[RENDEZVOUS_MAX];
	for (size_t i = 0; i < 5; i++)
		rev[i] = servers[4 - i];
	for (unsigned h = 0; h < 200; h++) {
		rendezvous_rank(host(h), servers, 5, a);
		rendezvous_rank(host(h), servers, 5, b);
		rendezvous_rank(host(h), rev, 5, c);
		unsigned seen = 0;
		for (size_t k = 0; k < 5; k++) {
			CHECK(a[k] == b[k]);
			CHECK(c[k] == 4 - a[k]);
			seen |= 1u << a[k];
			if (k > 0)
				CHECK(rendezvous_weight(host(h), servers[a[k - 1]]) >=
				      rendezvous_weight(host(h), servers[a[k]]));
		}
		CHECK(seen == 0x1f);
	}
}

/* Adding a fourth server to three moves about a quarter of the hosts, each
 * to the new server; none changes between the old three. */
static void test_add_moves_a_share(void)
{
	unsigned moved = 0, between = 0, per[4] = {0};
	for (unsigned h = 0; h < NHOSTS; h++) {
		size_t before = first(h, 3), after = first(h, 4);
		per[after]++;
		if (before != after) {
			moved++;
			if (after != 3)
				between++;
		}
	}
	printf("add: %u of %u moved (expected %u)\n", moved, NHOSTS, NHOSTS / 4);
	CHECK(between == 0);
	CHECK(moved > NHOSTS / 4 - NHOSTS / 40 && moved < NHOSTS / 4 + NHOSTS / 40);
	for (size_t s = 0; s < 4; s++)
		CHECK(per[s] > NHOSTS / 4 - NHOSTS / 25 && per[s] < NHOSTS / 4 + NHOSTS / 25);
}

/* Removing a server moves its hosts only, each to its second choice. */
static void test_remove_moves_its_own(void)
{
	const char *four[] = {servers[0], servers[1], servers[3], servers[4]}; /* no [2] */
	unsigned moved = 0, others = 0;
	for (unsigned h = 0; h < NHOSTS; h++) {
		size_t all[RENDEZVOUS_MAX], rest[RENDEZVOUS_MAX];
		rendezvous_rank(host(h), servers, 5, all);
		rendezvous_rank(host(h), four, 4, rest);
		const char *before = servers[all[0]], *after = four[rest[0]];
		if (before == after)
			continue;
		moved++;
		if (all[0] != 2 || after != servers[all[1]])
			others++;
	}
	printf("remove: %u of %u moved (expected %u)\n", moved, NHOSTS, NHOSTS / 5);
	CHECK(others == 0);
	CHECK(moved > NHOSTS / 5 - NHOSTS / 40 && moved < NHOSTS / 5 + NHOSTS / 40);
}

int main(void)
{
	test_weights_pinned();
	test_rank_stable();
	test_add_moves_a_share();
	test_remove_moves_its_own();
	return check_report("rendezvous");
}
