/*
 * Stream engine, receiving side (STREAM_IN): response header and features per the partner's rules
 * (lync-spec §2.4), STARTTLS, SASL EXTERNAL (XEP-0178), dialback as receiving server (db:result)
 * and as authoritative server (db:verify), XEP-0288 bidi, and the addressing checks on stanzas.
 */
#include "core/stream_int.h"

#include "core/dialback.h"
#include "core/err.h"
#include "core/jid.h"
#include "core/sasl.h"
#include "core/stream_err.h"

#include <string.h>

/* ---- header and features ---- */

int st_header_checks(stream_t *s, const stanza_t *h, const char *content_ns)
{
    if (strcmp(stanza_name(h), "stream") != 0 || strcmp(stanza_ns(h), STANZA_NS_STREAM) != 0) {
        st_fail(s, "invalid-namespace", NULL, "header-namespace");
        return -1;
    }
    const char *prefix = stanza_prefix(h);
    if (!prefix || strcmp(prefix, "stream") != 0) {
        st_fail(s, "bad-namespace-prefix", NULL, "header-prefix");
        return -1;
    }
    const char *def = stanza_decl(h, NULL);
    if (!def || strcmp(def, content_ns) != 0) {
        st_fail(s, "invalid-namespace", NULL, "content-namespace");
        return -1;
    }
    /* Payload namespaces must not be declared on the header (RFC 6120 §4.8.4). */
    for (uint16_t i = 0; i < h->ndecls; i++) {
        const stanza_nsdecl_t *d = &h->decls[i];
        if (!d->prefix || strcmp(d->prefix, "stream") == 0)
            continue;
        if (strcmp(d->prefix, "db") == 0 && strcmp(d->uri, STANZA_NS_DIALBACK) == 0 &&
            s->kind != STREAM_COMPONENT)
            continue;
        st_fail(s, "invalid-namespace", NULL, "header-declaration");
        return -1;
    }
    return 0;
}

static void send_features(stream_t *s)
{
    const peer_rules_t *r = &s->rules;
    bool known = s->have_rules;
    uint32_t m;
    bool tls_offer = !s->tls && (!known || r->tls != NEG_NOT_SUPPORTED);
    bool tls_required = known && r->tls == NEG_REQUIRED && !s->tls;
    bool sasl_offer = false, db_offer = false, bidi_offer = false;

    if (!tls_required && !s->sasl_done) {
        sasl_offer =
            s->tls && known && st_sasl_allowed(r) && s->remote[0] && st_cert_covers(s, s->remote);
        /* SASL Required with a certificate good for EXTERNAL: EXTERNAL is the only way in. */
        db_offer = known
                       ? st_dialback_allowed(r, s->tls) && !(r->sasl == NEG_REQUIRED && sasl_offer)
                       : true;
        bidi_offer = s->cfg.offer_bidi && !s->bidi;
    }
    if (!tls_offer && !sasl_offer && !db_offer && !s->sasl_done) {
        /* RFC 6120 §6.4.5 note: nothing the rules allow can be offered; say so instead of
           letting the stream time out. */
        st_fail(s, "policy-violation", "no authentication method allowed for this partner",
                "no-method");
        return;
    }
    st_send_begin(s, &m);
    if (!tls_offer && !sasl_offer && !db_offer && !bidi_offer) {
        /* Negotiation complete (after SASL): nothing mandatory, nothing voluntary. */
        st_send_str(s, "<stream:features/>");
        st_send_commit(s, m);
        s->offered_tls = s->offered_sasl = s->offered_db = s->offered_bidi = false;
        return;
    }
    st_send_str(s, "<stream:features>");
    if (tls_offer)
        st_send_str(s, tls_required ? "<starttls xmlns='" STANZA_NS_TLS "'><required/></starttls>"
                                    : "<starttls xmlns='" STANZA_NS_TLS "'/>");
    if (sasl_offer)
        st_send_str(s, "<mechanisms xmlns='" STANZA_NS_SASL
                       "'><mechanism>EXTERNAL</mechanism></mechanisms>");
    if (db_offer)
        st_send_str(s, "<dialback xmlns='" STANZA_NS_DB_FEATURE "'><errors/></dialback>");
    if (bidi_offer)
        st_send_str(s, "<bidi xmlns='" STANZA_NS_BIDI_FEAT "'/>");
    st_send_str(s, "</stream:features>");
    st_send_commit(s, m);
    s->offered_tls = tls_offer;
    s->offered_sasl = sasl_offer;
    s->offered_db = db_offer;
    s->offered_bidi = bidi_offer;
}

