/*
 * The s2s protocol engine: one state machine per XMPP stream, for a stream a partner opens to us
 * (STREAM_IN, we are the receiving and, for db:verify, the authoritative server), a stream we open
 * to a partner (STREAM_OUT, we are the initiating server, or the receiving server asking an
 * authoritative one) and an XEP-0114 component connection (STREAM_COMPONENT, server side).
 *
 * No I/O, no clock, no policy/tls/io calls. The engine takes inputs:
 *   stream_feed()            plaintext bytes from the peer (with the current monotonic time)
 *   stream_tls_up()          TLS is up: peer certificate identities and their validation result
 *   stream_policy()          verdict for a domain the engine asked about (STREAM_ACT_NEED_POLICY)
 *   stream_verify_result()   the authoritative server's answer to STREAM_ACT_VERIFY
 *   stream_tick()            a timer fired (the current monotonic time)
 *   stream_send() / stream_out_*()  things the gateway wants sent on this stream
 * and hands out actions, in order, through stream_next_action(): bytes to send, start TLS, verify
 * a dialback key, ask for policy, a stanza for routing, bounce a queued stanza, a domain pair is
 * authenticated, arm a timer, close. Every rule is therefore testable from a byte transcript
 * (tests/replay/).
 *
 * Back-pressure: stream_feed() stops after each routed stanza and at every point where the engine
 * must wait (policy verdict, TLS) and returns how many bytes it consumed. The caller drains the
 * actions, keeps the unconsumed bytes and feeds them again (after the awaited event). After
 * STREAM_ACT_START_TLS the unconsumed bytes belong to the TLS layer, not to the engine.
 *
 * Ownership: stream_new() copies the configuration (domains, secret, limits); callbacks and their
 * ctx must outlive the stream. Everything an action points to (bytes, strings, the stanza) is
 * borrowed until the next call into the same stream (any stream_* function but the accessors).
 * Bytes passed to stream_send() are copied when they must be queued.
 *
 * Memory: one allocation for the stream, the parser's (core/xml), and two bounded buffers (output
 * and queued stanzas) that grow on use and are reused; nothing is allocated per stanza once warm.
 * Thread safety: a stream belongs to one worker thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"
#include "core/stanza.h"

typedef struct stream stream_t;

/* Longest domain the engine handles (RFC 1035 text form is at most 253 bytes). */
#define STREAM_DOMAIN_MAX 255
/* Dialback keys longer than this are refused (XEP-0185 keys are 64 hex digits). */
#define STREAM_KEY_MAX 128
/* Stream ids we generate: 128 random bits as 32 hex digits (RFC 6120 §4.7.3). */
#define STREAM_ID_LEN 32
/* Stream ids we accept from a peer. */
#define STREAM_PEER_ID_MAX 128
/* Actions held between two calls (the engine stops taking input before this fills). */
#define STREAM_ACTIONS_MAX 32
/* Secret for dialback keys or a component handshake. */
#define STREAM_SECRET_MAX 128
/* Certificate identities kept from stream_tls_up(). */
#define STREAM_CERT_NAMES_MAX 16

typedef enum {
    STREAM_IN = 0,        /* a partner connected to us */
    STREAM_OUT = 1,       /* we connected to a partner */
    STREAM_COMPONENT = 2, /* an XEP-0114 component connected to our component listener */
} stream_kind_t;

/* Where a stream is. Terminal: STREAM_S_CLOSED. */
typedef enum {
    STREAM_S_CONNECTING = 0, /* OUT: waiting for stream_out_connected() */
    STREAM_S_WAIT_HEADER,    /* waiting for the peer's stream header (also after each restart) */
    STREAM_S_WAIT_POLICY,    /* IN/COMPONENT: header read, waiting for stream_policy() */
    STREAM_S_WAIT_FEATURES,  /* OUT: header read, waiting for <stream:features/> */
    STREAM_S_TLS,            /* STARTTLS agreed, waiting for stream_tls_up() */
    STREAM_S_SASL,           /* SASL exchange in progress */
    STREAM_S_OPEN,           /* negotiation done or in the dialback phase: stanzas may flow */
    STREAM_S_CLOSING,        /* we sent </stream:stream>, waiting for the peer's */
    STREAM_S_CLOSED,         /* terminal: nothing more is accepted; free the stream */
} stream_state_t;

