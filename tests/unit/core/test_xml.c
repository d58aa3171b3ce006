#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/peer.h"
#include "core/stanza.h"
#include "core/xml.h"

/* ---- a recorder that turns events into a text log ---- */

typedef struct {
    buf_t log;
    int stop_at; /* 1-based event number whose handler returns XML_CB_STOP; 0 = never */
    int events;
    const char *doc; /* when set: every stanza's raw bytes must be a piece of it */
    size_t doc_len;
    buf_t hdr; /* the header as written back, to reparse raw stanzas under it */
} rec_t;

static int first_stanza(void *ctx, const xml_event_t *ev)
{
    buf_t *out = ctx;
    if (ev->type == XML_EV_STANZA)
        assert_int_equal(stanza_write(out, ev->el, &stanza_scope_s2s), 0);
    return XML_CB_CONTINUE;
}

/* The raw bytes of a stanza are a piece of the input and parse to the same tree. */
static void check_raw(rec_t *r, const xml_event_t *ev)
{
    assert_non_null(ev->raw);
    assert_int_equal(ev->raw_len, ev->bytes);
    assert_int_equal(ev->raw[0], '<');
    assert_int_equal(ev->raw[ev->raw_len - 1], '>');
    if (r->doc)
        assert_non_null(memmem(r->doc, r->doc_len, ev->raw, ev->raw_len));
    buf_t want, got;
    buf_init(&want, 1 << 20);
    buf_init(&got, 1 << 20);
    assert_int_equal(stanza_write(&want, ev->el, &stanza_scope_s2s), 0);
    stream_limits_t lim;
    stream_limits_default(&lim);
    lim.max_stanza_bytes_preauth = lim.max_stanza_bytes;
    xml_parser_t *p;
    assert_int_equal(xml_parser_new(&p, &lim, first_stanza, &got), 0);
    assert_int_equal(xml_feed(p, r->hdr.data, r->hdr.len, NULL), 0);
    assert_int_equal(xml_feed(p, ev->raw, ev->raw_len, NULL), 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    xml_parser_free(p);
    buf_free(&want);
    buf_free(&got);
}

static void log_str(rec_t *r, const char *s)
{
    assert_int_equal(buf_append_str(&r->log, s), 0);
}

static int rec_handler(void *ctx, const xml_event_t *ev)
{
    rec_t *r = ctx;
    r->events++;
    switch (ev->type) {
    case XML_EV_STREAM_OPEN:
        log_str(r, "OPEN ");
        assert_int_equal(stanza_write_open(&r->log, ev->el, NULL), 0);
        buf_reset(&r->hdr);
        assert_int_equal(stanza_write_open(&r->hdr, ev->el, NULL), 0);
        break;
    case XML_EV_STANZA:
        check_raw(r, ev);
        log_str(r, "STANZA ");
        assert_int_equal(stanza_write(&r->log, ev->el, &stanza_scope_s2s), 0);
        break;
    case XML_EV_STREAM_CLOSE:
        assert_null(ev->el);
        log_str(r, "CLOSE");
        break;
    }
    log_str(r, "\n");
    return r->events == r->stop_at ? XML_CB_STOP : XML_CB_CONTINUE;
}

static void limits_for_test(stream_limits_t *l)
{
    stream_limits_default(l);
}

/* Feed doc in chunks of `chunk` bytes; the log ends with "ERROR <reason>" on failure. The
   returned string is malloc'ed. */
static char *run_chunked(const char *doc, size_t len, size_t chunk, const stream_limits_t *lim,
                         uint32_t max_stanza)
{
    rec_t r = {.doc = doc, .doc_len = len};
    buf_init(&r.log, 1 << 22);
    buf_init(&r.hdr, 1 << 16);
    xml_parser_t *p = NULL;
    assert_int_equal(xml_parser_new(&p, lim, rec_handler, &r), 0);
    if (max_stanza)
        xml_set_max_stanza(p, max_stanza);
    int ret = 0;
    for (size_t off = 0; off < len && ret == 0; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used = 0;
        ret = xml_feed(p, doc + off, n, &used);
        if (ret == 0)
            assert_int_equal(used, n);
    }
    if (ret < 0) {
        char line[96];
        snprintf(line, sizeof(line), "ERROR %s", xml_reason_name(xml_error(p)));
        log_str(&r, line);
        /* The error is sticky. */
        assert_int_equal(xml_feed(p, "<a/>", 4, NULL), ret);
    }
    xml_parser_free(p);
    buf_free(&r.hdr);
    assert_int_equal(buf_append(&r.log, "", 1), 0);
    return (char *)r.log.data;
}

/* Feed doc in every chunk size from 1 to its length and check every run logs the same events as
   the whole-document run. Returns that log (malloc'ed). */
static char *run_all_chunkings(const char *doc, const stream_limits_t *lim, uint32_t max_stanza)
{
    size_t len = strlen(doc);
    char *whole = run_chunked(doc, len, len ? len : 1, lim, max_stanza);
    for (size_t k = 1; k < len; k++) {
        char *got = run_chunked(doc, len, k, lim, max_stanza);
        if (strcmp(got, whole) != 0)
            fail_msg("chunk size %zu:\n%s\n--- differs from whole document:\n%s", k, got, whole);
        free(got);
    }
    return whole;
}

static void expect_log(const char *doc, const char *expected)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    char *got = run_all_chunkings(doc, &lim, 0);
    assert_string_equal(got, expected);
    free(got);
}

