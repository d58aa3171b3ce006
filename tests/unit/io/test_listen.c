#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/err.h"
#include "io/listen.h"

static void test_parse_format(void **state)
{
    static const struct {
        const char *in;
        int ret;
        const char *out;
    } rows[] = {
        {"127.0.0.1:5269", 0, "127.0.0.1:5269"},
        {"[::1]:5270", 0, "[::1]:5270"},
        {":9100", 0, "0.0.0.0:9100"},
        {"0.0.0.0:0", 0, "0.0.0.0:0"},
        {"127.0.0.1", FG_EPARSE, NULL},
        {"127.0.0.1:", FG_EPARSE, NULL},
        {"127.0.0.1:70000", FG_EPARSE, NULL},
        {"127.0.0.1:12a", FG_EPARSE, NULL},
        {"example.org:5269", FG_EPARSE, NULL},
        {"[::1:5269", FG_EPARSE, NULL},
        {"::1:5269", FG_EPARSE, NULL},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct sockaddr_storage sa;
        int ret = listen_parse_addr(rows[i].in, &sa);
        if (ret != rows[i].ret)
            fail_msg("'%s': %d, want %d", rows[i].in, ret, rows[i].ret);
        if (ret == 0) {
            char out[80];
            listen_format_addr(&sa, out, sizeof(out));
            assert_string_equal(out, rows[i].out);
        }
    }
}

static void test_open_port_zero(void **state)
{
    struct sockaddr_storage sa;
    int fd1, fd2;
    assert_int_equal(listen_parse_addr("127.0.0.1:0", &sa), 0);
    assert_int_equal(listen_open(&sa, true, &fd1), 0);
    assert_int_equal(listen_local_addr(fd1, &sa), 0);
    assert_int_not_equal(listen_port(&sa), 0);
    /* SO_REUSEPORT: a second socket on the same port. */
    assert_int_equal(listen_open(&sa, true, &fd2), 0);
    close(fd2);
    /* Without it, the port is taken. */
    assert_int_equal(listen_open(&sa, false, &fd2), -EADDRINUSE);
    close(fd1);
}

static void test_fd_budget(void **state)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    struct rlimit low = {100, rl.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(listen_fd_budget(64), 36);
    assert_int_equal(listen_fd_budget(100), 0);
    assert_int_equal(listen_fd_budget(500), 0);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_format),
        cmocka_unit_test(test_open_port_zero),
        cmocka_unit_test(test_fd_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
