#include "tls/tls_ctx.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/asn_public.h>

#include "core/err.h"
#include "core/log.h"

/* RFC 7525 §4.2: AEAD suites with forward secrecy only. TLS 1.3 suites first; ECDSA before RSA,
 * AES-128-GCM first (AES-NI), ChaCha20-Poly1305 for peers without it. */
static const char CIPHER_LIST[] = "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
                                  "TLS13-CHACHA20-POLY1305-SHA256:"
                                  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* Largest certificate or key file accepted; a chain is a few KiB. */
enum { TLS_FILE_MAX = 1 << 20, TLS_CRED_MAX = 1 << 20 };

struct tls_cred {
    char *domain;
    uint8_t *chain_pem; /* leaf then intermediates */
    size_t chain_len;
    uint8_t *key_der;
    size_t key_len;
};

typedef struct {
    char *path;
    struct stat st; /* as seen at load; st_ino 0 = did not exist */
} file_stamp_t;

struct tls_ctx {
    atomic_int refs;
    WOLFSSL_CTX *server;
    WOLFSSL_CTX *client;
    tls_cred_t *creds; /* sorted by domain (case-insensitive) for bsearch */
    size_t ncreds;
    const tls_cred_t *def;
    file_stamp_t *files;
    size_t nfiles;
};

/* ---- heap accounting ------------------------------------------------------------------------ */

static atomic_size_t heap_in_use;

