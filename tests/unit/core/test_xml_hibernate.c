/*
 * core/xml hibernation and the instance pool: an idle open stream gives back expat (to be freed,
 * or lent to other streams through an xml_pool_t) and its scratch memory, and the next bytes
 * continue the stream exactly as if nothing happened. Every document here is fed in every chunk
 * size, once without hibernation and once per way of giving expat back after every read; all
 * runs must log the same events, byte counts, raw bytes, portability flags, `consumed` values
 * and errors. With a pool, another parser takes turns with the one under test: fed the same
 * document (its instances sit inside the same header, so they really change hands) or one whose
 * header binds the same prefixes to other namespaces (its instances must never be lent to the
 * parser under test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/peer.h"
#include "core/stanza.h"
#include "core/stream.h"
#include "core/xml.h"

/* ---- live heap bytes of the process, counted by wrapping the allocator (not under sanitizers,
   which own malloc) ---- */
static long long g_live;

#ifndef FEDGATE_SANITIZE
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void free(void *p);

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
    if (p)
        g_live += (long long)malloc_usable_size(p);
    return p;
}

void *calloc(size_t n, size_t m)
{
    void *p = __libc_calloc(n, m);
    if (p)
        g_live += (long long)malloc_usable_size(p);
    return p;
}

void *realloc(void *p, size_t n)
{
    long long before = p ? (long long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (q)
        g_live += (long long)malloc_usable_size(q) - before;
    return q;
}

void free(void *p)
{
    if (p)
        g_live -= (long long)malloc_usable_size(p);
    __libc_free(p);
}
#endif

typedef enum {
    MODE_PLAIN = 0, /* never hibernate */
    MODE_HIBERNATE, /* xml_hibernate() after every read */
    MODE_TRIM,      /* xml_trim() twice after every read: the periodic path of an idle stream */
    MODE_PARK,     /* xml_park() after every read, a pool of one shared with a same-header parser */
    MODE_PARK_MIX, /* xml_park(), a pool of two shared with a parser of another header */
} mode_t_;

/* The other parser on the pool: fed `step` bytes of its document after each read of the one
   under test, parked after each, restarted at its end or at an error. */
typedef struct {
    xml_parser_t *p;
    const char *doc;
    size_t len, off;
    int events;
} lender_t;

/* Same prefixes as the documents under test, other namespaces: x, db and the default. */
static const char mix_doc[] =
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
    "xmlns:db='urn:not-dialback' xmlns:x='urn:b' xmlns:q='urn:not-ping'>"
    "<message><x:data/></message><x:thing/><db:verify/> <presence/>\n";

static int lender_event(void *ctx, const xml_event_t *ev)
{
    (void)ev;
    ((lender_t *)ctx)->events++;
    return XML_CB_CONTINUE;
}

static void lender_step(lender_t *l, size_t step)
{
    if (l->off >= l->len) {
        assert_int_equal(xml_reset(l->p), 0);
        l->off = 0;
    }
    size_t n = l->len - l->off < step ? l->len - l->off : step, used = 0;
    if (xml_feed(l->p, l->doc + l->off, n, &used) < 0) {
        assert_int_equal(xml_reset(l->p), 0);
        l->off = 0;
        return;
    }
    l->off += used;
    bool parked = xml_park(l->p);
    assert_int_equal(parked, xml_hibernating(l->p));
}

typedef struct {
    buf_t events; /* what the handler saw: independent of the chunking */
    buf_t feeds;  /* return value and `consumed` of every xml_feed() call */
    int stop_at;  /* 1-based event whose handler returns XML_CB_STOP; 0 = never */
    int n;
} rec_t;

static void logf_(buf_t *b, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(line));
    assert_int_equal(buf_append(b, line, (size_t)n), 0);
}

static int on_event(void *ctx, const xml_event_t *ev)
{
    rec_t *r = ctx;
    r->n++;
    logf_(&r->events, "%d bytes=%zu ", (int)ev->type, ev->bytes);
    if (ev->type == XML_EV_STREAM_OPEN)
        assert_int_equal(stanza_write_open(&r->events, ev->el, NULL), 0);
    if (ev->type == XML_EV_STANZA) {
        assert_int_equal(ev->raw_len, ev->bytes);
        logf_(&r->events, "portable=%d raw=", (int)ev->raw_portable);
        assert_int_equal(buf_append(&r->events, ev->raw, ev->raw_len), 0);
        logf_(&r->events, " tree=");
        assert_int_equal(stanza_write(&r->events, ev->el, &stanza_scope_s2s), 0);
    }
    logf_(&r->events, "\n");
    return r->n == r->stop_at ? XML_CB_STOP : XML_CB_CONTINUE;
}

