/*
 * Stream engine, XEP-0114 component side (STREAM_COMPONENT, we are the server): the component
 * names its domain in the header `to`, we ask for that route's secret, answer with a fresh id and
 * check <handshake/> = hex(SHA1(id + secret)). After that the component's stanzas are routed; their
 * `from` must be in its domain.
 */
#include "core/stream_int.h"

#include "core/component.h"
#include "core/err.h"
#include "core/jid.h"

#include <string.h>

static int on_header(stream_t *s, const stanza_t *h)
{
    st_new_id(s);
    if (st_header_checks(s, h, STANZA_NS_COMPONENT) != 0)
        return XML_CB_STOP;
    const char *to = stanza_to(h);
    if (!st_domain_ok(to)) {
        st_fail(s, "host-unknown", NULL, "component-domain");
        return XML_CB_STOP;
    }
    st_copy(s->remote, to, sizeof(s->remote));
    st_copy(s->local, to, sizeof(s->local));
    act_t *a = st_push(s, STREAM_ACT_NEED_POLICY);
    a->domain = st_str(s, s->remote);
    s->state = STREAM_S_WAIT_POLICY;
    s->wait_event = true;
    return XML_CB_STOP;
}

int st_comp_secret(stream_t *s, bool allowed, const void *secret, size_t len)
{
    s->wait_event = false;
    if (!allowed || len == 0 || len > sizeof(s->secret)) {
        st_fail(s, "host-unknown", NULL, "component-refused");
        return 0;
    }
    memcpy(s->secret, secret, len);
    s->secret_len = len;
    st_write_header(s, s->remote, NULL, false, false, STANZA_NS_COMPONENT);
    s->state = STREAM_S_OPEN;
    return 0;
}

static int on_handshake(stream_t *s, const stanza_t *el)
{
    size_t n = 0;
    const char *digest = stanza_text(el, &n);
    if (s->established) {
        st_fail(s, "not-authorized", "handshake repeated", "handshake-again");
        return XML_CB_STOP;
    }
    if (!component_verify(s->id, s->secret, s->secret_len, digest, n)) {
        st_fail(s, "not-authorized", NULL, "handshake-invalid");
        return XML_CB_STOP;
    }
    uint32_t m;
    st_send_begin(s, &m);
    st_send_str(s, "<handshake/>");
    st_send_commit(s, m);
    st_authenticated(s, s->local, s->remote, STREAM_AUTH_COMPONENT);
    return XML_CB_CONTINUE;
}

static int on_stanza(stream_t *s, const xml_event_t *ev)
{
    const stanza_t *el = ev->el;
    jid_t jf, jt;
    char fd[STREAM_DOMAIN_MAX + 1];
    if (!s->established) {
        st_fail(s, "not-authorized", NULL, "stanza-before-handshake");
        return XML_CB_STOP;
    }
    const char *from = stanza_from(el), *to = stanza_to(el);
    if (!from || !to || jid_parse_str(from, &jf) != 0 || jid_parse_str(to, &jt) != 0 ||
        jid_domain(&jf, fd, sizeof(fd)) < 0) {
        st_fail(s, "improper-addressing", NULL, "stanza-addressing");
        return XML_CB_STOP;
    }
    if (!jid_domain_equal_str(fd, s->remote)) {
        st_fail(s, "invalid-from", NULL, "stanza-from");
        return XML_CB_STOP;
    }
    return st_route(s, ev, STANZA_NS_COMPONENT);
}

int st_comp_event(stream_t *s, const xml_event_t *ev)
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
    if (strcmp(ns, STANZA_NS_COMPONENT) != 0) {
        if (strcmp(ns, STANZA_NS_SERVER) == 0 || strcmp(ns, STANZA_NS_CLIENT) == 0) {
            st_fail(s, "invalid-namespace", NULL, "content-namespace");
            return XML_CB_STOP;
        }
        return XML_CB_CONTINUE;
    }
    if (stanza_prefix(el)) {
        st_fail(s, "bad-namespace-prefix", NULL, "content-prefix");
        return XML_CB_STOP;
    }
    if (strcmp(el->name, "handshake") == 0)
        return on_handshake(s, el);
    if (strcmp(el->name, "message") == 0 || strcmp(el->name, "presence") == 0 ||
        strcmp(el->name, "iq") == 0)
        return on_stanza(s, ev);
    st_fail(s, "unsupported-stanza-type", NULL, "stanza-type");
    return XML_CB_STOP;
}