static void expect_error(const char *doc, xml_reason_t reason)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    char *got = run_all_chunkings(doc, &lim, 0);
    char tail[96];
    snprintf(tail, sizeof(tail), "ERROR %s", xml_reason_name(reason));
    const char *last = strrchr(got, '\n');
    last = last ? last + 1 : got;
    if (strcmp(last, tail) != 0)
        fail_msg("expected %s, log:\n%s", tail, got);
    free(got);
}

#define HDR                                                                                        \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' "           \
    "from='capulet.example' to='montague.example' version='1.0' xml:lang='en'>"
#define HDR_LOG                                                                                    \
    "OPEN <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "   \
    "xmlns:db='jabber:server:dialback' from='capulet.example' to='montague.example' "              \
    "version='1.0' xml:lang='en'>\n"

/* ---- tests ---- */

static void test_basic_stream(void **state)
{
    expect_log(HDR "<db:result from='capulet.example' to='montague.example'>abc123</db:result>"
                   "<message from='a@capulet.example/r' to='b@montague.example' type='chat' id='1'>"
                   "<body>Hi &amp; bye &lt;3 &#x41;</body></message>"
                   "</stream:stream>",
               HDR_LOG "STANZA <db:result from='capulet.example' "
                       "to='montague.example'>abc123</db:result>\n"
                       "STANZA <message from='a@capulet.example/r' to='b@montague.example' "
                       "type='chat' id='1'><body>Hi &amp; bye &lt;3 A</body></message>\n"
                       "CLOSE\n");
}

static void test_rich_document_chunkings(void **state)
{
    /* Whitespace keepalives, pretty-printed stanzas, CDATA, character references, multi-byte
       UTF-8 split anywhere, payload namespaces, xml:lang, a self-closing stanza. */
    expect_log(
        HDR
        " \n <presence from='a@capulet.example' to='b@montague.example'/>\n\n"
        "<message from='a@capulet.example' to='b@montague.example' xml:lang='fr'>\n"
        "  <body>caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 <![CDATA[<raw> & ]]>x&quot;y</body>\n"
        "  <active xmlns='http://jabber.org/protocol/chatstates'/>\n"
        "  <x:thing xmlns:x='urn:example:x' x:attr='v' plain='p'><x:inner>t</x:inner></x:thing>\n"
        "</message> \t\r\n",
        HDR_LOG "STANZA <presence from='a@capulet.example' to='b@montague.example'/>\n"
                "STANZA <message from='a@capulet.example' to='b@montague.example' "
                "xml:lang='fr'>\n"
                "  <body>caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 &lt;raw&gt; &amp; "
                "x\"y</body>\n"
                "  <active xmlns='http://jabber.org/protocol/chatstates'/>\n"
                "  <x:thing xmlns:x='urn:example:x' x:attr='v' plain='p'><x:inner>t</x:inner>"
                "</x:thing>\n"
                "</message>\n");
}

