#include "io/mhttp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "io/listen.h"

#define MHTTP_HEAD_MAX          256
#define MHTTP_CLIENTS_DEFAULT   8
#define MHTTP_CLIENTS_MAX       64
#define MHTTP_READ_TIMEOUT_MS   2000
#define MHTTP_WRITE_TIMEOUT_MS  5000
#define MHTTP_ACCEPT_BACKOFF_MS 100
/* When every slot is taken, the oldest connection is dropped for a newcomer, but only once it has
   had this long to send its request (a burst of honest scrapers arriving together must not evict
   each other before being read) or to take its response (a loopback scrape takes milliseconds). */
#define MHTTP_EVICT_READ_MS   50
#define MHTTP_EVICT_WRITE_MS  500
#define MHTTP_CONN_TIMEOUT_MS 5000 /* the worker-hosted variant: request and response together */

/* ---- shared by both variants: what a request asks for, and the response to it ------------- */

typedef enum { REQ_MORE = 0, REQ_METRICS, REQ_NOT_FOUND, REQ_TOO_LARGE } req_kind_t;

/* req holds len bytes (NUL-terminated; len < MHTTP_REQ_MAX). Binary garbage may contain NULs, so
   the end of the header is searched by length. */
static req_kind_t classify(const char *req, size_t len)
{
    if (!memmem(req, len, "\r\n\r\n", 4) && !memmem(req, len, "\n\n", 2))
        return len >= MHTTP_REQ_MAX - 1 ? REQ_TOO_LARGE : REQ_MORE;
    if (len >= 13 &&
        (strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0))
        return REQ_METRICS;
    return REQ_NOT_FOUND;
}

/* Fills body for the request; returns the HTTP status code. */
static int answer_body(metrics_t *m, req_kind_t kind, buf_t *body)
{
    buf_reset(body);
    if (kind == REQ_METRICS) {
        if (metrics_render(m, body) == 0)
            return 200;
        buf_reset(body); /* past the bound: a truncated exposition would read as valid */
        return 500;
    }
    if (kind == REQ_NOT_FOUND) {
        if (buf_append_str(body, "not found\n") != 0)
            buf_reset(body);
        return 404;
    }
    return 431;
}

/* Status line and headers for a body of blen bytes into head (MHTTP_HEAD_MAX); their length. */
static size_t answer_head(int code, size_t blen, char *head)
{
    const char *status = code == 200   ? "200 OK"
                         : code == 404 ? "404 Not Found"
                         : code == 431 ? "431 Request Header Fields Too Large"
                                       : "500 Internal Server Error";
    int n = snprintf(head, MHTTP_HEAD_MAX,
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, code == 200 ? "text/plain; version=0.0.4" : "text/plain", blen);
    return n > 0 && n < MHTTP_HEAD_MAX ? (size_t)n : 0;
}

/* ---- the server thread ------------------------------------------------------------------- */

enum { CODE_200 = 0, CODE_404, CODE_431, CODE_500, CODE_N };
enum { DROP_TIMEOUT = 0, DROP_EVICTED, DROP_CLOSED, DROP_N };

typedef struct {
    int fd; /* -1: free slot */
    bool writing;
    uint64_t since_ns;    /* accepted, then: response started */
    uint64_t deadline_ns; /* request, then response */
    size_t len;           /* request bytes */
    size_t hlen, off;     /* response: header length, bytes sent of header + body */
    buf_t body;
    char head[MHTTP_HEAD_MAX];
    char req[MHTTP_REQ_MAX];
} client_t;