/* Send our response header (and features) once the rules of the header's `from` are known. */
static void respond(stream_t *s)
{
    dom_t *d = s->remote[0] ? st_dom_find(s, s->remote) : NULL;
    s->have_rules = false;
    if (d && d->state == DOM_REFUSED) {
        st_fail(s, "policy-violation", "partner not allowed", "partner-refused");
        return;
    }
    if (d && d->state == DOM_ALLOWED) {
        s->rules = d->rules;
        s->have_rules = true;
    }
    bool db = s->have_rules ? s->rules.dialback : true;
    if (s->legacy) {
        /* Pre-1.0 peers get no features: dialback over plain TCP is all they can do. */
        if (s->have_rules && !st_dialback_allowed(&s->rules, s->tls)) {
            st_fail(s, "policy-violation", "partner requires TLS or SASL", "legacy-refused");
            return;
        }
        st_write_header(s, s->local, s->remote, false, true, STANZA_NS_SERVER);
        s->state = STREAM_S_OPEN;
        return;
    }
    st_write_header(s, s->local, s->remote, true, db, STANZA_NS_SERVER);
    s->state = STREAM_S_OPEN;
    send_features(s);
}

static int on_header(stream_t *s, const stanza_t *h)
{
    int major = 1, minor = 0;
    const char *v = stanza_attr(h, "version");
    s->header_sent = false;
    s->offered_tls = s->offered_sasl = s->offered_db = s->offered_bidi = false;
    s->legacy = v == NULL;
    s->local[0] = s->remote[0] = '\0';
    st_new_id(s);
    if (st_header_checks(s, h, STANZA_NS_SERVER) != 0)
        return XML_CB_STOP;
    if (v && (!st_parse_version(v, &major, &minor) || major > 1)) {
        st_fail(s, "unsupported-version", NULL, "version");
        return XML_CB_STOP;
    }
    if (major == 0)
        s->legacy = true;
    s->peer_db = stanza_decl(h, "db") != NULL;
    const char *to = stanza_to(h);
    if (!st_domain_ok(to) || !st_hosted(s, to)) {
        st_fail(s, "host-unknown", NULL, "header-to");
        return XML_CB_STOP;
    }
    st_copy(s->local, to, sizeof(s->local));
    const char *from = stanza_from(h);
    if (from && !st_domain_ok(from)) {
        st_fail(s, "invalid-from", NULL, "header-from");
        return XML_CB_STOP;
    }
    if (!from && s->tls) {
        /* RFC 6120 §4.7.1: once TLS protects the stream the initiator must say who it is. */
        st_fail(s, "invalid-from", "a 'from' is required on a protected stream", "header-from");
        return XML_CB_STOP;
    }
    if (from) {
        st_copy(s->remote, from, sizeof(s->remote));
        dom_t *d = st_dom_find(s, from);
        if (!d) {
            d = st_dom_add(s, from);
            if (!d) {
                st_fail(s, "resource-constraint", NULL, "domains");
                return XML_CB_STOP;
            }
            act_t *a = st_push(s, STREAM_ACT_NEED_POLICY);
            a->domain = st_str(s, d->domain);
        }
        if (d->state == DOM_PENDING) {
            s->state = STREAM_S_WAIT_POLICY;
            s->wait_event = true;
            return XML_CB_STOP;
        }
    }
    respond(s);
    return XML_CB_CONTINUE;
}

/* ---- STARTTLS ---- */

