/*
 * The worker group end to end on real loopback sockets: echo with 2 workers (many connections,
 * partial sends, peers closing mid-write), stale completions for a reused slot, per-connection
 * timers, outgoing connects with a linked timeout, cross-worker queue ordering and wake-up, and the
 * /metrics endpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "io/listen.h"
#include "io/mhttp.h"
#include "io/metrics.h"
#include "io/timer.h"
#include "io/worker.h"

/* ---- echo handler ------------------------------------------------------------------------- */

typedef struct {
    buf_t pend; /* what conn_send refused, re-sent from on_writable */
} echo_t;

static _Atomic int echo_opened, echo_closed;
static _Atomic uint64_t last_conn_id;

static void echo_flush(conn_t *c, echo_t *e)
{
    while (e->pend.len) {
        size_t n = e->pend.len > 16384 ? 16384 : e->pend.len;
        if (conn_send(c, e->pend.data, n) != 0)
            break;
        buf_consume(&e->pend, n);
    }
}

static void echo_open(conn_t *c)
{
    echo_t *e = calloc(1, sizeof(*e));
    buf_init(&e->pend, 64u << 20);
    conn_set_ctx(c, e);
    /* A small kernel send buffer makes short sends (the partial-send path) common. */
    int sz = 4096;
    setsockopt(conn_fd(c), SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    atomic_store(&last_conn_id, conn_id(c));
    atomic_fetch_add(&echo_opened, 1);
}

static void echo_data(conn_t *c, const uint8_t *d, size_t n)
{
    echo_t *e = conn_ctx(c);
    conn_timer_arm(c, 0, 20);
    if (e->pend.len || conn_send(c, d, n) != 0) {
        /* Backpressure: keep the bytes, stop reading until the queue drains. */
        if (buf_append(&e->pend, d, n) != 0) {
            conn_abort(c);
            return;
        }
        conn_recv_pause(c);
    }
}

static void echo_writable(conn_t *c)
{
    echo_t *e = conn_ctx(c);
    echo_flush(c, e);
    if (!e->pend.len)
        conn_recv_resume(c);
}

static void echo_timer(conn_t *c, unsigned id)
{
    /* Idle for a while: give the buffers back. */
    conn_trim(c);
}

static void echo_close(conn_t *c, int reason)
{
    echo_t *e = conn_ctx(c);
    if (e) {
        buf_free(&e->pend);
        free(e);
    }
    atomic_fetch_add(&echo_closed, 1);
}

static const conn_ops_t echo_ops = {.on_open = echo_open,
                                    .on_data = echo_data,
                                    .on_writable = echo_writable,
                                    .on_timer = echo_timer,
                                    .on_close = echo_close};

/* ---- messages run on a worker thread ------------------------------------------------------ */

enum { MSG_INJECT = 1, MSG_RUN, MSG_HOP };

typedef void (*run_fn_t)(worker_t *w, void *arg);
typedef struct {
    run_fn_t fn;
    void *arg;
} run_t;

static _Atomic uint64_t hop_seen, hop_bad, hop_last;
static uint64_t hop_lat[20000];

static void on_msg(worker_t *w, const xq_msg_t *m)
{
    switch (m->type) {
    case MSG_INJECT: {
        uint64_t *v = m->ptr; /* {user_data, res, flags} */
        worker_inject_cqe(w, v[0], (int)v[1], (uint32_t)v[2]);
        free(v);
        break;
    }
    case MSG_RUN: {
        run_t *r = m->ptr;
        r->fn(w, r->arg);
        free(r);
        break;
    }
    case MSG_HOP:
        if (worker_index(w) == 0) {
            /* Hand it on to worker 1: the cross-worker path. */
            xq_msg_t n = *m;
            while (worker_post(w, worker_group(w), 1, &n) != 0)
                ;
        } else {
            uint64_t seq = (uint64_t)(uintptr_t)m->ptr;
            uint64_t seen = atomic_load(&hop_seen);
            if (seq != seen)
                atomic_fetch_add(&hop_bad, 1);
            if (seen < sizeof(hop_lat) / sizeof(hop_lat[0]))
                hop_lat[seen] = timer_now_ns() - m->arg;
            atomic_store(&hop_seen, seen + 1);
            atomic_store(&hop_last, seq);
        }
        break;
    }
}

static void run_on(wgroup_t *g, unsigned wi, run_fn_t fn, void *arg)
{
    run_t *r = malloc(sizeof(*r));
    r->fn = fn;
    r->arg = arg;
    xq_msg_t m = {.type = MSG_RUN, .ptr = r};
    assert_int_equal(worker_post(NULL, g, wi, &m), 0);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

typedef struct {
    wgroup_t *g;
    struct sockaddr_storage addr;
} srv_t;

static srv_t srv;

static int wait_until(_Atomic int *v, int want, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (atomic_load(v) >= want)
            return 1;
        usleep(1000);
    }
    return atomic_load(v) >= want;
}

static int setup(void **state)
{
    int ret = io_features_probe(NULL);
    if (ret < 0)
        return -1;
    wgroup_config_t cfg = {
        .nworkers = 2, .max_conns = 512, .send_max = 64 * 1024, .on_msg = on_msg};
    if (wgroup_create(&srv.g, &cfg) != 0)
        return -1;
    assert_int_equal(listen_parse_addr("127.0.0.1:0", &srv.addr), 0);
    assert_int_equal(wgroup_listen(srv.g, &srv.addr, &echo_ops, NULL), 0);
    assert_int_not_equal(listen_port(&srv.addr), 0);
    return wgroup_start(srv.g);
}

static int teardown(void **state)
{
    wgroup_destroy(srv.g);
    srv.g = NULL;
    return 0;
}

static int client_connect(const struct sockaddr_storage *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (const struct sockaddr *)sa, listen_addr_len(sa)), 0);
    return fd;
}

