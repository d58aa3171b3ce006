/*
 * The policy JSON reader and the schema mapping: domain lists in JSON give the same messages as
 * on the command line; arrays are walked in one pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "policy/json.h"
#include "policy/partner.h"
#include "policy/report.h"
#include "policy/schema.h"

#include "policy_test.h"

static size_t decode_partner(const char *text, partner_t *p, report_t *rep)
{
    static json_tok_t tok[256];
    json_doc_t d;
    assert_int_equal(json_parse(&d, text, strlen(text), tok, 256), 0);
    partner_defaults(p);
    return json_decode_object(&schema_partner, &d, 0, p, rep);
}

/* The message of a bad element names the domain and the reason, as the CLI does. */
static void test_list_element_message(void **state)
{
    (void)state;
    partner_t p;
    report_t rep;
    char cli_err[512];
    report_init(&rep, 0);
    assert_int_equal(
        decode_partner("{\"domain\":\"x.example\",\"additional_domains\":[\"ok.example\","
                       "\"bad domain.example\"]}",
                       &p, &rep),
        1);
    assert_int_equal(p.n_additional, 0);
    partner_t q;
    partner_defaults(&q);
    assert_int_equal(schema_parse_value(schema_find(&schema_partner, "additional-domains"), &q,
                                        "ok.example,bad domain.example", cli_err, sizeof(cli_err)),
                     FG_EDOMAIN);
    /* the CLI line is "additional-domains: <message>"; the report has the field separately */
    const char *cli_msg = strstr(cli_err, ": ") + 2;
    assert_true(report_contains(&rep, REPORT_ERROR, "additional_domains", cli_msg));
    assert_true(
        report_contains(&rep, REPORT_ERROR, "additional_domains", "\"bad domain.example\""));
    assert_false(report_contains(&rep, REPORT_ERROR, NULL, "element"));
    /* a comma inside one element is not a separator */
    report_clear(&rep);
    assert_int_equal(decode_partner("{\"domain\":\"x.example\",\"additional_domains\":"
                                    "[\"a.example,b.example\"]}",
                                    &p, &rep),
                     1);
    assert_true(
        report_contains(&rep, REPORT_ERROR, "additional_domains", "\"a.example,b.example\""));
    /* a non-string element says so, by position */
    report_clear(&rep);
    assert_int_equal(
        decode_partner("{\"domain\":\"x.example\",\"additional_domains\":[\"a.example\",7]}", &p,
                       &rep),
        1);
    assert_true(report_contains(&rep, REPORT_ERROR, "additional_domains", "element 1"));
    /* good lists decode, trimmed */
    report_clear(&rep);
    assert_int_equal(decode_partner("{\"domain\":\"x.example\",\"additional_domains\":"
                                    "[\" A.example \",\"b.example\"]}",
                                    &p, &rep),
                     0);
    assert_int_equal(p.n_additional, 2);
    assert_string_equal(p.additional[0], "a.example");
    report_free(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_element_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
