#include "io/gw_route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/jid.h"
#include "core/log.h"
#include "io/gw_flow.h"
#include "io/gw_ptype.h"
#include "io/gw_session.h"
#include "policy/domain.h"

static int jid_domain_of(const char *jid, char *out, size_t outlen)
{
    jid_t j;
    char raw[STREAM_DOMAIN_MAX + 1];
    if (jid_parse_str(jid, &j) != 0 || jid_domain(&j, raw, sizeof(raw)) < 0)
        return FG_EPARSE;
    return domain_normalize(raw, out, outlen) == 0 ? 0 : FG_EDOMAIN;
}

static void count_bounce(gw_worker_t *k, const char *condition)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", condition);
    gw_count(k, "fedgate_stanzas_bounced_total", labels, 1);
}

static void count_refused(gw_worker_t *k, const char *reason)
{
    char labels[128];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    gw_count(k, "fedgate_stanzas_refused_total", labels, 1);
}

/* A destination stream refused a stanza (gw_flow_send): a full backlog or queue is congestion. */
static void refused_send(gw_worker_t *k, const gw_sess_t *d, int rc, const void *data, size_t len,
                         const char *cond)
{
    if (rc == FG_ELIMIT) {
        count_refused(k, "congested");
        if (gw_log_ok(k))
            log_warn("route -> %s: stream congested and its backlog full, stanza bounced",
                     d->remote);
        cond = "resource-constraint";
    }
    gw_route_bounce(k, data, len, cond);
}

/* ---- components ---- */

static gw_sess_t *find_component(gw_worker_t *k, const char *domain)
{
    gw_sess_t *s = gw_sess_route_find(k, STREAM_COMPONENT, "", domain);
    return s && s->comp_registered ? s : NULL;
}

static void send_component(gw_worker_t *k, gw_sess_t *c, const char *from, const char *to,
                           const void *data, size_t len)
{
    int rc = gw_flow_send(c, from, to, data, len);
    if (rc != 0) {
        refused_send(k, c, rc, data, len, "service-unavailable");
        return;
    }
    gw_sess_drain(c);
}

void gw_route_local_component(gw_worker_t *k, const char *from, const char *to, const void *data,
                              size_t len)
{
    char td[DOMAIN_BUF];
    gw_sess_t *c = NULL;
    if (jid_domain_of(to, td, sizeof(td)) == 0)
        c = find_component(k, td);
    if (!c) {
        gw_route_bounce(k, data, len, "service-unavailable");
        return;
    }
    send_component(k, c, from, to, data, len);
}

static gw_route_msg_t *msg_get(gw_worker_t *k, size_t need)
{
    gw_route_msg_t *m = NULL;
    if (need <= GW_MSG_BLOCK && k->pool) {
        m = k->pool;
        k->pool = m->next;
        k->npool--;
        return m;
    }
    size_t cap = need <= GW_MSG_BLOCK ? GW_MSG_BLOCK : need;
    m = malloc(sizeof(*m) + cap);
    if (m) {
        m->cap = cap;
        m->origin = k->idx;
    }
    return m;
}

static void msg_put(gw_worker_t *k, gw_route_msg_t *m)
{
    if (m->cap == GW_MSG_BLOCK && k->npool < GW_POOL_MAX) {
        m->next = k->pool;
        k->pool = m;
        k->npool++;
    } else {
        free(m);
    }
}

void gw_route_recycle(gw_worker_t *k, gw_route_msg_t *list)
{
    while (list) {
        gw_route_msg_t *next = list->next;
        msg_put(k, list);
        list = next;
    }
}

static void return_to(gw_worker_t *k, unsigned origin)
{
    if (!k->ret || !k->ret[origin])
        return;
    xq_msg_t msg = {.type = GW_MSG_RETURN, .from = k->idx, .ptr = k->ret[origin]};
    if (worker_post(k->w, k->gw->g, origin, &msg) == 0) {
        k->ret[origin] = NULL;
        k->nret[origin] = 0;
    }
    /* On a full queue the list stays and goes with the next batch or flush. */
}

