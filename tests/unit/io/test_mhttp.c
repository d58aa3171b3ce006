#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "io/listen.h"
#include "io/metrics.h"
#include "io/mhttp.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int connect_to(const struct sockaddr_storage *sa)
{
    int fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)sa, listen_addr_len(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void set_rcvtimeo(int fd, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* Reads until EOF (or error/timeout); returns the bytes read, NUL-terminated. */
static size_t read_all(int fd, char *out, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, out + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap - 1)
            break;
    }
    out[len] = '\0';
    return len;
}

/* One request on a fresh connection; the whole answer into out. Returns its length. */
static size_t http(const struct sockaddr_storage *sa, const char *req, size_t reqlen, char *out,
                   size_t cap)
{
    int fd = connect_to(sa);
    assert_true(fd >= 0);
    set_rcvtimeo(fd, 5000);
    assert_int_equal(send(fd, req, reqlen, MSG_NOSIGNAL), (ssize_t)reqlen);
    size_t len = read_all(fd, out, cap);
    close(fd);
    return len;
}

static size_t get(const struct sockaddr_storage *sa, const char *req, char *out, size_t cap)
{
    return http(sa, req, strlen(req), out, cap);
}

/* The response's Content-Length agrees with the body that arrived. */
static void assert_complete(const char *resp, size_t len)
{
    const char *cl = strstr(resp, "Content-Length: ");
    const char *end = strstr(resp, "\r\n\r\n");
    assert_non_null(cl);
    assert_non_null(end);
    assert_int_equal(strtoull(cl + 16, NULL, 10), len - (size_t)(end + 4 - resp));
}

static unsigned long long counter(const char *text, const char *series)
{
    const char *p = strstr(text, series);
    assert_non_null(p);
    return strtoull(p + strlen(series), NULL, 10);
}

static void collect_text(void *arg, buf_t *out)
{
    buf_append_str(out, (const char *)arg);
}

static metrics_t *registry(void)
{
    metrics_t *m;
    assert_int_equal(metrics_create(&m, 2, 512), 0);
    int id = metrics_register(m, METRIC_COUNTER, "fedgate_test_total", "kind=\"x\"", "test");
    assert_true(id >= 0);
    metrics_add(m, 0, id, 41);
    metrics_add(m, 1, id, 1);
    assert_int_equal(
        metrics_add_collector(m, collect_text,
                              "# TYPE fedgate_test_collected gauge\nfedgate_test_collected 7\n"),
        0);
    return m;
}

static mhttp_t *start(metrics_t *m, const mhttp_config_t *cfg, struct sockaddr_storage *sa)
{
    mhttp_t *h = NULL;
    assert_int_equal(listen_parse_addr("127.0.0.1:0", sa), 0);
    assert_int_equal(mhttp_start(&h, sa, m, cfg), 0);
    assert_non_null(h);
    assert_int_not_equal(listen_port(sa), 0);
    return h;
}

static char resp[1 << 16];

