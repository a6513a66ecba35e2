/* TLS contexts for the agents' sessions and the HTTP API, from OpenSSL:
 * TLS 1.2 or newer only, certificates checked against a given CA. */
#ifndef PIMON_TLS_H
#define PIMON_TLS_H

#include <stddef.h>

typedef struct ssl_ctx_st SSL_CTX;

/* A server context with cert and key (PEM files). With ca set, clients
 * must present a certificate signed by it. NULL with errbuf set on error. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, const char *ca, char *errbuf,
                        size_t errlen);

/* A client context that trusts ca and, with cert and key set (non-empty),
 * presents that certificate. NULL with errbuf set on error. */
SSL_CTX *tls_client_ctx(const char *ca, const char *cert, const char *key, char *errbuf,
                        size_t errlen);

/* OpenSSL's last error as text, for logs; thread-local buffer. */
const char *tls_error(void);

#endif
