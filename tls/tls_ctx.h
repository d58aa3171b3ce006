/*
 * TLS context: trust anchors and the certificate of every hosted domain, loaded once, immutable
 * afterwards, shared by every connection created from it (any thread).
 *
 * Reload without dropping streams: build a new context with tls_ctx_new() from the current
 * configuration and publish it in place of the old one; connections keep a reference to the context
 * they were created with, so streams established under the old certificate continue while new
 * handshakes use the new one. The last tls_ctx_unref() frees a context. Publishing is the caller's
 * job: each worker owns its own pointer to the current context and swaps it on its own thread (a
 * new context handed over through the worker's message queue), which needs no lock.
 * tls_ctx_files_changed() tells whether any file the context was built from changed since.
 *
 * Ownership: tls_ctx_new() returns a context holding one reference. tls_ctx_ref()/unref() are
 * atomic and may be called from any thread. The configuration is only read during tls_ctx_new().
 *
 * tls_global_init() must be called once before anything else in tls/.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct tls_ctx tls_ctx_t;

typedef struct {
    const char *domain;    /* hosted domain, normalised (lower case, A-labels, no trailing dot) */
    const char *cert_file; /* PEM: the domain's certificate first, then its intermediates */
    const char *key_file;  /* PEM private key of that certificate */
} tls_cred_config_t;

typedef struct {
    const char *ca_file;  /* PEM bundle of trust anchors (NULL: none from a file) */
    const char *ca_path;  /* directory of PEM trust anchors (NULL: none from a directory) */
    const char *crl_path; /* PEM CRL file, or directory of them (NULL: no revocation check) */
    const tls_cred_config_t *creds;
    size_t ncreds; /* creds[0] is the default when a peer names no hosted domain */
} tls_ctx_config_t;

enum {
    TLS_GLOBAL_TRACK_HEAP = 1, /* count wolfSSL's heap bytes (tls_heap_in_use) */
};

/* Initialise wolfSSL once per process. 0 or FG_ETLS. Not thread-safe: call from main(). */
int tls_global_init(unsigned flags);
void tls_global_cleanup(void);
/* Bytes of heap wolfSSL holds now, across all threads (0 unless TLS_GLOBAL_TRACK_HEAP). */
size_t tls_heap_in_use(void);

/* Load everything the configuration names. 0; FG_ETLS for a file wolfSSL refuses (bad PEM, key
 * not matching its certificate), -errno for a file that cannot be read, FG_ECONFLICT for a domain
 * listed twice, FG_EDOMAIN for an empty domain. The reason is logged with the file name. */
int tls_ctx_new(const tls_ctx_config_t *cfg, tls_ctx_t **out);
tls_ctx_t *tls_ctx_ref(tls_ctx_t *ctx);
void tls_ctx_unref(tls_ctx_t *ctx);

/* 1 if a certificate, key or trust anchor file changed (mtime, size or inode) or vanished since
 * tls_ctx_new(), else 0. A few stat(2) calls per file: call it from a timer, not per stanza. */
int tls_ctx_files_changed(const tls_ctx_t *ctx);
/* 1 if `domain` (case-insensitive) has its own certificate in ctx. */
int tls_ctx_has_domain(const tls_ctx_t *ctx, const char *domain);
size_t tls_ctx_domain_count(const tls_ctx_t *ctx);

/* For tls_conn only. */
struct WOLFSSL_CTX;
struct WOLFSSL;
typedef struct tls_cred tls_cred_t;
struct WOLFSSL_CTX *tls_ctx_wolf(tls_ctx_t *ctx, int server);
/* The credential for `domain`, or NULL. The default credential for a NULL domain. */
const tls_cred_t *tls_ctx_find_cred(const tls_ctx_t *ctx, const char *domain);
/* 1 if cred is the default one, already installed in the server context. */
int tls_cred_is_default(const tls_ctx_t *ctx, const tls_cred_t *cred);
/* Install the credential's certificate chain and key into one session. 0 or FG_ETLS. */
int tls_cred_use(const tls_cred_t *cred, struct WOLFSSL *ssl);
const char *tls_cred_domain(const tls_cred_t *cred);