static void test_scrape_and_not_found(void **state)
{
    struct sockaddr_storage sa;
    metrics_t *m = registry();
    mhttp_t *h = start(m, NULL, &sa);

    size_t n = get(&sa, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.0 200 OK\r\n"));
    assert_non_null(strstr(resp, "Content-Type: text/plain; version=0.0.4\r\n"));
    assert_non_null(strstr(resp, "# TYPE fedgate_test_total counter\n"
                                 "fedgate_test_total{kind=\"x\"} 42\n"));
    assert_non_null(strstr(resp, "\nfedgate_test_collected 7\n"));
    /* The endpoint's own counters include the scrape being answered. */
    assert_non_null(strstr(resp, "fedgate_metrics_responses_total{code=\"200\"} 1\n"));
    assert_complete(resp, n);

    /* A query string and a bare-LF request are the same scrape. */
    get(&sa, "GET /metrics?name[]=x HTTP/1.0\n\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, "HTTP/1.0 200 OK\r\n"));

    static const char *const other[] = {
        "GET / HTTP/1.0\r\n\r\n",         "GET /metricsx HTTP/1.0\r\n\r\n",
        "POST /metrics HTTP/1.0\r\n\r\n", "HEAD /metrics HTTP/1.0\r\n\r\n",
        "GET /metrics/ HTTP/1.0\r\n\r\n", "\r\n\r\n",
        "get /metrics HTTP/1.0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        n = get(&sa, other[i], resp, sizeof(resp));
        if (!strstr(resp, "HTTP/1.0 404 Not Found\r\n"))
            fail_msg("request %zu: %s", i, resp);
        assert_non_null(strstr(resp, "\r\n\r\nnot found\n"));
        assert_complete(resp, n);
    }
    get(&sa, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, "fedgate_metrics_responses_total{code=\"200\"} 3\n"));
    assert_non_null(strstr(resp, "fedgate_metrics_responses_total{code=\"404\"} 7\n"));
    mhttp_stop(h);
    metrics_destroy(m);
}

static void test_hostile_clients(void **state)
{
    struct sockaddr_storage sa;
    metrics_t *m = registry();
    mhttp_config_t cfg = {.max_clients = 4, .read_timeout_ms = 3000};
    mhttp_t *h = start(m, &cfg, &sa);

    /* More never-finishing requests than there are slots. */
    int slow[6];
    for (int i = 0; i < 6; i++) {
        slow[i] = connect_to(&sa);
        assert_true(slow[i] >= 0);
        assert_int_equal(send(slow[i], "GET /metr", 9, MSG_NOSIGNAL), 9);
    }
    /* Garbage with NULs and no end of header. */
    int garbage = connect_to(&sa);
    assert_true(garbage >= 0);
    char junk[300];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)(i * 7 % 13); /* never two newlines in a row */
    assert_int_equal(send(garbage, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
    /* A good scrape still answers promptly: the stalled clients give way once they had their
       chance to send a request. */
    uint64_t t0 = now_ms();
    size_t n = get(&sa, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof(resp));
    uint64_t took = now_ms() - t0;
    print_message("scrape with %d stalled clients: %llu ms\n", 7, (unsigned long long)took);
    assert_non_null(strstr(resp, "HTTP/1.0 200 OK\r\n"));
    assert_complete(resp, n);
    assert_true(took < 1000); /* far below the read deadline: stalled clients gave way */

    /* An oversize request. */
    char big[6000];
    memcpy(big, "GET /metrics ", 13);
    memset(big + 13, 'x', sizeof(big) - 13);
    n = http(&sa, big, sizeof(big), resp, sizeof(resp));
    assert_true(n > 0);
    assert_non_null(strstr(resp, "HTTP/1.0 431 "));

    /* Every stalled client is closed: evicted, or at its read deadline. */
    t0 = now_ms();
    for (int i = 0; i < 6; i++) {
        char c;
        set_rcvtimeo(slow[i], 5000);
        ssize_t r = recv(slow[i], &c, 1, 0);
        assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
        close(slow[i]);
    }
    set_rcvtimeo(garbage, 5000);
    assert_int_equal(read_all(garbage, resp, sizeof(resp)), 0);
    close(garbage);
    assert_true(now_ms() - t0 < 4500);

    get(&sa, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof(resp));
    assert_non_null(strstr(resp, "fedgate_metrics_responses_total{code=\"431\"} 1\n"));
    /* Seven stalled connections, each dropped exactly once. */
    unsigned long long nev = counter(resp, "fedgate_metrics_dropped_total{reason=\"evicted\"} "),
                       nto = counter(resp, "fedgate_metrics_dropped_total{reason=\"timeout\"} ");
    print_message("evicted %llu, timed out %llu\n", nev, nto);
    assert_true(nev >= 1);
    assert_int_equal(nev + nto, 7);
    mhttp_stop(h);
    metrics_destroy(m);
}

static char *big_text(size_t len)
{
    char *t = malloc(len + 1);
    assert_non_null(t);
    for (size_t i = 0; i < len; i += 32)
        snprintf(t + i, len + 1 - i, "fedgate_test_filler{i=\"%07zu\"} 1\n", i / 32);
    t[len] = '\0';
    return t;
}

/* Asks for the metrics, then never reads. */
static int lazy_client(const struct sockaddr_storage *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(connect(fd, (const struct sockaddr *)sa, listen_addr_len(sa)), 0);
    assert_int_equal(send(fd, "GET /metrics HTTP/1.0\r\n\r\n", 25, MSG_NOSIGNAL), 25);
    return fd;
}

#define OUT_MAX (16u << 20)

static void test_slow_readers_and_body_bound(void **state)
{
    struct sockaddr_storage sa;
    metrics_t *m = registry();
    /* More than the kernel buffers of a loopback connection hold (the sender's grows to 4 MiB). */
    char *text = big_text(12u << 20);
    assert_int_equal(metrics_add_collector(m, collect_text, text), 0);
    char *out = malloc(OUT_MAX);
    assert_non_null(out);

    /* Every slot held by a client that does not read: the newcomer takes the oldest one's slot
       long before its write deadline. */
    mhttp_config_t cfg = {.max_clients = 2, .write_timeout_ms = 4000, .body_max = 16u << 20};
    mhttp_t *h = start(m, &cfg, &sa);
    int lazy[2] = {lazy_client(&sa), lazy_client(&sa)};
    usleep(50000);
    uint64_t t0 = now_ms();
    size_t n = get(&sa, "GET /metrics HTTP/1.0\r\n\r\n", out, OUT_MAX);
    uint64_t took = now_ms() - t0;
    print_message("12 MiB scrape with every slot held by a non-reader: %llu ms\n",
                  (unsigned long long)took);
    assert_non_null(strstr(out, "HTTP/1.0 200 OK\r\n"));
    assert_complete(out, n);
    assert_true(n > (12u << 20));
    assert_true(took < 2000);
    assert_true(counter(out, "fedgate_metrics_dropped_total{reason=\"evicted\"} ") >= 1);
    close(lazy[0]);
    close(lazy[1]);
    mhttp_stop(h);

    /* A non-reader alone is cut off at its write deadline. */
    mhttp_config_t tcfg = {.max_clients = 4, .write_timeout_ms = 300, .body_max = 16u << 20};
    h = start(m, &tcfg, &sa);
    int l = lazy_client(&sa);
    usleep(700000);
    get(&sa, "GET /metrics HTTP/1.0\r\n\r\n", out, OUT_MAX);
    assert_int_equal(counter(out, "fedgate_metrics_dropped_total{reason=\"timeout\"} "), 1);
    close(l);
    mhttp_stop(h);

    /* An exposition beyond the body bound is an error, never a silently cut one. */
    for (int i = 0; i < 300; i++) {
        char lab[64];
        snprintf(lab, sizeof(lab), "partner=\"p%d.example\"", i);
        assert_true(metrics_register(m, METRIC_GAUGE, "fedgate_partner_streams", lab, "s") >= 0);
    }
    mhttp_config_t small_cfg = {.body_max = 4096};
    h = start(m, &small_cfg, &sa);
    n = get(&sa, "GET /metrics HTTP/1.0\r\n\r\n", out, OUT_MAX);
    assert_non_null(strstr(out, "HTTP/1.0 500 "));
    assert_complete(out, n);
    mhttp_stop(h);
    free(out);
    metrics_destroy(m);
    free(text);
}

typedef struct {
    const struct sockaddr_storage *sa;
    int ok;
} scraper_t;

static void *scrape_thread(void *arg)
{
    scraper_t *s = arg;
    static _Thread_local char buf[1 << 16];
    int fd = connect_to(s->sa);
    if (fd < 0)
        return NULL;
    set_rcvtimeo(fd, 5000);
    const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)sizeof(req) - 1) {
        read_all(fd, buf, sizeof(buf));
        s->ok = strstr(buf, "HTTP/1.0 200 OK\r\n") && strstr(buf, "fedgate_test_collected 7\n");
    }
    close(fd);
    return NULL;
}

