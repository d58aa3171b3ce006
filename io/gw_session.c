#include "io/gw_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/err.h"
#include "core/jid.h"
#include "core/log.h"
#include "io/conn.h"
#include "io/gw_flow.h"
#include "io/gw_route.h"
#include "io/listen.h"
#include "policy/domain.h"
#include "tls/tls_identity.h"

/* Plaintext the engine has not taken yet: a stanza in progress is held by the parser, so this only
   holds what arrives while the engine waits (a policy verdict, TLS). */
#define GW_PIN_MAX (256 * 1024)
/* One TLS record's plaintext: past it, what is gathered is encrypted at once. */
#define GW_POUT_MAX (16 * 1024)

static const char *kind_name(const gw_sess_t *s)
{
    if (s->kind == STREAM_IN)
        return "in";
    if (s->kind == STREAM_COMPONENT)
        return "component";
    return s->verify_only ? "verify" : "out";
}

static uint64_t sess_cid(const gw_sess_t *s)
{
    return s->conn ? conn_id(s->conn) : 0;
}

static void random_fill(void *ctx, uint8_t *out, size_t n)
{
    (void)ctx;
    while (n > 0) {
        ssize_t r = getrandom(out, n, 0);
        if (r <= 0)
            abort(); /* stream ids must be unpredictable; never run without randomness */
        out += r;
        n -= (size_t)r;
    }
}

static bool hosted_cb(void *ctx, const char *domain)
{
    gw_worker_t *k = ctx;
    char d[DOMAIN_BUF];
    if (domain_normalize(domain, d, sizeof(d)) != 0)
        return false;
    const policy_hosted_t *h = policy_lookup_hosted(k->pol, d);
    if (h)
        return h->enabled;
    /* Toward the internal servers of s2s routes the gateway stands in for the partners: their
       streams to a partner domain (split DNS) end here, and so do their db:verify checks. */
    return atomic_load_explicit(&k->gw->have_internal, memory_order_relaxed) &&
           policy_lookup(k->pol, d) != NULL;
}

void gw_internal_rules(peer_rules_t *r)
{
    /* The gateway holds no certificate for the partner domains it stands in for: dialback, over
       TLS when the internal server offers it; SASL EXTERNAL only if the internal server does. */
    memset(r, 0, sizeof(*r));
    r->tls = NEG_OPTIONAL;
    r->sasl = NEG_OPTIONAL;
    r->dialback = true;
    r->keepalive = true;
    r->type = PARTNER_FEDERATED;
}

const policy_hosted_t *gw_internal_server(gw_worker_t *k, const char *domain)
{
    char d[DOMAIN_BUF];
    if (domain_normalize(domain, d, sizeof(d)) != 0)
        return NULL;
    const policy_hosted_t *h = policy_lookup_hosted(k->pol, d);
    return h && h->enabled && h->route == HOSTED_ROUTE_S2S ? h : NULL;
}

static void tmr_fire(timer_ent_t *t, void *arg);
static void free_fire(timer_ent_t *t, void *arg);
static void kick_fire(timer_ent_t *t, void *arg);

int gw_sess_new(gw_worker_t *k, stream_config_t *cfg, gw_sess_t **out)
{
    int rc;
    gw_sess_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    const settings_t *st = policy_settings(k->pol);
    settings_stream_limits(st, &cfg->limits);
    cfg->hosted_fn = hosted_cb;
    cfg->hosted_ctx = k;
    cfg->secret = (const uint8_t *)st->dialback_passphrase;
    cfg->secret_len = strlen(st->dialback_passphrase);
    cfg->random = random_fill;
    cfg->now_ms = gw_now_ms();
    cfg->xml_pool = k->xpool;
    rc = stream_new(&s->st, cfg);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->k = k;
    s->kind = cfg->kind;
    s->verify_only = cfg->verify_only;
    s->id = ++k->next_id;
    s->since_unix = (uint64_t)time(NULL);
    s->m_open = -1;
    if (cfg->local)
        snprintf(s->local, sizeof(s->local), "%s", cfg->local);
    if (cfg->remote)
        snprintf(s->remote, sizeof(s->remote), "%s", cfg->remote);
    buf_init(&s->pin, GW_PIN_MAX);
    buf_init(&s->pout, GW_POUT_MAX);
    buf_init(&s->backlog, GW_BACKLOG_MAX);
    s->comp_slot = -1;
    timer_init(&s->tmr, tmr_fire, s);
    timer_init(&s->free_tmr, free_fire, s);
    timer_init(&s->kick_tmr, kick_fire, s);
    gw_flow_sess_init(s);
    s->next = k->sessions;
    if (k->sessions)
        k->sessions->prev = s;
    k->sessions = s;
    k->nsess++;
    *out = s;
    return 0;
}