/* Feed doc in `chunk`-byte reads; after a pause, the next read starts at the first unconsumed
   byte. Returns the number of successful hibernations; the logs are left in *r. */
static int run(const char *doc, size_t len, size_t chunk, mode_t_ mode, int stop_at,
               uint32_t max_stanza, rec_t *r)
{
    memset(r, 0, sizeof(*r));
    buf_init(&r->events, 1 << 22);
    buf_init(&r->feeds, 1 << 22);
    r->stop_at = stop_at;
    stream_limits_t lim;
    stream_limits_default(&lim);
    xml_parser_t *p;
    assert_int_equal(xml_parser_new(&p, &lim, on_event, r), 0);
    if (max_stanza)
        xml_set_max_stanza(p, max_stanza);
    xml_pool_t *pool = NULL;
    lender_t l = {.doc = mode == MODE_PARK ? doc : mix_doc};
    l.len = mode == MODE_PARK ? len : strlen(mix_doc);
    if (mode >= MODE_PARK) {
        assert_int_equal(xml_pool_new(&pool, mode == MODE_PARK ? 1 : 2, 0), 0);
        xml_set_pool(p, pool);
        assert_int_equal(xml_parser_new(&l.p, &lim, lender_event, &l), 0);
        xml_set_pool(l.p, pool);
    }
    int slept = 0, ret = 0;
    size_t off = 0;
    while (off < len && ret == 0) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        ret = xml_feed(p, doc + off, n, &used);
        logf_(&r->feeds, "%d/%zu ", ret, used);
        if (ret < 0) {
            logf_(&r->events, "ERROR %s\n", xml_reason_name(xml_error(p)));
            break;
        }
        off += used;
        if (mode == MODE_HIBERNATE) {
            bool ok = xml_hibernate(p);
            assert_int_equal(ok, xml_hibernating(p));
            slept += ok;
        } else if (mode == MODE_TRIM) {
            xml_trim(p);
            xml_trim(p);
            slept += xml_hibernating(p);
        } else if (mode >= MODE_PARK) {
            bool ok = xml_park(p);
            assert_int_equal(ok, xml_hibernating(p));
            slept += ok;
            /* 13 bytes: the other parser rests after some steps and holds its instance in the
               middle of a stanza after others. */
            lender_step(&l, 13);
        }
    }
    xml_stats_t st;
    xml_stats(p, &st);
    if (mode == MODE_PLAIN)
        assert_int_equal(st.wakes, 0);
    xml_parser_free(p);
    xml_parser_free(l.p);
    if (pool) {
        xml_pool_stats_t ps;
        xml_pool_stats(pool, &ps);
        assert_true(ps.idle <= (mode == MODE_PARK ? 1u : 2u));
        xml_pool_free(pool);
    }
    return slept;
}

static void rec_free(rec_t *r)
{
    buf_free(&r->events);
    buf_free(&r->feeds);
}

static void assert_same(const buf_t *a, const buf_t *b, const char *what, size_t chunk)
{
    if (a->len != b->len || memcmp(a->data, b->data, a->len) != 0)
        fail_msg("%s differ at chunk %zu:\n%.*s\n--- vs ---\n%.*s", what, chunk, (int)a->len,
                 (const char *)a->data, (int)b->len, (const char *)b->data);
}

/* Every chunk size, every mode: identical to the plain run at the same chunk size, and the events
   identical to the plain whole-document run. Returns the hibernations of the one-byte run. */
static int check_doc(const char *doc, int stop_at, uint32_t max_stanza, const char *must_log)
{
    size_t len = strlen(doc);
    rec_t whole, plain, got;
    run(doc, len, len, MODE_PLAIN, stop_at, max_stanza, &whole);
    if (must_log) {
        assert_int_equal(buf_append(&whole.events, "", 1), 0);
        if (!strstr((const char *)whole.events.data, must_log))
            fail_msg("expected %s in\n%s", must_log, (const char *)whole.events.data);
        whole.events.len--;
    }
    int one_byte = 0;
    for (size_t k = 1; k <= len; k++) {
        run(doc, len, k, MODE_PLAIN, stop_at, max_stanza, &plain);
        if (stop_at == 0)
            assert_same(&plain.events, &whole.events, "plain events", k);
        for (mode_t_ m = MODE_HIBERNATE; m <= MODE_PARK_MIX; m++) {
            int slept = run(doc, len, k, m, stop_at, max_stanza, &got);
            if (k == 1 && m == MODE_HIBERNATE)
                one_byte = slept;
            /* Parking is refused and granted exactly where hibernation is. */
            if (k == 1 && m >= MODE_PARK)
                assert_int_equal(slept, one_byte);
            assert_same(&got.events, &plain.events, "events", k);
            assert_same(&got.feeds, &plain.feeds, "feed results", k);
            rec_free(&got);
        }
        rec_free(&plain);
    }
    rec_free(&whole);
    return one_byte;
}

