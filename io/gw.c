#include "io/gw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "io/gw_ptype.h"
#include "io/gw_flow.h"
#include "io/gw_route.h"
#include "io/gw_session.h"

gw_t *gw_global;

uint64_t gw_now_ms(void)
{
    return timer_now_ns() / 1000000ull;
}

/* ---- component registry ---- */

int gw_comp_find(gw_t *gw, const char *domain, int *owner)
{
    unsigned n = atomic_load_explicit(&gw->ncomp, memory_order_acquire);
    *owner = -1;
    for (unsigned i = 0; i < n && i < GW_COMP_MAX; i++)
        if (strcmp(gw->comp[i].domain, domain) == 0) {
            *owner = atomic_load_explicit(&gw->comp[i].owner, memory_order_acquire);
            return (int)i;
        }
    return -1;
}

int gw_comp_owner(gw_t *gw, const char *domain)
{
    int owner;
    gw_comp_find(gw, domain, &owner);
    return owner;
}

int gw_comp_register(gw_t *gw, const char *domain, unsigned worker, uint64_t sess_id)
{
    pthread_mutex_lock(&gw->comp_mu);
    unsigned n = atomic_load(&gw->ncomp), i;
    for (i = 0; i < n; i++)
        if (strcmp(gw->comp[i].domain, domain) == 0)
            break;
    if (i == n) {
        if (n == GW_COMP_MAX) {
            pthread_mutex_unlock(&gw->comp_mu);
            log_warn("component %s: too many components, not routed", domain);
            return -1;
        }
        /* A slot keeps its domain for the process's lifetime, so readers never see it change. */
        snprintf(gw->comp[i].domain, sizeof(gw->comp[i].domain), "%s", domain);
        atomic_store(&gw->comp[i].owner, -1);
        atomic_store_explicit(&gw->ncomp, n + 1, memory_order_release);
    }
    gw_comp_slot_t *sl = &gw->comp[i];
    sl->present[worker / 64] |= 1ull << (worker % 64);
    atomic_store(&sl->sess_id, sess_id);
    atomic_store_explicit(&sl->owner, (int)worker, memory_order_release);
    pthread_mutex_unlock(&gw->comp_mu);
    return (int)i;
}

void gw_comp_unregister(gw_t *gw, const char *domain, unsigned worker, bool last_here)
{
    /* Another connection on this worker keeps serving: nothing changes for the others. */
    if (!last_here)
        return;
    pthread_mutex_lock(&gw->comp_mu);
    unsigned n = atomic_load(&gw->ncomp);
    for (unsigned i = 0; i < n; i++) {
        gw_comp_slot_t *sl = &gw->comp[i];
        if (strcmp(sl->domain, domain) != 0)
            continue;
        sl->present[worker / 64] &= ~(1ull << (worker % 64));
        if (atomic_load(&sl->owner) != (int)worker)
            break;
        /* The owner's last connection went: another worker's takes over, if any. */
        int next = -1;
        for (unsigned w = 0; w < GW_WORKERS_MAX && next < 0; w++)
            if (sl->present[w / 64] & (1ull << (w % 64)))
                next = (int)w;
        atomic_store_explicit(&sl->owner, next, memory_order_release);
        break;
    }
    pthread_mutex_unlock(&gw->comp_mu);
}

/* ---- connection accounting ---- */

static unsigned bucket(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h % GW_PARTNER_BUCKETS;
}

int gw_conn_acquire(gw_t *gw, const char *partner, uint32_t partner_limit, uint32_t total_limit)
{
    uint32_t n = atomic_fetch_add(&gw->nconns, 1);
    if (total_limit && n >= total_limit) {
        atomic_fetch_sub(&gw->nconns, 1);
        return FG_ELIMIT;
    }
    /* Partners sharing a bucket share its count: a collision can only make the limit stricter. */
    _Atomic uint32_t *pc = &gw->partner_conns[bucket(partner)];
    uint32_t m = atomic_fetch_add(pc, 1);
    if (partner_limit && m >= partner_limit) {
        atomic_fetch_sub(pc, 1);
        atomic_fetch_sub(&gw->nconns, 1);
        return FG_ELIMIT;
    }
    return 0;
}

void gw_conn_release(gw_t *gw, const char *partner)
{
    atomic_fetch_sub(&gw->partner_conns[bucket(partner)], 1);
    atomic_fetch_sub(&gw->nconns, 1);
}

bool gw_log_ok(gw_worker_t *k)
{
    return worker_log_allowed(&k->log_ns, 1000000ull);
}

void gw_note_failure(gw_t *gw, const char *partner, const char *reason)
{
    if (!partner || !partner[0] || !reason)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&gw->fail_mu);
    unsigned i;
    for (i = 0; i < gw->nfail; i++)
        if (strcmp(gw->fail[i].partner, partner) == 0)
            break;
    if (i == gw->nfail && gw->nfail < GW_FAIL_MAX)
        gw->nfail++;
    if (i < gw->nfail) {
        snprintf(gw->fail[i].partner, sizeof(gw->fail[i].partner), "%s", partner);
        snprintf(gw->fail[i].reason, sizeof(gw->fail[i].reason), "%s", reason);
        gw->fail[i].unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    }
    pthread_mutex_unlock(&gw->fail_mu);
}