static uint32_t route_hash(stream_kind_t kind, const char *local, const char *remote)
{
    uint32_t h = 2166136261u ^ (uint32_t)kind; /* FNV-1a */
    for (const char *p = local; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *p = remote; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return h;
}

static const char *route_local(const gw_sess_t *s)
{
    return s->kind == STREAM_COMPONENT ? "" : s->local;
}

void gw_sess_route_add(gw_sess_t *s)
{
    if (s->routed)
        return;
    s->rhash = route_hash(s->kind, route_local(s), s->remote);
    gw_sess_t **head = &s->k->route_tab[s->rhash % GW_ROUTE_BUCKETS];
    s->rnext = *head;
    *head = s;
    s->routed = true;
}

static void route_remove(gw_sess_t *s)
{
    if (!s->routed)
        return;
    for (gw_sess_t **p = &s->k->route_tab[s->rhash % GW_ROUTE_BUCKETS]; *p; p = &(*p)->rnext)
        if (*p == s) {
            *p = s->rnext;
            break;
        }
    s->routed = false;
}

gw_sess_t *gw_sess_route_find(gw_worker_t *k, stream_kind_t kind, const char *local,
                              const char *remote)
{
    uint32_t h = route_hash(kind, local, remote);
    for (gw_sess_t *s = k->route_tab[h % GW_ROUTE_BUCKETS]; s; s = s->rnext)
        if (s->rhash == h && !s->dead && s->kind == kind && strcmp(route_local(s), local) == 0 &&
            strcmp(s->remote, remote) == 0)
            return s;
    return NULL;
}

/* Another registered connection of s's component on this worker (rare: on a component's close). */
static bool other_component_here(const gw_sess_t *s)
{
    uint32_t h = route_hash(STREAM_COMPONENT, "", s->remote);
    for (const gw_sess_t *o = s->k->route_tab[h % GW_ROUTE_BUCKETS]; o; o = o->rnext)
        if (o != s && !o->dead && o->kind == STREAM_COMPONENT && o->comp_registered &&
            strcmp(o->remote, s->remote) == 0)
            return true;
    return false;
}

gw_sess_t *gw_sess_find(gw_worker_t *k, uint64_t id)
{
    for (gw_sess_t *s = k->sessions; s; s = s->next)
        if (s->id == id)
            return s;
    return NULL;
}

static void pout_unlist(gw_sess_t *s);

static void sess_free(gw_sess_t *s)
{
    gw_worker_t *k = s->k;
    timer_cancel(worker_timers(k->w), &s->tmr);
    timer_cancel(worker_timers(k->w), &s->free_tmr);
    timer_cancel(worker_timers(k->w), &s->kick_tmr);
    if (s->dns_pending && k->dns)
        dns_cancel(k->dns, s->dns_id);
    if (s->verify_pending) {
        /* The authoritative server never answered: the receiving stream must not wait forever. */
        gw_sess_t *in = gw_sess_find(k, s->verify_for);
        if (in && in->st) {
            stream_verify_result(in->st, s->v_from, s->v_to, s->v_id, STREAM_VERIFY_ERROR,
                                 "remote-connection-failed");
            gw_sess_drain(in);
        }
    }
    if (s->counted)
        gw_conn_release(k->gw, s->partner);
    if (s->comp_registered)
        gw_comp_unregister(k->gw, s->remote, k->idx, !other_component_here(s));
    route_remove(s);
    /* After route_remove: what its backlog still holds is bounced and must not come back to it. */
    gw_flow_forget(s);
    if (s->m_open >= 0)
        metrics_add(k->gw->metrics, k->idx, s->m_open, -1);
    for (gw_sess_t *o = s->is_retry ? k->sessions : NULL; o; o = o->next)
        if (o->retry == s)
            o->retry = NULL;
    if (k->sweep == s)
        k->sweep = s->next;
    if (s->prev)
        s->prev->next = s->next;
    else
        k->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    k->nsess--;
    pout_unlist(s);
    stream_free(s->st);
    tls_conn_free(s->tls);
    buf_free(&s->pin);
    buf_free(&s->pout);
    buf_free(&s->backlog);
    free(s->plan);
    free(s);
}

static void free_fire(timer_ent_t *t, void *arg)
{
    (void)t;
    sess_free(arg);
}

static void tmr_fire(timer_ent_t *t, void *arg)
{
    (void)t;
    gw_sess_t *s = arg;
    if (s->dead)
        return;
    stream_tick(s->st, gw_now_ms());
    gw_sess_drain(s);
}

/* ---- bytes out ---- */

static void flush_cipher(gw_sess_t *s)
{
    size_t n;
    const uint8_t *p;
    if (!s->tls || !s->conn)
        return;
    while ((p = tls_conn_peek_cipher(s->tls, &n)) && n > 0) {
        if (conn_send(s->conn, p, n) != 0) {
            log_warn("conn %llx %s %s: send queue full, closing", (unsigned long long)sess_cid(s),
                     kind_name(s), s->remote);
            conn_abort(s->conn);
            return;
        }
        tls_conn_consume_cipher(s->tls, n);
    }
}

static void pout_unlist(gw_sess_t *s)
{
    if (!s->pout_listed)
        return;
    if (s->pout_prev)
        s->pout_prev->pout_next = s->pout_next;
    else
        s->k->pout_head = s->pout_next;
    if (s->pout_next)
        s->pout_next->pout_prev = s->pout_prev;
    s->pout_next = s->pout_prev = NULL;
    s->pout_listed = false;
}

static void tls_write(gw_sess_t *s, const void *data, size_t len)
{
    ssize_t r = tls_conn_write_plain(s->tls, data, len);
    if (r == FG_ELIMIT) {
        flush_cipher(s);
        r = tls_conn_write_plain(s->tls, data, len);
    }
    if (r < 0) {
        log_warn("conn %llx %s %s: TLS write failed: %s", (unsigned long long)sess_cid(s),
                 kind_name(s), s->remote, fg_strerror((int)r));
        conn_abort(s->conn);
        return;
    }
    flush_cipher(s);
}

/* What was gathered goes into TLS now: before the worker sends, before close_notify. */
static void sess_seal(gw_sess_t *s)
{
    pout_unlist(s);
    if (s->pout.len == 0)
        return;
    if (s->conn && s->tls)
        tls_write(s, s->pout.data, s->pout.len);
    buf_reset(&s->pout);
}

void gw_sess_seal_all(worker_t *w)
{
    gw_worker_t *k = worker_data(w);
    while (k->pout_head)
        sess_seal(k->pout_head);
}

static void sess_write(gw_sess_t *s, const void *data, size_t len)
{
    if (!s->conn)
        return;
    if (s->tls) {
        /* A record per stanza cost about a microsecond each: stanzas written in the same loop
           iteration (a busy component, an OUT stream's burst) share one. Nothing waits longer:
           the worker seals before it sends. */
        if (s->pout.len + len > GW_POUT_MAX)
            sess_seal(s);
        if (len > GW_POUT_MAX || buf_append(&s->pout, data, len) != 0) {
            tls_write(s, data, len);
            return;
        }
        if (!s->pout_listed) {
            s->pout_listed = true;
            s->pout_prev = NULL;
            s->pout_next = s->k->pout_head;
            if (s->pout_next)
                s->pout_next->pout_prev = s;
            s->k->pout_head = s;
        }
        return;
    }
    int rc = conn_send(s->conn, data, len);
    if (rc != 0) {
        log_warn("conn %llx %s %s: cannot queue %zu bytes (%zu queued): %s, closing",
                 (unsigned long long)sess_cid(s), kind_name(s), s->remote, len,
                 conn_send_queued(s->conn), fg_strerror(rc));
        conn_abort(s->conn);
    }
}

/* ---- policy ---- */

static const policy_partner_t *partner_for(gw_worker_t *k, const char *domain)
{
    char d[DOMAIN_BUF];
    if (domain_normalize(domain, d, sizeof(d)) != 0)
        return NULL;
    const policy_partner_t *p = policy_lookup(k->pol, d);
    return p ? p : policy_lookup_default(k->pol);
}

static void answer_policy(gw_sess_t *s, const char *domain_in)
{
    gw_worker_t *k = s->k;
    char domain[STREAM_DOMAIN_MAX + 1];
    snprintf(domain, sizeof(domain), "%s", domain_in);
    if (s->kind == STREAM_COMPONENT) {
        char d[DOMAIN_BUF];
        const policy_hosted_t *h = NULL;
        if (domain_normalize(domain, d, sizeof(d)) == 0)
            h = policy_lookup_hosted(k->pol, d);
        bool ok =
            h && h->enabled && h->route == HOSTED_ROUTE_COMPONENT && h->secret && h->secret[0];
        if (!ok && gw_log_ok(k))
            log_warn("conn %llx component: %s is not a hosted domain with a component route",
                     (unsigned long long)sess_cid(s), domain);
        snprintf(s->remote, sizeof(s->remote), "%s", ok ? d : domain);
        stream_component_secret(s->st, domain, ok, ok ? h->secret : NULL,
                                ok ? strlen(h->secret) : 0);
        return;
    }
    if (gw_internal_server(k, domain)) {
        peer_rules_t r;
        gw_internal_rules(&r);
        snprintf(s->remote, sizeof(s->remote), "%s", domain);
        stream_policy(s->st, domain, true, &r);
        return;
    }
    const policy_partner_t *p = partner_for(k, domain);
    if (!p) {
        if (gw_log_ok(k))
            log_info("conn %llx in %s: not a federated partner, refused",
                     (unsigned long long)sess_cid(s), domain);
        metrics_add(k->gw->metrics, k->idx, k->gw->m_refused_unknown, 1);
        stream_policy(s->st, domain, false, NULL);
        return;
    }
    if (!s->counted) {
        const settings_t *st = policy_settings(k->pol);
        if (gw_conn_acquire(k->gw, p->domain, p->connection_limit, st->connection_limit) != 0) {
            if (gw_log_ok(k))
                log_warn("conn %llx in %s: connection limit reached, refused",
                         (unsigned long long)sess_cid(s), domain);
            metrics_add(k->gw->metrics, k->idx, k->gw->m_refused_limit, 1);
            stream_close(s->st, "resource-constraint", "connection limit reached");
            return;
        }
        s->counted = true;
        snprintf(s->partner, sizeof(s->partner), "%s", p->domain);
        snprintf(s->remote, sizeof(s->remote), "%s", domain);
    }
    stream_policy(s->st, domain, true, &p->rules);
}

/* ---- dialback verification (we are the receiving server) ---- */

static void start_verify(gw_sess_t *in, const stream_action_t *a)
{
    gw_worker_t *k = in->k;
    stream_config_t cfg;
    stream_config_default(&cfg);
    cfg.kind = STREAM_OUT;
    cfg.verify_only = true;
    cfg.local = a->from;
    cfg.remote = a->to;
    const policy_partner_t *p = partner_for(k, a->to);
    const policy_hosted_t *ih = gw_internal_server(k, a->to);
    const char *proxy = NULL;
    uint16_t pport = 0;
    if (ih) {
        /* An internal server's domain resolves to the gateway itself: ask the server directly. */
        gw_internal_rules(&cfg.rules);
        proxy = ih->target_host;
        pport = ih->target_port;
    } else if (p) {
        cfg.rules = p->rules;
        proxy = p->proxy_host;
        pport = p->proxy_port;
    } else {
        cfg.rules.tls = NEG_OPTIONAL;
        cfg.rules.sasl = NEG_NOT_SUPPORTED;
        cfg.rules.dialback = true;
    }
    /* The verify stream only carries db:verify: no SASL is needed on it. */
    if (cfg.rules.sasl == NEG_REQUIRED)
        cfg.rules.sasl = NEG_OPTIONAL;
    cfg.rules.dialback = true;
    gw_sess_t *v;
    if (gw_sess_new(k, &cfg, &v) != 0) {
        stream_verify_result(in->st, a->from, a->to, a->id, STREAM_VERIFY_ERROR,
                             "remote-connection-failed");
        return;
    }
    v->verify_for = in->id;
    v->verify_pending = true;
    snprintf(v->v_from, sizeof(v->v_from), "%s", a->from);
    snprintf(v->v_to, sizeof(v->v_to), "%s", a->to);
    snprintf(v->v_id, sizeof(v->v_id), "%s", a->id);
    stream_out_verify(v->st, a->from, a->to, a->id, a->key);
    log_debug("conn %llx in %s: verifying dialback key with %s", (unsigned long long)sess_cid(in),
              in->remote, a->to);
    gw_sess_connect(v, proxy, pport);
}

static void verify_answered(gw_sess_t *v, const stream_action_t *a)
{
    gw_sess_t *in = gw_sess_find(v->k, v->verify_for);
    v->verify_pending = false;
    if (in && in->st && !in->dead) {
        stream_verify_result(in->st, a->from, a->to, a->id, a->result, a->condition);
        gw_sess_drain(in);
    }
    stream_close(v->st, NULL, NULL);
}

/* ---- actions ---- */

/* A partner stream the current policy no longer allows is closed (DESIGN.md §4). A stream still
   negotiating is judged by how it authenticates, once it has (on_authenticated): before that it
   has no TLS or method to hold against it. True when it was closed. */
static bool close_if_violating(gw_sess_t *s)
{
    const char *why = NULL;
    const policy_partner_t *p = partner_for(s->k, s->remote);
    bool authed = s->auth != STREAM_AUTH_NONE;
    if (!p)
        why = "partner removed";
    else if (p->rules.tls == NEG_REQUIRED && authed && s->conn && !s->tls)
        why = "TLS now required";
    else if (p->rules.sasl == NEG_REQUIRED && !p->rules.dialback && authed &&
             s->auth != STREAM_AUTH_SASL)
        why = "SASL now required"; /* with dialback allowed it is SASL's fallback (DESIGN.md §6) */
    else if (!p->rules.dialback &&
             (s->auth == STREAM_AUTH_DIALBACK_TLS || s->auth == STREAM_AUTH_DIALBACK_TCP))
        why = "dialback no longer allowed";
    if (!why)
        return false;
    log_info("conn %llx %s %s: %s, closing", (unsigned long long)sess_cid(s), kind_name(s),
             s->remote, why);
    s->local_close = true;
    stream_close(s->st, "policy-violation", why);
    gw_sess_drain(s);
    return true;
}

static void on_authenticated(gw_sess_t *s, const stream_action_t *a)
{
    gw_worker_t *k = s->k;
    s->auth = a->method;
    /* The policy may have changed while the stream negotiated (gw_sess_recheck skipped it). */
    if (s->kind != STREAM_COMPONENT && s->partner[0] && close_if_violating(s))
        return;
    if (!s->local[0] && s->kind != STREAM_OUT && a->to)
        snprintf(s->local, sizeof(s->local), "%s", a->to);
    const char *dir = kind_name(s);
    const char *tv = s->tls ? tls_conn_version(s->tls) : NULL;
    /* The pair in the direction stanzas flow: remote -> local inbound, local -> remote out. */
    bool out = s->kind == STREAM_OUT;
    log_info("conn %llx %s %s -> %s authenticated (%s%s%s)", (unsigned long long)sess_cid(s), dir,
             out ? a->to : a->from, out ? a->from : a->to, stream_auth_name(a->method),
             tv ? ", " : "", tv ? tv : "");
    if (s->kind == STREAM_COMPONENT) {
        s->comp_slot = gw_comp_register(k->gw, s->remote, k->idx, s->id);
        s->comp_registered = true;
        gw_sess_route_add(s);
    }
    char part[STREAM_DOMAIN_MAX * 2 + 1], labels[STREAM_DOMAIN_MAX * 2 + 128];
    metrics_escape_label(s->partner[0] ? s->partner : s->remote, part, sizeof(part));
    snprintf(labels, sizeof(labels), "dir=\"%s\",partner=\"%s\",auth=\"%s\",tls=\"%s\"", dir, part,
             stream_auth_name(a->method), tv ? tv : "none");
    gw_count(k, "fedgate_streams_authenticated_total", labels, 1);
    if (s->m_open < 0) {
        s->m_open = metrics_register(k->gw->metrics, METRIC_GAUGE, "fedgate_streams_open", labels,
                                     "Open authenticated streams");
        if (s->m_open >= 0)
            metrics_add(k->gw->metrics, k->idx, s->m_open, 1);
    }
}

static void on_stanza(gw_sess_t *s, const stream_action_t *a)
{
    gw_worker_t *k = s->k;
    if (!a->data || !a->from || !a->to)
        return;
    metrics_add(k->gw->metrics, k->idx, s->kind == STREAM_IN ? k->gw->m_in : k->gw->m_out, 1);
    /* Message content is logged in one place only: gw_ptype's audit line, which includes the
       body only with EnableLoggingAllMessageBodies. */
    gw_sess_t *outer = k->cur_src;
    k->cur_src = s;
    gw_route_stanza(k, a->from, a->to, a->data, a->len);
    k->cur_src = outer;
}

static void start_tls(gw_sess_t *s, const stream_action_t *a)
{
    tls_conn_opts_t o = {0};
    int rc;
    if (a->tls_server) {
        o.local_domain = a->domain;
        rc = tls_conn_new(s->k->tls, TLS_ROLE_SERVER, &o, &s->tls);
        if (rc == FG_ENOTFOUND) {
            o.local_domain = NULL;
            rc = tls_conn_new(s->k->tls, TLS_ROLE_SERVER, &o, &s->tls);
        }
    } else {
        o.local_domain = s->local;
        rc = tls_conn_new(s->k->tls, TLS_ROLE_CLIENT, &o, &s->tls);
        if (rc == FG_ENOTFOUND) {
            o.local_domain = NULL;
            rc = tls_conn_new(s->k->tls, TLS_ROLE_CLIENT, &o, &s->tls);
        }
    }
    if (rc != 0) {
        log_warn("conn %llx %s %s: TLS setup failed: %s", (unsigned long long)sess_cid(s),
                 kind_name(s), s->remote, fg_strerror(rc));
        stream_tls_failed(s->st);
        return;
    }
    if (!a->tls_server) {
        tls_conn_handshake(s->tls); /* ClientHello */
        flush_cipher(s);
    }
}

static void on_close_action(gw_sess_t *s, const stream_action_t *a)
{
    s->dead = true;
    if (a->condition) {
        char labels[96];
        snprintf(labels, sizeof(labels), "dir=\"%s\",condition=\"%.48s\"", kind_name(s),
                 a->condition);
        gw_count(s->k, "fedgate_streams_closed_total", labels, 1);
    }
    if (a->condition && s->partner[0])
        gw_note_failure(s->k->gw, s->partner, a->condition);
    if (a->condition && gw_log_ok(s->k))
        log_info("conn %llx %s %s: closed (%s%s%s)", (unsigned long long)sess_cid(s), kind_name(s),
                 s->remote, a->condition, a->reason ? ", " : "", a->reason ? a->reason : "");
    else
        log_debug("conn %llx %s %s: closed (%s)", (unsigned long long)sess_cid(s), kind_name(s),
                  s->remote, a->reason ? a->reason : "clean");
    timer_cancel(worker_timers(s->k->w), &s->tmr);
    if (s->conn) {
        if (s->tls) {
            sess_seal(s);
            tls_conn_close(s->tls);
            flush_cipher(s);
        }
        conn_close(s->conn);
    } else {
        /* No connection (still resolving, or every connect failed): free from the loop, once
           nobody up the stack holds the session. */
        timer_arm_at(worker_timers(s->k->w), &s->free_tmr, timer_now_ns());
    }
}

static void try_next(gw_sess_t *s);

/*
 * RFC 6120 §3.2.1: when a stream to one SRV target fails before it authenticated, the next target
 * is tried. The engine of the failed stream hands its queue out as bounces; they are moved to a
 * new stream for the same pair that continues with the remaining endpoints.
 */
static gw_sess_t *retry_target(gw_sess_t *s)
{
    gw_worker_t *k = s->k;
    if (s->retry)
        return s->retry->dead ? NULL : s->retry;
    if (s->kind != STREAM_OUT || s->verify_only || !s->opened || s->auth != STREAM_AUTH_NONE ||
        s->local_close || !s->plan || s->next_ep >= s->plan->n ||
        atomic_load(&k->gw->shutting_down))
        return NULL;
    const policy_hosted_t *ih = gw_internal_server(k, s->remote);
    const policy_partner_t *p = ih ? NULL : partner_for(k, s->remote);
    if (!ih && !p)
        return NULL;
    stream_config_t cfg;
    stream_config_default(&cfg);
    cfg.kind = STREAM_OUT;
    cfg.local = s->local;
    cfg.remote = s->remote;
    if (ih)
        gw_internal_rules(&cfg.rules);
    else
        cfg.rules = p->rules;
    gw_sess_t *n;
    if (gw_sess_new(k, &cfg, &n) != 0)
        return NULL;
    n->plan = malloc(sizeof(*n->plan));
    if (!n->plan) {
        stream_close(n->st, NULL, NULL);
        gw_sess_drain(n);
        return NULL;
    }
    *n->plan = *s->plan;
    n->next_ep = s->next_ep;
    /* The connection slot moves with the queue. */
    n->counted = s->counted;
    s->counted = false;
    snprintf(n->partner, sizeof(n->partner), "%s", s->partner);
    s->retry = n;
    n->is_retry = true;
    gw_sess_route_add(n);
    log_info("out %s -> %s: stream failed before authentication, trying the next endpoint",
             s->local, s->remote);
    try_next(n);
    return n->dead ? NULL : n;
}

static void bounce_or_retry(gw_sess_t *s, const stream_action_t *a)
{
    const char *cond = a->condition ? a->condition : "remote-server-timeout";
    gw_sess_t *n = retry_target(s);
    if (n && a->from && a->to && stream_send(n->st, a->from, a->to, a->data, a->len) == 0)
        return;
    gw_route_bounce(s->k, a->data, a->len, cond);
}

void gw_sess_drain(gw_sess_t *s)
{
    stream_action_t a;
    if (s->draining)
        return; /* the outer loop picks the new actions up */
    s->draining = true;
    while (stream_next_action(s->st, &a)) {
        switch (a.type) {
        case STREAM_ACT_SEND:
            if (!s->swallow)
                sess_write(s, a.data, a.len);
            break;
        case STREAM_ACT_START_TLS:
            if (!s->tls)
                start_tls(s, &a);
            break;
        case STREAM_ACT_NEED_POLICY:
            answer_policy(s, a.domain);
            break;
        case STREAM_ACT_VERIFY:
            start_verify(s, &a);
            break;
        case STREAM_ACT_VERIFY_RESULT:
            verify_answered(s, &a);
            break;
        case STREAM_ACT_STANZA:
            on_stanza(s, &a);
            break;
        case STREAM_ACT_BOUNCE:
            if (a.data)
                bounce_or_retry(s, &a);
            break;
        case STREAM_ACT_AUTHENTICATED:
            on_authenticated(s, &a);
            break;
        case STREAM_ACT_PAIR_FAILED:
            gw_note_failure(s->k->gw, s->partner[0] ? s->partner : s->remote,
                            a.condition ? a.condition : "pair-failed");
            log_info("conn %llx %s %s -> %s: pair failed (%s)", (unsigned long long)sess_cid(s),
                     kind_name(s), a.from, a.to, a.condition ? a.condition : "?");
            break;
        case STREAM_ACT_TIMER: {
            uint64_t now = gw_now_ms();
            uint64_t ms = a.deadline_ms > now ? a.deadline_ms - now : 0;
            timer_arm_at(worker_timers(s->k->w), &s->tmr, timer_now_ns() + ms * 1000000ull);
            break;
        }
        case STREAM_ACT_CLOSE:
            on_close_action(s, &a);
            break;
        case STREAM_ACT_NONE:
            break;
        }
    }
    s->draining = false;
}

/* ---- bytes in ---- */

static void feed_cipher(gw_sess_t *s, const uint8_t *data, size_t len);

/* Bytes in pin the engine has not taken yet (from pin_off on). */
static size_t pin_unparsed(const gw_sess_t *s)
{
    return s->pin.len - s->pin_off;
}

/* Moves the unparsed bytes to the front of pin. Done only when the parsed prefix is at least
   as long as what is left, or room is needed: a paused stream takes one stanza per resume, and
   moving the rest every time would cost its whole input once per stanza. */
static void pin_compact(gw_sess_t *s, bool always)
{
    if (s->pin_off == 0 || (!always && s->pin_off < pin_unparsed(s)))
        return;
    buf_consume(&s->pin, s->pin_off);
    s->pin_off = 0;
}

/* Feeds what waits in pin to the engine, a stanza at a time, until it needs more bytes, the
   stream ends, or flow control pauses it (s->gate) — unless `room` > 0: then, paused or not, until
   pin can take `room` more bytes. */
static void parse_pin(gw_sess_t *s, size_t room)
{
    while (s->pin_off < s->pin.len && !s->dead &&
           (room ? s->pin.max - pin_unparsed(s) < room : !s->gate)) {
        bool had_tls = s->tls != NULL;
        int r = stream_feed(s->st, s->pin.data + s->pin_off, pin_unparsed(s), gw_now_ms());
        if (r < 0)
            break;
        s->pin_off += (size_t)r;
        gw_sess_drain(s);
        if (!had_tls && s->tls) {
            /* STARTTLS: what follows <proceed/> is the TLS handshake. */
            pin_compact(s, true);
            if (s->pin.len > 0) {
                buf_t rest = s->pin;
                buf_init(&s->pin, GW_PIN_MAX);
                feed_cipher(s, rest.data, rest.len);
                buf_free(&rest);
            }
            return;
        }
        if (r == 0)
            break;
    }
    if (s->pin_off == s->pin.len) {
        buf_reset(&s->pin);
        s->pin_off = 0;
    } else {
        pin_compact(s, false);
    }
    /* Resumed with a full buffer: receive again only once it is worked down (gw_sess_resume). */
    if (!s->gate && s->conn && pin_unparsed(s) < GW_HOLD_MAX)
        conn_recv_resume(s->conn);
}

static void feed_plain(gw_sess_t *s, const uint8_t *data, size_t len)
{
    if (s->dead)
        return;
    /* More arrived than pin holds (a paused stream gets the buffers the kernel had filled before
       receiving stopped): parse just enough to make room rather than fail the stream; paused,
       its stanzas go to the congested destination's backlog, or are bounced past it. */
    if (len > 0 && s->pin.len + len > s->pin.max)
        pin_compact(s, true);
    if (len > 0 && s->pin.len + len > s->pin.max) {
        parse_pin(s, len);
        pin_compact(s, true);
    }
    if (len > 0 && buf_append(&s->pin, data, len) != 0) {
        stream_close(s->st, "resource-constraint", "input buffer full");
        gw_sess_drain(s);
        return;
    }
    if (s->gate)
        gw_sess_hold(s);
    parse_pin(s, 0);
}

static void tls_fail(gw_sess_t *s, const char *what)
{
    if (gw_log_ok(s->k))
        log_info("conn %llx %s %s: TLS %s: %s", (unsigned long long)sess_cid(s), kind_name(s),
                 s->remote, what, tls_conn_error(s->tls));
    gw_count(s->k, "fedgate_handshake_failures_total", "reason=\"tls\"", 1);
    gw_note_failure(s->k->gw, s->partner, "tls");
    flush_cipher(s);
    stream_tls_failed(s->st);
    gw_sess_drain(s);
    if (s->conn)
        conn_abort(s->conn);
}

/*
 * XEP-0368 inbound: the engine knows TLS only as the outcome of STARTTLS, and RFC 6120 §5.4.3.3
 * has it forget everything from before TLS. So a direct-TLS stream is replayed to it as the
 * pre-TLS exchange it would have had — a header to the SNI name and <starttls/> — with its answers
 * discarded; from then on it is an ordinary stream after STARTTLS.
 */
static bool direct_tls_in(gw_sess_t *s)
{
    char pre[STREAM_DOMAIN_MAX + 256];
    const char *to = tls_conn_sni(s->tls);
    if (!to || !to[0])
        to = tls_conn_local_domain(s->tls);
    if (!to || !to[0] || strchr(to, '\'')) {
        if (gw_log_ok(s->k))
            log_info("conn %llx in: direct TLS without a server name, closing",
                     (unsigned long long)sess_cid(s));
        conn_abort(s->conn);
        return false;
    }
    int n = snprintf(pre, sizeof(pre),
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                     "xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>"
                     "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
                     to);
    s->swallow = true;
    int r = stream_feed(s->st, pre, (size_t)n, gw_now_ms());
    gw_sess_drain(s);
    s->swallow = false;
    if (r != n || stream_state(s->st) != STREAM_S_TLS) {
        if (gw_log_ok(s->k))
            log_info("conn %llx in: direct TLS to %s refused", (unsigned long long)sess_cid(s), to);
        conn_abort(s->conn);
        return false;
    }
    return true;
}

/* TLS is up on a partner stream: its certificate's identities go to the engine. false when that
   closed the stream. */
static bool tls_peer_up(gw_sess_t *s)
{
    gw_worker_t *k = s->k;
    const tls_peer_t *peer = tls_conn_peer(s->tls);
    const char *names[STREAM_CERT_NAMES_MAX];
    size_t n = tls_identity_flatten(&peer->ids, names, STREAM_CERT_NAMES_MAX);
    char why[256];
    if (s->remote[0])
        tls_peer_describe(peer, s->remote, why, sizeof(why));
    else
        snprintf(why, sizeof(why), "%s", tls_verify_label(peer->verify));
    log_debug("conn %llx %s %s: %s up, peer certificate: %s", (unsigned long long)sess_cid(s),
              kind_name(s), s->remote, tls_conn_version(s->tls), why);
    char labels[64];
    snprintf(labels, sizeof(labels), "dir=\"%s\",result=\"%s\"", kind_name(s),
             tls_verify_label(peer->verify));
    gw_count(k, "fedgate_peer_certificates_total", labels, 1);
    stream_tls_up(s->st, names, n, peer->verify == TLS_VERIFY_OK, gw_now_ms());
    gw_sess_drain(s);
    return !s->dead;
}

static void pump_tls(gw_sess_t *s)
{
    gw_worker_t *k = s->k;
    if (!s->tls_up) {
        int h = tls_conn_handshake(s->tls);
        flush_cipher(s);
        if (h < 0) {
            tls_fail(s, "handshake failed");
            return;
        }
        if (h == 0)
            return;
        s->tls_up = true;
        if (s->direct_tls && s->kind == STREAM_IN && !direct_tls_in(s))
            return;
        /* XEP-0114 knows no TLS: a component's stream simply starts inside it, and it proves
           itself with the handshake secret, not a certificate. */
        if (s->kind == STREAM_COMPONENT)
            log_debug("conn %llx component: %s up", (unsigned long long)sess_cid(s),
                      tls_conn_version(s->tls));
        else if (!tls_peer_up(s))
            return;
    }
    for (;;) {
        ssize_t r = tls_conn_read_plain(s->tls, k->plain, sizeof(k->plain));
        if (r > 0) {
            feed_plain(s, k->plain, (size_t)r);
            if (s->dead)
                break;
            continue;
        }
        if (r < 0) {
            tls_fail(s, "record error");
            return;
        }
        break;
    }
    flush_cipher(s);
    if (!s->dead && tls_conn_state(s->tls) == TLS_CONN_CLOSED) {
        stream_transport_closed(s->st);
        gw_sess_drain(s);
    }
}

static void feed_cipher(gw_sess_t *s, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len && !s->dead) {
        ssize_t r = tls_conn_feed_cipher(s->tls, data + off, len - off);
        if (r < 0) {
            tls_fail(s, "input error");
            return;
        }
        off += (size_t)r;
        pump_tls(s);
        if (r == 0) {
            tls_fail(s, "input buffer full");
            return;
        }
    }
}

