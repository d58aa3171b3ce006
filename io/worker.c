#include "io/worker.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "io/dns.h"
#include "io/listen.h"

typedef struct {
    struct sockaddr_storage sa;
    const conn_ops_t *ops;
    void *arg;
    bool balanced;
    _Atomic uint32_t turn; /* balanced: the next connection's worker, modulo the group size */
} glisten_t;

struct wgroup {
    wgroup_config_t cfg;
    unsigned n;
    worker_t *w;
    io_features_t feat;
    unsigned conn_cap;
    glisten_t listens[WORKER_MAX_LISTENERS];
    unsigned nlistens;
    pthread_mutex_t mu; /* start-up hand-shake only, never on the data path */
    pthread_cond_t cv;
    unsigned started;
    bool running;
    bool stopped;
};

/* ---- kernel feature probe ---------------------------------------------------------------- */

static int kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma = 0, mi = 0;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return 0;
    return ma > major || (ma == major && mi >= minor);
}

int io_features_probe(io_features_t *out)
{
    static io_features_t cached;
    static int state; /* 0 unknown, 1 ok, <0 error */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int ret;
    pthread_mutex_lock(&mu);
    if (state == 0) {
        struct io_uring ring;
        ret = io_uring_queue_init(8, &ring, 0);
        if (ret < 0) {
            state = ret;
        } else {
            struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
            if (p) {
                cached.msg_ring = io_uring_opcode_supported(p, IORING_OP_MSG_RING);
                cached.link_timeout = io_uring_opcode_supported(p, IORING_OP_LINK_TIMEOUT);
                io_uring_free_probe(p);
            }
            /* Provided buffer rings: try to register a tiny one. */
            void *mem = NULL;
            if (posix_memalign(&mem, 4096, 4096) == 0) {
                memset(mem, 0, 4096);
                struct io_uring_buf_reg reg = {
                    .ring_addr = (unsigned long)mem, .ring_entries = 4, .bgid = 7};
                if (io_uring_register_buf_ring(&ring, &reg, 0) == 0) {
                    cached.buf_ring = true;
                    io_uring_unregister_buf_ring(&ring, 7);
                }
            }
            io_uring_queue_exit(&ring);
            free(mem);
            /* Multishot variants have no probe bit; the kernel version is the documented gate. */
            cached.multishot_accept = kernel_at_least(5, 19);
            cached.multishot_recv = kernel_at_least(6, 0);
            struct io_uring r2;
            struct io_uring_params prm = {.flags = IORING_SETUP_SINGLE_ISSUER};
            if (io_uring_queue_init_params(8, &r2, &prm) == 0) {
                cached.single_issuer = true;
                io_uring_queue_exit(&r2);
            }
            struct io_uring_params prm3 = {.flags = IORING_SETUP_COOP_TASKRUN |
                                                    IORING_SETUP_TASKRUN_FLAG};
            if (io_uring_queue_init_params(8, &r2, &prm3) == 0) {
                cached.coop_taskrun = true;
                io_uring_queue_exit(&r2);
            }
            state = 1;
        }
    }
    ret = state < 0 ? state : 0;
    if (ret == 0 && out)
        *out = cached;
    pthread_mutex_unlock(&mu);
    return ret;
}

/* ---- small helpers ------------------------------------------------------------------------ */

bool worker_log_allowed(uint64_t *last_ns, uint64_t interval_ns)
{
    uint64_t now = timer_now_ns();
    if (*last_ns && now - *last_ns < interval_ns)
        return false;
    *last_ns = now;
    return true;
}

struct io_uring_sqe *worker_sqe(worker_t *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    if (!sqe) {
        io_uring_submit(&w->ring);
        WORKER_STAT_ADD(w, enters, 1);
        sqe = io_uring_get_sqe(&w->ring);
    }
    return sqe;
}