void gw_failures_collect(void *arg, buf_t *out)
{
    gw_t *gw = arg;
    char line[STREAM_DOMAIN_MAX * 2 + 200], part[STREAM_DOMAIN_MAX * 2 + 1];
    pthread_mutex_lock(&gw->fail_mu);
    if (gw->nfail)
        buf_append_str(out, "# HELP fedgate_partner_last_failure_timestamp_seconds When the last "
                            "stream with a partner failed, and why\n"
                            "# TYPE fedgate_partner_last_failure_timestamp_seconds gauge\n");
    for (unsigned i = 0; i < gw->nfail; i++) {
        metrics_escape_label(gw->fail[i].partner, part, sizeof(part));
        snprintf(line, sizeof(line),
                 "fedgate_partner_last_failure_timestamp_seconds{partner=\"%s\",reason=\"%s\"} "
                 "%llu.%03llu\n",
                 part, gw->fail[i].reason, (unsigned long long)(gw->fail[i].unix_ms / 1000),
                 (unsigned long long)(gw->fail[i].unix_ms % 1000));
        buf_append_str(out, line);
    }
    pthread_mutex_unlock(&gw->fail_mu);
}

void gw_count(gw_worker_t *k, const char *name, const char *labels, int64_t v)
{
    /* Registration returns the existing id for a known series; it is rare (per stream or per
       bounce, never per relayed stanza) so its mutex stays off the stanza path. */
    int id = metrics_register(k->gw->metrics, METRIC_COUNTER, name, labels, NULL);
    if (id >= 0)
        metrics_add(k->gw->metrics, k->idx, id, v);
}

/* ---- worker hooks ---- */

void gw_worker_refresh(gw_worker_t *k)
{
    int rc = policy_reader_refresh(k->pol);
    if (rc > 0) {
        log_debug("worker %u: policy changed (txn %llu)", k->idx,
                  (unsigned long long)policy_reader_generation(k->pol));
        gw_sess_recheck(k);
    } else if (rc < 0) {
        log_warn("worker %u: policy refresh failed: %s", k->idx, fg_strerror(rc));
    }
}

static void refresh_fire(timer_ent_t *t, void *arg)
{
    gw_worker_t *k = arg;
    gw_worker_refresh(k);
    gw_route_flush_returns(k);
    gw_flow_tick(k);
    gw_ptype_tick(k);
    timer_arm_at(worker_timers(k->w), t, timer_now_ns() + GW_REFRESH_MS * 1000000ull);
}

/* The pool's counters as of now, into this worker's metric slots. */
static void xpool_publish(gw_worker_t *k)
{
    if (!k->xpool)
        return;
    xml_pool_stats_t ps;
    xml_pool_stats(k->xpool, &ps);
    const int64_t v[4] = {(int64_t)ps.lent, (int64_t)ps.built, (int64_t)ps.dropped,
                          (int64_t)ps.idle_bytes};
    for (int i = 0; i < 4; i++)
        metrics_set(k->gw->metrics, k->idx, k->gw->m_xpool[i], v[i]);
}

static void snap_fire(timer_ent_t *t, void *arg)
{
    gw_worker_t *k = arg;
    if (gw_sess_sweep(k, timer_now_ns()))
        xpool_publish(k);
    timer_arm_at(worker_timers(k->w), t, timer_now_ns() + GW_SWEEP_STEP_MS * 1000000ull);
}

void gw_streams_collect(void *arg, buf_t *out)
{
    gw_t *gw = arg;
    buf_append_str(out, "# HELP fedgate_stream_info Open streams (value: start, unix seconds)\n"
                        "# TYPE fedgate_stream_info gauge\n");
    for (unsigned i = 0; i < gw->nworkers; i++) {
        pthread_mutex_lock(&gw->snap[i].mu);
        /* The scrape body is bounded (io/mhttp): the table gives way to the counters. */
        if (out->len + gw->snap[i].text.len > GW_SNAP_SCRAPE_MAX)
            buf_append_str(out, "# fedgate_stream_info: table of a worker left out (too big)\n");
        else
            buf_append(out, gw->snap[i].text.data, gw->snap[i].text.len);
        pthread_mutex_unlock(&gw->snap[i].mu);
    }
}

