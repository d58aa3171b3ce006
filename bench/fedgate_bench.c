/*
 * fedgate-bench: load generator for a running fedgate. Opens N s2s streams from M partner domains
 * (TLS + SASL EXTERNAL with a client certificate per partner domain), sends ~400-byte chat
 * messages to a hosted domain whose route is a component, and is that component too (an XEP-0114
 * sink that timestamps arrivals). Prints stanzas/s, gateway CPU per stanza and memory per stream
 * from /proc/<gateway pid>, and end-to-end latency percentiles; a 1-stream baseline phase runs
 * first in the same process so every number has a same-run reference. With --metrics-port, a
 * thread also scrapes the gateway's /metrics every 200 ms in both phases and reports how long a
 * scrape takes under load against the baseline. With --sink-conns N the component opens N
 * connections for its domain (each with its own stream id and handshake), so a gateway that spreads
 * component connections over its workers can deliver each stanza on the worker that received it;
 * one sink thread polls them all. See docs/bench.md.
 *
 * Ownership: every connection, WOLFSSL object and buffer is owned by the bench_conn_t / global
 * state below and freed at exit; threads only borrow them. The sink's connections (g_sink) are
 * closed by the sink thread when the gateway closes them, otherwise by the process exit, since
 * that detached thread reads them to the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "core/component.h"

#define BENCH_MAX_STREAMS  8000
#define BENCH_MAX_PARTNERS 256
#define BENCH_RBUF         16384
#define BENCH_HIST_US      200000 /* 1 µs buckets up to 200 ms; above goes to the last bucket */
#define BENCH_PHASES       2
#define BENCH_SCRAPE_MS    200  /* /metrics scrape interval */
#define BENCH_SCRAPES      8192 /* scrapes kept per phase (27 min at 200 ms) */

/* --sink-conns: one connection per gateway worker is the intended use. Each has its own buffer;
   only the pages a connection touches cost memory. */
#define BENCH_MAX_SINK_CONNS 64
#define BENCH_SINK_RBUF      (1 << 18)

typedef struct {
    int fd;
    WOLFSSL *ssl;
    int partner;
    char rbuf[BENCH_RBUF];
    size_t rlen;
} bench_conn_t;

/* One component connection of the sink and the bytes not yet scanned for a marker. */
typedef struct {
    int fd;       /* -1: not opened, or closed by the gateway */
    WOLFSSL *ssl; /* --component-tls */
    uint64_t kts; /* TLS: kernel arrival time of the newest segment wolfSSL has read */
    size_t len;
    char buf[BENCH_SINK_RBUF];
} sink_conn_t;

typedef struct {
    const char *host;
    int port;
    int direct_tls;
    int component_port;
    const char *secret_file;
    const char *domain;
    const char *partner_fmt;
    const char *cert_dir;
    const char *ca;
    int partners;
    int streams;
    double rate;
    double duration;
    double baseline_secs;
    double baseline_rate;
    int gateway_pid;
    int threads;
    int open_threads;
    int size;
    double hold_secs;
    int metrics_port;
    int sink_stall_ms;
    int sink_conns;
    int tick_us;       /* a paced sender wakes at most this often and sends what fell due */
    int sink_tick_us;  /* 0: the sink waits in poll(); else it reads this often (see sink_thread) */
    int component_tls; /* the sink's connections use TLS from the first byte */
} bench_opts_t;

static bench_opts_t g_opt = {
    .host = "127.0.0.1",
    .port = 5269,
    .component_port = 5347,
    .domain = "gw.bench",
    .partner_fmt = "p%d.bench",
    .partners = 1,
    .streams = 1,
    .duration = 10,
    .baseline_secs = 3,
    .baseline_rate = 1000,
    .threads = 1,
    .open_threads = 8,
    .size = 400,
    .sink_conns = 1,
    .tick_us = 100,
    .sink_tick_us = 100,
};

static WOLFSSL_CTX *g_ctx[BENCH_MAX_PARTNERS];
static bench_conn_t *g_conns;
static atomic_int g_next_open;
static atomic_int g_open_failed;

/* Phase state shared between the senders, the sink and the main thread. */
static atomic_int g_phase = -1; /* phase senders are sending in; -1: stopped */
static atomic_int g_nstreams;   /* streams the senders use in this phase */
static double g_phase_rate;     /* stanzas/s for the whole phase; 0: full speed */
static atomic_uint_fast64_t g_sent[BENCH_PHASES];
static atomic_uint_fast64_t g_recv[BENCH_PHASES];
static atomic_uint_fast64_t g_last_arrival_ns[BENCH_PHASES];
static atomic_uint_fast64_t g_send_errors;
static uint32_t g_hist[BENCH_PHASES][BENCH_HIST_US + 1];
/* The same from the kernel's arrival time at the sink socket (SO_TIMESTAMPNS): without the time the
   sink thread waited for a core, which is the generator's share of the machine, not the gateway's.
 */
static uint32_t g_hist_k[BENCH_PHASES][BENCH_HIST_US + 1];
/* The component sink's connections: opened by main before the sink thread starts, then read and
   closed by that thread only. Static, not freed: the detached sink thread reads them until the
   process exits. */
