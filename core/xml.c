#include "core/xml.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* Debian's expat is built with XML_DTD, but expat.h only declares the billion-laughs and
   allocation-tracker setters when the including code defines it too. */
#ifndef XML_DTD
#define XML_DTD 1
#endif
#include <expat.h>

/* Separator between namespace URI, local name and prefix in the names expat reports. U+0001 is
   not an XML 1.0 character (not even as a reference), so no URI or name can contain it. */
#define NS_SEP '\x01'

/* expat is fed at most this much per call, so a peer cannot make it buffer one huge token before
   the limits below are checked between slices. */
#define FEED_SLICE 16384

/* An expat instance and its accounts. Separate from the parser because a pool lends it to one
   parser after another; its heap blocks name it as their owner, so it must outlive them. */
typedef struct xml_expat {
    XML_Parser x;
    size_t bytes; /* expat's heap now */
    uint64_t mallocs;
    uint64_t fed; /* bytes given to XML_Parse since created or reset: its byte index at rest */
    unsigned long salt;
    char *sig; /* pooled: the start tag it sits inside (synth_header), sig_len bytes */
    size_t sig_len;
    /* With a pool: the stanza trees of the parser it is lent to are built here, so they are
       written into memory as warm as the instance itself. NULL for a private instance. */
    stanza_arena_t *arena;
} xml_expat_t;

struct xml_pool {
    xml_expat_t **idle; /* a stack: the top was returned last and is the warmest */
    unsigned n, max;
    size_t max_bytes;
    uint64_t lent, built, dropped;
};

struct xml_parser {
    XML_Parser x; /* e->x, or NULL while it holds no instance */
    xml_expat_t *e;
    xml_pool_t *pool;
    char *sig; /* with a pool: synth_header() of the header, made at the first park */
    size_t sig_len;
    uint64_t e_mallocs0; /* e->mallocs when it was lent to this parser */
    xml_handler_t handler;
    void *ctx;

    stanza_arena_t *own;       /* the header (and, without a pool, the stanzas above it) */
    stanza_mark_t header_mark; /* own's position just above the stream header */
    stanza_arena_t *arena;     /* where stanzas are built: own, or the lent instance's */
    size_t arena_max;
    stanza_t *header;
    stanza_t *cur;       /* innermost open element of the current stanza */
    buf_t text;          /* character data not yet attached to cur */
    unsigned depth;      /* open elements, the stream header included */
    stanza_nsdecl_t *pd; /* declarations for the next start tag (max_attrs of them) */
    unsigned npd;

    uint32_t max_stanza, max_buffered, max_depth, max_attrs, max_name;

    /* Stream byte offsets since the last reset: XML_GetCurrentByteIndex() + xdelta. */
    uint64_t fed;          /* bytes handed to expat */
    uint64_t stanza_start; /* first byte of the open depth-1 element */
    uint64_t boundary;     /* end of the last thing that completed outside a stanza */
    uint64_t pause_end;    /* end of the event the handler paused at */
    size_t held;           /* bytes expat still holds after a pause */

    /* Raw bytes of the stanza being parsed. The slice expat is working on is the caller's memory;
       what an unfinished stanza (or start tag) needs from earlier slices is copied to `raw`, which
       holds stream bytes [raw_base, raw_base + raw.len). */
    const char *slice;
    uint64_t slice_base;
    buf_t raw;
    uint64_t raw_base;
    bool hdr_std_db, hdr_std_stream; /* the header binds db: and stream: the standard way */
    bool portable;                   /* no prefix of the open stanza comes from the header */
    bool paused;
    bool closed;

    /* Hibernation (xml_hibernate): x is NULL while the stream is open and idle. On wake-up expat
       is fed a synthetic header first; `xdelta` maps its byte indexes back to stream offsets
       (stream offset = expat index + xdelta, modulo 2^64), and `waking` hides that header from
       the handlers. */
    uint64_t xdelta;
    bool waking;
    uint64_t trim_fed; /* `fed` at the previous xml_trim(); UINT64_MAX after a reset */
    uint64_t wakes;
    unsigned long salt; /* expat's hash salt for this stream */

    xml_reason_t reason;
    const char *detail;
    int err;

    uint64_t mallocs; /* this parser's own, and what its borrowed instances did for it */
    uint64_t stanzas;
};

/* ---- expat's allocations, counted per parser ---- */

/* Each block carries its owner and size, so realloc/free account to the right instance; malloc
   learns its owner from the thread, set around every expat call. */
typedef struct {
    xml_expat_t *owner;
    size_t size;
} mhdr_t;

static _Thread_local xml_expat_t *tl_owner;

static void *mm_malloc(size_t n)
{
    mhdr_t *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->owner = tl_owner;
    h->size = n;
    if (h->owner) {
        h->owner->bytes += n;
        h->owner->mallocs++;
    }
    return h + 1;
}

static void *mm_realloc(void *ptr, size_t n)
{
    if (!ptr)
        return mm_malloc(n);
    mhdr_t *h = (mhdr_t *)ptr - 1;
    xml_expat_t *o = h->owner;
    size_t old = h->size;
    mhdr_t *nh = realloc(h, sizeof(*nh) + n);
    if (!nh)
        return NULL;
    nh->size = n;
    if (o) {
        o->bytes = o->bytes - old + n;
        o->mallocs++;
    }
    return nh + 1;
}

static void mm_free(void *ptr)
{
    if (!ptr)
        return;
    mhdr_t *h = (mhdr_t *)ptr - 1;
    if (h->owner)
        h->owner->bytes -= h->size;
    free(h);
}

static const XML_Memory_Handling_Suite mm_suite = {mm_malloc, mm_realloc, mm_free};

/* ---- errors ---- */

static const char *const reason_names[] = {
    "none",           "not-well-formed", "unsupported-encoding", "restricted-xml",
    "stanza-too-big", "limit",           "stream-reopen",        "out-of-memory",
};

const char *xml_reason_name(xml_reason_t r)
{
    return (unsigned)r < sizeof(reason_names) / sizeof(reason_names[0]) ? reason_names[r] : "?";
}

