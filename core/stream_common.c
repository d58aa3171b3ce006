/*
 * Stream engine, shared part: creation, input loop, action queue, output bytes, pairs, timers,
 * routing and the public entry points that do not depend on the stream's direction.
 */
#include "core/stream_int.h"

#include "core/err.h"
#include "core/jid.h"
#include "core/sasl.h"
#include "core/stream_err.h"

#include <stdlib.h>
#include <string.h>

/* Leave this many ring slots free before taking more input: one event can push a handful of
   actions (bytes, verify, policy, authenticated, timer, close). */
#define RING_RESERVE 10
/* How long we wait for the peer's closing tag after sending ours. */
#define CLOSE_WAIT_MS 10000
/* SASL attempts before <policy-violation/> (RFC 6120 §6.4.5 "too many retries"). */
#define SASL_MAX_FAILURES 3

void stream_config_default(stream_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = STREAM_IN;
    stream_limits_default(&cfg->limits);
    cfg->lang = "en";
    cfg->offer_bidi = true;
    cfg->serialize_stanzas = true;
    cfg->rules.tls = NEG_REQUIRED;
    cfg->rules.sasl = NEG_REQUIRED;
    cfg->rules.dialback = true;
    cfg->rules.keepalive = true;
    cfg->rules.type = PARTNER_PUBLIC_UNVERIFIED;
}

/* ---- small helpers ---- */

void st_copy(char *dst, const char *src, size_t cap)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A bare domain we can store: valid as a JID domainpart and short enough. */
bool st_domain_ok(const char *d)
{
    size_t n = d ? strlen(d) : 0;
    return n > 0 && n <= STREAM_DOMAIN_MAX && jid_domain_check(d, n) == 0;
}

/* Copy a domain lower-cased without its trailing dot, the form pairs and verdicts are kept in. */
static void norm_copy(char *dst, const char *src)
{
    size_t n = strlen(src);
    if (n > STREAM_DOMAIN_MAX)
        n = STREAM_DOMAIN_MAX;
    if (n > 0 && src[n - 1] == '.')
        n--;
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        dst[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    dst[n] = '\0';
}

bool st_hosted(const stream_t *s, const char *domain)
{
    if (!domain || !*domain)
        return false;
    if (s->cfg.hosted_fn)
        return s->cfg.hosted_fn(s->cfg.hosted_ctx, domain);
    for (size_t i = 0; i < s->cfg.n_hosted; i++)
        if (jid_domain_equal_str(s->cfg.hosted[i], domain))
            return true;
    return false;
}

void st_new_id(stream_t *s)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[STREAM_ID_LEN / 2];
    s->cfg.random(s->cfg.random_ctx, r, sizeof(r));
    for (size_t i = 0; i < sizeof(r); i++) {
        s->id[2 * i] = hex[r[i] >> 4];
        s->id[2 * i + 1] = hex[r[i] & 15];
    }
    s->id[STREAM_ID_LEN] = '\0';
}