static void test_restricted_xml(void **state)
{
    expect_error(HDR "<!-- hi --><message/>", XML_REASON_RESTRICTED);
    expect_error(HDR "<message><!-- hi --></message>", XML_REASON_RESTRICTED);
    expect_error(HDR "<?pi data?>", XML_REASON_RESTRICTED);
    expect_error("<?xml version='1.0'?><!DOCTYPE stream [<!ENTITY a 'b'>]>" HDR,
                 XML_REASON_RESTRICTED);
    expect_error(HDR "<message><body>&foo;</body></message>", XML_REASON_RESTRICTED);
    expect_error(HDR "<message to='&foo;'/>", XML_REASON_RESTRICTED);
}

static void test_billion_laughs(void **state)
{
    expect_error("<?xml version='1.0'?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
                 " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                 " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                 " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                 "]>\n<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"
                 "<message><body>&lol4;</body></message>",
                 XML_REASON_RESTRICTED);
}

static void test_malformed(void **state)
{
    expect_error(HDR "<message><body></message>", XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "<message a='1' a='2'/>", XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "<foo:message/>", XML_REASON_NOT_WELL_FORMED); /* unbound prefix */
    expect_error(HDR "<message><body>\xff</body></message>", XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "<message><body>\xc0\x80</body></message>", XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "<message><body>\xed\xa0\x80</body></message>", XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "<message><body>\xf4\x90\x80\x80</body></message>",
                 XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "<message><body>a\x01</body></message>", XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "<message><body>&#1;</body></message>", XML_REASON_NOT_WELL_FORMED);
    expect_error(HDR "</stream:stream><message/>", XML_REASON_NOT_WELL_FORMED);
    expect_error("garbage ", XML_REASON_NOT_WELL_FORMED);
}

static void test_encoding(void **state)
{
    expect_error("<?xml version='1.0' encoding='ISO-8859-1'?>"
                 "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
                 XML_REASON_UNSUPPORTED_ENCODING);
    /* UTF-16 in either byte order, with or without a BOM; UTF-32. */
    static const char *const wide[] = {"\xfe\xff\x00<", "\xff\xfe<\x00", "\x00<\x00s", "<\x00s\x00",
                                       "\x00\x00\x00<"};
    stream_limits_t lim0;
    limits_for_test(&lim0);
    for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++) {
        for (size_t chunk = 1; chunk <= 4; chunk++) {
            char *got0 = run_chunked(wide[i], 4, chunk, &lim0, 0);
            assert_string_equal(got0, "ERROR unsupported-encoding");
            free(got0);
        }
    }
    /* A UTF-8 BOM is fine. */
    const char *bomdoc = "\xef\xbb\xbf<s:stream xmlns:s='http://etherx.jabber.org/streams'>";
    char *bom = run_chunked(bomdoc, strlen(bomdoc), 1, &lim0, 0);
    assert_string_equal(bom, "OPEN <s:stream xmlns:s='http://etherx.jabber.org/streams'>\n");
    free(bom);
    /* An explicit UTF-8 declaration, in any case, is fine. */
    stream_limits_t lim;
    limits_for_test(&lim);
    char *got = run_all_chunkings("<?xml version='1.0' encoding='utf-8'?><s:stream "
                                  "xmlns:s='http://etherx.jabber.org/streams'>",
                                  &lim, 0);
    assert_string_equal(got, "OPEN <s:stream xmlns:s='http://etherx.jabber.org/streams'>\n");
    free(got);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    assert_non_null(s);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + ul * n, tail, tl + 1);
    return s;
}

static void test_deep_nesting(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    char *doc = repeat(HDR, "<a>", 10000, "");
    char *got = run_chunked(doc, strlen(doc), strlen(doc), &lim, 0);
    assert_string_equal(got, HDR_LOG "ERROR limit");
    free(got);
    got = run_chunked(doc, strlen(doc), 7, &lim, 0);
    assert_string_equal(got, HDR_LOG "ERROR limit");
    free(got);
    free(doc);

    /* Exactly max_depth levels is allowed. */
    char *open = repeat(HDR, "<a>", lim.max_depth, "");
    char *doc2 = repeat(open, "</a>", lim.max_depth, "");
    got = run_chunked(doc2, strlen(doc2), strlen(doc2), &lim, 0);
    assert_non_null(strstr(got, "STANZA <a><a>"));
    assert_null(strstr(got, "ERROR"));
    free(got);
    free(open);
    free(doc2);
}