const char *xml_reason_condition(xml_reason_t r)
{
    switch (r) {
    case XML_REASON_NONE:
        return NULL;
    case XML_REASON_NOT_WELL_FORMED:
        return "not-well-formed";
    case XML_REASON_UNSUPPORTED_ENCODING:
        return "unsupported-encoding";
    case XML_REASON_RESTRICTED:
        return "restricted-xml";
    case XML_REASON_STANZA_TOO_BIG:
    case XML_REASON_LIMIT:
        return "policy-violation";
    case XML_REASON_STREAM_REOPEN:
        return "invalid-xml";
    case XML_REASON_NOMEM:
        return "resource-constraint";
    }
    return "undefined-condition";
}

xml_reason_t xml_error(const xml_parser_t *p)
{
    return p->reason;
}

const char *xml_error_detail(const xml_parser_t *p)
{
    return p->detail ? p->detail : "";
}

/* Record the first error and stop expat for good (until xml_reset). */
static void fail(xml_parser_t *p, xml_reason_t reason, const char *detail)
{
    if (p->reason)
        return;
    p->reason = reason;
    p->detail = detail;
    switch (reason) {
    case XML_REASON_STANZA_TOO_BIG:
    case XML_REASON_LIMIT:
        p->err = FG_ELIMIT;
        break;
    case XML_REASON_NOMEM:
        p->err = -ENOMEM;
        break;
    default:
        p->err = FG_EPARSE;
    }
    if (p->x)
        XML_StopParser(p->x, XML_FALSE);
}

static void fail_errno(xml_parser_t *p, int err, const char *what)
{
    if (err == -ENOMEM)
        fail(p, XML_REASON_NOMEM, what);
    else
        fail(p, XML_REASON_STANZA_TOO_BIG, what);
}

/* Translate expat's verdict once, here. */
static void fail_expat(xml_parser_t *p)
{
    enum XML_Error code = XML_GetErrorCode(p->x);
    const char *detail = XML_ErrorString(code);
    switch (code) {
    case XML_ERROR_NO_MEMORY:
        fail(p, XML_REASON_NOMEM, detail);
        break;
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_BINARY_ENTITY_REF:
    case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_ASYNC_ENTITY:
    case XML_ERROR_PARAM_ENTITY_REF:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
    case XML_ERROR_NOT_STANDALONE:
    case XML_ERROR_AMPLIFICATION_LIMIT_BREACH:
        fail(p, XML_REASON_RESTRICTED, detail);
        break;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        fail(p, XML_REASON_UNSUPPORTED_ENCODING, detail);
        break;
    default:
        fail(p, XML_REASON_NOT_WELL_FORMED, detail);
    }
}

/* ---- positions and limits ---- */

static uint32_t size_limit(const xml_parser_t *p)
{
    return p->max_stanza < p->max_buffered ? p->max_stanza : p->max_buffered;
}

/* The stream offset of expat's current event, whose index counts a synthetic header after a
   wake-up. */
static uint64_t event_start(const xml_parser_t *p)
{
    XML_Index i = XML_GetCurrentByteIndex(p->x);
    return (uint64_t)(i < 0 ? 0 : i) + p->xdelta;
}

static uint64_t event_end(const xml_parser_t *p)
{
    int n = XML_GetCurrentByteCount(p->x);
    return event_start(p) + (uint64_t)(n < 0 ? 0 : n);
}

/* A stanza grows past the maximum: stop before it takes more memory. */
static bool check_stanza_size(xml_parser_t *p, uint64_t end)
{
    if (end - p->stanza_start <= size_limit(p))
        return true;
    fail(p, XML_REASON_STANZA_TOO_BIG, "stanza over the size limit");
    return false;
}

/* ---- raw bytes ---- */

/* Where the bytes still needed start: the open stanza, or the end of the last complete event
   (an unfinished start tag lies after it). */
static uint64_t keep_from(const xml_parser_t *p)
{
    return p->depth >= 2 ? p->stanza_start : p->boundary;
}

/* After expat consumed the slice up to stream offset `upto`: keep in `raw` exactly the bytes from
   keep_from() to upto. 0 or the buffer's error. */
static int raw_keep(xml_parser_t *p, uint64_t upto)
{
    uint64_t from = keep_from(p);
    uint64_t have_end = p->raw_base + p->raw.len;
    if (from >= upto) {
        buf_reset(&p->raw);
        p->raw_base = upto;
        return 0;
    }
    if (from >= have_end || from < p->raw_base) {
        /* Nothing kept is needed any more: start over inside the slice. */
        buf_reset(&p->raw);
        p->raw_base = from;
        have_end = from;
    } else if (from > p->raw_base) {
        buf_consume(&p->raw, (size_t)(from - p->raw_base));
        p->raw_base = from;
    }
    if (upto <= have_end)
        return 0;
    size_t cap = p->raw.cap;
    int ret = buf_append(&p->raw, p->slice + (have_end - p->slice_base), (size_t)(upto - have_end));
    if (p->raw.cap != cap)
        p->mallocs++;
    return ret;
}

/* The raw bytes [start, end) of a stanza that ends inside the current slice. */
static const char *raw_stanza(xml_parser_t *p, uint64_t start, uint64_t end)
{
    if (start >= p->slice_base)
        return p->slice + (start - p->slice_base);
    /* It began in an earlier slice, whose bytes from `start` on are in `raw`: complete it there. */
    uint64_t have_end = p->raw_base + p->raw.len;
    if (start < p->raw_base || have_end < p->slice_base)
        return NULL;
    if (end > have_end) {
        size_t cap = p->raw.cap;
        int ret =
            buf_append(&p->raw, p->slice + (have_end - p->slice_base), (size_t)(end - have_end));
        if (p->raw.cap != cap)
            p->mallocs++;
        if (ret < 0)
            return NULL;
    }
    return (const char *)p->raw.data + (start - p->raw_base);
}

/* Whether a prefix used inside the open stanza is bound inside it (or is a standard one). */
static bool prefix_local(const xml_parser_t *p, const stanza_t *e, const char *prefix)
{
    if (!prefix || strcmp(prefix, "xml") == 0)
        return true;
    for (; e; e = e->parent)
        for (uint16_t i = 0; i < e->ndecls; i++)
            if (e->decls[i].prefix && strcmp(e->decls[i].prefix, prefix) == 0)
                return true;
    if (strcmp(prefix, "db") == 0)
        return p->hdr_std_db;
    if (strcmp(prefix, "stream") == 0)
        return p->hdr_std_stream;
    return false;
}

