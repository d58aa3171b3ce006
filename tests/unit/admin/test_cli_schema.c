#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>
#include <string.h>
#include <unistd.h>

#include "admin/cli_schema.h"
#include "core/err.h"
#include "policy/partner.h"
#include "policy/schema.h"
#include "policy/settings.h"

static const cli_opt_t extra[] = {
    {"what-if", CLI_OPT_FLAG, NULL, "dry run"},
    {NULL, 0, NULL, NULL},
};

static bool has_opt(const cli_opt_t *o, const char *name)
{
    for (; o->name; o++)
        if (strcmp(o->name, name) == 0)
            return true;
    return false;
}

/* Every writable field of the schema table is an option, so a field added to the table is on
   the command line without touching the CLI; keys and read-only fields are not. */
static void test_options_follow_schema(void **state)
{
    cli_opt_t opts[64];
    assert_true(cli_schema_opts(&schema_partner, extra, opts, 64) > 0);
    for (size_t i = 0; i < schema_partner.nfields; i++) {
        const schema_field_t *f = &schema_partner.fields[i];
        bool writable = f->cli && !(f->flags & (SCHEMA_F_KEY | SCHEMA_F_READONLY));
        if (f->cli)
            assert_int_equal(has_opt(opts, f->cli), writable);
    }
    assert_true(has_opt(opts, "tls"));
    assert_true(has_opt(opts, "what-if"));
    assert_false(has_opt(opts, "domain"));
    assert_true(cli_schema_opts(&schema_settings, NULL, opts, 64) > 0);
    assert_true(has_opt(opts, "dialback-passphrase-file"));
    assert_int_equal(cli_schema_opts(&schema_settings, NULL, opts, 4), 0); /* too small */
}

static void test_apply_in_order_and_report_all(void **state)
{
    cli_opt_t opts[64];
    cli_schema_opts(&schema_partner, extra, opts, 64);
    char *argv[] = {"--tls",         "optional",           "--sasl", "bogus",      "--tls",
                    "not-supported", "--connection-limit", "-3",     "--dialback", "false",
                    "--what-if"};
    cli_args_t a;
    assert_int_equal(cli_args_parse(&a, opts, 11, argv), 0);
    assert_true(cli_schema_any(&schema_partner, &a));
    partner_t p;
    partner_defaults(&p);
    report_t rep;
    report_init(&rep, 0);
    assert_int_equal(cli_schema_apply(&schema_partner, &p, &a, &rep), FG_EREFUSED);
    /* Both bad values reported, each naming its option and value; good ones applied, last wins. */
    assert_int_equal(rep.errors, 2);
    assert_non_null(strstr(rep.msg[0].text, "bogus"));
    assert_non_null(strstr(rep.msg[1].text, "-3"));
    assert_int_equal(p.tls, NEG_NOT_SUPPORTED);
    assert_false(p.dialback);
    report_free(&rep);

    char *none[] = {"--what-if"};
    assert_int_equal(cli_args_parse(&a, opts, 1, none), 0);
    assert_false(cli_schema_any(&schema_partner, &a));
}

static void test_secret_file(void **state)
{
    cli_opt_t opts[64];
    cli_schema_opts(&schema_settings, NULL, opts, 64);
    char path[] = "/tmp/fedgate-test-secret.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "pool-secret\r\nignored\n", 21), 21);
    close(fd);
    char *argv[] = {"--dialback-passphrase-file", path};
    cli_args_t a;
    assert_int_equal(cli_args_parse(&a, opts, 2, argv), 0);
    settings_t st;
    settings_defaults(&st);
    report_t rep;
    report_init(&rep, 0);
    assert_int_equal(cli_schema_apply(&schema_settings, &st, &a, &rep), 0);
    assert_string_equal(st.dialback_passphrase, "pool-secret");
    unlink(path);
    /* A missing file is a usage error, returned as the exit status. */
    assert_int_equal(cli_schema_apply(&schema_settings, &st, &a, &rep), 2);
    report_free(&rep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_follow_schema),
        cmocka_unit_test(test_apply_in_order_and_report_all),
        cmocka_unit_test(test_secret_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
