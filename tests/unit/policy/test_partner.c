/*
 * Partner records: Lync's defaults, the 18 rows of the negotiation matrix through the store (the
 * path fedgate-admin and the web panel use), every validation rule, the text and binary codecs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "policy/partner.h"
#include "policy/schema.h"
#include "policy/settings.h"
#include "policy/store.h"

#include "policy_test.h"

typedef struct {
    char *dir;
    store_t *s;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->dir = test_tmpdir();
    char err[256];
    if (!fx->dir || store_open(fx->dir, STORE_CREATE, &fx->s, err, sizeof(err)))
        return -1;
    store_ctx_t ctx = {.actor = "test"};
    if (store_init(fx->s, &ctx, false, NULL))
        return -1;
    free(ctx.change);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    store_close(fx->s);
    test_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

/* Sets one field the way the CLI does: by option name and text. */
static void set_opt(partner_t *p, const char *opt, const char *text)
{
    char err[512];
    const schema_field_t *f = schema_find(&schema_partner, opt);
    assert_non_null(f);
    int rc = schema_parse_value(f, p, text, err, sizeof(err));
    if (rc)
        fail_msg("%s=%s: %s", opt, text, err);
}

static void test_defaults(void **state)
{
    fx_t *fx = *state;
    partner_t p;
    report_t rep;
    report_init(&rep, 0);
    partner_defaults(&p);
    strcpy(p.domain, "Fabrikam.COM");
    store_ctx_t ctx = {0};
    assert_int_equal(store_partner_create(fx->s, &ctx, &p, &rep), 0);
    free(ctx.change);
    partner_t got;
    assert_int_equal(store_partner_get(fx->s, "fabrikam.com", &got), 0);
    assert_string_equal(got.domain, "fabrikam.com");
    assert_int_equal(got.type, PARTNER_PUBLIC_UNVERIFIED);
    assert_int_equal(got.tls, NEG_REQUIRED);
    assert_int_equal(got.sasl, NEG_REQUIRED);
    assert_true(got.dialback);
    assert_true(got.keepalive);
    assert_false(got.connection_limit_set);
    assert_int_equal(got.n_additional, 0);
    assert_string_equal(got.proxy_host, "");
    assert_string_equal(got.description, "");
    assert_int_equal(got.revision, 1);
    /* lync-spec §7 item 1: the defaults are matrix row 1, saved with a warning */
    assert_int_equal(rep.errors, 0);
    assert_int_equal(rep.warnings, 1);
    assert_true(report_contains(&rep, REPORT_WARNING, "dialback", "row 1"));
    report_free(&rep);
}

/* One matrix row: build the combination from CLI text, commit, check saved or not. */
static const char *const neg_text[] = {"required", "optional", "not-supported"};

static void run_row(fx_t *fx, int row)
{
    int idx = row - 1;
    int sasl = idx / 6, tls = (idx % 6) / 2;
    bool dialback = idx % 2 == 0;
    partner_t p;
    char dom[64];
    report_t rep;
    report_init(&rep, 0);
    partner_defaults(&p);
    snprintf(dom, sizeof(dom), "row%d.example", row);
    set_opt(&p, "domain", dom);
    set_opt(&p, "tls", neg_text[tls]);
    set_opt(&p, "sasl", neg_text[sasl]);
    set_opt(&p, "dialback", dialback ? "true" : "false");
    assert_int_equal(partner_matrix_row(p.tls, p.sasl, p.dialback), row);

    store_ctx_t ctx = {0};
    int rc = store_partner_create(fx->s, &ctx, &p, &rep);
    free(ctx.change);
    partner_t got;
    int found = store_partner_get(fx->s, dom, &got);
    partner_neg_verdict_t want = partner_matrix_verdict(row);
    static const int errors[] = {5, 6, 11, 12, 14, 16, 18}, warnings[] = {1, 3, 4, 9, 10};
    bool is_err = false, is_warn = false;
    for (size_t i = 0; i < 7; i++)
        is_err |= errors[i] == row;
    for (size_t i = 0; i < 5; i++)
        is_warn |= warnings[i] == row;
    assert_int_equal(want, is_err    ? PARTNER_NEG_ERROR
                           : is_warn ? PARTNER_NEG_WARNING
                                     : PARTNER_NEG_OK);
    if (is_err) {
        assert_int_equal(rc, FG_EREFUSED);
        assert_int_equal(found, FG_ENOTFOUND); /* nothing saved */
        assert_int_equal(rep.errors, 1);
        /* the message names the setting to change */
        assert_true(strstr(rep.msg[0].text, "set ") != NULL);
        assert_true(!strcmp(rep.msg[0].field, "sasl") || !strcmp(rep.msg[0].field, "dialback"));
        assert_non_null(ctx.change == NULL ? "" : NULL);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(found, 0);
        assert_int_equal(got.tls, tls);
        assert_int_equal(got.sasl, sasl);
        assert_int_equal(got.dialback, dialback);
        assert_int_equal(rep.errors, 0);
        assert_int_equal(rep.warnings, is_warn ? 1 : 0);
        if (is_warn)
            assert_true(strstr(rep.msg[0].text, "set ") != NULL);
    }
    report_free(&rep);
}