#define HDR                                                                                        \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "           \
    "from='capulet.example' to='montague.example' version='1.0' xml:lang='en'>"

static const char stanzas[] =
    " <db:result from='capulet.example' to='montague.example'>abc123</db:result>\n"
    "<message from='a@capulet.example/r' to='b@montague.example' type='chat' id='1'>"
    "<body>caf\xc3\xa9 &amp; &#x41; <![CDATA[<x>]]></body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>\r\n"
    "<presence from='a@capulet.example' to='b@montague.example'/>\t"
    "<iq type='get' id='p1'><q:ping xmlns:q='urn:xmpp:ping'/></iq>  ";

/* ---- tests ---- */

static void test_hibernate_every_split(void **state)
{
    char doc[2048];
    snprintf(doc, sizeof(doc), "%s%s</stream:stream>", HDR, stanzas);
    /* One-byte reads end between stanzas after each of the 4 stanzas and each keepalive byte. */
    assert_true(check_doc(doc, 0, 0, "tree=<iq") >= 4);
}

static void test_hibernate_with_pauses(void **state)
{
    char doc[2048];
    snprintf(doc, sizeof(doc), "%s%s</stream:stream>", HDR, stanzas);
    /* Paused after the header, after the first and after the third stanza: a paused parser is
       never hibernated, and the continuation is identical. */
    for (int stop = 1; stop <= 4; stop += 2)
        check_doc(doc, stop, 0, NULL);
}

static void test_hibernate_header_prefixes(void **state)
{
    /* Prefixes declared on the header (db: and a payload prefix, legal if unusual), a namespace
       URI that needs escaping to be replayed, a stanza using the header's prefix (not portable)
       and a prefixed depth-1 element. */
    const char *doc =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback' xmlns:x='urn:a&amp;b&apos;c&lt;d&#9;e&#xA;f\"g'>"
        "<db:verify from='a.example' to='b.example' id='i1'>k</db:verify>"
        "<message><x:data x:attr='1'/></message>"
        "<x:thing/>"
        "<message xmlns:x='urn:local'><x:data/></message>"
        "</stream:stream>";
    assert_true(check_doc(doc, 0, 0, "portable=0 raw=<message><x:data") >= 3);
    assert_true(check_doc(doc, 0, 0, "urn:a&amp;b&apos;c&lt;d&#x9;e&#xA;f&quot;g") >= 3);
}

static void test_hibernate_unprefixed_header(void **state)
{
    /* The stream element in the default namespace: the wake-up start tag must have the same
       qualified name, or the end tag would not match. */
    const char *doc = "<stream xmlns='http://etherx.jabber.org/streams' xmlns:c='jabber:server'>"
                      "<c:message/><c:presence/></stream>";
    assert_true(check_doc(doc, 0, 0, "3 bytes=9") >= 2);
}

static void test_hibernate_errors_after_wake(void **state)
{
    /* Whatever stops the parser after a wake-up stops it at the same byte with the same reason. */
    char doc[20000];
    snprintf(doc, sizeof(doc), "%s<presence/><y:foo/>", HDR);
    check_doc(doc, 0, 0, "ERROR not-well-formed");
    snprintf(doc, sizeof(doc), "%s<presence/><stream:stream>", HDR);
    check_doc(doc, 0, 0, "ERROR stream-reopen");
    snprintf(doc, sizeof(doc), "%s<presence/></stream:stream><presence/>", HDR);
    check_doc(doc, 0, 0, "ERROR not-well-formed");
    snprintf(doc, sizeof(doc), "%s<presence/><!-- c --><presence/>", HDR);
    check_doc(doc, 0, 0, "ERROR restricted-xml");
    /* Stanza size counted from the stanza's first byte, in stream offsets. */
    int n = snprintf(doc, sizeof(doc), "%s<presence/> <message><body>", HDR);
    memset(doc + n, 'a', 10100);
    strcpy(doc + n + 10100, "</body></message>");
    rec_t plain, got;
    size_t len = strlen(doc);
    const size_t chunks[] = {1, 7, 100, 4096, len};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        run(doc, len, chunks[i], MODE_PLAIN, 0, 0, &plain);
        for (mode_t_ m = MODE_HIBERNATE; m <= MODE_PARK_MIX; m++) {
            run(doc, len, chunks[i], m, 0, 0, &got);
            assert_same(&got.events, &plain.events, "events", chunks[i]);
            assert_same(&got.feeds, &plain.feeds, "feed results", chunks[i]);
            assert_non_null(memmem(got.events.data, got.events.len, "ERROR stanza-too-big", 20));
            if (m < MODE_PARK_MIX)
                rec_free(&got);
        }
        rec_free(&plain);
        rec_free(&got);
    }
}