static void echo_roundtrip(const struct sockaddr_storage *sa, const char *msg)
{
    int fd = client_connect(sa);
    size_t n = strlen(msg);
    assert_int_equal(write(fd, msg, n), (ssize_t)n);
    char buf[256];
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, sizeof(buf) - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(buf, msg, n);
    close(fd);
}

/* ---- echo with many connections ----------------------------------------------------------- */

enum { NCLIENT = 48 };

typedef struct {
    int fd;
    size_t total, sent, recvd;
    int quitter; /* closes after sending part, never reads everything */
    int done;
    uint32_t seed;
} cl_t;

static uint8_t pat(const cl_t *c, size_t off)
{
    return (uint8_t)((off * 31u + c->seed) ^ (off >> 9));
}

static void test_echo_many(void **state)
{
    static cl_t cl[NCLIENT];
    uint64_t acc0 = atomic_load(&wgroup_worker(srv.g, 0)->stats.accepted);
    uint64_t acc1 = atomic_load(&wgroup_worker(srv.g, 1)->stats.accepted);
    for (int i = 0; i < NCLIENT; i++) {
        cl[i].fd = client_connect(&srv.addr);
        fcntl(cl[i].fd, F_SETFL, O_NONBLOCK);
        cl[i].seed = (uint32_t)i * 2654435761u;
        cl[i].total = 20000 + (size_t)(i * 37231) % 400000;
        cl[i].quitter = i % 8 == 3;
        cl[i].sent = cl[i].recvd = 0;
        cl[i].done = 0;
    }
    int remaining = NCLIENT;
    uint8_t buf[65536];
    for (int iter = 0; remaining > 0 && iter < 200000; iter++) {
        struct pollfd p[NCLIENT];
        for (int i = 0; i < NCLIENT; i++) {
            p[i].fd = cl[i].done ? -1 : cl[i].fd;
            p[i].events = POLLIN | (cl[i].sent < cl[i].total ? POLLOUT : 0);
            p[i].revents = 0;
        }
        int pr = poll(p, NCLIENT, 5000);
        assert_true(pr > 0);
        for (int i = 0; i < NCLIENT; i++) {
            cl_t *c = &cl[i];
            if (c->done)
                continue;
            if ((p[i].revents & POLLOUT) && c->sent < c->total) {
                size_t n = c->total - c->sent;
                size_t chunk = 1 + (c->sent * 7 + (size_t)i) % 9000;
                if (n > chunk)
                    n = chunk;
                for (size_t k = 0; k < n; k++)
                    buf[k] = pat(c, c->sent + k);
                ssize_t w = write(c->fd, buf, n);
                if (w > 0)
                    c->sent += (size_t)w;
                if (c->quitter && c->sent > c->total / 2) {
                    /* Gone mid-write, with echoed bytes unread: the server's sends fail. */
                    close(c->fd);
                    c->done = 1;
                    remaining--;
                    continue;
                }
            }
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = read(c->fd, buf, sizeof(buf));
                if (r <= 0 && !(r < 0 && errno == EAGAIN))
                    fail_msg("client %d: read %zd (%s) after %zu of %zu", i, r, strerror(errno),
                             c->recvd, c->total);
                for (ssize_t k = 0; k < r; k++)
                    if (buf[k] != pat(c, c->recvd + (size_t)k))
                        fail_msg("client %d: byte %zu differs", i, c->recvd + (size_t)k);
                if (r > 0)
                    c->recvd += (size_t)r;
                if (c->recvd == c->total) {
                    close(c->fd);
                    c->done = 1;
                    remaining--;
                }
            }
        }
    }
    assert_int_equal(remaining, 0);
    /* SO_REUSEPORT spread the connections over both workers. */
    assert_true(atomic_load(&wgroup_worker(srv.g, 0)->stats.accepted) > acc0);
    assert_true(atomic_load(&wgroup_worker(srv.g, 1)->stats.accepted) > acc1);
    /* Every server-side connection is closed and released. */
    assert_true(wait_until(&echo_closed, atomic_load(&echo_opened), 5000));
    for (unsigned k = 0; k < 2; k++) {
        const worker_stats_t *st = worker_stats(wgroup_worker(srv.g, k));
        print_message("worker %u: accepted %lu sends %lu partial %lu enters %lu cqes %lu\n", k,
                      (unsigned long)st->accepted, (unsigned long)st->sends,
                      (unsigned long)st->partial_sends, (unsigned long)st->enters,
                      (unsigned long)st->cqes);
    }
    /* And the server still serves. */
    echo_roundtrip(&srv.addr, "still here");
}