static int on_starttls(stream_t *s)
{
    uint32_t m;
    if (!s->offered_tls || s->tls || s->sasl_done || st_any_valid(s)) {
        /* RFC 6120 §5.4.2.2: failure, close the stream, close the connection. */
        st_send_begin(s, &m);
        st_send_str(s, "<failure xmlns='" STANZA_NS_TLS "'/></stream:stream>");
        st_send_commit(s, m);
        s->closing_sent = true;
        st_close_now(s, NULL, "starttls-not-offered");
        return XML_CB_STOP;
    }
    st_send_begin(s, &m);
    st_send_str(s, "<proceed xmlns='" STANZA_NS_TLS "'/>");
    st_send_commit(s, m);
    act_t *a = st_push(s, STREAM_ACT_START_TLS);
    a->tls_server = true;
    a->domain = st_str(s, s->local);
    s->state = STREAM_S_TLS;
    return XML_CB_STOP;
}

int st_in_tls_up(stream_t *s)
{
    if (s->state == STREAM_S_WAIT_HEADER) /* direct TLS: nothing was said in the clear */
        return 0;
    /* RFC 6120 §5.4.3.3: everything learned before TLS is discarded. */
    while (s->npairs > 0)
        st_pair_remove(s, s->pairs[s->npairs - 1]);
    s->restart = true;
    s->state = STREAM_S_WAIT_HEADER;
    s->local[0] = s->remote[0] = '\0';
    s->have_rules = false;
    s->bidi = false;
    return 0;
}

/* ---- SASL EXTERNAL ---- */

static void sasl_failure(stream_t *s, const char *cond)
{
    uint32_t m;
    st_send_begin(s, &m);
    st_send_str(s, "<failure xmlns='" STANZA_NS_SASL "'><");
    st_send_str(s, cond);
    st_send_str(s, "/></failure>");
    st_send_commit(s, m);
    s->sasl_challenged = false;
    s->state = STREAM_S_OPEN;
    if (++s->sasl_failures >= 3) {
        st_fail(s, "policy-violation", "too many authentication attempts", "sasl-retries");
        return;
    }
    /* XEP-0178: after a failed EXTERNAL the peer may go on with dialback where we offered it. */
    if (!s->offered_db && strcmp(cond, "aborted") != 0)
        st_fail(s, "not-authorized", NULL, "sasl-failed");
}

static void sasl_response(stream_t *s, const char *text, size_t n)
{
    uint8_t authzid[SASL_MAX_AUTHZID];
    size_t alen = 0;
    int rc = sasl_b64_decode(text, n, authzid, sizeof(authzid), &alen);
    if (rc == FG_EPARSE) {
        sasl_failure(s, "incorrect-encoding");
        return;
    }
    if (rc != 0 || sasl_authzid_check(authzid, alen, s->remote) != SASL_AUTHZ_OK) {
        sasl_failure(s, "invalid-authzid");
        return;
    }
    /* Checked again at use: the certificate must still cover the claimed domain. */
    if (!st_cert_covers(s, s->remote)) {
        sasl_failure(s, "not-authorized");
        return;
    }
    uint32_t m;
    st_send_begin(s, &m);
    st_send_str(s, "<success xmlns='" STANZA_NS_SASL "'/>");
    st_send_commit(s, m);
    s->sasl_done = true;
    st_authenticated(s, s->local, s->remote, STREAM_AUTH_SASL);
    /* RFC 6120 §6.4.6: the peer restarts the stream; we answer with a new id. */
    s->restart = true;
    s->state = STREAM_S_WAIT_HEADER;
}

static int on_sasl(stream_t *s, const stanza_t *el)
{
    size_t n = 0;
    const char *text;
    if (strcmp(el->name, "abort") == 0) {
        sasl_failure(s, "aborted");
        return XML_CB_CONTINUE;
    }
    if (s->sasl_done) {
        st_fail(s, "policy-violation", "already authenticated", "sasl-again");
        return XML_CB_STOP;
    }
    if (strcmp(el->name, "auth") == 0) {
        const char *mech = stanza_attr(el, "mechanism");
        if (!s->offered_sasl) {
            sasl_failure(s, s->tls ? "invalid-mechanism" : "encryption-required");
            return XML_CB_CONTINUE;
        }
        if (!mech || strcmp(mech, "EXTERNAL") != 0) {
            sasl_failure(s, "invalid-mechanism");
            return XML_CB_CONTINUE;
        }
        text = stanza_text(el, &n);
        if (n == 0) {
            /* No initial response: an empty challenge asks for it (RFC 6120 §6.4.2). */
            uint32_t m;
            st_send_begin(s, &m);
            st_send_str(s, "<challenge xmlns='" STANZA_NS_SASL "'/>");
            st_send_commit(s, m);
            s->sasl_challenged = true;
            s->state = STREAM_S_SASL;
            return XML_CB_CONTINUE;
        }
        sasl_response(s, text, n);
    } else if (strcmp(el->name, "response") == 0) {
        if (!s->sasl_challenged) {
            sasl_failure(s, "malformed-request");
            return XML_CB_CONTINUE;
        }
        s->sasl_challenged = false;
        text = stanza_text(el, &n);
        sasl_response(s, text, n);
    } else {
        sasl_failure(s, "malformed-request");
    }
    return (s->restart || s->state == STREAM_S_CLOSED) ? XML_CB_STOP : XML_CB_CONTINUE;
}

