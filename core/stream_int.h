/*
 * Private to the stream engine (core/stream*.c): the stream structure and the helpers its files
 * share. Not for use outside core/stream*.c.
 */
#pragma once

#include "core/buf.h"
#include "core/stream.h"
#include "core/xml.h"

#include <stdbool.h>
#include <stdint.h>

#define NOSTR UINT32_MAX

/* Pair states. IN: a db:result (remote → local) we were asked to verify; OUT: a pair we want to
   authenticate (local → remote). */
typedef enum {
    PAIR_POLICY = 0, /* IN: waiting for the policy verdict of its remote domain */
    PAIR_WANTED,     /* OUT: db:result not sent yet */
    PAIR_VERIFYING,  /* IN: STREAM_ACT_VERIFY emitted; OUT: db:result sent */
    PAIR_VALID,      /* authenticated */
    PAIR_FAILED,     /* OUT: will not authenticate here (queued stanzas bounced) */
} pair_state_t;

typedef struct {
    pair_state_t state;
    char local[STREAM_DOMAIN_MAX + 1];
    char remote[STREAM_DOMAIN_MAX + 1];
    char key[STREAM_KEY_MAX + 1]; /* IN: the key to verify */
    stream_auth_t method;
    uint64_t deadline; /* 0 = none */
    uint32_t queued;   /* OUT: stanzas waiting in the queue */
} pair_t;

/* Policy verdicts per domain (IN). */
typedef enum { DOM_PENDING = 0, DOM_ALLOWED, DOM_REFUSED } dom_state_t;
typedef struct {
    dom_state_t state;
    peer_rules_t rules;
    char domain[STREAM_DOMAIN_MAX + 1];
} dom_t;

/* OUT: db:verify requests to send or sent. */
typedef struct {
    bool sent;
    char from[STREAM_DOMAIN_MAX + 1];
    char to[STREAM_DOMAIN_MAX + 1];
    char id[STREAM_PEER_ID_MAX + 1];
    char key[STREAM_KEY_MAX + 1];
} vreq_t;

/* A stanza queued (OUT) for a pair. */
typedef struct {
    uint32_t pair;
    uint32_t off;
    uint32_t len;
    bool dead;
} qent_t;

enum { ABUF_OUT = 0, ABUF_QUEUE = 1 };
/* Internal action type for lazy bounce expansion. */
#define ACT_BOUNCE_BATCH 100

typedef struct {
    int type;
    uint8_t buf;
    uint8_t method;
    uint8_t result;
    bool tls_server;
    uint32_t data_off, data_len;
    uint32_t from, to, id, key, domain; /* offsets into out, NOSTR */
    uint32_t pair;                      /* ACT_BOUNCE_BATCH */
    const char *condition;              /* static */
    const char *reason;                 /* static */
    const stanza_t *el;
    uint64_t deadline;
} act_t;

struct stream {
    stream_config_t cfg; /* pointers inside are reset: see stream_new() */
    stream_kind_t kind;
    stream_state_t state;
    xml_parser_t *xml;
    char local[STREAM_DOMAIN_MAX + 1];  /* OUT: our domain; IN/COMPONENT: header to */
    char remote[STREAM_DOMAIN_MAX + 1]; /* OUT: partner; IN: header from; COMPONENT: domain */
    char lang[16];
    uint8_t secret[STREAM_SECRET_MAX];
    size_t secret_len;
    char id[STREAM_PEER_ID_MAX + 1]; /* our id (IN/COMPONENT) or the peer's (OUT) */

    /* header and negotiation */
    bool header_sent;    /* IN: our response header for the current stream is out */
    bool legacy;         /* peer header had no version (pre-RFC 3920 dialback) */
    bool peer_db;        /* peer declared xmlns:db on its header */
    bool peer_db_errors; /* OUT: peer advertised dialback errors */
    bool tls;            /* TLS is up */
    bool cert_valid;
    char certnames[1024]; /* NUL-separated DNS identities */
    uint8_t ncertnames;
    bool offered_tls, offered_sasl, offered_db, offered_bidi;
    bool bidi;
    bool sasl_done;
    bool restart;     /* xml_reset() due before more input */
    bool stop;        /* the handler asked xml to pause */
    bool stanza_stop; /* pause after a routed stanza */
    bool wait_event;  /* input must wait for an event (policy, TLS) */
    bool have_rules;
    peer_rules_t rules;
    uint8_t sasl_failures;
    bool sasl_challenged; /* IN: sent an empty challenge, waiting for <response/> */
    bool established;     /* a pair is authenticated (or verify-only stream ready) */
    bool closing_sent;    /* we sent </stream:stream> */
    bool ready;           /* OUT: final features received: stanzas and db:* may flow */