static sink_conn_t g_sink[BENCH_MAX_SINK_CONNS];
static char g_secret[256];
static size_t g_secret_len;
/* /metrics scrapes: written by the scrape thread only, read after it is joined. */
static uint32_t g_scrape_us[BENCH_PHASES][BENCH_SCRAPES];
static int g_nscrape[BENCH_PHASES], g_scrape_failed[BENCH_PHASES];
static size_t g_scrape_bytes;
static atomic_int g_scrape_stop;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
                          .tv_nsec = (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

/* Gateway CPU (utime + stime) in microseconds; -1 without a pid. */
static int64_t gw_cpu_us(void)
{
    char path[64], buf[2048];
    if (g_opt.gateway_pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", g_opt.gateway_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the command name, which may hold spaces: start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (int64_t)((ut + st) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK));
}

/* Gateway VmRSS in KiB; -1 without a pid. */
static long gw_rss_kib(void)
{
    char path[64], line[256];
    long kib = -1;
    if (g_opt.gateway_pid <= 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/status", g_opt.gateway_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int tcp_connect(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    struct timeval tv = {.tv_sec = 15};
    if (inet_pton(AF_INET, g_opt.host, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int conn_write(bench_conn_t *c, const char *p, size_t n)
{
    if (c->ssl) {
        int r = wolfSSL_write(c->ssl, p, (int)n);
        return r == (int)n ? 0 : -EIO;
    }
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads until one of the needles appears in what was read since the last call (blocking, with
   the socket's 15 s timeout); keeps nothing after it because the handshake is lock-step. */
static int conn_read_until(bench_conn_t *c, const char *n1, const char *n2)
{
    c->rlen = 0;
    for (;;) {
        if (c->rlen + 1 >= sizeof c->rbuf)
            return -EMSGSIZE;
        int r;
        if (c->ssl)
            r = wolfSSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof c->rbuf - 1 - c->rlen));
        else
            r = (int)recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - 1 - c->rlen, 0);
        if (r <= 0)
            return -EIO;
        c->rlen += (size_t)r;
        c->rbuf[c->rlen] = 0;
        if (strstr(c->rbuf, "<stream:error") || strstr(c->rbuf, "<failure"))
            return -EPROTO;
        if (strstr(c->rbuf, n1) || (n2 && strstr(c->rbuf, n2)))
            return 0;
    }
}

static void b64(const char *in, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), i = 0, o = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v =
            (uint32_t)(uint8_t)in[i] << 16 | (uint32_t)(uint8_t)in[i + 1] << 8 | (uint8_t)in[i + 2];
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63];
        out[o++] = t[v >> 6 & 63], out[o++] = t[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)(uint8_t)in[i] << 16;
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63], out[o++] = '=', out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)(uint8_t)in[i] << 16 | (uint32_t)(uint8_t)in[i + 1] << 8;
        out[o++] = t[v >> 18 & 63], out[o++] = t[v >> 12 & 63], out[o++] = t[v >> 6 & 63];
        out[o++] = '=';
    }
    out[o] = 0;
}

static void partner_name(int i, char *out, size_t cap)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    snprintf(out, cap, g_opt.partner_fmt, i);
#pragma GCC diagnostic pop
}

/* One s2s stream: (STARTTLS or direct TLS) + SASL EXTERNAL + restarted stream. */
static int conn_open(bench_conn_t *c, int partner)
{
    char from[128], hdr[512], auth[512], authz[200];
    int rc;
    partner_name(partner, from, sizeof from);
    snprintf(hdr, sizeof hdr,
             "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
             "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "
             "from='%s' to='%s' version='1.0'>",
             from, g_opt.domain);
    c->partner = partner;
    c->fd = tcp_connect(g_opt.port);
    if (c->fd < 0)
        return c->fd;
    if (!g_opt.direct_tls) {
        if ((rc = conn_write(c, hdr, strlen(hdr))) ||
            (rc = conn_read_until(c, "</stream:features>", "<stream:features/>")))
            return rc;
        static const char st[] = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
        if ((rc = conn_write(c, st, sizeof st - 1)) || (rc = conn_read_until(c, "<proceed", NULL)))
            return rc;
    }
    c->ssl = wolfSSL_new(g_ctx[partner]);
    if (!c->ssl)
        return -ENOMEM;
    wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, g_opt.domain,
                   (unsigned short)strlen(g_opt.domain));
    if (g_opt.direct_tls) {
        char alpn[] = "xmpp-server";
        wolfSSL_UseALPN(c->ssl, alpn, sizeof alpn - 1, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    }
    wolfSSL_set_fd(c->ssl, c->fd);
    if (wolfSSL_connect(c->ssl) != WOLFSSL_SUCCESS)
        return -EPROTO;
    b64(from, authz);
    snprintf(auth, sizeof auth,
             "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>%s</auth>",
             authz);
    if ((rc = conn_write(c, hdr, strlen(hdr))) ||
        (rc = conn_read_until(c, "</stream:features>", "<stream:features/>")) ||
        (rc = conn_write(c, auth, strlen(auth))) || (rc = conn_read_until(c, "<success", NULL)) ||
        (rc = conn_write(c, hdr, strlen(hdr))) ||
        (rc = conn_read_until(c, "</stream:features>", "<stream:features/>")))
        return rc;
    /* From here the senders use it non-blocking and only drain what the gateway sends. */
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    wolfSSL_set_using_nonblock(c->ssl, 1);
    return 0;
}

static void conn_free(bench_conn_t *c)
{
    if (c->ssl)
        wolfSSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

typedef struct {
    int lo, hi;
} open_range_t;

static void *open_thread(void *arg)
{
    open_range_t *r = arg;
    for (;;) {
        int i = atomic_fetch_add(&g_next_open, 1);
        if (i >= r->hi)
            break;
        int rc = conn_open(&g_conns[i], i % g_opt.partners);
        if (rc) {
            if (atomic_fetch_add(&g_open_failed, 1) < 5) {
                g_conns[i].rbuf[g_conns[i].rlen < BENCH_RBUF ? g_conns[i].rlen : 0] = 0;
                fprintf(stderr, "fedgate-bench: stream %d failed (%s): %.300s\n", i,
                        strerror(rc < 0 ? -rc : EIO), g_conns[i].rbuf);
            }
            conn_free(&g_conns[i]);
        }
    }
    return NULL;
}

/* Opens streams [lo, hi) with open_threads threads; returns the number that failed. */
static int open_streams(int lo, int hi)
{
    pthread_t th[64];
    open_range_t r = {lo, hi};
    int n = g_opt.open_threads < 64 ? g_opt.open_threads : 64;
    atomic_store(&g_next_open, lo);
    atomic_store(&g_open_failed, 0);
    for (int i = 0; i < n; i++)
        pthread_create(&th[i], NULL, open_thread, &r);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    return atomic_load(&g_open_failed);
}

/* The stanza: a chat message with a body and three namespaced children, padded to --size bytes
   through the body. The id carries the phase and the send time (CLOCK_MONOTONIC ns, hex) for the
   sink; "fgb" never occurs elsewhere in the stanza. Returns the length. */
static size_t stanza_build(char *out, size_t cap, int partner, int phase, uint64_t ts)
{
    char from[128];
    partner_name(partner, from, sizeof from);
    static const char kids[] = "<active xmlns='http://jabber.org/protocol/chatstates'/>"
                               "<request xmlns='urn:xmpp:receipts'/>"
                               "<markable xmlns='urn:xmpp:chat-markers:0'/></message>";
    int n =
        snprintf(out, cap,
                 "<message type='chat' from='alice@%s' to='bob@%s' id='fgb%d%016" PRIx64 "'><body>",
                 from, g_opt.domain, phase, ts);
    size_t len = (size_t)n;
    size_t want = (size_t)g_opt.size;
    size_t fixed = len + strlen("</body>") + sizeof kids - 1;
    size_t pad = want > fixed + 8 ? want - fixed : 8;
    if (len + pad + 7 + sizeof kids >= cap)
        pad = 8;
    memset(out + len, 'x', pad);
    len += pad;
    memcpy(out + len, "</body>", 7);
    len += 7;
    memcpy(out + len, kids, sizeof kids - 1);
    return len + sizeof kids - 1;
}

/* Discards whatever the gateway sent on this stream; reports a stream error once. */
static void conn_drain(bench_conn_t *c)
{
    char buf[4096];
    for (;;) {
        int r = wolfSSL_read(c->ssl, buf, (int)sizeof buf - 1);
        if (r <= 0)
            return;
        buf[r] = 0;
        if (strstr(buf, "<stream:error") || strstr(buf, "type='error'") ||
            strstr(buf, "type=\"error\""))
            if (atomic_fetch_add(&g_send_errors, 1) < 3)
                fprintf(stderr, "fedgate-bench: gateway sent: %.300s\n", buf);
    }
}

/* Writes one stanza on a non-blocking stream, waiting for room (a retry must repeat the same
   buffer, so it stays on this stream until it went out). */
static int conn_send_stanza(bench_conn_t *c, const char *p, size_t n)
{
    for (;;) {
        int r = wolfSSL_write(c->ssl, p, (int)n);
        if (r == (int)n)
            return 0;
        int e = wolfSSL_get_error(c->ssl, r);
        if (e != WOLFSSL_ERROR_WANT_WRITE && e != WOLFSSL_ERROR_WANT_READ)
            return -EIO;
        if (atomic_load(&g_phase) < 0)
            return -ECANCELED;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT | POLLIN};
        poll(&pfd, 1, 100);
        if (pfd.revents & POLLIN)
            conn_drain(c);
    }
}

