#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/sha1.h"
#include "core/sha256.h"

static void hex_of(const uint8_t *d, size_t n, char *out)
{
    sha256_hex(d, n, out);
}

static void test_sha256_fips_vectors(void **state)
{
    uint8_t d[SHA256_LEN];
    char hex[SHA256_HEX_LEN + 1];
    sha256("abc", 3, d);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256("", 0, d);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256(two, strlen(two), d);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_sha256_incremental_equals_oneshot(void **state)
{
    uint8_t msg[1000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    uint8_t a[SHA256_LEN], b[SHA256_LEN];
    sha256(msg, sizeof(msg), a);
    for (size_t step = 1; step < 130; step += 13) {
        sha256_t s;
        sha256_init(&s);
        for (size_t i = 0; i < sizeof(msg); i += step)
            sha256_update(&s, msg + i, i + step > sizeof(msg) ? sizeof(msg) - i : step);
        sha256_final(&s, b);
        assert_memory_equal(a, b, SHA256_LEN);
    }
}

static void test_hmac_rfc4231(void **state)
{
    uint8_t d[SHA256_LEN];
    char hex[SHA256_HEX_LEN + 1];
    uint8_t key[20];
    memset(key, 0x0b, sizeof(key));
    sha256_hmac(key, sizeof(key), "Hi There", 8, d);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    sha256_hmac("Jefe", 4, "what do ya want for nothing?", 28, d);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* Test case 6: a key longer than the block is hashed first. */
    uint8_t big[131];
    memset(big, 0xaa, sizeof(big));
    const char *m = "Test Using Larger Than Block-Size Key - Hash Key First";
    sha256_hmac(big, sizeof(big), m, strlen(m), d);
    hex_of(d, sizeof(d), hex);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_sha1_vectors(void **state)
{
    uint8_t d[SHA1_LEN];
    char hex[SHA256_HEX_LEN + 1];
    sha1("abc", 3, d);
    sha256_hex(d, SHA1_LEN, hex);
    assert_string_equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
    sha1("", 0, d);
    sha256_hex(d, SHA1_LEN, hex);
    assert_string_equal(hex, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1(two, strlen(two), d);
    sha256_hex(d, SHA1_LEN, hex);
    assert_string_equal(hex, "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_fips_vectors),
        cmocka_unit_test(test_sha256_incremental_equals_oneshot),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_sha1_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
