#include "tls/tls_conn.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "core/buf.h"
#include "core/err.h"

static const char ALPN_XMPP[] = "xmpp-server";

/* A buffer that has grown past this is released once drained, so an idle stream holds no
 * ciphertext buffer larger than a few stanzas. */
enum { TLS_BUF_KEEP = 16 * 1024, TLS_OUT_SLACK = 64 * 1024 };

struct tls_conn {
    tls_ctx_t *ctx;
    WOLFSSL *ssl;
    tls_role_t role;
    tls_conn_state_t state;
    int cred_loaded; /* server: certificate installed (after SNI was read when needed) */
    int cred_copied; /* this session holds its own copy of the certificate and key */
    int peer_seen;   /* the verify callback ran: the peer presented a certificate */
    buf_t in;        /* received ciphertext; bytes before in_off are already read by wolfSSL */
    size_t in_off;
    buf_t out; /* ciphertext wolfSSL wrote that the owner has not taken yet */
    buf_t fly; /* ciphertext handed to the owner (peek); never moves until fully consumed */
    size_t fly_off;
    const tls_cred_t *cred;
    const char *version;
    const char *cipher;
    char sni[256];
    char alpn[32];
    char err[160];
    int wolf_err; /* wolfSSL's code for the failure, 0 if none or not wolfSSL's */
    tls_peer_t peer;
};

/* ---- wolfSSL I/O callbacks: the only place ciphertext enters or leaves wolfSSL ----------- */

static void buf_release_if_big(buf_t *b)
{
    if (b->cap > TLS_BUF_KEEP) {
        size_t max = b->max;
        buf_free(b);
        buf_init(b, max);
    }
}

static int io_recv(WOLFSSL *ssl, char *dst, int sz, void *vconn)
{
    tls_conn_t *c = vconn;
    size_t avail = c->in.len - c->in_off;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = (size_t)sz < avail ? (size_t)sz : avail;
    memcpy(dst, c->in.data + c->in_off, n);
    c->in_off += n;
    if (c->in_off == c->in.len) {
        c->in.len = 0;
        c->in_off = 0;
        buf_release_if_big(&c->in);
    }
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *src, int sz, void *vconn)
{
    tls_conn_t *c = vconn;
    int r = buf_append(&c->out, src, (size_t)sz);
    if (r == FG_ELIMIT)
        return WOLFSSL_CBIO_ERR_WANT_WRITE; /* only past the slack; write_plain checks first */
    if (r < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    return sz;
}

/* ---- peer certificate -------------------------------------------------------------------- */

static tls_verify_t verify_from_error(int err)
{
    switch (err) {
    case ASN_AFTER_DATE_E:
        return TLS_VERIFY_EXPIRED;
    case ASN_BEFORE_DATE_E:
        return TLS_VERIFY_NOT_YET_VALID;
    case ASN_NO_SIGNER_E:
    case ASN_SELF_SIGNED_E:
        return TLS_VERIFY_UNTRUSTED;
    case CRL_CERT_REVOKED:
        return TLS_VERIFY_REVOKED;
    default:
        return TLS_VERIFY_OTHER;
    }
}

static const char *verify_name(tls_verify_t v)
{
    switch (v) {
    case TLS_VERIFY_OK:
        return "ok";
    case TLS_VERIFY_NO_CERT:
        return "no certificate";
    case TLS_VERIFY_EXPIRED:
        return "certificate expired";
    case TLS_VERIFY_NOT_YET_VALID:
        return "certificate not yet valid";
    case TLS_VERIFY_UNTRUSTED:
        return "certificate untrusted";
    case TLS_VERIFY_REVOKED:
        return "certificate revoked";
    case TLS_VERIFY_OTHER:
        return "certificate invalid";
    case TLS_VERIFY_NONE:
        break;
    }
    return "not verified";
}

/* Called by wolfSSL for every certificate of the peer's chain, valid or not (wolfSSL is built with
 * WOLFSSL_ALWAYS_VERIFY_CB), from the anchor side down to the peer's own certificate at depth 0.
 * It records the first failure and the leaf's identities, and always lets the handshake go on. */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    tls_conn_t *c = store->userCtx;
    int err = store->error;
    if (!c)
        return 1;
    /* wolfSSL also calls this for an empty Certificate message: that is "no certificate". */
    if (store->totalCerts <= 0)
        return 1;
    c->peer_seen = 1;
    /* RFC 6120 servers authenticate each other with one certificate both ways; the clientAuth EKU
     * is not required of the initiator's (wolfSSL reports this only when all else is fine). */
    if (!preverify && err == EXTKEYUSE_AUTH_E && c->role == TLS_ROLE_SERVER)
        preverify = 1;
    /* Revocation is checked where the operator supplied a CRL for the issuer, and soft elsewhere
     * (wolfSSL reports a missing CRL only for a certificate that is otherwise valid). */
    if (!preverify && err == CRL_MISSING)
        preverify = 1;
    if (!preverify && c->peer.verify == TLS_VERIFY_NONE) {
        c->peer.verify = verify_from_error(err);
        c->peer.depth = store->error_depth;
        snprintf(c->peer.reason, sizeof c->peer.reason, "%s at depth %d: %s",
                 verify_name(c->peer.verify), store->error_depth,
                 wolfSSL_ERR_reason_error_string((unsigned long)err));
    }
    if (store->error_depth == 0 && c->peer.ids._block == NULL) {
        const unsigned char *der = NULL;
        int len = 0;
        if (store->certs && store->totalCerts > 0) {
            der = store->certs[0].buffer;
            len = (int)store->certs[0].length;
        } else if (store->current_cert) {
            der = wolfSSL_X509_get_der(store->current_cert, &len);
        }
        /* A certificate wolfSSL parsed but this walk cannot is reported without identities. */
        if (der && len > 0 && tls_identity_parse(der, (size_t)len, &c->peer.ids) < 0 &&
            c->peer.verify == TLS_VERIFY_NONE) {
            c->peer.verify = TLS_VERIFY_OTHER;
            snprintf(c->peer.reason, sizeof c->peer.reason, "certificate names unreadable");
        }
    }
    return 1;
}