typedef struct {
    int id;
} send_arg_t;

static void *send_thread(void *arg)
{
    int id = ((send_arg_t *)arg)->id;
    char st[4096];
    int phase;
    while ((phase = atomic_load(&g_phase)) >= 0) {
        int ns = atomic_load(&g_nstreams);
        /* Streams id, id+T, id+2T, ... of the first ns belong to this thread. */
        int mine = ns > id ? (ns - id + g_opt.threads - 1) / g_opt.threads : 0;
        if (mine == 0)
            break;
        /* Threads without a stream send nothing, so the rate is shared among the others. */
        int active = ns < g_opt.threads ? ns : g_opt.threads;
        double rate = g_phase_rate > 0 ? g_phase_rate / active : 0;
        uint64_t t0 = now_ns(), k = 0, drain_at = 0;
        int cur = 0;
        while (atomic_load(&g_phase) == phase) {
            if (rate > 0) {
                uint64_t due = t0 + (uint64_t)((double)k * 1e9 / rate), t = now_ns();
                /* Sleep rather than spin: the sink thread may share this core, and a spinning
                   sender would delay it (and inflate the latency it measures). Stanzas that
                   fell due meanwhile go out back to back. */
                if (due > t) {
                    /* At most one wake-up per tick: waking per stanza cost the generator more CPU
                       than the gateway spends relaying (one core between them on a small
                       machine). Each stanza still gets its own TLS record and write, and its
                       time stamp just before it, so the wait for the tick is not in latency. */
                    uint64_t tick = (uint64_t)g_opt.tick_us * 1000u;
                    sleep_ns(due - t > tick ? due - t : tick);
                    continue;
                }
                /* A sender that overslept (shared machine) catches up at most 1 ms worth of
                   stanzas back to back: the rest of the backlog is skipped (the phase's sent
                   count shows the rate actually offered), so the gateway sees the set rate
                   and not bursts it never would from real partners. */
                if (t - due > 1000000)
                    t0 += t - due - 1000000;
            }
            bench_conn_t *c = &g_conns[id + cur * g_opt.threads];
            if (++cur >= mine)
                cur = 0;
            if (c->ssl == NULL)
                continue;
            size_t n = stanza_build(st, sizeof st, c->partner, phase, now_ns());
            if (conn_send_stanza(c, st, n) == 0)
                atomic_fetch_add_explicit(&g_sent[phase], 1, memory_order_relaxed);
            else if (atomic_load(&g_phase) == phase && atomic_fetch_add(&g_send_errors, 1) < 3)
                fprintf(stderr, "fedgate-bench: send failed on a stream\n");
            k++;
            if (++drain_at >= (uint64_t)mine * 16) {
                drain_at = 0;
                for (int i = 0; i < mine; i++)
                    if (g_conns[id + i * g_opt.threads].ssl)
                        conn_drain(&g_conns[id + i * g_opt.threads]);
            }
        }
    }
    return NULL;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Counts and timestamps the markers in what one sink connection has buffered, then keeps only
   the tail that may hold the start of a marker cut by the read. */
static void sink_scan(sink_conn_t *s, uint64_t t, uint64_t tk)
{
    char *buf = s->buf;
    size_t len = s->len, i = 0;
    for (; i + 20 <= len; i++) {
        if (buf[i] != 'f' || buf[i + 1] != 'g' || buf[i + 2] != 'b')
            continue;
        int ph = buf[i + 3] - '0';
        uint64_t ts = 0;
        int ok = ph >= 0 && ph < BENCH_PHASES;
        for (int j = 0; ok && j < 16; j++) {
            int v = hexval(buf[i + 4 + j]);
            ok = v >= 0;
            ts = ts << 4 | (uint64_t)(v & 15);
        }
        if (!ok)
            continue;
        uint64_t us = t > ts ? (t - ts) / 1000 : 0;
        g_hist[ph][us < BENCH_HIST_US ? us : BENCH_HIST_US]++;
        us = tk > ts ? (tk - ts) / 1000 : 0;
        g_hist_k[ph][us < BENCH_HIST_US ? us : BENCH_HIST_US]++;
        atomic_fetch_add_explicit(&g_recv[ph], 1, memory_order_relaxed);
        atomic_store_explicit(&g_last_arrival_ns[ph], t, memory_order_relaxed);
        i += 19;
    }
    size_t keep = len < 19 ? len : 19;
    if (i < len - keep)
        i = len - keep;
    memmove(buf, buf + i, len - i);
    s->len = len - i;
}

/* The kernel's receive time of the newest segment in what recvmsg returned (CLOCK_REALTIME), moved
   to CLOCK_MONOTONIC; `t` (the read's return) when there is none. For the older stanzas of the
   same read it is late, never early: an upper bound of their arrival. */
static uint64_t kernel_arrival(struct msghdr *mh, uint64_t t)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec ts, rt;
        memcpy(&ts, CMSG_DATA(cm), sizeof ts);
        clock_gettime(CLOCK_REALTIME, &rt);
        uint64_t real = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        uint64_t real_now = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
        uint64_t ago = real_now > real ? real_now - real : 0;
        return t > ago ? t - ago : t;
    }
    return t;
}

