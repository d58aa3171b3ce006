#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "core/sasl.h"

static int dec(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    int rc = sasl_b64_decode(s, strlen(s), (uint8_t *)out, cap, &n);
    if (rc == 0)
        out[n] = '\0';
    return rc == 0 ? (int)n : rc;
}

static void test_b64_valid(void **state)
{
    char out[64];
    assert_int_equal(dec("Y2FwdWxldC5saXQ=", out, sizeof(out)), 11);
    assert_string_equal(out, "capulet.lit");
    assert_int_equal(dec("=", out, sizeof(out)), 0);
    assert_int_equal(dec("", out, sizeof(out)), 0);
    assert_int_equal(dec("Zm9vYg==", out, sizeof(out)), 4);
    assert_string_equal(out, "foob");
    assert_int_equal(dec("Zm9vYmFy", out, sizeof(out)), 6);
    assert_string_equal(out, "foobar");
    /* The XEP-0178 v0.6 example decodes, with its trailing LF kept. */
    assert_int_equal(dec("Y29uZmVyZW5jZS5leGFtcGxlLm9yZwo=", out, sizeof(out)), 23);
    assert_string_equal(out, "conference.example.org\n");
}

static void test_b64_strict(void **state)
{
    char out[64];
    const char *bad[] = {
        "Y2FwdWxldC5saXQ",      /* length not a multiple of 4 */
        "Y2Fw dWxldC5saXQ=",    /* whitespace */
        "Y2Fw\ndWxldC5saXQ=",   /* line break */
        "Y2F=dWxldC5saXQ=",     /* '=' in the middle */
        "====",                 /* only padding */
        "Y===",                 /* three pads */
        "Zm9vYh==",             /* non-zero unused bits */
        "Zm9vYmF=",             /* non-zero unused bits, one pad */
        "Y2Fw*WxldC5saXQ=",     /* outside the alphabet */
        "Y2FwdWxldC5saXQ=Zm9v", /* data after padding */
        "Y2Fw-WxldC5saXQ=",     /* base64url is not base64 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(dec(bad[i], out, sizeof(out)), FG_EPARSE);
    assert_int_equal(dec("Zm9vYmFy", out, 5), FG_ELIMIT);
}

static void test_b64_roundtrip(void **state)
{
    uint8_t in[40];
    char enc[80];
    uint8_t back[40];
    for (size_t n = 0; n <= sizeof(in); n++) {
        for (size_t i = 0; i < n; i++)
            in[i] = (uint8_t)(i * 37 + n);
        int len = sasl_b64_encode(in, n, enc, sizeof(enc));
        assert_true(len > 0);
        size_t got = 99;
        assert_int_equal(sasl_b64_decode(enc, (size_t)len, back, sizeof(back), &got), 0);
        assert_int_equal(got, n);
        assert_memory_equal(back, in, n);
    }
    assert_int_equal(sasl_b64_encode("abcdef", 6, enc, 8), FG_ELIMIT);
}

static void test_authzid(void **state)
{
    const uint8_t *u;
#define CHECK(s, claimed) sasl_authzid_check((u = (const uint8_t *)(s)), strlen(s), claimed)
    assert_int_equal(CHECK("", "capulet.lit"), SASL_AUTHZ_OK);
    assert_int_equal(CHECK("capulet.lit", "capulet.lit"), SASL_AUTHZ_OK);
    assert_int_equal(CHECK("Capulet.LIT", "capulet.lit"), SASL_AUTHZ_OK);
    assert_int_equal(CHECK("conference.example.org\n", "conference.example.org"),
                     SASL_AUTHZ_INVALID);
    assert_int_equal(CHECK("juliet@capulet.lit", "capulet.lit"), SASL_AUTHZ_INVALID);
    assert_int_equal(CHECK("capulet.lit/res", "capulet.lit"), SASL_AUTHZ_INVALID);
    assert_int_equal(CHECK("capulet.lit ", "capulet.lit"), SASL_AUTHZ_INVALID);
    assert_int_equal(CHECK("montague.lit", "capulet.lit"), SASL_AUTHZ_MISMATCH);
    uint8_t nul[] = {'a', 0, 'b'};
    assert_int_equal(sasl_authzid_check(nul, 3, "a"), SASL_AUTHZ_INVALID);
#undef CHECK
    (void)u;
}

static void test_cert_covers(void **state)
{
    const char *names[] = {"capulet.lit", "*.example.com"};
    assert_true(sasl_cert_covers(names, 2, "capulet.lit"));
    assert_true(sasl_cert_covers(names, 2, "CAPULET.lit."));
    assert_true(sasl_cert_covers(names, 2, "foo.example.com"));
    assert_false(sasl_cert_covers(names, 2, "bar.foo.example.com"));
    assert_false(sasl_cert_covers(names, 2, "example.com"));
    assert_false(sasl_cert_covers(names, 2, "montague.lit"));
    assert_false(sasl_cert_covers(names, 0, "capulet.lit"));
    /* One label under a single-label suffix, as tls_identity_match_one() decides it. */
    const char *single[] = {"*.example"};
    assert_true(sasl_cert_covers(single, 1, "a.example"));
    assert_false(sasl_cert_covers(single, 1, "example"));
    assert_false(sasl_cert_covers(single, 1, "b.a.example"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_valid),     cmocka_unit_test(test_b64_strict),
        cmocka_unit_test(test_b64_roundtrip), cmocka_unit_test(test_authzid),
        cmocka_unit_test(test_cert_covers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
