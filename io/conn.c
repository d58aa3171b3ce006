#include "io/conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "io/listen.h"
#include "io/worker.h"

enum { CONN_OPENING = 1, CONN_OPEN, CONN_DRAINING, CONN_CLOSING };

/* A send buffer that grew past this is released once empty, so idle connections stay small. */
#define CONN_SBUF_KEEP  (64u * 1024u)
#define LOG_INTERVAL_NS (10ull * 1000000000ull)
/* Free slots below which a listener stops using multishot accept. */
#define ACCEPT_HEADROOM 64u

static size_t send_max(const conn_t *c);
static void begin_shutdown(conn_t *c);

/* ---- accessors ---------------------------------------------------------------------------- */

void conn_set_ctx(conn_t *c, void *ctx)
{
    c->ctx = ctx;
}
void *conn_ctx(const conn_t *c)
{
    return c->ctx;
}
int conn_fd(const conn_t *c)
{
    return c->fd;
}
worker_t *conn_worker(const conn_t *c)
{
    return c->w;
}
uint64_t conn_id(const conn_t *c)
{
    return ((uint64_t)c->w->idx << 56) | ((uint64_t)c->hdr.gen << 32) | c->hdr.idx;
}
conn_t *conn_lookup(worker_t *w, uint64_t id)
{
    if ((id >> 56) != w->idx)
        return NULL;
    conn_t *c = conntab_get(&w->conns, (uint32_t)id, (uint32_t)(id >> 32) & CONNTAB_GEN_MASK);
    if (!c || (c->state != CONN_OPEN && c->state != CONN_OPENING))
        return NULL;
    return c;
}

const struct sockaddr_storage *conn_peer(conn_t *c)
{
    if (!c->peer_known) {
        socklen_t len = sizeof(c->peer);
        if (getpeername(c->fd, (struct sockaddr *)&c->peer, &len) != 0)
            memset(&c->peer, 0, sizeof(c->peer));
        c->peer_known = true;
    }
    return &c->peer;
}
size_t conn_send_queued(const conn_t *c)
{
    return (c->sbuf.len - c->soff) + c->qbuf.len;
}

static size_t send_max(const conn_t *c)
{
    return c->qbuf.max;
}

size_t conn_send_space(const conn_t *c)
{
    size_t q = conn_send_queued(c);
    return q >= send_max(c) ? 0 : send_max(c) - q;
}

void conn_trim(conn_t *c)
{
    if (c->send_inflight || c->qbuf.len || c->sbuf.len)
        return;
    size_t max = c->qbuf.max;
    buf_free(&c->sbuf);
    buf_free(&c->qbuf);
    buf_init(&c->sbuf, max);
    buf_init(&c->qbuf, max);
    c->soff = 0;
}

static void flush_list_add(conn_t *c)
{
    if (!c->flush_listed) {
        c->flush_listed = true;
        c->next_flush = c->w->flush_head;
        c->w->flush_head = c;
    }
}

void conn_want_writable(conn_t *c)
{
    c->want_writable = true;
    /* Already below half: conn_flush delivers it at the end of this loop iteration. */
    if (conn_send_queued(c) <= send_max(c) / 2)
        flush_list_add(c);
}

static void maybe_writable(conn_t *c)
{
    if (c->want_writable && c->state == CONN_OPEN && conn_send_queued(c) <= send_max(c) / 2) {
        c->want_writable = false;
        if (c->ops->on_writable)
            c->ops->on_writable(c);
    }
}

static uint64_t tag(const conn_t *c, unsigned op)
{
    return iotag_make(op, c->hdr.idx, c->hdr.gen);
}

/* ---- buffers ------------------------------------------------------------------------------ */

void conn_recycle_buffer(worker_t *w, uint32_t flags)
{
    if (!(flags & IORING_CQE_F_BUFFER))
        return;
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    if (bid >= w->rbuf_count)
        return;
    io_uring_buf_ring_add(w->br, w->rbufs + (size_t)bid * w->rbuf_size, w->rbuf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(w->rbuf_count),
                          (int)w->br_pending++);
}

