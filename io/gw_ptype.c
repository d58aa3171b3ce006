#include "io/gw_ptype.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/log.h"
#include "core/stanza.h"
#include "core/xml.h"
#include "io/gw.h"
#include "io/gw_route.h"

int gw_ptype_start(const char *store_dir, ledger_writer_t **out)
{
    return ledger_writer_start(store_dir, NULL, out);
}

void gw_ptype_stop(ledger_writer_t *w)
{
    ledger_writer_stop(w);
}

int gw_ptype_worker_open(gw_worker_t *k)
{
    for (int r = 0; r < DECIDE_R_COUNT_; r++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "rule=\"%s\"", decide_reason_name((decide_reason_t)r));
        k->m_decide[r] =
            metrics_register(k->gw->metrics, METRIC_COUNTER, "fedgate_policy_decisions_total",
                             labels, "Stanzas judged by each partner-type or access rule");
    }
    k->next_purge_ms = gw_now_ms() + GW_PTYPE_PURGE_MS;
    return ledger_reader_open(k->gw->store, &k->ledger);
}

void gw_ptype_worker_close(gw_worker_t *k)
{
    ledger_reader_close(k->ledger);
    k->ledger = NULL;
    xml_parser_free(k->sparser);
    k->sparser = NULL;
    stanza_arena_free(k->sarena);
    k->sarena = NULL;
    buf_free(&k->sout);
}

void gw_ptype_tick(gw_worker_t *k)
{
    uint64_t now_ms = gw_now_ms();
    if (k->idx != 0 || !k->gw->ledger || now_ms < k->next_purge_ms)
        return;
    k->next_purge_ms = now_ms + GW_PTYPE_PURGE_MS;
    uint32_t iv = policy_settings(k->pol)->subscription_refresh_interval;
    if (!iv)
        iv = LEDGER_REFRESH_DEFAULT;
    /* A full queue only delays the purge to the next tick. */
    (void)ledger_post_purge(k->gw->ledger, (int64_t)time(NULL) - iv);
}

/* ---- kind from the start tag ---- */

/* Value of attribute `name` in the start tag [p, end): the serializer escapes '>' in values, so
   the tag ends at the first '>'. */
static const char *tag_attr(const char *p, const char *end, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    for (; p + n + 2 < end; p++) {
        if ((*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') || memcmp(p + 1, name, n) != 0 ||
            p[n + 1] != '=' || (p[n + 2] != '\'' && p[n + 2] != '"'))
            continue;
        const char *v = p + n + 3, *q = memchr(v, p[n + 2], (size_t)(end - v));
        if (!q)
            return NULL;
        *vlen = (size_t)(q - v);
        return v;
    }
    return NULL;
}

static bool is(const char *v, size_t n, const char *s)
{
    return v && n == strlen(s) && memcmp(v, s, n) == 0;
}

static bool tag_is(const char *s, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n + 1 && s[0] == '<' && memcmp(s + 1, name, n) == 0 &&
           (s[n + 1] == ' ' || s[n + 1] == '>' || s[n + 1] == '/' || s[n + 1] == '\t' ||
            s[n + 1] == '\n' || s[n + 1] == '\r');
}

decide_kind_t gw_ptype_kind(const void *data, size_t len)
{
    const char *s = data, *end;
    if (!s || len < 4 || s[0] != '<' || !(end = memchr(s, '>', len)))
        return DECIDE_K_OTHER;
    size_t tl = 0;
    const char *t = tag_attr(s, end, "type", &tl);
    if (tag_is(s, len, "message"))
        return is(t, tl, "error") ? DECIDE_K_MESSAGE_ERROR : DECIDE_K_MESSAGE;
    if (tag_is(s, len, "iq")) {
        if (is(t, tl, "get") || is(t, tl, "set"))
            return DECIDE_K_IQ;
        if (is(t, tl, "result") || is(t, tl, "error"))
            return DECIDE_K_IQ_REPLY;
        return DECIDE_K_OTHER;
    }
    if (!tag_is(s, len, "presence"))
        return DECIDE_K_OTHER;
    if (!t || is(t, tl, "unavailable"))
        return DECIDE_K_PRESENCE;
    static const struct {
        const char *type;
        decide_kind_t kind;
    } map[] = {{"probe", DECIDE_K_PROBE},
               {"subscribe", DECIDE_K_SUBSCRIBE},
               {"subscribed", DECIDE_K_SUBSCRIBED},
               {"unsubscribe", DECIDE_K_UNSUBSCRIBE},
               {"unsubscribed", DECIDE_K_UNSUBSCRIBED},
               {"error", DECIDE_K_PRESENCE_ERROR}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (is(t, tl, map[i].type))
            return map[i].kind;
    return DECIDE_K_OTHER;
}

/* ---- the stanza as a tree (only for status stripping and the audit line) ---- */

static int tree_handler(void *ctx, const xml_event_t *ev)
{
    gw_worker_t *k = ctx;
    if (ev->type != XML_EV_STANZA || k->stree)
        return XML_CB_CONTINUE;
    stanza_arena_reset(k->sarena);
    k->stree = stanza_clone(k->sarena, ev->el);
    return XML_CB_STOP;
}

static bool xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The value an XML parser reports for the literal [v, v+n) (XML 1.0 §2.11, §3.3.3: line ends
   and white space characters become one space each, then the five predefined entities and
   character references), into o (at least n + 1 bytes: every reference is longer than what it
   stands for). False for anything the stream engine would not have let through. */
static bool attr_value(const char *v, size_t n, char *o)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '\r') {
            if (i + 1 < n && v[i + 1] == '\n')
                i++;
            o[k++] = ' ';
        } else if (c == '\n' || c == '\t') {
            o[k++] = ' ';
        } else if (c != '&') {
            o[k++] = c;
        } else {
            const char *semi = memchr(v + i, ';', n - i);
            if (!semi)
                return false;
            const char *e = v + i + 1;
            size_t el = (size_t)(semi - e);
            static const struct {
                const char *name;
                char c;
            } ents[] = {{"lt", '<'}, {"gt", '>'}, {"amp", '&'}, {"apos", '\''}, {"quot", '"'}};
            size_t j = 0;
            for (; j < sizeof(ents) / sizeof(ents[0]); j++)
                if (el == strlen(ents[j].name) && memcmp(e, ents[j].name, el) == 0)
                    break;
            if (j < sizeof(ents) / sizeof(ents[0])) {
                o[k++] = ents[j].c;
            } else if (el >= 2 && e[0] == '#') {
                bool hex = e[1] == 'x';
                unsigned long cp = 0;
                for (const char *d = e + 1 + hex; d < semi; d++) {
                    int dv = *d >= '0' && *d <= '9'          ? *d - '0'
                             : hex && *d >= 'a' && *d <= 'f' ? *d - 'a' + 10
                             : hex && *d >= 'A' && *d <= 'F' ? *d - 'A' + 10
                                                             : -1;
                    if (dv < 0 || cp > 0x10FFFF)
                        return false;
                    cp = cp * (hex ? 16 : 10) + (unsigned long)dv;
                }
                if (cp == 0 || cp > 0x10FFFF || e + 1 + hex == semi)
                    return false;
                k += put_utf8(o + k, cp);
            } else {
                return false;
            }
            i = (size_t)(semi - v);
        }
    }
    o[k] = '\0';
    return true;
}