static void peer_finish(tls_conn_t *c)
{
    if (!c->peer_seen) {
        c->peer.verify = TLS_VERIFY_NO_CERT;
        snprintf(c->peer.reason, sizeof c->peer.reason, "no certificate");
    } else if (c->peer.verify == TLS_VERIFY_NONE) {
        c->peer.verify = TLS_VERIFY_OK;
        snprintf(c->peer.reason, sizeof c->peer.reason, "ok");
    }
}

/* ---- session life -------------------------------------------------------------------------- */

static int fail(tls_conn_t *c, int wolf_err, const char *what)
{
    c->state = TLS_CONN_FAILED;
    if (!c->wolf_err)
        c->wolf_err = wolf_err;
    if (!c->err[0]) {
        if (wolf_err)
            snprintf(c->err, sizeof c->err, "%s: %s (%d)", what,
                     wolfSSL_ERR_reason_error_string((unsigned long)wolf_err), wolf_err);
        else
            snprintf(c->err, sizeof c->err, "%s", what);
    }
    return FG_ETLS;
}

static int set_version(WOLFSSL *ssl, tls_version_t v)
{
    int r = WOLFSSL_SUCCESS;
    /* Bounds rather than wolfSSL_SetVersion(), which also resets the session's cipher suites. */
    if (v == TLS_VERSION_1_2)
        r = wolfSSL_set_max_proto_version(ssl, TLS1_2_VERSION);
    else if (v == TLS_VERSION_1_3)
        r = wolfSSL_set_min_proto_version(ssl, TLS1_3_VERSION);
    return r == WOLFSSL_SUCCESS ? 0 : FG_ETLS;
}

