/* The server's TLS contexts for the agents' sessions and the HTTP API,
 * from OpenSSL: TLS 1.2 or newer only, client certificates checked against
 * a given CA. The agent has its own client (agent/tls_client.c). */
#ifndef PIMON_TLS_H
#define PIMON_TLS_H

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;

/* A server context with cert and key (PEM files). With ca set, clients
 * must present a certificate signed by it. NULL with errbuf set on error. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, const char *ca, char *errbuf,
                        size_t errlen);

/* OpenSSL's last error as text, for logs; thread-local buffer. */
const char *tls_error(void);

#endif
