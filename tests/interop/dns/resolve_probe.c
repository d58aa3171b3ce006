/*
 * resolve_probe: resolves partner domains with io/dns exactly as the gateway does (c-ares inside a
 * worker ring) and prints the ordered endpoints, one line each:
 *
 *   <domain> <plan> <status> <name> <address:port> tls|starttls
 *
 * (a lookup with no endpoint prints one line with "-" for the last three fields). Used by the
 * interop DNS test against the lab's dnsmasq.
 *
 *   resolve_probe --resolver IP:PORT [--proxy HOST[:PORT]] [--seed N] DOMAIN...
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "io/dns.h"
#include "io/listen.h"
#include "io/worker.h"

static const char *resolver, *proxy_host;
static uint16_t proxy_port;
static uint64_t seed = 1;
static char **domains;
static int ndomains;
static _Atomic int finished;

static uint32_t rng(void *arg)
{
    uint64_t *s = arg;
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*s >> 33);
}

typedef struct {
    const char *domain;
} req_t;

static void done(void *arg, const dns_result_t *r)
{
    req_t *q = arg;
    if (r->n == 0)
        printf("%s %s %d - - -\n", q->domain, srv_plan_name(r->plan), r->status);
    for (size_t i = 0; i < r->n; i++) {
        char a[80];
        listen_format_addr(&r->ep[i].addr, a, sizeof(a));
        printf("%s %s %d %s %s %s\n", q->domain, srv_plan_name(r->plan), r->status, r->ep[i].name,
               a, r->ep[i].direct_tls ? "tls" : "starttls");
    }
    fflush(stdout);
    free(q);
    atomic_fetch_add(&finished, 1);
}

static void on_start(worker_t *w)
{
    dns_t *d;
    dns_config_t cfg = {
        .servers = resolver, .timeout_ms = 1000, .tries = 2, .rng = rng, .rng_arg = &seed};
    int ret = dns_create(w, &cfg, &d);
    if (ret != 0) {
        fprintf(stderr, "resolve_probe: %s\n", fg_strerror(ret));
        atomic_store(&finished, ndomains);
        return;
    }
    for (int i = 0; i < ndomains; i++) {
        req_t *q = malloc(sizeof(*q));
        q->domain = domains[i];
        ret = dns_resolve_s2s(d, domains[i], proxy_host, proxy_port, done, q, NULL);
        if (ret != 0) {
            printf("%s error %d - - -\n", domains[i], ret);
            free(q);
            atomic_fetch_add(&finished, 1);
        }
    }
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--resolver") == 0 && i + 1 < argc) {
            resolver = argv[++i];
        } else if (strcmp(argv[i], "--proxy") == 0 && i + 1 < argc) {
            char *p = argv[++i];
            char *colon = strchr(p, ':');
            if (colon) {
                *colon = '\0';
                proxy_port = (uint16_t)atoi(colon + 1);
            }
            proxy_host = p;
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            break;
        }
    }
    if (!resolver || i >= argc) {
        fprintf(stderr, "usage: resolve_probe --resolver IP:PORT [--proxy HOST[:PORT]] [--seed N] "
                        "DOMAIN...\n");
        return 2;
    }
    domains = argv + i;
    ndomains = argc - i;
    wgroup_t *g;
    wgroup_config_t cfg = {.nworkers = 1, .max_conns = 8, .on_start = on_start};
    if (wgroup_create(&g, &cfg) != 0 || wgroup_start(g) != 0) {
        fprintf(stderr, "resolve_probe: cannot start a worker\n");
        return 1;
    }
    for (int t = 0; t < 1000 && atomic_load(&finished) < ndomains; t++)
        usleep(10000);
    int ok = atomic_load(&finished) >= ndomains;
    wgroup_destroy(g);
    return ok ? 0 : 1;
}