/* ---- arming ------------------------------------------------------------------------------- */

static void arm_recv(conn_t *c)
{
    worker_t *w = c->w;
    if (c->recv_armed || c->recv_paused || c->state != CONN_OPEN)
        return;
    struct io_uring_sqe *sqe = worker_sqe(w);
    if (!sqe)
        return;
    if (w->feat->multishot_recv && !c->recv_single)
        io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    else
        io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, tag(c, IOOP_RECV));
    c->recv_armed = true;
}

int conn_arm_accept(worker_t *w, wlistener_t *l)
{
    if (l->armed || l->fd < 0)
        return 0;
    struct io_uring_sqe *sqe = worker_sqe(w);
    if (!sqe)
        return -EBUSY;
    /* Multishot only with room to spare: the kernel may accept a whole backlog burst (each with
     * a descriptor) before the loop sees the first completion. Near the budget, one accept at a
     * time keeps the descriptors a refusal costs to one. */
    l->multishot = w->feat->multishot_accept && w->conns.used + ACCEPT_HEADROOM < w->conn_cap;
    if (l->multishot)
        io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, iotag_make(IOOP_ACCEPT, l->idx, 0));
    l->armed = true;
    l->cancelling = false;
    return 0;
}

static void accept_retry(timer_ent_t *t, void *arg)
{
    wlistener_t *l = arg;
    conn_arm_accept(l->w, l);
}

static void conn_timer_fire(timer_ent_t *t, void *arg)
{
    conn_t *c = arg;
    unsigned id = (unsigned)(t - c->tmr);
    if (c->state == CONN_OPEN && c->ops->on_timer)
        c->ops->on_timer(c, id);
}

static void linger_fire(timer_ent_t *t, void *arg)
{
    conn_t *c = arg;
    /* Flushing took too long (peer not reading): give up on the rest. */
    if (c->state == CONN_DRAINING || c->state == CONN_OPENING)
        begin_shutdown(c);
}

static conn_t *conn_new(worker_t *w, int fd, const conn_ops_t *ops, void *ctx)
{
    conn_t *c = conntab_alloc(&w->conns);
    if (!c)
        return NULL;
    c->w = w;
    c->fd = fd;
    c->ops = ops;
    c->ctx = ctx;
    buf_init(&c->sbuf, w->send_max);
    buf_init(&c->qbuf, w->send_max);
    for (unsigned i = 0; i < CONN_TIMERS; i++)
        timer_init(&c->tmr[i], conn_timer_fire, c);
    timer_init(&c->linger, linger_fire, c);
    WORKER_STAT_ADD(w, conns_open, 1);
    return c;
}

/* ---- closing ------------------------------------------------------------------------------ */

static void schedule_close_notify(conn_t *c, int reason)
{
    if (c->close_listed || c->notified_close)
        return;
    c->close_reason = reason;
    c->close_listed = true;
    c->next_close = c->w->close_head;
    c->w->close_head = c;
}

static void maybe_free(conn_t *c)
{
    if (c->state != CONN_CLOSING || c->recv_armed || c->send_inflight || c->pending ||
        !c->notified_close || c->flush_listed)
        return;
    worker_t *w = c->w;
    for (unsigned i = 0; i < CONN_TIMERS; i++)
        timer_cancel(&w->timers, &c->tmr[i]);
    timer_cancel(&w->timers, &c->linger);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_free(&c->sbuf);
    buf_free(&c->qbuf);
    c->state = 0;
    WORKER_STAT_ADD(w, conns_open, (uint64_t)-1);
    conntab_free(&w->conns, c);
}

