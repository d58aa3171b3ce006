/*
 * Stream engine, initiating side (STREAM_OUT): our header, STARTTLS per the partner's TLS rule,
 * SASL EXTERNAL or dialback (db:result with an XEP-0185 key), queueing per domain pair until it
 * is verified, the bounces of lync-spec §2.4, and db:verify requests to an authoritative server.
 */
#include "core/stream_int.h"

#include "core/dialback.h"
#include "core/err.h"
#include "core/jid.h"
#include "core/sasl.h"
#include "core/stream_err.h"

#include <stdlib.h>
#include <string.h>

static void send_header(stream_t *s)
{
    bool db = s->rules.dialback || s->cfg.verify_only;
    st_write_header(s, s->local, s->remote, true, db, STANZA_NS_SERVER);
    s->state = STREAM_S_WAIT_HEADER;
    s->ready = false;
}

int st_out_connected(stream_t *s)
{
    if (s->state != STREAM_S_CONNECTING)
        return FG_EPROTO;
    if (s->cfg.direct_tls)
        return 0; /* the header follows stream_tls_up() */
    send_header(s);
    return 0;
}

int st_out_tls_up(stream_t *s)
{
    if (s->state == STREAM_S_TLS)
        s->restart = true; /* RFC 6120 §5.4.3.3: a new stream over TLS, parser reset */
    s->peer_db_errors = false;
    send_header(s);
    return 0;
}

/* No way left to authenticate: bounce, say goodbye, close. */
static void give_up(stream_t *s, const char *reason)
{
    uint32_t m;
    if (!s->closing_sent) {
        st_send_begin(s, &m);
        st_send_str(s, "</stream:stream>");
        st_send_commit(s, m);
        s->closing_sent = true;
    }
    st_close_now(s, NULL, reason);
}

static bool anything_left(const stream_t *s)
{
    if (s->cfg.verify_only)
        return true;
    for (uint32_t i = 0; i < s->npairs; i++)
        if (s->pairs[i]->state != PAIR_FAILED)
            return true;
    return false;
}

static void flush_pair(stream_t *s, pair_t *p)
{
    uint32_t idx = st_pair_index(s, p);
    uint32_t m;
    st_send_begin(s, &m);
    for (uint32_t i = 0; i < s->nq; i++) {
        qent_t *q = &s->qents[i];
        if (q->dead || q->pair != idx)
            continue;
        if (buf_append(&s->out, s->queue.data + q->off, q->len) != 0)
            break; /* stays queued: sent on the next flush or bounced at close */
        q->dead = true;
        s->live_q--;
        p->queued--;
    }
    st_send_commit(s, m);
}

static void pair_valid(stream_t *s, pair_t *p, stream_auth_t method)
{
    p->state = PAIR_VALID;
    p->deadline = 0;
    p->method = method;
    st_authenticated(s, p->local, p->remote, method);
    if (s->ready)
        flush_pair(s, p);
}

static void pair_failed(stream_t *s, pair_t *p, const char *cond, const char *bounce_cond)
{
    act_t *a = st_push(s, STREAM_ACT_PAIR_FAILED);
    a->from = st_str(s, p->local);
    a->to = st_str(s, p->remote);
    a->condition = cond;
    p->state = PAIR_FAILED;
    p->deadline = 0;
    st_bounce_pair(s, p, bounce_cond);
}

static void send_db_result(stream_t *s, pair_t *p)
{
    char key[DIALBACK_KEY_LEN + 1];
    uint32_t m;
    if (dialback_key(s->secret, s->secret_len, p->remote, p->local, s->id, key) != 0) {
        pair_failed(s, p, "internal-server-error", "remote-server-timeout");
        return;
    }
    st_send_begin(s, &m);
    st_send_str(s, "<db:result from='");
    st_send_attr(s, p->local);
    st_send_str(s, "' to='");
    st_send_attr(s, p->remote);
    st_send_str(s, "'>");
    st_send_str(s, key);
    st_send_str(s, "</db:result>");
    st_send_commit(s, m);
    memset(key, 0, sizeof(key));
    p->state = PAIR_VERIFYING;
    p->deadline = s->now + (uint64_t)s->cfg.limits.establishment_timeout_s * 1000;
    if (p->deadline == s->now)
        p->deadline = 0;
}

