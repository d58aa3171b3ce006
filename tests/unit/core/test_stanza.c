#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/peer.h"
#include "core/stanza.h"
#include "core/xml.h"

/* Serialize e with scope into a NUL-terminated static-lifetime buffer owned by the caller. */
static char *write_str(const stanza_t *e, const stanza_scope_t *scope)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    assert_int_equal(stanza_write(&b, e, scope), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    return (char *)b.data;
}

/* ---- parse helper: the first stanza of a stream, cloned into `a` ---- */

typedef struct {
    stanza_arena_t *a;
    stanza_t *first;
} grab_t;

static int grab_handler(void *ctx, const xml_event_t *ev)
{
    grab_t *g = ctx;
    if (ev->type == XML_EV_STANZA && !g->first) {
        g->first = stanza_clone(g->a, ev->el);
        assert_non_null(g->first);
    }
    return XML_CB_CONTINUE;
}

static stanza_t *parse_one(stanza_arena_t *a, const char *header, const char *stanza)
{
    stream_limits_t lim;
    stream_limits_default(&lim);
    grab_t g = {a, NULL};
    xml_parser_t *p;
    assert_int_equal(xml_parser_new(&p, &lim, grab_handler, &g), 0);
    assert_int_equal(xml_feed(p, header, strlen(header), NULL), 0);
    assert_int_equal(xml_feed(p, stanza, strlen(stanza), NULL), 0);
    xml_parser_free(p);
    assert_non_null(g.first);
    return g.first;
}

#define S2S_HDR                                                                                    \
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "xmlns:db='jabber:server:dialback' to='a.example' from='b.example' version='1.0'>"

/* Stanzas as Prosody, ejabberd and Openfire put them on the wire: written back under the same
   scope they must come out byte for byte. */
static const char *const real_stanzas[] = {
    "<db:result from='capulet.example' to='montague.example'>"
    "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3</db:result>",
    "<db:verify from='montague.example' to='capulet.example' id='417GAF25' type='valid'/>",
    "<db:result from='montague.example' to='capulet.example' type='error'><error "
    "type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
    "</db:result>",
    "<message from='juliet@capulet.example/balcony' to='romeo@montague.example' type='chat' "
    "id='ktx72v49' xml:lang='en'><body>Art thou not Romeo, and a Montague?</body>"
    "<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    "<iq type='get' id='ping1' from='capulet.example' to='montague.example'><ping "
    "xmlns='urn:xmpp:ping'/></iq>",
    "<presence from='juliet@capulet.example/balcony' to='romeo@montague.example'><c "
    "xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://prosody.im' "
    "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/><x xmlns='vcard-temp:x:update'><photo/></x>"
    "</presence>",
    "<message to='a@b.example' from='c@d.example' type='groupchat'><body>&lt;b&gt; &amp; "
    "'q' \"dq\"</body><x xmlns='jabber:x:data' type='submit'><field var='a&amp;b'>"
    "<value>1</value></field></x></message>",
    "<message from='a@b.example' to='c@d.example'><html "
    "xmlns='http://jabber.org/protocol/xhtml-im'><body "
    "xmlns='http://www.w3.org/1999/xhtml'><p>Hello <strong>world</strong>!</p></body></html>"
    "</message>",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
    "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>",
    "<iq type='set' id='x'><query xmlns='jabber:iq:roster'><item jid='a@b' xml:lang='de'/>"
    "</query></iq>",
    "<message><e:enc xmlns:e='urn:xmpp:eme:0' e:namespace='x'>a</e:enc></message>",
};

static void test_round_trip_real_servers(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 20), 0);
    for (size_t i = 0; i < sizeof(real_stanzas) / sizeof(real_stanzas[0]); i++) {
        stanza_arena_reset(a);
        stanza_t *st = parse_one(a, S2S_HDR, real_stanzas[i]);
        char *out = write_str(st, &stanza_scope_s2s);
        assert_string_equal(out, real_stanzas[i]);
        free(out);
    }
    stanza_arena_free(a);
}