struct mhttp {
    metrics_t *m;
    mhttp_config_t cfg;
    int lfd;
    int efd; /* mhttp_stop's wake-up */
    pthread_t th;
    uint64_t backoff_until_ns; /* accept failed for lack of descriptors or memory */
    uint64_t last_log_ns;
    /* The thread's own counters: written and read by the thread only (appended to each scrape). */
    uint64_t responses[CODE_N];
    uint64_t dropped[DROP_N];
    uint64_t render_ns; /* the current (or last) scrape's render time */
    client_t *cl;       /* cfg.max_clients slots */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void client_close(mhttp_t *h, client_t *c, int drop)
{
    if (c->fd < 0)
        return;
    if (drop >= 0)
        h->dropped[drop]++;
    close(c->fd);
    c->fd = -1;
    buf_free(&c->body);
}

/* Everything is sent: read what the client may still have sent (so the close is a FIN, not a
   reset that could destroy the response in flight), then close. */
static void client_finish(mhttp_t *h, client_t *c)
{
    char sink[1024];
    for (int i = 0; i < 4 && recv(c->fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
        ;
    shutdown(c->fd, SHUT_WR);
    client_close(h, c, -1);
}

static void client_pump(mhttp_t *h, client_t *c)
{
    for (;;) {
        size_t total = c->hlen + c->body.len;
        if (c->off >= total) {
            client_finish(h, c);
            return;
        }
        struct iovec iov[2];
        int n = 0;
        if (c->off < c->hlen)
            iov[n++] = (struct iovec){c->head + c->off, c->hlen - c->off};
        size_t boff = c->off > c->hlen ? c->off - c->hlen : 0;
        if (boff < c->body.len)
            iov[n++] = (struct iovec){c->body.data + boff, c->body.len - boff};
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t r = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r > 0) {
            c->off += (size_t)r;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            if (errno == EINTR)
                continue;
            return; /* the poll loop waits for POLLOUT */
        }
        client_close(h, c, DROP_CLOSED);
        return;
    }
}

/* The thread's own families, appended after the registry's (skipped if the body is full). */
static void append_own(mhttp_t *h, buf_t *body)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "# HELP fedgate_metrics_responses_total Responses of the metrics endpoint by status\n"
             "# TYPE fedgate_metrics_responses_total counter\n"
             "fedgate_metrics_responses_total{code=\"200\"} %llu\n"
             "fedgate_metrics_responses_total{code=\"404\"} %llu\n"
             "fedgate_metrics_responses_total{code=\"431\"} %llu\n"
             "fedgate_metrics_responses_total{code=\"500\"} %llu\n"
             "# HELP fedgate_metrics_dropped_total Metrics connections closed without a complete "
             "response\n"
             "# TYPE fedgate_metrics_dropped_total counter\n"
             "fedgate_metrics_dropped_total{reason=\"timeout\"} %llu\n"
             "fedgate_metrics_dropped_total{reason=\"evicted\"} %llu\n"
             "fedgate_metrics_dropped_total{reason=\"closed\"} %llu\n"
             "# HELP fedgate_metrics_render_seconds Time this scrape took to render\n"
             "# TYPE fedgate_metrics_render_seconds gauge\n"
             "fedgate_metrics_render_seconds %.6f\n",
             (unsigned long long)h->responses[CODE_200], (unsigned long long)h->responses[CODE_404],
             (unsigned long long)h->responses[CODE_431], (unsigned long long)h->responses[CODE_500],
             (unsigned long long)h->dropped[DROP_TIMEOUT],
             (unsigned long long)h->dropped[DROP_EVICTED],
             (unsigned long long)h->dropped[DROP_CLOSED], (double)h->render_ns / 1e9);
    (void)buf_append_str(body, text);
}

static void client_respond(mhttp_t *h, client_t *c, req_kind_t kind)
{
    uint64_t t0 = now_ns();
    buf_init(&c->body, h->cfg.body_max);
    int code = answer_body(h->m, kind, &c->body);
    if (code == 200) {
        h->render_ns = now_ns() - t0;
        /* Counted before appending, so a scrape includes itself. */
        h->responses[CODE_200]++;
        append_own(h, &c->body);
    } else {
        h->responses[code == 404 ? CODE_404 : code == 431 ? CODE_431 : CODE_500]++;
    }
    c->hlen = answer_head(code, c->body.len, c->head);
    c->writing = true;
    c->since_ns = now_ns();
    c->off = 0;
    c->deadline_ns = now_ns() + (uint64_t)h->cfg.write_timeout_ms * 1000000ull;
    client_pump(h, c);
}

static void client_read(mhttp_t *h, client_t *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->req + c->len, MHTTP_REQ_MAX - 1 - c->len, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            client_close(h, c, DROP_CLOSED); /* gone before finishing its request */
            return;
        }
        c->len += (size_t)r;
        c->req[c->len] = '\0';
        req_kind_t kind = classify(c->req, c->len);
        if (kind != REQ_MORE) {
            client_respond(h, c, kind);
            return;
        }
    }
}

/* When c may be dropped for a newcomer (ns). */
static uint64_t evictable_at(const client_t *c)
{
    return c->since_ns +
           (uint64_t)(c->writing ? MHTTP_EVICT_WRITE_MS : MHTTP_EVICT_READ_MS) * 1000000ull;
}

/* A slot for a new connection: a free one, else the oldest evictable connection's. NULL if none. */
static client_t *slot_find(mhttp_t *h, uint64_t now)
{
    client_t *old = NULL;
    for (unsigned i = 0; i < h->cfg.max_clients; i++) {
        client_t *c = &h->cl[i];
        if (c->fd < 0)
            return c;
        if (evictable_at(c) <= now && (!old || evictable_at(c) < evictable_at(old)))
            old = c;
    }
    return old;
}