static const char *const head_attrs[] = {"from", "to", "type", "id"};

stanza_t *gw_ptype_head(stanza_arena_t *a, const void *data, size_t len)
{
    if (!data || len < 3 || *(const char *)data != '<')
        return NULL;
    const char *s = data, *end = s + len, *p = s + 1;
    while (p < end && !xml_space(*p) && *p != '>' && *p != '/')
        p++;
    size_t nl = (size_t)(p - s - 1);
    /* A prefixed name (a local declaration of the content namespace) is left to the parser. */
    if (p == end || nl == 0 || nl > 64 || memchr(s + 1, ':', nl))
        return NULL;
    char name[65];
    memcpy(name, s + 1, nl);
    name[nl] = '\0';
    stanza_t *e = stanza_new(a, NULL, NULL, name);
    if (!e)
        return NULL;
    for (;;) {
        while (p < end && xml_space(*p))
            p++;
        if (p == end)
            return NULL;
        if (*p == '>' || *p == '/')
            return e;
        const char *an = p;
        while (p < end && !xml_space(*p) && *p != '=')
            p++;
        size_t al = (size_t)(p - an);
        while (p < end && xml_space(*p))
            p++;
        if (p == end || *p != '=' || al == 0)
            return NULL;
        p++;
        while (p < end && xml_space(*p))
            p++;
        if (p == end || (*p != '\'' && *p != '"'))
            return NULL;
        const char *v = p + 1, *q = memchr(v, *p, (size_t)(end - v));
        if (!q)
            return NULL;
        p = q + 1;
        for (size_t i = 0; i < sizeof(head_attrs) / sizeof(head_attrs[0]); i++) {
            if (al != strlen(head_attrs[i]) || memcmp(an, head_attrs[i], al) != 0)
                continue;
            char *val = stanza_arena_alloc(a, (size_t)(q - v) + 1);
            if (!val || !attr_value(v, (size_t)(q - v), val) ||
                stanza_set_attr(a, e, head_attrs[i], val) != 0)
                return NULL;
        }
    }
}