/* ---- connection callbacks ---- */

static void on_data(conn_t *c, const uint8_t *data, size_t len)
{
    gw_sess_t *s = conn_ctx(c);
    if (!s || s->dead)
        return;
    if (s->tls)
        feed_cipher(s, data, len);
    else
        feed_plain(s, data, len);
    /* Between stanzas the parser's expat instance goes back to the worker's pool. */
    if (!s->dead)
        stream_park(s->st);
}

static void kick_fire(timer_ent_t *t, void *arg)
{
    (void)t;
    gw_sess_t *s = arg;
    if (!s->dead && !s->gate)
        feed_plain(s, NULL, 0);
}

void gw_sess_hold(gw_sess_t *s)
{
    if (s->conn && pin_unparsed(s) >= GW_HOLD_MAX)
        conn_recv_pause(s->conn);
}

void gw_sess_resume(gw_sess_t *s)
{
    if (s->conn && pin_unparsed(s) < GW_HOLD_MAX)
        conn_recv_resume(s->conn);
    if (pin_unparsed(s) > 0)
        timer_arm_at(worker_timers(s->k->w), &s->kick_tmr, timer_now_ns());
}

static void on_writable(conn_t *c)
{
    gw_sess_t *s = conn_ctx(c);
    if (!s || s->dead)
        return;
    flush_cipher(s);
    gw_flow_writable(s);
}

