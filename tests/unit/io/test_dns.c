/*
 * dns against a real resolver: a dnsmasq started by the test on 127.0.0.1:<free port> (stopped by
 * its PID) serves SRV, A and AAAA records for a few test domains; c-ares runs inside a worker ring.
 * Skips (77) when dnsmasq is not installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "io/dns.h"
#include "io/listen.h"
#include "io/timer.h"
#include "io/worker.h"

static const char *dnsmasq_path(void)
{
    static const char *const c[] = {"/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"};
    for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
        if (access(c[i], X_OK) == 0)
            return c[i];
    return NULL;
}

static unsigned free_udp_port(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    bind(fd, (struct sockaddr *)&sa, sizeof(struct sockaddr_in));
    listen_local_addr(fd, &sa);
    close(fd);
    return listen_port(&sa);
}

static pid_t dnsmasq_pid;
static char resolver[64];
static char silent_resolver[64];
static int silent_fd = -1;

static const char *const records[] = {
    /* srv.test: both services, two priorities, every address of each target. */
    "--srv-host=_xmpps-server._tcp.srv.test,tls1.srv.test,5223,5,0",
    "--srv-host=_xmpp-server._tcp.srv.test,plain1.srv.test,5269,10,0",
    "--srv-host=_xmpp-server._tcp.srv.test,plain2.srv.test,5270,20,0",
    "--host-record=tls1.srv.test,127.0.0.20",
    "--host-record=plain1.srv.test,127.0.0.21,::21",
    "--host-record=plain2.srv.test,127.0.0.22",
    /* fb.test: no SRV at all, an A record for the domain itself. */
    "--host-record=fb.test,127.0.0.30",
    /* dot.test: "." says no s2s service. */
    "--srv-host=_xmpp-server._tcp.dot.test",
    "--host-record=dot.test,127.0.0.31",
    /* xdot.test: no direct TLS ("."), xmpp-server offered. */
    "--srv-host=_xmpps-server._tcp.xdot.test",
    "--srv-host=_xmpp-server._tcp.xdot.test,plain.xdot.test,5269,0,0",
    "--host-record=plain.xdot.test,127.0.0.32",
    "--host-record=xdot.test,127.0.0.33",
    /* xonly.test: "." for xmpps, nothing for xmpp-server: no A fallback. */
    "--srv-host=_xmpps-server._tcp.xonly.test",
    "--host-record=xonly.test,127.0.0.34",
    /* A ProxyFqdn target. */
    "--host-record=proxy.test,127.0.0.40",
};

static int start_dnsmasq(void)
{
    const char *bin = dnsmasq_path();
    if (!bin)
        return 77;
    unsigned port = free_udp_port();
    snprintf(resolver, sizeof(resolver), "127.0.0.1:%u", port);
    char portarg[32];
    snprintf(portarg, sizeof(portarg), "--port=%u", port);
    const char *argv[64];
    int n = 0;
    argv[n++] = bin;
    argv[n++] = "--keep-in-foreground";
    argv[n++] = "--conf-file=/dev/null";
    argv[n++] = "--no-resolv";
    argv[n++] = "--no-hosts";
    argv[n++] = "--bind-interfaces";
    argv[n++] = "--listen-address=127.0.0.1";
    argv[n++] = "--local=/test/";
    argv[n++] = "--pid-file=";
    argv[n++] = portarg;
    if (getuid() == 0)
        argv[n++] = "--user=root";
    for (size_t i = 0; i < sizeof(records) / sizeof(records[0]); i++)
        argv[n++] = records[i];
    argv[n] = NULL;
    dnsmasq_pid = fork();
    if (dnsmasq_pid == 0) {
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    /* Ready when its TCP port accepts. */
    struct sockaddr_storage sa;
    listen_parse_addr(resolver, &sa);
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = connect(fd, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)) == 0;
        close(fd);
        if (ok)
            return 0;
        int st;
        if (waitpid(dnsmasq_pid, &st, WNOHANG) == dnsmasq_pid) {
            fprintf(stderr, "dnsmasq exited at start-up\n");
            dnsmasq_pid = 0;
            return -1;
        }
        usleep(20000);
    }
    return -1;
}

static void stop_dnsmasq(void)
{
    if (dnsmasq_pid > 0) {
        kill(dnsmasq_pid, SIGTERM);
        waitpid(dnsmasq_pid, NULL, 0);
        dnsmasq_pid = 0;
    }
}

