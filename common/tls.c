/* TLS contexts from OpenSSL, for the server. */
#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

/* The last OpenSSL error (or "unknown"), cleared from its queue. */
const char *tls_error(void)
{
	static _Thread_local char buf[256];
	unsigned long e = ERR_get_error();
	if (!e)
		return "unknown TLS error";
	ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return buf;
}

/* Settings both sides share: TLS 1.2+, no compression, no renegotiation. */
static SSL_CTX *tls_ctx_new(const SSL_METHOD *method)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	return ctx;
}

/* Load a certificate chain and its key, checking they match. */
static int tls_load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *errbuf,
                         size_t errlen)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(errbuf, errlen, "%s: cannot load the certificate: %s", cert, tls_error());
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(errbuf, errlen, "%s: cannot load the key: %s", key, tls_error());
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(errbuf, errlen, "%s does not match %s", key, cert);
		return -1;
	}
	return 0;
}

/* Trust ca and verify the peer with it. */
static int tls_load_ca(SSL_CTX *ctx, const char *ca, int mode, char *errbuf, size_t errlen)
{
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		snprintf(errbuf, errlen, "%s: cannot load the CA: %s", ca, tls_error());
		return -1;
	}
	SSL_CTX_set_verify(ctx, mode, NULL);
	return 0;
}

/* The server's context. */
SSL_CTX *tls_server_ctx(const char *cert, const char *key, const char *ca, char *errbuf,
                        size_t errlen)
{
	SSL_CTX *ctx = tls_ctx_new(TLS_server_method());
	if (!ctx) {
		snprintf(errbuf, errlen, "cannot create a TLS context: %s", tls_error());
		return NULL;
	}
	if (tls_load_pair(ctx, cert, key, errbuf, errlen) < 0 ||
	    (ca && ca[0] &&
	     tls_load_ca(ctx, ca, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, errbuf,
	                 errlen) < 0)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