static void send_vreqs(stream_t *s)
{
    for (uint32_t i = 0; i < s->nvreqs; i++) {
        vreq_t *v = s->vreqs[i];
        if (v->sent)
            continue;
        uint32_t m;
        st_send_begin(s, &m);
        st_send_str(s, "<db:verify from='");
        st_send_attr(s, v->from);
        st_send_str(s, "' to='");
        st_send_attr(s, v->to);
        st_send_str(s, "' id='");
        st_send_attr(s, v->id);
        st_send_str(s, "'>");
        st_send_attr(s, v->key);
        st_send_str(s, "</db:verify>");
        st_send_commit(s, m);
        v->sent = true;
    }
}

static bool peer_dialback(const stream_t *s)
{
    return s->peer_db || s->peer_db_errors;
}

/* Start dialback for every pair that wants it (or fail them when the rules or peer forbid it). */
static void start_dialback(stream_t *s)
{
    bool ok = st_dialback_allowed(&s->rules, s->tls) && peer_dialback(s) && s->id[0];
    for (uint32_t i = 0; i < s->npairs; i++) {
        pair_t *p = s->pairs[i];
        if (p->state != PAIR_WANTED)
            continue;
        if (ok)
            send_db_result(s, p);
        else
            pair_failed(s, p, "policy-violation", "remote-server-timeout");
    }
    if (!anything_left(s))
        give_up(s, "no-auth-method");
}

/* Negotiation reached the authentication step (or is complete after SASL). */
static void auth_phase(stream_t *s, bool external_offered)
{
    s->ready = true;
    s->state = STREAM_S_OPEN;
    send_vreqs(s);
    if (s->cfg.verify_only) {
        if (!s->established) {
            s->established = true;
            xml_set_max_stanza(s->xml, s->cfg.limits.max_stanza_bytes);
        }
        return;
    }
    if (s->sasl_done) {
        for (uint32_t i = 0; i < s->npairs; i++)
            if (s->pairs[i]->state == PAIR_VALID)
                flush_pair(s, s->pairs[i]);
        start_dialback(s); /* multiplexed pairs added since still need dialback */
        return;
    }
    pair_t *main = s->npairs ? s->pairs[0] : NULL;
    if (main && main->state == PAIR_WANTED && s->tls && st_sasl_allowed(&s->rules) &&
        external_offered) {
        char b64[2 * STREAM_DOMAIN_MAX];
        uint32_t m;
        sasl_b64_encode(s->local, strlen(s->local), b64, sizeof(b64));
        st_send_begin(s, &m);
        st_send_str(s, "<auth xmlns='" STANZA_NS_SASL "' mechanism='EXTERNAL'>");
        st_send_str(s, b64);
        st_send_str(s, "</auth>");
        st_send_commit(s, m);
        s->state = STREAM_S_SASL;
        return;
    }
    start_dialback(s);
}

static void on_features(stream_t *s, const stanza_t *f)
{
    const stanza_t *tls = stanza_child(f, STANZA_NS_TLS, "starttls");
    bool tls_required = tls && stanza_child(tls, STANZA_NS_TLS, "required");
    bool external = false;
    const stanza_t *mechs = stanza_child(f, STANZA_NS_SASL, "mechanisms");
    for (const stanza_t *c = stanza_first_child(mechs); c; c = stanza_next_sibling(c))
        if (stanza_is(c, STANZA_NS_SASL, "mechanism") &&
            strcmp(stanza_text(c, NULL), "EXTERNAL") == 0)
            external = true;
    const stanza_t *db = stanza_child(f, STANZA_NS_DB_FEATURE, "dialback");
    if (db && stanza_child(db, NULL, "errors"))
        s->peer_db_errors = true;
    bool bidi = stanza_child(f, STANZA_NS_BIDI_FEAT, "bidi") != NULL;

    if (!s->tls && !s->sasl_done) {
        /* TLS Required: try STARTTLS even when not offered (RFC 7590 §3.1). */
        if (s->rules.tls == NEG_REQUIRED || (s->rules.tls == NEG_OPTIONAL && tls)) {
            uint32_t m;
            st_send_begin(s, &m);
            st_send_str(s, "<starttls xmlns='" STANZA_NS_TLS "'/>");
            st_send_commit(s, m);
            s->offered_tls = true; /* "sent": waiting for proceed/failure */
            return;
        }
        if (tls_required) {
            give_up(s, "peer-requires-tls");
            return;
        }
    }
    if (bidi && s->cfg.request_bidi && !s->bidi && !s->sasl_done && !s->cfg.verify_only) {
        uint32_t m;
        st_send_begin(s, &m);
        st_send_str(s, "<bidi xmlns='" STANZA_NS_BIDI "'/>");
        st_send_commit(s, m);
        s->bidi = true;
    }
    auth_phase(s, external);
}