void gw_route_flush_returns(gw_worker_t *k)
{
    for (unsigned i = 0; k->ret && i < k->gw->nworkers; i++)
        return_to(k, i);
}

void gw_route_free_pools(gw_worker_t *k)
{
    gw_route_recycle(k, NULL);
    while (k->pool) {
        gw_route_msg_t *m = k->pool;
        k->pool = m->next;
        free(m);
    }
    k->npool = 0;
    for (unsigned i = 0; k->ret && i < k->gw->nworkers; i++)
        while (k->ret[i]) {
            gw_route_msg_t *m = k->ret[i];
            k->ret[i] = m->next;
            free(m);
        }
}

void gw_route_deliver_msg(gw_worker_t *k, gw_route_msg_t *m)
{
    const char *from = m->buf, *to = m->buf + m->from_len + 1;
    gw_route_local_component(k, from, to, to + m->to_len + 1, m->len);
    unsigned o = m->origin;
    if (o == k->idx || !k->ret || o >= k->gw->nworkers) {
        msg_put(k, m);
        return;
    }
    m->next = k->ret[o];
    k->ret[o] = m;
    if (++k->nret[o] >= GW_RETURN_BATCH)
        return_to(k, o);
}

static void post_component(gw_worker_t *k, unsigned slot, unsigned owner, const char *from,
                           const char *to, const void *data, size_t len)
{
    size_t fl = strlen(from), tl = strlen(to);
    gw_route_msg_t *m = fl <= JID_MAX && tl <= JID_MAX ? msg_get(k, fl + tl + 2 + len) : NULL;
    if (!m) {
        gw_route_bounce(k, data, len, "resource-constraint");
        return;
    }
    m->from_len = (uint16_t)fl;
    m->to_len = (uint16_t)tl;
    m->len = len;
    memcpy(m->buf, from, fl + 1);
    memcpy(m->buf + fl + 1, to, tl + 1);
    memcpy(m->buf + fl + tl + 2, data, len);
    if (gw_flow_post(k, owner, slot, m) != 0) {
        msg_put(k, m);
        count_refused(k, "worker-queue-full");
        if (gw_log_ok(k))
            log_warn("route -> %s: worker %u's queue and this worker's outbox are full, stanza "
                     "bounced",
                     to, owner);
        gw_route_bounce(k, data, len, "resource-constraint");
        return;
    }
    metrics_add(k->gw->metrics, k->idx, k->gw->m_cross, 1);
}

static gw_sess_t *find_out(gw_worker_t *k, const char *local, const char *remote);

/* Route s2s: relay to the internal server over a stream from the sender's (partner) domain. */
static void route_internal(gw_worker_t *k, const policy_hosted_t *h, const char *from,
                           const char *to, const void *data, size_t len)
{
    char fd[DOMAIN_BUF];
    if (jid_domain_of(from, fd, sizeof(fd)) != 0)
        return;
    gw_sess_t *s = find_out(k, fd, h->domain);
    bool fresh = false;
    if (!s) {
        if (atomic_load(&k->gw->shutting_down)) {
            gw_route_bounce(k, data, len, "remote-server-timeout");
            return;
        }
        stream_config_t cfg;
        stream_config_default(&cfg);
        cfg.kind = STREAM_OUT;
        cfg.local = fd;
        cfg.remote = h->domain;
        gw_internal_rules(&cfg.rules);
        if (gw_sess_new(k, &cfg, &s) != 0) {
            gw_route_bounce(k, data, len, "resource-constraint");
            return;
        }
        gw_sess_route_add(s);
        log_debug("out %s -> %s: opening a stream to the internal server %s:%u", fd, h->domain,
                  h->target_host, h->target_port ? h->target_port : 5269);
        fresh = true;
    }
    int rc = gw_flow_send(s, from, to, data, len);
    if (rc != 0)
        refused_send(k, s, rc, data, len, "remote-server-timeout");
    if (fresh)
        gw_sess_connect(s, h->target_host, h->target_port);
    else
        gw_sess_drain(s);
}

