/*
 * worker: the worker group — N threads, one io_uring ring each, shared nothing.
 *
 * Each worker owns a connection table, a timer heap, a provided buffer ring for receives, its
 * SO_REUSEPORT listening sockets and one inbound SPSC queue per other thread. The loop handles
 * completions in batches (one dispatch per op kind, see conntab.h for the tag), drains its queues,
 * fires due timers, delivers deferred closes, flushes sends, then submits; with nothing to do it
 * spins briefly (waking a thread on another core costs ~45 µs here) before sleeping in the kernel
 * until a completion, a queue wake-up or the next timer.
 *
 * Ownership: the group owns workers, rings, sockets and queues; wgroup_destroy releases everything
 * after wgroup_stop. worker_t pointers are borrowed for the group's lifetime. Callbacks run on the
 * worker's thread. Fields of the structs below are private to io/.
 */
#pragma once

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "io/conn.h"
#include "io/conntab.h"
#include "io/timer.h"
#include "io/xq.h"

typedef struct wgroup wgroup_t;
typedef struct dns dns_t;

/* What the running kernel supports, probed once. */
typedef struct {
    bool multishot_accept; /* 5.19 */
    bool multishot_recv;   /* 6.0 */
    bool buf_ring;         /* provided buffer rings, 5.19 */
    bool msg_ring;         /* IORING_OP_MSG_RING, 5.18 */
    bool link_timeout;
    bool single_issuer; /* IORING_SETUP_SINGLE_ISSUER, 6.0 */
    bool coop_taskrun;  /* IORING_SETUP_COOP_TASKRUN + TASKRUN_FLAG, 5.19 */
} io_features_t;

/* Probes the kernel (cached after the first call). 0, or -errno when io_uring is unavailable. */
int io_features_probe(io_features_t *out);

#define WGROUP_NO_SPIN 0xffffffffu

typedef struct {
    unsigned nworkers;     /* 0: one per online core */
    unsigned max_conns;    /* all workers together; 0: as many as the fd limit allows */
    unsigned fd_reserve;   /* fds kept out of max_conns (store, DNS, logs, listeners); default 64 */
    unsigned ring_entries; /* SQ entries per ring; default 512 */
    unsigned rbuf_count;   /* provided receive buffers per worker (power of two); default 256 */
    unsigned rbuf_size;    /* bytes each; default 16384 */
    size_t send_max;       /* per-connection send queue bound; default 256 KiB */
    unsigned linger_ms;    /* how long conn_close may flush; default 2000 */
    unsigned spin_us;      /* spin before sleeping; 0: default 50; WGROUP_NO_SPIN disables */
    unsigned xq_cap;       /* entries per SPSC queue; default 1024 */
    bool no_multishot;     /* force single-shot accept/recv (tests the fallback path) */
    /* Hooks, all optional, called on the worker's thread. */
    void (*on_start)(worker_t *w);
    void (*on_stop)(worker_t *w);
    void (*on_msg)(worker_t *w, const xq_msg_t *m);
    /* A message still queued when the group is destroyed (every worker has stopped, so nobody
       will pop it): called on the destroying thread so what the message owns can be freed. */
    void (*on_drop)(const xq_msg_t *m);
    /* Every loop iteration that did work, before the connections' queued bytes are sent: what
       the daemon gathered during the iteration (e.g. plaintext to encrypt as one record). */
    void (*on_flush)(worker_t *w);
    /* After wgroup_notify(): once per worker per notification burst (e.g. "the store changed"). */
    void (*on_notify)(worker_t *w);
    void *arg; /* worker_arg() */
} wgroup_config_t;

/* Counters owned by one worker (single writer, relaxed atomics: readable from any thread). */
typedef struct {
    _Atomic uint64_t enters; /* io_uring_enter calls made by the loop */
    _Atomic uint64_t cqes;
    _Atomic uint64_t loops;
    _Atomic uint64_t accepted;
    _Atomic uint64_t refused; /* accepted then closed at once: table full or fd budget spent */
    _Atomic uint64_t accept_errors;
    _Atomic uint64_t connects;
    _Atomic uint64_t conns_open;
    _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t sends;
    _Atomic uint64_t partial_sends;
    _Atomic uint64_t enobufs;
    _Atomic uint64_t stale;
    _Atomic uint64_t xq_msgs;
    _Atomic uint64_t timers;
    _Atomic uint64_t spins;     /* idle spins started */
    _Atomic uint64_t spin_hits; /* ... that found work before their budget ran out */
    _Atomic uint64_t sleeps;    /* blocking io_uring_enter waits */
} worker_stats_t;