/* wolfSSL's reads on a TLS sink connection: the same recvmsg() as a plain one, so its records
   get the kernel's arrival time too (in kts), not the time the sink thread got a core. */
static int sink_tls_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    (void)ssl;
    sink_conn_t *s = ctx;
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {.iov_base = buf, .iov_len = (size_t)sz};
    struct msghdr mh = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t r = recvmsg(s->fd, &mh, MSG_DONTWAIT);
    if (r > 0) {
        s->kts = kernel_arrival(&mh, now_ns());
        return (int)r;
    }
    if (r == 0)
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    if (errno == EINTR)
        return WOLFSSL_CBIO_ERR_ISR;
    return errno == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST : WOLFSSL_CBIO_ERR_GENERAL;
}

/* The component sink: counts and timestamps every stanza the gateway delivers, on any of the
   --sink-conns connections. One thread polls them all, so g_hist and the counters keep a single
   writer; each connection has its own buffer because a marker may be split between two reads of
   the same connection, never between connections. */
static void *sink_thread(void *arg)
{
    (void)arg;
    struct pollfd pfd[BENCH_MAX_SINK_CONNS];
    int n = g_opt.sink_conns, live = n, idle_ticks = 0;
    bool stalled = false;
    while (live > 0) {
        for (int k = 0; k < n; k++)
            pfd[k] = (struct pollfd){.fd = g_sink[k].fd, .events = POLLIN};
        /* --sink-tick-us: look every tick instead of waiting in poll(). Waiting, the sink was
           woken by each of the gateway's sends (0.3-0.4 per stanza), CPU the generator takes from
           the cores it shares with the gateway; a reader that is not waiting is not woken.
           Stanzas keep their kernel arrival time, so the latency measured is the same. After a
           second without data the sink waits in poll() again (an idle gateway costs no ticks). */
        int timeout = -1;
        if (g_opt.sink_tick_us > 0 &&
            (uint64_t)idle_ticks * (uint64_t)g_opt.sink_tick_us < 1000000) {
            sleep_ns((uint64_t)g_opt.sink_tick_us * 1000u);
            timeout = 0;
        }
        int pr = poll(pfd, (nfds_t)n, timeout);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "fedgate-bench: component sink poll: %s\n", strerror(errno));
            break;
        }
        idle_ticks = pr == 0 ? idle_ticks + 1 : 0;
        /* --sink-stall-ms: a component that stops reading when the run starts, so the gateway
           must hold the sources back (flow control) rather than bounce or drop. Checked between
           the wait and the reads, so no connection is read from the run's first stanza until the
           stall ends. */
        if (g_opt.sink_stall_ms > 0 && !stalled && atomic_load(&g_phase) == 1) {
            stalled = true;
            fprintf(stderr, "  [sink] not reading for %d ms\n", g_opt.sink_stall_ms);
            sleep_ns((uint64_t)g_opt.sink_stall_ms * 1000000ull);
        }
        for (int k = 0; k < n; k++) {
            sink_conn_t *s = &g_sink[k];
            if (s->fd < 0 || !(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (s->ssl) {
                /* Every record the socket holds, so nothing waits decrypted behind poll(). */
                int r;
                while ((r = wolfSSL_read(s->ssl, s->buf + s->len, (int)(sizeof s->buf - s->len))) >
                       0) {
                    s->len += (size_t)r;
                    uint64_t t = now_ns();
                    sink_scan(s, t, s->kts && s->kts <= t ? s->kts : t);
                }
                int e = wolfSSL_get_error(s->ssl, r);
                if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
                    continue;
                fprintf(stderr, "fedgate-bench: component connection %d of %d closed (TLS %d)\n",
                        k + 1, n, e);
                wolfSSL_free(s->ssl);
                s->ssl = NULL;
                close(s->fd);
                s->fd = -1;
                live--;
                continue;
            }
            char cbuf[CMSG_SPACE(sizeof(struct timespec))];
            struct iovec iov = {.iov_base = s->buf + s->len, .iov_len = sizeof s->buf - s->len};
            struct msghdr mh = {.msg_iov = &iov,
                                .msg_iovlen = 1,
                                .msg_control = cbuf,
                                .msg_controllen = sizeof cbuf};
            ssize_t r = recvmsg(s->fd, &mh, MSG_DONTWAIT);
            if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            if (r <= 0) {
                fprintf(stderr, "fedgate-bench: component connection %d of %d closed (%s)\n", k + 1,
                        n, r < 0 ? strerror(errno) : "end of stream");
                close(s->fd);
                s->fd = -1;
                live--;
                continue;
            }
            s->len += (size_t)r;
            uint64_t t = now_ns();
            sink_scan(s, t, kernel_arrival(&mh, t));
        }
    }
    fprintf(stderr, "fedgate-bench: component stream closed\n");
    return NULL;
}

/* Opens component connection k of the sink: TLS first with --component-tls, then the stream
   header and the handshake with the stream id the gateway gave this connection. From then on the
   sink thread reads it: blocking reads without a timeout (poll() first), or non-blocking ones
   through wolfSSL. */
