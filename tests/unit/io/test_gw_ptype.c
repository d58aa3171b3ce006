/* gw_ptype: the kind of a serialized stanza read from its start tag must be the kind
   policy/decide gives the parsed tree, since the daemon decides on the bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/stanza.h"
#include "core/xml.h"
#include "io/gw_ptype.h"

typedef struct {
    stanza_arena_t *arena;
    stanza_t *tree;
} parsed_t;

static int on_event(void *ctx, const xml_event_t *ev)
{
    parsed_t *p = ctx;
    if (ev->type == XML_EV_STANZA && !p->tree)
        p->tree = stanza_clone(p->arena, ev->el);
    return XML_CB_CONTINUE;
}

/* The stanza parsed the way the stream engine parses it, cloned into p->arena. */
static void parse_into(parsed_t *p, const char *s)
{
    static const char open[] = "<stream:stream xmlns='jabber:server' "
                               "xmlns:stream='http://etherx.jabber.org/streams'>";
    xml_parser_t *x = NULL;
    stream_limits_t l;
    stream_limits_default(&l);
    assert_int_equal(xml_parser_new(&x, &l, on_event, p), 0);
    assert_int_equal(xml_feed(x, open, strlen(open), NULL), 0);
    assert_int_equal(xml_feed(x, s, strlen(s), NULL), 0);
    assert_non_null(p->tree);
    xml_parser_free(x);
}

/* decide_kind() of the stanza parsed the way the stream engine parses it. */
static decide_kind_t tree_kind(const char *s)
{
    static const char open[] = "<stream:stream xmlns='jabber:server' "
                               "xmlns:stream='http://etherx.jabber.org/streams'>";
    parsed_t p = {0};
    xml_parser_t *x = NULL;
    stream_limits_t l;
    stream_limits_default(&l);
    assert_int_equal(stanza_arena_new(&p.arena, 1 << 16), 0);
    assert_int_equal(xml_parser_new(&x, &l, on_event, &p), 0);
    assert_int_equal(xml_feed(x, open, strlen(open), NULL), 0);
    assert_int_equal(xml_feed(x, s, strlen(s), NULL), 0);
    assert_non_null(p.tree);
    decide_kind_t k = decide_kind(p.tree);
    xml_parser_free(x);
    stanza_arena_free(p.arena);
    return k;
}

static const struct {
    const char *xml;
    decide_kind_t kind;
} cases[] = {
    {"<message to='a@b' type='chat'><body>x</body></message>", DECIDE_K_MESSAGE},
    {"<message to='a@b'/>", DECIDE_K_MESSAGE},
    {"<message to='a@b' type=\"groupchat\"/>", DECIDE_K_MESSAGE},
    {"<message to='a@b' type='error'><error type='cancel'/></message>", DECIDE_K_MESSAGE_ERROR},
    {"<message from='x@y' type=\"error\"/>", DECIDE_K_MESSAGE_ERROR},
    {"<iq type='get' id='1'><query xmlns='jabber:iq:version'/></iq>", DECIDE_K_IQ},
    {"<iq type='set' id='1'/>", DECIDE_K_IQ},
    {"<iq type='result' id='1'/>", DECIDE_K_IQ_REPLY},
    {"<iq type='error' id='1'/>", DECIDE_K_IQ_REPLY},
    {"<iq type='bogus' id='1'/>", DECIDE_K_OTHER},
    {"<presence to='a@b'><status>x</status></presence>", DECIDE_K_PRESENCE},
    {"<presence to='a@b' type='unavailable'/>", DECIDE_K_PRESENCE},
    {"<presence to='a@b' type='probe'/>", DECIDE_K_PROBE},
    {"<presence to='a@b' type='subscribe'/>", DECIDE_K_SUBSCRIBE},
    {"<presence to='a@b' type='subscribed'/>", DECIDE_K_SUBSCRIBED},
    {"<presence to='a@b' type='unsubscribe'/>", DECIDE_K_UNSUBSCRIBE},
    {"<presence to='a@b' type='unsubscribed'/>", DECIDE_K_UNSUBSCRIBED},
    {"<presence to='a@b' type='error'/>", DECIDE_K_PRESENCE_ERROR},
    /* A type attribute of a child, or one whose name merely ends in "type", is not the
       stanza's type. */
    {"<presence to='a@b'><x type='subscribe'/></presence>", DECIDE_K_PRESENCE},
    {"<presence to='a@b' subtype='subscribe'/>", DECIDE_K_PRESENCE},
    {"<message to='a@b' xtype='error'/>", DECIDE_K_MESSAGE},
    {"<messagex to='a@b'/>", DECIDE_K_OTHER},
    {"<db:result xmlns:db='jabber:server:dialback' to='a' from='b'>k</db:result>", DECIDE_K_OTHER},
};