static void test_scope_changes_declarations(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 20), 0);
    stanza_t *st = parse_one(a, S2S_HDR, real_stanzas[0]);
    /* Without the stream header's declarations, the element carries them itself. */
    char *out = write_str(st, NULL);
    assert_string_equal(out, "<db:result xmlns:db='jabber:server:dialback' from='capulet.example' "
                             "to='montague.example'>"
                             "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3"
                             "</db:result>");
    free(out);
    /* A message written where the default namespace is jabber:component:accept needs its own. */
    stanza_t *m = parse_one(a, S2S_HDR, "<message to='x@y'><body>b</body></message>");
    out = write_str(m, &stanza_scope_component);
    assert_string_equal(out, "<message xmlns='jabber:server' to='x@y'><body>b</body></message>");
    free(out);
    /* An explicit redundant declaration is dropped, a needed one kept. */
    m = parse_one(a, S2S_HDR,
                  "<message xmlns='jabber:server'><foo xmlns='urn:f'><bar xmlns='urn:f'/></foo>"
                  "</message>");
    out = write_str(m, &stanza_scope_s2s);
    assert_string_equal(out, "<message><foo xmlns='urn:f'><bar/></foo></message>");
    free(out);
    /* An unqualified child under a default namespace is undeclared. */
    m = parse_one(a, S2S_HDR, "<message><x xmlns=''/></message>");
    out = write_str(m, &stanza_scope_s2s);
    assert_string_equal(out, "<message><x xmlns=''/></message>");
    free(out);
    /* A prefix declared on the input stream header only is declared where it is used. */
    m = parse_one(a,
                  "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/"
                  "streams' xmlns:q='urn:q'>",
                  "<message q:a='1'><q:x/></message>");
    out = write_str(m, &stanza_scope_s2s);
    assert_string_equal(out, "<message xmlns:q='urn:q' q:a='1'><q:x/></message>");
    free(out);
    stanza_arena_free(a);
}

static void test_builder_and_escaping(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    stanza_t *m = stanza_new(a, NULL, STANZA_NS_SERVER, "message");
    stanza_set_attr(a, m, "to", "r@m.example");
    stanza_set_attr(a, m, "from", "j@c.example");
    stanza_set_attr(a, m, "type", "chat");
    stanza_set_attr(a, m, "id", "a'b\"c<d>&\t\n\r");
    stanza_set_attr_ns(a, m, STANZA_NS_XML, "xml", "lang", "en");
    stanza_t *body = stanza_new(a, m, STANZA_NS_SERVER, "body");
    stanza_add_text(a, body, "1 < 2 && 3 > 2 'q' \"d\"\r\n", 24);
    stanza_t *r = stanza_new(a, m, "urn:xmpp:receipts", "request");
    stanza_t *db = stanza_new(a, m, STANZA_NS_DIALBACK, "result");
    stanza_set_prefix(a, db, "db");
    assert_int_equal(stanza_arena_error(a), 0);
    assert_non_null(r);

    assert_string_equal(stanza_to(m), "r@m.example");
    assert_string_equal(stanza_from(m), "j@c.example");
    assert_string_equal(stanza_type(m), "chat");
    assert_string_equal(stanza_lang(m), "en");
    assert_ptr_equal(stanza_child(m, STANZA_NS_SERVER, "body"), body);
    assert_ptr_equal(stanza_child(m, NULL, "request"), r);
    assert_null(stanza_child(m, "urn:other", "request"));
    assert_int_equal(stanza_child_count(m), 3);
    size_t tl;
    assert_string_equal(stanza_text(body, &tl), "1 < 2 && 3 > 2 'q' \"d\"\r\n");
    assert_int_equal(tl, 24);
    assert_string_equal(stanza_text(m, &tl), "");

    char *out = write_str(m, &stanza_scope_s2s);
    assert_string_equal(out, "<message to='r@m.example' from='j@c.example' type='chat' "
                             "id='a&apos;b&quot;c&lt;d&gt;&amp;&#x9;&#xA;&#xD;' xml:lang='en'>"
                             "<body>1 &lt; 2 &amp;&amp; 3 &gt; 2 'q' \"d\"&#xD;\n</body>"
                             "<request xmlns='urn:xmpp:receipts'/><db:result/></message>");
    free(out);

    /* Replace and remove attributes. */
    assert_int_equal(stanza_set_attr(a, m, "type", "normal"), 0);
    assert_int_equal(stanza_set_attr(a, m, "id", NULL), 0);
    assert_null(stanza_id(m));
    assert_string_equal(stanza_type(m), "normal");
    /* A namespaced attribute without prefix cannot be written. */
    assert_int_equal(stanza_set_attr_ns(a, m, "urn:x", NULL, "a", "b"), -EINVAL);
    stanza_arena_free(a);
}