static void test_stanza_too_big(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    assert_int_equal(lim.max_stanza_bytes_preauth, 10000);
    /* A 12,000-byte stanza: over the pre-authentication maximum, under the later one. */
    char *body = repeat(HDR "<message><body>", "0123456789", 1200, "</body></message>");
    char *got = run_chunked(body, strlen(body), strlen(body), &lim, 0);
    assert_string_equal(got, HDR_LOG "ERROR stanza-too-big");
    free(got);
    got = run_chunked(body, strlen(body), 1000, &lim, 0);
    assert_string_equal(got, HDR_LOG "ERROR stanza-too-big");
    free(got);
    got = run_chunked(body, strlen(body), 999, &lim, lim.max_stanza_bytes);
    assert_non_null(strstr(got, "STANZA <message><body>0123456789"));
    assert_null(strstr(got, "ERROR"));
    free(got);
    free(body);

    /* A start tag that never ends is stopped once it passes the maximum, long before memory
       grows: feed 1 MB of attribute value. */
    char *tag = repeat(HDR "<message a='", "xxxxxxxxxx", 100000, "");
    got = run_chunked(tag, strlen(tag), 4096, &lim, 0);
    assert_string_equal(got, HDR_LOG "ERROR stanza-too-big");
    free(got);
    free(tag);

    /* A header that never ends. */
    char *hdr = repeat("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='", "x",
                       20000, "");
    got = run_chunked(hdr, strlen(hdr), 512, &lim, 0);
    assert_string_equal(got, "ERROR stanza-too-big");
    free(got);
    free(hdr);

    /* Many empty elements within the byte limit: the tree's memory is bounded too. */
    char *many = repeat(HDR "<message>", "<a/>", 16000, "</message>");
    got = run_chunked(many, strlen(many), strlen(many), &lim, lim.max_stanza_bytes);
    assert_string_equal(got, HDR_LOG "ERROR stanza-too-big");
    free(got);
    free(many);
}

static void test_keepalives_unbounded(void **state)
{
    /* Whitespace between stanzas never accumulates toward a limit. */
    stream_limits_t lim;
    limits_for_test(&lim);
    char *doc = repeat(HDR, " ", 200000, "<presence/>");
    char *got = run_chunked(doc, strlen(doc), 100, &lim, 0);
    assert_string_equal(got, HDR_LOG "STANZA <presence/>\n");
    free(got);
    free(doc);
}

static void test_attr_and_name_limits(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    char *attrs = malloc(lim.max_attrs * 16 + 256);
    strcpy(attrs, HDR "<message");
    for (uint32_t i = 0; i <= lim.max_attrs; i++)
        sprintf(attrs + strlen(attrs), " a%u='x'", i);
    strcat(attrs, "/>");
    expect_error(attrs, XML_REASON_LIMIT);
    free(attrs);

    char *name = repeat(HDR "<message><", "n", lim.max_name_len + 1, "/></message>");
    char *got = run_chunked(name, strlen(name), strlen(name), &lim, 0);
    assert_string_equal(got, HDR_LOG "ERROR limit");
    free(got);
    free(name);
}

static void test_second_header(void **state)
{
    expect_error(HDR "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
                 XML_REASON_STREAM_REOPEN);
    expect_error(HDR "<message><stream xmlns='http://etherx.jabber.org/streams'/></message>",
                 XML_REASON_STREAM_REOPEN);
}

