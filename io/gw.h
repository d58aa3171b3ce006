/*
 * gw: the gateway daemon's shared state — what joins the worker group (io/), TLS (tls/), the
 * stream engine (core/) and the policy reader (policy/) into fedgate.
 *
 * One gw_t per process, built by main() before the workers start and read-only afterwards except
 * for the atomics below (component owners, connection counts, the shutdown flag). Each worker has
 * one gw_worker_t (worker_data()), owned and touched only by that worker's thread: its policy
 * reader, its resolver, its sessions, its scratch buffers.
 *
 * Sessions (gw_session.h) live on one worker. Stanzas reach a session on another worker only
 * through worker_post() with a heap copy (gw_route.h); everything else stays on the worker.
 */
#pragma once

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/jid.h"
#include "core/stanza.h"
#include "core/stream.h"
#include "core/xml.h"
#include "io/dns.h"
#include "io/metrics.h"
#include "io/timer.h"
#include "io/worker.h"
#include "policy/decide.h"
#include "policy/ledger.h"
#include "policy/lookup.h"
#include "policy/settings.h"
#include "tls/tls_ctx.h"

/* Hosted domains that may have a connected component at the same time. */
#define GW_COMP_MAX 256
/* --workers accepts at most this many. */
#define GW_WORKERS_MAX 256
/* Buckets of the per-partner connection counters (a hash of the primary domain). */
#define GW_PARTNER_BUCKETS 1024
/* How often a worker renews its policy snapshot without being told (ms): a fallback, since every
   store commit wakes the workers at once (inotify in the control thread, wgroup_notify). */
#define GW_REFRESH_MS 100
/* Bytes of one worker's stream table snapshot (about 200 bytes a stream). */
#define GW_SNAP_MAX (2u << 20)
/* Bytes of a /metrics body past which stream tables are left out (mhttp's body bound is 4 MiB). */
#define GW_SNAP_SCRAPE_MAX (3u << 20)
/* How often workers trim their sessions and publish their stream table (ms): a sweep over the
   sessions, done in steps of at most 1/GW_SWEEP_STEPS of them every GW_SWEEP_STEP_MS, so no loop
   iteration stalls for the whole table (1000 sessions took ~1 ms in one go). */
#define GW_SNAP_MS       1000
#define GW_SWEEP_STEP_MS 100
#define GW_SWEEP_STEPS   8
/* Partners whose last failure is remembered for /metrics. */
#define GW_FAIL_MAX 512
/* Buckets of each worker's table of routable sessions (OUT streams by domain pair, components by
   domain): the stanza path finds its stream without walking every session. */
#define GW_ROUTE_BUCKETS 4096
/* Idle expat instances a worker keeps for its streams: one serves them all in turn; the rest
   cover streams whose headers differ (components, odd namespace declarations). */
#define GW_XML_POOL_IDLE 16
/* xq message types. */
enum {
    GW_MSG_DELIVER = 1,
    GW_MSG_SHUTDOWN = 2,
    GW_MSG_TLS = 3,
    GW_MSG_RETURN = 4,
    GW_MSG_RESUME = 5 /* arg: a component slot that drained (gw_flow.h) */
};

typedef struct gw_sess gw_sess_t;
typedef struct gw_worker gw_worker_t;

/* Where paused streams wait for a congested destination (gw_flow.h). */
typedef struct gw_gate {
    gw_sess_t *head, *tail;
} gw_gate_t;

/* Stanza blocks for another worker that its full queue did not take yet (gw_flow.h). */
typedef struct {
    struct gw_route_msg *head, *tail;
    unsigned n;
    gw_gate_t gate; /* the streams paused until it empties */
} gw_outbox_t;

