#include "io/mhttp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define MHTTP_REQ_MAX    4096
#define MHTTP_BODY_MAX   (4u * 1024u * 1024u)
#define MHTTP_TIMEOUT_MS 5000

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

static void respond(conn_t *c, mhttp_req_t *r, const char *status, const char *type,
                    const buf_t *body)
{
    char head[256];
    size_t blen = body ? body->len : 0;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n",
                     status, type, blen);
    buf_reset(&r->out);
    if (buf_append(&r->out, head, (size_t)n) != 0 ||
        (blen && buf_append(&r->out, body->data, blen) != 0)) {
        conn_abort(c);
        return;
    }
    r->off = 0;
    pump(c, r);
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
    buf_init(&r->out, MHTTP_BODY_MAX + 512);
    conn_set_ctx(c, r);
    conn_timer_arm(c, 0, MHTTP_TIMEOUT_MS);
}

static void on_data(conn_t *c, const uint8_t *data, size_t len)
{
    mhttp_req_t *r = conn_ctx(c);
    if (!r || r->len == SIZE_MAX)
        return;
    if (len > sizeof(r->req) - 1 - r->len) {
        respond(c, r, "431 Request Header Fields Too Large", "text/plain", NULL);
        r->len = SIZE_MAX;
        return;
    }
    memcpy(r->req + r->len, data, len);
    r->len += len;
    r->req[r->len] = '\0';
    if (!strstr(r->req, "\r\n\r\n") && !strstr(r->req, "\n\n"))
        return;
    bool get =
        strncmp(r->req, "GET /metrics ", 13) == 0 || strncmp(r->req, "GET /metrics?", 13) == 0;
    r->len = SIZE_MAX; /* one request per connection */
    if (!get) {
        buf_t nf = {.data = (uint8_t *)"not found\n", .len = 10, .cap = 10, .max = 10};
        respond(c, r, "404 Not Found", "text/plain", &nf);
        return;
    }
    buf_t body;
    buf_init(&body, MHTTP_BODY_MAX);
    if (metrics_render(r->m, &body) == 0)
        respond(c, r, "200 OK", "text/plain; version=0.0.4", &body);
    else
        respond(c, r, "500 Internal Server Error", "text/plain", NULL);
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
