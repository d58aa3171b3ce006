#include "io/gw_flow.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"
#include "io/conn.h"
#include "io/gw_route.h"
#include "io/gw_session.h"

/* One backlog record: this header, from NUL, to NUL, the stanza bytes. */
typedef struct {
    uint32_t len;
    uint16_t from_len, to_len;
} rec_hdr_t;

static size_t rec_size(const rec_hdr_t *h)
{
    return sizeof(*h) + h->from_len + 1u + h->to_len + 1u + h->len;
}

/* Adds v to this worker's share of series id (a gauge or a counter registered at start). */
static void series_add(gw_worker_t *k, int id, int64_t v)
{
    if (id >= 0)
        metrics_add(k->gw->metrics, k->idx, id, v);
}

static bool backlog_empty(const gw_sess_t *d)
{
    return d->bl_off >= d->backlog.len;
}

static int backlog_push(gw_sess_t *d, const char *from, const char *to, const void *data,
                        size_t len)
{
    size_t fl = strlen(from), tl = strlen(to);
    if (fl > UINT16_MAX || tl > UINT16_MAX || len > UINT32_MAX)
        return FG_ELIMIT;
    rec_hdr_t h = {.len = (uint32_t)len, .from_len = (uint16_t)fl, .to_len = (uint16_t)tl};
    if (backlog_empty(d)) {
        buf_reset(&d->backlog);
        d->bl_off = 0;
    }
    int rc = buf_reserve(&d->backlog, rec_size(&h));
    if (rc != 0)
        return rc == -ENOMEM ? FG_ELIMIT : rc;
    /* Each append fits in the reserved room, so none of them can fail. */
    buf_append(&d->backlog, &h, sizeof(h));
    buf_append(&d->backlog, from, fl + 1);
    buf_append(&d->backlog, to, tl + 1);
    buf_append(&d->backlog, data, len);
    series_add(d->k, d->k->m_backlog, (int64_t)rec_size(&h));
    return 0;
}

/* The oldest record: its header and pointers into the backlog. */
static void backlog_peek(const gw_sess_t *d, rec_hdr_t *h, const char **from, const char **to,
                         const uint8_t **data)
{
    const uint8_t *p = d->backlog.data + d->bl_off;
    memcpy(h, p, sizeof(*h));
    *from = (const char *)p + sizeof(*h);
    *to = *from + h->from_len + 1;
    *data = (const uint8_t *)*to + h->to_len + 1;
}

/* Bytes waiting to leave on d: its connection's queue and what TLS has not handed it yet. */
static size_t queued(const gw_sess_t *d, size_t *max)
{
    size_t q = conn_send_queued(d->conn);
    *max = q + conn_send_space(d->conn);
    return q + (d->tls ? tls_conn_cipher_pending(d->tls) : 0);
}

/* d should not be fed faster: stanzas wait in its backlog, or its queue is past `num` quarters of
   its bound. Sources pause past three quarters and resume at half (on_writable), so a queue
   hovering near one mark does not pause and resume them for every stanza. */
static bool over(const gw_sess_t *d, unsigned num)
{
    if (!backlog_empty(d))
        return true;
    if (!d->conn)
        return false;
    size_t max, q = queued(d, &max);
    return q > max / 4 * num;
}

/* ---- gates ---- */

static void gate_wait(gw_gate_t *g, gw_sess_t *src)
{
    /* Only a partner's own stream is paused. A component or an internal server feeds every
       partner: pausing it for one partner's congested stream would let that partner (one that
       stops reading, say) stall the traffic to all of them. Its stanzas wait in the backlog and
       are bounced past it. */
    if (!src || src->kind != STREAM_IN || !src->partner[0])
        return;
    if (src->gate || !src->conn || src->dead)
        return;
    src->gate = g;
    gw_sess_hold(src);
    src->paused_ms = gw_now_ms();
    /* In arrival order: waiters are let go a batch at a time, the longest waiting first. */
    src->gnext = NULL;
    src->gprev = g->tail;
    if (g->tail)
        g->tail->gnext = src;
    else
        g->head = src;
    g->tail = src;
    series_add(src->k, src->k->m_pauses, 1);
    series_add(src->k, src->k->m_paused, 1);
}

static void gate_leave(gw_sess_t *s)
{
    gw_gate_t *g = s->gate;
    if (!g)
        return;
    if (s->gprev)
        s->gprev->gnext = s->gnext;
    else
        g->head = s->gnext;
    if (s->gnext)
        s->gnext->gprev = s->gprev;
    else
        g->tail = s->gprev;
    s->gate = NULL;
    s->gnext = s->gprev = NULL;
    series_add(s->k, s->k->m_paused, -1);
}