typedef struct {
    char domain[STREAM_DOMAIN_MAX + 1]; /* written once, before owner is first published */
    _Atomic int owner;                  /* worker index of the connected component, -1: none */
    _Atomic uint64_t sess_id;
    /* Flow control (gw_flow.h): set by the owner while the component is congested; bit w%64 set
       by worker w when it paused a stream for it. */
    _Atomic int busy;
    _Atomic uint64_t waiters;
    uint64_t present[GW_WORKERS_MAX / 64]; /* workers holding a connection (under comp_mu) */
} gw_comp_slot_t;

typedef struct {
    wgroup_t *g;
    metrics_t *metrics;
    tls_ctx_t *tls;   /* the control thread's reference to the newest context */
    uint64_t tls_sig; /* what it was built from (control thread only) */
    char store[PATH_MAX];
    unsigned nworkers;
    settings_t settings; /* as read at start: listeners, resolver, trust anchors */
    char resolver[SETTINGS_ADDR_MAX];
    int connect_timeout_ms;

    pthread_mutex_t comp_mu; /* serialises slot allocation only; readers take no lock */
    gw_comp_slot_t comp[GW_COMP_MAX];
    _Atomic unsigned ncomp;

    _Atomic int shutting_down;
    _Atomic bool have_internal; /* some hosted domain routes to an internal server (s2s) */
    _Atomic uint32_t nconns;    /* partner streams, both directions */
    _Atomic uint32_t partner_conns[GW_PARTNER_BUCKETS];

    /* Last failure per partner (rare events: a mutex is fine; never on the stanza path). */
    pthread_mutex_t fail_mu;
    struct {
        char partner[STREAM_DOMAIN_MAX + 1];
        char reason[48];
        uint64_t unix_ms;
    } fail[GW_FAIL_MAX];
    unsigned nfail;

    /* Each worker's stream table, rebuilt by its sweep every GW_SNAP_MS and read by /metrics
       scrapes (on another thread): a mutex per worker, held only to swap or copy. Owned by main. */
    struct gw_snap {
        pthread_mutex_t mu;
        buf_t text;
    } * snap;

    ledger_writer_t *ledger; /* the process's ledger writer (gw_ptype.h), owned by main */

    /* Series registered at start. */
    int m_in, m_out, m_cross, m_refused_unknown, m_refused_limit;
    int m_xpool[4]; /* parser pool: lent, built, dropped, idle bytes (set when a sweep ends) */
} gw_t;

struct gw_worker {
    gw_t *gw;
    worker_t *w;
    unsigned idx;
    policy_reader_t *pol;
    tls_ctx_t *tls; /* this worker's reference: new handshakes use it */
    dns_t *dns;
    timer_ent_t refresh;
    timer_ent_t snap_tmr;
    gw_sess_t *sessions; /* every live session of this worker */
    unsigned nsess;
    /* The sweep in progress (gw_sess_sweep): the next session, how many a step takes, the stream
       table being built, when the next sweep starts. */
    gw_sess_t *sweep;
    unsigned sweep_budget;
    bool sweeping;
    buf_t snap_next;
    uint64_t sweep_next_ns;
    gw_sess_t *pout_head; /* sessions with plaintext to encrypt before the next send */
    gw_sess_t *route_tab[GW_ROUTE_BUCKETS];
    /* Cross-worker stanza blocks (gw_route.h): this worker's pool, and per origin worker the
       blocks waiting to be sent back. */
    struct gw_route_msg *pool;
    unsigned npool;
    struct gw_route_msg **ret;
    unsigned *nret;
    uint64_t next_id;
    uint8_t plain[16384]; /* TLS plaintext scratch */
    /* Expat instances lent to this worker's streams between stanzas (core/xml.h), so a few warm
       ones serve thousands of streams; NULL if it could not be made (each stream keeps its own). */
    xml_pool_t *xpool;
    /* Bounces: a private parser turns a serialized stanza back into a tree, stanza_bounce() builds
       the error in barena, bout holds its bytes. */
    xml_parser_t *bparser;
    stanza_arena_t *barena;
    buf_t bout;
    bool bdone;
    const char *bcond, *btype;
    char bfrom[JID_MAX + 1], bto[JID_MAX + 1];
    int bounce_depth;
    uint64_t log_ns; /* rate limit of log lines peers can trigger */
    /* Partner-type and access rules (gw_ptype.h): this worker's ledger reader, one counter per
       rule, and a parser for the stanzas whose tree is needed (<status/>, audit line). */
    ledger_reader_t *ledger;
    int m_decide[DECIDE_R_COUNT_];
    uint64_t next_purge_ms;
    xml_parser_t *sparser;
    stanza_arena_t *sarena;
    stanza_t *stree;
    buf_t sout;
    /* Flow control (gw_flow.h): the stream whose stanza is being routed (NULL for one from another
       worker), and per component slot the streams paused for a component on another worker. */
    gw_sess_t *cur_src;
    gw_gate_t slot_gate[GW_COMP_MAX];
    gw_outbox_t *outbox; /* one per worker */
    timer_ent_t flow_tmr;
    timer_ent_t slot_rel_tmr;          /* lets the next batch of slot_gate waiters go */
    int m_paused, m_backlog, m_outbox; /* gauges: paused streams, backlog bytes, outbox stanzas */
    int m_pauses, m_backlogged, m_backlog_full, m_pause_timeouts; /* counters */
};