static void begin_shutdown(conn_t *c)
{
    worker_t *w = c->w;
    if (c->state == CONN_CLOSING)
        return;
    c->state = CONN_CLOSING;
    for (unsigned i = 0; i < CONN_TIMERS; i++)
        timer_cancel(&w->timers, &c->tmr[i]);
    timer_cancel(&w->timers, &c->linger);
    /* shutdown() ends a multishot recv (EOF) and fails sends at once; the cancel covers a connect
     * still in flight. The slot is only freed once every SQE has come back, so the kernel never
     * writes into or reads from a slot that was reused. */
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_RDWR);
    if (c->recv_armed || c->send_inflight || c->pending) {
        struct io_uring_sqe *sqe = worker_sqe(w);
        if (sqe) {
            io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
            io_uring_sqe_set_data64(sqe, tag(c, IOOP_CANCEL));
            c->pending++;
        }
    }
    maybe_free(c);
}

void conn_close(conn_t *c)
{
    if (c->state != CONN_OPEN && c->state != CONN_OPENING)
        return;
    schedule_close_notify(c, CONN_CLOSED_LOCAL);
    if (c->state == CONN_OPEN && conn_send_queued(c) > 0) {
        c->state = CONN_DRAINING;
        timer_arm_at(&c->w->timers, &c->linger,
                     timer_now_ns() + (uint64_t)c->w->linger_ms * 1000000u);
        return;
    }
    begin_shutdown(c);
}

static void close_with(conn_t *c, int reason, bool flush)
{
    if (c->state == CONN_CLOSING)
        return;
    schedule_close_notify(c, reason);
    if (flush && c->state == CONN_OPEN && conn_send_queued(c) > 0) {
        c->state = CONN_DRAINING;
        timer_arm_at(&c->w->timers, &c->linger,
                     timer_now_ns() + (uint64_t)c->w->linger_ms * 1000000u);
        return;
    }
    begin_shutdown(c);
}

void conn_abort(conn_t *c)
{
    close_with(c, CONN_CLOSED_LOCAL, false);
}

void conn_process_closes(worker_t *w)
{
    while (w->close_head) {
        conn_t *c = w->close_head;
        w->close_head = c->next_close;
        c->close_listed = false;
        c->notified_close = true;
        /* A failed outgoing connect is reported too (without on_open before it). */
        if (c->ops && c->ops->on_close && (c->opened || c->outgoing))
            c->ops->on_close(c, c->close_reason);
        maybe_free(c);
    }
}

void conn_close_all(worker_t *w)
{
    for (uint32_t i = 0; i < w->conns.cap; i++) {
        conn_t *c = conntab_at(&w->conns, i);
        if (!c->hdr.in_use)
            continue;
        if (!c->notified_close && !c->close_listed)
            schedule_close_notify(c, -ECANCELED);
    }
    conn_process_closes(w);
    /* The ring is about to go away with whatever is in flight; release the slots directly. */
    for (uint32_t i = 0; i < w->conns.cap; i++) {
        conn_t *c = conntab_at(&w->conns, i);
        if (!c->hdr.in_use)
            continue;
        c->state = CONN_CLOSING;
        c->recv_armed = c->send_inflight = c->flush_listed = false;
        c->pending = 0;
        maybe_free(c);
    }
}

/* ---- sending ------------------------------------------------------------------------------ */

int conn_send(conn_t *c, const void *data, size_t len)
{
    /* While connecting, bytes queue and leave once the connect completes. */
    if (c->state != CONN_OPEN && c->state != CONN_OPENING)
        return -EPIPE;
    if (conn_send_queued(c) + len > send_max(c)) {
        c->want_writable = true;
        return FG_ELIMIT;
    }
    int ret = buf_append(&c->qbuf, data, len);
    if (ret < 0)
        return ret;
    flush_list_add(c);
    return 0;
}

static void submit_send(conn_t *c)
{
    struct io_uring_sqe *sqe = worker_sqe(c->w);
    if (!sqe) {
        close_with(c, -ENOMEM, false);
        return;
    }
    io_uring_prep_send(sqe, c->fd, c->sbuf.data + c->soff, c->sbuf.len - c->soff, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(c, IOOP_SEND));
    c->send_inflight = true;
    WORKER_STAT_ADD(c->w, sends, 1);
}