static int on_header(stream_t *s, const stanza_t *h)
{
    if (st_header_checks(s, h, STANZA_NS_SERVER) != 0)
        return XML_CB_STOP;
    const char *from = stanza_from(h);
    if (from && !jid_domain_equal_str(from, s->remote)) {
        st_fail(s, "invalid-from", NULL, "response-from");
        return XML_CB_STOP;
    }
    const char *id = stanza_id(h);
    s->id[0] = '\0';
    if (id && strlen(id) <= STREAM_PEER_ID_MAX && !strchr(id, ' '))
        st_copy(s->id, id, sizeof(s->id));
    s->peer_db = stanza_decl(h, "db") != NULL;
    const char *v = stanza_attr(h, "version");
    int major = 0, minor = 0;
    if (v && (!st_parse_version(v, &major, &minor) || major > 1)) {
        st_fail(s, "unsupported-version", NULL, "version");
        return XML_CB_STOP;
    }
    s->legacy = major == 0;
    if (s->legacy) {
        /* No features from a pre-1.0 peer: no TLS, straight to dialback. */
        if (s->rules.tls == NEG_REQUIRED) {
            give_up(s, "peer-without-tls");
            return XML_CB_STOP;
        }
        auth_phase(s, false);
        return XML_CB_CONTINUE;
    }
    s->state = STREAM_S_WAIT_FEATURES;
    return XML_CB_CONTINUE;
}

static const char *error_condition(const stanza_t *el)
{
    const stanza_t *e = stanza_child(el, NULL, "error");
    for (const stanza_t *c = stanza_first_child(e); c; c = stanza_next_sibling(c)) {
        const char *k = stream_err_stanza_condition(c->name);
        if (k)
            return k;
    }
    return "undefined-condition";
}

static int on_db_result(stream_t *s, const stanza_t *el)
{
    const char *type = stanza_type(el);
    const char *from = stanza_from(el), *to = stanza_to(el);
    if (!type) {
        if (!s->bidi) {
            st_fail(s, "not-authorized", "dialback request on the wrong stream", "db-direction");
            return XML_CB_STOP;
        }
        pair_t tmp;
        memset(&tmp, 0, sizeof(tmp));
        st_copy(tmp.local, to, sizeof(tmp.local));
        st_copy(tmp.remote, from, sizeof(tmp.remote));
        uint32_t m;
        st_send_begin(s, &m);
        st_send_str(s, "<db:result from='");
        st_send_attr(s, tmp.local);
        st_send_str(s, "' to='");
        st_send_attr(s, tmp.remote);
        st_send_str(s, "' type='error'>");
        stream_err_write_dialback(&s->out, "not-acceptable");
        st_send_str(s, "</db:result>");
        st_send_commit(s, m);
        return XML_CB_CONTINUE;
    }
    pair_t *p = (from && to) ? st_pair_find(s, to, from) : NULL;
    if (!p || p->state != PAIR_VERIFYING)
        return XML_CB_CONTINUE; /* unsolicited: dropped, it authorizes nothing */
    if (strcmp(type, "valid") == 0) {
        pair_valid(s, p, s->tls ? STREAM_AUTH_DIALBACK_TLS : STREAM_AUTH_DIALBACK_TCP);
        return XML_CB_CONTINUE;
    }
    if (strcmp(type, "invalid") == 0)
        pair_failed(s, p, "forbidden", "internal-server-error");
    else
        pair_failed(s, p, error_condition(el), "remote-server-timeout");
    if (!st_any_valid(s) && !anything_left(s))
        give_up(s, "dialback-failed");
    return XML_CB_CONTINUE;
}