static void test_concurrent_scrapes(void **state)
{
    /* More honest scrapers at once than slots: they wait in the backlog, none is dropped. */
    struct sockaddr_storage sa;
    metrics_t *m = registry();
    mhttp_config_t cfg = {.max_clients = 2};
    mhttp_t *h = start(m, &cfg, &sa);
    pthread_t th[16];
    scraper_t s[16];
    for (int i = 0; i < 16; i++) {
        s[i] = (scraper_t){.sa = &sa};
        assert_int_equal(pthread_create(&th[i], NULL, scrape_thread, &s[i]), 0);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        assert_true(s[i].ok);
    }
    mhttp_stop(h);
    metrics_destroy(m);
}

static void test_stop_with_open_connections(void **state)
{
    struct sockaddr_storage sa;
    metrics_t *m = registry();
    char *text = big_text(1u << 20);
    assert_int_equal(metrics_add_collector(m, collect_text, text), 0);
    mhttp_t *h = start(m, NULL, &sa);
    int fds[4];
    for (int i = 0; i < 4; i++) {
        fds[i] = connect_to(&sa);
        assert_true(fds[i] >= 0);
    }
    send(fds[0], "GET /me", 7, MSG_NOSIGNAL);
    send(fds[1], "GET /metrics HTTP/1.0\r\n\r\n", 25, MSG_NOSIGNAL); /* and never read */
    usleep(100000);
    uint64_t t0 = now_ms();
    mhttp_stop(h);
    assert_true(now_ms() - t0 < 1000);
    /* Closed for the clients, and nobody listens any more. */
    for (int i = 0; i < 4; i++) {
        set_rcvtimeo(fds[i], 2000);
        static char sink[1 << 16];
        ssize_t r;
        while ((r = recv(fds[i], sink, sizeof(sink), 0)) > 0)
            ;
        assert_true(r == 0 || (r < 0 && errno == ECONNRESET));
        close(fds[i]);
    }
    assert_true(connect_to(&sa) < 0);
    metrics_destroy(m);
    free(text);
}