static void on_timer(conn_t *c, unsigned id)
{
    (void)c;
    (void)id;
}

static void on_close(conn_t *c, int reason)
{
    gw_sess_t *s = conn_ctx(c);
    if (!s)
        return;
    s->conn = NULL;
    if (!s->opened && s->kind == STREAM_OUT && !s->dead) {
        /* The connect failed: try the next endpoint, or give up. */
        log_debug("out %s -> %s: connect failed: %s", s->local, s->remote, fg_strerror(reason));
        if (s->plan && s->next_ep < s->plan->n) {
            gw_sess_connect(s, NULL, 0);
            return;
        }
        log_info("out %s -> %s: no endpoint reachable", s->local, s->remote);
        stream_out_connect_failed(s->st, false);
        gw_sess_drain(s);
        sess_free(s);
        return;
    }
    if (!s->dead) {
        if (s->gate && pin_unparsed(s) > 0) {
            /* Paused with stanzas received: they are still routed (or bounced), not lost. */
            gw_flow_leave(s);
            feed_plain(s, NULL, 0);
        }
        if (!s->dead) {
            stream_transport_closed(s->st);
            gw_sess_drain(s);
        }
    }
    sess_free(s);
}

static void accept_common(conn_t *c, stream_kind_t kind, bool direct_tls)
{
    gw_worker_t *k = worker_data(conn_worker(c));
    gw_sess_t *s;
    conn_set_ctx(c, NULL);
    if (atomic_load(&k->gw->shutting_down)) {
        conn_abort(c);
        return;
    }
    stream_config_t cfg;
    stream_config_default(&cfg);
    cfg.kind = kind;
    if (gw_sess_new(k, &cfg, &s) != 0) {
        log_warn("conn %llx: cannot create a stream, closing", (unsigned long long)conn_id(c));
        conn_abort(c);
        return;
    }
    s->conn = c;
    s->opened = true;
    conn_set_ctx(c, s);
    char addr[80];
    listen_format_addr(conn_peer(c), addr, sizeof(addr));
    log_debug("conn %llx %s: accepted from %s%s", (unsigned long long)conn_id(c), kind_name(s),
              addr, direct_tls ? " (direct TLS)" : "");
    if (direct_tls) {
        /* ALPN names xmpp-server (XEP-0368); a component has no registered protocol name. */
        tls_conn_opts_t o = {.alpn_xmpp = kind == STREAM_IN};
        if (tls_conn_new(s->k->tls, TLS_ROLE_SERVER, &o, &s->tls) != 0) {
            conn_abort(c);
            return;
        }
        s->direct_tls = true;
    }
    stream_tick(s->st, gw_now_ms());
    gw_sess_drain(s);
}