/* ---- stale completions -------------------------------------------------------------------- */

static void inject(unsigned wi, uint64_t ud, int res, uint32_t flags)
{
    uint64_t *v = malloc(3 * sizeof(uint64_t));
    v[0] = ud;
    v[1] = (uint64_t)(int64_t)res;
    v[2] = flags;
    xq_msg_t m = {.type = MSG_INJECT, .ptr = v};
    assert_int_equal(worker_post(NULL, srv.g, wi, &m), 0);
}

static uint64_t lk_ids[2];
static int lk_found[2];
static _Atomic int lk_done;

static void do_lookup(worker_t *w, void *arg)
{
    for (int i = 0; i < 2; i++)
        lk_found[i] = conn_lookup(w, lk_ids[i]) != NULL;
    atomic_store(&lk_done, 1);
}

static void test_stale_completion(void **state)
{
    /* The per-connection footprint of the io layer (buffers excluded) stays small. */
    print_message("sizeof(conn_t) = %zu\n", sizeof(conn_t));
    assert_true(sizeof(conn_t) <= 768);
    int opened = atomic_load(&echo_opened);
    int fd = client_connect(&srv.addr);
    assert_true(wait_until(&echo_opened, opened + 1, 2000));
    uint64_t id_old = atomic_load(&last_conn_id);
    unsigned wi = (unsigned)(id_old >> 56);
    uint32_t idx = (uint32_t)id_old, gen = (uint32_t)(id_old >> 32) & CONNTAB_GEN_MASK;
    int closed = atomic_load(&echo_closed);
    close(fd);
    assert_true(wait_until(&echo_closed, closed + 1, 2000));

    /* Reconnect until the same worker hands out the same slot again (free list is LIFO). */
    int fd2 = -1;
    uint64_t id_new = 0;
    for (int tries = 0; tries < 64; tries++) {
        opened = atomic_load(&echo_opened);
        fd2 = client_connect(&srv.addr);
        assert_true(wait_until(&echo_opened, opened + 1, 2000));
        id_new = atomic_load(&last_conn_id);
        if ((id_new >> 56) == wi && (uint32_t)id_new == idx)
            break;
        close(fd2);
        fd2 = -1;
    }
    assert_true(fd2 >= 0);
    assert_int_not_equal((uint32_t)(id_new >> 32) & CONNTAB_GEN_MASK, gen);

    /* By id, the old connection is gone and the new one is found (on its worker's thread). */
    lk_ids[0] = id_old;
    lk_ids[1] = id_new;
    atomic_store(&lk_done, 0);
    run_on(srv.g, wi, do_lookup, NULL);
    assert_true(wait_until(&lk_done, 1, 2000));
    assert_int_equal(lk_found[0], 0);
    assert_int_equal(lk_found[1], 1);

    uint64_t stale0 = atomic_load(&wgroup_worker(srv.g, wi)->stats.stale);
    /* Completions of the old connection arrive late: an error on its send and a recv EOF. Were they
     * taken for the new connection, it would be closed. */
    inject(wi, iotag_make(IOOP_SEND, idx, gen), -EPIPE, 0);
    inject(wi, iotag_make(IOOP_RECV, idx, gen), 0, 0);
    inject(wi, iotag_make(IOOP_CONNECT, idx, gen), -ECONNREFUSED, 0);
    /* A tag with an unknown op is ignored as well. */
    inject(wi, iotag_make(200, idx, gen), 0, 0);
    for (int i = 0; i < 2000 && atomic_load(&wgroup_worker(srv.g, wi)->stats.stale) < stale0 + 4;
         i++)
        usleep(1000);
    assert_int_equal(atomic_load(&wgroup_worker(srv.g, wi)->stats.stale), stale0 + 4);

    /* The new connection on the reused slot is unaffected. */
    const char *msg = "reused slot";
    assert_int_equal(write(fd2, msg, strlen(msg)), (ssize_t)strlen(msg));
    char buf[64];
    size_t got = 0;
    while (got < strlen(msg)) {
        ssize_t r = read(fd2, buf + got, sizeof(buf) - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(buf, msg, strlen(msg));
    close(fd2);
}

/* ---- timers --------------------------------------------------------------------------------- */

static _Atomic int tm_n, tm_closed;
static int tm_order[8];
static uint64_t tm_at[8], tm_start;
static const uint64_t tm_delay[CONN_TIMERS] = {60, 20, 100, 40};

static void tm_open(conn_t *c)
{
    tm_start = timer_now_ns();
    for (unsigned i = 0; i < CONN_TIMERS; i++)
        assert_int_equal(conn_timer_arm(c, i, tm_delay[i]), 0);
    /* Re-arming replaces: timer 2 was 100 ms, now 80. */
    assert_int_equal(conn_timer_arm(c, 2, 80), 0);
    assert_int_equal(conn_timer_arm(c, CONN_TIMERS, 1), -EINVAL);
}

static void tm_timer(conn_t *c, unsigned id)
{
    int n = atomic_load(&tm_n);
    tm_order[n] = (int)id;
    tm_at[n] = timer_now_ns() - tm_start;
    atomic_store(&tm_n, n + 1);
    if (n + 1 == CONN_TIMERS)
        conn_close(c);
}

static void tm_close(conn_t *c, int reason)
{
    atomic_fetch_add(&tm_closed, 1);
}

static const conn_ops_t tm_ops = {.on_open = tm_open, .on_timer = tm_timer, .on_close = tm_close};

static void test_timers(void **state)
{
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 1, .max_conns = 16};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(wgroup_listen(g, &sa, &tm_ops, NULL), 0);
    assert_int_equal(wgroup_start(g), 0);
    int fd = client_connect(&sa);
    assert_true(wait_until(&tm_closed, 1, 5000));
    assert_int_equal(atomic_load(&tm_n), CONN_TIMERS);
    int want[CONN_TIMERS] = {1, 3, 0, 2};
    uint64_t wms[CONN_TIMERS] = {20, 40, 60, 80};
    for (int i = 0; i < CONN_TIMERS; i++) {
        assert_int_equal(tm_order[i], want[i]);
        /* Never early; late only within a generous bound (a loaded CI box). */
        assert_true(tm_at[i] >= wms[i] * 1000000u);
        assert_true(tm_at[i] < (wms[i] + 1000) * 1000000u);
    }
    /* The server closed the connection: the client reads EOF. */
    char b;
    assert_int_equal(read(fd, &b, 1), 0);
    close(fd);
    wgroup_destroy(g);
}

/* ---- outgoing connections ----------------------------------------------------------------- */

static _Atomic int oc_open, oc_closed, oc_reason, oc_echoed;

static _Atomic int oc_send_early, oc_early_ret = -1;

static void oc_on_open(conn_t *c)
{
    atomic_store(&oc_open, 1);
    if (!atomic_load(&oc_send_early))
        conn_send(c, "ping", 4);
}
static void oc_on_data(conn_t *c, const uint8_t *d, size_t n)
{
    if (n == 4 && memcmp(d, "ping", 4) == 0)
        atomic_store(&oc_echoed, 1);
    conn_close(c);
}
static void oc_on_close(conn_t *c, int reason)
{
    atomic_store(&oc_reason, reason);
    atomic_fetch_add(&oc_closed, 1);
}
static const conn_ops_t oc_ops = {
    .on_open = oc_on_open, .on_data = oc_on_data, .on_close = oc_on_close};

static struct sockaddr_storage oc_target;
static uint64_t oc_timeout_ms;
static _Atomic int oc_ret;

static void do_connect(worker_t *w, void *arg)
{
    conn_t *c = NULL;
    atomic_store(&oc_ret, io_connect(w, (struct sockaddr *)&oc_target, listen_addr_len(&oc_target),
                                     oc_timeout_ms, &oc_ops, NULL, &c));
    /* Bytes queued while connecting leave once the connection is open. */
    if (c && atomic_load(&oc_send_early))
        atomic_store(&oc_early_ret, conn_send(c, "ping", 4));
}

static void test_connect_echo(void **state)
{
    atomic_store(&oc_open, 0);
    atomic_store(&oc_closed, 0);
    oc_target = srv.addr;
    oc_timeout_ms = 2000;
    run_on(srv.g, 1, do_connect, NULL);
    assert_true(wait_until(&oc_closed, 1, 5000));
    assert_int_equal(atomic_load(&oc_ret), 0);
    assert_int_equal(atomic_load(&oc_open), 1);
    assert_int_equal(atomic_load(&oc_echoed), 1);
    assert_int_equal(atomic_load(&oc_reason), CONN_CLOSED_LOCAL);

    atomic_store(&oc_open, 0);
    atomic_store(&oc_closed, 0);
    atomic_store(&oc_echoed, 0);
    atomic_store(&oc_send_early, 1);
    run_on(srv.g, 0, do_connect, NULL);
    assert_true(wait_until(&oc_closed, 1, 5000));
    atomic_store(&oc_send_early, 0);
    assert_int_equal(atomic_load(&oc_early_ret), 0);
    assert_int_equal(atomic_load(&oc_open), 1);
    assert_int_equal(atomic_load(&oc_echoed), 1);
}

static void test_connect_refused_and_timeout(void **state)
{
    /* Refused: a port nobody listens on. */
    int tmp = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(bind(tmp, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)), 0);
    listen_local_addr(tmp, &sa);
    close(tmp);
    atomic_store(&oc_open, 0);
    atomic_store(&oc_closed, 0);
    oc_target = sa;
    oc_timeout_ms = 2000;
    run_on(srv.g, 0, do_connect, NULL);
    assert_true(wait_until(&oc_closed, 1, 5000));
    assert_int_equal(atomic_load(&oc_open), 0);
    assert_int_equal(atomic_load(&oc_reason), -ECONNREFUSED);

    /* Timeout: a listener whose accept queue is full drops further SYNs, so the connect hangs
     * until the linked timeout cancels it. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(listen(lfd, 0), 0);
    listen_local_addr(lfd, &sa);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&sa, sizeof(struct sockaddr_in));
    }
    usleep(100000);
    atomic_store(&oc_closed, 0);
    oc_target = sa;
    oc_timeout_ms = 150;
    uint64_t t0 = timer_now_ns();
    run_on(srv.g, 0, do_connect, NULL);
    assert_true(wait_until(&oc_closed, 1, 5000));
    uint64_t took = timer_now_ns() - t0;
    assert_int_equal(atomic_load(&oc_open), 0);
    assert_int_equal(atomic_load(&oc_reason), -ETIMEDOUT);
    assert_true(took >= 140u * 1000000u && took < 3000u * 1000000u);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

/* ---- cross-worker queue ------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_xq_handoff(void **state)
{
    enum { N = 20000 };
    atomic_store(&hop_seen, 0);
    atomic_store(&hop_bad, 0);
    for (uint64_t i = 0; i < N; i++) {
        xq_msg_t m = {.type = MSG_HOP, .ptr = (void *)(uintptr_t)i, .arg = timer_now_ns()};
        while (worker_post(NULL, srv.g, 0, &m) != 0)
            usleep(10);
        /* Now and then let both workers fall asleep so the eventfd wake-up is exercised. */
        if (i % 4000 == 0) {
            for (int k = 0; k < 2000 && atomic_load(&hop_seen) < i + 1; k++)
                usleep(1000);
            usleep(20000);
        }
    }
    for (int k = 0; k < 5000 && atomic_load(&hop_seen) < N; k++)
        usleep(1000);
    assert_int_equal(atomic_load(&hop_seen), N);
    assert_int_equal(atomic_load(&hop_bad), 0);
    assert_int_equal(atomic_load(&hop_last), N - 1);
    qsort(hop_lat, N, sizeof(hop_lat[0]), cmp_u64);
    print_message("control -> w0 -> w1 hand-off latency: p50 %.1f us, p99 %.1f us\n",
                  hop_lat[N / 2] / 1000.0, hop_lat[N * 99 / 100] / 1000.0);
    assert_true(hop_lat[N / 2] < 1000000000ull);
    /* Wake-ups happened (workers did sleep) but far fewer than messages. */
    uint64_t rings = atomic_load(&wgroup_worker(srv.g, 1)->wake.rings);
    assert_true(rings >= 1 && rings < N);
}

