/*
 * gw_session: one XMPP stream of the gateway on one worker — the TCP connection (io/conn), the TLS
 * session (tls/) once STARTTLS or direct TLS starts, and the stream engine (core/stream). It pumps
 * bytes between them and carries out the engine's actions: sends, STARTTLS, policy verdicts,
 * dialback verification, routing, bounces, timers and close.
 *
 * Kinds: IN (a partner connected to the s2s listener), OUT (we connect to a partner for a domain
 * pair, or, verify_only, to an authoritative server for db:verify) and COMPONENT (an XEP-0114
 * component on the component listener).
 *
 * Ownership: the worker's gw_worker_t lists its sessions. A session with a connection is freed in
 * the connection's on_close; one without (an OUT stream still resolving) when its stream closes,
 * from a zero-delay timer so no caller up the stack still holds it. Only the owning worker's
 * thread touches a session.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "io/gw.h"
#include "tls/tls_conn.h"

struct gw_sess {
    gw_worker_t *k;
    gw_sess_t *prev, *next;
    gw_sess_t *rnext; /* chain in k->route_tab */
    bool routed;      /* in k->route_tab */
    uint32_t rhash;
    uint64_t id;
    conn_t *conn; /* NULL while an OUT stream resolves or connects */
    stream_t *st;
    stream_kind_t kind;
    bool verify_only;
    tls_conn_t *tls;
    bool tls_up;
    bool direct_tls;
    bool opened;   /* conn on_open seen */
    bool dead;     /* stream closed; waiting for on_close or the free timer */
    bool draining; /* inside gw_sess_drain (re-entry guard) */
    bool swallow;  /* drop SEND actions (the replayed pre-TLS exchange of direct TLS) */
    bool counted;  /* holds a partner connection slot */
    bool comp_registered;
    stream_auth_t auth;
    uint64_t since_unix; /* creation, wall clock seconds */
    int m_open;          /* gauge series of this stream once authenticated, else -1 */
    char local[STREAM_DOMAIN_MAX + 1];
    char remote[STREAM_DOMAIN_MAX + 1];
    char partner[STREAM_DOMAIN_MAX + 1]; /* primary domain of the partner, "" if none */
    buf_t pin;                           /* plaintext; the engine has taken it up to pin_off */
    /* TLS: plaintext written during this loop iteration, encrypted as one record when the worker
       flushes (gw_sess_seal_all) instead of a record per stanza. */
    buf_t pout;
    gw_sess_t *pout_next, *pout_prev;
    bool pout_listed;
    size_t pin_off;
    timer_ent_t tmr; /* the engine's timer */
    timer_ent_t free_tmr;
    /* OUT: endpoints and the one being tried. */
    dns_result_t *plan;
    size_t next_ep;
    uint64_t dns_id;
    bool dns_pending;
    bool local_close; /* we closed it (shutdown, policy): its queue must not move on */
    gw_sess_t *retry; /* OUT: the stream to the next endpoint that took over its queue */
    bool is_retry;    /* some failed stream's retry points here */
    /* Verify streams: the IN session asking and what it asked. */
    uint64_t verify_for;
    bool verify_pending;
    char v_from[STREAM_DOMAIN_MAX + 1], v_to[STREAM_DOMAIN_MAX + 1], v_id[STREAM_PEER_ID_MAX + 1];
    /* Flow control (gw_flow.h). As a source: the gate it waits at with its receiving paused.
       As a destination: its waiters, its backlog (from bl_off on), its component slot. */
    gw_gate_t *gate;
    gw_sess_t *gnext, *gprev;
    uint64_t paused_ms;
    gw_gate_t own_gate;
    buf_t backlog;
    size_t bl_off;
    int comp_slot; /* -1: not a registered component */
    bool slot_busy;
    timer_ent_t kick_tmr;    /* resumed: feed what waited in pin */
    timer_ent_t release_tmr; /* lets the next batch of own_gate waiters go (gw_flow.c) */
};

extern const conn_ops_t gw_in_ops;       /* s2s listener (listener arg: NULL) */
extern const conn_ops_t gw_tls_ops;      /* direct-TLS s2s listener */
extern const conn_ops_t gw_comp_ops;     /* component listener */
extern const conn_ops_t gw_comp_tls_ops; /* component listener, TLS from the first byte */
extern const conn_ops_t gw_out_ops;      /* outgoing connections (ctx: the session) */

/* A new session on worker k with a stream made from cfg (kind, local/remote, rules filled by the
   caller; limits, secret, random and hosted callback filled here). 0, -ENOMEM or a stream_new
   error. */
int gw_sess_new(gw_worker_t *k, stream_config_t *cfg, gw_sess_t **out);
/* Carry out every pending action of the engine. */
void gw_sess_drain(gw_sess_t *s);
/* Make s findable by gw_sess_route_find (OUT: by its pair; COMPONENT: by its domain). Its
   local/remote must not change afterwards; it leaves the table when freed. */
void gw_sess_route_add(gw_sess_t *s);
/* The live session of `kind` for (local, remote) on worker k (components: local ""), or NULL. */
gw_sess_t *gw_sess_route_find(gw_worker_t *k, stream_kind_t kind, const char *local,
                              const char *remote);
/* The session whose id is `id` on worker k, or NULL. */
gw_sess_t *gw_sess_find(gw_worker_t *k, uint64_t id);
/* OUT: resolve the partner (ProxyFqdn or SRV) and connect. 0 or an error (stream closed then). */
int gw_sess_connect(gw_sess_t *s, const char *proxy_host, uint16_t proxy_port);
/* Close every session of k with a stream error (shutdown, or NULL for a clean close). */
void gw_sess_close_all(gw_worker_t *k, const char *condition, const char *text);
/* The hosted domain `domain` when its route is an internal server over s2s, else NULL. */
const policy_hosted_t *gw_internal_server(gw_worker_t *k, const char *domain);
/* Negotiation rules toward internal servers. */
void gw_internal_rules(peer_rules_t *r);
/* True when s's send queue has no room for len more bytes: the stanza is bounced with
   resource-constraint rather than overflowing the queue (which would cost the whole connection). */
bool gw_sess_congested(const gw_sess_t *s, size_t len);
/* Flow control paused s (s->gate set): once what it holds unparsed passes GW_HOLD_MAX, its
   connection stops receiving. A short pause costs nothing more: the next recv buffer or two
   wait in pin, and the kernel keeps reading until the bound. */
void gw_sess_hold(gw_sess_t *s);
/* Bytes a paused stream may buffer before its receiving stops. */
#define GW_HOLD_MAX (32 * 1024)
/* Flow control resumed s (gw_flow.h): receive again, and feed what is already buffered from the
   worker loop (not from inside the caller, which may be another stream's delivery). */
void gw_sess_resume(gw_sess_t *s);
/* One step of the sweep over k's sessions (call every GW_SWEEP_STEP_MS): a new sweep starts
   every GW_SNAP_MS; each step takes the next 1/GW_SWEEP_STEPS of the sessions there were when it
   started, releases buffer capacity idle ones no longer need and writes their stream table line;
   the last step publishes the table (gw_t.snap[k->idx]). True when it did. */
bool gw_sess_sweep(gw_worker_t *k, uint64_t now_ns);
/* Before the worker sends (its on_flush): every TLS session's plaintext of this iteration becomes
   one record (or a few, 16 KiB each) in its send queue. */
void gw_sess_seal_all(worker_t *w);
/* Re-check open partner streams against the current policy snapshot (DESIGN.md §4). */
void gw_sess_recheck(gw_worker_t *k);