static void route_hosted(gw_worker_t *k, const policy_hosted_t *h, const char *from, const char *to,
                         const void *data, size_t len)
{
    if (h->route == HOSTED_ROUTE_S2S) {
        route_internal(k, h, from, to, data, len);
        return;
    }
    if (h->route != HOSTED_ROUTE_COMPONENT) {
        count_refused(k, "no-route");
        gw_route_bounce(k, data, len, "service-unavailable");
        return;
    }
    /* A connection of the component on this worker, if it has one here (it may open one per
       worker: the listener deals them out), saves the hop to another worker. */
    gw_sess_t *c = find_component(k, h->domain);
    if (c) {
        send_component(k, c, from, to, data, len);
        return;
    }
    int owner, slot = gw_comp_find(k->gw, h->domain, &owner);
    if (slot < 0 || owner < 0) {
        gw_route_bounce(k, data, len, "service-unavailable");
        return;
    }
    if ((unsigned)owner == k->idx)
        gw_route_local_component(k, from, to, data, len);
    else
        post_component(k, (unsigned)slot, (unsigned)owner, from, to, data, len);
}

/* ---- partners ---- */

static gw_sess_t *find_out(gw_worker_t *k, const char *local, const char *remote)
{
    return gw_sess_route_find(k, STREAM_OUT, local, remote);
}

static gw_sess_t *open_out(gw_worker_t *k, const char *local, const char *remote,
                           const policy_partner_t *p)
{
    const settings_t *st = policy_settings(k->pol);
    if (gw_conn_acquire(k->gw, p->domain, p->connection_limit, st->connection_limit) != 0) {
        log_warn("out %s -> %s: connection limit reached", local, remote);
        return NULL;
    }
    stream_config_t cfg;
    stream_config_default(&cfg);
    cfg.kind = STREAM_OUT;
    cfg.local = local;
    cfg.remote = remote;
    cfg.rules = p->rules;
    gw_sess_t *s;
    if (gw_sess_new(k, &cfg, &s) != 0) {
        gw_conn_release(k->gw, p->domain);
        return NULL;
    }
    s->counted = true;
    snprintf(s->partner, sizeof(s->partner), "%s", p->domain);
    gw_sess_route_add(s);
    log_debug("out %s -> %s: opening a stream", local, remote);
    return s;
}

static void route_partner(gw_worker_t *k, const char *fd, const char *td, const char *from,
                          const char *to, const void *data, size_t len)
{
    gw_sess_t *s = find_out(k, fd, td);
    bool fresh = false;
    const policy_partner_t *p = policy_lookup(k->pol, td);
    if (!p)
        p = policy_lookup_default(k->pol);
    if (!p) {
        log_info("route %s -> %s: not a federated partner, refused", fd, td);
        count_refused(k, "not-a-partner");
        gw_route_bounce(k, data, len, "policy-violation");
        return;
    }
    /* Partner type and access (policy/decide): refused stanzas never open a stream. */
    if (k->bounce_depth == 0 &&
        !gw_ptype_check(k, DECIDE_OUTBOUND, p->rules.type, from, to, &data, &len))
        return;
    if (!s && atomic_load(&k->gw->shutting_down)) {
        gw_route_bounce(k, data, len, "remote-server-timeout");
        return;
    }
    if (!s) {
        s = open_out(k, fd, td, p);
        if (!s) {
            gw_route_bounce(k, data, len, "resource-constraint");
            return;
        }
        fresh = true;
    }
    int rc = gw_flow_send(s, from, to, data, len);
    if (rc != 0)
        refused_send(k, s, rc, data, len, "remote-server-timeout");
    if (fresh)
        gw_sess_connect(s, p->proxy_host, p->proxy_port);
    else
        gw_sess_drain(s);
}