/* Messages still queued when the group is destroyed reach on_drop, so what they own is freed
   (ASan reports a leak otherwise) and nothing is handed to a stopped worker. */
static _Atomic int dropped;
static void drop_count(const xq_msg_t *m)
{
    free(m->ptr);
    atomic_fetch_add(&dropped, 1);
}

static void test_drop_on_destroy(void **state)
{
    (void)state;
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 2, .max_conns = 16, .on_drop = drop_count};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    assert_int_equal(wgroup_start(g), 0);
    wgroup_stop(g);
    atomic_store(&dropped, 0);
    for (unsigned i = 0; i < 5; i++) {
        xq_msg_t m = {.type = 7, .ptr = malloc(64)};
        assert_int_equal(worker_post(NULL, g, i % 2, &m), 0);
    }
    assert_int_equal(atomic_load(&dropped), 0);
    wgroup_destroy(g);
    assert_int_equal(atomic_load(&dropped), 5);
}

/* ---- metrics endpoint --------------------------------------------------------------------- */

static void http_get(const struct sockaddr_storage *sa, const char *req, char *out, size_t outlen)
{
    int fd = client_connect(sa);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, out + got, outlen - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    out[got] = '\0';
    close(fd);
}

static void test_metrics_http(void **state)
{
    metrics_t *m;
    wgroup_t *g;
    assert_int_equal(metrics_create(&m, 2, 512), 0);
    int id = metrics_register(m, METRIC_COUNTER, "fedgate_test_total", "kind=\"x\"", "test");
    assert_true(id >= 0);
    metrics_add(m, 0, id, 41);
    metrics_add(m, 1, id, 1);
    /* Many series and a small send bound: the response leaves in pieces. */
    for (int i = 0; i < 300; i++) {
        char lab[64];
        snprintf(lab, sizeof(lab), "partner=\"p%d.example\"", i);
        assert_true(metrics_register(m, METRIC_GAUGE, "fedgate_partner_streams", lab, "streams") >=
                    0);
    }
    wgroup_config_t cfg = {.nworkers = 2, .max_conns = 16, .send_max = 4096};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    assert_int_equal(metrics_add_collector(m, wgroup_metrics_collect, g), 0);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(mhttp_listen(g, 1, &sa, m), 0);
    assert_int_equal(wgroup_start(g), 0);
    static char out[1 << 16];
    http_get(&sa, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", out, sizeof(out));
    assert_non_null(strstr(out, "HTTP/1.0 200 OK\r\n"));
    assert_non_null(strstr(out, "fedgate_test_total{kind=\"x\"} 42\n"));
    assert_non_null(strstr(out, "# TYPE fedgate_io_accepted counter\nfedgate_io_accepted 1\n"));
    assert_non_null(strstr(out, "fedgate_partner_streams{partner=\"p299.example\"} 0\n"));
    assert_true(strlen(out) > 3 * 4096);
    http_get(&sa, "GET /nope HTTP/1.0\r\n\r\n", out, sizeof(out));
    assert_non_null(strstr(out, "404"));
    /* Only worker 1 listens. */
    assert_int_equal(atomic_load(&wgroup_worker(g, 0)->stats.accepted), 0);
    assert_int_equal(atomic_load(&wgroup_worker(g, 1)->stats.accepted), 2);
    wgroup_destroy(g);
    metrics_destroy(m);
}

/* ---- notifications ------------------------------------------------------------------------ */

static _Atomic int notified[2];
static _Atomic uint64_t notified_at[2];

static void on_notify(worker_t *w)
{
    unsigned i = worker_index(w);
    atomic_store(&notified_at[i], timer_now_ns());
    atomic_fetch_add(&notified[i], 1);
}

static void *notify_thread(void *arg)
{
    wgroup_notify(arg);
    return NULL;
}

static void test_notify_wakes_idle_workers(void **state)
{
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 2, .max_conns = 8, .on_notify = on_notify};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    assert_int_equal(wgroup_start(g), 0);
    usleep(50000); /* both workers are asleep in the kernel by now */
    uint64_t t0 = timer_now_ns();
    /* Two notifying threads at once (the admin notification and a timer, say). */
    pthread_t a, b;
    pthread_create(&a, NULL, notify_thread, g);
    pthread_create(&b, NULL, notify_thread, g);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_true(wait_until(&notified[0], 1, 1000));
    assert_true(wait_until(&notified[1], 1, 1000));
    for (int i = 0; i < 2; i++) {
        uint64_t d = atomic_load(&notified_at[i]) - t0;
        print_message("worker %d notified after %.1f us (%d calls)\n", i, d / 1000.0,
                      atomic_load(&notified[i]));
        /* Coalesced: never more calls than notifications. */
        assert_true(atomic_load(&notified[i]) <= 2);
    }
    wgroup_destroy(g);
}

