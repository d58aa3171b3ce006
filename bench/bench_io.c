/*
 * bench_io: the io layer against plain threads, measured in the same run.
 *
 *  1. echo ping-pong of 400-byte messages over loopback TCP: one io worker vs a blocking
 *     read/write echo thread (the baseline) — round trips/s and latency percentiles;
 *  2. pipelined echo (16 connections, 32 messages in flight each): messages/s, and io_uring_enter
 *     calls per message from the worker's own counter;
 *  3. cross-worker hand-off through xq: one-way throughput and ping-pong round trip between two
 *     workers vs two threads talking over pipes.
 *
 * Usage: bench_io [seconds-per-part, default 1]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/listen.h"
#include "io/timer.h"
#include "io/worker.h"

#define MSG     400
#define LAT_MAX 2000000

static double secs = 1.0;
static uint64_t lat[LAT_MAX];

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = write(fd, (const char *)buf + put, n - put);
        if (r <= 0)
            return -1;
        put += (size_t)r;
    }
    return 0;
}

static int dial(const struct sockaddr_storage *sa)
{
    int fd = socket(sa->ss_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, listen_addr_len(sa)) != 0) {
        perror("connect");
        exit(1);
    }
    return fd;
}

typedef struct {
    double rtt_per_s, p50_us, p99_us, p999_us;
} pp_t;

static pp_t pingpong(const struct sockaddr_storage *sa)
{
    int fd = dial(sa);
    char msg[MSG], back[MSG];
    memset(msg, 'x', sizeof(msg));
    size_t n = 0;
    uint64_t start = timer_now_ns(), end = start + (uint64_t)(secs * 1e9);
    while (n < LAT_MAX) {
        uint64_t t0 = timer_now_ns();
        if (t0 >= end)
            break;
        if (write_full(fd, msg, MSG) || read_full(fd, back, MSG))
            break;
        lat[n++] = timer_now_ns() - t0;
    }
    double el = (double)(timer_now_ns() - start) / 1e9;
    close(fd);
    qsort(lat, n, sizeof(lat[0]), cmp_u64);
    pp_t r = {n / el, lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, lat[n * 999 / 1000] / 1e3};
    return r;
}

enum { PCONN = 16, WINDOW = 32 };

static double pipelined(const struct sockaddr_storage *sa)
{
    int fd[PCONN];
    size_t inflight[PCONN], rbytes[PCONN];
    char msg[MSG * WINDOW], buf[65536];
    memset(msg, 'y', sizeof(msg));
    for (int i = 0; i < PCONN; i++) {
        fd[i] = dial(sa);
        inflight[i] = 0;
        rbytes[i] = 0;
    }
    uint64_t done = 0, start = timer_now_ns(), end = start + (uint64_t)(secs * 1e9);
    for (int i = 0; i < PCONN; i++) {
        write_full(fd[i], msg, MSG * WINDOW);
        inflight[i] = WINDOW;
    }
    while (timer_now_ns() < end) {
        struct pollfd p[PCONN];
        for (int i = 0; i < PCONN; i++)
            p[i] = (struct pollfd){.fd = fd[i], .events = POLLIN};
        if (poll(p, PCONN, 1000) <= 0)
            break;
        for (int i = 0; i < PCONN; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            ssize_t r = read(fd[i], buf, sizeof(buf));
            if (r <= 0)
                continue;
            rbytes[i] += (size_t)r;
            size_t msgs = rbytes[i] / MSG;
            rbytes[i] %= MSG;
            done += msgs;
            inflight[i] -= msgs;
            /* Refill the window. */
            size_t want = WINDOW - inflight[i];
            if (want) {
                write_full(fd[i], msg, MSG * want);
                inflight[i] += want;
            }
        }
    }
    double el = (double)(timer_now_ns() - start) / 1e9;
    for (int i = 0; i < PCONN; i++)
        close(fd[i]);
    return done / el;
}

/* ---- baseline: one blocking echo thread per connection ------------------------------------ */

static void *blocking_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[65536];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r <= 0 || write_full(fd, buf, (size_t)r))
            break;
    }
    close(fd);
    return NULL;
}

static void *blocking_accept(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0)
            break;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t t;
        pthread_create(&t, NULL, blocking_conn, (void *)(intptr_t)fd);
        pthread_detach(t);
    }
    return NULL;
}

/* ---- io worker echo ----------------------------------------------------------------------- */