/* ---- dialback ---- */

/* <db:NAME from to [id] type>[error]</db:NAME>, declaring the prefix when our header did not. */
static void db_reply(stream_t *s, const char *name, const char *from, const char *to,
                     const char *id, const char *type, const char *cond)
{
    uint32_t m;
    st_send_begin(s, &m);
    st_send_str(s, "<db:");
    st_send_str(s, name);
    if (s->have_rules && !s->rules.dialback)
        st_send_str(s, " xmlns:db='" STANZA_NS_DIALBACK "'");
    st_send_str(s, " from='");
    st_send_attr(s, from);
    st_send_str(s, "' to='");
    st_send_attr(s, to);
    if (id) {
        st_send_str(s, "' id='");
        st_send_attr(s, id);
    }
    st_send_str(s, "' type='");
    st_send_str(s, type);
    if (cond) {
        st_send_str(s, "'>");
        stream_err_write_dialback(&s->out, cond);
        st_send_str(s, "</db:");
        st_send_str(s, name);
        st_send_str(s, ">");
    } else {
        st_send_str(s, "'/>");
    }
    st_send_commit(s, m);
}

static void db_result_reply(stream_t *s, const pair_t *p, const char *type, const char *cond)
{
    db_reply(s, "result", p->local, p->remote, NULL, type, cond);
}

/* The pair's partner verdict is known: refuse it by the rules or start verification. */
static void db_proceed(stream_t *s, pair_t *p, const dom_t *d)
{
    const peer_rules_t *r = &d->rules;
    const char *cond = NULL;
    if (d->state == DOM_REFUSED)
        cond = "forbidden";
    else if (r->tls == NEG_REQUIRED && !s->tls)
        cond = "policy-violation"; /* XEP-0220: TLS required before dialback */
    else if (!st_dialback_allowed(r, s->tls))
        cond = "not-authorized";
    else if (r->sasl == NEG_REQUIRED && s->tls && st_sasl_allowed(r) &&
             st_cert_covers(s, p->remote))
        cond = "not-authorized"; /* SASL Required and EXTERNAL possible: use it */
    if (cond) {
        db_result_reply(s, p, "error", cond);
        st_pair_remove(s, p);
        return;
    }
    if (s->cfg.dialback_cert_skip && s->tls && st_cert_covers(s, p->remote)) {
        /* XEP-0344 §2.4: the certificate, checked now, authenticates the sender domain. */
        p->state = PAIR_VALID;
        db_result_reply(s, p, "valid", NULL);
        st_authenticated(s, p->local, p->remote, STREAM_AUTH_DIALBACK_CERT);
        return;
    }
    p->state = PAIR_VERIFYING;
    /* Half the establishment time: the initiator hears remote-server-timeout and may still retry
       before the stream itself times out. */
    p->deadline = s->now + (uint64_t)s->cfg.limits.establishment_timeout_s * 500;
    if (p->deadline == s->now)
        p->deadline = 0;
    act_t *a = st_push(s, STREAM_ACT_VERIFY);
    a->from = st_str(s, p->local);
    a->to = st_str(s, p->remote);
    a->id = st_str(s, s->id);
    a->key = st_str(s, p->key);
}

