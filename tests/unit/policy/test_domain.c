#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "policy/access.h"
#include "policy/domain.h"

static void expect_ok(const char *in, const char *want)
{
    char out[DOMAIN_BUF];
    const char *why = "unset";
    int rc = domain_normalize_why(in, out, sizeof(out), &why);
    if (rc)
        fail_msg("%s: %s", in, why);
    assert_string_equal(out, want);
    assert_null(why);
}

static void expect_bad(const char *in, const char *reason_part)
{
    char out[DOMAIN_BUF];
    const char *why = NULL;
    assert_int_equal(domain_normalize_why(in, out, sizeof(out), &why), FG_EDOMAIN);
    assert_string_equal(out, "");
    assert_non_null(why);
    if (reason_part && !strstr(why, reason_part))
        fail_msg("%s: reason \"%s\" lacks \"%s\"", in, why, reason_part);
}

static void test_case_and_trailing_dot(void **state)
{
    expect_ok("Example.COM", "example.com");
    expect_ok("example.com.", "example.com");
    expect_ok("XMPP.Fabrikam.Com.", "xmpp.fabrikam.com");
    expect_ok("a", "a");
    expect_ok("1.2.3.example", "1.2.3.example");
}

static void test_idn_to_alabel(void **state)
{
    expect_ok("bücher.example", "xn--bcher-kva.example");
    expect_ok("BÜCHER.example", "xn--bcher-kva.example");
    expect_ok("XN--BCHER-KVA.example", "xn--bcher-kva.example");
    expect_ok("пример.рф", "xn--e1afmkfd.xn--p1ai");
    /* Non-transitional: ß stays ß (xn--zca...), it is not mapped to "ss". */
    expect_ok("faß.de", "xn--fa-hia.de");
}

static void test_bad_idn(void **state)
{
    expect_bad("xn--a.example", NULL); /* not valid Punycode */
    expect_bad("a\xff"
               "b.example",
               NULL); /* not UTF-8 */
    expect_bad("\xe2\x98\x83--.example", NULL);
}

static void test_lengths(void **state)
{
    char name[300];
    /* 63-octet label is fine, 64 is not */
    memset(name, 'a', 63);
    strcpy(name + 63, ".com");
    expect_ok(name, name);
    memset(name, 'a', 64);
    strcpy(name + 64, ".com");
    expect_bad(name, "63");
    /* 253 octets total is fine (4 labels of 63 + dots = 255 is not) */
    memset(name, 0, sizeof(name));
    for (int i = 0; i < 4; i++) {
        memset(name + i * 64, 'b', 63);
        name[i * 64 + 63] = '.';
    }
    name[253] = '\0'; /* last label 61 chars */
    assert_int_equal(strlen(name), 253);
    expect_ok(name, name);
    name[253] = 'c';
    name[254] = '\0';
    assert_int_equal(strlen(name), 254);
    expect_bad(name, "253");
    /* 254 with a trailing dot is 253 without it: fine */
    name[253] = '.';
    char want[300];
    memcpy(want, name, 253);
    want[253] = '\0';
    expect_ok(name, want);
}

static void test_bad_characters(void **state)
{
    expect_bad("", "empty");
    expect_bad(".", "empty");
    expect_bad("a..b", "empty label");
    expect_bad(".example.com", "empty label");
    expect_bad("exa mple.com", "space");
    expect_bad("ex_ample.com", "letter, digit or hyphen");
    expect_bad("ex@mple.com", "letter, digit or hyphen");
    expect_bad("-abc.com", "hyphen");
    expect_bad("abc-.com", "hyphen");
    expect_bad("tab\there.com", "control");
    expect_bad(NULL, "empty");
}

/* RFC 3696 §2: no top-level domain is all digits, so such a name is an address, not a domain. */
static void test_ip_literals_refused(void **state)
{
    expect_bad("1.2.3.4", "an IP address is not a domain; name the partner by its XMPP domain");
    expect_bad("10.0.0.1.", "IP address");
    expect_bad("127.1", "IP address");
    expect_bad("3232235777", "IP address");
    expect_bad("999.999.999.999", "IP address");
    expect_bad("::1", "IP address");
    expect_bad("2001:db8::1", "IP address");
    expect_bad("[2001:db8::1]", "IP address");
    expect_bad("\xef\xbc\x91.\xef\xbc\x92.\xef\xbc\x93.\xef\xbc\x94", "IP address"); /* fullwidth */
    expect_bad("example.123", "all digits");
    expect_ok("1.2.3.example", "1.2.3.example");
    expect_ok("123.example", "123.example");
    expect_ok("example.c0m", "example.c0m");
    expect_ok("4chan.org", "4chan.org");
    /* a connect target may still be an address */
    char host[DOMAIN_BUF];
    unsigned port;
    const char *why;
    assert_int_equal(domain_parse_hostport("1.2.3.4:5269", false, host, sizeof(host), &port, &why),
                     0);
    assert_string_equal(host, "1.2.3.4");
    assert_int_equal(port, 5269);
    assert_int_equal(domain_parse_hostport("1.2.3.4", false, host, sizeof(host), &port, &why), 0);
    assert_string_equal(host, "1.2.3.4");
    assert_int_equal(domain_parse_hostport("1.2.3.999", false, host, sizeof(host), &port, &why),
                     FG_EDOMAIN);
    /* the lookup key form still takes an address, so a record stored before the rule can be
       found and removed */
    assert_int_equal(domain_normalize_key("1.2.3.4.", host, sizeof(host), &why), 0);
    assert_string_equal(host, "1.2.3.4");
    assert_int_equal(domain_normalize_key("bad domain", host, sizeof(host), &why), FG_EDOMAIN);
}

