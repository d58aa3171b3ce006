#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/dialback.h"
#include "core/err.h"
#include "core/sha256.h"

#define S1 "s3cr3tf0rd14lb4ck"
#define S2 "d14lb4ck43v3r"

/* The vectors of lync-spec §6.7 (XEP-0185 examples). */
static void test_vectors(void **state)
{
    char key[DIALBACK_KEY_LEN + 1];
    assert_int_equal(
        dialback_key(S1, strlen(S1), "montague.example", "capulet.example", "D60000229F", key), 0);
    assert_string_equal(key, "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3");
    assert_int_equal(
        dialback_key(S2, strlen(S2), "capulet.example", "montague.example", "417GAF25", key), 0);
    assert_string_equal(key, "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d");
    assert_int_equal(
        dialback_key(S1, strlen(S1), "xmpp.example.com", "example.org", "D60000229F", key), 0);
    assert_string_equal(key, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");

    uint8_t d[SHA256_LEN];
    char hex[SHA256_HEX_LEN + 1];
    sha256(S1, strlen(S1), d);
    sha256_hex(d, sizeof(d), hex);
    assert_memory_equal(hex, "a7136eb1", 8);
    assert_memory_equal(hex + 56, "beae9acc", 8);
}

static void test_verify(void **state)
{
    const char *good = "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3";
    assert_true(dialback_verify(S1, strlen(S1), "montague.example", "capulet.example", "D60000229F",
                                good, strlen(good)));
    /* Every single-character change, a wrong length, swapped roles and another id fail. */
    char bad[65];
    for (int i = 0; i < 64; i++) {
        memcpy(bad, good, 65);
        bad[i] = bad[i] == '0' ? '1' : '0';
        assert_false(dialback_verify(S1, strlen(S1), "montague.example", "capulet.example",
                                     "D60000229F", bad, 64));
    }
    assert_false(dialback_verify(S1, strlen(S1), "montague.example", "capulet.example",
                                 "D60000229F", good, 63));
    assert_false(dialback_verify(S1, strlen(S1), "capulet.example", "montague.example",
                                 "D60000229F", good, 64));
    assert_false(dialback_verify(S1, strlen(S1), "montague.example", "capulet.example",
                                 "D60000229G", good, 64));
    assert_false(dialback_verify(S2, strlen(S2), "montague.example", "capulet.example",
                                 "D60000229F", good, 64));
    /* Upper-case hex is a different key: XEP-0185 keys are lowercase. */
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (good[i] >= 'a' && good[i] <= 'f') ? (char)(good[i] - 32) : good[i];
    assert_false(dialback_verify(S1, strlen(S1), "montague.example", "capulet.example",
                                 "D60000229F", upper, 64));
}

static void test_refuses_ambiguous_inputs(void **state)
{
    char key[DIALBACK_KEY_LEN + 1];
    assert_int_equal(dialback_key(S1, strlen(S1), "a b", "c", "id", key), FG_EPARSE);
    assert_int_equal(dialback_key(S1, strlen(S1), "a", "", "id", key), FG_EPARSE);
    assert_int_equal(dialback_key(S1, strlen(S1), "a", "b", "", key), FG_EPARSE);
    assert_false(dialback_verify(S1, strlen(S1), "a", "b", "", "", 0));
}

static void test_equal_ct(void **state)
{
    assert_true(dialback_equal_ct("abc", 3, "abc", 3));
    assert_false(dialback_equal_ct("abc", 3, "abd", 3));
    assert_false(dialback_equal_ct("abc", 3, "abcd", 4));
    assert_true(dialback_equal_ct("", 0, "", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_refuses_ambiguous_inputs),
        cmocka_unit_test(test_equal_ct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