#define ROW(n)                                                                                     \
    static void test_matrix_row_##n(void **state)                                                  \
    {                                                                                              \
        run_row(*state, n);                                                                        \
    }
ROW(1)
ROW(2)
ROW(3)
ROW(4)
ROW(5)
ROW(6)
ROW(7)
ROW(8)
ROW(9)
ROW(10)
ROW(11)
ROW(12)
ROW(13)
ROW(14)
ROW(15)
ROW(16)
ROW(17)
ROW(18)

/* ---- validation rules, each refused with a message naming field and value ---- */

static int validate_one(partner_t *p, report_t *rep)
{
    report_clear(rep);
    return partner_validate(p, 1000, rep);
}

static void base(partner_t *p)
{
    partner_defaults(p);
    strcpy(p->domain, "contoso.com");
    p->dialback = false; /* row 2: no matrix message, so each rule's message stands alone */
}

static void test_rule_primary_domain(void **state)
{
    partner_t p;
    report_t rep;
    report_init(&rep, 0);
    base(&p);
    strcpy(p.domain, "bad domain.com");
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "domain", "\"bad domain.com\""));
    base(&p);
    p.domain[0] = '\0';
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "domain", "empty"));
    base(&p);
    strcpy(p.domain, "Contoso.COM.");
    assert_int_equal(validate_one(&p, &rep), 0);
    assert_string_equal(p.domain, "contoso.com"); /* normalised in place */
    report_free(&rep);
}

static void test_rule_additional_domains(void **state)
{
    partner_t p;
    report_t rep;
    report_init(&rep, 0);
    base(&p);
    set_opt(&p, "additional-domains", "b.contoso.com, A.Contoso.com");
    assert_int_equal(validate_one(&p, &rep), 0);
    assert_string_equal(p.additional[0], "a.contoso.com"); /* sorted */
    /* duplicate */
    strcpy(p.additional[1], "a.contoso.com");
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "additional_domains", "twice"));
    /* equal to the primary */
    base(&p);
    p.n_additional = 1;
    strcpy(p.additional[0], "CONTOSO.com");
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "additional_domains", "primary"));
    /* invalid one, named */
    base(&p);
    p.n_additional = 2;
    strcpy(p.additional[0], "ok.example");
    strcpy(p.additional[1], "not_ok.example");
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "additional_domains", "not_ok.example"));
    /* too many */
    base(&p);
    for (int i = 0; i < PARTNER_MAX_DOMAINS; i++) {
        char d[32];
        snprintf(d, sizeof(d), "d%d.example", i);
        assert_int_equal(partner_add_domain(&p, d), 0);
    }
    assert_int_equal(partner_add_domain(&p, "one-more.example"), FG_ELIMIT);
    assert_int_equal(partner_add_domain(&p, "d1.example"), FG_ECONFLICT);
    assert_int_equal(partner_add_domain(&p, "contoso.com"), FG_ECONFLICT);
    assert_int_equal(partner_remove_domain(&p, "D1.example."), 0);
    assert_int_equal(partner_remove_domain(&p, "d1.example"), FG_ENOTFOUND);
    assert_int_equal(partner_add_domain(&p, "bad..example"), FG_EDOMAIN);
    partner_clear_domains(&p);
    assert_int_equal(p.n_additional, 0);
    char err[256];
    char many[4096] = "";
    for (int i = 0; i <= PARTNER_MAX_DOMAINS; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "x%d.example,", i);
    assert_int_equal(schema_parse_value(schema_find(&schema_partner, "additional-domains"), &p,
                                        many, err, sizeof(err)),
                     FG_ELIMIT);
    report_free(&rep);
}