static int sink_connect(int k)
{
    char hdr[512], id[128], hs[128], dig[SHA1_HEX_LEN + 1];
    bench_conn_t *c = calloc(1, sizeof *c);
    int rc = -EIO;
    if (!c)
        return -ENOMEM;
    c->fd = tcp_connect(g_opt.component_port);
    if (c->fd < 0) {
        rc = c->fd;
        goto out;
    }
    if (g_opt.component_tls) {
        /* The gateway's component TLS listener: TLS first, named by SNI, then XEP-0114. */
        rc = -EPROTO;
        c->ssl = wolfSSL_new(g_ctx[0]);
        if (!c->ssl)
            goto out;
        wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, g_opt.domain,
                       (unsigned short)strlen(g_opt.domain));
        wolfSSL_set_fd(c->ssl, c->fd);
        if (wolfSSL_connect(c->ssl) != WOLFSSL_SUCCESS)
            goto out;
    }
    snprintf(hdr, sizeof hdr,
             "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
             g_opt.domain);
    if ((rc = conn_write(c, hdr, strlen(hdr))) || (rc = conn_read_until(c, " id=", NULL)))
        goto out;
    /* Wait for the whole header, then take id='...' or id="...". */
    while (!strchr(strstr(c->rbuf, " id="), '>')) {
        ssize_t r =
            c->ssl ? wolfSSL_read(c->ssl, c->rbuf + c->rlen, (int)(sizeof c->rbuf - 1 - c->rlen))
                   : recv(c->fd, c->rbuf + c->rlen, sizeof c->rbuf - 1 - c->rlen, 0);
        if (r <= 0 || c->rlen + (size_t)r + 1 >= sizeof c->rbuf)
            goto out;
        c->rlen += (size_t)r;
        c->rbuf[c->rlen] = 0;
    }
    {
        char *p = strstr(c->rbuf, " id=") + 4;
        char q = *p++;
        size_t n = 0;
        while (p[n] && p[n] != q && n < sizeof id - 1)
            n++;
        memcpy(id, p, n);
        id[n] = 0;
    }
    component_digest(id, g_secret, g_secret_len, dig);
    snprintf(hs, sizeof hs, "<handshake>%s</handshake>", dig);
    if ((rc = conn_write(c, hs, strlen(hs))) || (rc = conn_read_until(c, "<handshake", NULL)))
        goto out;
    struct timeval tv = {0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int on = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
    g_sink[k].fd = c->fd;
    g_sink[k].ssl = c->ssl;
    g_sink[k].len = 0;
    if (c->ssl) {
        fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
        wolfSSL_set_using_nonblock(c->ssl, 1);
        g_sink[k].kts = 0;
        wolfSSL_SSLSetIORecv(c->ssl, sink_tls_recv);
        wolfSSL_SetIOReadCtx(c->ssl, &g_sink[k]);
    }
    c->fd = -1;
    c->ssl = NULL;
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "fedgate-bench: component handshake %d of %d failed: %.300s\n", k + 1,
                g_opt.sink_conns, c->rbuf);
    if (c->ssl)
        wolfSSL_free(c->ssl);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    return rc;
}

typedef struct {
    double secs; /* from the first send to the last arrival */
    uint64_t sent, recv;
    double rate;                 /* received stanzas/s */
    double cpu_us;               /* gateway CPU µs per stanza; -1 unknown */
    double cpu_pct;              /* gateway CPU as % of one core */
    double p50, p99, p999, max;  /* µs */
    double k50, k99, k999, kmax; /* µs, to the kernel's arrival at the sink socket */
} phase_result_t;

/* One scrape of /metrics on a fresh connection, whole body read: µs, or -1 on failure. */
static int64_t scrape_once(void)
{
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    static char buf[65536];
    uint64_t t0 = now_ns();
    int fd = tcp_connect(g_opt.metrics_port);
    if (fd < 0)
        return -1;
    size_t total = 0;
    ssize_t n = send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
    bool ok = n == (ssize_t)sizeof req - 1;
    while (ok && (n = recv(fd, buf, sizeof buf, 0)) > 0) {
        if (total == 0 && (n < 12 || memcmp(buf, "HTTP/1.0 200", 12) != 0))
            ok = false;
        total += (size_t)n;
    }
    close(fd);
    if (!ok || n < 0 || total == 0)
        return -1;
    g_scrape_bytes = total;
    return (int64_t)((now_ns() - t0) / 1000);
}