/* A worker wakes a sleeping worker with IORING_OP_MSG_RING; when that fails (its completion, tagged
   IOOP_NOP with the target's index + 1, carries an error) the target's eventfd is rung instead. */
static void test_msg_ring_failure_rings_eventfd(void **state)
{
    (void)state;
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 2, .max_conns = 8};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    assert_int_equal(wgroup_start(g), 0);
    worker_t *w1 = wgroup_worker(g, 1);
    for (int k = 0; k < 2000 && !atomic_load(&w1->wake.sleeping); k++)
        usleep(1000);
    assert_true(atomic_load(&w1->wake.sleeping));
    uint64_t c0 = atomic_load(&w1->stats.cqes);
    usleep(50000);
    assert_true(atomic_load(&w1->stats.cqes) == c0); /* idle: nothing else wakes it */
    worker_inject_cqe(wgroup_worker(g, 0), iotag_make(IOOP_NOP, 2, 0), -EBADF, 0);
    for (int k = 0; k < 2000 && atomic_load(&w1->stats.cqes) == c0; k++)
        usleep(1000);
    assert_true(atomic_load(&w1->stats.cqes) > c0); /* its eventfd read completed */
    /* A failed wake-up for a worker that does not exist is ignored. */
    worker_inject_cqe(wgroup_worker(g, 0), iotag_make(IOOP_NOP, 3, 0), -EBADF, 0);
    wgroup_destroy(g);
}

