#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cli_common.h"
#include "admin/cli_csv.h"
#include "admin/cli_store.h"
#include "core/err.h"

static const cli_opt_t opts[] = {
    {"what-if", CLI_OPT_FLAG, NULL, "dry run"},
    {"tls", CLI_OPT_VALUE, "MODE", "tls"},
    {"add-domain", CLI_OPT_VALUE, "D", "add"},
    {"help", CLI_OPT_FLAG, NULL, "help"},
    {NULL, 0, NULL, NULL},
};

static void test_args_order_and_forms(void **state)
{
    char *argv[] = {"x.example",    "--tls",     "optional", "--add-domain=a.example", "--what-if",
                    "--add-domain", "b.example", "--",       "--not-an-option"};
    cli_args_t a;
    assert_int_equal(cli_args_parse(&a, opts, 9, argv), 0);
    assert_int_equal(a.n_pos, 2);
    assert_string_equal(a.pos[0], "x.example");
    assert_string_equal(a.pos[1], "--not-an-option");
    assert_string_equal(cli_args_value(&a, "tls"), "optional");
    assert_true(cli_args_flag(&a, "what-if"));
    assert_int_equal(cli_args_count(&a, "add-domain"), 2);
    /* Occurrences keep command-line order: the list edits are applied in that order. */
    assert_string_equal(a.occ[1].value, "a.example");
    assert_string_equal(a.occ[3].value, "b.example");
    assert_null(cli_args_value(&a, "help"));
}

static void test_args_errors(void **state)
{
    cli_args_t a;
    char *unknown[] = {"--bogus"};
    assert_int_equal(cli_args_parse(&a, opts, 1, unknown), CLI_EXIT_USAGE);
    char *missing[] = {"--tls"};
    assert_int_equal(cli_args_parse(&a, opts, 1, missing), CLI_EXIT_USAGE);
    char *flagval[] = {"--what-if=yes"};
    assert_int_equal(cli_args_parse(&a, opts, 1, flagval), CLI_EXIT_USAGE);
    char *twice[] = {"--tls", "a", "--tls", "b"};
    assert_int_equal(cli_args_parse(&a, opts, 4, twice), 0);
    assert_int_equal(cli_args_once(&a, "tls"), CLI_EXIT_USAGE);
    char *h[] = {"-h"};
    assert_int_equal(cli_args_parse(&a, opts, 1, h), 0);
    assert_true(cli_args_flag(&a, "help"));
}

static void test_exit_codes(void **state)
{
    assert_int_equal(cli_exit_from_err(0), 0);
    assert_int_equal(cli_exit_from_err(FG_EREFUSED), 1);
    assert_int_equal(cli_exit_from_err(FG_EDOMAIN), 1);
    assert_int_equal(cli_exit_from_err(FG_EPARSE), 1);
    assert_int_equal(cli_exit_from_err(FG_ENOTFOUND), 3);
    assert_int_equal(cli_exit_from_err(FG_ECONFLICT), 4);
    assert_int_equal(cli_exit_from_err(FG_ESTORE), 5);
    assert_int_equal(cli_exit_from_err(FG_EVERSION), 5);
    assert_int_equal(cli_exit_from_err(-EACCES), 5);
}

static void test_parse_values(void **state)
{
    uint32_t v;
    bool b;
    assert_int_equal(cli_parse_u32("4294967295", &v), 0);
    assert_int_equal(v, 4294967295u);
    assert_int_equal(cli_parse_u32("4294967296", &v), FG_EPARSE);
    assert_int_equal(cli_parse_u32("-1", &v), FG_EPARSE);
    assert_int_equal(cli_parse_u32("12abc", &v), FG_EPARSE);
    assert_int_equal(cli_parse_u32("", &v), FG_EPARSE);
    assert_int_equal(cli_parse_bool("$True", &b), 0);
    assert_true(b);
    assert_int_equal(cli_parse_bool("off", &b), 0);
    assert_false(b);
    assert_int_equal(cli_parse_bool("maybe", &b), FG_EPARSE);
}

static void test_parse_time(void **state)
{
    int64_t t;
    const int64_t now = 1700000000000;
    assert_int_equal(cli_parse_time("@1700000000", now, &t), 0);
    assert_int_equal(t, 1700000000000);
    assert_int_equal(cli_parse_time("2023-11-14", now, &t), 0);
    assert_int_equal(t, 1699920000000);
    assert_int_equal(cli_parse_time("2023-11-14T22:13:20Z", now, &t), 0);
    assert_int_equal(t, 1700000000000);
    assert_int_equal(cli_parse_time("2023-11-14T22:13", now, &t), 0);
    assert_int_equal(t, 1699999980000);
    assert_int_equal(cli_parse_time("15m", now, &t), 0);
    assert_int_equal(t, now - 900000);
    assert_int_equal(cli_parse_time("7d", now, &t), 0);
    assert_int_equal(t, now - 7 * 86400000LL);
    assert_int_equal(cli_parse_time("yesterday", now, &t), FG_EPARSE);
    assert_int_equal(cli_parse_time("2023-13-45", now, &t), FG_EPARSE);
    assert_int_equal(cli_parse_time("2023-11-14junk", now, &t), FG_EPARSE);
    assert_int_equal(cli_parse_time("-5m", now, &t), FG_EPARSE);
}