static int count_handler(void *ctx, const xml_event_t *ev)
{
    (*(int *)ctx)++;
    return XML_CB_CONTINUE;
}

static int stop_handler(void *ctx, const xml_event_t *ev)
{
    (*(int *)ctx)++;
    return ev->type == XML_EV_STANZA ? XML_CB_STOP : XML_CB_CONTINUE;
}

static xml_parser_t *parser(xml_handler_t h, int *n)
{
    stream_limits_t lim;
    stream_limits_default(&lim);
    xml_parser_t *p;
    assert_int_equal(xml_parser_new(&p, &lim, h, n), 0);
    return p;
}

static void feed_str(xml_parser_t *p, const char *s)
{
    size_t used = 0;
    assert_int_equal(xml_feed(p, s, strlen(s), &used), 0);
    assert_int_equal(used, strlen(s));
}

static void test_hibernate_refused(void **state)
{
    int n = 0;
    /* Before the header. */
    xml_parser_t *p = parser(count_handler, &n);
    assert_false(xml_hibernate(p));
    feed_str(p, "<?xml version='1.0'?><stream:str");
    assert_false(xml_hibernate(p));
    xml_parser_free(p);

    /* A partial token or an open stanza: refused, and the stream goes on. */
    static const char *const partial[] = {
        "<mess",             /* unfinished start tag */
        "<message to='a'>",  /* open stanza */
        "<message><body>hi", /* text inside a stanza */
        "\r",                /* expat holds a trailing CR */
        "\xc3",              /* half a UTF-8 sequence */
        "&am",               /* unfinished reference */
    };
    static const char *const rest[] = {
        "age/>", "</message>", "</body></message>", "\n<presence/>", "\xa9<presence/>", "p;",
    };
    for (size_t i = 0; i < sizeof(partial) / sizeof(partial[0]); i++) {
        n = 0;
        p = parser(count_handler, &n);
        feed_str(p, HDR "<presence/>");
        feed_str(p, partial[i]);
        assert_false(xml_hibernate(p));
        assert_false(xml_hibernating(p));
        xml_trim(p);
        xml_trim(p);
        assert_false(xml_hibernating(p));
        feed_str(p, rest[i]);
        assert_true(xml_hibernate(p));
        feed_str(p, "<presence/></stream:stream>");
        assert_int_equal(n, 1 + 1 + (i < 5 ? 1 : 0) + 2);
        xml_parser_free(p);
    }

    /* Paused, with and without bytes held back. */
    n = 0;
    p = parser(stop_handler, &n);
    size_t used = 0;
    const char *two = HDR "<presence/><presence/>";
    assert_int_equal(xml_feed(p, two, strlen(two), &used), 0);
    assert_true(used < strlen(two));
    assert_false(xml_hibernate(p));
    assert_int_equal(xml_feed(p, two + used, strlen(two) - used, &used), 0);
    assert_false(xml_hibernate(p)); /* paused at the second stanza, nothing held */
    assert_int_equal(xml_feed(p, "", 0, &used), 0);
    assert_true(xml_hibernate(p));
    xml_parser_free(p);

    /* After the close tag and after an error. */
    n = 0;
    p = parser(count_handler, &n);
    feed_str(p, HDR "</stream:stream>");
    assert_false(xml_hibernate(p));
    xml_parser_free(p);
    p = parser(count_handler, &n);
    feed_str(p, HDR);
    assert_int_equal(xml_feed(p, "<a><b></a>", 10, NULL), FG_EPARSE);
    assert_false(xml_hibernate(p));
    xml_parser_free(p);
}