int tls_conn_new(tls_ctx_t *ctx, tls_role_t role, const tls_conn_opts_t *opts, tls_conn_t **out)
{
    static const tls_conn_opts_t no_opts = {0};
    int ret = 0;
    char alpn[sizeof ALPN_XMPP];
    tls_conn_t *c = calloc(1, sizeof *c);
    *out = NULL;
    if (!c)
        return -ENOMEM;
    if (!opts)
        opts = &no_opts;
    c->ctx = tls_ctx_ref(ctx);
    c->role = role;
    buf_init(&c->in, TLS_CIPHER_IN_MAX);
    buf_init(&c->out, TLS_CIPHER_OUT_MAX + TLS_OUT_SLACK);
    buf_init(&c->fly, TLS_CIPHER_OUT_MAX + TLS_OUT_SLACK);
    c->ssl = wolfSSL_new(tls_ctx_wolf(ctx, role == TLS_ROLE_SERVER));
    if (!c->ssl) {
        /* Also what wolfSSL does for a server context without any certificate. */
        ret = FG_ETLS;
        goto out;
    }
    wolfSSL_SSLSetIORecv(c->ssl, io_recv);
    wolfSSL_SSLSetIOSend(c->ssl, io_send);
    wolfSSL_SetIOReadCtx(c->ssl, c);
    wolfSSL_SetIOWriteCtx(c->ssl, c);
    wolfSSL_set_verify(c->ssl, WOLFSSL_VERIFY_PEER, verify_cb);
    wolfSSL_SetCertCbCtx(c->ssl, c);
    if ((ret = set_version(c->ssl, opts->version)) < 0)
        goto out;
    if (opts->ciphers && wolfSSL_set_cipher_list(c->ssl, opts->ciphers) != WOLFSSL_SUCCESS) {
        ret = FG_ETLS;
        goto out;
    }
    memcpy(alpn, ALPN_XMPP, sizeof alpn);
    if (opts->alpn_xmpp && wolfSSL_UseALPN(c->ssl, alpn, sizeof alpn - 1,
                                           WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS) {
        ret = FG_ETLS;
        goto out;
    }
    if (role == TLS_ROLE_SERVER) {
        if (opts->local_domain) {
            c->cred = tls_ctx_find_cred(ctx, opts->local_domain);
            if (!c->cred) {
                ret = FG_ENOTFOUND;
                goto out;
            }
        }
        /* Without a `to`, the certificate waits for the ClientHello's SNI (see load_server_cred).
         */
    } else {
        if (opts->sni && wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, opts->sni,
                                        (unsigned short)strlen(opts->sni)) != WOLFSSL_SUCCESS) {
            ret = FG_ETLS;
            goto out;
        }
        if (opts->local_domain) {
            c->cred = tls_ctx_find_cred(ctx, opts->local_domain);
            if (c->cred && (ret = tls_cred_use(c->cred, c->ssl)) < 0)
                goto out;
            c->cred_copied = c->cred != NULL;
        }
        c->cred_loaded = 1;
    }
out:
    if (ret < 0)
        tls_conn_free(c);
    else
        *out = c;
    return ret;
}

void tls_conn_free(tls_conn_t *c)
{
    if (!c)
        return;
    if (c->ssl)
        wolfSSL_free(c->ssl);
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->fly);
    tls_identities_free(&c->peer.ids);
    tls_ctx_unref(c->ctx);
    free(c);
}

/* Server role: install the certificate before the first handshake step. Direct TLS names the
 * domain only in the ClientHello's SNI, so wait until the whole first record is here and read it.
 * 1 ready, 0 need more bytes, FG_ETLS. */
static int load_server_cred(tls_conn_t *c)
{
    if (c->cred_loaded)
        return 1;
    size_t avail = c->in.len - c->in_off;
    if (avail < 5)
        return 0;
    const uint8_t *p = c->in.data + c->in_off;
    size_t rec = 5 + ((size_t)p[3] << 8 | p[4]);
    if (p[0] == 0x16 && avail < rec && avail < TLS_CIPHER_IN_MAX)
        return 0;
    if (p[0] == 0x16) {
        word32 n = sizeof c->sni - 1;
        byte name[sizeof c->sni];
        if (wolfSSL_SNI_GetFromBuffer(p, (word32)(avail < rec ? avail : rec), WOLFSSL_SNI_HOST_NAME,
                                      name, &n) == WOLFSSL_SUCCESS &&
            n > 0 && n < sizeof c->sni) {
            memcpy(c->sni, name, n);
            c->sni[n] = '\0';
        }
    }
    if (!c->cred && c->sni[0])
        c->cred = tls_ctx_find_cred(c->ctx, c->sni);
    if (!c->cred)
        c->cred = tls_ctx_find_cred(c->ctx, NULL);
    if (!c->cred)
        return fail(c, 0, "no certificate configured");
    if (!tls_cred_is_default(c->ctx, c->cred)) {
        if (tls_cred_use(c->cred, c->ssl) < 0)
            return fail(c, 0, "cannot install the certificate");
        c->cred_copied = 1;
    }
    c->cred_loaded = 1;
    return 1;
}

static void established(tls_conn_t *c)
{
    char *name = NULL;
    unsigned short n = 0;
    c->state = TLS_CONN_OPEN;
    c->version = wolfSSL_get_version(c->ssl);
    c->cipher = wolfSSL_get_cipher_name(c->ssl);
    if (wolfSSL_ALPN_GetProtocol(c->ssl, &name, &n) == WOLFSSL_SUCCESS && name &&
        n < sizeof c->alpn) {
        memcpy(c->alpn, name, n);
        c->alpn[n] = '\0';
    }
    peer_finish(c);
    /* The certificate and key copies are needed only to handshake (no renegotiation, no
     * post-handshake authentication): give their memory back for the life of the stream. */
    if (c->cred_copied)
        wolfSSL_UnloadCertsKeys(c->ssl);
}