static void echo_data(conn_t *c, const uint8_t *d, size_t n)
{
    if (conn_send(c, d, n) != 0)
        conn_abort(c);
}
static const conn_ops_t echo_ops = {.on_data = echo_data};

/* ---- xq hand-off -------------------------------------------------------------------------- */

enum { H_FWD = 1, H_PING, H_PONG };
static _Atomic uint64_t h_seen, h_pongs;
static uint64_t h_target;

static void on_msg(worker_t *w, const xq_msg_t *m)
{
    switch (m->type) {
    case H_FWD:
        atomic_store_explicit(&h_seen, atomic_load_explicit(&h_seen, memory_order_relaxed) + 1,
                              memory_order_release);
        break;
    case H_PING: { /* on worker 1: answer worker 0 */
        xq_msg_t r = {.type = H_PONG, .arg = m->arg};
        while (worker_post(w, worker_group(w), 0, &r) != 0)
            ;
        break;
    }
    case H_PONG: { /* on worker 0: next ping until the target count */
        uint64_t n = atomic_load_explicit(&h_pongs, memory_order_relaxed) + 1;
        atomic_store_explicit(&h_pongs, n, memory_order_release);
        if (n < h_target) {
            xq_msg_t p = {.type = H_PING, .arg = n};
            while (worker_post(w, worker_group(w), 1, &p) != 0)
                ;
        }
        break;
    }
    }
}

static void kick_ping(worker_t *w, const xq_msg_t *m);

static void on_msg_dispatch(worker_t *w, const xq_msg_t *m)
{
    if (m->type == 99)
        kick_ping(w, m);
    else
        on_msg(w, m);
}

static void kick_ping(worker_t *w, const xq_msg_t *m)
{
    xq_msg_t p = {.type = H_PING};
    worker_post(w, worker_group(w), 1, &p);
}

static int pipe_a[2], pipe_b[2];
static uint64_t pipe_n;

static void *pipe_sink(void *arg)
{
    uint64_t v[512];
    uint64_t got = 0;
    while (got < pipe_n) {
        ssize_t r = read(pipe_a[0], v, sizeof(v));
        if (r <= 0)
            break;
        got += (uint64_t)r / sizeof(v[0]);
    }
    return NULL;
}