static int on_db_verify(stream_t *s, const stanza_t *el)
{
    const char *type = stanza_type(el);
    if (!type) {
        st_fail(s, "not-authorized", "dialback verify on the wrong stream", "db-direction");
        return XML_CB_STOP;
    }
    const char *from = stanza_from(el), *to = stanza_to(el), *id = stanza_id(el);
    for (uint32_t i = 0; from && to && id && i < s->nvreqs; i++) {
        vreq_t *v = s->vreqs[i];
        if (!v->sent || !jid_domain_equal_str(v->from, to) || !jid_domain_equal_str(v->to, from) ||
            strcmp(v->id, id) != 0)
            continue;
        act_t *a = st_push(s, STREAM_ACT_VERIFY_RESULT);
        a->from = st_str(s, v->from);
        a->to = st_str(s, v->to);
        a->id = st_str(s, v->id);
        if (strcmp(type, "valid") == 0) {
            a->result = STREAM_VERIFY_VALID;
        } else if (strcmp(type, "invalid") == 0) {
            a->result = STREAM_VERIFY_INVALID;
        } else {
            /* XEP-0220: any error at step 3 becomes remote-server-not-found at step 4. */
            a->result = STREAM_VERIFY_ERROR;
            a->condition = "remote-server-not-found";
        }
        free(v);
        memmove(&s->vreqs[i], &s->vreqs[i + 1], (s->nvreqs - i - 1) * sizeof(vreq_t *));
        s->nvreqs--;
        return XML_CB_CONTINUE;
    }
    return XML_CB_CONTINUE; /* matches no request: dropped */
}

static int on_stanza(stream_t *s, const xml_event_t *ev)
{
    const stanza_t *el = ev->el;
    jid_t jf, jt;
    char fd[STREAM_DOMAIN_MAX + 1], td[STREAM_DOMAIN_MAX + 1];
    if (!s->bidi) {
        st_fail(s, "not-authorized", "stanzas on an initiating stream", "stanza-wrong-direction");
        return XML_CB_STOP;
    }
    const char *from = stanza_from(el), *to = stanza_to(el);
    if (!from || !to || jid_parse_str(from, &jf) != 0 || jid_parse_str(to, &jt) != 0 ||
        jid_domain(&jf, fd, sizeof(fd)) < 0 || jid_domain(&jt, td, sizeof(td)) < 0) {
        st_fail(s, "improper-addressing", NULL, "stanza-addressing");
        return XML_CB_STOP;
    }
    /* XEP-0288: the peer may send from the domains it is authenticated for here, i.e. the
       inverse of each pair we authenticated. */
    const pair_t *p = st_pair_find(s, td, fd);
    if (!p || p->state != PAIR_VALID) {
        bool ours = st_hosted(s, td);
        for (uint32_t i = 0; i < s->npairs && !ours; i++)
            ours = jid_domain_equal_str(s->pairs[i]->local, td);
        st_fail(s, ours ? "invalid-from" : "host-unknown", NULL, "stanza-from");
        return XML_CB_STOP;
    }
    return st_route(s, ev, STANZA_NS_SERVER);
}

