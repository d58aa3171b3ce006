#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/component.h"

static void test_digest(void **state)
{
    char out[SHA1_HEX_LEN + 1];
    /* XEP-0114 example: stream id 3BF96D32, secret "secret". */
    component_digest("3BF96D32", "secret", 6, out);
    assert_int_equal(strlen(out), SHA1_HEX_LEN);
    /* sha1("3BF96D32secret") computed independently */
    assert_string_equal(out, "b09ea9b3b7f586be8a08d0a3dd7466f110aeb136");
}

static void test_verify(void **state)
{
    char good[SHA1_HEX_LEN + 1];
    component_digest("id-1", "s3cret", 6, good);
    assert_true(component_verify("id-1", "s3cret", 6, good, SHA1_HEX_LEN));
    char up[SHA1_HEX_LEN + 1];
    for (int i = 0; i <= SHA1_HEX_LEN; i++)
        up[i] = (good[i] >= 'a' && good[i] <= 'f') ? (char)(good[i] - 32) : good[i];
    assert_true(component_verify("id-1", "s3cret", 6, up, SHA1_HEX_LEN));
    assert_false(component_verify("id-2", "s3cret", 6, good, SHA1_HEX_LEN));
    assert_false(component_verify("id-1", "s3creT", 6, good, SHA1_HEX_LEN));
    assert_false(component_verify("id-1", "s3cret", 6, good, SHA1_HEX_LEN - 1));
    good[5] = good[5] == 'a' ? 'b' : 'a';
    assert_false(component_verify("id-1", "s3cret", 6, good, SHA1_HEX_LEN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_verify),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