typedef enum {
    STREAM_AUTH_NONE = 0,
    STREAM_AUTH_SASL,          /* SASL EXTERNAL over TLS */
    STREAM_AUTH_DIALBACK_TLS,  /* dialback on a TLS-protected stream */
    STREAM_AUTH_DIALBACK_TCP,  /* dialback over plain TCP */
    STREAM_AUTH_DIALBACK_CERT, /* XEP-0344 shortcut: db:result answered from a valid certificate */
    STREAM_AUTH_COMPONENT,     /* XEP-0114 handshake */
} stream_auth_t;

typedef enum {
    STREAM_VERIFY_VALID = 0,
    STREAM_VERIFY_INVALID = 1,
    STREAM_VERIFY_ERROR = 2, /* with a dialback error condition (XEP-0220 §2.4) */
} stream_verify_t;

typedef enum {
    STREAM_ACT_NONE = 0,
    STREAM_ACT_SEND,          /* data/len: write to the peer (through TLS once it is up) */
    STREAM_ACT_START_TLS,     /* tls_server: handshake as server (IN) or client (OUT, domain=SNI) */
    STREAM_ACT_NEED_POLICY,   /* domain: call stream_policy() for it (IN: partner; COMPONENT:
                                 component domain, answered with stream_component_secret()) */
    STREAM_ACT_VERIFY,        /* from (our receiving domain), to (the authoritative domain), id,
                                 key: send db:verify to the authoritative server of `to` and report
                                 with stream_verify_result() */
    STREAM_ACT_VERIFY_RESULT, /* OUT: the authoritative server answered our db:verify: from, to, id
                                 as we sent them, result, condition (for ERROR). Hand it to the
                                 stream that emitted the STREAM_ACT_VERIFY */
    STREAM_ACT_STANZA,        /* from, to (full JIDs), el, data/len (serialized, no content
                                 namespace declaration): route it */
    STREAM_ACT_BOUNCE,        /* from, to (domain pair), condition, data/len: a stanza that was
                                 queued with stream_send() and will never be sent: bounce it to its
                                 sender with this stanza error (RFC 6120 §10.4.3) */
    STREAM_ACT_AUTHENTICATED, /* from (remote domain), to (local domain), method: the pair may carry
                                 stanzas (IN: remote→local; OUT: local→remote) */
    STREAM_ACT_PAIR_FAILED,   /* OUT: from (local), to (remote), condition: the pair will not be
                                 authenticated on this stream (its queued stanzas are bounced) */
    STREAM_ACT_TIMER,         /* deadline_ms: call stream_tick() at (or after) this time; replaces
                                 any earlier timer of this stream */
    STREAM_ACT_CLOSE,         /* condition (the stream error we sent, or the peer's error, or NULL
                                 for a clean close), reason (short text for logs): close the
                                 transport once the preceding bytes are written. Last action. */
} stream_action_type_t;

typedef struct {
    stream_action_type_t type;
    const uint8_t *data;
    size_t len;
    const char *from;
    const char *to;
    const char *id;
    const char *key;
    const char *domain;
    const char *condition;
    const char *reason;
    const stanza_t *el;
    stream_auth_t method;
    stream_verify_t result;
    bool tls_server;
    uint64_t deadline_ms;
} stream_action_t;

/* Random bytes for stream ids; must be unpredictable in production (getrandom). */
typedef void (*stream_random_fn)(void *ctx, uint8_t *out, size_t n);
/* True iff we serve `domain` (a NUL-terminated bare domain, as sent by the peer). */
typedef bool (*stream_hosted_fn)(void *ctx, const char *domain);