/* Scrapes every BENCH_SCRAPE_MS while a phase runs; each result goes to the phase it began in. */
static void *scrape_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_scrape_stop)) {
        uint64_t t0 = now_ns();
        int ph = atomic_load(&g_phase);
        if (ph >= 0 && ph < BENCH_PHASES) {
            int64_t us = scrape_once();
            if (us < 0)
                g_scrape_failed[ph]++;
            else if (g_nscrape[ph] < BENCH_SCRAPES)
                g_scrape_us[ph][g_nscrape[ph]++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        }
        uint64_t next = t0 + BENCH_SCRAPE_MS * 1000000ull, t = now_ns();
        sleep_ns(next > t ? next - t : 0);
    }
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* p50 and max of a phase's scrapes in ms (sorts them); -1 without any. */
static void scrape_stats(int ph, double *p50, double *max)
{
    int n = g_nscrape[ph];
    *p50 = *max = -1;
    if (!n)
        return;
    qsort(g_scrape_us[ph], (size_t)n, sizeof(uint32_t), cmp_u32);
    *p50 = g_scrape_us[ph][n / 2] / 1e3;
    *max = g_scrape_us[ph][n - 1] / 1e3;
}

static double hist_pct(const uint32_t *h, uint64_t total, double q)
{
    uint64_t want = (uint64_t)((double)total * q), acc = 0;
    if (want >= total && total)
        want = total - 1;
    for (int i = 0; i <= BENCH_HIST_US; i++) {
        acc += h[i];
        if (acc > want)
            return i;
    }
    return BENCH_HIST_US;
}

/* Runs one phase on the first `streams` streams; prints a progress line every second. */
static void run_phase(int phase, int streams, double rate, double secs, phase_result_t *res)
{
    pthread_t th[64];
    send_arg_t args[64];
    int nt = g_opt.threads < 64 ? g_opt.threads : 64;
    g_phase_rate = rate;
    atomic_store(&g_nstreams, streams);
    int64_t cpu0 = gw_cpu_us();
    uint64_t t0 = now_ns();
    atomic_store(&g_phase, phase);
    for (int i = 0; i < nt; i++) {
        args[i].id = i;
        pthread_create(&th[i], NULL, send_thread, &args[i]);
    }
    uint64_t last_recv = 0;
    int64_t last_cpu = cpu0;
    for (int s = 1; s <= (int)(secs + 0.999); s++) {
        uint64_t until = t0 + (uint64_t)(s * 1e9);
        if (until > t0 + (uint64_t)(secs * 1e9))
            until = t0 + (uint64_t)(secs * 1e9);
        uint64_t t = now_ns();
        if (until > t)
            sleep_ns(until - t);
        uint64_t rc = atomic_load(&g_recv[phase]);
        int64_t cpu = gw_cpu_us();
        fprintf(stderr,
                "  [%s %2ds] sent %" PRIu64 " recv %" PRIu64 " (%" PRIu64
                "/s) gateway CPU %.0f%%\n",
                phase ? "run" : "baseline", s, (uint64_t)atomic_load(&g_sent[phase]), rc,
                rc - last_recv, cpu >= 0 ? (double)(cpu - last_cpu) / 1e4 : -1.0);
        last_recv = rc;
        last_cpu = cpu;
    }
    atomic_store(&g_phase, -1);
    for (int i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
    /* Let what is in flight arrive so every sent stanza is counted: as long as stanzas keep
       arriving (the gateway slows senders down rather than dropping, so at full speed the
       partners' socket buffers may hold seconds of traffic), until 3 s pass without one, 60 s at
       most. */
    uint64_t sent = atomic_load(&g_sent[phase]), seen = atomic_load(&g_recv[phase]);
    uint64_t quiet_since = now_ns(), stop_at = quiet_since + 60000000000ull;
    while (atomic_load(&g_recv[phase]) < sent && now_ns() < stop_at &&
           now_ns() - quiet_since < 3000000000ull) {
        sleep_ns(10000000);
        uint64_t r = atomic_load(&g_recv[phase]);
        if (r != seen) {
            seen = r;
            quiet_since = now_ns();
        }
    }
    int64_t cpu1 = gw_cpu_us();
    if (cpu0 >= 0 && cpu1 < 0) {
        printf("GATEWAY GONE: pid %d disappeared during the %s phase\n", g_opt.gateway_pid,
               phase ? "run" : "baseline");
        cpu0 = -1;
    }
    res->sent = sent;
    res->recv = atomic_load(&g_recv[phase]);
    uint64_t last = atomic_load(&g_last_arrival_ns[phase]);
    res->secs = (double)((last > t0 ? last : now_ns()) - t0) / 1e9;
    res->rate = res->secs > 0 ? (double)res->recv / res->secs : 0;
    res->cpu_us = cpu0 >= 0 && res->recv ? (double)(cpu1 - cpu0) / (double)res->recv : -1;
    res->cpu_pct = cpu0 >= 0 ? (double)(cpu1 - cpu0) / (res->secs * 1e4) : -1;
    res->p50 = hist_pct(g_hist[phase], res->recv, 0.50);
    res->p99 = hist_pct(g_hist[phase], res->recv, 0.99);
    res->p999 = hist_pct(g_hist[phase], res->recv, 0.999);
    res->max = hist_pct(g_hist[phase], res->recv, 1.0);
    res->k50 = hist_pct(g_hist_k[phase], res->recv, 0.50);
    res->k99 = hist_pct(g_hist_k[phase], res->recv, 0.99);
    res->k999 = hist_pct(g_hist_k[phase], res->recv, 0.999);
    res->kmax = hist_pct(g_hist_k[phase], res->recv, 1.0);
}

static void print_result(const char *name, int streams, const phase_result_t *r)
{
    printf("%-9s %6d streams: %9.0f stanzas/s  sent %" PRIu64 " recv %" PRIu64
           "  gateway %6.2f us/stanza (%5.1f%% of a core)  latency us p50 %.0f p99 %.0f p99.9 %.0f "
           "max %.0f%s\n",
           name, streams, r->rate, r->sent, r->recv, r->cpu_us, r->cpu_pct, r->p50, r->p99, r->p999,
           r->max, r->max >= BENCH_HIST_US ? "+" : "");
    printf("%-9s %6d streams: latency to arrival at the component socket (kernel timestamp) us p50 "
           "%.0f p99 %.0f p99.9 %.0f max %.0f%s\n",
           name, streams, r->k50, r->k99, r->k999, r->kmax, r->kmax >= BENCH_HIST_US ? "+" : "");
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: fedgate-bench --secret-file F --cert-dir DIR [--ca FILE] [--domain D]\n"
            "         [--partner-fmt FMT] [--partners M] [--streams N] [--rate R] [--duration S]\n"
            "         [--baseline-secs S] [--baseline-rate R] [--threads T] [--open-threads T]\n"
            "         [--size BYTES] [--host IP] [--port P] [--direct-tls] [--component-port P]\n"
            "         [--gateway-pid PID] [--hold-secs S] [--metrics-port P] [--sink-stall-ms MS]\n"
            "         [--sink-conns N] [--tick-us US] [--sink-tick-us US] [--component-tls]\n");
}

static int load_opts(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'H'},           {"port", 1, 0, 'p'},          {"direct-tls", 0, 0, 'D'},
        {"component-port", 1, 0, 'c'}, {"secret-file", 1, 0, 's'},   {"domain", 1, 0, 'd'},
        {"partner-fmt", 1, 0, 'f'},    {"cert-dir", 1, 0, 'C'},      {"ca", 1, 0, 'a'},
        {"partners", 1, 0, 'm'},       {"streams", 1, 0, 'n'},       {"rate", 1, 0, 'r'},
        {"duration", 1, 0, 't'},       {"baseline-secs", 1, 0, 'b'}, {"baseline-rate", 1, 0, 'B'},
        {"gateway-pid", 1, 0, 'g'},    {"threads", 1, 0, 'T'},       {"open-threads", 1, 0, 'O'},
        {"size", 1, 0, 'z'},           {"hold-secs", 1, 0, 'h'},     {"metrics-port", 1, 0, 'M'},
        {"sink-stall-ms", 1, 0, 'S'},  {"sink-conns", 1, 0, 'K'},    {"tick-us", 1, 0, 'k'},
        {"sink-tick-us", 1, 0, 'j'},   {"component-tls", 0, 0, 'Y'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'H':
            g_opt.host = optarg;
            break;
        case 'p':
            g_opt.port = atoi(optarg);
            break;
        case 'D':
            g_opt.direct_tls = 1;
            break;
        case 'c':
            g_opt.component_port = atoi(optarg);
            break;
        case 's':
            g_opt.secret_file = optarg;
            break;
        case 'd':
            g_opt.domain = optarg;
            break;
        case 'f':
            g_opt.partner_fmt = optarg;
            break;
        case 'C':
            g_opt.cert_dir = optarg;
            break;
        case 'a':
            g_opt.ca = optarg;
            break;
        case 'm':
            g_opt.partners = atoi(optarg);
            break;
        case 'n':
            g_opt.streams = atoi(optarg);
            break;
        case 'r':
            g_opt.rate = atof(optarg);
            break;
        case 't':
            g_opt.duration = atof(optarg);
            break;
        case 'b':
            g_opt.baseline_secs = atof(optarg);
            break;
        case 'B':
            g_opt.baseline_rate = atof(optarg);
            break;
        case 'g':
            g_opt.gateway_pid = atoi(optarg);
            break;
        case 'T':
            g_opt.threads = atoi(optarg);
            break;
        case 'O':
            g_opt.open_threads = atoi(optarg);
            break;
        case 'z':
            g_opt.size = atoi(optarg);
            break;
        case 'h':
            g_opt.hold_secs = atof(optarg);
            break;
        case 'M':
            g_opt.metrics_port = atoi(optarg);
            break;
        case 'S':
            g_opt.sink_stall_ms = atoi(optarg);
            break;
        case 'K':
            g_opt.sink_conns = atoi(optarg);
            break;
        case 'k':
            g_opt.tick_us = atoi(optarg);
            break;
        case 'j':
            g_opt.sink_tick_us = atoi(optarg);
            break;
        case 'Y':
            g_opt.component_tls = 1;
            break;
        default:
            return -EINVAL;
        }
    }
    if (!g_opt.secret_file || !g_opt.cert_dir || g_opt.partners < 1 ||
        g_opt.partners > BENCH_MAX_PARTNERS || g_opt.streams < 1 ||
        g_opt.streams > BENCH_MAX_STREAMS || g_opt.threads < 1 || g_opt.threads > 64 ||
        g_opt.open_threads < 1 || g_opt.duration <= 0 || g_opt.duration > 3600 ||
        g_opt.size < 100 || g_opt.size > 3000 || g_opt.hold_secs < 0 || g_opt.hold_secs > 3600 ||
        g_opt.metrics_port < 0 || g_opt.metrics_port > 65535 || g_opt.sink_stall_ms < 0 ||
        g_opt.sink_stall_ms > 600000 || g_opt.sink_conns < 1 ||
        g_opt.sink_conns > BENCH_MAX_SINK_CONNS || g_opt.tick_us < 0 || g_opt.tick_us > 100000 ||
        g_opt.sink_tick_us < 0 || g_opt.sink_tick_us > 100000)
        return -EINVAL;
    return 0;
}