static void *pipe_echo(void *arg)
{
    uint64_t v;
    while (read_full(pipe_a[0], &v, sizeof(v)) == 0)
        if (write_full(pipe_b[1], &v, sizeof(v)))
            break;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        secs = atof(argv[1]);
    if (secs <= 0)
        secs = 1;
    io_features_t f;
    if (io_features_probe(&f) < 0 || !f.buf_ring) {
        fprintf(stderr, "bench_io: io_uring with provided buffer rings unavailable\n");
        return 77;
    }

    /* Baseline echo server. */
    struct sockaddr_storage bsa;
    listen_parse_addr("127.0.0.1:0", &bsa);
    int blfd;
    if (listen_open(&bsa, false, &blfd) != 0)
        return 1;
    listen_local_addr(blfd, &bsa);
    pthread_t bt;
    pthread_create(&bt, NULL, blocking_accept, (void *)(intptr_t)blfd);

    /* One io worker echo server (plus a second worker for the hand-off part). */
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 2, .max_conns = 256, .on_msg = on_msg_dispatch};
    if (wgroup_create(&g, &cfg) != 0)
        return 1;
    struct sockaddr_storage isa;
    listen_parse_addr("127.0.0.1:0", &isa);
    if (wgroup_listen_one(g, 0, &isa, &echo_ops, NULL) != 0 || wgroup_start(g) != 0)
        return 1;
    worker_t *w0 = wgroup_worker(g, 0);

    printf("bench_io: %.1f s per part, %d-byte messages, kernel features: multishot accept %d "
           "recv %d, msg_ring %d\n",
           secs, MSG, f.multishot_accept, f.multishot_recv, f.msg_ring);

    pp_t b = pingpong(&bsa);
    pp_t i = pingpong(&isa);
    printf("echo ping-pong   baseline (blocking thread): %8.0f rt/s  p50 %6.1f us  p99 %6.1f us  "
           "p99.9 %6.1f us\n",
           b.rtt_per_s, b.p50_us, b.p99_us, b.p999_us);
    printf("echo ping-pong   io worker                 : %8.0f rt/s  p50 %6.1f us  p99 %6.1f us  "
           "p99.9 %6.1f us  (x%.2f rt/s vs baseline)\n",
           i.rtt_per_s, i.p50_us, i.p99_us, i.p999_us, i.rtt_per_s / b.rtt_per_s);

    double bp = pipelined(&bsa);
    uint64_t e0 = atomic_load(&w0->stats.enters), c0 = atomic_load(&w0->stats.cqes);
    uint64_t s0 = atomic_load(&w0->stats.sends);
    double ip = pipelined(&isa);
    uint64_t e1 = atomic_load(&w0->stats.enters), c1 = atomic_load(&w0->stats.cqes);
    uint64_t s1 = atomic_load(&w0->stats.sends);
    double msgs = ip * secs;
    printf("echo pipelined   baseline (thread per conn): %8.0f msg/s\n", bp);
    printf("echo pipelined   io worker (1 thread)      : %8.0f msg/s  (x%.2f vs baseline)  "
           "io_uring_enter/msg %.3f  cqes/msg %.2f  sends/msg %.3f\n",
           ip, ip / bp, (double)(e1 - e0) / msgs, (double)(c1 - c0) / msgs,
           (double)(s1 - s0) / msgs);

    /* Hand-off throughput: control thread -> worker 1 (one way), vs pipe between two threads. */
    uint64_t N = (uint64_t)(2000000 * secs);
    atomic_store(&h_seen, 0);
    uint64_t t0 = timer_now_ns();
    for (uint64_t k = 0; k < N; k++) {
        xq_msg_t m = {.type = H_FWD, .arg = k};
        /* Queue full: give the CPU away, as a writer blocked on a full pipe does. */
        while (worker_post(NULL, g, 1, &m) != 0)
            sched_yield();
    }
    while (atomic_load(&h_seen) < N)
        __builtin_ia32_pause();
    double xq_ns = (double)(timer_now_ns() - t0) / (double)N;

    pipe_n = N;
    if (pipe(pipe_a) != 0 || pipe(pipe_b) != 0)
        return 1;
    pthread_t pt;
    pthread_create(&pt, NULL, pipe_sink, NULL);
    t0 = timer_now_ns();
    /* One write per message, as a per-message pipe/eventfd hand-off would do; the reader drains
     * in batches. */
    for (uint64_t k = 0; k < N; k++)
        write_full(pipe_a[1], &k, sizeof(k));
    pthread_join(pt, NULL);
    double pipe_ns = (double)(timer_now_ns() - t0) / (double)N;
    printf("hand-off one-way baseline (pipe write/msg) : %8.1f ns/msg\n", pipe_ns);
    printf("hand-off one-way xq (control -> worker)    : %8.1f ns/msg  (x%.2f faster)\n", xq_ns,
           pipe_ns / xq_ns);

    /* Hand-off round trip between two workers, vs two threads ping-ponging over pipes. */
    h_target = (uint64_t)(100000 * secs);
    atomic_store(&h_pongs, 0);
    uint64_t wk0 = atomic_load(&wgroup_worker(g, 1)->wake.rings);
    t0 = timer_now_ns();
    xq_msg_t kick = {.type = 99};
    worker_post(NULL, g, 0, &kick);
    while (atomic_load(&h_pongs) < h_target)
        usleep(100);
    double xq_rt = (double)(timer_now_ns() - t0) / (double)h_target;
    uint64_t wakes = atomic_load(&wgroup_worker(g, 1)->wake.rings) - wk0;

    pthread_create(&pt, NULL, pipe_echo, NULL);
    uint64_t rtn = h_target / 4;
    t0 = timer_now_ns();
    for (uint64_t k = 0; k < rtn; k++) {
        uint64_t x = k;
        write_full(pipe_a[1], &x, sizeof(x));
        read_full(pipe_b[0], &x, sizeof(x));
    }
    double pipe_rt = (double)(timer_now_ns() - t0) / (double)rtn;
    close(pipe_a[1]);
    pthread_join(pt, NULL);
    printf("hand-off rt      baseline (pipe ping-pong) : %8.1f ns/rt\n", pipe_rt);
    printf("hand-off rt      xq worker0 <-> worker1    : %8.1f ns/rt  (x%.2f faster)  eventfd "
           "wake-ups per rt %.3f\n",
           xq_rt, pipe_rt / xq_rt, (double)wakes / (double)h_target);

    wgroup_destroy(g);
    shutdown(blfd, SHUT_RDWR);
    close(blfd);
    pthread_join(bt, NULL);
    return 0;
}