void gw_worker_start(worker_t *w)
{
    gw_t *gw = worker_arg(w);
    gw_worker_t *k = calloc(1, sizeof(*k));
    if (!k) {
        log_error("worker %u: out of memory", worker_index(w));
        abort();
    }
    k->gw = gw;
    k->w = w;
    k->idx = worker_index(w);
    int rc = policy_reader_open(gw->store, &k->pol);
    if (rc != 0) {
        log_error("worker %u: cannot read the store %s: %s", k->idx, gw->store, fg_strerror(rc));
        abort();
    }
    dns_config_t dc = {.servers = gw->resolver[0] ? gw->resolver : NULL};
    rc = dns_create(w, &dc, &k->dns);
    if (rc != 0)
        log_error("worker %u: resolver: %s (outgoing streams will fail)", k->idx, fg_strerror(rc));
    k->tls = tls_ctx_ref(gw->tls);
    k->ret = calloc(gw->nworkers, sizeof(*k->ret));
    k->nret = calloc(gw->nworkers, sizeof(*k->nret));
    if (!k->ret || !k->nret) {
        log_error("worker %u: out of memory", k->idx);
        abort();
    }
    if (gw_flow_start(k) != 0) {
        log_error("worker %u: out of memory", k->idx);
        abort();
    }
    rc = gw_ptype_worker_open(k);
    if (rc != 0)
        log_error("worker %u: cannot read the ledger: %s (PublicUnverified contacts are refused)",
                  k->idx, fg_strerror(rc));
    if (xml_pool_new(&k->xpool, GW_XML_POOL_IDLE, 0) != 0)
        log_error("worker %u: out of memory for the parser pool (streams keep their own)", k->idx);
    worker_set_data(w, k);
    timer_init(&k->refresh, refresh_fire, k);
    timer_arm_at(worker_timers(w), &k->refresh, timer_now_ns() + GW_REFRESH_MS * 1000000ull);
    buf_init(&k->snap_next, GW_SNAP_MAX);
    timer_init(&k->snap_tmr, snap_fire, k);
    timer_arm_at(worker_timers(w), &k->snap_tmr, timer_now_ns() + GW_SWEEP_STEP_MS * 1000000ull);
}

void gw_worker_stop(worker_t *w)
{
    gw_worker_t *k = worker_data(w);
    if (!k)
        return;
    timer_cancel(worker_timers(w), &k->refresh);
    timer_cancel(worker_timers(w), &k->snap_tmr);
    gw_flow_stop(k);
    /* Connections are gone (closed by the group before this hook); free what is left. */
    while (k->sessions) {
        gw_sess_t *s = k->sessions;
        if (s->conn)
            conn_set_ctx(s->conn, NULL);
        s->conn = NULL;
        s->dead = true;
        s->verify_pending = false;
        k->sessions = s->next;
        if (k->sessions)
            k->sessions->prev = NULL;
        s->next = s->prev = NULL;
        timer_cancel(worker_timers(w), &s->tmr);
        timer_cancel(worker_timers(w), &s->free_tmr);
        timer_cancel(worker_timers(w), &s->kick_tmr);
        timer_cancel(worker_timers(w), &s->release_tmr);
        if (s->dns_pending && k->dns)
            dns_cancel(k->dns, s->dns_id);
        if (s->counted)
            gw_conn_release(k->gw, s->partner);
        stream_free(s->st);
        tls_conn_free(s->tls);
        buf_free(&s->pin);
        buf_free(&s->backlog); /* stopping: nothing is routed any more, so nothing to bounce */
        free(s->plan);
        free(s);
    }
    if (k->dns)
        dns_destroy(k->dns);
    k->dns = NULL;
    gw_route_free_pools(k);
    free(k->ret);
    free(k->nret);
    gw_ptype_worker_close(k);
    xml_parser_free(k->bparser);
    stanza_arena_free(k->barena);
    buf_free(&k->bout);
    xml_pool_free(k->xpool); /* after the streams it lends to */
    buf_free(&k->snap_next);
    policy_reader_close(k->pol);
    tls_ctx_unref(k->tls);
    worker_set_data(w, NULL);
    free(k);
}

void gw_worker_notify(worker_t *w)
{
    gw_worker_t *k = worker_data(w);
    if (k)
        gw_worker_refresh(k);
}

void gw_worker_drop_msg(const xq_msg_t *m)
{
    if (m->type == GW_MSG_DELIVER)
        free(m->ptr);
    else if (m->type == GW_MSG_RETURN)
        for (gw_route_msg_t *p = m->ptr, *n; p; p = n) {
            n = p->next;
            free(p);
        }
    else if (m->type == GW_MSG_TLS)
        tls_ctx_unref(m->ptr);
}

void gw_worker_msg(worker_t *w, const xq_msg_t *m)
{
    gw_worker_t *k = worker_data(w);
    if (!k) {
        gw_worker_drop_msg(m); /* stopping */
        return;
    }
    switch (m->type) {
    case GW_MSG_DELIVER:
        gw_route_deliver_msg(k, m->ptr);
        break;
    case GW_MSG_RETURN:
        gw_route_recycle(k, m->ptr);
        break;
    case GW_MSG_RESUME:
        gw_flow_slot_resumed(k, (unsigned)m->arg);
        break;
    case GW_MSG_TLS:
        tls_ctx_unref(k->tls);
        k->tls = m->ptr;
        break;
    case GW_MSG_SHUTDOWN:
        gw_sess_close_all(k, "system-shutdown", NULL);
        break;
    default:
        break;
    }
}
