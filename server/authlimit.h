/* Slowing down addresses that fail authentication: a small table of recent
 * failures per peer address, shared by every worker. */
#ifndef PIMON_AUTHLIMIT_H
#define PIMON_AUTHLIMIT_H

/* Record a failure from addr ("ip:port" or "[ip6]:port"; the port is
 * ignored) and return how many milliseconds to wait before answering it:
 * 250 ms doubled for each recent failure, at most 8 s. Any thread. */
unsigned authlimit_fail(const char *addr);

/* Forget addr's failures after it authenticated. Any thread. */
void authlimit_ok(const char *addr);

#endif