static void start_send(conn_t *c)
{
    if (c->send_inflight || c->qbuf.len == 0)
        return;
    if (c->state != CONN_OPEN && c->state != CONN_DRAINING)
        return;
    /* Swap: what was queued goes in flight as one send; the (empty) old buffer queues. */
    buf_t t = c->sbuf;
    c->sbuf = c->qbuf;
    c->qbuf = t;
    buf_reset(&c->qbuf);
    c->soff = 0;
    submit_send(c);
}

void conn_flush(worker_t *w)
{
    while (w->flush_head) {
        conn_t *c = w->flush_head;
        w->flush_head = c->next_flush;
        c->flush_listed = false;
        start_send(c);
        /* on_writable may queue more and put c back on the list: that is handled in this loop. */
        maybe_writable(c);
        maybe_free(c);
    }
}

static void handle_send(conn_t *c, int res)
{
    c->send_inflight = false;
    if (c->state == CONN_CLOSING) {
        maybe_free(c);
        return;
    }
    if (res < 0) {
        close_with(c, res, false);
        return;
    }
    WORKER_STAT_ADD(c->w, bytes_out, (uint64_t)res);
    c->soff += (size_t)res;
    if (c->soff < c->sbuf.len) {
        /* Short send: the socket buffer is full. Send the rest; it stays in order because nothing
         * else is in flight on this connection. */
        WORKER_STAT_ADD(c->w, partial_sends, 1);
        submit_send(c);
        return;
    }
    c->soff = 0;
    buf_reset(&c->sbuf);
    if (c->sbuf.cap > CONN_SBUF_KEEP) {
        size_t max = c->sbuf.max;
        buf_free(&c->sbuf);
        buf_init(&c->sbuf, max);
    }
    if (c->qbuf.len) {
        start_send(c);
    } else if (c->state == CONN_DRAINING) {
        begin_shutdown(c);
        return;
    }
    maybe_writable(c);
}

/* ---- receiving ---------------------------------------------------------------------------- */

void conn_recv_pause(conn_t *c)
{
    if (c->recv_paused)
        return;
    c->recv_paused = true;
    /* A multishot receive goes on filling buffers until the cancel is seen, and is re-armed on
       resume with whatever the socket holds: megabytes from a fast peer, more than a paused
       handler can keep. A connection that was paused once gets one buffer per receive from
       then on, so what arrives after a pause is bounded by one buffer. */
    c->recv_single = true;
    if (c->recv_armed && c->state == CONN_OPEN) {
        struct io_uring_sqe *sqe = worker_sqe(c->w);
        if (sqe) {
            io_uring_prep_cancel64(sqe, tag(c, IOOP_RECV), 0);
            io_uring_sqe_set_data64(sqe, tag(c, IOOP_CANCEL));
            c->pending++;
        }
    }
}

void conn_recv_resume(conn_t *c)
{
    if (!c->recv_paused)
        return;
    c->recv_paused = false;
    arm_recv(c);
}

static void handle_recv(conn_t *c, int res, uint32_t flags)
{
    worker_t *w = c->w;
    bool more = flags & IORING_CQE_F_MORE;
    if (!more)
        c->recv_armed = false;
    if (res > 0 && (flags & IORING_CQE_F_BUFFER)) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        WORKER_STAT_ADD(w, bytes_in, (uint64_t)res);
        /* Deliver even while paused: these bytes left the kernel already. */
        if (c->state == CONN_OPEN && bid < w->rbuf_count && c->ops->on_data)
            c->ops->on_data(c, w->rbufs + (size_t)bid * w->rbuf_size, (size_t)res);
    }
    conn_recycle_buffer(w, flags);
    if (c->state == CONN_CLOSING) {
        maybe_free(c);
        return;
    }
    if (res == 0) {
        /* Peer EOF. While draining, keep flushing what we owe it (it may only have shut down its
         * sending side); otherwise close after flushing. */
        if (c->state != CONN_DRAINING)
            close_with(c, -EPIPE, true);
        return;
    }
    if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        close_with(c, res, false);
        return;
    }
    if (res == -ENOBUFS)
        WORKER_STAT_ADD(w, enobufs, 1);
    if (!c->recv_armed)
        arm_recv(c);
}