static void test_hibernate_memory(void **state)
{
    int n = 0;
    xml_parser_t *p = parser(count_handler, &n);
    xml_set_max_stanza(p, 65536);
    feed_str(p, HDR);
    const char *msg = "<message from='juliet@capulet.example/balcony' to='romeo@montague.example' "
                      "type='chat' id='m1'><body>Wherefore art thou?</body></message>";
    feed_str(p, msg);
    xml_stats_t awake, asleep, woken;
    xml_stats(p, &awake);
    long long live0 = g_live;
    assert_true(xml_hibernate(p));
    xml_stats(p, &asleep);
#ifndef FEDGATE_SANITIZE
    /* The process allocator agrees with the parser's own accounts. */
    long long freed = live0 - g_live;
    print_message("hibernation: parser %zu -> %zu bytes; heap freed %lld bytes\n", awake.bytes,
                  asleep.bytes, freed);
    assert_true(freed + 256 >= (long long)(awake.bytes - asleep.bytes));
#else
    (void)live0;
#endif
    /* expat and the scratch are gone: the struct and the header's arena block remain. */
    assert_true(awake.bytes > 8000);
    assert_true(asleep.bytes < 2048);
    assert_string_equal(stanza_attr(xml_stream_header(p), "to"), "montague.example");
    assert_true(xml_stream_open(p));
    /* Hibernating twice changes nothing; trimming keeps it asleep. */
    assert_true(xml_hibernate(p));
    xml_trim(p);
    assert_true(xml_hibernating(p));
    feed_str(p, msg);
    xml_stats(p, &woken);
    assert_false(xml_hibernating(p));
    assert_int_equal(woken.wakes, 1);
    assert_int_equal(woken.stanzas, 2);
    print_message("wake-up + one stanza: %llu allocations\n",
                  (unsigned long long)(woken.mallocs - asleep.mallocs));
    /* A wake-up costs what creating a parser costs (expat builds its tables), not more. */
    assert_true(woken.mallocs - asleep.mallocs < 64);
    xml_parser_free(p);
}

static void test_busy_stream_never_hibernates(void **state)
{
    /* The periodic trim only hibernates a stream that received nothing for a whole period, so a
       busy stream keeps its expat instance and allocates nothing per stanza. */
    int n = 0;
    xml_parser_t *p = parser(count_handler, &n);
    feed_str(p, HDR);
    const char *msg = "<message to='romeo@montague.example'><body>x</body></message>";
    for (int i = 0; i < 10; i++)
        feed_str(p, msg);
    xml_trim(p);
    xml_stats_t before, after;
    xml_stats(p, &before);
    for (int period = 0; period < 100; period++) {
        for (int i = 0; i < 10; i++)
            feed_str(p, msg);
        xml_trim(p);
        assert_false(xml_hibernating(p));
    }
    xml_stats(p, &after);
    assert_int_equal(after.wakes, 0);
    assert_int_equal(after.stanzas, before.stanzas + 1000);
    /* Each trim gives the text buffer and arena blocks back: a few allocations per period. */
    assert_true(after.mallocs - before.mallocs <= 300);
    /* A period without input: the next trim hibernates. */
    xml_trim(p);
    assert_true(xml_hibernating(p));
    /* Feed, trim, trim, feed: a wake-up per idle period. */
    for (int i = 0; i < 5; i++) {
        feed_str(p, msg);
        assert_false(xml_hibernating(p));
        xml_trim(p);
        xml_trim(p);
        assert_true(xml_hibernating(p));
    }
    xml_stats(p, &after);
    assert_int_equal(after.wakes, 5);
    assert_int_equal(n, 1 + 10 + 1000 + 5);
    xml_parser_free(p);
}

static void test_reset_while_hibernating(void **state)
{
    int n = 0;
    xml_parser_t *p = parser(count_handler, &n);
    feed_str(p, HDR "<presence/>");
    assert_true(xml_hibernate(p));
    assert_int_equal(xml_reset(p), 0);
    assert_false(xml_hibernating(p));
    assert_null(xml_stream_header(p));
    /* A new stream from its first byte: header event, stanzas, close. */
    feed_str(p, HDR "<presence/>");
    assert_non_null(xml_stream_header(p));
    assert_true(xml_hibernate(p));
    feed_str(p, "<presence/></stream:stream>");
    assert_int_equal(n, 2 + 3 + 1);
    xml_parser_free(p);
}