static int on_db_result(stream_t *s, const stanza_t *el)
{
    if (stanza_type(el)) {
        /* We never send db:result requests on a stream we receive: any answer is unsolicited. */
        st_fail(s, "not-authorized", "unsolicited dialback result", "unsolicited-db-result");
        return XML_CB_STOP;
    }
    const char *from = stanza_from(el), *to = stanza_to(el);
    if (!from || !to) {
        st_fail(s, "improper-addressing", NULL, "db-result-addressing");
        return XML_CB_STOP;
    }
    if (!st_domain_ok(from)) {
        st_fail(s, "invalid-from", NULL, "db-result-from");
        return XML_CB_STOP;
    }
    pair_t tmp;
    memset(&tmp, 0, sizeof(tmp));
    st_copy(tmp.local, to, sizeof(tmp.local));
    st_copy(tmp.remote, from, sizeof(tmp.remote));
    if (!st_domain_ok(to) || !st_hosted(s, to)) {
        db_result_reply(s, &tmp, "error", "item-not-found");
        return XML_CB_CONTINUE;
    }
    size_t klen = 0;
    const char *key = stanza_text(el, &klen);
    if (klen == 0 || klen > STREAM_KEY_MAX || memchr(key, '\0', klen)) {
        db_result_reply(s, &tmp, "error", "not-acceptable");
        return XML_CB_CONTINUE;
    }
    pair_t *p = st_pair_find(s, to, from);
    if (p) {
        /* Already authorized: confirm; in progress: the first request stands. */
        if (p->state == PAIR_VALID)
            db_result_reply(s, p, "valid", NULL);
        return XML_CB_CONTINUE;
    }
    dom_t *d = st_dom_find(s, from);
    bool ask = false;
    if (!d) {
        d = st_dom_add(s, from);
        ask = true;
    }
    p = d ? st_pair_add(s, to, from, PAIR_POLICY) : NULL;
    if (!p) {
        /* XEP-0220: too many pairs here; the initiator should open another connection. */
        db_result_reply(s, &tmp, "error", "resource-constraint");
        return XML_CB_CONTINUE;
    }
    memcpy(p->key, key, klen);
    p->key[klen] = '\0';
    if (ask) {
        act_t *a = st_push(s, STREAM_ACT_NEED_POLICY);
        a->domain = st_str(s, d->domain);
    }
    if (d->state != DOM_PENDING)
        db_proceed(s, p, d);
    return XML_CB_CONTINUE;
}

/* Authoritative role (XEP-0220 step 3): recompute the key from our secret. */
static int on_db_verify(stream_t *s, const stanza_t *el)
{
    if (stanza_type(el)) {
        st_fail(s, "not-authorized", "unsolicited dialback verify result", "unsolicited-db-verify");
        return XML_CB_STOP;
    }
    const char *from = stanza_from(el), *to = stanza_to(el), *id = stanza_id(el);
    if (!from || !to || !id || !st_domain_ok(from) || !st_domain_ok(to)) {
        st_fail(s, "improper-addressing", NULL, "db-verify-addressing");
        return XML_CB_STOP;
    }
    if (!st_hosted(s, to)) {
        db_reply(s, "verify", to, from, id, "error", "item-not-found");
        return XML_CB_CONTINUE;
    }
    size_t klen = 0;
    const char *key = stanza_text(el, &klen);
    bool ok =
        s->secret_len > 0 && dialback_verify(s->secret, s->secret_len, from, to, id, key, klen);
    db_reply(s, "verify", to, from, id, ok ? "valid" : "invalid", NULL);
    return XML_CB_CONTINUE;
}

int st_in_verify_result(stream_t *s, pair_t *p, stream_verify_t r, const char *cond)
{
    p->deadline = 0;
    if (r == STREAM_VERIFY_VALID) {
        p->state = PAIR_VALID;
        db_result_reply(s, p, "valid", NULL);
        st_authenticated(s, p->local, p->remote,
                         s->tls ? STREAM_AUTH_DIALBACK_TLS : STREAM_AUTH_DIALBACK_TCP);
        return 0;
    }
    if (r == STREAM_VERIFY_INVALID) {
        db_result_reply(s, p, "invalid", NULL);
        st_pair_remove(s, p);
        /* XEP-0220 §2.4: MUST close the stream when no other pair is valid on it. */
        if (!st_any_valid(s))
            st_fail(s, "not-authorized", "dialback key invalid", "dialback-invalid");
        return 0;
    }
    const char *c = stream_err_stanza_condition(cond);
    db_result_reply(s, p, "error", c ? c : "remote-server-not-found");
    st_pair_remove(s, p);
    return 0;
}