static void accept_some(mhttp_t *h, uint64_t now)
{
    /* A bounded batch per wake-up; the listener stays readable for the rest. */
    for (unsigned n = 0; n < h->cfg.max_clients; n++) {
        client_t *c = slot_find(h, now);
        if (!c)
            return;
        int fd = accept4(h->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays in the backlog. */
            h->backoff_until_ns = now + MHTTP_ACCEPT_BACKOFF_MS * 1000000ull;
            if (now - h->last_log_ns >= 10000000000ull) {
                h->last_log_ns = now;
                log_warn("metrics: accept failed: %s; retrying in %d ms", strerror(errno),
                         MHTTP_ACCEPT_BACKOFF_MS);
            }
            return;
        }
        client_close(h, c, DROP_EVICTED); /* no-op for a free slot */
        c->fd = fd;
        c->writing = false;
        c->len = 0;
        c->hlen = c->off = 0;
        c->since_ns = now;
        c->deadline_ns = now + (uint64_t)h->cfg.read_timeout_ms * 1000000ull;
        buf_init(&c->body, 0);
    }
}

static void *mhttp_run(void *arg)
{
    mhttp_t *h = arg;
    struct pollfd p[2 + MHTTP_CLIENTS_MAX];
    client_t *who[2 + MHTTP_CLIENTS_MAX];
    for (;;) {
        uint64_t now = now_ns(), next = UINT64_MAX;
        for (unsigned i = 0; i < h->cfg.max_clients; i++) {
            client_t *c = &h->cl[i];
            if (c->fd >= 0 && c->deadline_ns <= now)
                client_close(h, c, DROP_TIMEOUT);
        }
        nfds_t n = 0;
        p[n++] = (struct pollfd){.fd = h->efd, .events = POLLIN};
        nfds_t li = 0; /* 0: the listener is not polled */
        if (now < h->backoff_until_ns) {
            next = h->backoff_until_ns;
        } else if (slot_find(h, now)) {
            li = n;
            p[n++] = (struct pollfd){.fd = h->lfd, .events = POLLIN};
        }
        for (unsigned i = 0; i < h->cfg.max_clients; i++) {
            client_t *c = &h->cl[i];
            if (c->fd < 0)
                continue;
            who[n] = c;
            p[n++] = (struct pollfd){.fd = c->fd, .events = c->writing ? POLLOUT : POLLIN};
            if (c->deadline_ns < next)
                next = c->deadline_ns;
            /* All slots taken: wake when one becomes evictable, to accept again. */
            uint64_t ev = evictable_at(c);
            if (!li && ev > now && ev < next)
                next = ev;
        }
        int timeout = next == UINT64_MAX ? -1 : (int)((next - now + 999999) / 1000000);
        int r = poll(p, n, timeout);
        if (r < 0) {
            if (errno != EINTR) {
                struct timespec ts = {0, 10000000}; /* ENOMEM: try again shortly */
                nanosleep(&ts, NULL);
            }
            continue;
        }
        if (p[0].revents)
            break;
        for (nfds_t k = 1; k < n; k++) {
            if (k == li || !p[k].revents || who[k]->fd < 0)
                continue;
            if (who[k]->writing)
                client_pump(h, who[k]);
            else
                client_read(h, who[k]);
        }
        if (li && (p[li].revents & POLLIN))
            accept_some(h, now_ns());
    }
    for (unsigned i = 0; i < h->cfg.max_clients; i++)
        client_close(h, &h->cl[i], -1);
    return NULL;
}