int tls_conn_handshake(tls_conn_t *c)
{
    int r;
    switch (c->state) {
    case TLS_CONN_OPEN:
    case TLS_CONN_CLOSED:
        return 1;
    case TLS_CONN_FAILED:
        return FG_ETLS;
    case TLS_CONN_HANDSHAKE:
        break;
    }
    if ((r = load_server_cred(c)) <= 0)
        return r;
    r = wolfSSL_negotiate(c->ssl);
    if (r == WOLFSSL_SUCCESS) {
        established(c);
        return 1;
    }
    int err = wolfSSL_get_error(c->ssl, r);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    return fail(c, err, "handshake failed");
}

ssize_t tls_conn_feed_cipher(tls_conn_t *c, const void *data, size_t len)
{
    if (c->state == TLS_CONN_FAILED)
        return FG_ETLS;
    if (c->in_off > 0) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    size_t room = TLS_CIPHER_IN_MAX - c->in.len;
    size_t n = len < room ? len : room;
    if (n == 0)
        return 0;
    int r = buf_append(&c->in, data, n);
    if (r < 0)
        return r;
    return (ssize_t)n;
}

ssize_t tls_conn_read_plain(tls_conn_t *c, void *out, size_t cap)
{
    if (c->state == TLS_CONN_HANDSHAKE) {
        int r = tls_conn_handshake(c);
        if (r <= 0)
            return r;
    }
    if (c->state == TLS_CONN_CLOSED)
        return 0;
    if (c->state == TLS_CONN_FAILED)
        return FG_ETLS;
    if (cap == 0)
        return 0;
    int n = wolfSSL_read(c->ssl, out, cap > INT_MAX ? INT_MAX : (int)cap);
    if (n > 0)
        return n;
    int err = wolfSSL_get_error(c->ssl, n);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    if (err == WOLFSSL_ERROR_ZERO_RETURN) {
        c->state = TLS_CONN_CLOSED;
        return 0;
    }
    return fail(c, err, "record layer");
}

ssize_t tls_conn_write_plain(tls_conn_t *c, const void *data, size_t len)
{
    if (c->state == TLS_CONN_FAILED)
        return FG_ETLS;
    if (c->state != TLS_CONN_OPEN)
        return FG_EPROTO;
    if (len == 0)
        return 0;
    /* Per 16 KiB record at most 5 bytes of header, 1 of content type and 16 of tag. */
    size_t overhead = (len / 16384 + 1) * 32;
    size_t pending = tls_conn_cipher_pending(c);
    if (len > TLS_CIPHER_OUT_MAX || pending + len + overhead > TLS_CIPHER_OUT_MAX)
        return FG_ELIMIT;
    int n = wolfSSL_write(c->ssl, data, (int)len);
    if (n == (int)len)
        return n;
    return fail(c, wolfSSL_get_error(c->ssl, n), "write");
}

int tls_conn_close(tls_conn_t *c)
{
    if (c->state != TLS_CONN_OPEN && c->state != TLS_CONN_CLOSED)
        return 0;
    int r = wolfSSL_shutdown(c->ssl);
    if (r == WOLFSSL_SUCCESS || r == WOLFSSL_SHUTDOWN_NOT_DONE)
        return 0;
    int err = wolfSSL_get_error(c->ssl, r);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
        return 0;
    return fail(c, err, "close");
}

const uint8_t *tls_conn_peek_cipher(tls_conn_t *c, size_t *len)
{
    /* The view handed out lives in its own buffer, which wolfSSL never writes: a send in flight
     * (io_uring keeps the pointer until the completion) stays intact whatever happens meanwhile. */
    if (c->fly_off == c->fly.len && c->out.len > 0) {
        buf_t t = c->fly;
        c->fly = c->out;
        c->out = t;
        c->out.len = 0;
        c->fly_off = 0;
    }
    *len = c->fly.len - c->fly_off;
    return *len ? c->fly.data + c->fly_off : NULL;
}