#define WORKER_STAT_ADD(w, field, v)                                                               \
    atomic_store_explicit(&(w)->stats.field,                                                       \
                          atomic_load_explicit(&(w)->stats.field, memory_order_relaxed) + (v),     \
                          memory_order_relaxed)

typedef struct {
    int fd;
    uint32_t idx;
    bool armed;
    bool multishot;  /* the armed accept is multishot */
    bool cancelling; /* a cancel of the multishot accept is in flight */
    bool balanced;   /* accepted connections are dealt out over the workers in turn */
    const conn_ops_t *ops;
    void *arg;
    timer_ent_t retry; /* re-arm after EMFILE/ENFILE */
    worker_t *w;
} wlistener_t;

#define WORKER_MAX_LISTENERS 8

struct conn {
    conntab_hdr_t hdr;
    worker_t *w;
    int fd;
    uint8_t state;
    bool recv_armed;
    bool recv_paused;
    bool recv_single; /* paused once: single-shot receives from then on (see conn_recv_pause) */
    bool send_inflight;
    bool flush_listed;
    bool want_writable;
    bool close_listed;
    bool notified_close;
    bool outgoing;
    bool opened; /* on_open was delivered */
    bool peer_known;
    uint8_t pending; /* SQEs in flight besides recv/send: connect, link timeout, cancel */
    int close_reason;
    const conn_ops_t *ops;
    void *ctx;
    buf_t sbuf; /* in flight (never reallocated while a send is in flight) */
    size_t soff;
    buf_t qbuf; /* queued behind it */
    struct sockaddr_storage peer;
    struct __kernel_timespec connect_ts;
    timer_ent_t tmr[CONN_TIMERS];
    timer_ent_t linger;
    conn_t *next_flush;
    conn_t *next_close;
};

struct worker {
    unsigned idx;
    wgroup_t *g;
    pthread_t thread;
    struct io_uring ring;
    bool ring_ok;
    conntab_t conns;
    uint32_t conn_cap;
    size_t send_max;
    unsigned linger_ms;
    const io_features_t *feat;
    timer_heap_t timers;
    /* Provided buffer ring (group id 0). */
    struct io_uring_buf_ring *br;
    size_t br_bytes;
    uint8_t *rbufs;
    unsigned rbuf_count, rbuf_size;
    unsigned br_pending; /* buffers added since the last advance */
    wlistener_t listeners[WORKER_MAX_LISTENERS];
    unsigned nlisteners;
    /* Inbound queues: one per worker plus one for the control thread (index nworkers). */
    xq_t *inq;
    xq_wake_t wake;
    uint64_t efd_val;
    bool efd_armed;
    conn_t *flush_head;
    conn_t *close_head;
    dns_t *dns;
    void *data; /* worker_set_data() */
    _Atomic int stop;
    _Atomic int quiesce; /* wgroup_quiesce(): close the listeners */
    bool quiesced;
    _Atomic uint64_t notify_seq; /* bumped by wgroup_notify (any thread) */
    uint64_t notify_seen;
    uint64_t last_refuse_log_ns;
    uint64_t last_accept_err_log_ns;
    uint64_t suppressed_logs;
    int start_err;
    /* Adaptive idle spin (see spin_pays() in worker.c): recent hit rate in 1/256, average wait of
       a hit, and how many idle periods to sleep through before the next probe while spinning
       does not pay. */
    unsigned spin_rate;
    uint64_t spin_wait_ns;
    unsigned spin_skip, spin_backoff;
    worker_stats_t stats;
};

int wgroup_create(wgroup_t **out, const wgroup_config_t *cfg);
/*
 * Adds a listener every worker will accept on (SO_REUSEPORT spreads connections over them). Call
 * before wgroup_start. If sa's port is 0, a free port is chosen and written back into *sa.
 * 0, FG_ELIMIT (too many listeners) or -errno from socket/bind/listen.
 */
int wgroup_listen(wgroup_t *g, struct sockaddr_storage *sa, const conn_ops_t *ops, void *arg);
/* Like wgroup_listen, but whichever worker accepts, connections are dealt out over the workers in
 * turn (the accepting worker hands the socket over through its queue): n connections from one
 * client land on n different workers, where SO_REUSEPORT's hash may put them all on one. For
 * endpoints with few, busy connections (components), never on a hot path. */