static void *track_malloc(size_t n)
{
    void *p = malloc(n);
    if (p)
        atomic_fetch_add_explicit(&heap_in_use, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

static void track_free(void *p)
{
    if (p)
        atomic_fetch_sub_explicit(&heap_in_use, malloc_usable_size(p), memory_order_relaxed);
    free(p);
}

static void *track_realloc(void *p, size_t n)
{
    size_t old = p ? malloc_usable_size(p) : 0;
    void *q = realloc(p, n);
    if (q) {
        atomic_fetch_sub_explicit(&heap_in_use, old, memory_order_relaxed);
        atomic_fetch_add_explicit(&heap_in_use, malloc_usable_size(q), memory_order_relaxed);
    }
    return q;
}

int tls_global_init(unsigned flags)
{
    /* Before wolfSSL_Init so that every allocation wolfSSL makes goes through the same pair. */
    if ((flags & TLS_GLOBAL_TRACK_HEAP) &&
        wolfSSL_SetAllocators(track_malloc, track_free, track_realloc) != 0)
        return FG_ETLS;
    return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : FG_ETLS;
}

void tls_global_cleanup(void)
{
    wolfSSL_Cleanup();
}

size_t tls_heap_in_use(void)
{
    return atomic_load_explicit(&heap_in_use, memory_order_relaxed);
}

/* ---- loading -------------------------------------------------------------------------------- */

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    int ret = 0;
    uint8_t *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    data = malloc(TLS_FILE_MAX);
    if (!data) {
        ret = -ENOMEM;
        goto out;
    }
    size_t n = fread(data, 1, TLS_FILE_MAX, f);
    if (ferror(f)) {
        ret = -EIO;
        goto out;
    }
    if (n == TLS_FILE_MAX) {
        ret = FG_ELIMIT;
        goto out;
    }
    uint8_t *shrunk = realloc(data, n + 1);
    if (shrunk)
        data = shrunk;
    data[n] = '\0';
    *out = data;
    *len = n;
    data = NULL;
out:
    free(data);
    fclose(f);
    return ret;
}

static int stamp_add(tls_ctx_t *ctx, const char *path)
{
    file_stamp_t *f = &ctx->files[ctx->nfiles];
    f->path = strdup(path);
    if (!f->path)
        return -ENOMEM;
    if (stat(path, &f->st) != 0)
        memset(&f->st, 0, sizeof f->st);
    ctx->nfiles++;
    return 0;
}

static void cred_free(tls_cred_t *c)
{
    free(c->domain);
    free(c->chain_pem);
    if (c->key_der)
        memset(c->key_der, 0, c->key_len);
    free(c->key_der);
    memset(c, 0, sizeof *c);
}

/* Read one domain's chain and key into memory. */
static int cred_load(tls_ctx_t *ctx, const tls_cred_config_t *cc, tls_cred_t *c)
{
    int ret = 0;
    uint8_t *key_pem = NULL;
    size_t key_pem_len = 0;

    if (!cc->domain || !cc->domain[0] || !cc->cert_file || !cc->key_file) {
        ret = FG_EDOMAIN;
        goto out;
    }
    c->domain = strdup(cc->domain);
    if (!c->domain) {
        ret = -ENOMEM;
        goto out;
    }
    if ((ret = read_file(cc->cert_file, &c->chain_pem, &c->chain_len)) < 0) {
        log_error("tls: %s: cannot read certificate %s: %s", cc->domain, cc->cert_file,
                  fg_strerror(ret));
        goto out;
    }
    if ((ret = read_file(cc->key_file, &key_pem, &key_pem_len)) < 0) {
        log_error("tls: %s: cannot read key %s: %s", cc->domain, cc->key_file, fg_strerror(ret));
        goto out;
    }
    /* The key is kept as DER so each handshake skips the base64 decode. */
    c->key_der = malloc(key_pem_len);
    if (!c->key_der) {
        ret = -ENOMEM;
        goto out;
    }
    int n = wc_KeyPemToDer(key_pem, (int)key_pem_len, c->key_der, (int)key_pem_len, NULL);
    if (n <= 0) {
        log_error("tls: %s: %s is not a PEM private key (%d)", cc->domain, cc->key_file, n);
        ret = FG_ETLS;
        goto out;
    }
    c->key_len = (size_t)n;
    if ((ret = stamp_add(ctx, cc->cert_file)) < 0 || (ret = stamp_add(ctx, cc->key_file)) < 0)
        goto out;
out:
    if (key_pem) {
        memset(key_pem, 0, key_pem_len);
        free(key_pem);
    }
    return ret;
}

/* Prove on a scratch session that wolfSSL accepts the chain and key and that the key belongs to the
 * certificate: a bad file fails the reload, not a peer's handshake. */
static int cred_check(tls_ctx_t *ctx, const tls_cred_config_t *cc, const tls_cred_t *c)
{
    int ret = 0;
    WOLFSSL *ssl = wolfSSL_new(ctx->server);
    if (!ssl)
        return -ENOMEM;
    if (tls_cred_use(c, ssl) < 0 || wolfSSL_check_private_key(ssl) != WOLFSSL_SUCCESS) {
        log_error("tls: %s: certificate %s and key %s are unusable or do not match", cc->domain,
                  cc->cert_file, cc->key_file);
        ret = FG_ETLS;
    }
    wolfSSL_free(ssl);
    return ret;
}

static int cred_cmp(const void *a, const void *b)
{
    return strcasecmp(((const tls_cred_t *)a)->domain, ((const tls_cred_t *)b)->domain);
}

static int verify_accept_all(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    /* Placeholder; tls_conn installs its own per session. Never reached. */
    return preverify;
}

static WOLFSSL_CTX *wolf_ctx_new(const tls_ctx_config_t *cfg, int server)
{
    WOLFSSL_CTX *w =
        wolfSSL_CTX_new(server ? wolfSSLv23_server_method() : wolfSSLv23_client_method());
    int groups[] = {WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1};
    if (!w)
        return NULL;
    if (wolfSSL_CTX_SetMinVersion(w, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_cipher_list(w, CIPHER_LIST) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_groups(w, groups, 3) != WOLFSSL_SUCCESS)
        goto fail;
    /* Streams are long-lived and peers rarely resume: no session cache (a process-wide table
     * behind a lock) and no tickets (an encryption per handshake and a key to rotate). */
    wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF);
    if (server) {
        wolfSSL_CTX_no_ticket_TLSv13(w);
        wolfSSL_CTX_NoTicketTLSv12(w);
    }
    if (cfg->ca_file || cfg->ca_path) {
        if (wolfSSL_CTX_load_verify_locations(w, cfg->ca_file, cfg->ca_path) != WOLFSSL_SUCCESS) {
            log_error("tls: cannot load trust anchors from %s%s%s",
                      cfg->ca_file ? cfg->ca_file : "", cfg->ca_file && cfg->ca_path ? " and " : "",
                      cfg->ca_path ? cfg->ca_path : "");
            goto fail;
        }
    }
    /* Revocation from operator-supplied CRLs, for every certificate of the chain. A certificate
     * whose issuer has no CRL here is not checked (tls_conn treats CRL_MISSING as soft). */
    if (cfg->crl_path) {
        struct stat st;
        int r = wolfSSL_CTX_EnableCRL(w, WOLFSSL_CRL_CHECKALL);
        if (r == WOLFSSL_SUCCESS)
            r = stat(cfg->crl_path, &st) == 0 && S_ISDIR(st.st_mode)
                    ? wolfSSL_CTX_LoadCRL(w, cfg->crl_path, WOLFSSL_FILETYPE_PEM, 0)
                    : wolfSSL_CTX_LoadCRLFile(w, cfg->crl_path, WOLFSSL_FILETYPE_PEM);
        if (r != WOLFSSL_SUCCESS) {
            log_error("tls: cannot load CRLs from %s (%d)", cfg->crl_path, r);
            goto fail;
        }
    }
    /* Ask for the peer's certificate in both roles but never fail the handshake on it: the stream
     * decides (SASL EXTERNAL needs a valid one; dialback works without). */
    wolfSSL_CTX_set_verify(w, WOLFSSL_VERIFY_PEER, verify_accept_all);
    return w;
fail:
    wolfSSL_CTX_free(w);
    return NULL;
}

int tls_ctx_new(const tls_ctx_config_t *cfg, tls_ctx_t **out)
{
    int ret = 0;
    tls_ctx_t *ctx = calloc(1, sizeof *ctx);
    *out = NULL;
    if (!ctx)
        return -ENOMEM;
    atomic_init(&ctx->refs, 1);
    ctx->creds = calloc(cfg->ncreds ? cfg->ncreds : 1, sizeof *ctx->creds);
    ctx->files = calloc(cfg->ncreds * 2 + 3, sizeof *ctx->files);
    if (!ctx->creds || !ctx->files) {
        ret = -ENOMEM;
        goto out;
    }
    ctx->server = wolf_ctx_new(cfg, 1);
    ctx->client = wolf_ctx_new(cfg, 0);
    if (!ctx->server || !ctx->client) {
        ret = FG_ETLS;
        goto out;
    }
    if ((cfg->ca_file && (ret = stamp_add(ctx, cfg->ca_file)) < 0) ||
        (cfg->ca_path && (ret = stamp_add(ctx, cfg->ca_path)) < 0) ||
        (cfg->crl_path && (ret = stamp_add(ctx, cfg->crl_path)) < 0))
        goto out;
    for (size_t i = 0; i < cfg->ncreds; i++) {
        ret = cred_load(ctx, &cfg->creds[i], &ctx->creds[i]);
        ctx->ncreds = i + 1;
        if (ret < 0)
            goto out;
    }
    /* The default certificate lives in the server context itself: sessions that use it share it
     * instead of holding a copy (and wolfSSL will not create a server session without one). */
    if (ctx->ncreds) {
        const tls_cred_t *d = &ctx->creds[0];
        if (wolfSSL_CTX_use_certificate_chain_buffer(ctx->server, d->chain_pem,
                                                     (long)d->chain_len) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_use_PrivateKey_buffer(ctx->server, d->key_der, (long)d->key_len,
                                              WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS) {
            log_error("tls: %s: certificate %s and key %s are unusable", cfg->creds[0].domain,
                      cfg->creds[0].cert_file, cfg->creds[0].key_file);
            ret = FG_ETLS;
            goto out;
        }
    }
    for (size_t i = 0; i < ctx->ncreds; i++)
        if ((ret = cred_check(ctx, &cfg->creds[i], &ctx->creds[i])) < 0)
            goto out;
    char *def = ctx->ncreds ? ctx->creds[0].domain : NULL;
    qsort(ctx->creds, ctx->ncreds, sizeof *ctx->creds, cred_cmp);
    for (size_t i = 0; i < ctx->ncreds; i++) {
        if (i > 0 && cred_cmp(&ctx->creds[i - 1], &ctx->creds[i]) == 0) {
            log_error("tls: hosted domain %s has two certificates", ctx->creds[i].domain);
            ret = FG_ECONFLICT;
            goto out;
        }
        if (ctx->creds[i].domain == def)
            ctx->def = &ctx->creds[i];
    }
out:
    if (ret < 0)
        tls_ctx_unref(ctx);
    else
        *out = ctx;
    return ret;
}

tls_ctx_t *tls_ctx_ref(tls_ctx_t *ctx)
{
    atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    return ctx;
}

void tls_ctx_unref(tls_ctx_t *ctx)
{
    if (!ctx || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < ctx->ncreds; i++)
        cred_free(&ctx->creds[i]);
    free(ctx->creds);
    for (size_t i = 0; i < ctx->nfiles; i++)
        free(ctx->files[i].path);
    free(ctx->files);
    if (ctx->server)
        wolfSSL_CTX_free(ctx->server);
    if (ctx->client)
        wolfSSL_CTX_free(ctx->client);
    free(ctx);
}

int tls_ctx_files_changed(const tls_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->nfiles; i++) {
        const file_stamp_t *f = &ctx->files[i];
        struct stat st;
        if (stat(f->path, &st) != 0)
            memset(&st, 0, sizeof st);
        if (st.st_ino != f->st.st_ino || st.st_dev != f->st.st_dev || st.st_size != f->st.st_size ||
            st.st_mtim.tv_sec != f->st.st_mtim.tv_sec ||
            st.st_mtim.tv_nsec != f->st.st_mtim.tv_nsec)
            return 1;
    }
    return 0;
}

int tls_cred_is_default(const tls_ctx_t *ctx, const tls_cred_t *cred)
{
    return cred == ctx->def;
}

const tls_cred_t *tls_ctx_find_cred(const tls_ctx_t *ctx, const char *domain)
{
    if (!domain)
        return ctx->def;
    tls_cred_t key = {.domain = (char *)domain};
    return bsearch(&key, ctx->creds, ctx->ncreds, sizeof *ctx->creds, cred_cmp);
}

int tls_ctx_has_domain(const tls_ctx_t *ctx, const char *domain)
{
    return domain && tls_ctx_find_cred(ctx, domain) != NULL;
}

size_t tls_ctx_domain_count(const tls_ctx_t *ctx)
{
    return ctx->ncreds;
}

WOLFSSL_CTX *tls_ctx_wolf(tls_ctx_t *ctx, int server)
{
    return server ? ctx->server : ctx->client;
}

int tls_cred_use(const tls_cred_t *cred, WOLFSSL *ssl)
{
    if (wolfSSL_use_certificate_chain_buffer(ssl, cred->chain_pem, (long)cred->chain_len) !=
            WOLFSSL_SUCCESS ||
        wolfSSL_use_PrivateKey_buffer(ssl, cred->key_der, (long)cred->key_len,
                                      WOLFSSL_FILETYPE_ASN1) != WOLFSSL_SUCCESS)
        return FG_ETLS;
    return 0;
}

const char *tls_cred_domain(const tls_cred_t *cred)
{
    return cred->domain;
}