static xml_parser_t *pooled(xml_pool_t *pool, int *n)
{
    xml_parser_t *p = parser(count_handler, n);
    xml_set_pool(p, pool);
    return p;
}

static xml_pool_stats_t pool_stats(const xml_pool_t *pool)
{
    xml_pool_stats_t ps;
    xml_pool_stats(pool, &ps);
    return ps;
}

static void test_pool_lends_and_bounds(void **state)
{
    xml_pool_t *pool;
    assert_int_equal(xml_pool_new(&pool, 2, 0), 0);
    int n[4] = {0};
    xml_parser_t *a = pooled(pool, &n[0]), *b = pooled(pool, &n[1]), *c = pooled(pool, &n[2]);
    /* Without a pool nothing parks. */
    xml_parser_t *solo = parser(count_handler, &n[3]);
    feed_str(solo, HDR);
    assert_false(xml_park(solo));
    assert_false(xml_hibernating(solo));
    xml_parser_free(solo);

    /* Three streams at rest in a pool of two: the coldest instance is freed. */
    feed_str(a, HDR);
    feed_str(b, HDR);
    feed_str(c, HDR "<presence/>");
    assert_true(xml_park(a) && xml_park(b) && xml_park(c));
    xml_pool_stats_t ps = pool_stats(pool);
    assert_int_equal(ps.idle, 2);
    assert_int_equal(ps.dropped, 1);
    assert_true(ps.idle_bytes > 2 * 4096);
    /* Parked, a stream holds no instance: its parser state is small. */
    xml_stats_t st;
    xml_stats(c, &st);
    assert_true(st.bytes < 4096);

    /* The next stanzas borrow idle instances; none is built while one matches. */
    feed_str(a, "<presence/>");
    feed_str(b, "<presence/><message/>");
    assert_true(xml_park(a) && xml_park(b));
    ps = pool_stats(pool);
    assert_int_equal(ps.lent, 2);
    assert_int_equal(ps.built, 0);
    /* All three streams went on with the same two instances: every event arrived. */
    feed_str(c, "<presence/>");
    assert_true(xml_park(c));
    assert_int_equal(n[0], 2);
    assert_int_equal(n[1], 3);
    assert_int_equal(n[2], 3);
    assert_int_equal(pool_stats(pool).lent, 3);

    /* An instance is lent only to a stream with the same header. */
    int m = 0;
    xml_parser_t *d = pooled(pool, &m);
    feed_str(d, "<stream:stream xmlns='jabber:component:accept' "
                "xmlns:stream='http://etherx.jabber.org/streams'>");
    assert_true(xml_park(d)); /* idle: one of HDR, d's own */
    xml_pool_stats_t ps0 = pool_stats(pool);
    feed_str(a, "<presence/>"); /* takes the HDR one */
    feed_str(b, "<presence/>"); /* finds none with its header: builds one */
    ps = pool_stats(pool);
    assert_int_equal(ps.lent, ps0.lent + 1);
    assert_int_equal(ps.built, ps0.built + 1);
    assert_int_equal(ps.idle, 1);
    feed_str(d, "<message/>"); /* its own again */
    assert_int_equal(pool_stats(pool).lent, ps0.lent + 2);
    assert_int_equal(m, 2);
    assert_true(xml_park(d) && xml_park(a) && xml_park(b));
    assert_true(pool_stats(pool).idle <= 2);

    /* In the middle of a stanza, paused or failed, a parser keeps its instance. */
    feed_str(a, "<message><body>");
    assert_false(xml_park(a));
    assert_false(xml_hibernating(a));
    feed_str(a, "</body></message>");
    assert_true(xml_park(a));
    size_t used;
    assert_true(xml_feed(b, "<presence/><y:oops/>", 20, &used) < 0);
    unsigned idle = pool_stats(pool).idle;
    assert_false(xml_park(b));
    assert_int_equal(pool_stats(pool).idle, idle);
    /* A reset of a failed parser, and of a parked one, starts a new stream as usual. */
    assert_int_equal(xml_reset(b), 0);
    assert_int_equal(xml_reset(c), 0);
    n[1] = n[2] = 0;
    feed_str(b, HDR "<presence/>");
    feed_str(c, HDR "<presence/></stream:stream>");
    assert_int_equal(n[1], 2);
    assert_int_equal(n[2], 3);

    /* A parser freed while its former instance is lent out or idle: the instance lives on, and
       its accounts with it (a sanitizer run checks nothing dangles). */
    xml_parser_free(a);
    feed_str(b, "<presence/>");
    assert_true(xml_park(b));
    xml_parser_free(b);
    xml_parser_free(c);
    xml_parser_free(d);
    xml_pool_free(pool);

    /* Stanzas are built in the lent instance's arena; what a large one grew there is given
       back when the instance returns, and the instance is kept. */
    assert_int_equal(xml_pool_new(&pool, 4, 0), 0);
    a = pooled(pool, &n[0]);
    feed_str(a, HDR);
    char big[4096] = "<message>";
    for (int i = 0; i < 900; i++)
        strcat(big, "<x/>");
    strcat(big, "</message>");
    feed_str(a, big);
    xml_stats(a, &st);
    assert_true(st.bytes > 64 * 1024);
    assert_true(xml_park(a));
    ps = pool_stats(pool);
    assert_int_equal(ps.idle, 1);
    assert_true(ps.idle_bytes < 32 * 1024);
    xml_stats(a, &st);
    assert_true(st.bytes < 4096);
    xml_parser_free(a);
    xml_pool_free(pool);

    /* An instance grown past the pool's bound (distinct names fill expat's tables) is freed. */
    assert_int_equal(xml_pool_new(&pool, 4, 16 * 1024), 0);
    a = pooled(pool, &n[0]);
    feed_str(a, HDR);
    char tag[64];
    for (int i = 0; i < 400; i++) {
        snprintf(tag, sizeof(tag), "<presence a%d='1'/>", i);
        feed_str(a, tag);
    }
    assert_true(xml_park(a));
    ps = pool_stats(pool);
    assert_int_equal(ps.idle, 0);
    assert_int_equal(ps.dropped, 1);
    feed_str(a, "<presence/>");
    assert_int_equal(pool_stats(pool).built, 1);
    xml_parser_free(a);
    xml_pool_free(pool);
    xml_pool_free(NULL);
}

