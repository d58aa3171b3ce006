/*
 * One TLS session driven as a byte pump: no socket inside. The owner (io/) feeds ciphertext it
 * received, reads plaintext out, writes plaintext in and takes ciphertext to send. wolfSSL reads
 * and writes only the two per-connection buffers through its I/O callbacks.
 *
 * Typical loop after a receive completion:
 *     tls_conn_feed_cipher(c, data, n);            (repeat while it accepts less than n)
 *     while ((r = tls_conn_read_plain(c, buf, cap)) > 0) hand r bytes to the XML stream;
 *     if (r < 0) close the TCP connection (RFC 6120 §5.4.3.2: no </stream:stream>);
 *     send what tls_conn_peek_cipher() shows, tls_conn_consume_cipher() once it is sent (the
 *     view stays put while the send is in flight), then peek again.
 * tls_conn_read_plain() advances the handshake by itself; tls_conn_handshake() does only that.
 *
 * Roles: a server session picks its certificate by `local_domain` (the stream's `to` for STARTTLS)
 * or, when that is NULL, by the SNI of the ClientHello (direct TLS), else the context's default. A
 * client session sends `sni` and ALPN when asked and offers `local_domain`'s certificate as client
 * certificate. Both roles request the peer's certificate and never fail the handshake because of
 * it: tls_conn_peer() reports the validation result and the identities, the stream decides.
 *
 * Ownership: tls_conn_new() takes a reference on the context (released by tls_conn_free()); option
 * strings are copied. A session is used by one thread at a time (its worker). Returned strings and
 * the peer report are borrowed until tls_conn_free().
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tls/tls_ctx.h"
#include "tls/tls_identity.h"

typedef struct tls_conn tls_conn_t;

typedef enum { TLS_ROLE_SERVER = 0, TLS_ROLE_CLIENT = 1 } tls_role_t;

typedef enum {
    TLS_CONN_HANDSHAKE = 0, /* handshake not finished */
    TLS_CONN_OPEN,          /* application data flows */
    TLS_CONN_CLOSED,        /* the peer sent close_notify */
    TLS_CONN_FAILED,        /* fatal error; tls_conn_error() says why */
} tls_conn_state_t;

typedef enum {
    TLS_VERSION_ANY = 0, /* TLS 1.2 or 1.3, highest the peer supports */
    TLS_VERSION_1_2 = 12,
    TLS_VERSION_1_3 = 13,
} tls_version_t;

typedef struct {
    const char *local_domain; /* see above; NULL allowed */
    const char *sni;          /* client: server name to send (direct TLS), NULL for none */
    int alpn_xmpp;            /* client: offer ALPN "xmpp-server"; server: accept it (XEP-0368) */
    tls_version_t version;    /* pin one version (tests, interop); default any */
    const char *ciphers;      /* wolfSSL cipher list replacing the RFC 7525 default (benchmarks) */
} tls_conn_opts_t;

typedef enum {
    TLS_VERIFY_NONE = 0,      /* handshake not finished yet */
    TLS_VERIFY_OK,            /* chains to a configured trust anchor, in its validity period */
    TLS_VERIFY_NO_CERT,       /* the peer sent no certificate */
    TLS_VERIFY_EXPIRED,       /* a certificate of the chain is past its notAfter */
    TLS_VERIFY_NOT_YET_VALID, /* a certificate of the chain is before its notBefore */
    TLS_VERIFY_UNTRUSTED,     /* no path to a trust anchor (self-signed, unknown issuer) */
    TLS_VERIFY_REVOKED,       /* listed in a configured CRL */
    TLS_VERIFY_OTHER,         /* bad signature, bad extension, name constraints, ... */
} tls_verify_t;

typedef struct {
    tls_verify_t verify;
    int depth;            /* chain depth of the first failure (0 = the peer's own certificate) */
    char reason[120];     /* for logs: "ok", or what failed and where */
    tls_identities_t ids; /* of the peer's own certificate (empty without one) */
} tls_peer_t;

/* SASL EXTERNAL's test: the chain is valid (TLS_VERIFY_OK) and an identity matches `domain`
 * (RFC 6125, tls_identity_matches). 1 or 0. */
int tls_peer_authenticates(const tls_peer_t *peer, const char *domain);
/* One log line on the peer's certificate for `domain`: its reason when the chain failed,
 * "name mismatch: <domain> not in dns:a.example srv:b.example ..." when no identity matches,
 * else "ok". Truncated to len; returns buf. */
