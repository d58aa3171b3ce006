#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "tls/tls_ctx.h"
#include "tls/tls_identity.h"
#include "tls_test_pki.h"

static int have_pki;

/* ---- RFC 6125 rules on single names ---------------------------------------------------------- */

typedef struct {
    tls_id_type_t type;
    const char *presented;
    const char *domain;
    int want;
} match_case_t;

static const match_case_t CASES[] = {
    /* DNS-ID: exact, case-insensitive, a trailing dot on either side is the same name. */
    {TLS_ID_DNS, "example.com", "example.com", 1},
    {TLS_ID_DNS, "Example.COM", "example.com", 1},
    {TLS_ID_DNS, "example.com.", "example.com", 1},
    {TLS_ID_DNS, "example.com", "example.com.", 1},
    {TLS_ID_DNS, "example.com", "example.org", 0},
    {TLS_ID_DNS, "example.com", "www.example.com", 0},
    {TLS_ID_DNS, "www.example.com", "example.com", 0},
    {TLS_ID_DNS, "example.com", "", 0},
    {TLS_ID_DNS, "", "example.com", 0},
    /* Wildcard: the whole left-most label, exactly one label. */
    {TLS_ID_DNS, "*.example.com", "foo.example.com", 1},
    {TLS_ID_DNS, "*.EXAMPLE.com", "FOO.example.COM", 1},
    {TLS_ID_DNS, "*.example.com", "bar.foo.example.com", 0},
    {TLS_ID_DNS, "*.example.com", "example.com", 0},
    {TLS_ID_DNS, "*.example.com", ".example.com", 0},
    {TLS_ID_DNS, "*.example", "foo.example", 1},
    /* Partial-label and non-left-most wildcards are refused. */
    {TLS_ID_DNS, "f*.example.com", "foo.example.com", 0},
    {TLS_ID_DNS, "*o.example.com", "foo.example.com", 0},
    {TLS_ID_DNS, "foo.*.com", "foo.example.com", 0},
    {TLS_ID_DNS, "*.*.com", "foo.example.com", 0},
    {TLS_ID_DNS, "*", "com", 0},
    {TLS_ID_DNS, "*.", "foo.", 0},
    /* Never a wildcard inside an IDN A-label. */
    {TLS_ID_DNS, "xn--*.example.com", "xn--bcher-kva.example.com", 0},
    {TLS_ID_DNS, "xn--bc*.example.com", "xn--bcher-kva.example.com", 0},
    {TLS_ID_DNS, "xn--bcher-kva.example.com", "XN--BCHER-KVA.example.com", 1},
    /* The reference is a domain: a '*' in it never matches anything. */
    {TLS_ID_DNS, "*.example.com", "*.example.com", 0},
    {TLS_ID_DNS, "foo.example.com", "*.example.com", 0},
    /* SRV-ID (the service already stripped by the parser) and XmppAddr: exact only. */
    {TLS_ID_SRV, "example.com", "example.com", 1},
    {TLS_ID_SRV, "Example.com", "example.COM", 1},
    {TLS_ID_SRV, "*.example.com", "foo.example.com", 0},
    {TLS_ID_SRV, "example.com", "foo.example.com", 0},
    {TLS_ID_XMPPADDR, "example.com", "example.com", 1},
    {TLS_ID_XMPPADDR, "EXAMPLE.com", "example.com", 1},
    {TLS_ID_XMPPADDR, "user@example.com", "example.com", 0},
    {TLS_ID_XMPPADDR, "example.com/res", "example.com", 0},
    {TLS_ID_XMPPADDR, "*.example.com", "foo.example.com", 0},
    /* CN-ID follows DNS-ID rules (it is only ever present without SANs). */
    {TLS_ID_CN, "cn.example", "cn.example", 1},
    {TLS_ID_CN, "*.example", "cn.example", 1},
    {TLS_ID_CN, "cn.example", "other.example", 0},
};