static void test_rule_enums(void **state)
{
    partner_t p;
    char err[256];
    base(&p);
    const schema_field_t *f = schema_find(&schema_partner, "type");
    assert_int_equal(schema_parse_value(f, &p, "public-verified", err, sizeof(err)), 0);
    assert_int_equal(p.type, PARTNER_PUBLIC_VERIFIED);
    assert_int_equal(schema_parse_value(f, &p, "Federated", err, sizeof(err)), 0);
    assert_int_equal(p.type, PARTNER_FEDERATED);
    assert_int_equal(schema_parse_value(f, &p, "trusted", err, sizeof(err)), FG_EPARSE);
    assert_non_null(strstr(err, "\"trusted\""));
    assert_non_null(strstr(err, "PublicUnverified"));
    f = schema_find(&schema_partner, "tls");
    assert_int_equal(schema_parse_value(f, &p, "Not supported", err, sizeof(err)), 0);
    assert_int_equal(p.tls, NEG_NOT_SUPPORTED);
    assert_int_equal(schema_parse_value(f, &p, "maybe", err, sizeof(err)), FG_EPARSE);
    assert_non_null(strstr(err, "tls"));
    f = schema_find(&schema_partner, "dialback");
    assert_int_equal(schema_parse_value(f, &p, "$False", err, sizeof(err)), 0);
    assert_false(p.dialback);
    assert_int_equal(schema_parse_value(f, &p, "perhaps", err, sizeof(err)), FG_EPARSE);
    /* an out-of-range enum in a struct is refused by validation */
    report_t rep;
    report_init(&rep, 0);
    base(&p);
    p.type = (partner_type_t)7;
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "type", NULL));
    report_free(&rep);
}

static void test_rule_connection_limit(void **state)
{
    partner_t p;
    char err[256];
    report_t rep;
    report_init(&rep, 0);
    base(&p);
    const schema_field_t *f = schema_find(&schema_partner, "connection-limit");
    assert_int_equal(schema_parse_value(f, &p, "-3", err, sizeof(err)), FG_EPARSE);
    assert_non_null(strstr(err, "\"-3\""));
    assert_int_equal(schema_parse_value(f, &p, "12x", err, sizeof(err)), FG_EPARSE);
    assert_int_equal(schema_parse_value(f, &p, "100001", err, sizeof(err)), FG_EPARSE);
    assert_false(p.connection_limit_set);
    assert_int_equal(schema_parse_value(f, &p, "50", err, sizeof(err)), 0);
    assert_true(p.connection_limit_set);
    assert_int_equal(partner_effective_limit(&p, 20), 50);
    assert_int_equal(schema_parse_value(f, &p, "unset", err, sizeof(err)), 0);
    assert_false(p.connection_limit_set);
    assert_int_equal(partner_effective_limit(&p, 20), 20);
    /* 0 is allowed but warned; above the gateway total is warned */
    p.connection_limit_set = true;
    p.connection_limit = 0;
    assert_int_equal(validate_one(&p, &rep), 0);
    assert_true(report_contains(&rep, REPORT_WARNING, "connection_limit", "refuses"));
    p.connection_limit = 5000;
    assert_int_equal(validate_one(&p, &rep), 0);
    assert_true(report_contains(&rep, REPORT_WARNING, "connection_limit", "above"));
    p.connection_limit = PARTNER_CONN_LIMIT_MAX + 1;
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "connection_limit", "out of range"));
    report_free(&rep);
}

static void test_rule_proxy_fqdn(void **state)
{
    partner_t p;
    char err[256], out[300];
    report_t rep;
    report_init(&rep, 0);
    base(&p);
    const schema_field_t *f = schema_find(&schema_partner, "proxy-fqdn");
    assert_int_equal(schema_parse_value(f, &p, "XMPP.Contoso.com:5270", err, sizeof(err)), 0);
    assert_string_equal(p.proxy_host, "xmpp.contoso.com");
    assert_int_equal(p.proxy_port, 5270);
    schema_format_value(f, &p, false, out, sizeof(out));
    assert_string_equal(out, "xmpp.contoso.com:5270");
    assert_int_equal(schema_parse_value(f, &p, "[2001:db8::1]:5269", err, sizeof(err)), 0);
    schema_format_value(f, &p, false, out, sizeof(out));
    assert_string_equal(out, "[2001:db8::1]:5269");
    assert_int_equal(schema_parse_value(f, &p, "proxy:99999", err, sizeof(err)), FG_EPARSE);
    assert_int_equal(schema_parse_value(f, &p, "bad proxy", err, sizeof(err)), FG_EPARSE);
    assert_non_null(strstr(err, "proxy-fqdn"));
    strcpy(p.proxy_host, "bad host");
    assert_int_equal(validate_one(&p, &rep), FG_EREFUSED);
    assert_true(report_contains(&rep, REPORT_ERROR, "proxy_fqdn", "bad host"));
    report_free(&rep);
}