static void resume(gw_sess_t *s)
{
    gate_leave(s);
    if (s->conn && !s->dead)
        gw_sess_resume(s);
}

void gw_flow_leave(gw_sess_t *s)
{
    gate_leave(s);
}

static void gate_release(gw_gate_t *g)
{
    while (g->head)
        resume(g->head);
}

/* Lets at most GW_RELEASE_BATCH waiters go; true when some still wait. Released all at once,
   a thousand paused partners would each send a stanza and be paused again at once: the
   destination's free half holds a few hundred stanzas, and a resumed stream brings the input it
   buffered meanwhile, so a few streams at a time fill it. */
static bool gate_release_batch(gw_gate_t *g)
{
    for (unsigned i = 0; i < GW_RELEASE_BATCH && g->head; i++)
        resume(g->head);
    return g->head != NULL;
}

/* The next batch goes after the streams just resumed have run (their feeding is armed for now;
   this comes a microsecond later), and only while the destination still has room. */
#define RELEASE_GAP_NS 1000ull

/* ---- component slots (the cross-worker part) ---- */

static void slot_mark(gw_sess_t *d)
{
    if (d->comp_slot < 0 || d->slot_busy)
        return;
    /* Other workers post to the owner's connection only: another congested connection of the
       component holds back only the streams of its own worker (its gate). */
    if (atomic_load(&d->k->gw->comp[d->comp_slot].owner) != (int)d->k->idx)
        return;
    d->slot_busy = true;
    atomic_store(&d->k->gw->comp[d->comp_slot].busy, 1);
}

static void slot_release_fire(timer_ent_t *t, void *arg)
{
    gw_worker_t *k = arg;
    bool more = false;
    unsigned n = atomic_load(&k->gw->ncomp);
    for (unsigned i = 0; i < n && i < GW_COMP_MAX; i++) {
        gw_comp_slot_t *sl = &k->gw->comp[i];
        if (!k->slot_gate[i].head)
            continue;
        if (atomic_load(&sl->busy)) {
            /* Busy again before everyone went: the owner's next wake-up must reach us (the mask
               was taken when it last cleared). Register, then re-check, as after_post does. */
            atomic_fetch_or(&sl->waiters, 1ull << (k->idx % 64));
            if (atomic_load(&sl->busy))
                continue;
        }
        more |= gate_release_batch(&k->slot_gate[i]);
    }
    if (more)
        timer_arm_at(worker_timers(k->w), t, timer_now_ns() + RELEASE_GAP_NS);
}

/* The component of `slot` drained: its waiters on this worker go, a batch at a time. */
static void slot_release(gw_worker_t *k, unsigned slot)
{
    if (gate_release_batch(&k->slot_gate[slot]) && !timer_armed(&k->slot_rel_tmr))
        timer_arm_at(worker_timers(k->w), &k->slot_rel_tmr, timer_now_ns() + RELEASE_GAP_NS);
}

static void slot_clear(gw_sess_t *d)
{
    if (d->comp_slot < 0 || !d->slot_busy)
        return;
    gw_worker_t *k = d->k;
    gw_comp_slot_t *sl = &k->gw->comp[d->comp_slot];
    d->slot_busy = false;
    /* Clear first, then take the waiters: a worker that registers after the exchange sees the
       mark cleared on its re-check (gw_flow_after_post), one before it is in the mask. */
    atomic_store(&sl->busy, 0);
    uint64_t mask = atomic_exchange(&sl->waiters, 0);
    for (unsigned w = 0; mask && w < k->gw->nworkers; w++) {
        if (!(mask & (1ull << (w % 64))))
            continue;
        if (w == k->idx) {
            slot_release(k, (unsigned)d->comp_slot);
            continue;
        }
        xq_msg_t m = {.type = GW_MSG_RESUME, .arg = (uint64_t)d->comp_slot};
        (void)worker_post(k->w, k->gw->g, w, &m); /* full queue: gw_flow_tick repairs it */
    }
}

static void after_post(gw_worker_t *k, unsigned slot)
{
    gw_sess_t *src = k->cur_src;
    gw_comp_slot_t *sl = &k->gw->comp[slot];
    if (!src || src->gate || slot >= GW_COMP_MAX || !atomic_load(&sl->busy))
        return;
    atomic_fetch_or(&sl->waiters, 1ull << (k->idx % 64));
    gate_wait(&k->slot_gate[slot], src);
    if (!atomic_load(&sl->busy))
        slot_release(k, slot);
}

/* ---- outboxes ---- */

#define OUTBOX_RETRY_NS 1000000ull /* 1 ms: a full queue is being worked down by its consumer */