/* ---- a worker with two resolvers: the dnsmasq one and a silent one ------------------------ */

static wgroup_t *grp;
static dns_t *dns_real;
static _Atomic int dns_ready;

typedef struct {
    const char *domain;
    const char *proxy;
    uint16_t proxy_port;
    int silent;
    _Atomic int done;
    dns_result_t res;
    uint64_t took_ns, t0;
} lookup_t;

static uint32_t rng_zero(void *arg)
{
    return 0;
}

static void on_start(worker_t *w)
{
    dns_config_t cfg = {.servers = resolver, .timeout_ms = 1000, .tries = 2, .rng = rng_zero};
    if (dns_create(w, &cfg, &dns_real) != 0)
        dns_real = NULL;
    atomic_store(&dns_ready, 1);
}

static void lookup_cb(void *arg, const dns_result_t *res)
{
    lookup_t *l = arg;
    l->res = *res;
    l->took_ns = timer_now_ns() - l->t0;
    atomic_store(&l->done, 1);
}

static void on_msg(worker_t *w, const xq_msg_t *m)
{
    lookup_t *l = m->ptr;
    l->t0 = timer_now_ns();
    if (l->silent) {
        /* A resolver that never answers replaces the worker's one (this test runs last). */
        dns_destroy(dns_real);
        dns_real = NULL;
        dns_t *d = NULL;
        dns_config_t cfg = {.servers = silent_resolver, .timeout_ms = 200, .tries = 1};
        if (dns_create(w, &cfg, &d) != 0 ||
            dns_resolve_s2s(d, l->domain, NULL, 0, lookup_cb, l, NULL) != 0)
            atomic_store(&l->done, -1);
        return;
    }
    if (dns_resolve_s2s(dns_real, l->domain, l->proxy, l->proxy_port, lookup_cb, l, NULL) != 0)
        atomic_store(&l->done, -1);
}

static int setup(void **state)
{
    int r = start_dnsmasq();
    if (r != 0)
        return r;
    wgroup_config_t cfg = {.nworkers = 1, .max_conns = 16, .on_start = on_start, .on_msg = on_msg};
    if (wgroup_create(&grp, &cfg) != 0 || wgroup_start(grp) != 0)
        return -1;
    /* Up to 5 s: on a loaded machine the worker's resolver can take well over 1 s to start. */
    for (int i = 0; i < 500 && !atomic_load(&dns_ready); i++)
        usleep(10000);
    return dns_real ? 0 : -1;
}

static int teardown(void **state)
{
    wgroup_destroy(grp);
    stop_dnsmasq();
    if (silent_fd >= 0)
        close(silent_fd);
    return 0;
}

static void run_lookup(lookup_t *l)
{
    atomic_store(&l->done, 0);
    xq_msg_t m = {.type = 1, .ptr = l};
    assert_int_equal(worker_post(NULL, grp, 0, &m), 0);
    for (int i = 0; i < 1000 && !atomic_load(&l->done); i++)
        usleep(10000);
    assert_int_equal(atomic_load(&l->done), 1);
}

static void ep_text(const dns_endpoint_t *e, char *out, size_t len)
{
    char a[80];
    listen_format_addr(&e->addr, a, sizeof(a));
    snprintf(out, len, "%s %s %s", e->name, a, e->direct_tls ? "tls" : "starttls");
}

static void expect(const dns_result_t *r, const char *const *want, size_t n)
{
    char got[400];
    if (r->n != n) {
        for (size_t i = 0; i < r->n; i++) {
            ep_text(&r->ep[i], got, sizeof(got));
            print_message("  got[%zu] %s\n", i, got);
        }
        fail_msg("%zu endpoints, want %zu", r->n, n);
    }
    for (size_t i = 0; i < n; i++) {
        ep_text(&r->ep[i], got, sizeof(got));
        if (strcmp(got, want[i]) != 0)
            fail_msg("endpoint %zu: '%s', want '%s'", i, got, want[i]);
    }
}

