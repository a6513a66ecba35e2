/* The agent's TLS: OpenSSL and libevent_openssl are loaded at run time,
 * only when agent.tls.ca is set, so an agent on plain TCP never maps them.
 * Single-threaded, like the rest of the agent. */
#ifndef PIMON_TLS_CLIENT_H
#define PIMON_TLS_CLIENT_H

#include <event2/bufferevent.h>
#include <stddef.h>

struct tls_client;

/* Load the TLS libraries and make a context that trusts ca and, with cert
 * and key set (non-empty), presents that certificate: TLS 1.2 or newer, no
 * compression, no renegotiation. NULL with errbuf saying why (naming the
 * library or symbol missing, or the file refused). */
struct tls_client *tls_client_create(const char *ca, const char *cert, const char *key,
                                     char *errbuf, size_t errlen);

/* A new connecting bufferevent (BEV_OPT_CLOSE_ON_FREE) on base whose
 * server must present a certificate for name, which also goes out as SNI.
 * NULL on error. */
struct bufferevent *tls_client_bufferevent(struct tls_client *t, struct event_base *base,
                                           const char *name);

/* The TLS error bev failed with, as text in buf: 1, or 0 if it has none. */
int tls_client_error(struct tls_client *t, struct bufferevent *bev, char *buf, size_t len);

/* Free the context; the libraries stay loaded until exit (OpenSSL cleans up
 * from an exit handler of its own). */
void tls_client_destroy(struct tls_client *t);

#endif