void tls_conn_consume_cipher(tls_conn_t *c, size_t n)
{
    size_t pending = c->fly.len - c->fly_off;
    c->fly_off += n < pending ? n : pending;
    if (c->fly_off == c->fly.len) {
        c->fly.len = 0;
        c->fly_off = 0;
        buf_release_if_big(&c->fly);
    }
}

size_t tls_conn_take_cipher(tls_conn_t *c, void *dst, size_t cap)
{
    size_t total = 0, n;
    const uint8_t *p;
    while (total < cap && (p = tls_conn_peek_cipher(c, &n)) != NULL) {
        if (n > cap - total)
            n = cap - total;
        memcpy((uint8_t *)dst + total, p, n);
        tls_conn_consume_cipher(c, n);
        total += n;
    }
    return total;
}

size_t tls_conn_cipher_pending(const tls_conn_t *c)
{
    return (c->fly.len - c->fly_off) + c->out.len;
}

tls_conn_state_t tls_conn_state(const tls_conn_t *c)
{
    return c->state;
}

const tls_peer_t *tls_conn_peer(const tls_conn_t *c)
{
    return &c->peer;
}

const char *tls_conn_version(const tls_conn_t *c)
{
    return c->state == TLS_CONN_OPEN || c->state == TLS_CONN_CLOSED ? c->version : NULL;
}

const char *tls_conn_cipher(const tls_conn_t *c)
{
    return c->state == TLS_CONN_OPEN || c->state == TLS_CONN_CLOSED ? c->cipher : NULL;
}

const char *tls_conn_alpn(const tls_conn_t *c)
{
    return c->alpn[0] ? c->alpn : NULL;
}

const char *tls_conn_local_domain(const tls_conn_t *c)
{
    return c->cred && c->cred_loaded ? tls_cred_domain(c->cred) : NULL;
}

const char *tls_conn_sni(const tls_conn_t *c)
{
    return c->sni[0] ? c->sni : NULL;
}

const char *tls_conn_error(const tls_conn_t *c)
{
    return c->err;
}

size_t tls_conn_buffer_bytes(const tls_conn_t *c)
{
    return sizeof *c + c->in.cap + c->out.cap + c->fly.cap +
           c->peer.ids.count * sizeof(tls_id_t); /* names are small next to the buffers */
}

int tls_peer_authenticates(const tls_peer_t *peer, const char *domain)
{
    return peer && peer->verify == TLS_VERIFY_OK && tls_identity_matches(&peer->ids, domain);
}

const char *tls_verify_label(tls_verify_t v)
{
    switch (v) {
    case TLS_VERIFY_NONE:
        return "none";
    case TLS_VERIFY_OK:
        return "ok";
    case TLS_VERIFY_NO_CERT:
        return "no_cert";
    case TLS_VERIFY_EXPIRED:
        return "expired";
    case TLS_VERIFY_NOT_YET_VALID:
        return "not_yet_valid";
    case TLS_VERIFY_UNTRUSTED:
        return "untrusted";
    case TLS_VERIFY_REVOKED:
        return "revoked";
    case TLS_VERIFY_OTHER:
        break;
    }
    return "other";
}

const char *tls_peer_describe(const tls_peer_t *peer, const char *domain, char *buf, size_t len)
{
    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (peer->verify != TLS_VERIFY_OK) {
        snprintf(buf, len, "%s", peer->reason[0] ? peer->reason : verify_name(peer->verify));
        return buf;
    }
    if (domain && tls_identity_matches(&peer->ids, domain)) {
        snprintf(buf, len, "ok");
        return buf;
    }
    size_t used =
        (size_t)snprintf(buf, len, "name mismatch: %s not in", domain ? domain : "(none)");
    for (size_t i = 0; i < peer->ids.count && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, " %s:%s",
                                 tls_id_type_name(peer->ids.ids[i].type), peer->ids.ids[i].name);
    if (peer->ids.count == 0 && used < len)
        snprintf(buf + used, len - used, " (no names)");
    return buf;
}

const char *tls_conn_error_label(const tls_conn_t *c)
{
    if (c->state != TLS_CONN_FAILED)
        return "none";
    switch (c->wolf_err) {
    case FATAL_ERROR:
        return "peer_alert";
    case MATCH_SUITE_ERROR:
        return "no_shared_cipher";
    case VERSION_ERROR:
        return "version";
    case VERIFY_MAC_ERROR:
    case DECRYPT_ERROR:
    case AES_GCM_AUTH_E:
    case MAC_CMP_FAILED_E:
        return "bad_record_mac";
    case 0:
        return "local";
    default:
        return "protocol";
    }
}