/* True when a log line a peer can trigger may be written now (at most one per millisecond per
   worker, so a flood of bad peers cannot flood the log). */
bool gw_log_ok(gw_worker_t *k);

extern gw_t *gw_global;

/* Monotonic milliseconds, the stream engine's clock. */
uint64_t gw_now_ms(void);
/* Worker hooks for wgroup_config_t. */
void gw_worker_start(worker_t *w);
void gw_worker_stop(worker_t *w);
void gw_worker_msg(worker_t *w, const xq_msg_t *m);
/* wgroup on_drop: frees what an undelivered message owns (stanza blocks, a TLS context). */
void gw_worker_drop_msg(const xq_msg_t *m);
void gw_worker_notify(worker_t *w);
/* Renew the policy snapshot now; re-checks open streams when it changed. */
void gw_worker_refresh(gw_worker_t *k);

/* Component registry: the slot of `domain` (-1: none) and, in *owner, the worker of its connected
   component or -1. */
int gw_comp_find(gw_t *gw, const char *domain, int *owner);
/* Owner worker of the component serving `domain`, or -1. */
int gw_comp_owner(gw_t *gw, const char *domain);
/* A component may hold several connections, on one worker or several. A worker routes to its own
   connection when it has one; the others post to the owner, the worker of the newest connection
   (or, once that worker has none left, of another that has one).
   gw_comp_register returns the domain's slot, or -1 when every slot is taken (not routed).
   gw_comp_unregister: `last_here` says whether `worker` has no other connection of it left. */
int gw_comp_register(gw_t *gw, const char *domain, unsigned worker, uint64_t sess_id);
void gw_comp_unregister(gw_t *gw, const char *domain, unsigned worker, bool last_here);

/* Per-partner connection accounting (FG_ELIMIT over ConnectionLimit or the partner's limit). */
int gw_conn_acquire(gw_t *gw, const char *partner, uint32_t partner_limit, uint32_t total_limit);
void gw_conn_release(gw_t *gw, const char *partner);

/* Remember why the last stream with `partner` failed (shown by /metrics). */
void gw_note_failure(gw_t *gw, const char *partner, const char *reason);
/* Metrics collector for those (arg: gw_t). */
void gw_failures_collect(void *arg, buf_t *out);
/* Metrics collector: every open stream as fedgate_stream_info{...} (arg: gw_t). */
void gw_streams_collect(void *arg, buf_t *out);
/* Counts one event in a lazily registered series `name{labels}` on this worker's slot. */
void gw_count(gw_worker_t *k, const char *name, const char *labels, int64_t v);