typedef struct {
    metrics_t *m;
    unsigned slot;
    _Atomic int *stop;
} counter_arg_t;

/* What a worker does per bounce or per stream: look the series up by name, then add. */
static void *count_thread(void *arg)
{
    counter_arg_t *a = arg;
    while (!atomic_load(a->stop)) {
        int id = metrics_register(a->m, METRIC_COUNTER, "fedgate_test_total", "kind=\"x\"", NULL);
        metrics_add(a->m, a->slot, id, 1);
    }
    return NULL;
}

static void test_scrape_beside_busy_writers(void **state)
{
    /* Writer threads looking up series in a tight loop must neither starve a scrape nor wait for
       one. */
    struct sockaddr_storage sa;
    metrics_t *m = registry();
    for (int i = 0; i < 200; i++) {
        char lab[64];
        snprintf(lab, sizeof(lab), "partner=\"p%d.example\"", i);
        assert_true(metrics_register(m, METRIC_GAUGE, "fedgate_partner_streams", lab, "s") >= 0);
    }
    mhttp_t *h = start(m, NULL, &sa);
    _Atomic int stop = 0;
    pthread_t th[2];
    counter_arg_t args[2] = {{m, 0, &stop}, {m, 1, &stop}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, count_thread, &args[i]), 0);
    uint64_t worst = 0;
    for (int i = 0; i < 20; i++) {
        uint64_t t0 = now_ms();
        get(&sa, "GET /metrics HTTP/1.0\r\n\r\n", resp, sizeof(resp));
        uint64_t took = now_ms() - t0;
        worst = took > worst ? took : worst;
        assert_non_null(strstr(resp, "HTTP/1.0 200 OK\r\n"));
        usleep(20000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    print_message("slowest of 20 scrapes beside 2 busy writers: %llu ms\n",
                  (unsigned long long)worst);
    assert_true(worst < 1000); /* a starved scrape would take seconds */
    mhttp_stop(h);
    metrics_destroy(m);
}

static void test_bad_address(void **state)
{
    struct sockaddr_storage sa, sb;
    metrics_t *m = registry();
    mhttp_t *h = start(m, NULL, &sa), *h2 = NULL;
    /* The port is taken: an error, nothing started. */
    sb = sa;
    assert_int_equal(mhttp_start(&h2, &sb, m, NULL), -EADDRINUSE);
    assert_null(h2);
    mhttp_stop(h);
    mhttp_stop(NULL);
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape_and_not_found),
        cmocka_unit_test(test_hostile_clients),
        cmocka_unit_test(test_slow_readers_and_body_bound),
        cmocka_unit_test(test_concurrent_scrapes),
        cmocka_unit_test(test_stop_with_open_connections),
        cmocka_unit_test(test_scrape_beside_busy_writers),
        cmocka_unit_test(test_bad_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