unsigned worker_index(const worker_t *w)
{
    return w->idx;
}
wgroup_t *worker_group(const worker_t *w)
{
    return w->g;
}
void *worker_arg(const worker_t *w)
{
    return w->g->cfg.arg;
}
void worker_set_data(worker_t *w, void *data)
{
    w->data = data;
}
void *worker_data(const worker_t *w)
{
    return w->data;
}
timer_heap_t *worker_timers(worker_t *w)
{
    return &w->timers;
}
const worker_stats_t *worker_stats(const worker_t *w)
{
    return &w->stats;
}
unsigned wgroup_size(const wgroup_t *g)
{
    return g->n;
}
worker_t *wgroup_worker(wgroup_t *g, unsigned i)
{
    return i < g->n ? &g->w[i] : NULL;
}
unsigned wgroup_conn_cap(const wgroup_t *g)
{
    return g->conn_cap;
}
const io_features_t *wgroup_features(const wgroup_t *g)
{
    return &g->feat;
}

/* ---- group creation ----------------------------------------------------------------------- */

static void config_defaults(wgroup_config_t *c)
{
    if (!c->nworkers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c->nworkers = n > 0 ? (unsigned)n : 1;
    }
    if (!c->fd_reserve)
        c->fd_reserve = 64;
    if (!c->ring_entries)
        c->ring_entries = 512;
    if (!c->rbuf_count)
        c->rbuf_count = 256;
    if (c->rbuf_count & (c->rbuf_count - 1)) {
        unsigned p = 1;
        while (p < c->rbuf_count)
            p <<= 1;
        c->rbuf_count = p;
    }
    if (c->rbuf_count > 32768)
        c->rbuf_count = 32768;
    if (!c->rbuf_size)
        c->rbuf_size = 16384;
    if (!c->send_max)
        c->send_max = 256 * 1024;
    if (!c->linger_ms)
        c->linger_ms = 2000;
    if (!c->xq_cap)
        c->xq_cap = 1024;
    if (!c->spin_us)
        c->spin_us = 50;
    else if (c->spin_us == WGROUP_NO_SPIN)
        c->spin_us = 0;
}

int wgroup_create(wgroup_t **out, const wgroup_config_t *cfg)
{
    int ret = 0;
    wgroup_t *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->cfg = *cfg;
    config_defaults(&g->cfg);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    ret = io_features_probe(&g->feat);
    if (ret < 0)
        goto fail;
    if (!g->feat.buf_ring) {
        ret = -ENOSYS;
        goto fail;
    }
    if (g->cfg.no_multishot) {
        g->feat.multishot_accept = false;
        g->feat.multishot_recv = false;
    }
    g->n = g->cfg.nworkers;
    unsigned budget = listen_fd_budget(g->cfg.fd_reserve);
    unsigned total = g->cfg.max_conns && g->cfg.max_conns < budget ? g->cfg.max_conns : budget;
    if (g->cfg.max_conns > budget)
        log_warn("io: max connections lowered from %u to %u to stay under the fd limit",
                 g->cfg.max_conns, budget);
    g->conn_cap = total / g->n;
    void *mem = NULL;
    if (posix_memalign(&mem, 64, sizeof(worker_t) * g->n) != 0) {
        ret = -ENOMEM;
        goto fail;
    }
    memset(mem, 0, sizeof(worker_t) * g->n);
    g->w = mem;
    for (unsigned i = 0; i < g->n; i++) {
        worker_t *w = &g->w[i];
        w->idx = i;
        w->g = g;
        w->wake.efd = -1;
        w->conn_cap = g->conn_cap;
        w->send_max = g->cfg.send_max;
        w->linger_ms = g->cfg.linger_ms;
        w->feat = &g->feat;
        ret = conntab_init(&w->conns, g->conn_cap, sizeof(conn_t));
        if (ret < 0)
            goto fail;
        ret = timer_heap_init(&w->timers, g->conn_cap * (CONN_TIMERS + 1) + 256);
        if (ret < 0)
            goto fail;
        if (posix_memalign(&mem, 64, sizeof(xq_t) * (g->n + 1)) != 0) {
            ret = -ENOMEM;
            goto fail;
        }
        memset(mem, 0, sizeof(xq_t) * (g->n + 1));
        w->inq = mem;
        for (unsigned j = 0; j <= g->n; j++) {
            ret = xq_init(&w->inq[j], g->cfg.xq_cap);
            if (ret < 0)
                goto fail;
        }
        ret = xq_wake_init(&w->wake);
        if (ret < 0)
            goto fail;
    }
    *out = g;
    return 0;
fail:
    wgroup_destroy(g);
    return ret;
}