/* ---- accepting ---------------------------------------------------------------------------- */

static void serve_accepted(worker_t *w, const wlistener_t *l, int fd)
{
    conn_t *c = w->conns.used < w->conn_cap ? conn_new(w, fd, l->ops, l->arg) : NULL;
    if (!c) {
        /* Over the connection budget: refuse rather than run out of descriptors later. */
        close(fd);
        WORKER_STAT_ADD(w, refused, 1);
        if (worker_log_allowed(&w->last_refuse_log_ns, LOG_INTERVAL_NS))
            log_warn("io: worker %u refusing connections: %u of %u in use (%lu refused so far)",
                     w->idx, w->conns.used, w->conn_cap,
                     (unsigned long)atomic_load(&w->stats.refused));
        return;
    }
    c->state = CONN_OPEN;
    c->opened = true;
    WORKER_STAT_ADD(w, accepted, 1);
    arm_recv(c);
    if (c->ops->on_open)
        c->ops->on_open(c);
}

void conn_adopt(worker_t *w, uint32_t li, int fd)
{
    /* Stopped listening (quiesce) since the hand-over: as for a late accept completion. */
    if (li >= w->nlisteners || w->listeners[li].fd < 0 || !w->listeners[li].ops) {
        close(fd);
        return;
    }
    serve_accepted(w, &w->listeners[li], fd);
}

static void handle_accept(worker_t *w, uint32_t li, int res, uint32_t flags)
{
    if (li >= w->nlisteners)
        return;
    wlistener_t *l = &w->listeners[li];
    if (!(flags & IORING_CQE_F_MORE))
        l->armed = false;
    if (l->fd < 0) {
        /* The listener was closed (quiesce): late completions are neither served nor logged. */
        if (res >= 0)
            close(res);
        return;
    }
    if (res >= 0) {
        if (!worker_hand_off(w, l, res))
            serve_accepted(w, l, res);
    } else if (res != -ECANCELED) {
        WORKER_STAT_ADD(w, accept_errors, 1);
        if (worker_log_allowed(&w->last_accept_err_log_ns, LOG_INTERVAL_NS))
            log_warn("io: worker %u accept failed: %s (%lu so far)", w->idx, fg_strerror(res),
                     (unsigned long)atomic_load(&w->stats.accept_errors));
    }
    if (l->armed && l->multishot && !l->cancelling &&
        w->conns.used + ACCEPT_HEADROOM >= w->conn_cap) {
        struct io_uring_sqe *sqe = worker_sqe(w);
        if (sqe) {
            io_uring_prep_cancel64(sqe, iotag_make(IOOP_ACCEPT, l->idx, 0), 0);
            io_uring_sqe_set_data64(sqe, iotag_make(IOOP_NOP, 0, 0));
            l->cancelling = true;
        }
    }
    if (!l->armed) {
        /* Out of descriptors or memory: retrying at once would spin; the pending connections
         * wait in the listen backlog until something closes. */
        if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
            timer_init(&l->retry, accept_retry, l);
            timer_arm_at(&w->timers, &l->retry, timer_now_ns() + 50ull * 1000000ull);
        } else {
            conn_arm_accept(w, l);
        }
    }
}

/* ---- connecting --------------------------------------------------------------------------- */

