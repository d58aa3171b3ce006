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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_matches_decide),
        cmocka_unit_test(test_kind_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