static void test_rule_description(void **state)
{
    partner_t p;
    char err[256];
    base(&p);
    const schema_field_t *f = schema_find(&schema_partner, "description");
    assert_int_equal(schema_parse_value(f, &p, "Contact: Zoë <ops@contoso.com>", err, sizeof(err)),
                     0);
    assert_int_equal(schema_parse_value(f, &p, "line\nbreak", err, sizeof(err)), FG_EPARSE);
    assert_int_equal(schema_parse_value(f, &p, "bad \xc3(", err, sizeof(err)), FG_EPARSE);
    char big[PARTNER_DESCRIPTION_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(schema_parse_value(f, &p, big, err, sizeof(err)), FG_ELIMIT);
    /* revision cannot be set from text */
    assert_int_equal(
        schema_parse_value(schema_find(&schema_partner, "revision"), &p, "9", err, sizeof(err)),
        FG_EREFUSED);
}

static void test_codec_roundtrip(void **state)
{
    partner_t p, q;
    uint8_t buf[SCHEMA_RECORD_MAX];
    size_t len;
    partner_defaults(&p);
    strcpy(p.domain, "fabrikam.com");
    strcpy(p.description, "héllo");
    assert_int_equal(partner_add_domain(&p, "research.fabrikam2.com"), 0);
    assert_int_equal(partner_add_domain(&p, "xmpp.fabrikam.com"), 0);
    p.type = PARTNER_FEDERATED;
    p.tls = NEG_OPTIONAL;
    p.sasl = NEG_NOT_SUPPORTED;
    p.keepalive = false;
    p.connection_limit_set = true;
    p.connection_limit = 7;
    strcpy(p.proxy_host, "proxy.fabrikam.com");
    p.proxy_port = 5269;
    p.revision = 42;
    assert_int_equal(partner_encode(&p, buf, sizeof(buf), &len), 0);
    assert_int_equal(buf[0], SCHEMA_VERSION);
    assert_int_equal(partner_decode(buf, len, &q), 0);
    assert_true(schema_equal(&schema_partner, &p, &q));
    assert_int_equal(q.revision, 42);
    /* truncation anywhere is refused, never read past */
    for (size_t n = 0; n < len; n++) {
        int rc = partner_decode(buf, n, &q);
        assert_true(rc == FG_EPARSE || (rc == 0 && n >= 2));
    }
    /* a newer record version is FG_EVERSION */
    buf[0] = SCHEMA_VERSION + 1;
    assert_int_equal(partner_decode(buf, len, &q), FG_EVERSION);
    buf[0] = SCHEMA_VERSION;
    buf[1] = SCHEMA_KIND_HOSTED;
    assert_int_equal(partner_decode(buf, len, &q), FG_EPARSE);
    /* too small a buffer */
    assert_int_equal(partner_encode(&p, buf, 10, &len), FG_ELIMIT);
}

static void test_unknown_tag_skipped(void **state)
{
    partner_t p, q;
    uint8_t buf[1024];
    size_t len;
    partner_defaults(&p);
    strcpy(p.domain, "a.example");
    assert_int_equal(partner_encode(&p, buf, sizeof(buf), &len), 0);
    /* a field added by a later build: tag 200, 3 bytes */
    memcpy(buf + len, "\xc8\x03\x00xyz", 6);
    assert_int_equal(partner_decode(buf, len + 6, &q), 0);
    assert_string_equal(q.domain, "a.example");
}

int main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_matrix_row_1),
        T(test_matrix_row_2),
        T(test_matrix_row_3),
        T(test_matrix_row_4),
        T(test_matrix_row_5),
        T(test_matrix_row_6),
        T(test_matrix_row_7),
        T(test_matrix_row_8),
        T(test_matrix_row_9),
        T(test_matrix_row_10),
        T(test_matrix_row_11),
        T(test_matrix_row_12),
        T(test_matrix_row_13),
        T(test_matrix_row_14),
        T(test_matrix_row_15),
        T(test_matrix_row_16),
        T(test_matrix_row_17),
        T(test_matrix_row_18),
        cmocka_unit_test(test_rule_primary_domain),
        cmocka_unit_test(test_rule_additional_domains),
        cmocka_unit_test(test_rule_enums),
        cmocka_unit_test(test_rule_connection_limit),
        cmocka_unit_test(test_rule_proxy_fqdn),
        cmocka_unit_test(test_rule_description),
        cmocka_unit_test(test_codec_roundtrip),
        cmocka_unit_test(test_unknown_tag_skipped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
