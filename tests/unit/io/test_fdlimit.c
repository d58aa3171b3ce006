/*
 * Running out of file descriptors: a server process with RLIMIT_NOFILE lowered to 64 (forked, so
 * the test's own client sockets are not counted) is flooded with more connections than that.
 *  - budget: the configured reserve keeps the connection table under the limit; extra connections
 *    are accepted and closed at once (the client sees EOF), the process keeps serving.
 *  - EMFILE: something else eats the descriptors; accept fails with EMFILE, the listener backs off
 *    and retries, the waiting clients are served once descriptors come back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/listen.h"
#include "io/worker.h"

static void echo_data(conn_t *c, const uint8_t *d, size_t n)
{
    if (conn_send(c, d, n) != 0)
        conn_abort(c);
}

static const conn_ops_t echo_ops = {.on_data = echo_data};

enum { MODE_BUDGET = 1, MODE_EMFILE };

/* The server child: never returns. Reports the port through the pipe, or 0 on failure. */
static void server(int mode, int wfd)
{
    unsigned port = 0;
    struct rlimit rl = {64, 64};
    struct rlimit cur;
    getrlimit(RLIMIT_NOFILE, &cur);
    rl.rlim_max = cur.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        goto out;
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 2,
                           .fd_reserve = mode == MODE_BUDGET ? 24 : 4,
                           .rbuf_count = 16,
                           .rbuf_size = 4096};
    if (wgroup_create(&g, &cfg) != 0)
        goto out;
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    if (wgroup_listen(g, &sa, &echo_ops, NULL) != 0 || wgroup_start(g) != 0)
        goto out;
    if (mode == MODE_EMFILE) {
        /* Something else in the process takes every descriptor but a few. */
        int fds[128], n = 0;
        while (n < 128) {
            int fd = open("/dev/null", O_RDONLY);
            if (fd < 0)
                break;
            fds[n++] = fd;
        }
        for (int i = 0; i < 6 && n > 0; i++)
            close(fds[--n]);
    }
    port = listen_port(&sa);
out:
    if (write(wfd, &port, sizeof(port)) != sizeof(port))
        _exit(1);
    for (;;)
        pause();
}

static pid_t start_server(int mode, struct sockaddr_storage *sa)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        server(mode, p[1]);
    }
    close(p[1]);
    unsigned port = 0;
    assert_int_equal(read(p[0], &port, sizeof(port)), (ssize_t)sizeof(port));
    close(p[0]);
    assert_int_not_equal(port, 0);
    char txt[32];
    snprintf(txt, sizeof(txt), "127.0.0.1:%u", port);
    listen_parse_addr(txt, sa);
    return pid;
}

static void stop_server(pid_t pid)
{
    int st;
    /* Still alive after everything: no crash. */
    assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

enum { R_WAIT = 0, R_ECHO, R_REFUSED };

/* Waits up to ms for each client: echoed "x", refused (EOF/reset), or still waiting. */
static void collect(int *fd, int *res, int n, int ms)
{
    for (int t = 0; t < ms / 10; t++) {
        int waiting = 0;
        for (int i = 0; i < n; i++) {
            if (res[i] != R_WAIT)
                continue;
            char b;
            ssize_t r = recv(fd[i], &b, 1, MSG_DONTWAIT);
            if (r == 1 && b == 'x')
                res[i] = R_ECHO;
            else if (r == 0 || (r < 0 && errno != EAGAIN))
                res[i] = R_REFUSED;
            else
                waiting++;
        }
        if (!waiting)
            return;
        usleep(10000);
    }
}

static int count(const int *res, int n, int what)
{
    int c = 0;
    for (int i = 0; i < n; i++)
        c += res[i] == what;
    return c;
}

static void test_budget_refuses(void **state)
{
    enum { N = 100 };
    struct sockaddr_storage sa;
    pid_t pid = start_server(MODE_BUDGET, &sa);
    int fd[N], res[N];
    for (int i = 0; i < N; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(fd[i], (struct sockaddr *)&sa, listen_addr_len(&sa)), 0);
        send(fd[i], "x", 1, MSG_NOSIGNAL);
        res[i] = R_WAIT;
    }
    collect(fd, res, N, 3000);
    int served = count(res, N, R_ECHO), refused = count(res, N, R_REFUSED);
    print_message("budget: %d served, %d refused, %d waiting\n", served, refused,
                  count(res, N, R_WAIT));
    /* 64 - 24 reserve = 40 connections over 2 workers. */
    assert_true(served >= 1 && served <= 40);
    assert_true(refused >= N - 40);
    for (int i = 0; i < N; i++)
        close(fd[i]);
    /* Capacity comes back: a new client is served. */
    int ok = 0;
    for (int t = 0; t < 50 && !ok; t++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(c, (struct sockaddr *)&sa, listen_addr_len(&sa)), 0);
        send(c, "x", 1, MSG_NOSIGNAL);
        int r = R_WAIT;
        collect(&c, &r, 1, 1000);
        ok = r == R_ECHO;
        close(c);
        if (!ok)
            usleep(100000);
    }
    assert_true(ok);
    stop_server(pid);
}

static void test_emfile_recovers(void **state)
{
    enum { N = 30 };
    struct sockaddr_storage sa;
    pid_t pid = start_server(MODE_EMFILE, &sa);
    int fd[N], res[N];
    for (int i = 0; i < N; i++) {
        fd[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(fd[i], (struct sockaddr *)&sa, listen_addr_len(&sa)), 0);
        send(fd[i], "x", 1, MSG_NOSIGNAL);
        res[i] = R_WAIT;
    }
    collect(fd, res, N, 1500);
    int served = count(res, N, R_ECHO);
    print_message("emfile: %d served, %d refused, %d waiting\n", served, count(res, N, R_REFUSED),
                  count(res, N, R_WAIT));
    /* Only a handful of descriptors were free: most clients wait in the backlog. */
    assert_true(served >= 1 && served <= 8);
    assert_true(count(res, N, R_WAIT) >= N - 8);
    /* Release the served ones: their descriptors come back and the waiting clients get in. */
    for (int i = 0; i < N; i++)
        if (res[i] != R_WAIT) {
            close(fd[i]);
            fd[i] = -1;
        }
    int rounds = 0;
    while (count(res, N, R_WAIT) > 0 && rounds++ < 40) {
        collect(fd, res, N, 500);
        for (int i = 0; i < N; i++)
            if (fd[i] >= 0 && res[i] != R_WAIT) {
                close(fd[i]);
                fd[i] = -1;
            }
    }
    int echoed_total = 0;
    for (int i = 0; i < N; i++)
        echoed_total += res[i] == R_ECHO;
    print_message("emfile: %d of %d eventually served\n", echoed_total, N);
    assert_int_equal(echoed_total, N);
    for (int i = 0; i < N; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    stop_server(pid);
}

int main(void)
{
    io_features_t f;
    if (io_features_probe(&f) < 0 || !f.buf_ring) {
        fprintf(stderr, "io_uring with provided buffer rings unavailable: skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_refuses),
        cmocka_unit_test(test_emfile_recovers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