static int listen_on(wgroup_t *g, int only, bool balanced, struct sockaddr_storage *sa,
                     const conn_ops_t *ops, void *arg)
{
    int ret = 0;
    if (g->running)
        return -EBUSY;
    if (g->nlistens >= WORKER_MAX_LISTENERS)
        return FG_ELIMIT;
    if (only >= (int)g->n)
        return -EINVAL;
    unsigned li = g->nlistens;
    bool first = true;
    for (unsigned i = 0; i < g->n; i++) {
        wlistener_t *l = &g->w[i].listeners[li];
        l->fd = -1;
        l->idx = li;
        l->w = &g->w[i];
        g->w[i].nlisteners = li + 1;
        if (only >= 0 && (int)i != only)
            continue;
        int fd = -1;
        ret = listen_open(sa, only < 0, &fd);
        if (ret < 0) {
            for (unsigned j = 0; j < i; j++) {
                if (g->w[j].listeners[li].fd >= 0)
                    close(g->w[j].listeners[li].fd);
                g->w[j].listeners[li].fd = -1;
            }
            return ret;
        }
        /* The first socket of a port-0 listener picks the port; the others share it. */
        if (first)
            listen_local_addr(fd, sa);
        first = false;
        l->fd = fd;
        l->ops = ops;
        l->arg = arg;
        l->balanced = balanced && g->n > 1;
    }
    g->listens[li].sa = *sa;
    g->listens[li].balanced = balanced && g->n > 1;
    atomic_store(&g->listens[li].turn, 0);
    g->listens[li].ops = ops;
    g->listens[li].arg = arg;
    g->nlistens++;
    return 0;
}

int wgroup_listen(wgroup_t *g, struct sockaddr_storage *sa, const conn_ops_t *ops, void *arg)
{
    return listen_on(g, -1, false, sa, ops, arg);
}

int wgroup_listen_balanced(wgroup_t *g, struct sockaddr_storage *sa, const conn_ops_t *ops,
                           void *arg)
{
    return listen_on(g, -1, true, sa, ops, arg);
}

bool worker_hand_off(worker_t *w, const wlistener_t *l, int fd)
{
    wgroup_t *g = w->g;
    if (!l->balanced || l->idx >= g->nlistens)
        return false;
    unsigned to = atomic_fetch_add(&g->listens[l->idx].turn, 1) % g->n;
    if (to == w->idx)
        return false;
    xq_msg_t m = {.type = WORKER_MSG_ADOPT, .arg = (uint64_t)l->idx << 32 | (uint32_t)fd};
    return worker_post(w, g, to, &m) == 0;
}

int wgroup_listen_one(wgroup_t *g, unsigned worker, struct sockaddr_storage *sa,
                      const conn_ops_t *ops, void *arg)
{
    return listen_on(g, (int)worker, false, sa, ops, arg);
}