/* ---- events ---- */

static bool inactive(const xml_parser_t *p)
{
    return p->reason || p->paused || p->waking;
}

static void emit(xml_parser_t *p, xml_event_t *ev, uint64_t end)
{
    if (p->handler(p->ctx, ev) == XML_CB_STOP && !p->paused) {
        p->paused = true;
        p->pause_end = end;
        XML_StopParser(p->x, XML_TRUE);
    }
}

/* Well-known namespace URIs are shared static strings, so a stanza's tree does not carry copies
   of them. */
#define KNOWN(s)                                                                                   \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }
static const struct {
    const char *uri;
    size_t len;
} known_ns[] = {
    KNOWN(STANZA_NS_SERVER),    KNOWN(STANZA_NS_STREAM),    KNOWN(STANZA_NS_DIALBACK),
    KNOWN(STANZA_NS_STANZAS),   KNOWN(STANZA_NS_STREAMS),   KNOWN(STANZA_NS_TLS),
    KNOWN(STANZA_NS_SASL),      KNOWN(STANZA_NS_XML),       KNOWN(STANZA_NS_CLIENT),
    KNOWN(STANZA_NS_COMPONENT), KNOWN(STANZA_NS_XMPP_ERRS), KNOWN(STANZA_NS_DB_FEATURE),
    KNOWN(STANZA_NS_BIDI_FEAT), KNOWN(STANZA_NS_BIDI),
};

/* The arena of what is being built now: the header's own, a stanza's (which may be lent). */
static stanza_arena_t *build_arena(const xml_parser_t *p)
{
    return p->depth == 0 ? p->own : p->arena;
}

static const char *intern_ns(xml_parser_t *p, const char *uri, size_t len)
{
    if (len == 0)
        return "";
    for (size_t i = 0; i < sizeof(known_ns) / sizeof(known_ns[0]); i++)
        if (known_ns[i].len == len && memcmp(known_ns[i].uri, uri, len) == 0)
            return known_ns[i].uri;
    return stanza_arena_strndup(build_arena(p), uri, len);
}

typedef struct {
    const char *ns, *local, *prefix;
    size_t ns_len, local_len, prefix_len;
} qname_t;

/* Split expat's "uri\1local\1prefix", "uri\1local" or "local". */
static void split_name(const char *s, qname_t *q)
{
    const char *a = strchr(s, NS_SEP);
    if (!a) {
        *q = (qname_t){"", s, NULL, 0, strlen(s), 0};
        return;
    }
    q->ns = s;
    q->ns_len = (size_t)(a - s);
    q->local = a + 1;
    const char *b = strchr(q->local, NS_SEP);
    if (!b) {
        q->local_len = strlen(q->local);
        q->prefix = NULL;
        q->prefix_len = 0;
        return;
    }
    q->local_len = (size_t)(b - q->local);
    q->prefix = b + 1;
    q->prefix_len = strlen(q->prefix);
}

static bool check_name(xml_parser_t *p, const qname_t *q)
{
    if (q->local_len <= p->max_name && q->prefix_len <= p->max_name)
        return true;
    fail(p, XML_REASON_LIMIT, "name longer than the limit");
    return false;
}

/* Move pending character data into a text node of the open element. */
static bool flush_text(xml_parser_t *p)
{
    if (p->text.len == 0 || !p->cur)
        return true;
    int ret = stanza_add_text(p->arena, p->cur, (const char *)p->text.data, p->text.len);
    buf_reset(&p->text);
    if (ret < 0) {
        fail_errno(p, ret, "stanza tree over the memory limit");
        return false;
    }
    return true;
}

static void XMLCALL on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    xml_parser_t *p = ud;
    if (inactive(p))
        return;
    if (p->npd >= p->max_attrs) {
        fail(p, XML_REASON_LIMIT, "too many attributes");
        return;
    }
    size_t plen = prefix ? strlen(prefix) : 0;
    if (plen > p->max_name) {
        fail(p, XML_REASON_LIMIT, "name longer than the limit");
        return;
    }
    stanza_nsdecl_t *d = &p->pd[p->npd];
    stanza_arena_t *a = build_arena(p);
    d->prefix = prefix ? stanza_arena_strndup(a, prefix, plen) : NULL;
    d->uri = uri ? intern_ns(p, uri, strlen(uri)) : "";
    if (stanza_arena_error(a)) {
        fail_errno(p, stanza_arena_error(a), "stanza tree over the memory limit");
        return;
    }
    p->npd++;
}