const char *tls_peer_describe(const tls_peer_t *peer, const char *domain, char *buf, size_t len);
/* Short stable label for metrics and logs: "none", "ok", "no_cert", "expired", "not_yet_valid",
 * "untrusted", "revoked", "other". */
const char *tls_verify_label(tls_verify_t v);

/* Bounds of the two ciphertext buffers. Plaintext is never buffered here. */
enum { TLS_CIPHER_IN_MAX = 64 * 1024, TLS_CIPHER_OUT_MAX = 256 * 1024 };

/* 0, FG_ENOTFOUND when a server's local_domain has no certificate in ctx, FG_ETLS, -ENOMEM. */
int tls_conn_new(tls_ctx_t *ctx, tls_role_t role, const tls_conn_opts_t *opts, tls_conn_t **out);
void tls_conn_free(tls_conn_t *conn);

/* Append received ciphertext. Returns the bytes accepted (> 0; fewer than len when the input
 * buffer is full: read plaintext, then feed the rest), 0 when full, FG_ETLS after a failure. */
ssize_t tls_conn_feed_cipher(tls_conn_t *conn, const void *data, size_t len);

/* Advance the handshake with what was fed. 1 established, 0 waiting for the peer, FG_ETLS when it
 * failed (the reason in tls_conn_error()). Idempotent once established. */
int tls_conn_handshake(tls_conn_t *conn);

/* Decrypted bytes into out: > 0 bytes, 0 when more ciphertext is needed or the peer closed
 * (tls_conn_state() tells which), FG_ETLS on a fatal error (bad record, alert, failed handshake).
 */
ssize_t tls_conn_read_plain(tls_conn_t *conn, void *out, size_t cap);

/* Encrypt len bytes (all or nothing). len, FG_ELIMIT when the ciphertext waiting to be sent would
 * pass TLS_CIPHER_OUT_MAX (send, then retry), FG_EPROTO before the handshake finished or after
 * close, FG_ETLS on failure. */
ssize_t tls_conn_write_plain(tls_conn_t *conn, const void *data, size_t len);

/* Queue close_notify (sent with the next ciphertext). 0 or FG_ETLS. */
int tls_conn_close(tls_conn_t *conn);

/* Ciphertext to send. tls_conn_peek_cipher() returns a view that stays valid and unchanged until
 * tls_conn_consume_cipher() has consumed all of it (or tls_conn_free()), whatever else is called
 * meanwhile: it can be the buffer of a send in flight. Consume what was sent; partial sends are
 * fine. Once the view is consumed, peek again, since more may be waiting. tls_conn_take_cipher()
 * copies up to cap bytes out and consumes them; returns the count. */
const uint8_t *tls_conn_peek_cipher(tls_conn_t *conn, size_t *len);
void tls_conn_consume_cipher(tls_conn_t *conn, size_t n);
size_t tls_conn_take_cipher(tls_conn_t *conn, void *dst, size_t cap);
size_t tls_conn_cipher_pending(const tls_conn_t *conn);

tls_conn_state_t tls_conn_state(const tls_conn_t *conn);
/* The peer's certificate report; verify is TLS_VERIFY_NONE until the handshake is done. */
const tls_peer_t *tls_conn_peer(const tls_conn_t *conn);
/* "TLSv1.3", "TLSv1.2" once established, else NULL. */
const char *tls_conn_version(const tls_conn_t *conn);
/* Cipher suite name once established, else NULL. */
const char *tls_conn_cipher(const tls_conn_t *conn);
/* Negotiated ALPN protocol ("xmpp-server") or NULL. */
const char *tls_conn_alpn(const tls_conn_t *conn);
/* The hosted domain whose certificate this side presented, or NULL (client without one). */
const char *tls_conn_local_domain(const tls_conn_t *conn);
/* SNI the client sent (server role), or NULL. */
const char *tls_conn_sni(const tls_conn_t *conn);
/* Why the session failed ("" while it has not). */
const char *tls_conn_error(const tls_conn_t *conn);
/* Why it failed, as a short stable label for metrics: "none" (not failed), "peer_alert",
 * "no_shared_cipher", "version", "bad_record_mac", "protocol" (malformed or unexpected
 * messages), "local" (no certificate, out of memory). */
const char *tls_conn_error_label(const tls_conn_t *conn);
/* Heap held by this session's own buffers (wolfSSL's share: tls_heap_in_use()). */
size_t tls_conn_buffer_bytes(const tls_conn_t *conn);