void wgroup_metrics_collect(void *arg, buf_t *out)
{
    wgroup_t *g = arg;
    static const struct {
        const char *name;
        size_t off;
        const char *type;
        const char *help;
    } f[] = {
#define F(n, t, h) {"fedgate_io_" #n, offsetof(worker_stats_t, n), t, h}
        F(enters, "counter", "io_uring_enter calls made by worker loops"),
        F(cqes, "counter", "completions handled"),
        F(accepted, "counter", "connections accepted"),
        F(refused, "counter", "connections refused because the connection budget was spent"),
        F(accept_errors, "counter", "accept failures (EMFILE, ENFILE, ENOBUFS, ...)"),
        F(connects, "counter", "outgoing connections started"),
        F(conns_open, "gauge", "connections open"),
        F(bytes_in, "counter", "bytes received"),
        F(bytes_out, "counter", "bytes sent"),
        F(sends, "counter", "send operations"),
        F(partial_sends, "counter", "sends the kernel took only in part"),
        F(enobufs, "counter", "receives that found the provided buffer ring empty"),
        F(stale, "counter", "completions ignored because their connection slot was reused"),
        F(xq_msgs, "counter", "cross-worker messages handled"),
        F(spins, "counter", "idle spins started"),
        F(spin_hits, "counter", "idle spins that found work before their budget ran out"),
        F(sleeps, "counter", "blocking waits in the kernel"),
#undef F
    };
    char line[256];
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        uint64_t sum = 0;
        for (unsigned k = 0; k < g->n; k++)
            sum += atomic_load_explicit((_Atomic uint64_t *)((char *)&g->w[k].stats + f[i].off),
                                        memory_order_relaxed);
        int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", f[i].name,
                         f[i].help, f[i].name, f[i].type, f[i].name, (unsigned long long)sum);
        if (n > 0 && buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1))
            return;
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void arm_wake(worker_t *w)
{
    if (w->efd_armed)
        return;
    struct io_uring_sqe *sqe = worker_sqe(w);
    if (!sqe)
        return;
    io_uring_prep_read(sqe, w->wake.efd, &w->efd_val, sizeof(w->efd_val), 0);
    io_uring_sqe_set_data64(sqe, iotag_make(IOOP_XQ_WAKE, 0, 0));
    w->efd_armed = true;
}

static void dispatch(worker_t *w, uint64_t ud, int res, uint32_t flags)
{
    unsigned op = iotag_op(ud);
    switch (op) {
    case IOOP_ACCEPT:
    case IOOP_RECV:
    case IOOP_SEND:
    case IOOP_CONNECT:
    case IOOP_LINK_TMO:
    case IOOP_CANCEL:
        conn_handle_cqe(w, op, iotag_idx(ud), iotag_gen(ud), res, flags);
        break;
    case IOOP_XQ_WAKE:
        w->efd_armed = false;
        arm_wake(w);
        break;
    case IOOP_NOP:
        /* idx > 0: our IORING_OP_MSG_RING to worker idx - 1 (see ring_peer) failed, so its
           wake-up was not delivered: ring its eventfd instead. */
        if (iotag_idx(ud) && res < 0 && iotag_idx(ud) <= w->g->n) {
            uint64_t one = 1;
            ssize_t r = write(w->g->w[iotag_idx(ud) - 1].wake.efd, &one, sizeof(one));
            (void)r;
        }
        break;
    case IOOP_DNS_POLL:
    case IOOP_DNS_CANCEL:
        if (w->dns)
            dns_handle_cqe(w->dns, op, iotag_idx(ud), iotag_gen(ud), res);
        break;
    default:
        /* A tag this build never makes: count it, never crash on it. */
        conn_recycle_buffer(w, flags);
        WORKER_STAT_ADD(w, stale, 1);
        break;
    }
}

void worker_inject_cqe(worker_t *w, uint64_t user_data, int res, uint32_t flags)
{
    dispatch(w, user_data, res, flags);
}

/* Completions wait for this thread to enter the kernel (COOP_TASKRUN). */
static bool taskrun_pending(const worker_t *w)
{
    return IO_URING_READ_ONCE(*w->ring.sq.kflags) & IORING_SQ_TASKRUN;
}

static unsigned reap(worker_t *w)
{
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    if (taskrun_pending(w)) {
        io_uring_get_events(&w->ring);
        WORKER_STAT_ADD(w, enters, 1);
    }
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        dispatch(w, cqe->user_data, cqe->res, cqe->flags);
        n++;
    }
    if (n) {
        io_uring_cq_advance(&w->ring, n);
        WORKER_STAT_ADD(w, cqes, n);
    }
    if (w->br_pending) {
        io_uring_buf_ring_advance(w->br, (int)w->br_pending);
        w->br_pending = 0;
    }
    return n;
}