static stanza_t *build_element(xml_parser_t *p, const qname_t *q, const XML_Char **atts,
                               unsigned natts)
{
    stanza_arena_t *a = build_arena(p);
    stanza_t *e = stanza_arena_alloc(a, sizeof(*e));
    if (!e)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->name = stanza_arena_strndup(a, q->local, q->local_len);
    e->ns = intern_ns(p, q->ns, q->ns_len);
    e->prefix = q->prefix ? stanza_arena_strndup(a, q->prefix, q->prefix_len) : NULL;
    if (natts) {
        e->attrs = stanza_arena_alloc(a, sizeof(stanza_attr_t) * natts);
        if (!e->attrs)
            return NULL;
        for (unsigned i = 0; i < natts; i++) {
            qname_t an;
            split_name(atts[2 * i], &an);
            if (!check_name(p, &an))
                return NULL;
            size_t vlen = strlen(atts[2 * i + 1]);
            stanza_attr_t *at = &e->attrs[i];
            at->name = stanza_arena_strndup(a, an.local, an.local_len);
            at->ns = intern_ns(p, an.ns, an.ns_len);
            at->prefix = an.prefix ? stanza_arena_strndup(a, an.prefix, an.prefix_len) : NULL;
            at->value = stanza_arena_strndup(a, atts[2 * i + 1], vlen);
            at->value_len = (uint32_t)vlen;
        }
        e->nattrs = e->attrs_cap = (uint16_t)natts;
    }
    if (p->npd) {
        e->decls = stanza_arena_alloc(a, sizeof(stanza_nsdecl_t) * p->npd);
        if (!e->decls)
            return NULL;
        memcpy(e->decls, p->pd, sizeof(stanza_nsdecl_t) * p->npd);
        e->ndecls = e->decls_cap = (uint16_t)p->npd;
    }
    return stanza_arena_error(a) ? NULL : e;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_parser_t *p = ud;
    if (inactive(p))
        return;
    unsigned level = p->depth; /* 0: the header, 1: a stanza, 2+: inside one */
    if (level == 1)
        p->stanza_start = event_start(p);
    uint64_t end = event_end(p);
    if (level >= 1 && !check_stanza_size(p, end))
        return;
    if (level > p->max_depth) {
        fail(p, XML_REASON_LIMIT, "elements nested deeper than the limit");
        return;
    }
    qname_t q;
    split_name(name, &q);
    if (!check_name(p, &q))
        return;
    if (level >= 1 && q.local_len == 6 && memcmp(q.local, "stream", 6) == 0 &&
        q.ns_len == sizeof(STANZA_NS_STREAM) - 1 && memcmp(q.ns, STANZA_NS_STREAM, q.ns_len) == 0) {
        fail(p, XML_REASON_STREAM_REOPEN, "stream header inside the stream");
        return;
    }
    unsigned natts = 0;
    while (atts[2 * natts])
        natts++;
    if (natts + p->npd > p->max_attrs) {
        fail(p, XML_REASON_LIMIT, "too many attributes");
        return;
    }
    if (level >= 2 && !flush_text(p))
        return;
    stanza_t *e = build_element(p, &q, atts, natts);
    p->npd = 0;
    if (!e) {
        if (!p->reason)
            fail_errno(p, stanza_arena_error(build_arena(p)), "stanza tree over the memory limit");
        return;
    }
    p->depth++;
    if (level == 0) {
        p->header = e;
        p->header_mark = stanza_arena_mark(p->own);
        p->boundary = end;
        const char *db = stanza_decl(e, "db"), *st = stanza_decl(e, "stream");
        p->hdr_std_db = !db || strcmp(db, STANZA_NS_DIALBACK) == 0;
        p->hdr_std_stream = !st || strcmp(st, STANZA_NS_STREAM) == 0;
        xml_event_t ev = {
            .type = XML_EV_STREAM_OPEN, .el = e, .bytes = (size_t)XML_GetCurrentByteCount(p->x)};
        emit(p, &ev, end);
        return;
    }
    if (level == 1)
        p->portable = true;
    if (level >= 2)
        e->parent = p->cur;
    if (p->portable) {
        bool ok = prefix_local(p, e, e->prefix);
        for (uint16_t i = 0; ok && i < e->nattrs; i++)
            ok = prefix_local(p, e, e->attrs[i].prefix);
        p->portable = ok;
    }
    if (level >= 2) {
        if (p->cur->last)
            p->cur->last->next = e;
        else
            p->cur->first = e;
        p->cur->last = e;
    }
    p->cur = e;
}

/* Forget the last stanza's tree (the memory stays readable until something new is built). */
static void stanza_done(xml_parser_t *p)
{
    if (p->arena == p->own)
        stanza_arena_reset_to(p->own, p->header_mark);
    else
        stanza_arena_reset(p->arena);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xml_parser_t *p = ud;
    if (p->reason || p->waking)
        return;
    uint64_t end = event_end(p);
    if (p->paused) {
        /* expat still reports the end of an empty element whose start tag paused: only the
           self-closing header <stream:stream/> can do that. */
        if (p->depth == 1) {
            p->depth = 0;
            p->closed = true;
            xml_event_t ev = {.type = XML_EV_STREAM_CLOSE, .el = NULL, .bytes = 0};
            p->handler(p->ctx, &ev);
        }
        return;
    }
    p->depth--;
    if (p->depth == 0) {
        p->closed = true;
        p->boundary = end;
        xml_event_t ev = {.type = XML_EV_STREAM_CLOSE,
                          .bytes = (size_t)XML_GetCurrentByteCount(p->x)};
        emit(p, &ev, end);
        return;
    }
    if (!check_stanza_size(p, end) || !flush_text(p))
        return;
    if (p->depth > 1) {
        p->cur = p->cur->parent;
        return;
    }
    stanza_t *st = p->cur;
    p->cur = NULL;
    p->boundary = end;
    p->stanzas++;
    const char *raw = raw_stanza(p, p->stanza_start, end);
    if (!raw) {
        fail(p, XML_REASON_NOMEM, "no room for the raw stanza");
        return;
    }
    xml_event_t ev = {.type = XML_EV_STANZA,
                      .el = st,
                      .bytes = (size_t)(end - p->stanza_start),
                      .raw = raw,
                      .raw_len = (size_t)(end - p->stanza_start),
                      .raw_portable = p->portable};
    emit(p, &ev, end);
    /* The stanza was borrowed until the handler returned; its memory serves the next one. */
    stanza_done(p);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xml_parser_t *p = ud;
    if (inactive(p))
        return;
    uint64_t end = event_end(p);
    if (p->depth <= 1) {
        /* Whitespace keepalives between stanzas: nothing to keep. */
        p->boundary = end;
        return;
    }
    if (!check_stanza_size(p, end))
        return;
    size_t cap = p->text.cap;
    int ret = buf_append(&p->text, s, (size_t)len);
    if (p->text.cap != cap)
        p->mallocs++;
    if (ret < 0)
        fail_errno(p, ret, "text over the size limit");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
    fail(ud, XML_REASON_RESTRICTED, "comment (RFC 6120 §11.1)");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    fail(ud, XML_REASON_RESTRICTED, "processing instruction (RFC 6120 §11.1)");
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    fail(ud, XML_REASON_RESTRICTED, "DOCTYPE (RFC 6120 §11.1)");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int pe, const XML_Char *value,
                                   int value_len, const XML_Char *base, const XML_Char *sysid,
                                   const XML_Char *pubid, const XML_Char *notation)
{
    fail(ud, XML_REASON_RESTRICTED, "entity declaration (RFC 6120 §11.1)");
}