/* ---- the stream engine's periodic trim (stream_trim) ---- */

static void rnd(void *ctx, uint8_t *out, size_t n)
{
    uint32_t *x = ctx;
    for (size_t i = 0; i < n; i++) {
        *x = *x * 1103515245u + 12345u;
        out[i] = (uint8_t)(*x >> 16);
    }
}

static const char *const hosted[] = {"capulet.example"};

/* Take every action, answering policy and verify requests; the log gets every action's type,
   addresses and data. */
static void drain(stream_t *s, buf_t *log)
{
    stream_action_t a;
    while (stream_next_action(s, &a)) {
        logf_(log, "%d %s %s ", (int)a.type, a.from ? a.from : "-", a.to ? a.to : "-");
        if (a.data)
            assert_int_equal(buf_append(log, a.data, a.len), 0);
        logf_(log, "\n");
        if (a.type == STREAM_ACT_NEED_POLICY) {
            peer_rules_t r = {NEG_OPTIONAL, NEG_OPTIONAL, true, true, PARTNER_FEDERATED};
            char d[300];
            snprintf(d, sizeof(d), "%s", a.domain);
            stream_policy(s, d, true, &r);
        } else if (a.type == STREAM_ACT_VERIFY) {
            char fr[300], to[300], id[200];
            snprintf(fr, sizeof(fr), "%s", a.from);
            snprintf(to, sizeof(to), "%s", a.to);
            snprintf(id, sizeof(id), "%s", a.id);
            stream_verify_result(s, fr, to, id, STREAM_VERIFY_VALID, NULL);
        }
    }
}

/* An inbound stream authenticated with dialback, then `doc` in `chunk`-byte reads, with two
   stream_trim() calls (an idle trim period) after every read when `trim` is set. Returns how
   many reads ended with the parser hibernated. */