static void close_listeners(worker_t *w)
{
    w->quiesced = true;
    for (unsigned i = 0; i < w->nlisteners; i++) {
        wlistener_t *l = &w->listeners[i];
        if (l->fd < 0)
            continue;
        timer_cancel(&w->timers, &l->retry);
        if (l->armed) {
            struct io_uring_sqe *sqe = worker_sqe(w);
            if (sqe) {
                io_uring_prep_cancel64(sqe, iotag_make(IOOP_ACCEPT, l->idx, 0), 0);
                io_uring_sqe_set_data64(sqe, iotag_make(IOOP_NOP, 0, 0));
            }
        }
        /* The in-flight accept holds its own reference to the socket until it is cancelled; with
         * fd = -1 the listener is never armed again. */
        close(l->fd);
        l->fd = -1;
    }
}

static bool queues_nonempty(worker_t *w)
{
    if (atomic_load_explicit(&w->quiesce, memory_order_relaxed) && !w->quiesced)
        return true;
    if (atomic_load_explicit(&w->notify_seq, memory_order_relaxed) != w->notify_seen)
        return true;
    for (unsigned j = 0; j <= w->g->n; j++)
        if (xq_len(&w->inq[j]))
            return true;
    return false;
}

static unsigned drain_queues(worker_t *w)
{
    unsigned n = 0;
    if (atomic_load_explicit(&w->quiesce, memory_order_acquire) && !w->quiesced) {
        close_listeners(w);
        n++;
    }
    uint64_t seq = atomic_load_explicit(&w->notify_seq, memory_order_acquire);
    if (seq != w->notify_seen) {
        w->notify_seen = seq;
        n++;
        if (w->g->cfg.on_notify)
            w->g->cfg.on_notify(w);
    }
    xq_msg_t m;
    for (unsigned j = 0; j <= w->g->n; j++) {
        /* A budget per queue per iteration so one chatty producer cannot starve the ring. */
        for (unsigned k = 0; k < 256 && xq_pop(&w->inq[j], &m); k++) {
            n++;
            if (m.type == WORKER_MSG_ADOPT)
                conn_adopt(w, (uint32_t)(m.arg >> 32), (int)(uint32_t)m.arg);
            else if (w->g->cfg.on_msg)
                w->g->cfg.on_msg(w, &m);
        }
    }
    if (n)
        WORKER_STAT_ADD(w, xq_msgs, n);
    return n;
}