static void test_error_line_names_domain(void **state)
{
    char out[DOMAIN_BUF], line[512];
    const char *why;
    assert_int_equal(domain_normalize_why("bad_domain.com", out, sizeof(out), &why), FG_EDOMAIN);
    domain_error_line("bad_domain.com", why, line, sizeof(line));
    assert_non_null(strstr(line, "\"bad_domain.com\""));
    assert_non_null(strstr(line, "invalid domain"));
    domain_error_line("a\"b\n", "x", line, sizeof(line));
    assert_non_null(strstr(line, "a\\x22b\\x0a"));
}

static void test_small_output(void **state)
{
    char out[4];
    assert_int_equal(domain_normalize("example.com", out, sizeof(out)), FG_ELIMIT);
}

static void test_glob(void **state)
{
    assert_true(domain_glob_match("*.org", "jabber.org"));
    assert_false(domain_glob_match("*.org", "jabber.org.uk"));
    assert_true(domain_glob_match("FAB*", "fabrikam.com"));
    assert_true(domain_glob_match("?abrikam.com", "fabrikam.com"));
    assert_true(domain_glob_match("*", "x"));
    assert_false(domain_glob_match("contoso.com", "fabrikam.com"));
}

static void test_hostport(void **state)
{
    char host[DOMAIN_BUF];
    unsigned port;
    const char *why;
    assert_int_equal(
        domain_parse_hostport("Proxy.Example.com:5270", false, host, sizeof(host), &port, &why), 0);
    assert_string_equal(host, "proxy.example.com");
    assert_int_equal(port, 5270);
    assert_int_equal(
        domain_parse_hostport("proxy.example.com", false, host, sizeof(host), &port, &why), 0);
    assert_int_equal(port, 0);
    assert_int_equal(domain_parse_hostport("[::1]:5269", true, host, sizeof(host), &port, &why), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(domain_parse_hostport("10.0.0.1:53", true, host, sizeof(host), &port, &why),
                     0);
    assert_string_equal(host, "10.0.0.1");
    assert_int_not_equal(
        domain_parse_hostport("proxy.example.com:0", false, host, sizeof(host), &port, &why), 0);
    assert_int_not_equal(
        domain_parse_hostport("proxy.example.com:70000", false, host, sizeof(host), &port, &why),
        0);
    assert_int_not_equal(domain_parse_hostport("::1:5269", true, host, sizeof(host), &port, &why),
                         0);
    assert_int_not_equal(domain_parse_hostport("10.0.0.1", true, host, sizeof(host), &port, &why),
                         0);
    assert_int_not_equal(
        domain_parse_hostport("bad host:1", false, host, sizeof(host), &port, &why), 0);
}

static void test_access_keys(void **state)
{
    char key[ACCESS_KEY_MAX];
    access_scope_t sc;
    const char *why;
    assert_int_equal(access_key_parse("global", &sc, key, sizeof(key), &why), 0);
    assert_int_equal(sc, ACCESS_GLOBAL);
    assert_int_equal(access_key_parse("domain:Example.COM.", &sc, key, sizeof(key), &why), 0);
    assert_string_equal(key, "domain:example.com");
    assert_int_equal(access_key_parse("user:Alice@Example.com", &sc, key, sizeof(key), &why), 0);
    assert_string_equal(key, "user:alice@example.com");
    assert_int_equal(sc, ACCESS_USER);
    assert_int_equal(access_key_parse("bob@bücher.example", &sc, key, sizeof(key), &why), 0);
    assert_string_equal(key, "user:bob@xn--bcher-kva.example");
    assert_int_not_equal(
        access_key_parse("user:alice@example.com/res", &sc, key, sizeof(key), &why), 0);
    assert_int_not_equal(access_key_parse("user:@example.com", &sc, key, sizeof(key), &why), 0);
    assert_int_not_equal(access_key_parse("", &sc, key, sizeof(key), &why), 0);
    char longjid[700];
    memset(longjid, 'a', 600);
    strcpy(longjid + 600, "@example.com");
    assert_int_equal(access_key_parse(longjid, &sc, key, sizeof(key), &why), FG_EPARSE);
    assert_non_null(strstr(why, "500"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_and_trailing_dot),
        cmocka_unit_test(test_idn_to_alabel),
        cmocka_unit_test(test_bad_idn),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_bad_characters),
        cmocka_unit_test(test_ip_literals_refused),
        cmocka_unit_test(test_error_line_names_domain),
        cmocka_unit_test(test_small_output),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_access_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
