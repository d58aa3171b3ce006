#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

static void test_append_within_max(void **state)
{
    buf_t b;
    buf_init(&b, 1000);
    for (int i = 0; i < 100; i++)
        assert_int_equal(buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 1000);
    assert_true(b.cap <= 1000);
    /* One byte past the maximum is refused and leaves the contents alone. */
    assert_int_equal(buf_append(&b, "x", 1), FG_ELIMIT);
    assert_int_equal(b.len, 1000);
    assert_memory_equal(b.data + 990, "0123456789", 10);
    buf_free(&b);
}

static void test_consume(void **state)
{
    buf_t b;
    buf_init(&b, 64);
    assert_int_equal(buf_append_str(&b, "hello world"), 0);
    buf_consume(&b, 6);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "world", 5);
    buf_consume(&b, 99);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void test_reserve_overflow(void **state)
{
    buf_t b;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, "abc", 3), 0);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), FG_ELIMIT);
    buf_free(&b);
}

static void test_strerror(void **state)
{
    assert_string_equal(fg_strerror(FG_ESTALE), "changed by someone else");
    assert_string_equal(fg_strerror(0), "ok");
    assert_string_equal(fg_strerror(-ENOENT), "No such file or directory");
    assert_string_equal(fg_strerror(-5000), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_within_max),
        cmocka_unit_test(test_consume),
        cmocka_unit_test(test_reserve_overflow),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