static void in_open(conn_t *c)
{
    accept_common(c, STREAM_IN, false);
}

static void tls_open(conn_t *c)
{
    accept_common(c, STREAM_IN, true);
}

static void comp_open(conn_t *c)
{
    accept_common(c, STREAM_COMPONENT, false);
}

static void comp_tls_open(conn_t *c)
{
    accept_common(c, STREAM_COMPONENT, true);
}

static void out_open(conn_t *c)
{
    gw_sess_t *s = conn_ctx(c);
    s->conn = c;
    s->opened = true;
    log_debug("conn %llx %s %s -> %s: connected%s", (unsigned long long)conn_id(c), kind_name(s),
              s->local, s->remote, s->direct_tls ? " (direct TLS)" : "");
    stream_out_set_direct_tls(s->st, s->direct_tls);
    stream_out_connected(s->st, gw_now_ms());
    gw_sess_drain(s);
    if (s->direct_tls && !s->dead) {
        tls_conn_opts_t o = {.local_domain = s->local, .sni = s->remote, .alpn_xmpp = 1};
        int rc = tls_conn_new(s->k->tls, TLS_ROLE_CLIENT, &o, &s->tls);
        if (rc == FG_ENOTFOUND) {
            o.local_domain = NULL;
            rc = tls_conn_new(s->k->tls, TLS_ROLE_CLIENT, &o, &s->tls);
        }
        if (rc != 0) {
            stream_tls_failed(s->st);
            gw_sess_drain(s);
            return;
        }
        tls_conn_handshake(s->tls);
        flush_cipher(s);
    }
}