void st_in_tick(stream_t *s)
{
    for (uint32_t i = 0; i < s->npairs;) {
        pair_t *p = s->pairs[i];
        if (p->state == PAIR_VERIFYING && p->deadline && s->now >= p->deadline) {
            db_result_reply(s, p, "error", "remote-server-timeout");
            st_pair_remove(s, p);
            continue;
        }
        i++;
    }
}

int st_in_policy(stream_t *s, dom_t *d)
{
    if (s->state == STREAM_S_WAIT_POLICY && jid_domain_equal_str(d->domain, s->remote)) {
        s->wait_event = false;
        respond(s);
    }
    for (uint32_t i = 0; i < s->npairs && s->state != STREAM_S_CLOSED;) {
        pair_t *p = s->pairs[i];
        if (p->state == PAIR_POLICY && jid_domain_equal_str(p->remote, d->domain)) {
            uint32_t before = s->npairs;
            db_proceed(s, p, d);
            if (s->npairs < before)
                continue;
        }
        i++;
    }
    return 0;
}

/* ---- stanzas ---- */

static int on_stanza(stream_t *s, const xml_event_t *ev)
{
    const stanza_t *el = ev->el;
    jid_t jf, jt;
    char fd[STREAM_DOMAIN_MAX + 1], td[STREAM_DOMAIN_MAX + 1];
    if (!st_any_valid(s)) {
        st_fail(s, "not-authorized", NULL, "stanza-before-auth");
        return XML_CB_STOP;
    }
    const char *from = stanza_from(el), *to = stanza_to(el);
    if (!from || !to || jid_parse_str(from, &jf) != 0 || jid_parse_str(to, &jt) != 0 ||
        jid_domain(&jf, fd, sizeof(fd)) < 0 || jid_domain(&jt, td, sizeof(td)) < 0) {
        st_fail(s, "improper-addressing", NULL, "stanza-addressing");
        return XML_CB_STOP;
    }
    if (!st_hosted(s, td)) {
        st_fail(s, "host-unknown", NULL, "stanza-to");
        return XML_CB_STOP;
    }
    bool ok =
        s->sasl_done && jid_domain_equal_str(fd, s->remote) && jid_domain_equal_str(td, s->local);
    if (!ok) {
        const pair_t *p = st_pair_find(s, td, fd);
        ok = p && p->state == PAIR_VALID;
    }
    if (!ok) {
        st_fail(s, "invalid-from", NULL, "stanza-from");
        return XML_CB_STOP;
    }
    return st_route(s, ev, STANZA_NS_SERVER);
}

int st_in_event(stream_t *s, const xml_event_t *ev)
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
    if (s->state == STREAM_S_SASL && strcmp(ns, STANZA_NS_SASL) != 0) {
        /* RFC 6120 §6.4: nothing but SASL elements during the exchange. */
        st_fail(s, "not-authorized", NULL, "sasl-interrupted");
        return XML_CB_STOP;
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
    if (strcmp(ns, STANZA_NS_TLS) == 0 && strcmp(el->name, "starttls") == 0)
        return on_starttls(s);
    if (strcmp(ns, STANZA_NS_SASL) == 0)
        return on_sasl(s, el);
    if (strcmp(ns, STANZA_NS_DIALBACK) == 0) {
        if (strcmp(el->name, "result") == 0)
            return on_db_result(s, el);
        if (strcmp(el->name, "verify") == 0)
            return on_db_verify(s, el);
        st_fail(s, "unsupported-stanza-type", NULL, "dialback-element");
        return XML_CB_STOP;
    }
    if (strcmp(ns, STANZA_NS_BIDI) == 0 && strcmp(el->name, "bidi") == 0) {
        /* XEP-0288: only where offered and before authentication. */
        if (s->offered_bidi && !st_any_valid(s) && s->npairs == 0)
            s->bidi = true;
        return XML_CB_CONTINUE;
    }
    /* RFC 6120 §4.8.4: other first-level elements in other namespaces are ignored. */
    return XML_CB_CONTINUE;
}