static void test_kind_matches_decide(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].xml;
        decide_kind_t bytes = gw_ptype_kind(s, strlen(s));
        if (bytes != cases[i].kind || tree_kind(s) != cases[i].kind)
            fail_msg("%s: bytes %s, tree %s, want %s", s, decide_kind_name(bytes),
                     decide_kind_name(tree_kind(s)), decide_kind_name(cases[i].kind));
    }
}

static void test_kind_garbage(void **state)
{
    (void)state;
    assert_int_equal(gw_ptype_kind("junk", 4), DECIDE_K_OTHER);
    assert_int_equal(gw_ptype_kind("<message", 8), DECIDE_K_OTHER); /* no end of tag */
    assert_int_equal(gw_ptype_kind(NULL, 0), DECIDE_K_OTHER);
    /* An unterminated type value is no type at all. */
    const char *s = "<presence type='subscribe>";
    assert_int_equal(gw_ptype_kind(s, strlen(s)), DECIDE_K_PRESENCE);
}

/* Start tags as peers may write them: the audit line read from the tag must be the one of the
   parsed tree, byte for byte. */
static const char *const heads[] = {
    "<message from='al@p.ex/home' to='bob@gw.ex' type='chat' id='m1'><body>hi</body></message>",
    "<message to=\"bob@gw.example\" from=\"a@p\" id=\"x'y\"/>",
    "<message\n  from = 'a@p'\tto='b@g' type='chat'><body>x</body></message>",
    "<message from='a@p' to='b@g' id='&lt;&gt;&amp;&apos;&quot;'/>",
    "<message from='a@p' to='b@g' id='a&#10;b&#x9;c&#13;d&#xE9;&#x1F600;'/>",
    "<message from='a@p' to='b@g' id='line\nbreak\r\nand\rcr\ttab'/>",
    "<message from='a@p' to='b@g' id='gt > inside'><body>x</body></message>",
    "<message xml:lang='en' from='a@p' to='b@g' xmlns:x='urn:x' x:id='not-it' id='it'/>",
    "<message from='caf\xc3\xa9@p' to='b@g'/>",
    "<message/>",
    "<message type='error' from='a@p' to='b@g'><error type='cancel'/></message>",
    "<presence from='a@p' to='b@g' type='subscribe' id='s'/>",
    "<iq from='a@p' to='b@g' type='get' id='q'><query xmlns='jabber:iq:version'/></iq>",
};

static void test_head_same_line(void **state)
{
    (void)state;
    stanza_arena_t *ha = NULL;
    assert_int_equal(stanza_arena_new(&ha, 1 << 16), 0);
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        parsed_t p = {0};
        assert_int_equal(stanza_arena_new(&p.arena, 1 << 16), 0);
        parse_into(&p, heads[i]);
        stanza_arena_reset(ha);
        const stanza_t *h = gw_ptype_head(ha, heads[i], strlen(heads[i]));
        if (!h)
            fail_msg("no head read from %s", heads[i]);
        for (int d = 0; d < 2; d++) {
            char want[1024], got[1024];
            decide_dir_t dir = d ? DECIDE_OUTBOUND : DECIDE_INBOUND;
            decide_audit_line(want, sizeof(want), dir, p.tree, false);
            decide_audit_line(got, sizeof(got), dir, h, false);
            if (strcmp(want, got) != 0)
                fail_msg("%s:\n tree %s\n head %s", heads[i], want, got);
        }
        stanza_arena_free(p.arena);
    }
    stanza_arena_free(ha);
}

static void test_head_refuses(void **state)
{
    (void)state;
    stanza_arena_t *ha = NULL;
    assert_int_equal(stanza_arena_new(&ha, 1 << 16), 0);
    static const char *const bad[] = {
        "<cl:message xmlns:cl='jabber:server' to='b@g'/>", /* prefixed: parse it */
        "<message to='b@g'",                               /* no end of tag */
        "<message to='b@g",                                /* unterminated value */
        "<message to=b@g/>",                               /* unquoted */
        "<message to='&nbsp;'/>",                          /* not a predefined entity */
        "<message to='&#xZZ;'/>",
        "<message to='&#0;'/>",
        "junk",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        stanza_arena_reset(ha);
        if (gw_ptype_head(ha, bad[i], strlen(bad[i])))
            fail_msg("read a head from %s", bad[i]);
    }
    assert_null(gw_ptype_head(ha, NULL, 0));
    stanza_arena_free(ha);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_same_line),
        cmocka_unit_test(test_head_refuses),
        cmocka_unit_test(test_kind_matches_decide),
        cmocka_unit_test(test_kind_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