/* Every kind of session shares the handlers; only how it starts differs. */
#define GW_OPS(open)                                                                               \
    {                                                                                              \
        .on_open = (open), .on_data = on_data, .on_writable = on_writable, .on_timer = on_timer,   \
        .on_close = on_close                                                                       \
    }
const conn_ops_t gw_in_ops = GW_OPS(in_open);
const conn_ops_t gw_tls_ops = GW_OPS(tls_open);
const conn_ops_t gw_comp_ops = GW_OPS(comp_open);
const conn_ops_t gw_comp_tls_ops = GW_OPS(comp_tls_open);
const conn_ops_t gw_out_ops = GW_OPS(out_open);

/* ---- outgoing: resolve and connect ---- */

static void try_next(gw_sess_t *s)
{
    gw_worker_t *k = s->k;
    while (s->plan && s->next_ep < s->plan->n) {
        const dns_endpoint_t *ep = &s->plan->ep[s->next_ep++];
        conn_t *c = NULL;
        s->direct_tls = ep->direct_tls;
        uint64_t to = (uint64_t)k->gw->connect_timeout_ms;
        int rc = io_connect(k->w, (const struct sockaddr *)&ep->addr, ep->addrlen, to, &gw_out_ops,
                            s, &c);
        if (rc == 0)
            return; /* on_open or on_close follows */
        log_debug("out %s -> %s: connect: %s", s->local, s->remote, fg_strerror(rc));
    }
    log_info("out %s -> %s: no endpoint reachable", s->local, s->remote);
    stream_out_connect_failed(s->st, false);
    gw_sess_drain(s);
}

