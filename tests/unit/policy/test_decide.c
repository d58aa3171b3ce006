/*
 * The partner-type and access decisions: every row of the table in both directions, access
 * scopes resolved from a real store (global, domain, user; most specific wins), a partner type
 * changed in the store taking effect on the next decision, <status/> stripped in place, and the
 * EnableLoggingAllMessageBodies audit line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "core/stanza.h"
#include "policy/decide.h"
#include "policy/lookup.h"
#include "policy/store.h"

#include "policy_test.h"

static decide_t run(decide_dir_t dir, decide_kind_t kind, partner_type_t type, bool access,
                    ledger_answer_t ledger)
{
    decide_in_t in = {.dir = dir, .kind = kind, .type = type, .access = access, .ledger = ledger};
    return decide(&in);
}

static const partner_type_t all_types[] = {PARTNER_FEDERATED, PARTNER_PUBLIC_VERIFIED,
                                           PARTNER_PUBLIC_UNVERIFIED};
static const ledger_answer_t all_ledger[] = {LEDGER_ABSENT, LEDGER_VALID, LEDGER_EXPIRED};

/* Row "partner users may subscribe to our users' presence". */
static void test_inbound_subscribe(void **state)
{
    (void)state;
    for (int l = 0; l < 3; l++) {
        /* Federated and PublicVerified: without our user's approval, invitation or not. */
        for (int t = 0; t < 2; t++) {
            decide_t d = run(DECIDE_INBOUND, DECIDE_K_SUBSCRIBE, all_types[t], true, all_ledger[l]);
            assert_int_equal(d.verdict, DECIDE_PASS);
            assert_false(decide_needs_ledger(DECIDE_INBOUND, DECIDE_K_SUBSCRIBE, all_types[t]));
        }
    }
    assert_true(decide_needs_ledger(DECIDE_INBOUND, DECIDE_K_SUBSCRIBE, PARTNER_PUBLIC_UNVERIFIED));
    /* PublicUnverified: only with a valid invitation; otherwise dropped without any answer. */
    decide_t d =
        run(DECIDE_INBOUND, DECIDE_K_SUBSCRIBE, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_VALID);
    assert_int_equal(d.verdict, DECIDE_ANSWER_INVITE);
    assert_int_equal(d.reason, DECIDE_R_ANSWER_INVITE);
    /* A conversation is not an invitation: no subscription from it. */
    d = run(DECIDE_INBOUND, DECIDE_K_SUBSCRIBE, PARTNER_PUBLIC_UNVERIFIED, true,
            LEDGER_CONVERSATION);
    assert_int_equal(d.reason, DECIDE_R_UNVERIFIED_SUBSCRIBE);
    assert_int_equal(decide_ledger_interval(DECIDE_INBOUND, 600), 600);
    assert_int_equal(decide_ledger_interval(DECIDE_OUTBOUND, 600), 300);
    for (int l = 0; l < 3; l += 2) {
        d = run(DECIDE_INBOUND, DECIDE_K_SUBSCRIBE, PARTNER_PUBLIC_UNVERIFIED, true, all_ledger[l]);
        assert_int_equal(d.verdict, DECIDE_REFUSE);
        assert_int_equal(d.reason, DECIDE_R_UNVERIFIED_SUBSCRIBE);
        assert_false(d.bounce);
        assert_null(d.condition);
    }
    /* The same answer as for a local user without access (our stand-in for "no such user"). */
    decide_t na =
        run(DECIDE_INBOUND, DECIDE_K_SUBSCRIBE, PARTNER_PUBLIC_UNVERIFIED, false, LEDGER_ABSENT);
    assert_int_equal(na.verdict, DECIDE_REFUSE);
    assert_int_equal(na.bounce, d.bounce);
}