int io_connect(worker_t *w, const struct sockaddr *sa, socklen_t salen, uint64_t timeout_ms,
               const conn_ops_t *ops, void *ctx, conn_t **out)
{
    if (out)
        *out = NULL;
    if (w->conns.used >= w->conn_cap)
        return FG_ELIMIT;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    conn_t *c = conn_new(w, fd, ops, ctx);
    if (!c) {
        close(fd);
        return FG_ELIMIT;
    }
    c->outgoing = true;
    c->state = CONN_OPENING;
    if (salen <= sizeof(c->peer)) {
        memcpy(&c->peer, sa, salen);
        c->peer_known = true;
    }
    struct io_uring_sqe *sqe = worker_sqe(w);
    if (!sqe)
        goto fail;
    io_uring_prep_connect(sqe, fd, (const struct sockaddr *)&c->peer, salen);
    io_uring_sqe_set_data64(sqe, tag(c, IOOP_CONNECT));
    c->pending++;
    WORKER_STAT_ADD(w, connects, 1);
    if (timeout_ms && w->feat->link_timeout) {
        sqe->flags |= IOSQE_IO_LINK;
        struct io_uring_sqe *t = worker_sqe(w);
        if (!t) {
            /* The connect SQE is already queued with a link flag; fall back to a timer. */
            sqe->flags &= (uint8_t)~IOSQE_IO_LINK;
        } else {
            c->connect_ts.tv_sec = (long long)(timeout_ms / 1000u);
            c->connect_ts.tv_nsec = (long long)(timeout_ms % 1000u) * 1000000;
            io_uring_prep_link_timeout(t, &c->connect_ts, 0);
            io_uring_sqe_set_data64(t, tag(c, IOOP_LINK_TMO));
            c->pending++;
            timeout_ms = 0;
        }
    }
    if (timeout_ms)
        timer_arm_at(&w->timers, &c->linger, timer_now_ns() + timeout_ms * 1000000u);
    if (out)
        *out = c;
    return 0;
fail:
    c->state = CONN_CLOSING;
    c->notified_close = true;
    maybe_free(c);
    return -EBUSY;
}

static void handle_connect(conn_t *c, int res)
{
    c->pending--;
    if (c->state != CONN_OPENING) {
        maybe_free(c);
        return;
    }
    if (res < 0) {
        /* A linked timeout that fired cancels the connect: report it as a timeout. */
        close_with(c, res == -ECANCELED ? -ETIMEDOUT : res, false);
        return;
    }
    timer_cancel(&c->w->timers, &c->linger);
    c->state = CONN_OPEN;
    c->opened = true;
    arm_recv(c);
    if (c->qbuf.len)
        flush_list_add(c);
    if (c->ops->on_open)
        c->ops->on_open(c);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

void conn_handle_cqe(worker_t *w, unsigned op, uint32_t idx, uint32_t gen, int res, uint32_t flags)
{
    if (op == IOOP_ACCEPT) {
        handle_accept(w, idx, res, flags);
        return;
    }
    conn_t *c = conntab_get(&w->conns, idx, gen);
    if (!c) {
        /* Stale: the slot was freed (and maybe reused) since this SQE was made. A buffer the
         * kernel picked for it must still go back to the ring. */
        conn_recycle_buffer(w, flags);
        WORKER_STAT_ADD(w, stale, 1);
        return;
    }
    switch (op) {
    case IOOP_RECV:
        handle_recv(c, res, flags);
        break;
    case IOOP_SEND:
        handle_send(c, res);
        break;
    case IOOP_CONNECT:
        handle_connect(c, res);
        break;
    case IOOP_LINK_TMO:
    case IOOP_CANCEL:
        conn_recycle_buffer(w, flags);
        if (c->pending)
            c->pending--;
        maybe_free(c);
        break;
    default:
        break;
    }
}

int conn_timer_arm(conn_t *c, unsigned id, uint64_t ms)
{
    if (id >= CONN_TIMERS || c->state != CONN_OPEN)
        return -EINVAL;
    return timer_arm_at(&c->w->timers, &c->tmr[id], timer_now_ns() + ms * 1000000u);
}

void conn_timer_cancel(conn_t *c, unsigned id)
{
    if (id < CONN_TIMERS)
        timer_cancel(&c->w->timers, &c->tmr[id]);
}
