/*
 * The text form of schema values (CLI options, CSV cells, form fields): domain lists split on
 * commas only, each element trimmed and validated whole.
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

static const schema_field_t *list_field(void)
{
    const schema_field_t *f = schema_find(&schema_partner, "additional-domains");
    assert_non_null(f);
    return f;
}

static void test_list_splits_on_commas(void **state)
{
    (void)state;
    partner_t p;
    char err[512];
    partner_defaults(&p);
    assert_int_equal(schema_parse_value(list_field(), &p, " a.example ,B.example,, c.example\t",
                                        err, sizeof(err)),
                     0);
    assert_int_equal(p.n_additional, 3);
    assert_string_equal(p.additional[0], "a.example");
    assert_string_equal(p.additional[1], "b.example");
    assert_string_equal(p.additional[2], "c.example");
    assert_int_equal(schema_parse_value(list_field(), &p, "", err, sizeof(err)), 0);
    assert_int_equal(p.n_additional, 0);
}

/* "bad domain.example" is one element with a space in it, never two domains. */
static void test_list_inner_space_refused(void **state)
{
    (void)state;
    partner_t p;
    char err[512];
    partner_defaults(&p);
    assert_int_equal(schema_parse_value(list_field(), &p, "keep.example", err, sizeof(err)), 0);
    assert_int_equal(
        schema_parse_value(list_field(), &p, "ok.example, bad domain.example", err, sizeof(err)),
        FG_EDOMAIN);
    if (!strstr(err, "\"bad domain.example\"") || !strstr(err, "space"))
        fail_msg("error does not name the element and the reason: %s", err);
    assert_non_null(strstr(err, "additional-domains"));
    /* the list is unchanged */
    assert_int_equal(p.n_additional, 1);
    assert_string_equal(p.additional[0], "keep.example");
    /* a semicolon is not a separator either */
    assert_int_equal(schema_parse_value(list_field(), &p, "a.example;b.example", err, sizeof(err)),
                     FG_EDOMAIN);
    assert_non_null(strstr(err, "\"a.example;b.example\""));
}

/* The element form used by JSON: each element validated whole, the same message as the text. */
static void test_list_items(void **state)
{
    (void)state;
    partner_t p;
    char err[512], text_err[512];
    partner_defaults(&p);
    const char *good[] = {"X.example.", "y.example"};
    assert_int_equal(schema_parse_list(list_field(), &p, good, 2, err, sizeof(err)), 0);
    assert_int_equal(p.n_additional, 2);
    assert_string_equal(p.additional[0], "x.example");
    const char *bad[] = {"z.example", "bad domain.example"};
    assert_int_equal(schema_parse_list(list_field(), &p, bad, 2, err, sizeof(err)), FG_EDOMAIN);
    assert_int_equal(p.n_additional, 2);
    assert_int_equal(
        schema_parse_value(list_field(), &p, "bad domain.example", text_err, sizeof(text_err)),
        FG_EDOMAIN);
    assert_string_equal(err, text_err);
    const char *comma[] = {"a.example,b.example"};
    assert_int_equal(schema_parse_list(list_field(), &p, comma, 1, err, sizeof(err)), FG_EDOMAIN);
    assert_non_null(strstr(err, "\"a.example,b.example\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_splits_on_commas),
        cmocka_unit_test(test_list_inner_space_refused),
        cmocka_unit_test(test_list_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