int wgroup_listen_balanced(wgroup_t *g, struct sockaddr_storage *sa, const conn_ops_t *ops,
                           void *arg);
/* The same on one worker only (no SO_REUSEPORT), for low-traffic endpoints such as /metrics. */
int wgroup_listen_one(wgroup_t *g, unsigned worker, struct sockaddr_storage *sa,
                      const conn_ops_t *ops, void *arg);
/* A metrics collector (see metrics.h): the io counters of every worker, summed. arg: wgroup_t. */
void wgroup_metrics_collect(void *g, buf_t *out);
/* Starts the threads; returns once every worker has set up its ring (or the first error). */
int wgroup_start(wgroup_t *g);
/* Asks every worker to stop, wakes them and joins them. Open connections are closed (on_close
 * with -ECANCELED). Idempotent. */
void wgroup_stop(wgroup_t *g);
void wgroup_destroy(wgroup_t *g);
unsigned wgroup_size(const wgroup_t *g);
worker_t *wgroup_worker(wgroup_t *g, unsigned i);
/* Connections per worker after applying the fd budget. */
unsigned wgroup_conn_cap(const wgroup_t *g);
const io_features_t *wgroup_features(const wgroup_t *g);

/* Message types from WORKER_MSG_IO up belong to the io layer: on_msg and on_drop never see them. */
#define WORKER_MSG_IO    0xffff0000u
#define WORKER_MSG_ADOPT (WORKER_MSG_IO + 1u) /* arg: listener index << 32 | accepted socket */

/* Posts a message to worker `to`. `from` is the posting worker, or NULL for the one control thread
 * (the thread that called wgroup_start). 0, FG_ELIMIT when that queue is full, -EINVAL. */
int worker_post(worker_t *from, wgroup_t *g, unsigned to, const xq_msg_t *m);
/* Stop accepting (graceful shutdown, first step): every worker closes its listening sockets;
 * open connections carry on. Any thread. Idempotent. */
void wgroup_quiesce(wgroup_t *g);
/* Connections open on w (a snapshot readable from any thread). */
unsigned worker_conn_count(const worker_t *w);
/* Any thread, any number of them: every worker runs on_notify soon (waking it if it sleeps).
 * Notifications that arrive before a worker gets to them coalesce into one on_notify. */
void wgroup_notify(wgroup_t *g);
unsigned worker_index(const worker_t *w);
wgroup_t *worker_group(const worker_t *w);
void *worker_arg(const worker_t *w);
void worker_set_data(worker_t *w, void *data);
void *worker_data(const worker_t *w);
timer_heap_t *worker_timers(worker_t *w);
const worker_stats_t *worker_stats(const worker_t *w);
/* An SQE, submitting first if the SQ is full. NULL only if the ring is broken. */
struct io_uring_sqe *worker_sqe(worker_t *w);
/* Test hook: runs one completion through the dispatcher as if the kernel had posted it. Call on
 * w's thread (e.g. from on_msg). */
void worker_inject_cqe(worker_t *w, uint64_t user_data, int res, uint32_t flags);
/* Rate limiting for log lines peers can trigger: true at most once per interval per *last. */
bool worker_log_allowed(uint64_t *last_ns, uint64_t interval_ns);

/* Internal to io/: the conn.c half of the loop. */
void conn_handle_cqe(worker_t *w, unsigned op, uint32_t idx, uint32_t gen, int res, uint32_t flags);
void conn_flush(worker_t *w);
void conn_process_closes(worker_t *w);
void conn_close_all(worker_t *w);
int conn_arm_accept(worker_t *w, wlistener_t *l);
/* An accepted socket handed over by another worker (WORKER_MSG_ADOPT): served as if accepted here,
 * or closed when over the connection budget or no longer listening. Takes ownership of fd. */
void conn_adopt(worker_t *w, uint32_t li, int fd);
/* For a balanced listener: true when fd was handed to the worker whose turn it is (fd is then
 * theirs), false when it is this worker's turn or the hand-over failed (serve it here). */
bool worker_hand_off(worker_t *w, const wlistener_t *l, int fd);
void conn_recycle_buffer(worker_t *w, uint32_t flags);
