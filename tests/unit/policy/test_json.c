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

/* The iterator visits every element (and member) once, in order, with its key. */
static void test_iter(void **state)
{
    (void)state;
    json_tok_t tok[64];
    json_doc_t d;
    const char *text = "{\"a\": [1, {\"x\": [2, 3]}, \"s\"], \"b\": true, \"c\": []}";
    assert_int_equal(json_parse(&d, text, strlen(text), tok, 64), 0);
    json_iter_t it;
    int key = -1, v;
    const char *keys[] = {"a", "b", "c"};
    json_type_t types[] = {JSON_ARRAY, JSON_BOOL, JSON_ARRAY};
    json_iter_init(&it, &d, 0);
    for (int i = 0; i < 3; i++) {
        v = json_iter_next(&it, &key);
        assert_true(v > 0);
        assert_true(json_string_eq(&d, key, keys[i]));
        assert_int_equal(d.tok[v].type, types[i]);
        assert_int_equal(v, json_child(&d, 0, (uint32_t)i));
    }
    assert_int_equal(json_iter_next(&it, &key), -1);
    assert_int_equal(json_iter_next(&it, NULL), -1);
    int arr = json_find(&d, 0, "a");
    json_iter_init(&it, &d, arr);
    json_type_t at[] = {JSON_NUMBER, JSON_OBJECT, JSON_STRING};
    for (int i = 0; i < 3; i++) {
        v = json_iter_next(&it, &key);
        assert_int_equal(key, -1);
        assert_int_equal(d.tok[v].type, at[i]);
    }
    assert_int_equal(json_iter_next(&it, NULL), -1);
    json_iter_init(&it, &d, json_find(&d, 0, "c"));
    assert_int_equal(json_iter_next(&it, NULL), -1);
    json_iter_init(&it, &d, json_find(&d, 0, "b")); /* not a container: nothing */
    assert_int_equal(json_iter_next(&it, NULL), -1);
    json_iter_init(&it, &d, -1);
    assert_int_equal(json_iter_next(&it, NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_element_message),
        cmocka_unit_test(test_iter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