static void test_srv_merge(void **state)
{
    lookup_t l = {.domain = "srv.test"};
    run_lookup(&l);
    assert_int_equal(l.res.status, 0);
    assert_int_equal(l.res.plan, SRV_PLAN_TARGETS);
    /* plain1 has an A and an AAAA record: both listed (the order of a target's addresses is the
     * resolver's), then plain2. */
    assert_int_equal(l.res.n, 4);
    char t[400];
    ep_text(&l.res.ep[0], t, sizeof(t));
    assert_string_equal(t, "tls1.srv.test 127.0.0.20:5223 tls");
    int v4 = 0, v6 = 0;
    for (int i = 1; i <= 2; i++) {
        ep_text(&l.res.ep[i], t, sizeof(t));
        v4 += strcmp(t, "plain1.srv.test 127.0.0.21:5269 starttls") == 0;
        v6 += strcmp(t, "plain1.srv.test [::21]:5269 starttls") == 0;
    }
    assert_int_equal(v4, 1);
    assert_int_equal(v6, 1);
    ep_text(&l.res.ep[3], t, sizeof(t));
    assert_string_equal(t, "plain2.srv.test 127.0.0.22:5270 starttls");
}

static void test_fallback(void **state)
{
    lookup_t l = {.domain = "fb.test"};
    run_lookup(&l);
    assert_int_equal(l.res.status, 0);
    assert_int_equal(l.res.plan, SRV_PLAN_FALLBACK);
    const char *const want[] = {"fb.test 127.0.0.30:5269 starttls"};
    expect(&l.res, want, 1);
}

static void test_dot_no_service(void **state)
{
    lookup_t l = {.domain = "dot.test"};
    run_lookup(&l);
    /* dot.test has an A record, but "." forbids falling back to it. */
    assert_int_equal(l.res.plan, SRV_PLAN_NO_SERVICE);
    assert_int_equal(l.res.status, FG_ENOTFOUND);
    assert_int_equal(l.res.n, 0);
}

static void test_xmpps_dot(void **state)
{
    lookup_t l = {.domain = "xdot.test"};
    run_lookup(&l);
    assert_int_equal(l.res.status, 0);
    const char *const want[] = {"plain.xdot.test 127.0.0.32:5269 starttls"};
    expect(&l.res, want, 1);

    lookup_t x = {.domain = "xonly.test"};
    run_lookup(&x);
    assert_int_equal(x.res.plan, SRV_PLAN_NO_SERVICE);
    assert_int_equal(x.res.n, 0);
}

static void test_proxy_fqdn(void **state)
{
    /* srv.test has SRV records; the override replaces them. */
    lookup_t l = {.domain = "srv.test", .proxy = "proxy.test", .proxy_port = 5299};
    run_lookup(&l);
    assert_int_equal(l.res.status, 0);
    const char *const want[] = {"proxy.test 127.0.0.40:5299 starttls"};
    expect(&l.res, want, 1);
    lookup_t d = {.domain = "srv.test", .proxy = "proxy.test"};
    run_lookup(&d);
    const char *const want2[] = {"proxy.test 127.0.0.40:5269 starttls"};
    expect(&d.res, want2, 1);
}

static void test_nxdomain(void **state)
{
    lookup_t l = {.domain = "missing.test"};
    run_lookup(&l);
    assert_int_equal(l.res.plan, SRV_PLAN_FALLBACK);
    assert_int_equal(l.res.status, FG_ENOTFOUND);
    assert_int_equal(l.res.n, 0);
}

static void test_silent_server_times_out(void **state)
{
    /* A UDP socket that receives queries and never answers. */
    silent_fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_storage sa;
    listen_parse_addr("127.0.0.1:0", &sa);
    assert_int_equal(bind(silent_fd, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)), 0);
    listen_local_addr(silent_fd, &sa);
    listen_format_addr(&sa, silent_resolver, sizeof(silent_resolver));
    lookup_t l = {.domain = "srv.test", .silent = 1};
    run_lookup(&l);
    assert_int_equal(l.res.status, -ETIMEDOUT);
    assert_int_equal(l.res.n, 0);
    /* About the configured 200 ms, generously bounded. */
    assert_true(l.took_ns >= 150u * 1000000u && l.took_ns < 5000u * 1000000u);
}

int main(void)
{
    if (!dnsmasq_path()) {
        fprintf(stderr, "dnsmasq not installed: skipping\n");
        return 77;
    }
    io_features_t f;
    if (io_features_probe(&f) < 0 || !f.buf_ring)
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_merge),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_dot_no_service),
        cmocka_unit_test(test_xmpps_dot),
        cmocka_unit_test(test_proxy_fqdn),
        cmocka_unit_test(test_nxdomain),
        cmocka_unit_test(test_silent_server_times_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