/* The stream engine decides on namespaces; the parser must report them exactly. */
static const stanza_t *g_first_stanza_ok;
static int ns_handler(void *ctx, const xml_event_t *ev)
{
    int *step = ctx;
    const stanza_t *el = ev->el;
    if (ev->type == XML_EV_STREAM_OPEN) {
        assert_string_equal(stanza_name(el), "stream");
        if (*step == 0) {
            /* Wrong stream namespace, jabber:client content, prefix "s". */
            assert_string_equal(stanza_ns(el), "urn:wrong");
            assert_string_equal(stanza_prefix(el), "s");
            assert_string_equal(stanza_decl(el, NULL), "jabber:client");
            assert_null(stanza_decl(el, "db"));
        } else {
            /* Unprefixed stream element in the right namespace. */
            assert_string_equal(stanza_ns(el), STANZA_NS_STREAM);
            assert_null(stanza_prefix(el));
            assert_string_equal(stanza_decl(el, NULL), STANZA_NS_STREAM);
        }
    } else if (ev->type == XML_EV_STANZA) {
        if (*step == 0) {
            assert_string_equal(stanza_name(el), "message");
            assert_string_equal(stanza_ns(el), "jabber:server");
            assert_string_equal(stanza_prefix(el), "foo");
            assert_string_equal(stanza_decl(el, "foo"), "jabber:server");
            /* A payload redefining the stream prefix. */
            const stanza_t *c = stanza_first_child(el);
            assert_string_equal(stanza_ns(c), "urn:evil");
            assert_string_equal(stanza_prefix(c), "s");
            g_first_stanza_ok = el;
        }
    }
    return XML_CB_CONTINUE;
}

static void test_namespace_reporting(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    xml_parser_t *p;
    int step = 0;
    assert_int_equal(xml_parser_new(&p, &lim, ns_handler, &step), 0);
    const char *a = "<s:stream xmlns='jabber:client' xmlns:s='urn:wrong'>"
                    "<foo:message xmlns:foo='jabber:server'>"
                    "<s:error xmlns:s='urn:evil'/></foo:message>";
    assert_int_equal(xml_feed(p, a, strlen(a), NULL), 0);
    assert_non_null(g_first_stanza_ok);
    assert_string_equal(stanza_ns(xml_stream_header(p)), "urn:wrong");
    assert_true(xml_stream_open(p));
    assert_int_equal(xml_reset(p), 0);
    assert_null(xml_stream_header(p));
    step = 1;
    const char *b = "<stream xmlns='http://etherx.jabber.org/streams'>";
    assert_int_equal(xml_feed(p, b, strlen(b), NULL), 0);
    assert_non_null(xml_stream_header(p));
    xml_parser_free(p);
}

static void test_pause_and_continue(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    const char *doc = HDR "<a/><b>x</b><c/>";
    size_t len = strlen(doc);
    /* Stop at each event in turn; continue with the unconsumed bytes: same log as no stop. */
    char *want = run_chunked(doc, len, len, &lim, 0);
    for (int stop = 1; stop <= 4; stop++) {
        rec_t r = {.stop_at = stop};
        buf_init(&r.log, 1 << 16);
        buf_init(&r.hdr, 1 << 16);
        xml_parser_t *p;
        assert_int_equal(xml_parser_new(&p, &lim, rec_handler, &r), 0);
        size_t used = 0;
        assert_int_equal(xml_feed(p, doc, len, &used), 0);
        const char *ends[] = {NULL, HDR, HDR "<a/>", HDR "<a/><b>x</b>", doc};
        assert_int_equal(used, strlen(ends[stop]));
        size_t used2 = 0;
        assert_int_equal(xml_feed(p, doc + used, len - used, &used2), 0);
        assert_int_equal(used2, len - used);
        assert_int_equal(buf_append(&r.log, "", 1), 0);
        assert_string_equal((char *)r.log.data, want);
        xml_parser_free(p);
        buf_free(&r.log);
        buf_free(&r.hdr);
    }
    free(want);
}