int mhttp_start(mhttp_t **out, struct sockaddr_storage *sa, metrics_t *m, const mhttp_config_t *cfg)
{
    int ret;
    sigset_t all, old;
    mhttp_t *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->m = m;
    h->lfd = h->efd = -1;
    if (cfg)
        h->cfg = *cfg;
    if (!h->cfg.max_clients)
        h->cfg.max_clients = MHTTP_CLIENTS_DEFAULT;
    if (h->cfg.max_clients > MHTTP_CLIENTS_MAX)
        h->cfg.max_clients = MHTTP_CLIENTS_MAX;
    if (!h->cfg.read_timeout_ms)
        h->cfg.read_timeout_ms = MHTTP_READ_TIMEOUT_MS;
    if (!h->cfg.write_timeout_ms)
        h->cfg.write_timeout_ms = MHTTP_WRITE_TIMEOUT_MS;
    if (!h->cfg.body_max)
        h->cfg.body_max = MHTTP_BODY_MAX;
    h->cl = calloc(h->cfg.max_clients, sizeof(*h->cl));
    if (!h->cl) {
        ret = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < h->cfg.max_clients; i++)
        h->cl[i].fd = -1;
    h->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->efd < 0) {
        ret = -errno;
        goto fail;
    }
    ret = listen_open(sa, false, &h->lfd);
    if (ret == 0)
        ret = listen_local_addr(h->lfd, sa);
    if (ret != 0)
        goto fail;
    /* The listener is non-blocking so a connection reset between poll and accept never blocks. */
    int fl = fcntl(h->lfd, F_GETFL);
    if (fl < 0 || fcntl(h->lfd, F_SETFL, fl | O_NONBLOCK) != 0) {
        ret = -errno;
        goto fail;
    }
    /* Signals stay with the threads that wait for them (the daemon's control thread). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    ret = -pthread_create(&h->th, NULL, mhttp_run, h);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (ret != 0)
        goto fail;
    pthread_setname_np(h->th, "fg-metrics");
    *out = h;
    return 0;
fail:
    if (h->lfd >= 0)
        close(h->lfd);
    if (h->efd >= 0)
        close(h->efd);
    free(h->cl);
    free(h);
    return ret;
}

void mhttp_stop(mhttp_t *h)
{
    if (!h)
        return;
    uint64_t one = 1;
    while (write(h->efd, &one, sizeof(one)) < 0 && errno == EINTR)
        ;
    pthread_join(h->th, NULL);
    close(h->lfd);
    close(h->efd);
    free(h->cl);
    free(h);
}

/* ---- the worker-hosted variant (conn layer) ---------------------------------------------- */

typedef struct {
    metrics_t *m;
    size_t len;
    buf_t out; /* the whole response, sent in pieces that fit the connection's send bound */
    size_t off;
    char req[MHTTP_REQ_MAX];
} mhttp_req_t;

/* Sends what fits; the rest goes from on_writable. Closes once everything is queued. */
static void pump(conn_t *c, mhttp_req_t *r)
{
    while (r->off < r->out.len) {
        size_t n = r->out.len - r->off, space = conn_send_space(c);
        if (n > space)
            n = space;
        if (n > 16384)
            n = 16384;
        if (n == 0 || conn_send(c, r->out.data + r->off, n) != 0) {
            conn_want_writable(c);
            return;
        }
        r->off += n;
    }
    conn_close(c);
}

static void on_writable(conn_t *c)
{
    pump(c, conn_ctx(c));
}

static void on_open(conn_t *c)
{
    metrics_t *m = conn_ctx(c);
    mhttp_req_t *r = calloc(1, sizeof(*r));
    if (!r) {
        conn_set_ctx(c, NULL);
        conn_abort(c);
        return;
    }
    r->m = m;
    buf_init(&r->out, MHTTP_BODY_MAX + MHTTP_HEAD_MAX);
    conn_set_ctx(c, r);
    conn_timer_arm(c, 0, MHTTP_CONN_TIMEOUT_MS);
}

static void on_data(conn_t *c, const uint8_t *data, size_t len)
{
    mhttp_req_t *r = conn_ctx(c);
    if (!r || r->len == SIZE_MAX)
        return;
    if (len > sizeof(r->req) - 1 - r->len)
        len = sizeof(r->req) - 1 - r->len; /* the rest cannot matter: 431 below at the latest */
    memcpy(r->req + r->len, data, len);
    r->len += len;
    r->req[r->len] = '\0';
    req_kind_t kind = classify(r->req, r->len);
    if (kind == REQ_MORE)
        return;
    r->len = SIZE_MAX; /* one request per connection */
    char head[MHTTP_HEAD_MAX];
    buf_t body;
    buf_init(&body, MHTTP_BODY_MAX);
    int code = answer_body(r->m, kind, &body);
    size_t hlen = answer_head(code, body.len, head);
    buf_reset(&r->out);
    r->off = 0;
    if (buf_append(&r->out, head, hlen) != 0 ||
        (body.len && buf_append(&r->out, body.data, body.len) != 0))
        conn_abort(c);
    else
        pump(c, r);
    buf_free(&body);
}

static void on_timer(conn_t *c, unsigned id)
{
    conn_abort(c);
}

static void on_close(conn_t *c, int reason)
{
    mhttp_req_t *r = conn_ctx(c);
    if (r) {
        buf_free(&r->out);
        free(r);
    }
    conn_set_ctx(c, NULL);
}

static const conn_ops_t mhttp_ops = {.on_open = on_open,
                                     .on_data = on_data,
                                     .on_writable = on_writable,
                                     .on_timer = on_timer,
                                     .on_close = on_close};

int mhttp_listen(wgroup_t *g, unsigned worker, struct sockaddr_storage *sa, metrics_t *m)
{
    return wgroup_listen_one(g, worker, sa, &mhttp_ops, m);
}