/* The shared tools of the slow paths: a private parser, its arena and an output buffer. */
static bool tools(gw_worker_t *k)
{
    if (k->sparser)
        return true;
    stream_limits_t l;
    stream_limits_default(&l);
    l.max_stanza_bytes_preauth = 1 << 20;
    l.max_buffered_bytes = (1 << 20) + 4096;
    if (xml_parser_new(&k->sparser, &l, tree_handler, k) != 0)
        return false;
    if (stanza_arena_new(&k->sarena, 4 << 20) != 0) {
        xml_parser_free(k->sparser);
        k->sparser = NULL;
        return false;
    }
    buf_init(&k->sout, 1 << 20);
    return true;
}

static const char tree_open[] = "<stream:stream xmlns='jabber:server' "
                                "xmlns:stream='http://etherx.jabber.org/streams'>";

/* The stanza's tree in the worker's arena (valid until the next call), or NULL. */
static stanza_t *tree_of(gw_worker_t *k, const void *data, size_t len)
{
    if (!tools(k))
        return NULL;
    xml_reset(k->sparser);
    k->stree = NULL;
    if (xml_feed(k->sparser, tree_open, sizeof(tree_open) - 1, NULL) != 0 ||
        xml_feed(k->sparser, data, len, NULL) != 0)
        return NULL;
    return k->stree;
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

/* ---- the check ---- */

bool gw_ptype_check(gw_worker_t *k, decide_dir_t dir, partner_type_t type, const char *from,
                    const char *to, const void **data, size_t *len)
{
    char local[LEDGER_JID_MAX + 1], remote[LEDGER_JID_MAX + 1];
    const char *la = dir == DECIDE_INBOUND ? to : from, *ra = dir == DECIDE_INBOUND ? from : to;
    if (ledger_bare_jid_trusted(la, local, sizeof(local)) < 0 ||
        ledger_bare_jid_trusted(ra, remote, sizeof(remote)) < 0)
        return true; /* a bare domain on one side (server iq, dialback): no user rule */
    const settings_t *set = policy_settings(k->pol);
    uint32_t iv = set->subscription_refresh_interval ? set->subscription_refresh_interval
                                                     : LEDGER_REFRESH_DEFAULT;
    decide_in_t in = {dir, gw_ptype_kind(*data, *len), type, policy_access(k->pol, local),
                      LEDGER_ABSENT};
    int64_t now = 0;
    if (decide_needs_ledger(in.dir, in.kind, in.type) && k->ledger) {
        now = (int64_t)time(NULL);
        in.ledger =
            ledger_lookup(k->ledger, local, remote, now, decide_ledger_interval(in.dir, iv));
    }
    decide_t d = decide(&in);
    if (k->m_decide[d.reason] >= 0)
        metrics_add(k->gw->metrics, k->idx, k->m_decide[d.reason], 1);
    if (d.verdict == DECIDE_REFUSE) {
        if (gw_log_ok(k))
            log_info("policy %s %s -> %s: %s refused (%s)", dir == DECIDE_INBOUND ? "in" : "out",
                     from, to, decide_kind_name(in.kind), decide_reason_name(d.reason));
        if (d.bounce)
            gw_route_bounce(k, *data, *len, d.condition);
        return false;
    }
    if (d.verdict != DECIDE_PASS && d.verdict != DECIDE_PASS_STRIP_STATUS) {
        int rc = k->gw->ledger ? decide_post(k->gw->ledger, d.verdict, local, remote,
                                             now ? now : (int64_t)time(NULL))
                               : FG_ESTALE;
        if (rc == FG_ELIMIT || rc == FG_ESTALE) {
            /* Never pass an invitation the ledger did not record. */
            gw_route_bounce(k, *data, *len, "resource-constraint");
            return false;
        }
    }
    bool strip = d.strip_status && contains(*data, *len, "<status");
    bool audit = (in.kind == DECIDE_K_MESSAGE || in.kind == DECIDE_K_MESSAGE_ERROR) &&
                 log_get_level() >= LOG_LVL_INFO;
    if (!strip && !audit)
        return true;
    if (!strip && !set->log_message_bodies && tools(k)) {
        /* The line names the endpoints only: read them from the start tag rather than parse
           the whole stanza again (the same line; gw_ptype_head falls back for what it cannot
           read). */
        stanza_arena_reset(k->sarena);
        const stanza_t *h = gw_ptype_head(k->sarena, *data, *len);
        if (h) {
            char line[1024];
            decide_audit_line(line, sizeof(line), dir, h, false);
            log_info("%s", line);
            return true;
        }
    }
    stanza_t *st = tree_of(k, *data, *len);
    if (!st)
        return true; /* the stream engine parsed it already: cannot happen but for memory */
    if (audit) {
        char line[1024];
        decide_audit_line(line, sizeof(line), dir, st, set->log_message_bodies);
        log_info("%s", line);
    }
    if (strip && decide_strip_status(st) > 0) {
        buf_reset(&k->sout);
        if (stanza_write(&k->sout, st, &stanza_scope_s2s) == 0) {
            *data = k->sout.data;
            *len = k->sout.len;
        }
    }
    return true;
}
