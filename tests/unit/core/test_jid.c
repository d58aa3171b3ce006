#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/jid.h"

static void expect_parts(const char *s, const char *local, const char *domain, const char *res)
{
    jid_t j;
    if (jid_parse_str(s, &j) != 0)
        fail_msg("'%s' should parse", s);
    if (local) {
        assert_non_null(j.local);
        assert_int_equal(j.local_len, strlen(local));
        assert_memory_equal(j.local, local, j.local_len);
    } else {
        assert_null(j.local);
    }
    assert_int_equal(j.domain_len, strlen(domain));
    assert_memory_equal(j.domain, domain, j.domain_len);
    if (res) {
        assert_non_null(j.resource);
        assert_int_equal(j.resource_len, strlen(res));
        assert_memory_equal(j.resource, res, j.resource_len);
    } else {
        assert_null(j.resource);
    }
}

static void test_valid(void **state)
{
    expect_parts("example.com", NULL, "example.com", NULL);
    expect_parts("juliet@capulet.example", "juliet", "capulet.example", NULL);
    expect_parts("juliet@capulet.example/balcony", "juliet", "capulet.example", "balcony");
    expect_parts("capulet.example/res", NULL, "capulet.example", "res");
    /* The resource takes everything after the first '/', '@' and '/' included (RFC 7622 §3.1). */
    expect_parts("a@b.example/c@d/e", "a", "b.example", "c@d/e");
    expect_parts("b.example/c@d", NULL, "b.example", "c@d");
    expect_parts("a@b.example/ spaced res ", "a", "b.example", " spaced res ");
    expect_parts("montague.example.", NULL, "montague.example.", NULL);
    expect_parts("[2001:db8::1]", NULL, "[2001:db8::1]", NULL);
    expect_parts("xn--caf-dma.example", NULL, "xn--caf-dma.example", NULL);
    expect_parts("caf\xc3\xa9.example", NULL, "caf\xc3\xa9.example", NULL);
    expect_parts("\xce\xb1@b.example", "\xce\xb1", "b.example", NULL);
    expect_parts("_xmpp.example", NULL, "_xmpp.example", NULL);
    expect_parts("localhost", NULL, "localhost", NULL);
}

static void test_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        "@example.com",     /* empty localpart */
        "a@",               /* empty domain */
        "example.com/",     /* empty resource */
        "a@b@example.com",  /* '@' in the domain */
        "a b@example.com",  /* space in localpart */
        "a\"b@example.com", /* forbidden localpart characters */
        "a&b@example.com",
        "a'b@example.com",
        "a:b@example.com",
        "a<b@example.com",
        "a>b@example.com",
        "exa mple.com",
        "example..com",
        ".example.com",
        "example.com..",
        "ex\x01mple.com",
        "example.com/\x7f",
        "exa\xffmple.com",
        "a@\xc0\x80.example",
        "a@ex\xed\xa0\x80.example", /* surrogate */
        "[::1",
        "[zz::1]",
        "ex:ample.com",
        "exam<ple.com",
        "a@b.example/\xc2\x85", /* C1 control (NEL) */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        jid_t j;
        if (jid_parse_str(bad[i], &j) != FG_EPARSE)
            fail_msg("'%s' should be rejected", bad[i]);
    }
    jid_t j;
    assert_int_equal(jid_parse_str(NULL, &j), FG_EPARSE);
    /* Embedded NUL within the given length. */
    assert_int_equal(jid_parse("a\0b.example", 11, &j), FG_EPARSE);
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_lengths(void **state)
{
    jid_t j;
    /* Labels: 63 bytes fine, 64 not. */
    char *l63 = repeat('a', 63), *l64 = repeat('a', 64);
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s.example", l63);
    assert_int_equal(jid_parse_str(buf, &j), 0);
    snprintf(buf, sizeof(buf), "%s.example", l64);
    assert_int_equal(jid_parse_str(buf, &j), FG_EPARSE);
    free(l63);
    free(l64);

    /* Localpart and resourcepart up to 1023 bytes. */
    char *p1023 = repeat('x', 1023), *p1024 = repeat('x', 1024);
    snprintf(buf, sizeof(buf), "%s@d.example/%s", p1023, p1023);
    assert_int_equal(jid_parse_str(buf, &j), 0);
    assert_int_equal(j.local_len, 1023);
    assert_int_equal(j.resource_len, 1023);
    snprintf(buf, sizeof(buf), "%s@d.example", p1024);
    assert_int_equal(jid_parse_str(buf, &j), FG_EPARSE);
    snprintf(buf, sizeof(buf), "d.example/%s", p1024);
    assert_int_equal(jid_parse_str(buf, &j), FG_EPARSE);
    free(p1023);
    free(p1024);

    /* Domain over 1023 bytes, even with valid labels. */
    char dom[1100] = "";
    while (strlen(dom) < 1030)
        strcat(dom, "abcdefghi.");
    strcat(dom, "x");
    assert_int_equal(jid_domain_check(dom, strlen(dom)), FG_EPARSE);
}

static void test_domain_equal(void **state)
{
    assert_true(jid_domain_equal_str("Example.COM", "example.com"));
    assert_true(jid_domain_equal_str("example.com.", "EXAMPLE.com"));
    assert_true(jid_domain_equal_str("example.com", "example.com."));
    assert_false(jid_domain_equal_str("example.com", "example.co"));
    assert_false(jid_domain_equal_str("example.com..", "example.com"));
    assert_false(jid_domain_equal_str("a.example.com", "example.com"));
    assert_false(jid_domain_equal_str(NULL, "example.com"));
    /* Non-ASCII compares byte for byte: no case folding outside ASCII in core. */
    assert_false(jid_domain_equal_str("CAF\xc3\x89.example", "caf\xc3\xa9.example"));
    assert_true(jid_domain_equal_str("CAF\xc3\xa9.example", "caf\xc3\xa9.example"));
    /* Lengths are honoured: no NUL needed. */
    assert_true(jid_domain_equal("example.comXYZ", 11, "EXAMPLE.COM", 11));
    assert_int_equal(jid_domain_len_noroot("a.", 2), 1);
    assert_int_equal(jid_domain_len_noroot("a", 1), 1);
}

static void test_bare_and_domain(void **state)
{
    jid_t j;
    char out[64];
    assert_int_equal(jid_parse_str("Juliet@Capulet.Example./balcony", &j), 0);
    assert_false(jid_is_domain(&j));
    assert_int_equal(jid_bare(&j, out, sizeof(out)), (int)strlen("Juliet@capulet.example"));
    /* The localpart keeps its case (no PRECIS in core), the domain is lower-cased. */
    assert_string_equal(out, "Juliet@capulet.example");
    assert_int_equal(jid_domain(&j, out, sizeof(out)), 15);
    assert_string_equal(out, "capulet.example");
    assert_int_equal(jid_bare(&j, out, 10), FG_ELIMIT);
    assert_string_equal(out, "");
    assert_int_equal(jid_parse_str("montague.example", &j), 0);
    assert_true(jid_is_domain(&j));
    assert_int_equal(jid_bare(&j, out, 17), 16);
    assert_int_equal(jid_bare(&j, out, 16), FG_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),           cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_lengths),         cmocka_unit_test(test_domain_equal),
        cmocka_unit_test(test_bare_and_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
