/* Recent authentication failures per address, in a fixed table: an
 * address's slot is found by hash, and a full table reuses the stalest
 * slot, so memory stays fixed whatever a scanner does. */
#include "authlimit.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define SLOTS     1024
#define WINDOW_MS 60000 /* failures older than this are forgotten */

struct slot {
	char ip[48];
	unsigned failures;
	uint64_t last_ms;
};

static struct slot slots[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* The address without its port. */
static void addr_ip(const char *addr, char *ip, size_t size)
{
	int port;
	if (util_split_hostport(addr, ip, size, &port) < 0)
		snprintf(ip, size, "%s", addr);
}

/* The slot for ip: its own, or the stalest of a few candidates. MUST hold
 * lock. */
static struct slot *slot_for(const char *ip, uint64_t now)
{
	uint32_t h = util_crc32(0, ip, strlen(ip));
	struct slot *stalest = NULL;
	for (int i = 0; i < 4; i++) {
		struct slot *s = &slots[(h + (uint32_t)i) % SLOTS];
		if (strcmp(s->ip, ip) == 0) {
			if (now - s->last_ms > WINDOW_MS)
				s->failures = 0;
			return s;
		}
		if (!stalest || s->last_ms < stalest->last_ms)
			stalest = s;
	}
	snprintf(stalest->ip, sizeof stalest->ip, "%s", ip);
	stalest->failures = 0;
	return stalest;
}

/* One more failure; the delay to impose. */
unsigned authlimit_fail(const char *addr)
{
	char ip[48];
	addr_ip(addr, ip, sizeof ip);
	uint64_t now = util_mono_ms();
	pthread_mutex_lock(&lock);
	struct slot *s = slot_for(ip, now);
	s->failures++;
	s->last_ms = now;
	unsigned n = s->failures;
	pthread_mutex_unlock(&lock);
	unsigned shift = n > 6 ? 5 : n - 1;
	return 250u << shift;
}

/* A success clears the address. */
void authlimit_ok(const char *addr)
{
	char ip[48];
	addr_ip(addr, ip, sizeof ip);
	pthread_mutex_lock(&lock);
	struct slot *s = slot_for(ip, util_mono_ms());
	s->failures = 0;
	pthread_mutex_unlock(&lock);
}
