/*
 * Transcript runner for the stream engine (core/stream.h). A transcript is a text file of lines;
 * see docs/core-stream.md for the format. The runner plays each transcript through the real core
 * several times, feeding every input segment whole, one byte at a time, in fixed chunk sizes and
 * split in two at every position, and checks that every run produces the same bytes and actions.
 * Each mode runs twice: once with the stream's own parser instance, and once parking it in a pool
 * after every batch of input (stream_park(), as the gateway does), the pool shared by all runs so
 * that instances pass from one stream to the next.
 *
 * usage: stream_replay FILE...        exit 0 when every transcript passes in every feeding mode
 */
#include "core/component.h"
#include "core/dialback.h"
#include "core/err.h"
#include "core/peer.h"
#include "core/stream.h"
#include "core/xml.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINES  4096
#define MAX_HOSTED 16
#define MAX_POL    16
#define MAX_IDS    64

typedef struct {
    char domain[256];
    bool allow;
    peer_rules_t rules;
} pol_t;

typedef struct {
    stream_action_t a;
    char from[1024], to[1024], id[256], key[256], domain[256], cond[64], reason[64];
    uint8_t *data;
    size_t len;
} rec_t;

typedef enum { MODE_WHOLE, MODE_CHUNK, MODE_SPLIT } mode_kind_t;
typedef struct {
    mode_kind_t kind;
    size_t n; /* chunk size or split position */
} mode_t_;

typedef struct {
    const char *file;
    char **lines;
    int nlines;
    /* run state */
    mode_t_ mode;
    stream_t *s;
    stream_config_t cfg;
    char hosted_store[MAX_HOSTED][256];
    const char *hosted[MAX_HOSTED];
    pol_t pol[MAX_POL];
    int npol;
    char comp_domain[256], comp_secret[256];
    bool comp_set;
    char local[256], remote[256];
    uint8_t secret[128];
    size_t secret_len;
    uint64_t now, armed;
    uint32_t rng;
    /* pending peer input not yet consumed */
    uint8_t *in;
    size_t in_len, in_cap;
    /* produced output not yet matched */
    uint8_t *outb;
    size_t out_len, out_cap;
    rec_t *acts;
    int nacts, cap_acts;
    char ids[MAX_IDS][40];
    int nids;
    int line; /* current line number for messages */
    char err[512];
    bool failed;
    xml_pool_t *pool; /* set: park after every batch of input */
} run_t;