/* Row "may message our users who have not added them". */
static void test_inbound_message(void **state)
{
    (void)state;
    for (int l = 0; l < 3; l++)
        for (int t = 0; t < 2; t++) {
            decide_t d = run(DECIDE_INBOUND, DECIDE_K_MESSAGE, all_types[t], true, all_ledger[l]);
            assert_int_equal(d.verdict, DECIDE_PASS);
            assert_int_equal(d.reason, DECIDE_R_PASS);
        }
    decide_t d =
        run(DECIDE_INBOUND, DECIDE_K_MESSAGE, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_VALID);
    assert_int_equal(d.verdict, DECIDE_PASS);
    /* Replies to a conversation our user started pass too. */
    d = run(DECIDE_INBOUND, DECIDE_K_MESSAGE, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_CONVERSATION);
    assert_int_equal(d.verdict, DECIDE_PASS);
    for (int l = 0; l < 3; l += 2) {
        d = run(DECIDE_INBOUND, DECIDE_K_MESSAGE, PARTNER_PUBLIC_UNVERIFIED, true, all_ledger[l]);
        assert_int_equal(d.verdict, DECIDE_REFUSE);
        assert_int_equal(d.reason, DECIDE_R_UNVERIFIED_MESSAGE);
        assert_true(d.bounce);
        assert_string_equal(d.err_type, "cancel");
        assert_string_equal(d.condition, "service-unavailable");
    }
    /* An error reply to something our user sent is never refused nor bounced. */
    d = run(DECIDE_INBOUND, DECIDE_K_MESSAGE_ERROR, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_ABSENT);
    assert_int_equal(d.verdict, DECIDE_PASS);
    assert_false(
        decide_needs_ledger(DECIDE_INBOUND, DECIDE_K_MESSAGE_ERROR, PARTNER_PUBLIC_UNVERIFIED));
}

/* Row "see status notes": outbound presence of every kind. */
static void test_outbound_presence_status(void **state)
{
    (void)state;
    decide_kind_t kinds[] = {DECIDE_K_PRESENCE,   DECIDE_K_PROBE,       DECIDE_K_SUBSCRIBE,
                             DECIDE_K_SUBSCRIBED, DECIDE_K_UNSUBSCRIBE, DECIDE_K_UNSUBSCRIBED};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (int t = 0; t < 3; t++) {
            decide_t d = run(DECIDE_OUTBOUND, kinds[k], all_types[t], true, LEDGER_ABSENT);
            assert_int_equal(d.strip_status, all_types[t] != PARTNER_FEDERATED);
            assert_true(d.verdict != DECIDE_REFUSE);
            if (kinds[k] == DECIDE_K_PRESENCE)
                assert_int_equal(d.verdict, all_types[t] == PARTNER_FEDERATED
                                                ? DECIDE_PASS
                                                : DECIDE_PASS_STRIP_STATUS);
        }
    /* Inbound presence is never edited. */
    for (int t = 0; t < 3; t++) {
        decide_t d = run(DECIDE_INBOUND, DECIDE_K_PRESENCE, all_types[t], true, LEDGER_ABSENT);
        assert_int_equal(d.verdict, DECIDE_PASS);
        assert_false(d.strip_status);
    }
}