/* ---- quiesce ------------------------------------------------------------------------------ */

static void test_quiesce_stops_accepting(void **state)
{
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 2, .max_conns = 8};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(wgroup_listen(g, &sa, &echo_ops, NULL), 0);
    assert_int_equal(wgroup_start(g), 0);
    int open_fd = client_connect(&sa);
    wgroup_quiesce(g);
    /* New connections are refused once both workers closed their sockets. */
    int refused = 0;
    for (int i = 0; i < 200 && !refused; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        refused =
            connect(fd, (struct sockaddr *)&sa, listen_addr_len(&sa)) != 0 && errno == ECONNREFUSED;
        close(fd);
        if (!refused)
            usleep(5000);
    }
    assert_true(refused);
    /* The open connection carries on. */
    assert_int_equal(write(open_fd, "abc", 3), 3);
    char b[3];
    size_t got = 0;
    while (got < 3) {
        ssize_t r = read(open_fd, b + got, 3 - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(b, "abc", 3);
    close(open_fd);
    wgroup_destroy(g);
}

/* ---- balanced listener ------------------------------------------------------------------- */

/* Whichever worker's socket the kernel picks, the connections are dealt out in turn, and each
 * served one works (echo) on the worker it was handed to. */
static void test_balanced_listener(void **state)
{
    (void)state;
    enum { NW = 3, NC = 12 };
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = NW, .max_conns = 64};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(wgroup_listen_balanced(g, &sa, &echo_ops, NULL), 0);
    assert_int_equal(wgroup_start(g), 0);
    uint64_t acc0[NW];
    for (unsigned i = 0; i < NW; i++)
        acc0[i] = atomic_load(&wgroup_worker(g, i)->stats.accepted);
    int fds[NC];
    for (int i = 0; i < NC; i++) {
        fds[i] = client_connect(&sa);
        char m[16];
        int n = snprintf(m, sizeof(m), "hello %d", i);
        assert_int_equal(write(fds[i], m, (size_t)n), n);
        char b[16];
        size_t got = 0;
        while (got < (size_t)n) {
            ssize_t r = read(fds[i], b + got, sizeof(b) - got);
            assert_true(r > 0);
            got += (size_t)r;
        }
        assert_memory_equal(b, m, (size_t)n);
    }
    for (unsigned i = 0; i < NW; i++)
        assert_int_equal(atomic_load(&wgroup_worker(g, i)->stats.accepted) - acc0[i], NC / NW);
    for (int i = 0; i < NC; i++)
        close(fds[i]);
    /* A hand-over still in a queue when the group goes is closed, not leaked (ASan/valgrind). */
    wgroup_destroy(g);
}