void gw_route_stanza(gw_worker_t *k, const char *from, const char *to, const void *data, size_t len)
{
    char fd[DOMAIN_BUF], td[DOMAIN_BUF];
    if (jid_domain_of(from, fd, sizeof(fd)) != 0 || jid_domain_of(to, td, sizeof(td)) != 0) {
        count_refused(k, "bad-address");
        return;
    }
    const policy_hosted_t *h = policy_lookup_hosted(k->pol, td);
    const policy_hosted_t *hf = policy_lookup_hosted(k->pol, fd);
    if (h) {
        if (!h->enabled) {
            gw_route_bounce(k, data, len, "service-unavailable");
            return;
        }
        /* Partner type and access (policy/decide); the gateway's own bounces always reach
           their addressee. */
        if (!hf && k->bounce_depth == 0) {
            const policy_partner_t *p = policy_lookup(k->pol, fd);
            if (!p)
                p = policy_lookup_default(k->pol);
            if (!gw_ptype_check(k, DECIDE_INBOUND, p ? p->rules.type : PARTNER_PUBLIC_UNVERIFIED,
                                from, to, &data, &len))
                return;
        }
        route_hosted(k, h, from, to, data, len);
        return;
    }
    if (!hf) {
        /* Never relay between two foreign domains (RFC 6120 §10.4 security warning). */
        count_refused(k, "relay");
        return;
    }
    route_partner(k, fd, td, from, to, data, len);
}

/* ---- bounces ---- */

static const char *error_type(const char *condition)
{
    if (strcmp(condition, "remote-server-timeout") == 0 ||
        strcmp(condition, "resource-constraint") == 0)
        return "wait";
    if (strcmp(condition, "forbidden") == 0)
        return "auth";
    return "cancel";
}

static int bounce_handler(void *ctx, const xml_event_t *ev)
{
    gw_worker_t *k = ctx;
    if (ev->type != XML_EV_STANZA || k->bdone)
        return XML_CB_CONTINUE;
    k->bdone = true;
    stanza_arena_reset(k->barena);
    stanza_t *e = stanza_bounce(k->barena, ev->el, k->btype, k->bcond, NULL);
    buf_reset(&k->bout);
    if (!e || !stanza_from(e) || !stanza_to(e) ||
        stanza_write(&k->bout, e, &stanza_scope_s2s) != 0) {
        buf_reset(&k->bout);
        return XML_CB_STOP;
    }
    snprintf(k->bfrom, sizeof(k->bfrom), "%s", stanza_from(e));
    snprintf(k->bto, sizeof(k->bto), "%s", stanza_to(e));
    return XML_CB_STOP;
}

static const char bounce_open[] = "<stream:stream xmlns='jabber:server' "
                                  "xmlns:stream='http://etherx.jabber.org/streams'>";

void gw_route_bounce(gw_worker_t *k, const void *data, size_t len, const char *condition)
{
    count_bounce(k, condition);
    if (k->bounce_depth > 2)
        return; /* a bounce of a bounce of a bounce: stop here (errors are never answered) */
    if (!k->bparser) {
        stream_limits_t l;
        stream_limits_default(&l);
        l.max_stanza_bytes_preauth = 1 << 20;
        l.max_buffered_bytes = (1 << 20) + 4096;
        if (xml_parser_new(&k->bparser, &l, bounce_handler, k) != 0 ||
            stanza_arena_new(&k->barena, 4 << 20) != 0) {
            log_error("worker %u: cannot build stanza bounces", k->idx);
            return;
        }
        buf_init(&k->bout, 1 << 20);
    }
    xml_reset(k->bparser);
    k->bdone = false;
    k->bcond = condition;
    k->btype = error_type(condition);
    buf_reset(&k->bout);
    if (xml_feed(k->bparser, bounce_open, sizeof(bounce_open) - 1, NULL) != 0 ||
        xml_feed(k->bparser, data, len, NULL) != 0 || !k->bdone || k->bout.len == 0)
        return; /* unbounceable (an error or a result) or unparsable: counted, dropped */
    /* The error travels like any stanza: copy it first, routing may bounce again. */
    size_t n = k->bout.len;
    uint8_t *copy = malloc(n);
    char *from = strdup(k->bfrom), *to = strdup(k->bto);
    if (copy && from && to) {
        memcpy(copy, k->bout.data, n);
        k->bounce_depth++;
        gw_route_stanza(k, from, to, copy, n);
        k->bounce_depth--;
    }
    free(from);
    free(to);
    free(copy);
}