/* Our users may always add and message partner users; invitations are recorded for every type. */
static void test_outbound_always(void **state)
{
    (void)state;
    for (int t = 0; t < 3; t++) {
        /* A message to a PublicUnverified user opens a conversation unless one is recorded. */
        bool pu = all_types[t] == PARTNER_PUBLIC_UNVERIFIED;
        assert_int_equal(run(DECIDE_OUTBOUND, DECIDE_K_MESSAGE, all_types[t], true, 0).verdict,
                         pu ? DECIDE_RECORD_MESSAGE : DECIDE_PASS);
        assert_int_equal(
            run(DECIDE_OUTBOUND, DECIDE_K_MESSAGE, all_types[t], true, LEDGER_EXPIRED).verdict,
            pu ? DECIDE_RECORD_MESSAGE : DECIDE_PASS);
        assert_int_equal(
            run(DECIDE_OUTBOUND, DECIDE_K_MESSAGE, all_types[t], true, LEDGER_VALID).verdict,
            DECIDE_PASS);
        assert_int_equal(
            run(DECIDE_OUTBOUND, DECIDE_K_MESSAGE, all_types[t], true, LEDGER_CONVERSATION).verdict,
            DECIDE_PASS);
        assert_int_equal(decide_needs_ledger(DECIDE_OUTBOUND, DECIDE_K_MESSAGE, all_types[t]), pu);
        assert_int_equal(run(DECIDE_OUTBOUND, DECIDE_K_IQ, all_types[t], true, 0).verdict,
                         DECIDE_PASS);
        assert_int_equal(run(DECIDE_OUTBOUND, DECIDE_K_SUBSCRIBE, all_types[t], true, 0).verdict,
                         DECIDE_RECORD_INVITE);
        assert_int_equal(run(DECIDE_OUTBOUND, DECIDE_K_SUBSCRIBED, all_types[t], true, 0).verdict,
                         DECIDE_RECORD_INVITE);
        assert_false(decide_needs_ledger(DECIDE_OUTBOUND, DECIDE_K_SUBSCRIBE, all_types[t]));
    }
}

static void test_remove_both_directions(void **state)
{
    (void)state;
    for (int dir = 0; dir < 2; dir++)
        for (int t = 0; t < 3; t++) {
            decide_t a = run(dir, DECIDE_K_UNSUBSCRIBE, all_types[t], true, LEDGER_ABSENT);
            decide_t b = run(dir, DECIDE_K_UNSUBSCRIBED, all_types[t], true, LEDGER_VALID);
            assert_int_equal(a.verdict, DECIDE_REMOVE_INVITE);
            assert_int_equal(b.verdict, DECIDE_REMOVE_INVITE);
            assert_int_equal(a.reason, DECIDE_R_REMOVE_INVITE);
        }
}

static void test_inbound_subscribed_answers(void **state)
{
    (void)state;
    decide_t d =
        run(DECIDE_INBOUND, DECIDE_K_SUBSCRIBED, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_VALID);
    assert_int_equal(d.verdict, DECIDE_ANSWER_INVITE);
    d = run(DECIDE_INBOUND, DECIDE_K_SUBSCRIBED, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_EXPIRED);
    assert_int_equal(d.verdict, DECIDE_PASS);
}

static void test_no_access(void **state)
{
    (void)state;
    for (int t = 0; t < 3; t++) {
        for (int k = 0; k < DECIDE_K_COUNT_; k++) {
            decide_t o = run(DECIDE_OUTBOUND, k, all_types[t], false, LEDGER_VALID);
            assert_int_equal(o.verdict, DECIDE_REFUSE);
            assert_int_equal(o.reason, DECIDE_R_OUT_NO_ACCESS);
            bool answer = k == DECIDE_K_MESSAGE_ERROR || k == DECIDE_K_IQ_REPLY ||
                          k == DECIDE_K_PRESENCE_ERROR || k == DECIDE_K_OTHER;
            assert_int_equal(o.bounce, !answer);
            if (o.bounce)
                assert_string_equal(o.condition, "not-allowed");

            decide_t i = run(DECIDE_INBOUND, k, all_types[t], false, LEDGER_VALID);
            assert_int_equal(i.verdict, DECIDE_REFUSE);
            assert_int_equal(i.reason, DECIDE_R_IN_NO_ACCESS);
            assert_int_equal(i.bounce, k == DECIDE_K_MESSAGE || k == DECIDE_K_IQ);
            if (i.bounce)
                assert_string_equal(i.condition, "service-unavailable");
        }
    }
    /* Inbound without access answers a message exactly like an uninvited PublicUnverified one. */
    decide_t a = run(DECIDE_INBOUND, DECIDE_K_MESSAGE, PARTNER_FEDERATED, false, LEDGER_ABSENT);
    decide_t b =
        run(DECIDE_INBOUND, DECIDE_K_MESSAGE, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_ABSENT);
    assert_string_equal(a.condition, b.condition);
    assert_string_equal(a.err_type, b.err_type);
}