/* The serializer's output parses back to the same tree. */
static void test_reparse_of_output(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 20), 0);
    stanza_t *m = stanza_new(a, NULL, STANZA_NS_SERVER, "message");
    stanza_set_attr(a, m, "id", "<&>'\"\t\n\r x");
    stanza_t *b = stanza_new(a, m, STANZA_NS_SERVER, "body");
    const char *tricky = "]]> <![CDATA[ \r\n\t &amp;";
    assert_int_equal(stanza_add_text(a, b, tricky, strlen(tricky)), 0);
    /* XML cannot carry a NUL byte. */
    assert_int_equal(stanza_add_text(a, b, "a\0b", 3), -EINVAL);
    stanza_t *y = stanza_new(a, m, "", "nons");
    stanza_set_attr_ns(a, y, "urn:p", "p", "k", "v");
    char *once = write_str(m, &stanza_scope_s2s);
    stanza_t *back = parse_one(a, S2S_HDR, once);
    assert_string_equal(stanza_id(back), "<&>'\"\t\n\r x");
    assert_string_equal(stanza_text(stanza_child(back, NULL, "body"), NULL),
                        "]]> <![CDATA[ \r\n\t &amp;");
    assert_string_equal(stanza_ns(stanza_child(back, NULL, "nons")), "");
    assert_string_equal(stanza_attr_ns(stanza_child(back, NULL, "nons"), "urn:p", "k"), "v");
    char *twice = write_str(back, &stanza_scope_s2s);
    assert_string_equal(once, twice);
    free(once);
    free(twice);
    stanza_arena_free(a);
}

static void test_bounce(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    stanza_t *m = parse_one(a, S2S_HDR,
                            "<message from='j@c.example/b' to='r@m.example' id='m1' "
                            "type='chat'><body>secret</body></message>");
    stanza_t *e = stanza_bounce(a, m, "cancel", "remote-server-not-found", NULL);
    assert_non_null(e);
    char *out = write_str(e, &stanza_scope_s2s);
    assert_string_equal(out, "<message to='j@c.example/b' from='r@m.example' id='m1' type='error'>"
                             "<error type='cancel'><remote-server-not-found "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>");
    free(out);

    stanza_t *iq = parse_one(a, S2S_HDR, "<iq from='a.example' to='b.example' type='get' id='7'/>");
    e = stanza_bounce(a, iq, "wait", "remote-server-timeout", "no answer");
    out = write_str(e, &stanza_scope_s2s);
    assert_string_equal(out, "<iq to='a.example' from='b.example' id='7' type='error'><error "
                             "type='wait'><remote-server-timeout "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text "
                             "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no answer</text></error>"
                             "</iq>");
    free(out);

    /* Never answer an error with an error, nor an iq result. */
    stanza_t *err = parse_one(a, S2S_HDR, "<message type='error' from='a' to='b'/>");
    assert_true(stanza_is_unbounceable(err));
    assert_null(stanza_bounce(a, err, "cancel", "service-unavailable", NULL));
    stanza_t *res = parse_one(a, S2S_HDR, "<iq type='result' id='1' from='a' to='b'/>");
    assert_null(stanza_bounce(a, res, "cancel", "service-unavailable", NULL));
    assert_int_equal(stanza_arena_error(a), 0);
    /* A presence without type is bounceable. */
    stanza_t *pr = parse_one(a, S2S_HDR, "<presence from='a' to='b'/>");
    assert_false(stanza_is_unbounceable(pr));
    stanza_arena_free(a);
}

static void test_clone_independent(void **state)
{
    stanza_arena_t *a, *b;
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    assert_int_equal(stanza_arena_new(&b, 1 << 16), 0);
    stanza_t *m = parse_one(a, S2S_HDR, real_stanzas[3]);
    stanza_t *c = stanza_clone(b, m);
    assert_non_null(c);
    char *want = write_str(m, &stanza_scope_s2s);
    /* Overwrite a's memory: the clone must not refer to it. */
    stanza_arena_reset(a);
    void *junk = stanza_arena_alloc(a, 4000);
    memset(junk, 'Z', 4000);
    char *got = write_str(c, &stanza_scope_s2s);
    assert_string_equal(got, want);
    free(want);
    free(got);
    stanza_arena_free(a);
    stanza_arena_free(b);
}

static void test_arena_limits_and_reuse(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 8192), 0);
    stanza_t *m = stanza_new(a, NULL, STANZA_NS_SERVER, "message");
    assert_non_null(m);
    char big[3000];
    memset(big, 'x', sizeof(big));
    int ret = 0;
    for (int i = 0; i < 10 && ret == 0; i++)
        ret = stanza_add_text(a, m, big, sizeof(big));
    assert_int_equal(ret, FG_ELIMIT);
    assert_int_equal(stanza_arena_error(a), FG_ELIMIT);
    /* Sticky: later calls fail too, and a failed parent chains. */
    assert_null(stanza_new(a, m, NULL, "x"));
    assert_null(stanza_new(a, NULL, NULL, "y"));
    stanza_arena_stats_t st;
    stanza_arena_stats(a, &st);
    assert_true(st.reserved <= 8192);

    /* After a reset the blocks serve again without new allocations. */
    stanza_arena_reset(a);
    assert_int_equal(stanza_arena_error(a), 0);
    uint64_t mallocs = st.mallocs;
    for (int round = 0; round < 100; round++) {
        stanza_arena_reset(a);
        stanza_t *e = stanza_new(a, NULL, STANZA_NS_SERVER, "message");
        assert_int_equal(stanza_add_text(a, e, big, 2000), 0);
        assert_non_null(stanza_new(a, e, "urn:x", "child"));
    }
    stanza_arena_stats(a, &st);
    assert_int_equal(st.mallocs, mallocs);

    /* mark/reset_to keeps what is below the mark. */
    stanza_arena_reset(a);
    stanza_t *keep = stanza_new(a, NULL, NULL, "keep");
    stanza_mark_t mk = stanza_arena_mark(a);
    for (int i = 0; i < 50; i++) {
        stanza_arena_reset_to(a, mk);
        memset(stanza_arena_alloc(a, 1000), 0xAA, 1000);
    }
    assert_string_equal(stanza_name(keep), "keep");
    stanza_arena_trim(a);
    stanza_arena_stats(a, &st);
    assert_true(st.reserved <= 4096 + 64);
    stanza_arena_free(a);
}