bool st_parse_version(const char *v, int *major, int *minor)
{
    long a = 0, b = 0;
    const char *p = v;
    if (!p || *p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9' && a < 1000)
        a = a * 10 + (*p++ - '0');
    if (*p++ != '.' || *p < '0' || *p > '9')
        return false;
    while (*p >= '0' && *p <= '9' && b < 1000)
        b = b * 10 + (*p++ - '0');
    if (*p)
        return false;
    *major = (int)a;
    *minor = (int)b;
    return true;
}

/* The negotiation matrix (lync-spec §2.1) as rules: SASL needs TLS; dialback is dead when TLS and
   SASL are both required (row 1); plain-TCP dialback needs TLS not to be required. */
bool st_sasl_allowed(const peer_rules_t *r)
{
    return r->tls != NEG_NOT_SUPPORTED && r->sasl != NEG_NOT_SUPPORTED;
}

bool st_dialback_allowed(const peer_rules_t *r, bool tls)
{
    if (!r->dialback || (r->tls == NEG_REQUIRED && r->sasl == NEG_REQUIRED))
        return false;
    return tls ? r->tls != NEG_NOT_SUPPORTED : r->tls != NEG_REQUIRED;
}

bool st_cert_covers(const stream_t *s, const char *domain)
{
    const char *names[STREAM_CERT_NAMES_MAX];
    const char *p = s->certnames;
    for (uint8_t i = 0; i < s->ncertnames; i++) {
        names[i] = p;
        p += strlen(p) + 1;
    }
    return s->cert_valid && sasl_cert_covers(names, s->ncertnames, domain);
}

/* ---- actions and output ---- */

act_t *st_push(stream_t *s, int type)
{
    static act_t sink;
    if (s->ring_count == STREAM_ACTIONS_MAX) {
        /* Unreachable by construction (input stops RING_RESERVE slots early); never overwrite. */
        memset(&sink, 0, sizeof(sink));
        return &sink;
    }
    act_t *a = &s->ring[(s->ring_head + s->ring_count++) % STREAM_ACTIONS_MAX];
    memset(a, 0, sizeof(*a));
    a->type = type;
    a->from = a->to = a->id = a->key = a->domain = NOSTR;
    return a;
}

uint32_t st_str(stream_t *s, const char *str)
{
    uint32_t off = (uint32_t)s->out.len;
    if (!str || buf_append(&s->out, str, strlen(str) + 1) != 0)
        return NOSTR;
    return off;
}

/* Make the bytes out[pos, out.len) the tail of a SEND action. */
static void link_send(stream_t *s, size_t pos)
{
    size_t n = s->out.len - pos;
    if (n == 0)
        return;
    if (s->ring_count > 0) {
        act_t *last = &s->ring[(s->ring_head + s->ring_count - 1) % STREAM_ACTIONS_MAX];
        if (last->type == STREAM_ACT_SEND && last->buf == ABUF_OUT &&
            last->data_off + last->data_len == pos) {
            last->data_len += (uint32_t)n;
            return;
        }
    }
    act_t *a = st_push(s, STREAM_ACT_SEND);
    a->buf = ABUF_OUT;
    a->data_off = (uint32_t)pos;
    a->data_len = (uint32_t)n;
}

void st_send_begin(stream_t *s, uint32_t *mark)
{
    *mark = (uint32_t)s->out.len;
}

void st_send_commit(stream_t *s, uint32_t mark)
{
    link_send(s, mark);
    s->last_sent = s->now;
}

int st_send_str(stream_t *s, const char *str)
{
    return buf_append_str(&s->out, str);
}

int st_send_attr(stream_t *s, const char *str)
{
    return stanza_write_escaped(&s->out, str, strlen(str), true);
}

int st_write_header(stream_t *s, const char *from, const char *to, bool version, bool db,
                    const char *content_ns)
{
    int rc = 0;
    uint32_t m;
    st_send_begin(s, &m);
    rc |= st_send_str(s, "<?xml version='1.0'?><stream:stream xmlns='");
    rc |= st_send_str(s, content_ns);
    rc |= st_send_str(s, "' xmlns:stream='" STANZA_NS_STREAM "'");
    if (db)
        rc |= st_send_str(s, " xmlns:db='" STANZA_NS_DIALBACK "'");
    if (from && *from) {
        rc |= st_send_str(s, " from='");
        rc |= st_send_attr(s, from);
        rc |= st_send_str(s, "'");
    }
    if (to && *to) {
        rc |= st_send_str(s, " to='");
        rc |= st_send_attr(s, to);
        rc |= st_send_str(s, "'");
    }
    if (s->kind != STREAM_OUT && s->id[0]) {
        rc |= st_send_str(s, " id='");
        rc |= st_send_str(s, s->id);
        rc |= st_send_str(s, "'");
    }
    if (version)
        rc |= st_send_str(s, " version='1.0'");
    if (s->kind != STREAM_COMPONENT) {
        rc |= st_send_str(s, " xml:lang='");
        rc |= st_send_attr(s, s->lang);
        rc |= st_send_str(s, "'");
    }
    rc |= st_send_str(s, ">");
    st_send_commit(s, m);
    s->header_sent = true;
    return rc ? FG_ELIMIT : 0;
}

/* ---- closing ---- */

void st_close_now(stream_t *s, const char *condition, const char *reason)
{
    if (s->state == STREAM_S_CLOSED)
        return;
    st_bounce_all(s, "remote-server-timeout");
    act_t *a = st_push(s, STREAM_ACT_CLOSE);
    a->condition = condition;
    a->reason = reason;
    s->state = STREAM_S_CLOSED;
}

void st_fail_app(stream_t *s, const char *condition, const char *text, const char *app_ns,
                 const char *app_cond, const char *reason)
{
    if (s->state == STREAM_S_CLOSED)
        return;
    const char *cond = stream_err_stream_condition(condition);
    if (!cond)
        cond = "undefined-condition";
    /* RFC 6120 §4.9.1.2: an error during setup still opens our side of the stream first. */
    if (s->kind != STREAM_OUT && !s->header_sent) {
        const char *from = s->local[0] ? s->local : NULL;
        if (!from && s->cfg.n_hosted > 0 && st_domain_ok(s->cfg.hosted[0]))
            from = s->cfg.hosted[0];
        const char *ns = s->kind == STREAM_COMPONENT ? STANZA_NS_COMPONENT : STANZA_NS_SERVER;
        if (s->id[0] == '\0')
            st_new_id(s);
        st_write_header(s, from, s->kind == STREAM_IN ? s->remote : NULL,
                        !s->legacy && s->kind == STREAM_IN, false, ns);
    }
    uint32_t m;
    st_send_begin(s, &m);
    if (stream_err_write(&s->out, cond, text, app_ns, app_cond) == 0)
        st_send_commit(s, m);
    s->closing_sent = true;
    st_close_now(s, cond, reason ? reason : cond);
}

void st_fail(stream_t *s, const char *condition, const char *text, const char *reason)
{
    st_fail_app(s, condition, text, NULL, NULL, reason);
}

/* ---- pairs and domains ---- */

static int grow(void ***arr, uint32_t *cap, uint32_t need, stream_t *s)
{
    if (need <= *cap)
        return 0;
    uint32_t ncap = *cap ? *cap * 2 : 2;
    void **n = realloc(*arr, ncap * sizeof(void *));
    if (!n)
        return -ENOMEM;
    s->mallocs++;
    *arr = n;
    *cap = ncap;
    return 0;
}

pair_t *st_pair_find(const stream_t *s, const char *local, const char *remote)
{
    for (uint32_t i = 0; i < s->npairs; i++) {
        pair_t *p = s->pairs[i];
        if (jid_domain_equal_str(p->local, local) && jid_domain_equal_str(p->remote, remote))
            return p;
    }
    return NULL;
}

uint32_t st_pair_index(const stream_t *s, const pair_t *p)
{
    for (uint32_t i = 0; i < s->npairs; i++)
        if (s->pairs[i] == p)
            return i;
    return NOSTR;
}

pair_t *st_pair_add(stream_t *s, const char *local, const char *remote, pair_state_t st)
{
    if (s->npairs >= s->cfg.limits.max_domain_pairs ||
        grow((void ***)&s->pairs, &s->cap_pairs, s->npairs + 1, s) != 0)
        return NULL;
    pair_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    s->mallocs++;
    p->state = st;
    norm_copy(p->local, local);
    norm_copy(p->remote, remote);
    s->pairs[s->npairs++] = p;
    return p;
}

/* Only IN pairs are removed (OUT pairs keep their index: queue entries refer to it). */
void st_pair_remove(stream_t *s, pair_t *p)
{
    uint32_t i = st_pair_index(s, p);
    if (i == NOSTR)
        return;
    memmove(&s->pairs[i], &s->pairs[i + 1], (s->npairs - i - 1) * sizeof(pair_t *));
    s->npairs--;
    free(p);
}

bool st_any_valid(const stream_t *s)
{
    if (s->sasl_done)
        return true;
    for (uint32_t i = 0; i < s->npairs; i++)
        if (s->pairs[i]->state == PAIR_VALID)
            return true;
    return false;
}

dom_t *st_dom_find(const stream_t *s, const char *domain)
{
    for (uint32_t i = 0; i < s->ndoms; i++)
        if (jid_domain_equal_str(s->doms[i]->domain, domain))
            return s->doms[i];
    return NULL;
}

dom_t *st_dom_add(stream_t *s, const char *domain)
{
    if (s->ndoms >= s->cfg.limits.max_domain_pairs + 1 ||
        grow((void ***)&s->doms, &s->cap_doms, s->ndoms + 1, s) != 0)
        return NULL;
    dom_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    s->mallocs++;
    norm_copy(d->domain, domain);
    s->doms[s->ndoms++] = d;
    return d;
}

void st_authenticated(stream_t *s, const char *local, const char *remote, stream_auth_t m)
{
    act_t *a = st_push(s, STREAM_ACT_AUTHENTICATED);
    a->from = st_str(s, remote);
    a->to = st_str(s, local);
    a->method = (uint8_t)m;
    if (!s->established) {
        s->established = true;
        xml_set_max_stanza(s->xml, s->cfg.limits.max_stanza_bytes);
    }
}

/* ---- bounces (OUT queue) ---- */

void st_bounce_pair(stream_t *s, pair_t *p, const char *condition)
{
    uint32_t idx = st_pair_index(s, p);
    if (idx == NOSTR || p->queued == 0)
        return;
    act_t *a = st_push(s, ACT_BOUNCE_BATCH);
    a->pair = idx;
    a->condition = condition;
    a->from = st_str(s, p->local);
    a->to = st_str(s, p->remote);
    p->queued = 0;
}

void st_bounce_all(stream_t *s, const char *condition)
{
    for (uint32_t i = 0; i < s->npairs; i++) {
        pair_t *p = s->pairs[i];
        if (s->kind == STREAM_OUT && p->state != PAIR_VALID && p->state != PAIR_FAILED) {
            act_t *a = st_push(s, STREAM_ACT_PAIR_FAILED);
            a->from = st_str(s, p->local);
            a->to = st_str(s, p->remote);
            a->condition = condition;
            p->state = PAIR_FAILED;
        }
        st_bounce_pair(s, p, condition);
    }
}

/* ---- routing ---- */

static bool content_decl(const stanza_nsdecl_t *d, const char *content_ns)
{
    return d->prefix == NULL && d->uri && strcmp(d->uri, content_ns) == 0;
}

/*
 * Serialize a routed stanza without its content namespace: the top element is written by hand so
 * a redundant xmlns='jabber:server' (or jabber:component:accept) is dropped, and the bytes mean the
 * same on an s2s stream and on a component stream, whose default namespaces differ.
 */
static int write_routed(stream_t *s, const stanza_t *el, const char *content_ns)
{
    buf_t *o = &s->out;
    const stanza_scope_t *scope =
        s->kind == STREAM_COMPONENT ? &stanza_scope_component : &stanza_scope_s2s;
    int rc = 0;
    rc |= buf_append_str(o, "<");
    rc |= buf_append_str(o, el->name);
    for (uint16_t i = 0; i < el->nattrs; i++) {
        const stanza_attr_t *at = &el->attrs[i];
        rc |= buf_append_str(o, " ");
        if (at->prefix) {
            rc |= buf_append_str(o, at->prefix);
            rc |= buf_append_str(o, ":");
        }
        rc |= buf_append_str(o, at->name);
        rc |= buf_append_str(o, "='");
        rc |= stanza_write_escaped(o, at->value, at->value_len, true);
        rc |= buf_append_str(o, "'");
    }
    for (uint16_t i = 0; i < el->ndecls; i++) {
        const stanza_nsdecl_t *d = &el->decls[i];
        if (content_decl(d, content_ns))
            continue;
        rc |= buf_append_str(o, d->prefix ? " xmlns:" : " xmlns");
        if (d->prefix)
            rc |= buf_append_str(o, d->prefix);
        rc |= buf_append_str(o, "='");
        rc |= stanza_write_escaped(o, d->uri, strlen(d->uri), true);
        rc |= buf_append_str(o, "'");
    }
    if (!el->first)
        return rc | buf_append_str(o, "/>");
    rc |= buf_append_str(o, ">");
    for (const stanza_t *c = el->first; c && rc == 0; c = c->next) {
        if (c->name == NULL)
            rc |= stanza_write_escaped(o, c->text, c->text_len, false);
        else
            rc |= stanza_write(o, c, scope);
    }
    rc |= buf_append_str(o, "</");
    rc |= buf_append_str(o, el->name);
    rc |= buf_append_str(o, ">");
    return rc;
}

int st_route(stream_t *s, const xml_event_t *ev, const char *content_ns)
{
    const stanza_t *el = ev->el;
    act_t *a = st_push(s, STREAM_ACT_STANZA);
    a->el = el;
    a->from = st_str(s, stanza_from(el));
    a->to = st_str(s, stanza_to(el));
    if (s->cfg.serialize_stanzas) {
        size_t pos = s->out.len;
        bool redundant = false;
        for (uint16_t i = 0; i < el->ndecls; i++)
            redundant |= content_decl(&el->decls[i], content_ns);
        /* The bytes as received are the cheapest correct serialization when they carry no
           declaration of the content namespace and use no prefix from the stream header. */
        int rc = (ev->raw && ev->raw_portable && !redundant)
                     ? buf_append(&s->out, ev->raw, ev->raw_len)
                     : write_routed(s, el, content_ns);
        if (rc != 0) {
            s->out.len = pos;
            st_fail(s, "internal-server-error", NULL, "serialize");
            return XML_CB_STOP;
        }
        a->buf = ABUF_OUT;
        a->data_off = (uint32_t)pos;
        a->data_len = (uint32_t)(s->out.len - pos);
    }
    s->nstanzas++;
    s->stanza_stop = true;
    return XML_CB_STOP;
}

/* ---- parser glue ---- */

static int on_event(void *ctx, const xml_event_t *ev)
{
    stream_t *s = ctx;
    if (s->state == STREAM_S_CLOSED)
        return XML_CB_STOP;
    if (ev->type == XML_EV_STREAM_CLOSE) {
        /* The peer closed its side: answer with ours (unless sent) and close the transport. */
        if (!s->closing_sent) {
            uint32_t m;
            st_send_begin(s, &m);
            st_send_str(s, "</stream:stream>");
            st_send_commit(s, m);
            s->closing_sent = true;
        }
        st_close_now(s, NULL, "peer-closed");
        return XML_CB_STOP;
    }
    if (ev->type == XML_EV_STANZA && stanza_is(ev->el, STANZA_NS_STREAM, "error")) {
        /* The peer's stream error ends the stream; report its condition. */
        const char *cond = NULL;
        for (const stanza_t *c = stanza_first_child(ev->el); c; c = stanza_next_sibling(c))
            if (strcmp(stanza_ns(c), STANZA_NS_STREAMS) == 0 && strcmp(c->name, "text") != 0)
                cond = stream_err_stream_condition(c->name);
        if (!s->closing_sent) {
            uint32_t m;
            st_send_begin(s, &m);
            st_send_str(s, "</stream:stream>");
            st_send_commit(s, m);
            s->closing_sent = true;
        }
        st_close_now(s, cond ? cond : "undefined-condition", "peer-error");
        return XML_CB_STOP;
    }
    int rc;
    switch (s->kind) {
    case STREAM_IN:
        rc = st_in_event(s, ev);
        break;
    case STREAM_OUT:
        rc = st_out_event(s, ev);
        break;
    default:
        rc = st_comp_event(s, ev);
        break;
    }
    if (s->state == STREAM_S_CLOSED || s->restart || s->wait_event ||
        s->ring_count + RING_RESERVE >= STREAM_ACTIONS_MAX)
        rc = XML_CB_STOP;
    return rc;
}

/* ---- public entry points ---- */

static size_t out_max(const stream_t *s)
{
    return s->queue.max + (size_t)s->cfg.limits.max_stanza_bytes * 2 + 65536;
}

int stream_new(stream_t **out, const stream_config_t *cfg)
{
    int rc = 0;
    stream_t *s = NULL;
    *out = NULL;
    if (!cfg || !cfg->random)
        return -EINVAL;
    if (cfg->kind == STREAM_OUT && (!st_domain_ok(cfg->local) || !st_domain_ok(cfg->remote)) &&
        !cfg->verify_only)
        return -EINVAL;
    if (cfg->secret_len > STREAM_SECRET_MAX)
        return -EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->mallocs = 1;
    s->cfg = *cfg;
    s->kind = cfg->kind;
    st_copy(s->lang, cfg->lang ? cfg->lang : "en", sizeof(s->lang));
    s->cfg.lang = NULL;
    s->cfg.local = s->cfg.remote = NULL;
    if (cfg->secret_len)
        memcpy(s->secret, cfg->secret, cfg->secret_len);
    s->secret_len = cfg->secret_len;
    s->cfg.secret = NULL;
    if (s->cfg.limits.max_stanza_bytes < 10000)
        s->cfg.limits.max_stanza_bytes = 10000;
    if (s->cfg.limits.max_domain_pairs == 0)
        s->cfg.limits.max_domain_pairs = 1;
    if (cfg->kind == STREAM_OUT) {
        if (cfg->local)
            norm_copy(s->local, cfg->local);
        if (cfg->remote)
            norm_copy(s->remote, cfg->remote);
        s->rules = cfg->rules;
        s->have_rules = true;
        s->state = STREAM_S_CONNECTING;
        if (!cfg->verify_only && !st_pair_add(s, s->local, s->remote, PAIR_WANTED)) {
            rc = -ENOMEM;
            goto fail;
        }
    } else {
        s->state = STREAM_S_WAIT_HEADER;
    }
    size_t qmax = (size_t)s->cfg.limits.max_queued_stanzas * s->cfg.limits.max_stanza_bytes;
    if (qmax > (64u << 20))
        qmax = 64u << 20;
    buf_init(&s->queue, qmax);
    /* Output holds one stanza plus protocol elements between two drains, or (OUT) a flushed
       queue: bounded by the queue's own bound. */
    buf_init(&s->out, out_max(s));
    rc = xml_parser_new(&s->xml, &s->cfg.limits, on_event, s);
    if (rc != 0)
        goto fail;
    xml_set_pool(s->xml, cfg->xml_pool);
    s->now = s->created = s->last_activity = s->last_sent = cfg->now_ms;
    *out = s;
    return 0;
fail:
    stream_free(s);
    return rc;
}

void stream_free(stream_t *s)
{
    if (!s)
        return;
    xml_parser_free(s->xml);
    for (uint32_t i = 0; i < s->npairs; i++)
        free(s->pairs[i]);
    free(s->pairs);
    for (uint32_t i = 0; i < s->ndoms; i++)
        free(s->doms[i]);
    free(s->doms);
    for (uint32_t i = 0; i < s->nvreqs; i++)
        free(s->vreqs[i]);
    free(s->vreqs);
    free(s->qents);
    buf_free(&s->out);
    buf_free(&s->queue);
    memset(s->secret, 0, sizeof(s->secret));
    free(s);
}

/* Forget consumed output and dead queue entries; only when no action points into them. */
void st_begin_call(stream_t *s, uint64_t now)
{
    if (now > s->now)
        s->now = now;
    if (s->ring_count == 0) {
        buf_reset(&s->out);
        if (s->live_q == 0 && s->nq > 0) {
            s->nq = 0;
            buf_reset(&s->queue);
        }
    }
}

static uint64_t next_deadline(const stream_t *s)
{
    const stream_limits_t *l = &s->cfg.limits;
    uint64_t d = UINT64_MAX;
#define CONSIDER(x)                                                                                \
    do {                                                                                           \
        uint64_t x_ = (x);                                                                         \
        if (x_ < d)                                                                                \
            d = x_;                                                                                \
    } while (0)
    if (s->state == STREAM_S_CLOSED || s->state == STREAM_S_CONNECTING)
        return 0;
    if (s->state == STREAM_S_CLOSING)
        return s->close_deadline;
    if (!s->established && l->establishment_timeout_s)
        CONSIDER(s->created + (uint64_t)l->establishment_timeout_s * 1000);
    if (l->inactivity_timeout_s)
        CONSIDER(s->last_activity + (uint64_t)l->inactivity_timeout_s * 1000);
    if (s->established && s->have_rules && s->rules.keepalive && l->keepalive_interval_s &&
        s->kind != STREAM_COMPONENT)
        CONSIDER(s->last_sent + (uint64_t)l->keepalive_interval_s * 1000);
    for (uint32_t i = 0; i < s->npairs; i++)
        if (s->pairs[i]->deadline)
            CONSIDER(s->pairs[i]->deadline);
#undef CONSIDER
    return d == UINT64_MAX ? 0 : d;
}

/* Arm a timer when the next deadline is earlier than the armed one; later deadlines are found when
   the armed timer fires (stream_tick re-arms), so routine activity emits no TIMER action. */
void st_end_call(stream_t *s)
{
    if (s->state == STREAM_S_CLOSED)
        return;
    uint64_t d = next_deadline(s);
    if (d && (s->armed == 0 || d < s->armed)) {
        act_t *a = st_push(s, STREAM_ACT_TIMER);
        a->deadline = d;
        s->armed = d;
    }
}

int stream_feed(stream_t *s, const void *data, size_t len, uint64_t now_ms)
{
    const uint8_t *p = data;
    size_t off = 0;
    st_begin_call(s, now_ms);
    if (s->state == STREAM_S_CLOSED)
        return (int)len;
    if (s->state == STREAM_S_CONNECTING || s->state == STREAM_S_TLS || s->wait_event)
        return 0;
    if (len > 0)
        s->last_activity = s->now;
    while (off < len && s->state != STREAM_S_CLOSED) {
        if (s->ring_count + RING_RESERVE >= STREAM_ACTIONS_MAX)
            break;
        if (s->restart) {
            s->restart = false;
            if (xml_reset(s->xml) != 0) {
                st_fail(s, "internal-server-error", NULL, "parser-reset");
                break;
            }
        }
        size_t c = 0;
        s->stanza_stop = false;
        int rc = xml_feed(s->xml, p + off, len - off, &c);
        off += c;
        if (rc < 0) {
            xml_reason_t r = xml_error(s->xml);
            const char *cond = xml_reason_condition(r);
            if (r == XML_REASON_STANZA_TOO_BIG)
                st_fail_app(s, "policy-violation", NULL, STANZA_NS_XMPP_ERRS, "stanza-too-big",
                            "stanza-too-big");
            else
                st_fail(s, cond ? cond : "internal-server-error", NULL, xml_reason_name(r));
            break;
        }
        if (s->state == STREAM_S_TLS || s->wait_event || s->stanza_stop)
            break;
        if (c == 0 && !s->restart)
            break;
    }
    if (s->state == STREAM_S_CLOSED)
        off = len;
    st_end_call(s);
    return (int)(off > (size_t)INT32_MAX ? INT32_MAX : off);
}

bool stream_next_action(stream_t *s, stream_action_t *out)
{
    while (s->ring_count > 0) {
        act_t *a = &s->ring[s->ring_head];
        memset(out, 0, sizeof(*out));
        if (a->type == ACT_BOUNCE_BATCH) {
            /* Expand lazily: one BOUNCE per queued stanza of the pair, in queue order. */
            for (uint32_t i = 0; i < s->nq; i++) {
                qent_t *q = &s->qents[i];
                if (q->dead || q->pair != a->pair)
                    continue;
                q->dead = true;
                s->live_q--;
                out->type = STREAM_ACT_BOUNCE;
                out->data = s->queue.data + q->off;
                out->len = q->len;
                out->from = a->from == NOSTR ? NULL : (const char *)s->out.data + a->from;
                out->to = a->to == NOSTR ? NULL : (const char *)s->out.data + a->to;
                out->condition = a->condition;
                return true;
            }
            s->ring_head = (s->ring_head + 1) % STREAM_ACTIONS_MAX;
            s->ring_count--;
            continue;
        }
        const char *base = (const char *)s->out.data;
        out->type = (stream_action_type_t)a->type;
        if (a->data_len) {
            const uint8_t *b = a->buf == ABUF_QUEUE ? s->queue.data : s->out.data;
            out->data = b + a->data_off;
            out->len = a->data_len;
        }
        out->from = a->from == NOSTR ? NULL : base + a->from;
        out->to = a->to == NOSTR ? NULL : base + a->to;
        out->id = a->id == NOSTR ? NULL : base + a->id;
        out->key = a->key == NOSTR ? NULL : base + a->key;
        out->domain = a->domain == NOSTR ? NULL : base + a->domain;
        out->condition = a->condition;
        out->reason = a->reason;
        out->el = a->el;
        out->method = (stream_auth_t)a->method;
        out->result = (stream_verify_t)a->result;
        out->tls_server = a->tls_server;
        out->deadline_ms = a->deadline;
        s->ring_head = (s->ring_head + 1) % STREAM_ACTIONS_MAX;
        s->ring_count--;
        return true;
    }
    return false;
}

int stream_tls_up(stream_t *s, const char *const *names, size_t n_names, bool valid, uint64_t now)
{
    int rc = 0;
    st_begin_call(s, now);
    bool direct = (s->kind == STREAM_OUT && s->cfg.direct_tls && s->state == STREAM_S_CONNECTING) ||
                  (s->kind == STREAM_IN && s->state == STREAM_S_WAIT_HEADER && !s->tls &&
                   !s->header_sent && !s->restart);
    if (s->state != STREAM_S_TLS && !direct) {
        rc = FG_EPROTO;
        goto out;
    }
    s->tls = true;
    s->cert_valid = valid;
    s->ncertnames = 0;
    size_t used = 0;
    for (size_t i = 0; i < n_names && s->ncertnames < STREAM_CERT_NAMES_MAX; i++) {
        size_t l = names[i] ? strlen(names[i]) : 0;
        if (l == 0 || used + l + 1 > sizeof(s->certnames))
            continue;
        memcpy(s->certnames + used, names[i], l + 1);
        used += l + 1;
        s->ncertnames++;
    }
    s->last_activity = s->now;
    rc = s->kind == STREAM_OUT ? st_out_tls_up(s) : st_in_tls_up(s);
out:
    st_end_call(s);
    return rc;
}

void stream_tls_failed(stream_t *s)
{
    st_begin_call(s, s->now);
    st_close_now(s, NULL, "tls-failed");
}

int stream_policy(stream_t *s, const char *domain, bool allowed, const peer_rules_t *rules)
{
    int rc = 0;
    st_begin_call(s, s->now);
    dom_t *d = domain ? st_dom_find(s, domain) : NULL;
    if (s->state == STREAM_S_CLOSED || s->closing_sent) {
        rc = FG_EPROTO; /* nothing more may be written on this stream */
        goto out;
    }
    if (!d || d->state != DOM_PENDING || s->kind != STREAM_IN) {
        rc = FG_ENOTFOUND;
        goto out;
    }
    d->state = allowed ? DOM_ALLOWED : DOM_REFUSED;
    if (allowed && rules)
        d->rules = *rules;
    rc = st_in_policy(s, d);
out:
    st_end_call(s);
    return rc;
}

int stream_component_secret(stream_t *s, const char *domain, bool allowed, const void *secret,
                            size_t secret_len)
{
    int rc = FG_ENOTFOUND;
    st_begin_call(s, s->now);
    if (s->kind == STREAM_COMPONENT && s->state == STREAM_S_WAIT_POLICY && domain &&
        jid_domain_equal_str(domain, s->remote))
        rc = st_comp_secret(s, allowed, secret, secret_len);
    st_end_call(s);
    return rc;
}

int stream_verify_result(stream_t *s, const char *from, const char *to, const char *id,
                         stream_verify_t result, const char *condition)
{
    int rc = FG_ENOTFOUND;
    st_begin_call(s, s->now);
    if (s->kind == STREAM_IN && from && to && id && strcmp(id, s->id) == 0 &&
        s->state != STREAM_S_CLOSED && !s->closing_sent) {
        pair_t *p = st_pair_find(s, from, to);
        if (p && p->state == PAIR_VERIFYING)
            rc = st_in_verify_result(s, p, result, condition);
    }
    st_end_call(s);
    return rc;
}

void stream_tick(stream_t *s, uint64_t now_ms)
{
    const stream_limits_t *l = &s->cfg.limits;
    st_begin_call(s, now_ms);
    s->armed = 0;
    if (s->state == STREAM_S_CLOSED || s->state == STREAM_S_CONNECTING)
        goto out;
    if (s->state == STREAM_S_CLOSING) {
        /* Only the wait for the peer's closing tag is left. */
        if (s->now >= s->close_deadline)
            st_close_now(s, NULL, "close-timeout");
        goto out;
    }
    if (!s->established && l->establishment_timeout_s &&
        s->now >= s->created + (uint64_t)l->establishment_timeout_s * 1000) {
        st_fail(s, "connection-timeout", NULL, "establishment-timeout");
        goto out;
    }
    if (l->inactivity_timeout_s &&
        s->now >= s->last_activity + (uint64_t)l->inactivity_timeout_s * 1000) {
        stream_close(s, NULL, NULL);
        goto out;
    }
    if (s->kind == STREAM_OUT)
        st_out_tick(s);
    else if (s->kind == STREAM_IN)
        st_in_tick(s);
    if (s->state != STREAM_S_CLOSED && s->established && s->have_rules && s->rules.keepalive &&
        l->keepalive_interval_s && s->kind != STREAM_COMPONENT &&
        s->now >= s->last_sent + (uint64_t)l->keepalive_interval_s * 1000) {
        /* RFC 6120 §4.6.1: a single space is the whitespace keepalive. */
        uint32_t m;
        st_send_begin(s, &m);
        st_send_str(s, " ");
        st_send_commit(s, m);
    }
out:
    st_end_call(s);
}

int stream_send(stream_t *s, const char *from, const char *to, const void *data, size_t len)
{
    int rc = 0;
    jid_t jf, jt;
    char fd[STREAM_DOMAIN_MAX + 1], td[STREAM_DOMAIN_MAX + 1];
    st_begin_call(s, s->now);
    if (s->state == STREAM_S_CLOSED || s->closing_sent) {
        rc = FG_EPROTO;
        goto out;
    }
    if (jid_parse_str(from, &jf) != 0 || jid_parse_str(to, &jt) != 0 ||
        jid_domain(&jf, fd, sizeof(fd)) < 0 || jid_domain(&jt, td, sizeof(td)) < 0) {
        rc = FG_EPARSE;
        goto out;
    }
    if (s->kind == STREAM_OUT) {
        pair_t *p = st_pair_find(s, fd, td);
        rc = p ? st_out_send(s, p, data, len) : FG_EREFUSED;
        goto out;
    }
    /* IN with bidi: stanzas go back along verified pairs; COMPONENT: to its domain. */
    bool ok;
    if (s->kind == STREAM_COMPONENT)
        ok = s->established && jid_domain_equal_str(td, s->remote);
    else {
        pair_t *p = st_pair_find(s, fd, td);
        ok = s->bidi && ((p && p->state == PAIR_VALID) ||
                         (s->sasl_done && jid_domain_equal_str(fd, s->local) &&
                          jid_domain_equal_str(td, s->remote)));
    }
    if (!ok) {
        rc = FG_EREFUSED;
        goto out;
    }
    uint32_t m;
    st_send_begin(s, &m);
    if (buf_append(&s->out, data, len) != 0) {
        rc = FG_ELIMIT;
        goto out;
    }
    st_send_commit(s, m);
    s->last_activity = s->now;
out:
    st_end_call(s);
    return rc;
}

void stream_transport_closed(stream_t *s)
{
    st_begin_call(s, s->now);
    st_close_now(s, NULL, "transport-closed");
}

void stream_close(stream_t *s, const char *condition, const char *text)
{
    st_begin_call(s, s->now);
    if (s->state == STREAM_S_CLOSED)
        return;
    if (condition) {
        st_fail(s, condition, text, condition);
        return;
    }
    if (s->state == STREAM_S_CONNECTING || (s->kind != STREAM_OUT && !s->header_sent)) {
        /* Nothing opened on our side yet: there is no stream to close, only the transport. */
        st_close_now(s, NULL, "closed");
        return;
    }
    if (!s->closing_sent) {
        uint32_t m;
        st_send_begin(s, &m);
        st_send_str(s, "</stream:stream>");
        st_send_commit(s, m);
        s->closing_sent = true;
    }
    st_bounce_all(s, "remote-server-timeout");
    s->state = STREAM_S_CLOSING;
    s->close_deadline = s->now + CLOSE_WAIT_MS;
    st_end_call(s);
}

/* ---- accessors ---- */

stream_state_t stream_state(const stream_t *s)
{
    return s->state;
}

stream_kind_t stream_kind(const stream_t *s)
{
    return s->kind;
}

const char *stream_state_name(stream_state_t st)
{
    static const char *const n[] = {"connecting",    "wait-header", "wait-policy",
                                    "wait-features", "tls",         "sasl",
                                    "open",          "closing",     "closed"};
    return (unsigned)st < sizeof(n) / sizeof(n[0]) ? n[st] : "?";
}

const char *stream_auth_name(stream_auth_t m)
{
    static const char *const n[] = {"none",         "sasl",          "dialback-tls",
                                    "dialback-tcp", "dialback-cert", "component"};
    return (unsigned)m < sizeof(n) / sizeof(n[0]) ? n[m] : "?";
}

const char *stream_action_name(stream_action_type_t t)
{
    static const char *const n[] = {"none",          "send",          "start-tls", "need-policy",
                                    "verify",        "verify-result", "stanza",    "bounce",
                                    "authenticated", "pair-failed",   "timer",     "close"};
    return (unsigned)t < sizeof(n) / sizeof(n[0]) ? n[t] : "?";
}

const char *stream_id(const stream_t *s)
{
    return s->id;
}

const char *stream_peer_domain(const stream_t *s)
{
    return s->remote;
}

bool stream_tls_active(const stream_t *s)
{
    return s->tls;
}

bool stream_bidi(const stream_t *s)
{
    return s->bidi;
}

bool stream_pair_valid(const stream_t *s, const char *local, const char *remote)
{
    if (s->sasl_done && jid_domain_equal_str(local, s->local) &&
        jid_domain_equal_str(remote, s->remote))
        return true;
    if (s->kind == STREAM_COMPONENT)
        return s->established && jid_domain_equal_str(remote, s->remote);
    const pair_t *p = st_pair_find(s, local, remote);
    return p && p->state == PAIR_VALID;
}

void stream_stats(const stream_t *s, stream_stats_t *out)
{
    xml_stats_t x = {0};
    xml_stats(s->xml, &x);
    out->bytes = sizeof(*s) + s->out.cap + s->queue.cap + s->cap_q * sizeof(qent_t) +
                 s->npairs * sizeof(pair_t) + s->ndoms * sizeof(dom_t) +
                 s->nvreqs * sizeof(vreq_t) +
                 (s->cap_pairs + s->cap_doms + s->cap_vreqs) * sizeof(void *) + x.bytes;
    out->parser_bytes = x.bytes;
    out->mallocs = s->mallocs + x.mallocs;
    out->stanzas = s->nstanzas;
}

/* The parser stays paused on the last event it stopped at (every routed stanza) until the next
   feed. On an open stream with every action taken and nothing awaited, nothing refers to that
   event any more: end the pause so the parser can park, trim and hibernate. */
static void release_idle(stream_t *s)
{
    if (s->ring_count == 0 && !s->restart && !s->wait_event && s->state == STREAM_S_OPEN)
        xml_release(s->xml);
}

bool stream_park(stream_t *s)
{
    release_idle(s);
    return xml_park(s->xml);
}

void stream_trim(stream_t *s)
{
    release_idle(s);
    xml_trim(s->xml);
    /* Idle streams keep small buffers only: the next stanza re-grows them once. */
    if (s->ring_count == 0 && s->out.cap > 4096) {
        buf_free(&s->out);
        buf_init(&s->out, out_max(s));
    }
    if (s->live_q == 0 && s->queue.cap > 0) {
        size_t max = s->queue.max;
        buf_free(&s->queue);
        buf_init(&s->queue, max);
        free(s->qents);
        s->qents = NULL;
        s->cap_q = s->nq = 0;
    }
}