static stanza_t *make(stanza_arena_t *a, const char *name, const char *type)
{
    stanza_t *s = stanza_new(a, NULL, STANZA_NS_SERVER, name);
    stanza_set_attr(a, s, "from", "alice@example.org/home");
    stanza_set_attr(a, s, "to", "bob@partner.net");
    if (type)
        stanza_set_attr(a, s, "type", type);
    return s;
}

static void test_kind(void **state)
{
    (void)state;
    stanza_arena_t *a;
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    struct {
        const char *name, *type;
        decide_kind_t k;
    } rows[] = {
        {"message", NULL, DECIDE_K_MESSAGE},
        {"message", "chat", DECIDE_K_MESSAGE},
        {"message", "error", DECIDE_K_MESSAGE_ERROR},
        {"iq", "get", DECIDE_K_IQ},
        {"iq", "set", DECIDE_K_IQ},
        {"iq", "result", DECIDE_K_IQ_REPLY},
        {"iq", NULL, DECIDE_K_OTHER},
        {"presence", NULL, DECIDE_K_PRESENCE},
        {"presence", "unavailable", DECIDE_K_PRESENCE},
        {"presence", "probe", DECIDE_K_PROBE},
        {"presence", "subscribe", DECIDE_K_SUBSCRIBE},
        {"presence", "subscribed", DECIDE_K_SUBSCRIBED},
        {"presence", "unsubscribe", DECIDE_K_UNSUBSCRIBE},
        {"presence", "unsubscribed", DECIDE_K_UNSUBSCRIBED},
        {"presence", "error", DECIDE_K_PRESENCE_ERROR},
        {"presence", "bogus", DECIDE_K_OTHER},
        {"result", NULL, DECIDE_K_OTHER},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        stanza_arena_reset(a);
        assert_int_equal(decide_kind(make(a, rows[i].name, rows[i].type)), rows[i].k);
    }
    stanza_arena_free(a);
}

static void test_strip_status(void **state)
{
    (void)state;
    stanza_arena_t *a;
    buf_t out;
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    buf_init(&out, 1 << 16);
    stanza_t *p = make(a, "presence", NULL);
    stanza_t *st = stanza_new(a, p, STANZA_NS_SERVER, "status");
    stanza_add_text(a, st, "in a meeting about the merger", 29);
    stanza_t *show = stanza_new(a, p, STANZA_NS_SERVER, "show");
    stanza_add_text(a, show, "dnd", 3);
    st = stanza_new(a, p, STANZA_NS_SERVER, "status");
    stanza_set_attr_ns(a, st, STANZA_NS_XML, "xml", "lang", "de");
    stanza_add_text(a, st, "Besprechung", 11);
    stanza_new(a, p, "urn:example:status", "status"); /* another namespace: not a note */
    assert_int_equal(stanza_arena_error(a), 0);
    stanza_arena_stats_t before, after;
    stanza_arena_stats(a, &before);

    assert_int_equal(decide_strip_status(p), 2);
    stanza_arena_stats(a, &after);
    assert_int_equal(before.used, after.used); /* in place: nothing allocated */
    assert_int_equal(stanza_write(&out, p, &stanza_scope_s2s), 0);
    buf_append(&out, "", 1);
    assert_null(strstr((char *)out.data, "merger"));
    assert_null(strstr((char *)out.data, "Besprechung"));
    assert_non_null(strstr((char *)out.data, "<show>dnd</show>"));
    assert_non_null(strstr((char *)out.data, "urn:example:status"));
    assert_int_equal(stanza_child_count(p), 2);
    assert_int_equal(decide_strip_status(p), 0);

    /* Kept for Federated: the verdict says not to strip, so the tree is untouched. */
    stanza_arena_reset(a);
    p = make(a, "presence", NULL);
    stanza_add_text(a, stanza_new(a, p, STANZA_NS_SERVER, "status"), "here", 4);
    decide_in_t in = {DECIDE_OUTBOUND, decide_kind(p), PARTNER_FEDERATED, true, LEDGER_ABSENT};
    decide_t d = decide(&in);
    if (d.strip_status)
        decide_strip_status(p);
    assert_non_null(stanza_child(p, NULL, "status"));
    in.type = PARTNER_PUBLIC_VERIFIED;
    d = decide(&in);
    if (d.strip_status)
        decide_strip_status(p);
    assert_null(stanza_child(p, NULL, "status"));
    assert_null(p->first);
    assert_null(p->last);
    buf_free(&out);
    stanza_arena_free(a);
}