int st_out_event(stream_t *s, const xml_event_t *ev)
{
    if (ev->type == XML_EV_STREAM_OPEN) {
        if (s->state != STREAM_S_WAIT_HEADER) {
            st_fail(s, "invalid-xml", NULL, "header-again");
            return XML_CB_STOP;
        }
        return on_header(s, ev->el);
    }
    const stanza_t *el = ev->el;
    const char *ns = stanza_ns(el);
    if (s->state == STREAM_S_WAIT_FEATURES && s->offered_tls) {
        /* We sent <starttls/>: only proceed or failure may follow. */
        if (stanza_is(el, STANZA_NS_TLS, "proceed")) {
            act_t *a = st_push(s, STREAM_ACT_START_TLS);
            a->tls_server = false;
            a->domain = st_str(s, s->remote);
            s->offered_tls = false;
            s->state = STREAM_S_TLS;
            return XML_CB_STOP;
        }
        give_up(s, "starttls-refused");
        return XML_CB_STOP;
    }
    if (s->state == STREAM_S_WAIT_FEATURES) {
        if (stanza_is(el, STANZA_NS_STREAM, "features")) {
            on_features(s, el);
            return XML_CB_CONTINUE;
        }
        st_fail(s, "not-authorized", NULL, "expected-features");
        return XML_CB_STOP;
    }
    if (s->state == STREAM_S_SASL) {
        if (stanza_is(el, STANZA_NS_SASL, "success")) {
            pair_t *main = s->pairs[0];
            s->sasl_done = true;
            main->state = PAIR_VALID;
            main->method = STREAM_AUTH_SASL;
            st_authenticated(s, main->local, main->remote, STREAM_AUTH_SASL);
            s->restart = true;
            send_header(s);
            return XML_CB_STOP;
        }
        if (stanza_is(el, STANZA_NS_SASL, "failure")) {
            /* XEP-0178: dialback may follow a failed EXTERNAL where the rules allow it. */
            s->state = STREAM_S_OPEN;
            start_dialback(s);
            return XML_CB_CONTINUE;
        }
        if (stanza_is(el, STANZA_NS_SASL, "challenge")) {
            uint32_t m;
            st_send_begin(s, &m);
            st_send_str(s, "<response xmlns='" STANZA_NS_SASL "'>=</response>");
            st_send_commit(s, m);
            return XML_CB_CONTINUE;
        }
        st_fail(s, "not-authorized", NULL, "sasl-interrupted");
        return XML_CB_STOP;
    }
    if (strcmp(ns, STANZA_NS_DIALBACK) == 0) {
        if (strcmp(el->name, "result") == 0)
            return on_db_result(s, el);
        if (strcmp(el->name, "verify") == 0)
            return on_db_verify(s, el);
        return XML_CB_CONTINUE;
    }
    if (strcmp(ns, STANZA_NS_SERVER) == 0) {
        if (stanza_prefix(el)) {
            st_fail(s, "bad-namespace-prefix", NULL, "content-prefix");
            return XML_CB_STOP;
        }
        if (strcmp(el->name, "message") == 0 || strcmp(el->name, "presence") == 0 ||
            strcmp(el->name, "iq") == 0)
            return on_stanza(s, ev);
        st_fail(s, "unsupported-stanza-type", NULL, "stanza-type");
        return XML_CB_STOP;
    }
    if (strcmp(ns, STANZA_NS_CLIENT) == 0 || strcmp(ns, STANZA_NS_COMPONENT) == 0) {
        st_fail(s, "invalid-namespace", NULL, "content-namespace");
        return XML_CB_STOP;
    }
    return XML_CB_CONTINUE;
}

void st_out_tick(stream_t *s)
{
    bool changed = false;
    for (uint32_t i = 0; i < s->npairs; i++) {
        pair_t *p = s->pairs[i];
        if (p->state == PAIR_VERIFYING && p->deadline && s->now >= p->deadline) {
            pair_failed(s, p, "remote-server-timeout", "remote-server-timeout");
            changed = true;
        }
    }
    if (changed && !st_any_valid(s) && !anything_left(s))
        give_up(s, "dialback-timeout");
}