typedef struct {
    size_t rows;
    size_t lines[8];
    size_t nf[8];
    char f[8][4][64];
} rows_t;

static int keep_row(void *ctx, size_t line, size_t n, const char *const *fields)
{
    rows_t *r = ctx;
    if (r->rows >= 8)
        return -1;
    r->lines[r->rows] = line;
    r->nf[r->rows] = n;
    for (size_t i = 0; i < n && i < 4; i++)
        snprintf(r->f[r->rows][i], 64, "%s", fields[i]);
    r->rows++;
    return 0;
}

static void test_csv_powershell(void **state)
{
    const char csv[] = "\xEF\xBB\xBF#TYPE Some.Type#Decorated\r\n"
                       "\"Identity\",\"Description\"\r\n"
                       "\"a.com\",\"say \"\"hi\"\", ok\"\r\n"
                       "\r\n"
                       "\"b.com\",\"two\r\nlines\"\r\n"
                       "c.com,\r\n"
                       "\"d.com\",\"\"";
    rows_t r = {0};
    size_t bad = 0;
    assert_int_equal(cli_csv_parse(csv, sizeof(csv) - 1, keep_row, &r, &bad), 0);
    assert_int_equal(r.rows, 5);
    assert_int_equal(r.lines[0], 2);
    assert_string_equal(r.f[0][0], "Identity");
    assert_string_equal(r.f[1][1], "say \"hi\", ok");
    assert_int_equal(r.lines[2], 5);
    assert_string_equal(r.f[2][1], "two\r\nlines");
    assert_int_equal(r.lines[3], 7);
    assert_int_equal(r.nf[3], 2);
    assert_string_equal(r.f[3][1], "");
    assert_string_equal(r.f[4][0], "d.com");
}

static void test_csv_semicolon_and_utf16(void **state)
{
    /* UTF-16LE with BOM: "a;\"b,c\"\r\n1;2\r\n" plus U+00FC and a surrogate pair (U+1F600). */
    const char u16[] = "\xFF\xFE"
                       "a\0;\0\"\0b\0,\0\xFC\0\"\0\r\0\n\0"
                       "1\0;\0=\xD8\0\xDE\r\0\n\0";
    char *utf8 = NULL;
    size_t n = 0;
    assert_int_equal(cli_csv_utf16_to_utf8("abc", 3, &utf8, &n), 1);
    assert_int_equal(cli_csv_utf16_to_utf8(u16, sizeof(u16) - 1, &utf8, &n), 0);
    assert_string_equal(utf8, "a;\"b,\xC3\xBC\"\r\n1;\xF0\x9F\x98\x80\r\n");
    rows_t r = {0};
    size_t bad = 0;
    assert_int_equal(cli_csv_parse(utf8, n, keep_row, &r, &bad), 0);
    assert_int_equal(r.rows, 2);
    assert_int_equal(r.nf[0], 2);
    assert_string_equal(r.f[0][1], "b,\xC3\xBC"); /* ',' is data when ';' separates */
    assert_string_equal(r.f[1][1], "\xF0\x9F\x98\x80");
    free(utf8);
}

static void test_csv_truncated(void **state)
{
    const char csv[] = "\"Identity\"\n\"a.com\"\n\"b.c";
    rows_t r = {0};
    size_t bad = 0;
    assert_int_equal(cli_csv_parse(csv, sizeof(csv) - 1, keep_row, &r, &bad), FG_EPARSE);
    assert_int_equal(bad, 3);
    assert_int_equal(r.rows, 2);
}

static void test_csv_limits(void **state)
{
    static char big[CLI_CSV_MAX_FIELD + 100];
    memset(big, 'x', sizeof(big));
    rows_t r = {0};
    size_t bad = 0;
    assert_int_equal(cli_csv_parse(big, sizeof(big), keep_row, &r, &bad), FG_EPARSE);
    char many[CLI_CSV_MAX_FIELDS * 2 + 8];
    memset(many, ',', sizeof(many));
    assert_int_equal(cli_csv_parse(many, sizeof(many), keep_row, &r, &bad), FG_EPARSE);
    /* Text in the field past the last one: refused before it is stored anywhere. */
    char over[CLI_CSV_MAX_FIELDS + 2];
    memset(over, ',', CLI_CSV_MAX_FIELDS);
    over[CLI_CSV_MAX_FIELDS] = 'x';
    over[CLI_CSV_MAX_FIELDS + 1] = 'y';
    bad = 0;
    assert_int_equal(cli_csv_parse(over, sizeof(over), keep_row, &r, &bad), FG_EPARSE);
    assert_int_equal(bad, 1);
    /* A NUL byte would cut a field short without anyone noticing. */
    const char nul[] = "Identity\nevil.example\0.good.example\n";
    bad = 0;
    assert_int_equal(cli_csv_parse(nul, sizeof(nul) - 1, keep_row, &r, &bad), FG_EPARSE);
    assert_int_equal(bad, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_order_and_forms),
        cmocka_unit_test(test_args_errors),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_parse_values),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_csv_powershell),
        cmocka_unit_test(test_csv_semicolon_and_utf16),
        cmocka_unit_test(test_csv_truncated),
        cmocka_unit_test(test_csv_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