static void test_audit_line(void **state)
{
    (void)state;
    stanza_arena_t *a;
    char line[512];
    assert_int_equal(stanza_arena_new(&a, 1 << 16), 0);
    stanza_t *m = make(a, "message", "chat");
    stanza_set_attr(a, m, "id", "m1");
    stanza_add_text(a, stanza_new(a, m, STANZA_NS_SERVER, "body"), "secret \"plan\"\nline2", 19);

    size_t n = decide_audit_line(line, sizeof(line), DECIDE_OUTBOUND, m, false);
    assert_int_equal(n, strlen(line));
    assert_string_equal(
        line, "message out from=alice@example.org/home to=bob@partner.net type=chat id=m1");
    assert_null(strstr(line, "secret"));

    n = decide_audit_line(line, sizeof(line), DECIDE_OUTBOUND, m, true);
    assert_string_equal(line, "message out from=alice@example.org/home to=bob@partner.net "
                              "type=chat id=m1 body=\"secret \\\"plan\\\"\\x0aline2\"");
    assert_int_equal(n, strlen(line));

    /* A small buffer cuts the body and says so; never overflows. */
    char small[90];
    memset(small, 'Z', sizeof(small));
    n = decide_audit_line(small, 80, DECIDE_INBOUND, m, true);
    assert_true(n < 80);
    assert_int_equal(strlen(small), n);
    assert_int_equal(small[80], 'Z');
    assert_string_equal(small + n - 3, "...");
    stanza_arena_free(a);
}

static void changed(store_ctx_t *ctx)
{
    free(ctx->change);
    ctx->change = NULL;
}