static int load_secret(void)
{
    FILE *f = fopen(g_opt.secret_file, "r");
    if (!f)
        return -errno;
    g_secret_len = fread(g_secret, 1, sizeof g_secret - 1, f);
    fclose(f);
    /* fedgate-admin keeps the secret without the trailing newline of the file. */
    while (g_secret_len &&
           (g_secret[g_secret_len - 1] == '\n' || g_secret[g_secret_len - 1] == '\r'))
        g_secret_len--;
    g_secret[g_secret_len] = 0;
    return 0;
}

static int load_ctx(void)
{
    for (int i = 0; i < g_opt.partners; i++) {
        char name[128], crt[512], key[512];
        partner_name(i, name, sizeof name);
        snprintf(crt, sizeof crt, "%s/%s.crt", g_opt.cert_dir, name);
        snprintf(key, sizeof key, "%s/%s.key", g_opt.cert_dir, name);
        g_ctx[i] = wolfSSL_CTX_new(wolfTLS_client_method());
        if (!g_ctx[i] || wolfSSL_CTX_use_certificate_chain_file(g_ctx[i], crt) != WOLFSSL_SUCCESS ||
            wolfSSL_CTX_use_PrivateKey_file(g_ctx[i], key, WOLFSSL_FILETYPE_PEM) !=
                WOLFSSL_SUCCESS) {
            fprintf(stderr, "fedgate-bench: cannot load %s / %s\n", crt, key);
            return -EINVAL;
        }
        wolfSSL_CTX_SetMinVersion(g_ctx[i], WOLFSSL_TLSV1_2);
        if (g_opt.ca) {
            if (wolfSSL_CTX_load_verify_locations(g_ctx[i], g_opt.ca, NULL) != WOLFSSL_SUCCESS) {
                fprintf(stderr, "fedgate-bench: cannot load CA %s\n", g_opt.ca);
                return -EINVAL;
            }
            wolfSSL_CTX_set_verify(g_ctx[i], WOLFSSL_VERIFY_PEER, NULL);
        } else {
            wolfSSL_CTX_set_verify(g_ctx[i], WOLFSSL_VERIFY_NONE, NULL);
        }
    }
    return 0;
}

/* --hold-secs: only open the streams, report what they cost the gateway, and keep them open
   (idle, reading what the gateway sends) for S seconds. No component: several holders can run
   beside one measuring fedgate-bench to reach more streams than one process may hold. */