static int setup_ring(worker_t *w)
{
    wgroup_t *g = w->g;
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    /* Completion bursts (multishot recv on many connections) can outrun the SQ size. */
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
    p.cq_entries = g->cfg.ring_entries * 8;
    if (g->feat.single_issuer)
        p.flags |= IORING_SETUP_SINGLE_ISSUER;
    /* Completions that need this thread (a multishot recv copying data in) are run when it next
       enters the kernel instead of by an interrupt while it works in user space: one IPI fewer
       per arriving segment, and they are run in batches. The flag in the SQ ring tells the loop
       and the spin that such work waits (taskrun_pending). */
    if (g->feat.coop_taskrun)
        p.flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    int ret = io_uring_queue_init_params(g->cfg.ring_entries, &w->ring, &p);
    if (ret < 0)
        return ret;
    w->ring_ok = true;

    w->rbuf_count = g->cfg.rbuf_count;
    w->rbuf_size = g->cfg.rbuf_size;
    w->br_bytes = ((size_t)w->rbuf_count * sizeof(struct io_uring_buf) + 4095) & ~(size_t)4095;
    void *mem = NULL;
    if (posix_memalign(&mem, 4096, w->br_bytes) != 0)
        return -ENOMEM;
    memset(mem, 0, w->br_bytes);
    w->br = mem;
    w->rbufs = malloc((size_t)w->rbuf_count * w->rbuf_size);
    if (!w->rbufs)
        return -ENOMEM;
    /* liburing 2.3 has no io_uring_setup_buf_ring(): register the page-aligned ring by hand. */
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)w->br, .ring_entries = w->rbuf_count, .bgid = 0};
    ret = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (ret < 0)
        return ret;
    io_uring_buf_ring_init(w->br);
    int mask = io_uring_buf_ring_mask(w->rbuf_count);
    for (unsigned i = 0; i < w->rbuf_count; i++)
        io_uring_buf_ring_add(w->br, w->rbufs + (size_t)i * w->rbuf_size, w->rbuf_size,
                              (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(w->br, (int)w->rbuf_count);
    return 0;
}

static void teardown_ring(worker_t *w)
{
    if (w->ring_ok) {
        io_uring_queue_exit(&w->ring);
        w->ring_ok = false;
    }
    free(w->br);
    w->br = NULL;
    free(w->rbufs);
    w->rbufs = NULL;
}

/*
 * Idle spinning pays only when work comes back within the spin: then it saves a sleep and a
 * wake-up (several µs of CPU, ~45 µs of latency on a virtual machine). When the gaps between
 * completions are longer, every spin is lost, and at moderate rates (one stanza per wake-up) a
 * fixed 50 µs spin before every sleep was a third of the gateway's CPU. So a worker keeps moving
 * averages (1/8 weight) of how often its spins find work (h, in 1/256) and how long that took (t),
 * and spins only while the sleeps that saves (h·C, taking the budget C as the price of a sleep)
 * outweigh the time spun (h·t + (1 − h)·C), i.e. h·(2C − t) > C. Otherwise it sleeps at once,
 * probing with one spin after 1, 2, 4 ... SPIN_BACKOFF_MAX idle periods, so a busier phase is
 * noticed within a few of them.
 */
#define SPIN_BACKOFF_MAX 64

static bool spin_pays(const worker_t *w, uint64_t c)
{
    uint64_t t = w->spin_wait_ns < c ? w->spin_wait_ns : c;
    return (uint64_t)w->spin_rate * (2 * c - t) > 256 * c;
}

static bool spin_wanted(worker_t *w, uint64_t c)
{
    if (spin_pays(w, c))
        return true;
    if (w->spin_skip) {
        w->spin_skip--;
        return false;
    }
    return true;
}

static void spin_learn(worker_t *w, uint64_t c, bool hit, uint64_t waited)
{
    w->spin_rate = (w->spin_rate * 7 + (hit ? 256u : 0u)) / 8;
    if (hit)
        w->spin_wait_ns = (w->spin_wait_ns * 7 + waited) / 8;
    if (spin_pays(w, c)) {
        w->spin_backoff = 0;
        return;
    }
    if (hit)
        w->spin_backoff = w->spin_backoff > 1 ? w->spin_backoff / 2 : 1;
    else
        w->spin_backoff = w->spin_backoff ? w->spin_backoff * 2 : 1;
    if (w->spin_backoff > SPIN_BACKOFF_MAX)
        w->spin_backoff = SPIN_BACKOFF_MAX;
    w->spin_skip = w->spin_backoff;
}

/* Spins up to spin_ns watching the CQ ring, the queues and the next timer: true if one has work. */
static bool spin(worker_t *w, uint64_t spin_ns)
{
    WORKER_STAT_ADD(w, spins, 1);
    uint64_t start = timer_now_ns(), now = start, until = start + spin_ns;
    uint64_t next = timer_next(&w->timers);
    bool got = false;
    for (; now < until; now = timer_now_ns()) {
        if (io_uring_cq_ready(&w->ring) || taskrun_pending(w) || queues_nonempty(w) ||
            next <= now || atomic_load_explicit(&w->stop, memory_order_relaxed)) {
            got = true;
            break;
        }
        __builtin_ia32_pause();
    }
    if (got)
        WORKER_STAT_ADD(w, spin_hits, 1);
    spin_learn(w, spin_ns, got, now - start);
    return got;
}

static void loop(worker_t *w)
{
    wgroup_t *g = w->g;
    uint64_t spin_ns = (uint64_t)g->cfg.spin_us * 1000u;
    w->spin_rate = 256;
    while (!atomic_load_explicit(&w->stop, memory_order_acquire)) {
        WORKER_STAT_ADD(w, loops, 1);
        unsigned work = reap(w);
        work += drain_queues(w);
        unsigned fired = timer_run(&w->timers, timer_now_ns());
        if (fired)
            WORKER_STAT_ADD(w, timers, fired);
        work += fired;
        conn_process_closes(w);
        if (g->cfg.on_flush)
            g->cfg.on_flush(w);
        conn_flush(w);
        if (io_uring_sq_ready(&w->ring)) {
            io_uring_submit(&w->ring);
            WORKER_STAT_ADD(w, enters, 1);
        }
        if (work)
            continue;
        if (spin_ns && spin_wanted(w, spin_ns) && spin(w, spin_ns))
            continue;
        /* Announce sleep, then re-check the queues (pairs with xq_wake_ring). */
        atomic_store(&w->wake.sleeping, 1);
        if (queues_nonempty(w) || atomic_load(&w->stop)) {
            atomic_store(&w->wake.sleeping, 0);
            continue;
        }
        uint64_t next = timer_next(&w->timers);
        struct __kernel_timespec ts, *tsp = NULL;
        if (next != UINT64_MAX) {
            uint64_t now = timer_now_ns();
            uint64_t d = next > now ? next - now : 0;
            ts.tv_sec = (long long)(d / 1000000000u);
            ts.tv_nsec = (long long)(d % 1000000000u);
            tsp = &ts;
        }
        struct io_uring_cqe *cqe = NULL;
        if (!io_uring_cq_ready(&w->ring)) {
            io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, tsp, NULL);
            WORKER_STAT_ADD(w, enters, 1);
            WORKER_STAT_ADD(w, sleeps, 1);
        }
        atomic_store(&w->wake.sleeping, 0);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    wgroup_t *g = w->g;
    char name[16];
    snprintf(name, sizeof(name), "fg-io-%u", w->idx);
    pthread_setname_np(pthread_self(), name);
    /* The ring is created on the thread that uses it: SINGLE_ISSUER ties it to its creator. */
    int ret = setup_ring(w);
    if (ret == 0) {
        arm_wake(w);
        for (unsigned i = 0; i < w->nlisteners && ret == 0; i++)
            ret = conn_arm_accept(w, &w->listeners[i]);
        io_uring_submit(&w->ring);
    }
    pthread_mutex_lock(&g->mu);
    w->start_err = ret;
    g->started++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (ret == 0) {
        if (g->cfg.on_start)
            g->cfg.on_start(w);
        loop(w);
        conn_close_all(w);
        if (g->cfg.on_stop)
            g->cfg.on_stop(w);
        if (w->dns)
            dns_destroy(w->dns);
    }
    teardown_ring(w);
    return NULL;
}

int wgroup_start(wgroup_t *g)
{
    int ret = 0;
    unsigned created = 0;
    g->running = true;
    for (unsigned i = 0; i < g->n; i++) {
        if (pthread_create(&g->w[i].thread, NULL, worker_main, &g->w[i]) != 0) {
            ret = -EAGAIN;
            break;
        }
        created++;
    }
    pthread_mutex_lock(&g->mu);
    while (g->started < created)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    for (unsigned i = 0; i < created && ret == 0; i++)
        ret = g->w[i].start_err;
    if (created < g->n) {
        /* Mark the rest as never started so wgroup_stop joins only real threads. */
        g->n = created;
    }
    if (ret < 0)
        wgroup_stop(g);
    return ret;
}

void wgroup_stop(wgroup_t *g)
{
    if (!g || !g->running || g->stopped)
        return;
    g->stopped = true;
    for (unsigned i = 0; i < g->n; i++) {
        atomic_store_explicit(&g->w[i].stop, 1, memory_order_release);
        uint64_t one = 1;
        ssize_t r = write(g->w[i].wake.efd, &one, sizeof(one));
        (void)r;
    }
    for (unsigned i = 0; i < g->n; i++)
        pthread_join(g->w[i].thread, NULL);
}

void wgroup_destroy(wgroup_t *g)
{
    if (!g)
        return;
    wgroup_stop(g);
    if (g->w) {
        for (unsigned i = 0; i < g->cfg.nworkers; i++) {
            worker_t *w = &g->w[i];
            for (unsigned l = 0; l < w->nlisteners; l++)
                if (w->listeners[l].fd >= 0)
                    close(w->listeners[l].fd);
            conntab_free_all(&w->conns);
            timer_heap_free(&w->timers);
            if (w->inq) {
                for (unsigned j = 0; j <= g->cfg.nworkers; j++) {
                    xq_msg_t m;
                    /* Threads are joined: this thread is now the only consumer (and producer). */
                    while (w->inq[j].ring && xq_pop(&w->inq[j], &m)) {
                        if (m.type == WORKER_MSG_ADOPT)
                            close((int)(uint32_t)m.arg);
                        else if (g->cfg.on_drop)
                            g->cfg.on_drop(&m);
                    }
                    xq_destroy(&w->inq[j]);
                }
                free(w->inq);
            }
            xq_wake_destroy(&w->wake);
        }
        free(g->w);
    }
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void wgroup_quiesce(wgroup_t *g)
{
    for (unsigned i = 0; i < g->n; i++) {
        atomic_store_explicit(&g->w[i].quiesce, 1, memory_order_release);
        xq_wake_ring(&g->w[i].wake);
    }
}

unsigned worker_conn_count(const worker_t *w)
{
    return (unsigned)atomic_load_explicit(&w->stats.conns_open, memory_order_relaxed);
}

void wgroup_notify(wgroup_t *g)
{
    for (unsigned i = 0; i < g->n; i++) {
        atomic_fetch_add_explicit(&g->w[i].notify_seq, 1, memory_order_release);
        xq_wake_ring(&g->w[i].wake);
    }
}

/*
 * A worker waking another: the same Dekker pair as xq_wake_ring (push, fence, check the sleeping
 * flag), but the wake-up is an IORING_OP_MSG_RING on the producer's own ring instead of an eventfd
 * write: it leaves with the producer's next submit (the end of this loop iteration, or the enter
 * it sleeps in) rather than a system call of its own, and the sleeper finds a completion in its
 * CQ ring without running the eventfd's task work and re-arming its read. Only a failure completes
 * on the producer's ring, tagged with the target (idx + 1), and falls back to the eventfd.
 */
static void ring_peer(worker_t *from, worker_t *dst)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&dst->wake.sleeping, memory_order_relaxed) ||
        !atomic_exchange(&dst->wake.sleeping, 0))
        return;
    atomic_fetch_add_explicit(&dst->wake.rings, 1, memory_order_relaxed);
    struct io_uring_sqe *sqe = worker_sqe(from);
    if (!sqe) {
        uint64_t one = 1;
        ssize_t r = write(dst->wake.efd, &one, sizeof(one));
        (void)r;
        return;
    }
    io_uring_prep_msg_ring(sqe, dst->ring.ring_fd, 0, iotag_make(IOOP_NOP, 0, 0), 0);
    io_uring_sqe_set_data64(sqe, iotag_make(IOOP_NOP, dst->idx + 1, 0));
    io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS); /* only a failure needs our attention */
}

int worker_post(worker_t *from, wgroup_t *g, unsigned to, const xq_msg_t *m)
{
    if (to >= g->n)
        return -EINVAL;
    unsigned src = from ? from->idx : g->n;
    xq_msg_t copy = *m;
    copy.from = src;
    worker_t *dst = &g->w[to];
    int ret = xq_push(&dst->inq[src], &copy);
    if (ret == 0) {
        if (from && from != dst && g->feat.msg_ring)
            ring_peer(from, dst);
        else
            xq_wake_ring(&dst->wake);
    }
    return ret;
}
