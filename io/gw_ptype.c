#include "io/gw_ptype.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jid.h"
#include "core/stanza.h"
#include "core/xml.h"
#include "io/gw.h"

struct gw_auth {
    uint64_t key;
    uint64_t expiry_ms;
};

/* The start tag ends at the first '>': the serializer escapes '>' inside attribute values. */
static const char *find_attr(const char *p, const char *end, const char *needle, size_t *vlen)
{
    size_t n = strlen(needle);
    for (; p + n < end; p++)
        if (memcmp(p, needle, n) == 0) {
            const char *v = p + n, *q = memchr(v, p[n - 1], (size_t)(end - v));
            if (!q)
                return NULL;
            *vlen = (size_t)(q - v);
            return v;
        }
    return NULL;
}

gw_stanza_kind_t gw_ptype_classify(const void *data, size_t len)
{
    const char *s = data, *end;
    if (len < 4 || s[0] != '<')
        return GW_ST_OTHER;
    end = memchr(s, '>', len);
    if (!end)
        return GW_ST_OTHER;
    size_t tl = 0;
    const char *t = find_attr(s, end, " type='", &tl);
    if (!t)
        t = find_attr(s, end, " type=\"", &tl);
    if (len > 8 && memcmp(s, "<message", 8) == 0 && (s[8] == ' ' || s[8] == '>' || s[8] == '/'))
        return t && tl == 5 && memcmp(t, "error", 5) == 0 ? GW_ST_OTHER : GW_ST_MESSAGE;
    if (len > 9 && memcmp(s, "<presence", 9) == 0 && (s[9] == ' ' || s[9] == '>' || s[9] == '/')) {
        if (!t)
            return GW_ST_PRESENCE_AVAIL;
        if (tl == 9 && memcmp(t, "subscribe", 9) == 0)
            return GW_ST_SUBSCRIBE;
        if (tl == 10 && memcmp(t, "subscribed", 10) == 0)
            return GW_ST_SUBSCRIBED;
    }
    return GW_ST_OTHER;
}

static uint64_t fnv_bare(uint64_t h, const char *jid)
{
    jid_t j;
    if (jid_parse_str(jid, &j) != 0)
        return h;
    const char *parts[2] = {j.local, j.domain};
    size_t lens[2] = {j.local ? j.local_len : 0, jid_domain_len_noroot(j.domain, j.domain_len)};
    for (int i = 0; i < 2; i++) {
        for (size_t n = 0; n < lens[i]; n++) {
            uint8_t c = (uint8_t)parts[i][n];
            if (c >= 'A' && c <= 'Z')
                c = (uint8_t)(c + 32);
            h = (h ^ c) * 1099511628211ull;
        }
        h = (h ^ '@') * 1099511628211ull;
    }
    return h;
}

static uint64_t pair_key(const char *local, const char *remote)
{
    uint64_t h = fnv_bare(14695981039346656037ull, local);
    h = (h ^ '|') * 1099511628211ull;
    h = fnv_bare(h, remote);
    return h ? h : 1; /* 0 marks an empty slot */
}

static struct gw_auth *auth_table(gw_worker_t *k)
{
    if (!k->auth)
        k->auth = calloc(GW_AUTH_SLOTS, sizeof(*k->auth));
    return k->auth;
}

void gw_ptype_outbound(gw_worker_t *k, const char *from, const char *to, gw_stanza_kind_t kind,
                       uint32_t refresh_s)
{
    if (kind != GW_ST_MESSAGE && kind != GW_ST_SUBSCRIBE && kind != GW_ST_SUBSCRIBED)
        return;
    struct gw_auth *t = auth_table(k);
    if (!t)
        return;
    uint64_t key = pair_key(from, to);
    struct gw_auth *e = &t[key % GW_AUTH_SLOTS];
    e->key = key;
    e->expiry_ms = gw_now_ms() + (uint64_t)(refresh_s ? refresh_s : 28800) * 1000u;
}

bool gw_ptype_inbound_ok(gw_worker_t *k, partner_type_t type, const char *from, const char *to,
                         gw_stanza_kind_t kind)
{
    if (type != PARTNER_PUBLIC_UNVERIFIED)
        return true;
    if (kind != GW_ST_MESSAGE && kind != GW_ST_SUBSCRIBE)
        return true; /* answers (subscribed, errors, results) and availability flow */
    struct gw_auth *t = auth_table(k);
    if (!t)
        return false;
    uint64_t key = pair_key(to, from);
    const struct gw_auth *e = &t[key % GW_AUTH_SLOTS];
    return e->key == key && e->expiry_ms > gw_now_ms();
}

/* ---- <status/> removal ---- */

static int strip_handler(void *ctx, const xml_event_t *ev)
{
    gw_worker_t *k = ctx;
    if (ev->type != XML_EV_STANZA || k->sdone)
        return XML_CB_CONTINUE;
    k->sdone = true;
    stanza_arena_reset(k->sarena);
    stanza_t *e = stanza_clone(k->sarena, ev->el);
    if (!e)
        return XML_CB_STOP;
    stanza_t *prev = NULL;
    for (stanza_t *c = e->first; c;) {
        stanza_t *next = c->next;
        if (c->name && strcmp(c->name, "status") == 0) {
            if (prev)
                prev->next = next;
            else
                e->first = next;
            if (e->last == c)
                e->last = prev;
            k->sstripped = true;
        } else {
            prev = c;
        }
        c = next;
    }
    buf_reset(&k->sout);
    if (k->sstripped && stanza_write(&k->sout, e, &stanza_scope_s2s) != 0)
        buf_reset(&k->sout);
    return XML_CB_STOP;
}

static bool contains(const void *data, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    const char *p = data, *end = p + len;
    while (p + n <= end && (p = memchr(p, needle[0], (size_t)(end - p))) && p + n <= end) {
        if (memcmp(p, needle, n) == 0)
            return true;
        p++;
    }
    return false;
}

static const char strip_open[] = "<stream:stream xmlns='jabber:server' "
                                 "xmlns:stream='http://etherx.jabber.org/streams'>";

const uint8_t *gw_ptype_strip_status(gw_worker_t *k, partner_type_t type, const void *data,
                                     size_t len, size_t *out_len)
{
    if (type == PARTNER_FEDERATED || !contains(data, len, "<status"))
        return NULL;
    if (!k->sparser) {
        stream_limits_t l;
        stream_limits_default(&l);
        l.max_stanza_bytes_preauth = 1 << 20;
        l.max_buffered_bytes = (1 << 20) + 4096;
        if (xml_parser_new(&k->sparser, &l, strip_handler, k) != 0 ||
            stanza_arena_new(&k->sarena, 4 << 20) != 0)
            return NULL;
        buf_init(&k->sout, 1 << 20);
    }
    xml_reset(k->sparser);
    k->sdone = k->sstripped = false;
    if (xml_feed(k->sparser, strip_open, sizeof(strip_open) - 1, NULL) != 0 ||
        xml_feed(k->sparser, data, len, NULL) != 0 || !k->sstripped || k->sout.len == 0)
        return NULL;
    *out_len = k->sout.len;
    return k->sout.data;
}