static int post(gw_worker_t *k, unsigned owner, gw_route_msg_t *m)
{
    xq_msg_t msg = {.type = GW_MSG_DELIVER, .from = k->idx, .ptr = m};
    return worker_post(k->w, k->gw->g, owner, &msg);
}

static void outbox_fire(timer_ent_t *t, void *arg)
{
    gw_worker_t *k = arg;
    bool left = false;
    for (unsigned w = 0; w < k->gw->nworkers; w++) {
        gw_outbox_t *o = &k->outbox[w];
        while (o->head) {
            /* Read next first: once posted, the block is the consumer's, which reuses next. */
            gw_route_msg_t *m = o->head, *next = m->next;
            if (post(k, w, m) != 0)
                break;
            o->head = next;
            o->n--;
            series_add(k, k->m_outbox, -1);
        }
        if (o->head)
            left = true;
        else {
            o->tail = NULL;
            gate_release(&o->gate);
        }
    }
    if (left)
        timer_arm_at(worker_timers(k->w), t, timer_now_ns() + OUTBOX_RETRY_NS);
}

int gw_flow_start(gw_worker_t *k)
{
    metrics_t *m = k->gw->metrics;
    k->outbox = calloc(k->gw->nworkers, sizeof(*k->outbox));
    timer_init(&k->flow_tmr, outbox_fire, k);
    timer_init(&k->slot_rel_tmr, slot_release_fire, k);
    k->m_paused = metrics_register(m, METRIC_GAUGE, "fedgate_flow_paused_streams", NULL,
                                   "Streams not read until their stanzas' destination drains");
    k->m_backlog = metrics_register(m, METRIC_GAUGE, "fedgate_flow_backlog_bytes", NULL,
                                    "Stanza bytes waiting for a congested destination stream");
    k->m_outbox = metrics_register(m, METRIC_GAUGE, "fedgate_flow_outbox_stanzas", NULL,
                                   "Stanzas waiting for room in another worker's queue");
    /* Registered here, not per event: a pause can come with every other stanza at full load. */
    k->m_pauses = metrics_register(m, METRIC_COUNTER, "fedgate_flow_pauses_total", NULL,
                                   "Partner streams paused for a congested destination");
    k->m_backlogged = metrics_register(m, METRIC_COUNTER, "fedgate_flow_backlogged_total", NULL,
                                       "Stanzas that waited in a destination's backlog");
    k->m_backlog_full =
        metrics_register(m, METRIC_COUNTER, "fedgate_flow_backlog_full_total", NULL,
                         "Stanzas refused because the destination's backlog was full");
    k->m_pause_timeouts =
        metrics_register(m, METRIC_COUNTER, "fedgate_flow_pause_timeouts_total", NULL,
                         "Pauses ended by the time bound rather than the destination draining");
    return k->outbox ? 0 : -ENOMEM;
}

void gw_flow_stop(gw_worker_t *k)
{
    timer_cancel(worker_timers(k->w), &k->flow_tmr);
    timer_cancel(worker_timers(k->w), &k->slot_rel_tmr);
    for (unsigned w = 0; k->outbox && w < k->gw->nworkers; w++)
        while (k->outbox[w].head) {
            gw_route_msg_t *m = k->outbox[w].head;
            k->outbox[w].head = m->next;
            free(m);
        }
    free(k->outbox);
    k->outbox = NULL;
}

int gw_flow_post(gw_worker_t *k, unsigned owner, unsigned slot, gw_route_msg_t *m)
{
    gw_outbox_t *o = &k->outbox[owner];
    /* Behind what already waits, to keep the order. */
    if (!o->head && post(k, owner, m) == 0) {
        after_post(k, slot);
        return 0;
    }
    if (o->n >= GW_OUTBOX_MAX)
        return FG_ELIMIT;
    m->next = NULL;
    if (o->tail)
        o->tail->next = m;
    else
        o->head = m;
    o->tail = m;
    o->n++;
    series_add(k, k->m_outbox, 1);
    gate_wait(&o->gate, k->cur_src);
    if (!timer_armed(&k->flow_tmr))
        timer_arm_at(worker_timers(k->w), &k->flow_tmr, timer_now_ns() + OUTBOX_RETRY_NS);
    return 0;
}

void gw_flow_slot_resumed(gw_worker_t *k, unsigned slot)
{
    if (slot < GW_COMP_MAX)
        slot_release(k, slot);
}

/* ---- destinations ---- */

static void after_queue(gw_sess_t *d)
{
    if (!over(d, 3))
        return;
    if (d->conn)
        conn_want_writable(d->conn);
    slot_mark(d);
    gw_sess_t *src = d->k->cur_src;
    if (src != d)
        gate_wait(&d->own_gate, src);
}