static void XMLCALL on_skipped_entity(void *ud, const XML_Char *name, int pe)
{
    fail(ud, XML_REASON_RESTRICTED, "entity reference (RFC 6120 §11.1)");
}

static void XMLCALL on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                                int standalone)
{
    xml_parser_t *p = ud;
    if (inactive(p))
        return;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0) {
        fail(p, XML_REASON_UNSUPPORTED_ENCODING, "encoding other than UTF-8");
        return;
    }
    p->boundary = event_end(p);
}

static int draw_salt(unsigned long *salt)
{
    ssize_t n = getrandom(salt, sizeof(*salt), 0);
    if (n != (ssize_t)sizeof(*salt))
        return n < 0 ? -errno : -EIO;
    return 0;
}

/* Everything XML_ParserReset forgets, for handlers working on p. */
static void configure(xml_expat_t *e, xml_parser_t *p)
{
    XML_Parser x = e->x;
    XML_SetHashSalt(x, e->salt);
    XML_SetUserData(x, p);
    XML_SetReturnNSTriplet(x, XML_TRUE);
    XML_SetElementHandler(x, on_start, on_end);
    XML_SetCharacterDataHandler(x, on_text);
    XML_SetNamespaceDeclHandler(x, on_ns_start, NULL);
    XML_SetCommentHandler(x, on_comment);
    XML_SetProcessingInstructionHandler(x, on_pi);
    XML_SetStartDoctypeDeclHandler(x, on_doctype);
    XML_SetEntityDeclHandler(x, on_entity_decl);
    XML_SetSkippedEntityHandler(x, on_skipped_entity);
    XML_SetXmlDeclHandler(x, on_xml_decl);
    XML_SetParamEntityParsing(x, XML_PARAM_ENTITY_PARSING_NEVER);
    /* Deferral would hold back the callbacks of a stanza split across reads until more bytes
       arrive; our own size limits bound the re-parse cost it protects against. */
    XML_SetReparseDeferralEnabled(x, XML_FALSE);
    /* No DTD gets this far, but keep expat's own amplification guards tight regardless. */
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(x, 10.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(x, 65536);
    XML_SetAllocTrackerMaximumAmplification(x, 100.0f);
    XML_SetAllocTrackerActivationThreshold(x, 1u << 20);
}

static void expat_free(xml_expat_t *e)
{
    if (!e)
        return;
    xml_expat_t *prev = tl_owner;
    tl_owner = e;
    XML_ParserFree(e->x);
    tl_owner = prev;
    stanza_arena_free(e->arena);
    free(e->sig);
    free(e);
}

/* Heap an instance holds: expat's, its label and its arena. */
static size_t expat_heap(const xml_expat_t *e)
{
    size_t n = sizeof(*e) + e->bytes + e->sig_len;
    if (e->arena) {
        stanza_arena_stats_t as;
        stanza_arena_stats(e->arena, &as);
        n += as.reserved;
    }
    return n;
}

/* A configured instance hashing with `salt`, its handlers working on p. NULL: out of memory. */
static xml_expat_t *expat_new(xml_parser_t *p, unsigned long salt)
{
    static const XML_Char sep[] = {NS_SEP, 0};
    xml_expat_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->salt = salt;
    xml_expat_t *prev = tl_owner;
    tl_owner = e;
    e->x = XML_ParserCreate_MM("UTF-8", &mm_suite, sep);
    tl_owner = prev;
    if (!e->x) {
        free(e);
        return NULL;
    }
    configure(e, p);
    return e;
}

/* With a pool, stanzas are built in the instance's arena: made once per instance, bounded like
   the parser's own. */
static void lend_arena(xml_parser_t *p, xml_expat_t *e)
{
    if (!e->arena && stanza_arena_new(&e->arena, p->arena_max) < 0)
        return; /* stay with the parser's own arena */
    stanza_arena_set_max(e->arena, p->arena_max);
    stanza_arena_reset(e->arena);
    p->arena = e->arena;
}

/* p takes e; what e allocates from `mallocs0` on counts as p's. */
static void attach(xml_parser_t *p, xml_expat_t *e, uint64_t mallocs0)
{
    p->e = e;
    p->x = e->x;
    p->e_mallocs0 = mallocs0;
    if (p->pool)
        lend_arena(p, e);
}

static xml_expat_t *detach(xml_parser_t *p)
{
    xml_expat_t *e = p->e;
    if (e)
        p->mallocs += e->mallocs - p->e_mallocs0;
    p->e = NULL;
    p->x = NULL;
    p->arena = p->own;
    return e;
}

static void clear_state(xml_parser_t *p)
{
    stanza_arena_reset(p->own);
    if (p->arena != p->own)
        stanza_arena_reset(p->arena);
    p->header_mark = stanza_arena_mark(p->own);
    p->header = NULL;
    p->cur = NULL;
    buf_reset(&p->text);
    p->depth = 0;
    p->npd = 0;
    p->fed = p->stanza_start = p->boundary = p->pause_end = 0;
    p->held = 0;
    buf_reset(&p->raw);
    p->raw_base = 0;
    p->slice = NULL;
    p->slice_base = 0;
    p->portable = false;
    p->hdr_std_db = p->hdr_std_stream = true;
    p->paused = false;
    p->closed = false;
    p->xdelta = 0;
    p->waking = false;
    p->trim_fed = UINT64_MAX;
    p->reason = XML_REASON_NONE;
    p->detail = NULL;
    p->err = 0;
    free(p->sig);
    p->sig = NULL;
    p->sig_len = 0;
}

static size_t pd_count(const xml_parser_t *p)
{
    return p->max_attrs ? p->max_attrs : 1;
}

static int ensure_pd(xml_parser_t *p)
{
    if (!p->pd) {
        p->pd = calloc(pd_count(p), sizeof(*p->pd));
        if (!p->pd)
            return -ENOMEM;
        p->mallocs++;
    }
    return 0;
}

/* Create what a hibernating parser gave back: the declaration scratch and a configured expat
   instance of its own (p->salt, a new one when new_salt). 0, -ENOMEM or -errno. */
static int expat_create(xml_parser_t *p, bool new_salt)
{
    int ret = ensure_pd(p);
    if (ret < 0 || (new_salt && (ret = draw_salt(&p->salt)) < 0))
        return ret;
    xml_expat_t *e = expat_new(p, p->salt);
    if (!e)
        return -ENOMEM;
    attach(p, e, 0);
    return 0;
}

int xml_parser_new(xml_parser_t **out, const stream_limits_t *limits, xml_handler_t handler,
                   void *ctx)
{
    int ret = -ENOMEM;
    xml_parser_t *p = calloc(1, sizeof(*p));
    if (!p)
        goto fail;
    p->handler = handler;
    p->ctx = ctx;
    p->max_stanza =
        limits->max_stanza_bytes_preauth < 10000 ? 10000 : limits->max_stanza_bytes_preauth;
    p->max_buffered = limits->max_buffered_bytes < 10000 ? 10000 : limits->max_buffered_bytes;
    p->max_depth = limits->max_depth ? limits->max_depth : 1;
    p->max_attrs = limits->max_attrs;
    p->max_name = limits->max_name_len ? limits->max_name_len : 1;
    /* A node costs about 100 bytes of tree whatever its size on the wire: a data form of short
       fields takes ~7 times its input size, nested `<a>x</a>` ~16 times. Sixteen times the input
       bound admits real stanzas and still caps a tree of empty elements (~25 times). */
    p->arena_max = (size_t)p->max_buffered * 16;
    if ((ret = stanza_arena_new(&p->own, p->arena_max)) < 0)
        goto fail;
    p->arena = p->own;
    buf_init(&p->text, p->max_buffered);
    /* An unfinished stanza plus the rest of the slice it ends in. */
    buf_init(&p->raw, (size_t)p->max_buffered + 2 * FEED_SLICE);
    if ((ret = expat_create(p, true)) < 0)
        goto fail;
    clear_state(p);
    *out = p;
    return 0;
fail:
    xml_parser_free(p);
    return ret;
}

void xml_parser_free(xml_parser_t *p)
{
    if (!p)
        return;
    expat_free(detach(p));
    free(p->sig);
    stanza_arena_free(p->own);
    buf_free(&p->text);
    buf_free(&p->raw);
    free(p->pd);
    free(p);
}

int xml_reset(xml_parser_t *p)
{
    int ret;
    if (!p->x) {
        /* Hibernating: a fresh instance is a reset one. */
        if ((ret = expat_create(p, true)) < 0)
            return ret;
        clear_state(p);
        return 0;
    }
    xml_expat_t *e = p->e, *prev = tl_owner;
    tl_owner = e;
    XML_Bool ok = XML_ParserReset(e->x, "UTF-8");
    tl_owner = prev;
    if (!ok)
        return -ENOMEM;
    /* No longer inside any header: not to be lent as one. */
    e->fed = 0;
    free(e->sig);
    e->sig = NULL;
    e->sig_len = 0;
    clear_state(p);
    if ((ret = draw_salt(&p->salt)) < 0)
        return ret;
    e->salt = p->salt;
    configure(e, p);
    return 0;
}

void xml_set_max_stanza(xml_parser_t *p, uint32_t max_bytes)
{
    p->max_stanza = max_bytes < 10000 ? 10000 : max_bytes;
}

uint32_t xml_max_stanza(const xml_parser_t *p)
{
    return p->max_stanza;
}

const stanza_t *xml_stream_header(const xml_parser_t *p)
{
    return p->header;
}

bool xml_stream_open(const xml_parser_t *p)
{
    return p->header && !p->closed;
}

/* Appends to a bounded buffer, counting what did not fit (snprintf style). */
typedef struct {
    char *dst;
    size_t cap, len;
} synth_t;

static void synth_put(synth_t *w, const char *s, size_t n)
{
    if (w->len < w->cap)
        memcpy(w->dst + w->len, s, w->cap - w->len < n ? w->cap - w->len : n);
    w->len += n;
}

static void synth_str(synth_t *w, const char *s)
{
    synth_put(w, s, strlen(s));
}

/* A namespace URI as an attribute value that expat decodes back to exactly `uri`: markup
   characters escaped, and whitespace other than a space as character references (attribute
   value normalization would turn a literal TAB, LF or CR into a space). */
static void synth_uri(synth_t *w, const char *uri)
{
    const char *run = uri;
    for (const char *c = uri;; c++) {
        const char *esc;
        switch (*c) {
        case '&':
            esc = "&amp;";
            break;
        case '<':
            esc = "&lt;";
            break;
        case '\'':
            esc = "&apos;";
            break;
        case '\t':
            esc = "&#x9;";
            break;
        case '\n':
            esc = "&#xA;";
            break;
        case '\r':
            esc = "&#xD;";
            break;
        case '\0':
            synth_put(w, run, (size_t)(c - run));
            return;
        default:
            continue;
        }
        synth_put(w, run, (size_t)(c - run));
        synth_str(w, esc);
        run = c + 1;
    }
}

/* The start tag a woken parser is fed: the header's qualified name and its namespace
   declarations, no attributes. Returns its length; writes at most `cap` bytes. */
static size_t synth_header(const stanza_t *h, char *dst, size_t cap)
{
    synth_t w = {dst, cap, 0};
    synth_str(&w, "<");
    if (h->prefix) {
        synth_str(&w, h->prefix);
        synth_str(&w, ":");
    }
    synth_str(&w, h->name);
    for (uint16_t i = 0; i < h->ndecls; i++) {
        const stanza_nsdecl_t *d = &h->decls[i];
        if (d->prefix) {
            synth_str(&w, " xmlns:");
            synth_str(&w, d->prefix);
        } else {
            synth_str(&w, " xmlns");
        }
        synth_str(&w, "='");
        synth_uri(&w, d->uri);
        synth_str(&w, "'");
    }
    synth_str(&w, ">");
    return w.len;
}

/* Only between depth-1 elements of an open stream, with every byte fed turned into a complete
   event: then expat holds nothing but the header's namespace bindings, which the header in the
   arena records exactly. A trailing CR, a partial UTF-8 sequence or an unfinished tag leaves
   `boundary` behind `fed`. */
static bool at_rest(const xml_parser_t *p)
{
    return !p->reason && !p->paused && !p->waking && p->header && !p->closed && p->depth == 1 &&
           !p->cur && !p->npd && !p->text.len && p->boundary == p->fed;
}

/* The start tag an instance at rest sits inside, made once per header. false: out of memory. */
static bool ensure_sig(xml_parser_t *p)
{
    if (p->sig)
        return true;
    size_t n = synth_header(p->header, NULL, 0);
    p->sig = malloc(n);
    if (!p->sig)
        return false;
    p->mallocs++;
    synth_header(p->header, p->sig, n);
    p->sig_len = n;
    return true;
}

/* Keeps e (at rest inside the header `sig`) as the warmest idle instance, making room by
   freeing the coldest. false when e is not worth keeping: the caller frees it. */
static bool pool_put(xml_pool_t *pool, xml_expat_t *e, const char *sig, size_t len)
{
    /* What a large stanza left in its arena is not worth keeping warm. */
    if (e->arena)
        stanza_arena_trim(e->arena);
    if (expat_heap(e) > pool->max_bytes)
        goto drop;
    if (!e->sig) {
        e->sig = malloc(len);
        if (!e->sig)
            goto drop;
        memcpy(e->sig, sig, len);
        e->sig_len = len;
    }
    if (pool->n == pool->max) {
        pool->dropped++;
        expat_free(pool->idle[0]);
        memmove(pool->idle, pool->idle + 1, sizeof(*pool->idle) * --pool->n);
    }
    pool->idle[pool->n++] = e;
    return true;
drop:
    pool->dropped++;
    return false;
}

/* The warmest idle instance at rest inside `sig`, taken out of the pool; NULL if none. */
static xml_expat_t *pool_take(xml_pool_t *pool, const char *sig, size_t len)
{
    for (unsigned i = pool->n; i-- > 0;) {
        xml_expat_t *e = pool->idle[i];
        if (e->sig_len == len && memcmp(e->sig, sig, len) == 0) {
            memmove(pool->idle + i, pool->idle + i + 1, sizeof(*pool->idle) * (pool->n - i - 1));
            pool->n--;
            return e;
        }
    }
    return NULL;
}

/* An instance at rest goes back to the pool, or is freed. */
static void release(xml_parser_t *p)
{
    xml_expat_t *e = detach(p);
    if (e && !(p->pool && ensure_sig(p) && pool_put(p->pool, e, p->sig, p->sig_len)))
        expat_free(e);
}

bool xml_park(xml_parser_t *p)
{
    if (!p->pool)
        return false;
    if (!p->x)
        return true;
    if (!at_rest(p))
        return false;
    release(p);
    return true;
}

bool xml_hibernate(xml_parser_t *p)
{
    if (!p->header)
        return false;
    /* A parked parser (no instance) is at rest by construction. */
    if (p->x) {
        if (!at_rest(p))
            return false;
        release(p);
    }
    stanza_arena_trim_to(p->own, p->header_mark);
    buf_free(&p->text);
    buf_free(&p->raw);
    p->raw_base = p->fed;
    free(p->pd);
    p->pd = NULL;
    return true;
}

bool xml_release(xml_parser_t *p)
{
    if (!p->paused)
        return true;
    if (p->held)
        return false;
    /* Resuming on no bytes only clears expat's suspension: nothing is left to parse. */
    return xml_feed(p, "", 0, NULL) == 0 && !p->paused;
}

bool xml_hibernating(const xml_parser_t *p)
{
    return p->x == NULL;
}

/* Rebuild expat after hibernation: a new instance with the same settings (and the same hash
   salt: still secret, and no system call per wake-up) is fed a start tag with the header's
   qualified name and namespace declarations, without an event, so the stream's bytes continue
   exactly where they left off: same bindings, same end tag expected. 0 or the parser's error. */
static int wake(xml_parser_t *p)
{
    const stanza_t *h = p->header;
    if (p->pool && h) {
        xml_expat_t *e =
            ensure_sig(p) && ensure_pd(p) == 0 ? pool_take(p->pool, p->sig, p->sig_len) : NULL;
        if (e) {
            attach(p, e, e->mallocs);
            XML_SetUserData(e->x, p);
            p->xdelta = p->fed - e->fed;
            p->wakes++;
            p->pool->lent++;
            return 0;
        }
        p->pool->built++;
    }
    int ret = expat_create(p, false);
    if (ret < 0) {
        fail(p, XML_REASON_NOMEM, "parser wake-up failed");
        return p->err;
    }
    p->wakes++;
    if (!h) {
        /* A reset that could not rebuild expat: the new stream starts from its first byte. */
        p->xdelta = p->fed;
        return 0;
    }
    /* One expat call on the whole tag: fed in pieces, expat would rescan the unfinished tag
       after each. A real header fits the stack buffer. */
    char small[1024];
    char *big = NULL;
    const char *tag = p->sig;
    size_t n = p->sig_len;
    if (!tag) {
        tag = small;
        n = synth_header(h, small, sizeof(small));
        if (n > sizeof(small)) {
            big = malloc(n);
            if (!big) {
                fail(p, XML_REASON_NOMEM, "parser wake-up failed");
                return p->err;
            }
            p->mallocs++;
            synth_header(h, big, n);
            tag = big;
        }
    }
    p->waking = true;
    tl_owner = p->e;
    p->e->fed += n;
    enum XML_Status st = XML_Parse(p->x, tag, (int)n, XML_FALSE);
    p->waking = false;
    free(big);
    if (st != XML_STATUS_OK) {
        /* Only memory can make expat refuse what it accepted once. */
        if (XML_GetErrorCode(p->x) == XML_ERROR_NO_MEMORY)
            fail(p, XML_REASON_NOMEM, "parser wake-up failed");
        else
            fail_expat(p);
        return p->err;
    }
    p->xdelta = p->fed - n;
    return 0;
}

void xml_trim(xml_parser_t *p)
{
    if (p->paused || p->depth >= 2 || p->cur)
        return;
    /* No byte since the previous trim: the stream has been idle for a whole trim period. */
    if (p->fed == p->trim_fed && xml_hibernate(p))
        return;
    p->trim_fed = p->fed;
    stanza_arena_trim_to(p->own, p->header_mark);
    if (p->arena != p->own)
        stanza_arena_trim(p->arena);
    if (p->text.len == 0)
        buf_free(&p->text);
    if (p->raw.len == 0)
        buf_free(&p->raw);
}

void xml_stats(const xml_parser_t *p, xml_stats_t *out)
{
    stanza_arena_stats_t as;
    stanza_arena_stats(p->own, &as);
    out->bytes = sizeof(*p) + (p->e ? expat_heap(p->e) : 0) + p->sig_len + as.reserved +
                 p->text.cap + p->raw.cap + (p->pd ? sizeof(*p->pd) * pd_count(p) : 0);
    out->mallocs = p->mallocs + (p->e ? p->e->mallocs - p->e_mallocs0 : 0) + as.mallocs;
    out->stanzas = p->stanzas;
    out->wakes = p->wakes;
}

/* After an expat call: translate its status. 0 or the parser's error. */
static int after_parse(xml_parser_t *p, enum XML_Status st)
{
    if (st == XML_STATUS_ERROR && !p->reason)
        fail_expat(p);
    if (p->reason) {
        /* A handler may have paused just before the failure in the same call. */
        p->paused = false;
        return p->err;
    }
    if (p->depth >= 2) {
        if (p->fed - p->stanza_start > size_limit(p)) {
            fail(p, XML_REASON_STANZA_TOO_BIG, "incomplete stanza over the size limit");
            return p->err;
        }
    } else if (!p->paused && p->fed - p->boundary > size_limit(p)) {
        /* An unfinished start tag (or header) that never ends. */
        fail(p, XML_REASON_STANZA_TOO_BIG, "incomplete element over the size limit");
        return p->err;
    }
    return 0;
}

int xml_feed(xml_parser_t *p, const void *data, size_t len, size_t *consumed)
{
    const char *d = data;
    size_t done = 0;
    uint64_t base;
    int ret;
    if (consumed)
        *consumed = 0;
    if (p->reason)
        return p->err;
    if (!p->x && len == 0)
        return 0; /* nothing to wake up for */
    /* Saved, so a handler may run another parser (a nested feed) without confusing accounts. */
    xml_expat_t *prev = tl_owner;
    if (!p->x && (ret = wake(p)) < 0)
        goto out;
    tl_owner = p->e;
    if (p->paused) {
        /* The caller hands back the bytes expat still holds; resume on those, then go on. */
        if (len < p->held) {
            ret = -EINVAL;
            goto out;
        }
        base = p->fed - p->held;
        p->paused = false;
        p->slice = d;
        p->slice_base = base;
        ret = after_parse(p, XML_ResumeParser(p->x));
        if (ret < 0)
            goto out;
        if (p->paused)
            goto paused;
        if ((ret = raw_keep(p, p->fed)) < 0)
            goto raw_failed;
        done = p->held;
        p->held = 0;
    } else {
        base = p->fed;
    }
    /* UTF-16 and UTF-32 announce themselves in the first two bytes (a BOM or a NUL next to '<'):
       that is an unsupported encoding (RFC 6120 §11.6), not merely malformed UTF-8. */
    for (size_t i = done; i < len && p->fed + (i - done) < 2; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == 0 || (p->fed + (i - done) == 0 && (c == 0xFE || c == 0xFF))) {
            fail(p, XML_REASON_UNSUPPORTED_ENCODING, "stream not in UTF-8");
            ret = p->err;
            goto out;
        }
    }
    while (done < len) {
        size_t n = len - done < FEED_SLICE ? len - done : FEED_SLICE;
        p->slice = d + done;
        p->slice_base = p->fed;
        p->fed += n;
        p->e->fed += n;
        ret = after_parse(p, XML_Parse(p->x, d + done, (int)n, XML_FALSE));
        if (ret < 0)
            goto out;
        if (p->paused)
            goto paused;
        if ((ret = raw_keep(p, p->fed)) < 0)
            goto raw_failed;
        done += n;
    }
    if (consumed)
        *consumed = len;
    ret = 0;
    goto out;
raw_failed:
    fail(p, ret == -ENOMEM ? XML_REASON_NOMEM : XML_REASON_STANZA_TOO_BIG,
         "no room for an unfinished stanza");
    ret = p->err;
    goto out;
paused:
    /* A pause ends an event outside any stanza: no earlier byte is needed again. */
    buf_reset(&p->raw);
    p->raw_base = p->pause_end;
    p->held = (size_t)(p->fed - p->pause_end);
    if (consumed)
        *consumed = (size_t)(p->pause_end - base);
    ret = 0;
out:
    tl_owner = prev;
    return ret;
}