typedef struct {
    stream_kind_t kind;
    stream_limits_t limits;
    /* The domains we host: the callback if set, else the list (compared like jid_domain_equal). */
    stream_hosted_fn hosted_fn;
    void *hosted_ctx;
    const char *const *hosted;
    size_t n_hosted;
    /* Dialback secret (XEP-0185): keys we send and db:verify we answer. Copied. */
    const uint8_t *secret;
    size_t secret_len;
    stream_random_fn random;
    void *random_ctx;
    const char *lang;        /* xml:lang of our headers; "en" when NULL */
    bool offer_bidi;         /* IN: offer XEP-0288 <bidi/> (default true) */
    bool request_bidi;       /* OUT: send <bidi/> when offered (default false) */
    bool dialback_cert_skip; /* IN: XEP-0344 answer db:result from a valid certificate without
                                asking the authoritative server (default false) */
    bool serialize_stanzas;  /* fill data/len of STREAM_ACT_STANZA (default true) */
    /* OUT only: our domain (header from), the partner domain (header to) and its rules. */
    const char *local;
    const char *remote;
    peer_rules_t rules;
    bool direct_tls;  /* OUT: XEP-0368 connection, TLS is up before the first byte */
    bool verify_only; /* OUT: a stream only for db:verify; authenticates no pair */
    uint64_t now_ms;  /* creation time (monotonic ms): the establishment timer starts here */
    /* Borrowed, may be NULL: the thread's spare parser instances (xml_pool_t in core/xml.h),
       lent to this stream between stanzas; must outlive the stream. See stream_park(). */
    struct xml_pool *xml_pool;
} stream_config_t;

/* Defaults: kind STREAM_IN, stream_limits_default(), "en", offer_bidi, serialize_stanzas. */
void stream_config_default(stream_config_t *cfg);

/* Create a stream. cfg->random must be set; OUT needs local, remote and the secret unless
   verify_only. 0, -EINVAL, -ENOMEM or an error of xml_parser_new(). */
int stream_new(stream_t **out, const stream_config_t *cfg);
/* Free everything. NULL is a no-op. Pending actions are dropped. */
void stream_free(stream_t *s);

/*
 * Take peer bytes. Returns the number of bytes consumed (0..len): fewer than len when the engine
 * stopped to let the caller drain actions (a routed stanza), or waits for an event (policy, TLS),
 * or the stream closed. A negative return is a caller error (-EINVAL: called while actions are
 * pending from a previous call). Protocol errors are actions (a stream error and a close), never
 * return codes. now_ms: monotonic milliseconds, used for the inactivity timer.
 */
int stream_feed(stream_t *s, const void *data, size_t len, uint64_t now_ms);

/* Next pending action into *a; false when there is none. */
bool stream_next_action(stream_t *s, stream_action_t *a);

/*
 * TLS is up: after STREAM_ACT_START_TLS, or for XEP-0368 direct TLS before the first byte (OUT:
 * after stream_out_connected(); IN: before the peer's header arrived). names: the DNS
 * identities of the peer's certificate (tls/ extracts them), valid: the certificate chain
 * validated. Borrowed for the call. IN: the peer now sends a new header.
 */
int stream_tls_up(stream_t *s, const char *const *names, size_t n_names, bool valid, uint64_t now);
/* The TLS handshake failed: the stream closes without a closing tag (RFC 6120 §5.4.3.2). */
void stream_tls_failed(stream_t *s);

/* Verdict for the domain of a STREAM_ACT_NEED_POLICY (IN). rules is read only when allowed. */
int stream_policy(stream_t *s, const char *domain, bool allowed, const peer_rules_t *rules);
/* COMPONENT: the secret of the domain it asked for, or allowed=false to refuse it. */
int stream_component_secret(stream_t *s, const char *domain, bool allowed, const void *secret,
                            size_t secret_len);

/*
 * Answer to a STREAM_ACT_VERIFY (IN): from/to/id as in the action. condition (ERROR only) is the
 * XEP-0220 condition sent on to the initiating server: "remote-server-not-found" (lookup failed,
 * or the authoritative server answered type='error'), "remote-connection-failed",
 * "remote-server-timeout". Answers matching no pending request are ignored (returns
 * FG_ENOTFOUND).
 */