static void test_write_namespace_mapped(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    const char *hdr = "<stream:stream xmlns='jabber:component:accept' "
                      "xmlns:stream='http://etherx.jabber.org/streams' to='c.example'>";
    stanza_t *m = parse_one(a, hdr,
                            "<message from='x@c.example' to='y@d.example'><body>b</body>"
                            "<foo xmlns='urn:f'/></message>");
    assert_string_equal(stanza_ns(m), STANZA_NS_COMPONENT);
    buf_t b;
    buf_init(&b, 4096);
    assert_int_equal(
        stanza_write_ns(&b, m, &stanza_scope_s2s, STANZA_NS_COMPONENT, STANZA_NS_SERVER), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal((char *)b.data,
                        "<message from='x@c.example' to='y@d.example'><body>b</body>"
                        "<foo xmlns='urn:f'/></message>");
    /* And back: an s2s stanza written onto a component stream. */
    stanza_t *s = parse_one(a, S2S_HDR, "<message xmlns='jabber:server' to='y@c.example'/>");
    buf_reset(&b);
    assert_int_equal(
        stanza_write_ns(&b, s, &stanza_scope_component, STANZA_NS_SERVER, STANZA_NS_COMPONENT), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal((char *)b.data, "<message to='y@c.example'/>");
    assert_int_equal(stanza_write_ns(&b, s, NULL, NULL, STANZA_NS_SERVER), -EINVAL);
    buf_free(&b);
    stanza_arena_free(a);
}

static void test_write_limit_restores(void **state)
{
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    stanza_t *m = parse_one(a, S2S_HDR, real_stanzas[3]);
    buf_t b;
    buf_init(&b, 64);
    assert_int_equal(buf_append_str(&b, "prefix"), 0);
    assert_int_equal(stanza_write(&b, m, &stanza_scope_s2s), FG_ELIMIT);
    assert_int_equal(b.len, 6);
    buf_free(&b);

    /* Only the start tag, for stream headers. */
    stanza_t *h = stanza_new(a, NULL, STANZA_NS_STREAM, "stream");
    stanza_set_prefix(a, h, "stream");
    stanza_add_decl(a, h, NULL, STANZA_NS_SERVER);
    stanza_add_decl(a, h, "stream", STANZA_NS_STREAM);
    stanza_add_decl(a, h, "db", STANZA_NS_DIALBACK);
    stanza_set_attr(a, h, "from", "a.example");
    buf_init(&b, 1024);
    assert_int_equal(stanza_write_open(&b, h, NULL), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    assert_string_equal((char *)b.data, "<stream:stream xmlns='jabber:server' "
                                        "xmlns:stream='http://etherx.jabber.org/streams' "
                                        "xmlns:db='jabber:server:dialback' from='a.example'>");
    buf_free(&b);
    stanza_arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_real_servers),
        cmocka_unit_test(test_scope_changes_declarations),
        cmocka_unit_test(test_builder_and_escaping),
        cmocka_unit_test(test_reparse_of_output),
        cmocka_unit_test(test_bounce),
        cmocka_unit_test(test_clone_independent),
        cmocka_unit_test(test_arena_limits_and_reuse),
        cmocka_unit_test(test_write_namespace_mapped),
        cmocka_unit_test(test_write_limit_restores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