/* ---- single-shot fallback ---------------------------------------------------------------- */

/* The paths used on kernels without multishot accept/recv: forced here on any kernel. */
static void test_single_shot_fallback(void **state)
{
    wgroup_t *g;
    wgroup_config_t cfg = {
        .nworkers = 1, .max_conns = 16, .no_multishot = true, .rbuf_count = 8, .rbuf_size = 1024};
    assert_int_equal(wgroup_create(&g, &cfg), 0);
    assert_false(wgroup_features(g)->multishot_recv);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(wgroup_listen(g, &sa, &echo_ops, NULL), 0);
    assert_int_equal(wgroup_start(g), 0);
    for (int i = 0; i < 5; i++)
        echo_roundtrip(&sa, "single shot");
    /* More bytes than the 8 x 1 KiB buffer ring holds: buffers are recycled as they go. */
    int fd = client_connect(&sa);
    enum { BIG = 200000 };
    static uint8_t out[BIG], in[BIG];
    for (size_t i = 0; i < BIG; i++)
        out[i] = (uint8_t)(i * 7 + 3);
    size_t sent = 0, got = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    while (got < BIG) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (sent < BIG ? POLLOUT : 0)};
        assert_true(poll(&p, 1, 5000) > 0);
        if ((p.revents & POLLOUT) && sent < BIG) {
            ssize_t w = write(fd, out + sent, BIG - sent > 4096 ? 4096 : BIG - sent);
            if (w > 0)
                sent += (size_t)w;
        }
        if (p.revents & POLLIN) {
            ssize_t r = read(fd, in + got, BIG - got);
            assert_true(r > 0 || (r < 0 && errno == EAGAIN));
            if (r > 0)
                got += (size_t)r;
        }
    }
    assert_memory_equal(in, out, BIG);
    close(fd);
    assert_int_equal(atomic_load(&wgroup_worker(g, 0)->stats.accepted), 6);
    wgroup_destroy(g);
}

int main(void)
{
    if (io_features_probe(NULL) < 0) {
        fprintf(stderr, "io_uring unavailable: skipping\n");
        return 77;
    }
    io_features_t f;
    io_features_probe(&f);
    if (!f.buf_ring) {
        fprintf(stderr, "kernel lacks provided buffer rings: skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_many),    cmocka_unit_test(test_stale_completion),
        cmocka_unit_test(test_connect_echo), cmocka_unit_test(test_connect_refused_and_timeout),
        cmocka_unit_test(test_xq_handoff),   cmocka_unit_test(test_drop_on_destroy),
    };
    const struct CMUnitTest solo[] = {
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_metrics_http),
        cmocka_unit_test(test_single_shot_fallback),
        cmocka_unit_test(test_notify_wakes_idle_workers),
        cmocka_unit_test(test_msg_ring_failure_rings_eventfd),
        cmocka_unit_test(test_quiesce_stops_accepting),
        cmocka_unit_test(test_balanced_listener),
    };
    int r = cmocka_run_group_tests(tests, setup, teardown);
    return r | cmocka_run_group_tests(solo, NULL, NULL);
}