/* ---- the pool ---- */

int xml_pool_new(xml_pool_t **out, unsigned max_idle, size_t max_bytes)
{
    xml_pool_t *pool = calloc(1, sizeof(*pool));
    *out = NULL;
    if (!pool)
        return -ENOMEM;
    pool->max = max_idle ? max_idle : 1;
    pool->max_bytes = max_bytes ? max_bytes : 64 * 1024;
    pool->idle = calloc(pool->max, sizeof(*pool->idle));
    if (!pool->idle) {
        free(pool);
        return -ENOMEM;
    }
    *out = pool;
    return 0;
}

void xml_pool_free(xml_pool_t *pool)
{
    if (!pool)
        return;
    for (unsigned i = 0; i < pool->n; i++)
        expat_free(pool->idle[i]);
    free(pool->idle);
    free(pool);
}

void xml_pool_stats(const xml_pool_t *pool, xml_pool_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->idle = pool->n;
    for (unsigned i = 0; i < pool->n; i++)
        out->idle_bytes += expat_heap(pool->idle[i]);
    out->lent = pool->lent;
    out->built = pool->built;
    out->dropped = pool->dropped;
}

void xml_set_pool(xml_parser_t *p, xml_pool_t *pool)
{
    p->pool = pool;
    if (pool && p->e && p->arena == p->own)
        lend_arena(p, p->e);
}
