/* The agent's TLS client, calling OpenSSL through a table filled by dlsym. */
#include "tls_client.h"

#include <dlfcn.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sonames of the ABI the headers describe. */
#ifdef OPENSSL_VERSION_MAJOR
#define TLS_LIBCRYPTO "libcrypto.so.3"
#define TLS_LIBSSL    "libssl.so.3"
#else
#define TLS_LIBCRYPTO "libcrypto.so.1.1"
#define TLS_LIBSSL    "libssl.so.1.1"
#endif
#define TLS_LIBEVENT_SSL "libevent_openssl-2.1.so.7"

enum tls_lib { TLS_CRYPTO, TLS_SSL, TLS_EVENT_SSL, TLS_NLIBS };

static const char *const tls_lib_names[TLS_NLIBS] = {TLS_LIBCRYPTO, TLS_LIBSSL, TLS_LIBEVENT_SSL};

/* Every function the agent calls, with the library it comes from. The
 * headers' macros (SSL_CTX_set_min_proto_version, SSL_set_tlsext_host_name)
 * are spelled out as the *_ctrl calls they stand for. */
#define TLS_FUNCS(X)                                                                               \
	X(TLS_CRYPTO, ERR_get_error)                                                               \
	X(TLS_CRYPTO, ERR_error_string_n)                                                          \
	X(TLS_CRYPTO, ERR_clear_error)                                                             \
	X(TLS_SSL, TLS_client_method)                                                              \
	X(TLS_SSL, SSL_CTX_new)                                                                    \
	X(TLS_SSL, SSL_CTX_free)                                                                   \
	X(TLS_SSL, SSL_CTX_ctrl)                                                                   \
	X(TLS_SSL, SSL_CTX_set_options)                                                            \
	X(TLS_SSL, SSL_CTX_set_verify)                                                             \
	X(TLS_SSL, SSL_CTX_load_verify_locations)                                                  \
	X(TLS_SSL, SSL_CTX_use_certificate_chain_file)                                             \
	X(TLS_SSL, SSL_CTX_use_PrivateKey_file)                                                    \
	X(TLS_SSL, SSL_CTX_check_private_key)                                                      \
	X(TLS_SSL, SSL_new)                                                                        \
	X(TLS_SSL, SSL_free)                                                                       \
	X(TLS_SSL, SSL_ctrl)                                                                       \
	X(TLS_SSL, SSL_set1_host)                                                                  \
	X(TLS_EVENT_SSL, bufferevent_openssl_socket_new)                                           \
	X(TLS_EVENT_SSL, bufferevent_get_openssl_error)

/* The table, typed from the headers' own declarations. */
static struct tls_api {
#define TLS_FIELD(lib, fn) __typeof__(&fn) fn;
	TLS_FUNCS(TLS_FIELD)
#undef TLS_FIELD
} api;
static int api_loaded;

struct tls_client {
	SSL_CTX *ctx;
};

/* Open the libraries and resolve the table, once; 0, or -1 with errbuf
 * naming what is missing. */
static int tls_api_load(char *errbuf, size_t errlen)
{
	static void *libs[TLS_NLIBS];
	if (api_loaded)
		return 0;
	for (int i = 0; i < TLS_NLIBS; i++) {
		if (libs[i])
			continue;
		libs[i] = dlopen(tls_lib_names[i], RTLD_NOW | RTLD_LOCAL);
		if (!libs[i]) {
			snprintf(errbuf, errlen, "TLS needs %s: %s", tls_lib_names[i], dlerror());
			return -1;
		}
	}
	void *sym;
#define TLS_RESOLVE(lib, fn)                                                                       \
	sym = dlsym(libs[lib], #fn);                                                               \
	if (!sym) {                                                                                \
		snprintf(errbuf, errlen, "TLS needs %s from %s, which lacks it", #fn,              \
		         tls_lib_names[lib]);                                                      \
		return -1;                                                                         \
	}                                                                                          \
	memcpy(&api.fn, &sym, sizeof api.fn);
	TLS_FUNCS(TLS_RESOLVE)
#undef TLS_RESOLVE
	api_loaded = 1;
	return 0;
}

/* OpenSSL's last error (or "unknown TLS error"), cleared from its queue. */
static const char *tls_client_last_error(void)
{
	static char buf[256];
	unsigned long e = api.ERR_get_error();
	if (!e)
		return "unknown TLS error";
	api.ERR_error_string_n(e, buf, sizeof buf);
	api.ERR_clear_error();
	return buf;
}

/* Load a certificate chain and its key, checking they match. */
static int tls_client_load_pair(SSL_CTX *ctx, const char *cert, const char *key, char *errbuf,
                                size_t errlen)
{
	if (api.SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		snprintf(errbuf, errlen, "%s: cannot load the certificate: %s", cert,
		         tls_client_last_error());
		return -1;
	}
	if (api.SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		snprintf(errbuf, errlen, "%s: cannot load the key: %s", key,
		         tls_client_last_error());
		return -1;
	}
	if (api.SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(errbuf, errlen, "%s does not match %s", key, cert);
		return -1;
	}
	return 0;
}

/* Load the libraries, then the context. */
struct tls_client *tls_client_create(const char *ca, const char *cert, const char *key,
                                     char *errbuf, size_t errlen)
{
	if (tls_api_load(errbuf, errlen) < 0)
		return NULL;
	struct tls_client *t = calloc(1, sizeof *t);
	if (!t) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	t->ctx = api.SSL_CTX_new(api.TLS_client_method());
	if (!t->ctx) {
		snprintf(errbuf, errlen, "cannot create a TLS context: %s",
		         tls_client_last_error());
		goto fail;
	}
	api.SSL_CTX_ctrl(t->ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
	api.SSL_CTX_set_options(t->ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
	if (api.SSL_CTX_load_verify_locations(t->ctx, ca, NULL) != 1) {
		snprintf(errbuf, errlen, "%s: cannot load the CA: %s", ca, tls_client_last_error());
		goto fail;
	}
	api.SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	if (cert && cert[0] && tls_client_load_pair(t->ctx, cert, key, errbuf, errlen) < 0)
		goto fail;
	return t;
fail:
	tls_client_destroy(t);
	return NULL;
}

/* SSL_new, SNI and the name to check, then the bufferevent that owns it. */
struct bufferevent *tls_client_bufferevent(struct tls_client *t, struct event_base *base,
                                           const char *name)
{
	SSL *ssl = api.SSL_new(t->ctx);
	if (!ssl)
		return NULL;
	if (api.SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
	                 (void *)name) != 1 ||
	    api.SSL_set1_host(ssl, name) != 1) {
		api.SSL_free(ssl);
		return NULL;
	}
	struct bufferevent *bev = api.bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		api.SSL_free(ssl);
	return bev;
}

/* The error libevent_openssl kept for bev. */
int tls_client_error(struct tls_client *t, struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e = api.bufferevent_get_openssl_error(bev);
	if (!e)
		return 0;
	api.ERR_error_string_n(e, buf, len);
	return 1;
}

/* Free the context. */
void tls_client_destroy(struct tls_client *t)
{
	if (!t)
		return;
	if (t->ctx)
		api.SSL_CTX_free(t->ctx);
	free(t);
}