static void fail(run_t *r, const char *fmt, ...)
{
    if (r->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(r->err, sizeof(r->err), "%s:%d: ", r->file, r->line);
    vsnprintf(r->err + n, sizeof(r->err) - (size_t)n, fmt, ap);
    va_end(ap);
    r->failed = true;
}

static void rng_fill(void *ctx, uint8_t *out, size_t n)
{
    uint32_t *x = ctx;
    for (size_t i = 0; i < n; i++) {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        out[i] = (uint8_t)*x;
    }
}

static void grow_append(uint8_t **b, size_t *len, size_t *cap, const void *d, size_t n)
{
    if (*len + n > *cap) {
        size_t nc = (*cap ? *cap * 2 : 4096);
        while (nc < *len + n)
            nc *= 2;
        *b = realloc(*b, nc);
        if (!*b)
            abort();
        *cap = nc;
    }
    memcpy(*b + *len, d, n);
    *len += n;
}

/* ---- text helpers ---- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *next_word(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return NULL;
    char *w = s;
    while (*s && *s != ' ' && *s != '\t')
        s++;
    if (*s)
        *s++ = '\0';
    *p = s;
    return w;
}

static const char *kv(const char *word, const char *key)
{
    size_t n = strlen(key);
    return (strncmp(word, key, n) == 0 && word[n] == '=') ? word + n + 1 : NULL;
}

static bool parse_neg(const char *v, negotiation_t *o)
{
    return negotiation_parse(v, o) == 0;
}

static bool parse_bool(const char *v)
{
    return strcmp(v, "true") == 0 || strcmp(v, "on") == 0 || strcmp(v, "yes") == 0 ||
           strcmp(v, "1") == 0;
}

static void parse_rules(run_t *r, char **p, peer_rules_t *rules)
{
    char *w;
    while ((w = next_word(p))) {
        const char *v;
        if ((v = kv(w, "tls"))) {
            if (!parse_neg(v, &rules->tls))
                fail(r, "bad tls value %s", v);
        } else if ((v = kv(w, "sasl"))) {
            if (!parse_neg(v, &rules->sasl))
                fail(r, "bad sasl value %s", v);
        } else if ((v = kv(w, "dialback"))) {
            rules->dialback = parse_bool(v);
        } else if ((v = kv(w, "keepalive"))) {
            rules->keepalive = parse_bool(v);
        } else {
            fail(r, "unknown rule %s", w);
        }
    }
}

/* Expand escapes (\n \r \t \s \\ \xHH) and placeholders ({id}, {dbkey:RECV:ORIG[:ID]}) of an
   `in` line or an expected value into out. */
static size_t expand(run_t *r, const char *src, uint8_t **out, size_t *cap, bool for_input)
{
    size_t len = 0;
    for (const char *p = src; *p;) {
        if (*p == '\\' && p[1]) {
            uint8_t c;
            switch (p[1]) {
            case 'n':
                c = '\n';
                p += 2;
                break;
            case 'r':
                c = '\r';
                p += 2;
                break;
            case 't':
                c = '\t';
                p += 2;
                break;
            case 's':
                c = ' ';
                p += 2;
                break;
            case 'x':
                if (hexval(p[2]) < 0 || hexval(p[3]) < 0) {
                    fail(r, "bad \\x escape");
                    return len;
                }
                c = (uint8_t)(hexval(p[2]) * 16 + hexval(p[3]));
                p += 4;
                break;
            default:
                c = (uint8_t)p[1];
                p += 2;
                break;
            }
            grow_append(out, &len, cap, &c, 1);
            continue;
        }
        if (*p == '{' && for_input) {
            const char *end = strchr(p, '}');
            if (end && strncmp(p, "{id}", 4) == 0) {
                grow_append(out, &len, cap, stream_id(r->s), strlen(stream_id(r->s)));
                p = end + 1;
                continue;
            }
            if (end && strncmp(p, "{handshake:", 11) == 0) {
                char sec[256], dig[SHA1_HEX_LEN + 1];
                size_t n = (size_t)(end - p - 11);
                if (n >= sizeof(sec))
                    n = sizeof(sec) - 1;
                memcpy(sec, p + 11, n);
                sec[n] = '\0';
                component_digest(stream_id(r->s), sec, n, dig);
                grow_append(out, &len, cap, dig, SHA1_HEX_LEN);
                p = end + 1;
                continue;
            }
            if (end && strncmp(p, "{dbkey:", 7) == 0) {
                char spec[600], *q = spec, *recv, *orig, *id;
                size_t n = (size_t)(end - p - 7);
                if (n >= sizeof(spec))
                    n = sizeof(spec) - 1;
                memcpy(spec, p + 7, n);
                spec[n] = '\0';
                recv = strsep(&q, ":");
                orig = strsep(&q, ":");
                id = q && *q ? q : (char *)stream_id(r->s);
                char key[DIALBACK_KEY_LEN + 1];
                if (!recv || !orig ||
                    dialback_key(r->secret, r->secret_len, recv, orig, id, key) != 0) {
                    fail(r, "bad dbkey placeholder");
                    return len;
                }
                grow_append(out, &len, cap, key, DIALBACK_KEY_LEN);
                p = end + 1;
                continue;
            }
        }
        grow_append(out, &len, cap, p, 1);
        p++;
    }
    return len;
}

/* ---- driving the engine ---- */

static void drain(run_t *r);

static const pol_t *find_pol(run_t *r, const char *domain)
{
    for (int i = 0; i < r->npol; i++)
        if (strcasecmp(r->pol[i].domain, domain) == 0)
            return &r->pol[i];
    return NULL;
}

static void record(run_t *r, const stream_action_t *a)
{
    if (r->nacts == r->cap_acts) {
        r->cap_acts = r->cap_acts ? r->cap_acts * 2 : 16;
        r->acts = realloc(r->acts, (size_t)r->cap_acts * sizeof(rec_t));
        if (!r->acts)
            abort();
    }
    rec_t *x = &r->acts[r->nacts++];
    memset(x, 0, sizeof(*x));
    x->a = *a;
#define CP(f)                                                                                      \
    if (a->f)                                                                                      \
        snprintf(x->f, sizeof(x->f), "%s", a->f);
    CP(from)
    CP(to)
    CP(id)
    CP(key)
    CP(domain)
#undef CP
    if (a->condition)
        snprintf(x->cond, sizeof(x->cond), "%s", a->condition);
    if (a->reason)
        snprintf(x->reason, sizeof(x->reason), "%s", a->reason);
    if (a->len) {
        x->data = malloc(a->len);
        memcpy(x->data, a->data, a->len);
        x->len = a->len;
    }
}

static void handle_action(run_t *r, const stream_action_t *a)
{
    switch (a->type) {
    case STREAM_ACT_SEND:
        grow_append(&r->outb, &r->out_len, &r->out_cap, a->data, a->len);
        return;
    case STREAM_ACT_TIMER:
        r->armed = a->deadline_ms;
        return;
    case STREAM_ACT_NEED_POLICY: {
        if (stream_kind(r->s) == STREAM_COMPONENT && r->comp_set &&
            strcasecmp(a->domain, r->comp_domain) == 0) {
            char d[256];
            snprintf(d, sizeof(d), "%s", a->domain);
            stream_component_secret(r->s, d, true, r->comp_secret, strlen(r->comp_secret));
            return;
        }
        const pol_t *p = find_pol(r, a->domain);
        if (p) {
            char d[256];
            snprintf(d, sizeof(d), "%s", a->domain);
            stream_policy(r->s, d, p->allow, &p->rules);
            return;
        }
        break;
    }
    default:
        break;
    }
    record(r, a);
}

static void drain(run_t *r)
{
    stream_action_t a;
    /* Actions may trigger calls (auto policy) that queue more: loop until quiet. */
    while (stream_next_action(r->s, &a))
        handle_action(r, &a);
}

/* Feed pending input in the current mode's pieces until the engine stops taking it. */
static void pump(run_t *r)
{
    size_t piece;
    for (int guard = 0; r->in_len > 0 && guard < 1000000; guard++) {
        drain(r);
        switch (r->mode.kind) {
        case MODE_CHUNK:
            piece = r->mode.n;
            break;
        default:
            piece = r->in_len;
            break;
        }
        if (piece > r->in_len)
            piece = r->in_len;
        int n = stream_feed(r->s, r->in, piece, r->now);
        if (n < 0) {
            fail(r, "stream_feed returned %d", n);
            return;
        }
        memmove(r->in, r->in + n, r->in_len - (size_t)n);
        r->in_len -= (size_t)n;
        if (n == 0) {
            /* Nothing taken: either waiting for an event or a stop with actions to drain. */
            stream_action_t a;
            if (!stream_next_action(r->s, &a))
                break;
            handle_action(r, &a);
        }
    }
    drain(r);
    if (r->pool && r->s)
        stream_park(r->s);
}

static void feed_segment(run_t *r, const uint8_t *d, size_t n)
{
    if (r->mode.kind == MODE_SPLIT && r->mode.n < n) {
        grow_append(&r->in, &r->in_len, &r->in_cap, d, r->mode.n);
        pump(r);
        grow_append(&r->in, &r->in_len, &r->in_cap, d + r->mode.n, n - r->mode.n);
        pump(r);
        return;
    }
    grow_append(&r->in, &r->in_len, &r->in_cap, d, n);
    pump(r);
}

/* ---- matching output ---- */

static bool id_seen(run_t *r, const char *id)
{
    for (int i = 0; i < r->nids; i++)
        if (strcmp(r->ids[i], id) == 0)
            return true;
    return false;
}

/* Match expected text (with {id}, {any}, {dbkey...}) against the front of the output. */
static void match_out(run_t *r, const char *expect)
{
    uint8_t *exp = NULL;
    size_t cap = 0, pos = 0;
    const char *p = expect;
    bool header_line = strstr(expect, "<stream:stream") != NULL;
    while (*p && !r->failed) {
        if (strncmp(p, "{id}", 4) == 0) {
            /* Our ids: 32 lowercase hex digits, never one seen before in this run. */
            char id[40];
            size_t k = 0;
            while (pos + k < r->out_len && k < 32 && hexval(r->outb[pos + k]) >= 0 &&
                   !isupper(r->outb[pos + k]))
                k++;
            if (k != 32) {
                fail(r, "expected a 32-hex-digit id at output offset %zu", pos);
                break;
            }
            memcpy(id, r->outb + pos, 32);
            id[32] = '\0';
            if (strcmp(id, stream_id(r->s)) != 0) {
                fail(r, "id %s is not the stream's id %s", id, stream_id(r->s));
                break;
            }
            /* A header must carry an id never used before (RFC 6120 §4.7.3: new after every
               restart); elsewhere {id} is the current one. */
            if (header_line) {
                if (id_seen(r, id)) {
                    fail(r, "stream id %s reused in a new header", id);
                    break;
                }
                if (r->nids < MAX_IDS)
                    snprintf(r->ids[r->nids++], 40, "%s", id);
            }
            pos += 32;
            p += 4;
            continue;
        }
        /* a literal run up to the next placeholder */
        const char *q = p;
        while (*q && strncmp(q, "{id}", 4) != 0)
            q++;
        char *lit = strndup(p, (size_t)(q - p));
        size_t n = expand(r, lit, &exp, &cap, true);
        free(lit);
        if (pos + n > r->out_len || memcmp(r->outb + pos, exp, n) != 0) {
            size_t have = r->out_len - pos;
            fail(r, "output mismatch\n  expected: %.*s\n  got:      %.*s", (int)n, (char *)exp,
                 (int)(have > 400 ? 400 : have), (char *)r->outb + pos);
            break;
        }
        pos += n;
        p = q;
    }
    free(exp);
    if (!r->failed) {
        memmove(r->outb, r->outb + pos, r->out_len - pos);
        r->out_len -= pos;
    }
}

static void expect_action(run_t *r, char *rest)
{
    char *p = rest;
    char *what = next_word(&p);
    if (!what) {
        fail(r, "expect what?");
        return;
    }
    if (strcmp(what, "nothing") == 0) {
        if (r->nacts > 0)
            fail(r, "unexpected action %s (%s %s %s)", stream_action_name(r->acts[0].a.type),
                 r->acts[0].from, r->acts[0].to, r->acts[0].cond);
        else if (r->out_len > 0)
            fail(r, "unexpected output: %.*s", (int)(r->out_len > 300 ? 300 : r->out_len),
                 (char *)r->outb);
        return;
    }
    if (r->nacts == 0) {
        fail(r, "expected action %s, none pending", what);
        return;
    }
    rec_t *x = &r->acts[0];
    const char *got = stream_action_name(x->a.type);
    const char *name = strcmp(what, "closed") == 0 ? "close" : what;
    if (strcmp(name, got) != 0) {
        fail(r, "expected action %s, got %s (%s %s %s %s)", what, got, x->from, x->to, x->cond,
             x->reason);
        return;
    }
    char *w;
    const char *want[6] = {0};
    int nw = 0;
    int maxw = x->a.type == STREAM_ACT_STANZA ? 2 : x->a.type == STREAM_ACT_BOUNCE ? 3 : 5;
    while (nw < maxw && (w = next_word(&p)))
        want[nw++] = w;
    const char *rest_bytes = p; /* for stanza/bounce: the expected serialization */
    switch (x->a.type) {
    case STREAM_ACT_START_TLS:
        if (nw < 1 || strcmp(want[0], x->a.tls_server ? "server" : "client") != 0)
            fail(r, "start-tls role mismatch");
        if (nw >= 2 && strcasecmp(want[1], x->domain) != 0)
            fail(r, "start-tls domain %s, want %s", x->domain, want[1]);
        break;
    case STREAM_ACT_NEED_POLICY:
        if (nw < 1 || strcasecmp(want[0], x->domain) != 0)
            fail(r, "need-policy domain %s", x->domain);
        break;
    case STREAM_ACT_VERIFY:
        if (nw < 4 || strcmp(want[0], x->from) || strcmp(want[1], x->to) || strcmp(want[3], x->key))
            fail(r, "verify mismatch: got %s %s %s %s", x->from, x->to, x->id, x->key);
        else if (strcmp(want[2], "{id}") == 0 ? strcmp(x->id, stream_id(r->s)) != 0
                                              : strcmp(want[2], x->id) != 0)
            fail(r, "verify id %s", x->id);
        break;
    case STREAM_ACT_VERIFY_RESULT:
        if (nw < 4 || strcmp(want[0], x->from) || strcmp(want[1], x->to) ||
            strcmp(want[2], x->id) ||
            strcmp(want[3], x->a.result == STREAM_VERIFY_VALID     ? "valid"
                            : x->a.result == STREAM_VERIFY_INVALID ? "invalid"
                                                                   : "error"))
            fail(r, "verify-result mismatch: %s %s %s %d", x->from, x->to, x->id, x->a.result);
        else if (nw >= 5 && strcmp(want[4], x->cond) != 0)
            fail(r, "verify-result condition %s", x->cond);
        break;
    case STREAM_ACT_STANZA:
        if (nw < 2 || strcmp(want[0], x->from) || strcmp(want[1], x->to)) {
            fail(r, "stanza addressing %s -> %s", x->from, x->to);
            break;
        }
        if (*rest_bytes) {
            uint8_t *e = NULL;
            size_t cap = 0, n;
            while (*rest_bytes == ' ')
                rest_bytes++;
            n = expand(r, rest_bytes, &e, &cap, false);
            if (n != x->len || memcmp(e, x->data, n) != 0)
                fail(r, "stanza bytes\n  expected: %.*s\n  got:      %.*s", (int)n, (char *)e,
                     (int)x->len, (char *)x->data);
            free(e);
        }
        break;
    case STREAM_ACT_BOUNCE:
        if (nw < 1 || strcmp(want[0], x->cond) != 0)
            fail(r, "bounce condition %s", x->cond);
        else if (nw >= 3 && (strcmp(want[1], x->from) || strcmp(want[2], x->to)))
            fail(r, "bounce pair %s %s", x->from, x->to);
        break;
    case STREAM_ACT_AUTHENTICATED:
        if (nw < 3 || strcmp(want[0], x->from) || strcmp(want[1], x->to) ||
            strcmp(want[2], stream_auth_name(x->a.method)))
            fail(r, "authenticated %s %s %s", x->from, x->to, stream_auth_name(x->a.method));
        break;
    case STREAM_ACT_PAIR_FAILED:
        if (nw < 3 || strcmp(want[0], x->from) || strcmp(want[1], x->to) ||
            strcmp(want[2], x->cond))
            fail(r, "pair-failed %s %s %s", x->from, x->to, x->cond);
        break;
    case STREAM_ACT_CLOSE:
        if (nw < 1 || (strcmp(want[0], x->cond) != 0 && strcmp(want[0], x->reason) != 0))
            fail(r, "closed with condition '%s' reason '%s', want %s", x->cond, x->reason,
                 nw ? want[0] : "?");
        if (stream_state(r->s) != STREAM_S_CLOSED)
            fail(r, "close action but state %s", stream_state_name(stream_state(r->s)));
        break;
    default:
        break;
    }
    free(x->data);
    memmove(&r->acts[0], &r->acts[1], (size_t)(r->nacts - 1) * sizeof(rec_t));
    r->nacts--;
}

/* ---- line interpreter ---- */

static void do_config(run_t *r, char *p)
{
    char *w = next_word(&p);
    const char *v;
    if (!w) {
        fail(r, "empty config");
        return;
    }
    if (strcmp(w, "policy") == 0) {
        char *d = next_word(&p), *verdict = next_word(&p);
        if (!d || !verdict || r->npol == MAX_POL) {
            fail(r, "config policy DOMAIN allow|refuse [rules]");
            return;
        }
        pol_t *x = &r->pol[r->npol++];
        snprintf(x->domain, sizeof(x->domain), "%s", d);
        x->allow = strcmp(verdict, "allow") == 0;
        x->rules = r->cfg.rules;
        parse_rules(r, &p, &x->rules);
        return;
    }
    if (strcmp(w, "rules") == 0) {
        parse_rules(r, &p, &r->cfg.rules);
        return;
    }
    if (strcmp(w, "component") == 0) {
        char *d = next_word(&p), *sec = next_word(&p);
        if (!d || !sec) {
            fail(r, "config component DOMAIN SECRET");
            return;
        }
        snprintf(r->comp_domain, sizeof(r->comp_domain), "%s", d);
        snprintf(r->comp_secret, sizeof(r->comp_secret), "%s", sec);
        r->comp_set = true;
        return;
    }
    for (; w; w = next_word(&p)) {
        if ((v = kv(w, "kind"))) {
            r->cfg.kind = strcmp(v, "out") ? strcmp(v, "component") ? STREAM_IN : STREAM_COMPONENT
                                           : STREAM_OUT;
        } else if ((v = kv(w, "hosted"))) {
            char tmp[1024], *q = tmp, *d;
            snprintf(tmp, sizeof(tmp), "%s", v);
            r->cfg.n_hosted = 0;
            while ((d = strsep(&q, ",")) && r->cfg.n_hosted < MAX_HOSTED) {
                snprintf(r->hosted_store[r->cfg.n_hosted], 256, "%s", d);
                r->hosted[r->cfg.n_hosted] = r->hosted_store[r->cfg.n_hosted];
                r->cfg.n_hosted++;
            }
            r->cfg.hosted = r->hosted;
        } else if ((v = kv(w, "secret"))) {
            r->secret_len = strlen(v) < sizeof(r->secret) ? strlen(v) : sizeof(r->secret);
            memcpy(r->secret, v, r->secret_len);
        } else if ((v = kv(w, "local"))) {
            snprintf(r->local, sizeof(r->local), "%s", v);
        } else if ((v = kv(w, "remote"))) {
            snprintf(r->remote, sizeof(r->remote), "%s", v);
        } else if ((v = kv(w, "bidi"))) {
            r->cfg.offer_bidi = parse_bool(v);
        } else if ((v = kv(w, "request_bidi"))) {
            r->cfg.request_bidi = parse_bool(v);
        } else if ((v = kv(w, "cert_skip"))) {
            r->cfg.dialback_cert_skip = parse_bool(v);
        } else if ((v = kv(w, "direct_tls"))) {
            r->cfg.direct_tls = parse_bool(v);
        } else if ((v = kv(w, "verify_only"))) {
            r->cfg.verify_only = parse_bool(v);
        } else if ((v = kv(w, "max_stanza_bytes"))) {
            r->cfg.limits.max_stanza_bytes = (uint32_t)strtoul(v, NULL, 10);
        } else if ((v = kv(w, "max_stanza_bytes_preauth"))) {
            r->cfg.limits.max_stanza_bytes_preauth = (uint32_t)strtoul(v, NULL, 10);
        } else if ((v = kv(w, "max_domain_pairs"))) {
            r->cfg.limits.max_domain_pairs = (uint32_t)strtoul(v, NULL, 10);
        } else if ((v = kv(w, "max_queued_stanzas"))) {
            r->cfg.limits.max_queued_stanzas = (uint32_t)strtoul(v, NULL, 10);
        } else if ((v = kv(w, "establishment_timeout"))) {
            r->cfg.limits.establishment_timeout_s = (uint32_t)strtoul(v, NULL, 10);
        } else if ((v = kv(w, "inactivity_timeout"))) {
            r->cfg.limits.inactivity_timeout_s = (uint32_t)strtoul(v, NULL, 10);
        } else if ((v = kv(w, "keepalive_interval"))) {
            r->cfg.limits.keepalive_interval_s = (uint32_t)strtoul(v, NULL, 10);
        } else {
            fail(r, "unknown config %s", w);
        }
    }
}

static void ensure_stream(run_t *r)
{
    if (r->s || r->failed)
        return;
    r->cfg.random = rng_fill;
    r->cfg.random_ctx = &r->rng;
    r->cfg.secret = r->secret;
    r->cfg.secret_len = r->secret_len;
    r->cfg.local = r->local[0] ? r->local : NULL;
    r->cfg.remote = r->remote[0] ? r->remote : NULL;
    r->cfg.now_ms = r->now;
    r->cfg.xml_pool = r->pool;
    int rc = stream_new(&r->s, &r->cfg);
    if (rc != 0)
        fail(r, "stream_new: %s", fg_strerror(rc));
}

static void do_event(run_t *r, char *p)
{
    char *w = next_word(&p);
    if (!w) {
        fail(r, "event what?");
        return;
    }
    if (strcmp(w, "tls-up") == 0) {
        bool valid = false;
        const char *names[16];
        char store[1024];
        size_t n = 0;
        store[0] = '\0';
        for (char *x; (x = next_word(&p));) {
            const char *v;
            if ((v = kv(x, "cert")))
                valid = strcmp(v, "valid") == 0;
            else if ((v = kv(x, "names"))) {
                snprintf(store, sizeof(store), "%s", v);
                char *q = store, *d;
                while ((d = strsep(&q, ",")) && n < 16)
                    names[n++] = d;
            }
        }
        int rc = stream_tls_up(r->s, names, n, valid, r->now);
        if (rc != 0)
            fail(r, "stream_tls_up: %s", fg_strerror(rc));
    } else if (strcmp(w, "tls-failed") == 0) {
        stream_tls_failed(r->s);
    } else if (strcmp(w, "policy") == 0) {
        char *d = next_word(&p), *verdict = next_word(&p);
        peer_rules_t rules = r->cfg.rules;
        if (!d || !verdict) {
            fail(r, "event policy DOMAIN allow|refuse");
            return;
        }
        parse_rules(r, &p, &rules);
        int rc = stream_policy(r->s, d, strcmp(verdict, "allow") == 0, &rules);
        if (rc != 0)
            fail(r, "stream_policy: %s", fg_strerror(rc));
    } else if (strcmp(w, "component-secret") == 0) {
        char *d = next_word(&p), *sec = next_word(&p);
        if (!d || !sec) {
            fail(r, "event component-secret DOMAIN SECRET|refuse");
            return;
        }
        bool refuse = strcmp(sec, "refuse") == 0;
        stream_component_secret(r->s, d, !refuse, sec, refuse ? 0 : strlen(sec));
    } else if (strcmp(w, "verify") == 0) {
        char *from = next_word(&p), *to = next_word(&p), *res = next_word(&p);
        char *cond = next_word(&p);
        if (!from || !to || !res) {
            fail(r, "event verify FROM TO valid|invalid|error [COND]");
            return;
        }
        stream_verify_t v = strcmp(res, "valid") == 0     ? STREAM_VERIFY_VALID
                            : strcmp(res, "invalid") == 0 ? STREAM_VERIFY_INVALID
                                                          : STREAM_VERIFY_ERROR;
        char id[200];
        snprintf(id, sizeof(id), "%s", stream_id(r->s));
        int rc = stream_verify_result(r->s, from, to, id, v, cond);
        if (rc != 0)
            fail(r, "stream_verify_result: %s", fg_strerror(rc));
    } else if (strcmp(w, "verify-late") == 0) {
        /* an answer the stream must ignore: no error, no output */
        char *from = next_word(&p), *to = next_word(&p);
        char id[200];
        snprintf(id, sizeof(id), "%s", stream_id(r->s));
        if (!from || !to ||
            stream_verify_result(r->s, from, to, id, STREAM_VERIFY_VALID, NULL) != FG_ENOTFOUND)
            fail(r, "a late verify answer was not ignored");
    } else if (strcmp(w, "connected") == 0) {
        int rc = stream_out_connected(r->s, r->now);
        if (rc != 0)
            fail(r, "stream_out_connected: %s", fg_strerror(rc));
    } else if (strcmp(w, "connect-failed") == 0) {
        char *how = next_word(&p);
        stream_out_connect_failed(r->s, how && strcmp(how, "dns") == 0);
    } else if (strcmp(w, "send") == 0) {
        char *from = next_word(&p), *to = next_word(&p);
        uint8_t *b = NULL;
        size_t cap = 0;
        while (*p == ' ')
            p++;
        size_t n = expand(r, p, &b, &cap, true);
        char *want = NULL;
        char *eq = strstr(p, " => ");
        (void)eq;
        (void)want;
        int rc = from && to ? stream_send(r->s, from, to, b, n) : FG_EPARSE;
        free(b);
        if (rc != 0)
            fail(r, "stream_send: %s", fg_strerror(rc));
    } else if (strcmp(w, "send-refused") == 0) {
        char *from = next_word(&p), *to = next_word(&p);
        int rc = stream_send(r->s, from, to, p, strlen(p));
        if (rc == 0)
            fail(r, "stream_send accepted what should be refused");
    } else if (strcmp(w, "add-pair") == 0) {
        char *l = next_word(&p), *rem = next_word(&p);
        int rc = stream_out_add_pair(r->s, l, rem);
        if (rc != 0)
            fail(r, "stream_out_add_pair: %s", fg_strerror(rc));
    } else if (strcmp(w, "verify-request") == 0) {
        char *from = next_word(&p), *to = next_word(&p), *id = next_word(&p), *key = next_word(&p);
        int rc = stream_out_verify(r->s, from, to, id, key);
        if (rc != 0)
            fail(r, "stream_out_verify: %s", fg_strerror(rc));
    } else if (strcmp(w, "close") == 0) {
        char *cond = next_word(&p);
        stream_close(r->s, cond, NULL);
    } else if (strcmp(w, "transport-closed") == 0) {
        stream_transport_closed(r->s);
    } else {
        fail(r, "unknown event %s", w);
    }
    drain(r);
    pump(r);
}

static void do_time(run_t *r, char *p)
{
    char *w = next_word(&p);
    if (!w || *w != '+') {
        fail(r, "time +N[s|ms]");
        return;
    }
    char *end;
    uint64_t v = strtoull(w + 1, &end, 10);
    uint64_t ms = strcmp(end, "ms") == 0 ? v : v * 1000;
    uint64_t target = r->now + ms;
    /* Fire the armed timer as often as it comes due within the interval, like a real loop. */
    for (int guard = 0; r->armed && r->armed <= target && stream_state(r->s) != STREAM_S_CLOSED;
         guard++) {
        if (guard > 10000) {
            fail(r, "timer re-armed in the past forever");
            return;
        }
        if (r->armed > r->now)
            r->now = r->armed;
        r->armed = 0;
        stream_tick(r->s, r->now);
        drain(r);
    }
    r->now = target;
}

static bool run_once(run_t *r)
{
    uint8_t *b = NULL;
    size_t cap = 0;
    for (int i = 0; i < r->nlines && !r->failed; i++) {
        char *line = strdup(r->lines[i]);
        char *p = line;
        r->line = i + 1;
        char *cmd = next_word(&p);
        if (!cmd || cmd[0] == '#') {
            free(line);
            continue;
        }
        if (strcmp(cmd, "config") == 0) {
            if (r->s)
                fail(r, "config after the stream started");
            else
                do_config(r, p);
        } else {
            ensure_stream(r);
            if (r->failed) {
                free(line);
                break;
            }
            if (strcmp(cmd, "in") == 0 || strcmp(cmd, "in-repeat") == 0) {
                size_t times = 1;
                if (strcmp(cmd, "in-repeat") == 0) {
                    char *t = next_word(&p);
                    times = t ? strtoul(t, NULL, 10) : 1;
                }
                if (*p == ' ')
                    p++;
                size_t n = expand(r, p, &b, &cap, true);
                uint8_t *seg = NULL;
                size_t slen = 0, scap = 0;
                for (size_t k = 0; k < times; k++)
                    grow_append(&seg, &slen, &scap, b, n);
                feed_segment(r, seg, slen);
                free(seg);
            } else if (strcmp(cmd, "out") == 0) {
                if (*p == ' ')
                    p++;
                match_out(r, p);
            } else if (strcmp(cmd, "expect") == 0) {
                expect_action(r, p);
            } else if (strcmp(cmd, "event") == 0) {
                do_event(r, p);
            } else if (strcmp(cmd, "time") == 0) {
                do_time(r, p);
            } else if (strcmp(cmd, "state") == 0) {
                char *want = next_word(&p);
                if (!want || strcmp(want, stream_state_name(stream_state(r->s))) != 0)
                    fail(r, "state is %s, want %s", stream_state_name(stream_state(r->s)),
                         want ? want : "?");
            } else {
                fail(r, "unknown command %s", cmd);
            }
        }
        free(line);
    }
    free(b);
    r->line = r->nlines;
    if (!r->failed && r->nacts > 0)
        fail(r, "unchecked action at end: %s (%s %s %s %s)", stream_action_name(r->acts[0].a.type),
             r->acts[0].from, r->acts[0].to, r->acts[0].cond, r->acts[0].reason);
    if (!r->failed && r->out_len > 0)
        fail(r, "unchecked output at end: %.*s", (int)(r->out_len > 300 ? 300 : r->out_len),
             (char *)r->outb);
    return !r->failed;
}

static void reset_run(run_t *r)
{
    stream_free(r->s);
    r->s = NULL;
    for (int i = 0; i < r->nacts; i++)
        free(r->acts[i].data);
    free(r->acts);
    free(r->in);
    free(r->outb);
    char **lines = r->lines;
    int nlines = r->nlines;
    const char *file = r->file;
    xml_pool_t *pool = r->pool;
    memset(r, 0, sizeof(*r));
    r->lines = lines;
    r->nlines = nlines;
    r->file = file;
    r->pool = pool;
    stream_config_default(&r->cfg);
    r->rng = 0x9e3779b9u;
    r->now = 1000000;
}

static size_t longest_input(run_t *r)
{
    size_t m = 0;
    for (int i = 0; i < r->nlines; i++)
        if (strncmp(r->lines[i], "in ", 3) == 0 && strlen(r->lines[i]) > m)
            m = strlen(r->lines[i]);
    return m;
}

static int run_file(const char *path, xml_pool_t *pool)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }
    run_t r;
    memset(&r, 0, sizeof(r));
    r.file = path;
    r.lines = calloc(MAX_LINES, sizeof(char *));
    char buf[65536];
    while (fgets(buf, sizeof(buf), f) && r.nlines < MAX_LINES) {
        size_t n = strlen(buf);
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        r.lines[r.nlines++] = strdup(buf);
    }
    fclose(f);

    int failures = 0, runs = 0;
    mode_t_ modes[8] = {{MODE_WHOLE, 0}, {MODE_CHUNK, 1},  {MODE_CHUNK, 2},  {MODE_CHUNK, 3},
                        {MODE_CHUNK, 7}, {MODE_CHUNK, 13}, {MODE_CHUNK, 64}, {MODE_CHUNK, 512}};
    size_t splits = longest_input(&r);
    size_t total = 2 * (8 + splits);
    for (size_t i = 0; i < total && failures <= 3; i++) {
        size_t m = i / 2;
        mode_t_ mode = m < 8 ? modes[m] : (mode_t_){MODE_SPLIT, m - 8 + 1};
        r.pool = i % 2 ? pool : NULL;
        reset_run(&r);
        r.mode = mode;
        runs++;
        if (!run_once(&r)) {
            failures++;
            fprintf(stderr, "FAIL [%s %zu%s] %s\n",
                    mode.kind == MODE_WHOLE   ? "whole"
                    : mode.kind == MODE_CHUNK ? "chunk"
                                              : "split",
                    mode.n, r.pool ? ", parked" : "", r.err);
        }
    }
    r.pool = NULL;
    reset_run(&r);
    for (int i = 0; i < r.nlines; i++)
        free(r.lines[i]);
    free(r.lines);
    if (failures == 0)
        printf("ok   %s (%d feeding modes)\n", path, runs);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    int bad = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s TRANSCRIPT...\n", argv[0]);
        return 2;
    }
    xml_pool_t *pool;
    if (xml_pool_new(&pool, 4, 0) != 0) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    for (int i = 1; i < argc; i++)
        bad += run_file(argv[i], pool);
    xml_pool_stats_t ps;
    xml_pool_stats(pool, &ps);
    xml_pool_free(pool);
    /* A transcript whose stream never rests between stanzas parks nothing: told, not failed. */
    printf("parked runs: %llu parser instances lent, %llu built\n", (unsigned long long)ps.lent,
           (unsigned long long)ps.built);
    return bad ? 1 : 0;
}