static void test_match_table(void **state)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const match_case_t *c = &CASES[i];
        int got = tls_identity_match_one(c->type, c->presented, c->domain);
        if (got != c->want)
            fail_msg("case %zu: %s '%s' vs '%s': got %d want %d", i, tls_id_type_name(c->type),
                     c->presented, c->domain, got, c->want);
    }
}

static void test_matches_list(void **state)
{
    tls_id_t ids[] = {{TLS_ID_DNS, "a.example"}, {TLS_ID_SRV, "b.example"}};
    tls_identities_t list = {.count = 2, .ids = ids};
    assert_int_equal(tls_identity_matches(&list, "a.example"), 1);
    assert_int_equal(tls_identity_matches(&list, "B.example"), 1);
    assert_int_equal(tls_identity_matches(&list, "c.example"), 0);
    assert_int_equal(tls_identity_matches(NULL, "a.example"), 0);
    assert_int_equal(tls_identity_matches(&list, NULL), 0);
    tls_identities_t empty = {0};
    assert_int_equal(tls_identity_matches(&empty, "a.example"), 0);
}

static void test_flatten(void **state)
{
    tls_id_t ids[] = {{TLS_ID_DNS, "*.a.example"},
                      {TLS_ID_SRV, "*.b.example"},
                      {TLS_ID_SRV, "b.example"},
                      {TLS_ID_XMPPADDR, "u@c.example"},
                      {TLS_ID_XMPPADDR, "c.example"}};
    tls_identities_t list = {.count = 5, .ids = ids};
    const char *names[8];
    assert_int_equal(tls_identity_flatten(&list, names, 8), 3);
    assert_string_equal(names[0], "*.a.example");
    assert_string_equal(names[1], "b.example");
    assert_string_equal(names[2], "c.example");
    assert_int_equal(tls_identity_flatten(&list, names, 1), 1);
    assert_int_equal(tls_identity_flatten(NULL, names, 8), 0);
}

/* ---- identities read from generated certificates ----------------------------------------- */

static uint8_t der[16384];

static void parse_named(const char *name, tls_identities_t *ids)
{
    int n = tls_test_pki_der(name, der, sizeof der);
    assert_true(n > 0);
    assert_int_equal(tls_identity_parse(der, (size_t)n, ids), 0);
}

static void assert_has(const tls_identities_t *ids, tls_id_type_t type, const char *name)
{
    for (size_t i = 0; i < ids->count; i++)
        if (ids->ids[i].type == type && strcmp(ids->ids[i].name, name) == 0)
            return;
    fail_msg("identity %s:%s not found among %zu", tls_id_type_name(type), name, ids->count);
}

static void test_parse_dns(void **state)
{
    tls_identities_t ids;
    if (!have_pki)
        skip();
    parse_named("a", &ids);
    assert_int_equal(ids.count, 1);
    assert_has(&ids, TLS_ID_DNS, "a.example");
    assert_true(tls_identity_matches(&ids, "a.example"));
    assert_false(tls_identity_matches(&ids, "b.example"));
    /* Validity read from the certificate: issued now for 825 days. */
    assert_true(ids.not_before > 1700000000);
    assert_true(ids.not_after > ids.not_before + 800 * 86400);
    tls_identities_free(&ids);
    assert_int_equal(ids.count, 0);
}

static void test_parse_wildcard(void **state)
{
    tls_identities_t ids;
    if (!have_pki)
        skip();
    parse_named("wild", &ids);
    assert_has(&ids, TLS_ID_DNS, "*.example");
    assert_true(tls_identity_matches(&ids, "foo.example"));
    assert_true(tls_identity_matches(&ids, "xn--bcher-kva.example"));
    assert_false(tls_identity_matches(&ids, "example"));
    assert_false(tls_identity_matches(&ids, "a.b.example"));
    tls_identities_free(&ids);
}