int stream_verify_result(stream_t *s, const char *from, const char *to, const char *id,
                         stream_verify_t result, const char *condition);

/* A timer fired: timeouts, keepalive, per-pair dialback deadlines. */
void stream_tick(stream_t *s, uint64_t now_ms);

/*
 * Send a stanza (serialized without a content namespace declaration, as STREAM_ACT_STANZA gives
 * them) from domain `from` to domain `to`. OUT: queued until the pair is authenticated (bounded by
 * max_queued_stanzas), then sent; IN with bidi and COMPONENT: sent when the pair is authenticated.
 * 0 (sent or queued), FG_ELIMIT (queue full: bounce it with resource-constraint), FG_EREFUSED
 * (the pair failed or cannot be carried by this stream), FG_EPROTO (the stream is closed).
 */
int stream_send(stream_t *s, const char *from, const char *to, const void *data, size_t len);

/* OUT: the TCP (or direct TLS) connection is up: the engine sends its header. */
int stream_out_connected(stream_t *s, uint64_t now_ms);
/* OUT: the endpoint about to be tried is (or is not) XEP-0368 direct TLS — known only once DNS
   answered, after the stream was made. Only before stream_out_connected(). 0 or FG_EPROTO. */
int stream_out_set_direct_tls(stream_t *s, bool direct_tls);
/* OUT: no connection could be made: every queued stanza is bounced with remote-server-not-found
   (dns_failed) or remote-server-timeout, and the stream is CLOSED. */
void stream_out_connect_failed(stream_t *s, bool dns_failed);
/* OUT: authenticate another pair (sender or, when the peer offers dialback errors, target
   multiplexing) on this stream. 0, FG_ELIMIT (max_domain_pairs), FG_EREFUSED. */
int stream_out_add_pair(stream_t *s, const char *local, const char *remote);
/* OUT: ask the peer (the authoritative server of `to`) to verify a key: sends db:verify as soon as
   the stream allows, reports STREAM_ACT_VERIFY_RESULT. 0 or FG_ELIMIT. */
int stream_out_verify(stream_t *s, const char *from, const char *to, const char *id,
                      const char *key);

/* The transport closed under us: pending work is bounced and the stream is CLOSED. */
void stream_transport_closed(stream_t *s);
/* Close cleanly (or with a stream error condition such as "policy-violation", "system-shutdown",
   "reset", with optional text). Queued stanzas bounce with remote-server-timeout. */
void stream_close(stream_t *s, const char *condition, const char *text);

/* ---- accessors (no side effects) ---- */
stream_state_t stream_state(const stream_t *s);
stream_kind_t stream_kind(const stream_t *s);
const char *stream_state_name(stream_state_t st);
const char *stream_auth_name(stream_auth_t m);
const char *stream_action_name(stream_action_type_t t);
/* The id of the stream header we sent (IN/COMPONENT) or received (OUT); "" before. */
const char *stream_id(const stream_t *s);
/* The peer's domain from its header (IN: from, OUT: remote), "" when unknown. */
const char *stream_peer_domain(const stream_t *s);
bool stream_tls_active(const stream_t *s);
bool stream_bidi(const stream_t *s);
/* True iff the pair (remote → local on IN/COMPONENT, local → remote on OUT) is authenticated. */
bool stream_pair_valid(const stream_t *s, const char *local, const char *remote);

typedef struct {
    size_t bytes;        /* heap bytes held by the stream: struct, buffers, parser */
    size_t parser_bytes; /* of which core/xml (expat and the stanza arena) */
    uint64_t mallocs;    /* heap allocations since creation, parser included */
    uint64_t stanzas;    /* stanzas routed */
} stream_stats_t;
void stream_stats(const stream_t *s, stream_stats_t *out);
/* Release buffer capacity beyond what an idle stream needs (call when the stream goes idle). */
void stream_trim(stream_t *s);
/* With cfg.xml_pool: when every action is taken and the parser rests between stanzas, hand its
   expat instance back to the pool (xml_park()); the next bytes borrow one again. Call after each
   batch of input and its actions. True when the stream holds no instance on return. */
bool stream_park(stream_t *s);