int gw_flow_send(gw_sess_t *d, const char *from, const char *to, const void *data, size_t len)
{
    int rc;
    if (d->dead)
        return -EPIPE;
    if (backlog_empty(d) && !gw_sess_congested(d, len)) {
        rc = stream_send(d->st, from, to, data, len);
    } else {
        rc = backlog_push(d, from, to, data, len);
        if (rc == 0)
            series_add(d->k, d->k->m_backlogged, 1);
        else
            series_add(d->k, d->k->m_backlog_full, 1);
    }
    if (rc == 0)
        after_queue(d);
    return rc;
}

void gw_flow_writable(gw_sess_t *d)
{
    gw_worker_t *k = d->k;
    while (!backlog_empty(d) && !d->dead && d->conn) {
        rec_hdr_t h;
        const char *from, *to;
        const uint8_t *data;
        backlog_peek(d, &h, &from, &to, &data);
        if (gw_sess_congested(d, h.len))
            break;
        int rc = stream_send(d->st, from, to, data, h.len);
        d->bl_off += rec_size(&h);
        series_add(k, k->m_backlog, -(int64_t)rec_size(&h));
        if (rc != 0) {
            /* The bounce may be routed back to d and grow its backlog (moving it): bounce a
               copy. Rare: the stream refused the stanza. */
            uint8_t *copy = malloc(h.len);
            if (copy) {
                memcpy(copy, data, h.len);
                gw_route_bounce(k, copy, h.len,
                                rc == FG_ELIMIT ? "resource-constraint" : "service-unavailable");
                free(copy);
            }
            continue;
        }
        /* Now, not after the loop: the congestion check reads the connection's queue, which the
           stream's bytes reach only when its actions are carried out. */
        gw_sess_drain(d);
    }
    if (d->dead || !d->conn)
        return;
    if (over(d, 2)) {
        conn_want_writable(d->conn);
        return;
    }
    if (gate_release_batch(&d->own_gate) && !timer_armed(&d->release_tmr))
        timer_arm_at(worker_timers(k->w), &d->release_tmr, timer_now_ns() + RELEASE_GAP_NS);
    slot_clear(d);
}

static void release_fire(timer_ent_t *t, void *arg)
{
    gw_sess_t *d = arg;
    if (d->dead || !d->conn)
        return; /* gw_flow_forget lets everyone go */
    if (over(d, 2)) {
        conn_want_writable(d->conn); /* gw_flow_writable goes on */
        return;
    }
    if (gate_release_batch(&d->own_gate))
        timer_arm_at(worker_timers(d->k->w), t, timer_now_ns() + RELEASE_GAP_NS);
}

void gw_flow_sess_init(gw_sess_t *s)
{
    timer_init(&s->release_tmr, release_fire, s);
}

void gw_flow_forget(gw_sess_t *s)
{
    gw_worker_t *k = s->k;
    timer_cancel(worker_timers(k->w), &s->release_tmr);
    gate_leave(s);
    gate_release(&s->own_gate);
    slot_clear(s);
    s->comp_slot = -1;
    /* What still waits cannot go out on this stream any more. The backlog is detached first: the
       bounces are routed and must not find it. */
    buf_t bl = s->backlog;
    size_t off = s->bl_off;
    if (bl.len > off)
        series_add(k, k->m_backlog, -(int64_t)(bl.len - off));
    buf_init(&s->backlog, GW_BACKLOG_MAX);
    s->bl_off = 0;
    const char *cond =
        s->kind == STREAM_COMPONENT ? "service-unavailable" : "remote-server-timeout";
    while (off < bl.len) {
        rec_hdr_t h;
        memcpy(&h, bl.data + off, sizeof(h));
        const uint8_t *data = bl.data + off + sizeof(h) + h.from_len + 1 + h.to_len + 1;
        gw_route_bounce(k, data, h.len, cond);
        off += rec_size(&h);
    }
    buf_free(&bl);
}

void gw_flow_tick(gw_worker_t *k)
{
    uint64_t now = gw_now_ms();
    unsigned n = atomic_load(&k->gw->ncomp);
    for (unsigned i = 0; i < n && i < GW_COMP_MAX; i++)
        if (k->slot_gate[i].head && !atomic_load(&k->gw->comp[i].busy))
            slot_release(k, i);
    for (gw_sess_t *s = k->sessions, *next; s; s = next) {
        next = s->next;
        if (s->gate && now - s->paused_ms > GW_PAUSE_MAX_MS) {
            series_add(k, k->m_pause_timeouts, 1);
            resume(s);
        }
    }
}

void gw_flow_trim(gw_sess_t *s)
{
    if (backlog_empty(s) && s->backlog.cap > 0) {
        buf_free(&s->backlog);
        buf_init(&s->backlog, GW_BACKLOG_MAX);
        s->bl_off = 0;
    }
}