int st_out_send(stream_t *s, pair_t *p, const void *data, size_t len)
{
    if (p->state == PAIR_FAILED)
        return FG_EREFUSED;
    if (p->state == PAIR_VALID && s->ready) {
        uint32_t m;
        st_send_begin(s, &m);
        if (buf_append(&s->out, data, len) != 0)
            return FG_ELIMIT;
        st_send_commit(s, m);
        s->last_activity = s->now;
        return 0;
    }
    if (p->queued >= s->cfg.limits.max_queued_stanzas || len > UINT32_MAX)
        return FG_ELIMIT;
    if (s->nq == s->cap_q) {
        uint32_t ncap = s->cap_q ? s->cap_q * 2 : 8;
        qent_t *n = realloc(s->qents, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->mallocs++;
        s->qents = n;
        s->cap_q = ncap;
    }
    size_t off = s->queue.len;
    if (buf_append(&s->queue, data, len) != 0)
        return FG_ELIMIT;
    qent_t *q = &s->qents[s->nq++];
    q->pair = st_pair_index(s, p);
    q->off = (uint32_t)off;
    q->len = (uint32_t)len;
    q->dead = false;
    p->queued++;
    s->live_q++;
    return 0;
}

/* ---- public OUT entry points ---- */

int stream_out_connected(stream_t *s, uint64_t now_ms)
{
    if (s->kind != STREAM_OUT)
        return FG_EPROTO;
    st_begin_call(s, now_ms);
    s->created = s->last_activity = s->last_sent = s->now;
    int rc = st_out_connected(s);
    stream_tick(s, s->now); /* arms the establishment timer */
    return rc;
}

int stream_out_set_direct_tls(stream_t *s, bool direct_tls)
{
    if (s->kind != STREAM_OUT || s->state != STREAM_S_CONNECTING)
        return FG_EPROTO;
    s->cfg.direct_tls = direct_tls;
    return 0;
}

void stream_out_connect_failed(stream_t *s, bool dns_failed)
{
    if (s->kind != STREAM_OUT || s->state == STREAM_S_CLOSED)
        return;
    st_begin_call(s, s->now);
    const char *c = dns_failed ? "remote-server-not-found" : "remote-server-timeout";
    st_bounce_all(s, c);
    st_close_now(s, NULL, dns_failed ? "dns-failed" : "connect-failed");
}

int stream_out_add_pair(stream_t *s, const char *local, const char *remote)
{
    if (s->kind != STREAM_OUT || s->state == STREAM_S_CLOSED || s->cfg.verify_only)
        return FG_EREFUSED;
    if (!st_domain_ok(local) || !st_domain_ok(remote))
        return FG_EPARSE;
    if (st_pair_find(s, local, remote))
        return 0;
    /* XEP-0220 §2.5: target multiplexing only towards a peer that advertised dialback errors. */
    if (!jid_domain_equal_str(remote, s->remote) && !s->peer_db_errors)
        return FG_EREFUSED;
    st_begin_call(s, s->now);
    pair_t *p = st_pair_add(s, local, remote, PAIR_WANTED);
    if (!p)
        return FG_ELIMIT;
    if (s->ready && s->state == STREAM_S_OPEN)
        start_dialback(s);
    st_end_call(s);
    return 0;
}

int stream_out_verify(stream_t *s, const char *from, const char *to, const char *id,
                      const char *key)
{
    if (s->kind != STREAM_OUT || s->state == STREAM_S_CLOSED)
        return FG_EREFUSED;
    if (!st_domain_ok(from) || !st_domain_ok(to) || !id || !key ||
        strlen(id) > STREAM_PEER_ID_MAX || strlen(key) > STREAM_KEY_MAX)
        return FG_EPARSE;
    if (s->nvreqs >= s->cfg.limits.max_queued_stanzas)
        return FG_ELIMIT;
    if (s->nvreqs == s->cap_vreqs) {
        uint32_t ncap = s->cap_vreqs ? s->cap_vreqs * 2 : 2;
        vreq_t **n = realloc(s->vreqs, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        s->vreqs = n;
        s->cap_vreqs = ncap;
    }
    vreq_t *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    s->mallocs += 2;
    st_copy(v->from, from, sizeof(v->from));
    st_copy(v->to, to, sizeof(v->to));
    st_copy(v->id, id, sizeof(v->id));
    st_copy(v->key, key, sizeof(v->key));
    s->vreqs[s->nvreqs++] = v;
    st_begin_call(s, s->now);
    if (s->ready && s->state == STREAM_S_OPEN)
        send_vreqs(s);
    st_end_call(s);
    return 0;
}