    /* pairs and domains */
    pair_t **pairs;
    uint32_t npairs, cap_pairs;
    dom_t **doms;
    uint32_t ndoms, cap_doms;
    vreq_t **vreqs;
    uint32_t nvreqs, cap_vreqs;

    /* actions */
    act_t ring[STREAM_ACTIONS_MAX];
    uint32_t ring_head, ring_count;
    buf_t out;
    buf_t queue;
    qent_t *qents;
    uint32_t nq, cap_q, live_q;

    /* time */
    uint64_t now, created, last_activity, last_sent, close_deadline;
    uint64_t armed; /* deadline of the last TIMER action, 0 = none */
    uint64_t nstanzas;
    uint64_t mallocs;
};

/* ---- stream_common.c ---- */
void st_begin_call(stream_t *s, uint64_t now);
void st_end_call(stream_t *s);
act_t *st_push(stream_t *s, int type);
uint32_t st_str(stream_t *s, const char *str);
int st_send_str(stream_t *s, const char *str);
int st_send_attr(stream_t *s, const char *str); /* escaped attribute value */
void st_send_begin(stream_t *s, uint32_t *mark);
void st_send_commit(stream_t *s, uint32_t mark);
void st_fail(stream_t *s, const char *condition, const char *text, const char *reason);
void st_fail_app(stream_t *s, const char *condition, const char *text, const char *app_ns,
                 const char *app_cond, const char *reason);
void st_close_now(stream_t *s, const char *condition, const char *reason);
bool st_hosted(const stream_t *s, const char *domain);
bool st_domain_ok(const char *d);
void st_copy(char *dst, const char *src, size_t cap);
void st_new_id(stream_t *s);
pair_t *st_pair_find(const stream_t *s, const char *local, const char *remote);
pair_t *st_pair_add(stream_t *s, const char *local, const char *remote, pair_state_t st);
void st_pair_remove(stream_t *s, pair_t *p);
uint32_t st_pair_index(const stream_t *s, const pair_t *p);
bool st_any_valid(const stream_t *s);
dom_t *st_dom_find(const stream_t *s, const char *domain);
dom_t *st_dom_add(stream_t *s, const char *domain);
void st_authenticated(stream_t *s, const char *local, const char *remote, stream_auth_t m);
int st_route(stream_t *s, const xml_event_t *ev, const char *content_ns);
void st_bounce_pair(stream_t *s, pair_t *p, const char *condition);
void st_bounce_all(stream_t *s, const char *condition);
int st_write_header(stream_t *s, const char *from, const char *to, bool version, bool db,
                    const char *content_ns);
bool st_cert_covers(const stream_t *s, const char *domain);
bool st_parse_version(const char *v, int *major, int *minor);
/* methods allowed by the rules (lync-spec §2.1 matrix) */
bool st_sasl_allowed(const peer_rules_t *r);
bool st_dialback_allowed(const peer_rules_t *r, bool tls);
int st_header_checks(stream_t *s, const stanza_t *h, const char *content_ns);

/* ---- stream_in.c ---- */
int st_in_event(stream_t *s, const xml_event_t *ev);
int st_in_policy(stream_t *s, dom_t *d);
int st_in_tls_up(stream_t *s);
int st_in_verify_result(stream_t *s, pair_t *p, stream_verify_t r, const char *cond);
void st_in_tick(stream_t *s);

/* ---- stream_out.c ---- */
int st_out_event(stream_t *s, const xml_event_t *ev);
int st_out_connected(stream_t *s);
int st_out_tls_up(stream_t *s);
void st_out_kick(stream_t *s);
void st_out_tick(stream_t *s);
int st_out_send(stream_t *s, pair_t *p, const void *data, size_t len);

/* ---- stream_comp.c ---- */
int st_comp_event(stream_t *s, const xml_event_t *ev);
int st_comp_secret(stream_t *s, bool allowed, const void *secret, size_t len);