static void dns_done(void *arg, const dns_result_t *res)
{
    gw_sess_t *s = arg;
    s->dns_pending = false;
    if (s->dead)
        return;
    if (res->status != 0 || res->n == 0) {
        log_info("out %s -> %s: DNS: %s (%s)", s->local, s->remote, fg_strerror(res->status),
                 srv_plan_name(res->plan));
        gw_count(s->k, "fedgate_handshake_failures_total", "reason=\"dns\"", 1);
        gw_note_failure(s->k->gw, s->partner, "dns");
        stream_out_connect_failed(s->st, true);
        gw_sess_drain(s);
        return;
    }
    if (!s->plan)
        s->plan = malloc(sizeof(*s->plan));
    if (!s->plan) {
        stream_out_connect_failed(s->st, false);
        gw_sess_drain(s);
        return;
    }
    *s->plan = *res;
    s->next_ep = 0;
    try_next(s);
}

int gw_sess_connect(gw_sess_t *s, const char *proxy_host, uint16_t proxy_port)
{
    gw_worker_t *k = s->k;
    if (s->plan) {
        try_next(s);
        return 0;
    }
    int rc =
        k->dns ? dns_resolve_s2s(k->dns, s->remote, proxy_host && proxy_host[0] ? proxy_host : NULL,
                                 proxy_port, dns_done, s, &s->dns_id)
               : -EIO;
    if (rc != 0) {
        log_info("out %s -> %s: cannot resolve: %s", s->local, s->remote, fg_strerror(rc));
        stream_out_connect_failed(s->st, true);
        gw_sess_drain(s);
        return rc;
    }
    s->dns_pending = true;
    return 0;
}