static int hold_run(void)
{
    long rss0 = gw_rss_kib();
    uint64_t t0 = now_ns();
    int failed = open_streams(0, g_opt.streams);
    double secs = (double)(now_ns() - t0) / 1e9;
    int opened = g_opt.streams - failed;
    sleep_ns(500000000ull);
    long rss1 = gw_rss_kib();
    int64_t c0 = gw_cpu_us();
    sleep_ns(1000000000ull);
    int64_t c1 = gw_cpu_us();
    printf("hold: %d streams opened in %.2f s = %.0f/s (%d failed); gateway RSS %ld -> %ld KiB, "
           "%.1f KiB per stream; gateway idle CPU %.2f%% of a core\n",
           opened, secs, opened / secs, failed, rss0, rss1,
           opened > 0 ? (double)(rss1 - rss0) / opened : 0.0,
           c0 >= 0 ? (double)(c1 - c0) / 1e4 : -1.0);
    printf("holding %d streams for %.0f s\n", opened, g_opt.hold_secs);
    for (double t = 0; t < g_opt.hold_secs; t += 1) {
        sleep_ns(1000000000ull);
        for (int i = 0; i < g_opt.streams; i++)
            if (g_conns[i].ssl)
                conn_drain(&g_conns[i]);
    }
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    int rc = 1;
    pthread_t sink, scraper;
    bool scraping = false;
    phase_result_t base = {0}, run = {0};
    struct rlimit rl;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* paced sends wake on time, not 50 µs late */
    if (load_opts(argc, argv)) {
        usage();
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)g_opt.streams + (rlim_t)g_opt.sink_conns + 64) {
            fprintf(stderr, "fedgate-bench: fd limit %lu too low for %d streams\n",
                    (unsigned long)rl.rlim_cur, g_opt.streams);
            return 2;
        }
    }
    if (load_secret()) {
        fprintf(stderr, "fedgate-bench: cannot read %s\n", g_opt.secret_file);
        return 2;
    }
    wolfSSL_Init();
    g_conns = calloc((size_t)g_opt.streams, sizeof *g_conns);
    if (!g_conns || load_ctx())
        goto out;
    for (int i = 0; i < g_opt.streams; i++)
        g_conns[i].fd = -1;
    if (g_opt.hold_secs > 0) {
        rc = hold_run();
        goto out;
    }
    for (int k = 0; k < BENCH_MAX_SINK_CONNS; k++)
        g_sink[k].fd = -1;
    for (int k = 0; k < g_opt.sink_conns; k++)
        if (sink_connect(k))
            goto out;
    printf("component sink: %d connection%s\n", g_opt.sink_conns, g_opt.sink_conns == 1 ? "" : "s");
    pthread_create(&sink, NULL, sink_thread, NULL);
    pthread_detach(sink);
    if (g_opt.metrics_port > 0)
        scraping = pthread_create(&scraper, NULL, scrape_thread, NULL) == 0;

    /* Idle gateway CPU over one second, with only the component connected. */
    int64_t c0 = gw_cpu_us();
    sleep_ns(1000000000ull);
    int64_t c1 = gw_cpu_us();
    double idle_pct = c0 >= 0 ? (double)(c1 - c0) / 1e4 : -1;

    /* Baseline: one stream, at --baseline-rate (0: full speed). */
    if (open_streams(0, 1)) {
        fprintf(stderr, "fedgate-bench: the baseline stream failed\n");
        goto out;
    }
    printf("fedgate-bench: %s, %d-byte stanzas, %d partner domains, %d streams, %s, %d sender "
           "thread(s)\n",
           g_opt.direct_tls ? "direct TLS" : "STARTTLS", g_opt.size, g_opt.partners, g_opt.streams,
           g_opt.rate > 0 ? "set rate" : "full speed", g_opt.threads);
    printf("TLS: %s %s\n", wolfSSL_get_version(g_conns[0].ssl), wolfSSL_get_cipher(g_conns[0].ssl));
    fprintf(stderr, "baseline: 1 stream, %.0f s at %s\n", g_opt.baseline_secs,
            g_opt.baseline_rate > 0 ? "--baseline-rate" : "full speed");
    run_phase(0, 1, g_opt.baseline_rate, g_opt.baseline_secs, &base);

    /* Open the other N-1 streams; RSS delta per stream and establishments/s. */
    long rss0 = gw_rss_kib();
    int64_t oc0 = gw_cpu_us();
    uint64_t o0 = now_ns();
    int failed = g_opt.streams > 1 ? open_streams(1, g_opt.streams) : 0;
    double open_secs = (double)(now_ns() - o0) / 1e9;
    int64_t oc1 = gw_cpu_us();
    sleep_ns(500000000ull);
    long rss1 = gw_rss_kib();
    int opened = g_opt.streams - 1 - failed;
    int64_t c2 = gw_cpu_us();
    sleep_ns(1000000000ull);
    int64_t c3 = gw_cpu_us();
    double idle_n_pct = c2 >= 0 ? (double)(c3 - c2) / 1e4 : -1;
    if (failed)
        fprintf(stderr, "fedgate-bench: %d of %d streams failed to open\n", failed,
                g_opt.streams - 1);

    fprintf(stderr, "run: %d streams, %.0f s at %s\n", g_opt.streams, g_opt.duration,
            g_opt.rate > 0 ? "--rate" : "full speed");
    run_phase(1, g_opt.streams, g_opt.rate, g_opt.duration, &run);

    printf("\n");
    printf(
        "gateway idle CPU: %.2f%% of a core with the component only, %.2f%% with this process's %d "
        "streams\n",
        idle_pct, idle_n_pct, opened + 1);
    if (opened > 0)
        printf("streams opened: %d in %.2f s = %.0f/s (TCP + TLS + SASL EXTERNAL + restart, %d "
               "opening threads); gateway CPU %.0f us per stream = %.0f/s per core\n",
               opened, open_secs, opened / open_secs, g_opt.open_threads,
               oc0 >= 0 ? (double)(oc1 - oc0) / opened : -1.0,
               oc0 >= 0 && oc1 > oc0 ? 1e6 * opened / (double)(oc1 - oc0) : -1.0);
    if (rss0 > 0 && opened > 0)
        printf("gateway memory: RSS %ld KiB -> %ld KiB, %.1f KiB per open stream\n", rss0, rss1,
               (double)(rss1 - rss0) / opened);
    print_result("baseline", 1, &base);
    print_result("run", g_opt.streams, &run);
    printf("ratio run/baseline: stanzas/s x%.2f, CPU/stanza x%.2f, p50 x%.2f, p99 x%.2f, p99.9 "
           "x%.2f\n",
           ratio(run.rate, base.rate), ratio(run.cpu_us, base.cpu_us), ratio(run.p50, base.p50),
           ratio(run.p99, base.p99), ratio(run.p999, base.p999));
    if (scraping) {
        double b50, bmax, r50, rmax;
        atomic_store(&g_scrape_stop, 1);
        pthread_join(scraper, NULL);
        scraping = false;
        scrape_stats(0, &b50, &bmax);
        scrape_stats(1, &r50, &rmax);
        printf("metrics scrape latency ms (every %d ms, new connection, %zu-byte body): baseline "
               "p50 %.2f max %.2f (%d scrapes, %d failed), run p50 %.2f max %.2f (%d scrapes, %d "
               "failed); ratio run/baseline p50 x%.2f max x%.2f\n",
               BENCH_SCRAPE_MS, g_scrape_bytes, b50, bmax, g_nscrape[0], g_scrape_failed[0], r50,
               rmax, g_nscrape[1], g_scrape_failed[1], ratio(r50, b50), ratio(rmax, bmax));
    }
    if (run.recv < run.sent)
        printf("LOST: %" PRIu64 " stanzas sent in the run did not arrive\n", run.sent - run.recv);
    rc = run.recv == run.sent && run.recv > 0 ? 0 : 1;
out:
    atomic_store(&g_phase, -1);
    if (scraping) {
        atomic_store(&g_scrape_stop, 1);
        pthread_join(scraper, NULL);
    }
    for (int i = 0; g_conns && i < g_opt.streams; i++)
        conn_free(&g_conns[i]);
    free(g_conns);
    for (int i = 0; i < g_opt.partners; i++)
        if (g_ctx[i])
            wolfSSL_CTX_free(g_ctx[i]);
    wolfSSL_Cleanup();
    return rc;
}