static int stream_run(const char *doc, size_t chunk, bool trim, xml_pool_t *pool, buf_t *log)
{
    uint32_t seed = 7;
    stream_config_t cfg;
    stream_config_default(&cfg);
    cfg.xml_pool = pool;
    cfg.hosted = hosted;
    cfg.n_hosted = 1;
    cfg.secret = (const uint8_t *)"secret";
    cfg.secret_len = 6;
    cfg.random = rnd;
    cfg.random_ctx = &seed;
    stream_t *s;
    assert_int_equal(stream_new(&s, &cfg), 0);
    buf_init(log, 1 << 20);
    const char *open = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                       "xmlns:stream='http://etherx.jabber.org/streams' "
                       "xmlns:db='jabber:server:dialback' from='montague.example' "
                       "to='capulet.example' version='1.0'>"
                       "<db:result from='montague.example' to='capulet.example'>"
                       "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
                       "</db:result>";
    size_t len = strlen(open), off = 0;
    while (off < len) {
        int c = stream_feed(s, open + off, len - off, 1);
        assert_true(c >= 0);
        drain(s, log);
        off += (size_t)c;
    }
    assert_true(stream_pair_valid(s, "capulet.example", "montague.example"));
    int slept = 0;
    if (trim) {
        /* Authenticated and idle before any stanza: hibernated too. */
        stream_trim(s);
        stream_trim(s);
        stream_stats_t st;
        stream_stats(s, &st);
        assert_true(st.parser_bytes < 2048);
    }
    len = strlen(doc);
    for (size_t pos = 0; pos < len;) {
        size_t end = len - pos < chunk ? len : pos + chunk;
        while (pos < end) {
            int c = stream_feed(s, doc + pos, end - pos, 2);
            assert_true(c >= 0);
            drain(s, log);
            pos += (size_t)c;
            if (c == 0)
                break;
        }
        if (trim) {
            stream_trim(s);
            stream_trim(s);
            stream_stats_t st;
            stream_stats(s, &st);
            slept += st.parser_bytes < 2048;
        }
        if (pool)
            slept += stream_park(s);
    }
    stream_free(s);
    return slept;
}

static void test_stream_trim_hibernates(void **state)
{
    const char *doc = "<message from='romeo@montague.example/orchard' to='juliet@capulet.example' "
                      "type='chat' id='1'><body>hi</body></message> "
                      "<presence from='romeo@montague.example' to='juliet@capulet.example'/>"
                      "<iq from='montague.example' to='capulet.example' type='get' id='p'>"
                      "<ping xmlns='urn:xmpp:ping'/></iq>"
                      "<message from='romeo@montague.example' to='juliet@capulet.example'><x:y "
                      "xmlns:x='urn:x'/></message></stream:stream>";
    buf_t plain, trimmed;
    size_t len = strlen(doc);
    for (size_t k = 1; k <= len; k++) {
        stream_run(doc, k, false, NULL, &plain);
        int slept = stream_run(doc, k, true, NULL, &trimmed);
        assert_same(&trimmed, &plain, "stream actions", k);
        /* The reads that end between stanzas leave a hibernated parser. */
        if (k == 1)
            assert_true(slept >= 4);
        buf_free(&plain);
        buf_free(&trimmed);
    }
}

static void test_stream_park(void **state)
{
    /* The stream engine parks only once every action is taken (the parser stays paused on a
       routed stanza until then), and the stream goes on exactly as without a pool. */
    const char *doc = "<message from='romeo@montague.example/orchard' to='juliet@capulet.example' "
                      "type='chat' id='1'><body>hi</body></message> "
                      "<presence from='romeo@montague.example' to='juliet@capulet.example'/>"
                      "<iq from='montague.example' to='capulet.example' type='get' id='p'>"
                      "<ping xmlns='urn:xmpp:ping'/></iq></stream:stream>";
    xml_pool_t *pool;
    assert_int_equal(xml_pool_new(&pool, 4, 0), 0);
    buf_t plain, parked;
    size_t len = strlen(doc);
    for (size_t k = 1; k <= len; k++) {
        stream_run(doc, k, false, NULL, &plain);
        int parks = stream_run(doc, k, false, pool, &parked);
        assert_same(&parked, &plain, "stream actions", k);
        if (k == len)
            assert_true(parks == 0); /* the only read ends the stream: nothing to park */
        else if (k == 1)
            assert_true(parks >= 3);
        buf_free(&plain);
        buf_free(&parked);
    }
    assert_true(pool_stats(pool).lent > 0);
    xml_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hibernate_every_split),
        cmocka_unit_test(test_hibernate_with_pauses),
        cmocka_unit_test(test_hibernate_header_prefixes),
        cmocka_unit_test(test_hibernate_unprefixed_header),
        cmocka_unit_test(test_hibernate_errors_after_wake),
        cmocka_unit_test(test_hibernate_refused),
        cmocka_unit_test(test_hibernate_memory),
        cmocka_unit_test(test_busy_stream_never_hibernates),
        cmocka_unit_test(test_reset_while_hibernating),
        cmocka_unit_test(test_stream_trim_hibernates),
        cmocka_unit_test(test_pool_lends_and_bounds),
        cmocka_unit_test(test_stream_park),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