/* ---- whole-worker operations ---- */

void gw_sess_close_all(gw_worker_t *k, const char *condition, const char *text)
{
    /* Outgoing streams first: the stanzas they still queue bounce to components that are still
       connected. Sessions are only freed from the loop, so the list stays walkable. */
    for (int pass = 0; pass < 2; pass++)
        for (gw_sess_t *s = k->sessions; s; s = s->next) {
            if (s->dead || (pass == 0) != (s->kind == STREAM_OUT))
                continue;
            s->local_close = true;
            stream_close(s->st, condition, text);
            gw_sess_drain(s);
        }
}

void gw_sess_recheck(gw_worker_t *k)
{
    for (gw_sess_t *s = k->sessions; s; s = s->next) {
        if (!s->dead && s->kind == STREAM_COMPONENT && s->comp_registered) {
            /* RFC 6120 §4.9.3.5: the domain was served here and no longer is (removed, disabled,
               or routed elsewhere now). */
            const policy_hosted_t *h = policy_lookup_hosted(k->pol, s->remote);
            if (!h || !h->enabled || h->route != HOSTED_ROUTE_COMPONENT) {
                log_info("conn %llx component %s: no longer a component route, closing",
                         (unsigned long long)sess_cid(s), s->remote);
                stream_close(s->st, "host-gone", NULL);
                gw_sess_drain(s);
            }
            continue;
        }
        if (!s->dead && s->kind == STREAM_IN && s->local[0] && !hosted_cb(k, s->local)) {
            log_info("conn %llx in %s: %s is no longer hosted, closing",
                     (unsigned long long)sess_cid(s), s->remote, s->local);
            s->local_close = true;
            stream_close(s->st, "host-gone", NULL);
            gw_sess_drain(s);
            continue;
        }
        if (s->dead || s->kind == STREAM_COMPONENT || !s->partner[0])
            continue;
        close_if_violating(s);
    }
}

/* The session's line of the stream table; a full table leaves it out (a partial table beats
   none). */
static void snap_line(gw_sess_t *s, buf_t *out)
{
    char line[1024], part[STREAM_DOMAIN_MAX * 2 + 1], loc[STREAM_DOMAIN_MAX * 2 + 1],
        rem[STREAM_DOMAIN_MAX * 2 + 1];
    const char *tv = s->tls && s->tls_up ? tls_conn_version(s->tls) : NULL;
    metrics_escape_label(s->partner, part, sizeof(part));
    metrics_escape_label(s->local, loc, sizeof(loc));
    metrics_escape_label(s->remote, rem, sizeof(rem));
    int n = snprintf(line, sizeof(line),
                     "fedgate_stream_info{id=\"%llx\",dir=\"%s\",partner=\"%s\","
                     "local=\"%s\",remote=\"%s\",state=\"%s\",auth=\"%s\",tls=\"%s\"} "
                     "%llu\n",
                     (unsigned long long)sess_cid(s), kind_name(s), part, loc, rem,
                     stream_state_name(stream_state(s->st)), stream_auth_name(s->auth),
                     tv ? tv : "none", (unsigned long long)s->since_unix);
    if (n > 0 && (size_t)n < sizeof(line))
        (void)buf_append(out, line, (size_t)n);
}

/* Idle streams give back buffer capacity a burst made them grow, so 15,000 idle streams stay
   small. Active ones regrow it, at most once a sweep each. */
static void trim_one(gw_sess_t *s)
{
    if (stream_state(s->st) == STREAM_S_OPEN)
        stream_trim(s->st);
    gw_flow_trim(s);
    if (s->pin.len == 0 && s->pin.cap > 0) {
        buf_free(&s->pin);
        buf_init(&s->pin, GW_PIN_MAX);
    }
    if (s->pout.len == 0 && s->pout.cap > 0) {
        buf_free(&s->pout);
        buf_init(&s->pout, GW_POUT_MAX);
    }
}

bool gw_sess_sweep(gw_worker_t *k, uint64_t now_ns)
{
    if (!k->sweeping) {
        if (now_ns < k->sweep_next_ns)
            return false;
        k->sweep_next_ns = now_ns + GW_SNAP_MS * 1000000ull;
        k->sweeping = true;
        k->sweep = k->sessions;
        k->sweep_budget = k->nsess / GW_SWEEP_STEPS + 1;
        buf_reset(&k->snap_next);
    }
    for (unsigned n = 0; k->sweep && n < k->sweep_budget; n++) {
        gw_sess_t *s = k->sweep;
        k->sweep = s->next;
        if (s->dead)
            continue;
        trim_one(s);
        snap_line(s, &k->snap_next);
    }
    if (k->sweep)
        return false;
    /* Sessions opened during the sweep are in the next one. Publish by swapping buffers: the
       scrape's lock is held for no copy. */
    k->sweeping = false;
    struct gw_snap *sn = &k->gw->snap[k->idx];
    pthread_mutex_lock(&sn->mu);
    buf_t t = sn->text;
    sn->text = k->snap_next;
    k->snap_next = t;
    pthread_mutex_unlock(&sn->mu);
    return true;
}

bool gw_sess_congested(const gw_sess_t *s, size_t len)
{
    if (!s->conn || s->dead)
        return false; /* not connected yet: the engine's own bounded queue applies */
    size_t pending = s->tls ? tls_conn_cipher_pending(s->tls) + s->pout.len : 0;
    /* Room for the stanza, TLS record overhead and what TLS still holds. */
    return conn_send_space(s->conn) < len + pending + 4096;
}