/* Access scopes from a real store, and a partner type change seen on the next decision. */
static void test_store_scopes_and_type_change(void **state)
{
    (void)state;
    char *dir = test_tmpdir();
    char err[256];
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = "test:unit"};
    policy_reader_t *r = NULL;
    report_init(&rep, 0);
    assert_non_null(dir);
    assert_int_equal(store_open(dir, STORE_CREATE, &s, err, sizeof(err)), 0);
    assert_int_equal(store_init(s, &ctx, false, &rep), 0);
    changed(&ctx);
    partner_t p;
    partner_defaults(&p);
    strcpy(p.domain, "partner.net");
    assert_int_equal(store_partner_create(s, &ctx, &p, &rep), 0);
    changed(&ctx);
    assert_int_equal(policy_reader_open(dir, &r), 0);

    const policy_partner_t *pp = policy_lookup(r, "partner.net");
    assert_non_null(pp);
    assert_int_equal(pp->rules.type, PARTNER_PUBLIC_UNVERIFIED); /* Lync's default */
    /* Default: nobody has access. */
    assert_false(policy_access(r, "alice@example.org"));
    decide_in_t in = {DECIDE_INBOUND, DECIDE_K_MESSAGE, pp->rules.type,
                      policy_access(r, "alice@example.org"), LEDGER_VALID};
    assert_int_equal(decide(&in).reason, DECIDE_R_IN_NO_ACCESS);

    assert_int_equal(store_access_set(s, &ctx, "global", true, &rep), 0);
    changed(&ctx);
    assert_int_equal(store_access_set(s, &ctx, "domain:example.org", false, &rep), 0);
    changed(&ctx);
    assert_int_equal(store_access_set(s, &ctx, "user:alice@example.org", true, &rep), 0);
    changed(&ctx);
    assert_int_equal(policy_reader_refresh(r), 1);
    assert_true(policy_access(r, "alice@example.org"));  /* user beats domain */
    assert_false(policy_access(r, "carol@example.org")); /* domain beats global */
    assert_true(policy_access(r, "dave@other.org"));     /* global */
    const char *who[] = {"alice@example.org", "carol@example.org", "dave@other.org"};
    const bool want[] = {true, false, true};
    for (int i = 0; i < 3; i++) {
        in.dir = DECIDE_OUTBOUND;
        in.kind = DECIDE_K_MESSAGE;
        in.access = policy_access(r, who[i]);
        assert_int_equal(decide(&in).verdict == DECIDE_PASS, want[i]);
    }
    assert_int_equal(store_access_unset(s, &ctx, "user:alice@example.org", &rep), 0);
    changed(&ctx);
    assert_int_equal(policy_reader_refresh(r), 1);
    assert_false(policy_access(r, "alice@example.org"));

    /* Uninvited message from the PublicUnverified partner refused; the operator makes the
       partner Federated; the next stanza passes without any reconnect. */
    in =
        (decide_in_t){DECIDE_INBOUND, DECIDE_K_MESSAGE, policy_lookup(r, "partner.net")->rules.type,
                      policy_access(r, "dave@other.org"), LEDGER_ABSENT};
    assert_int_equal(decide(&in).reason, DECIDE_R_UNVERIFIED_MESSAGE);
    partner_t q;
    assert_int_equal(store_partner_get(s, "partner.net", &q), 0);
    q.type = PARTNER_FEDERATED;
    assert_int_equal(store_partner_update(s, &ctx, &q, STORE_ANY_REV, &rep), 0);
    changed(&ctx);
    assert_int_equal(policy_reader_refresh(r), 1);
    in.type = policy_lookup(r, "partner.net")->rules.type;
    assert_int_equal(in.type, PARTNER_FEDERATED);
    assert_int_equal(decide(&in).verdict, DECIDE_PASS);

    policy_reader_close(r);
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    test_rmtree(dir);
    free(dir);
}

static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < DECIDE_R_COUNT_; i++)
        for (int j = i + 1; j < DECIDE_R_COUNT_; j++)
            assert_string_not_equal(decide_reason_name(i), decide_reason_name(j));
    assert_string_equal(decide_reason_name(DECIDE_R_UNVERIFIED_MESSAGE), "unverified_message");
    assert_string_equal(decide_verdict_name(DECIDE_REFUSE), "refuse");
    assert_string_equal(decide_verdict_name(DECIDE_RECORD_MESSAGE), "record_message");
    assert_string_equal(decide_reason_name(DECIDE_R_UNVERIFIED_SUBSCRIBE), "unverified_subscribe");
    assert_string_equal(decide_kind_name(DECIDE_K_SUBSCRIBE), "subscribe");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbound_subscribe),
        cmocka_unit_test(test_inbound_message),
        cmocka_unit_test(test_outbound_presence_status),
        cmocka_unit_test(test_outbound_always),
        cmocka_unit_test(test_remove_both_directions),
        cmocka_unit_test(test_inbound_subscribed_answers),
        cmocka_unit_test(test_no_access),
        cmocka_unit_test(test_kind),
        cmocka_unit_test(test_strip_status),
        cmocka_unit_test(test_audit_line),
        cmocka_unit_test(test_store_scopes_and_type_change),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