static void test_pause_then_restart(void **state)
{
    /* STARTTLS / SASL success: stop right after the element, the rest belongs to a new stream. */
    stream_limits_t lim;
    limits_for_test(&lim);
    rec_t r = {.stop_at = 2};
    buf_init(&r.log, 1 << 16);
    buf_init(&r.hdr, 1 << 16);
    xml_parser_t *p;
    assert_int_equal(xml_parser_new(&p, &lim, rec_handler, &r), 0);
    const char *doc = HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" HDR "<x/>";
    size_t used = 0;
    assert_int_equal(xml_feed(p, doc, strlen(doc), &used), 0);
    assert_int_equal(used, strlen(HDR "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
    assert_int_equal(xml_reset(p), 0);
    size_t used2 = 0;
    assert_int_equal(xml_feed(p, doc + used, strlen(doc) - used, &used2), 0);
    assert_int_equal(used2, strlen(doc) - used);
    assert_int_equal(buf_append(&r.log, "", 1), 0);
    assert_string_equal((char *)r.log.data, HDR_LOG
                        "STANZA <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n" HDR_LOG
                        "STANZA <x/>\n");
    xml_parser_free(p);
    buf_free(&r.log);
    buf_free(&r.hdr);
}

static const stanza_t *g_kept;
static int keep_handler(void *ctx, const xml_event_t *ev)
{
    if (ev->type != XML_EV_STANZA)
        return XML_CB_CONTINUE;
    g_kept = ev->el;
    return XML_CB_STOP;
}

static void test_paused_stanza_stays_valid(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    xml_parser_t *p;
    assert_int_equal(xml_parser_new(&p, &lim, keep_handler, NULL), 0);
    const char *doc = HDR "<message to='a@b.example'><body>one</body></message>"
                          "<iq to='c.example' type='get'><ping xmlns='urn:xmpp:ping'/></iq>";
    size_t len = strlen(doc), off = 0, used = 0;
    assert_int_equal(xml_feed(p, doc, len, &used), 0);
    off += used;
    /* Read after the handler returned. */
    assert_string_equal(stanza_name(g_kept), "message");
    assert_string_equal(stanza_to(g_kept), "a@b.example");
    assert_string_equal(stanza_text(stanza_child(g_kept, NULL, "body"), NULL), "one");
    assert_int_equal(xml_feed(p, doc + off, len - off, &used), 0);
    off += used;
    assert_int_equal(off, len);
    assert_string_equal(stanza_name(g_kept), "iq");
    assert_string_equal(stanza_ns(stanza_first_child(g_kept)), "urn:xmpp:ping");
    xml_parser_free(p);
}

static int portable_handler(void *ctx, const xml_event_t *ev)
{
    if (ev->type == XML_EV_STANZA) {
        buf_t *b = ctx;
        assert_int_equal(buf_append_str(b, ev->raw_portable ? "P" : "N"), 0);
    }
    return XML_CB_CONTINUE;
}

static void test_raw_portable(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    buf_t flags;
    buf_init(&flags, 64);
    xml_parser_t *p;
    assert_int_equal(xml_parser_new(&p, &lim, portable_handler, &flags), 0);
    const char *doc =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback' xmlns:q='urn:q'>"
        "<message><body>x</body></message>"                   /* P: default namespace only */
        "<db:result from='a' to='b'>k</db:result>"            /* P: standard db prefix */
        "<message xml:lang='en'><x xmlns='urn:x'/></message>" /* P */
        "<message><p:x xmlns:p='urn:p' p:a='1'/></message>"   /* P: declared inside */
        "<message><q:x/></message>"                           /* N: q from the header */
        "<message q:a='1'/>"                                  /* N: attribute prefix */
        "<stream:features/>";                                 /* P */
    assert_int_equal(xml_feed(p, doc, strlen(doc), NULL), 0);
    assert_int_equal(buf_append(&flags, "", 1), 0);
    assert_string_equal((char *)flags.data, "PPPPNNP");
    xml_parser_free(p);

    /* A header that binds db: to something else makes db: stanzas non-portable. */
    buf_reset(&flags);
    assert_int_equal(xml_parser_new(&p, &lim, portable_handler, &flags), 0);
    const char *odd = "<stream:stream xmlns='jabber:server' "
                      "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='urn:other'>"
                      "<db:result/><message/>";
    assert_int_equal(xml_feed(p, odd, strlen(odd), NULL), 0);
    assert_int_equal(buf_append(&flags, "", 1), 0);
    assert_string_equal((char *)flags.data, "NP");
    xml_parser_free(p);
    buf_free(&flags);
}

static int count_handler(void *ctx, const xml_event_t *ev)
{
    (*(int *)ctx)++;
    return XML_CB_CONTINUE;
}

static void test_no_allocation_after_warmup(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    xml_parser_t *p;
    int n = 0;
    assert_int_equal(xml_parser_new(&p, &lim, count_handler, &n), 0);
    const char *msg = "<message from='juliet@capulet.example/balcony' to='romeo@montague.example' "
                      "type='chat' id='m1'><body>Wherefore art thou?</body>"
                      "<active xmlns='http://jabber.org/protocol/chatstates'/>"
                      "<request xmlns='urn:xmpp:receipts'/>"
                      "<origin-id xmlns='urn:xmpp:sid:0' id='abc'/></message>";
    assert_int_equal(xml_feed(p, HDR, strlen(HDR), NULL), 0);
    for (int i = 0; i < 25; i++) {
        assert_int_equal(xml_feed(p, msg, strlen(msg), NULL), 0);
        assert_int_equal(xml_feed(p, msg, 100, NULL), 0);
        assert_int_equal(xml_feed(p, msg + 100, strlen(msg) - 100, NULL), 0);
    }
    xml_stats_t before, after;
    xml_stats(p, &before);
    for (int i = 0; i < 1000; i++) {
        /* Also split in two, as TCP would. */
        assert_int_equal(xml_feed(p, msg, 100, NULL), 0);
        assert_int_equal(xml_feed(p, msg + 100, strlen(msg) - 100, NULL), 0);
    }
    xml_stats(p, &after);
    assert_int_equal(after.mallocs, before.mallocs);
    assert_int_equal(after.stanzas, before.stanzas + 1000);
    assert_int_equal(n, 1 + 1050);
    assert_true(after.bytes < 64 * 1024);
    xml_parser_free(p);
}

static void test_trim_after_large_stanza(void **state)
{
    stream_limits_t lim;
    limits_for_test(&lim);
    xml_parser_t *p;
    int n = 0;
    assert_int_equal(xml_parser_new(&p, &lim, count_handler, &n), 0);
    xml_set_max_stanza(p, lim.max_stanza_bytes);
    assert_int_equal(xml_feed(p, HDR, strlen(HDR), NULL), 0);
    xml_stats_t idle, big, trimmed;
    xml_stats(p, &idle);
    /* A 50 KB data form. */
    char *doc = repeat("<message><x xmlns='jabber:x:data'>",
                       "<field var='f'><value>0123456789</value></field>", 1100, "</x></message>");
    /* In pieces, so the raw and text buffers are used too. */
    size_t len = strlen(doc);
    for (size_t off = 0; off < len; off += 1000)
        assert_int_equal(xml_feed(p, doc + off, len - off < 1000 ? len - off : 1000, NULL), 0);
    xml_stats(p, &big);
    assert_true(big.bytes > idle.bytes + 50000);
    xml_trim(p);
    xml_stats(p, &trimmed);
    /* Back to the idle size, give or take expat's input buffer (sized by the largest read). */
    assert_true(trimmed.bytes <= idle.bytes + 4096);
    /* The header survived and the stream goes on. */
    assert_string_equal(stanza_attr(xml_stream_header(p), "to"), "montague.example");
    assert_int_equal(xml_feed(p, doc, len, NULL), 0);
    assert_int_equal(n, 1 + 2);
    free(doc);
    xml_parser_free(p);
}

static void test_close_and_errors_text(void **state)
{
    assert_string_equal(xml_reason_condition(XML_REASON_STANZA_TOO_BIG), "policy-violation");
    assert_string_equal(xml_reason_condition(XML_REASON_RESTRICTED), "restricted-xml");
    assert_string_equal(xml_reason_condition(XML_REASON_NOT_WELL_FORMED), "not-well-formed");
    assert_null(xml_reason_condition(XML_REASON_NONE));
    expect_log("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>",
               "OPEN <stream:stream xmlns:stream='http://etherx.jabber.org/streams'>\nCLOSE\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_stream),
        cmocka_unit_test(test_rich_document_chunkings),
        cmocka_unit_test(test_restricted_xml),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_stanza_too_big),
        cmocka_unit_test(test_keepalives_unbounded),
        cmocka_unit_test(test_attr_and_name_limits),
        cmocka_unit_test(test_second_header),
        cmocka_unit_test(test_namespace_reporting),
        cmocka_unit_test(test_pause_and_continue),
        cmocka_unit_test(test_pause_then_restart),
        cmocka_unit_test(test_paused_stanza_stays_valid),
        cmocka_unit_test(test_raw_portable),
        cmocka_unit_test(test_no_allocation_after_warmup),
        cmocka_unit_test(test_trim_after_large_stanza),
        cmocka_unit_test(test_close_and_errors_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