static void test_parse_srv(void **state)
{
    tls_identities_t ids;
    if (!have_pki)
        skip();
    parse_named("srv", &ids);
    assert_int_equal(ids.count, 1);
    assert_has(&ids, TLS_ID_SRV, "srv.example");
    assert_true(tls_identity_matches(&ids, "srv.example"));
    assert_false(tls_identity_matches(&ids, "_xmpp-server.srv.example"));
    tls_identities_free(&ids);
}

static void test_parse_xmppaddr(void **state)
{
    tls_identities_t ids;
    if (!have_pki)
        skip();
    parse_named("xmpp", &ids);
    assert_int_equal(ids.count, 1);
    assert_has(&ids, TLS_ID_XMPPADDR, "xmpp.example");
    assert_true(tls_identity_matches(&ids, "xmpp.example"));
    tls_identities_free(&ids);
}

static void test_parse_cn_rules(void **state)
{
    tls_identities_t ids;
    if (!have_pki)
        skip();
    /* No SAN at all: the CN is the identity. */
    parse_named("cnonly", &ids);
    assert_int_equal(ids.count, 1);
    assert_has(&ids, TLS_ID_CN, "cn.example");
    assert_true(tls_identity_matches(&ids, "cn.example"));
    tls_identities_free(&ids);
    /* A DNS-ID present: the CN is ignored. */
    parse_named("sancn", &ids);
    assert_int_equal(ids.count, 1);
    assert_has(&ids, TLS_ID_DNS, "san.example");
    assert_false(tls_identity_matches(&ids, "cn-ignored.example"));
    tls_identities_free(&ids);
    /* Same for SRV-ID and XmppAddr certificates, which have no CN: nothing else appears. */
    parse_named("selfsigned", &ids);
    assert_int_equal(ids.count, 1);
    assert_has(&ids, TLS_ID_DNS, "a.example");
    tls_identities_free(&ids);
}

/* Hostile input: every truncation and every single-byte corruption of a real certificate is
 * either parsed or refused, never read out of bounds (ASan watches). */
static void test_parse_malformed(void **state)
{
    tls_identities_t ids;
    if (!have_pki)
        skip();
    int r0 = tls_test_pki_der("srv", der, sizeof der);
    assert_true(r0 > 100 && r0 < (int)sizeof der);
    size_t n = (size_t)r0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *copy = malloc(len + 1); /* exact size so ASan sees any overread */
        memcpy(copy, der, len);
        int r = tls_identity_parse(copy, len, &ids);
        assert_true(r == FG_EPARSE || r == 0);
        tls_identities_free(&ids);
        free(copy);
    }
    uint8_t *copy = malloc(n);
    for (size_t i = 0; i < n; i++) {
        for (int v = 0; v < 256; v += 37) {
            memcpy(copy, der, n);
            copy[i] ^= (uint8_t)(v | 1);
            int r = tls_identity_parse(copy, n, &ids);
            assert_true(r == FG_EPARSE || r == 0);
            for (size_t k = 0; k < ids.count; k++)
                assert_true(strlen(ids.ids[k].name) <= TLS_IDENTITY_NAME_MAX);
            tls_identities_free(&ids);
        }
    }
    free(copy);
    static const uint8_t junk[] = {0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x00};
    assert_int_equal(tls_identity_parse(junk, sizeof junk, &ids), FG_EPARSE);
    assert_int_equal(tls_identity_parse(junk, 0, &ids), FG_EPARSE);
    assert_int_equal(ids.count, 0);
}

static int group_setup(void **state)
{
    have_pki = tls_test_pki_create() == 0;
    return tls_global_init(0);
}

static int group_teardown(void **state)
{
    tls_test_pki_remove();
    tls_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_table),     cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_matches_list),    cmocka_unit_test(test_parse_dns),
        cmocka_unit_test(test_parse_wildcard),  cmocka_unit_test(test_parse_srv),
        cmocka_unit_test(test_parse_xmppaddr),  cmocka_unit_test(test_parse_cn_rules),
        cmocka_unit_test(test_parse_malformed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
