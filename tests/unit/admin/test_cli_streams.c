#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "admin/cli_streams.h"
#include "core/err.h"

static const char page[] =
    "# HELP fedgate_stanzas_total Stanzas\n"
    "fedgate_stanzas_total{dir=\"in\"} 4\n"
    "fedgate_stream_info{id=\"1a\",dir=\"in\",partner=\"a.example\",local=\"gw.example\","
    "remote=\"a.example\",state=\"open\",auth=\"sasl\",tls=\"TLSv1.3\"} 1790000000\n"
    "fedgate_stream_info{id=\"2b\",dir=\"out\",partner=\"q\\\"x\",local=\"gw.example\","
    "remote=\"b\\\\c\",state=\"open\",auth=\"dialback-tls\",tls=\"TLSv1.2\"} 1790000001\n"
    "fedgate_stream_info{id=\"3c\",dir=\"in\"} 5\n"
    "fedgate_stream_info{broken\n";

typedef struct {
    char seen[2][8][64];
    uint64_t since[2];
    size_t n;
} rows_t;

static void collect(const cli_stream_row_t *r, void *ctx)
{
    rows_t *rows = ctx;
    if (rows->n < 2) {
        const char *v[] = {r->id,     r->dir,   r->partner, r->local,
                           r->remote, r->state, r->auth,    r->tls};
        for (int i = 0; i < 8; i++)
            snprintf(rows->seen[rows->n][i], 64, "%s", v[i]);
        rows->since[rows->n] = r->since;
    }
    rows->n++;
}

static void test_parse(void **state)
{
    rows_t rows = {0};
    /* Two complete rows; a row missing labels and a broken line are skipped. */
    assert_int_equal(cli_streams_parse(page, strlen(page), collect, &rows), 2);
    assert_string_equal(rows.seen[0][0], "1a");
    assert_string_equal(rows.seen[0][2], "a.example");
    assert_string_equal(rows.seen[0][6], "sasl");
    assert_int_equal(rows.since[0], 1790000000);
    /* Escaped quote and backslash in label values come back unescaped. */
    assert_string_equal(rows.seen[1][2], "q\"x");
    assert_string_equal(rows.seen[1][4], "b\\c");
    assert_string_equal(rows.seen[1][7], "TLSv1.2");
    assert_int_equal(cli_streams_parse(page, strlen(page), NULL, NULL), 2);
    assert_int_equal(cli_streams_parse("", 0, NULL, NULL), 0);
}

typedef struct {
    int lfd;
    const char *answer;
} server_t;

static void *serve_once(void *arg)
{
    server_t *s = arg;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd >= 0) {
        char req[512];
        ssize_t n = recv(fd, req, sizeof(req), 0);
        (void)n;
        ssize_t w = send(fd, s->answer, strlen(s->answer), MSG_NOSIGNAL);
        (void)w;
        close(fd);
    }
    return NULL;
}

static int listen_any(char *addr, size_t len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    snprintf(addr, len, "127.0.0.1:%u", ntohs(sa.sin_port));
    return fd;
}

static int fetch_from(const char *answer, buf_t *out)
{
    char addr[64];
    server_t s = {listen_any(addr, sizeof(addr)), answer};
    assert_true(s.lfd >= 0);
    pthread_t t;
    pthread_create(&t, NULL, serve_once, &s);
    int rc = cli_streams_fetch(addr, 2000, out);
    pthread_join(t, NULL);
    close(s.lfd);
    return rc;
}

static void test_fetch(void **state)
{
    char answer[4096];
    snprintf(answer, sizeof(answer), "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s", page);
    buf_t out;
    assert_int_equal(fetch_from(answer, &out), 0);
    assert_int_equal(out.len, strlen(page));
    assert_int_equal(cli_streams_parse((const char *)out.data, out.len, NULL, NULL), 2);
    buf_free(&out);

    /* Not a 200: refused as a page, so status says the gateway is not answering properly. */
    assert_int_equal(fetch_from("HTTP/1.0 404 Not Found\r\n\r\nnope", &out), FG_EPARSE);
    buf_free(&out);
}

static void test_fetch_errors(void **state)
{
    char addr[64];
    int fd = listen_any(addr, sizeof(addr));
    close(fd); /* nothing listens there any more */
    buf_t out;
    buf_init(&out, 0);
    assert_int_equal(cli_streams_fetch(addr, 1000, &out), -ECONNREFUSED);
    assert_int_equal(cli_streams_fetch("no-port", 1000, &out), FG_EPARSE);
    assert_int_equal(cli_streams_fetch("not-an-address:80", 1000, &out), FG_EPARSE);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_fetch),
        cmocka_unit_test(test_fetch_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
