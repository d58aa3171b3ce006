/*
 * dns: s2s name resolution with c-ares, driven inside a worker's ring. c-ares sockets are watched
 * with IORING_OP_POLL_ADD and its retransmission timeouts run on the worker's timer heap, so a
 * lookup never blocks a worker and needs no extra thread.
 *
 * dns_resolve_s2s() turns a partner domain into an ordered list of endpoints: SRV
 * `_xmpps-server._tcp.D` and `_xmpp-server._tcp.D` are looked up together and merged (see srv.h
 * for the rules), then every A/AAAA address of each target is listed in target order. A ProxyFqdn
 * override replaces SRV: the endpoints are the addresses of that host on its port (default 5269),
 * STARTTLS.
 *
 * Ownership: one dns_t per worker, created and used on that worker's thread, freed by dns_destroy
 * (or by the worker when it stops). The result handed to the callback is borrowed until the
 * callback returns.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "io/srv.h"

typedef struct dns dns_t;
typedef struct worker worker_t;

#define DNS_MAX_TARGETS          16
#define DNS_MAX_ADDRS_PER_TARGET 8
#define DNS_MAX_ENDPOINTS        32
#define XMPP_SERVER_PORT         5269

typedef struct {
    struct sockaddr_storage addr; /* with the port set */
    socklen_t addrlen;
    bool direct_tls;         /* XEP-0368: TLS at once, SNI = name, ALPN xmpp-server */
    char name[SRV_NAME_MAX]; /* SRV target, the domain itself (fallback) or the proxy host */
} dns_endpoint_t;

typedef struct {
    int status;           /* 0, FG_ENOTFOUND (no service or no address), -ETIMEDOUT, -EIO */
    srv_plan_kind_t plan; /* how the list was made (SRV_PLAN_TARGETS also for ProxyFqdn) */
    size_t n;
    dns_endpoint_t ep[DNS_MAX_ENDPOINTS];
} dns_result_t;

typedef void (*dns_cb_t)(void *arg, const dns_result_t *res);

typedef struct {
    const char *servers; /* "ip[:port],..." (c-ares CSV); NULL: /etc/resolv.conf */
    unsigned timeout_ms; /* first try; c-ares backs off after it. Default 2000 */
    unsigned tries;      /* default 2 */
    srv_rng_t rng;       /* weighted SRV order; NULL: a per-worker xorshift seeded at random */
    void *rng_arg;
} dns_config_t;

/* Creates the resolver of worker w (call on w's thread, e.g. from on_start). 0, -ENOMEM, -EIO
 * (c-ares init), FG_EPARSE (bad server list), -EEXIST if w already has one. */
int dns_create(worker_t *w, const dns_config_t *cfg, dns_t **out);
/* Cancels every pending lookup (no callbacks) and releases the resolver. */
void dns_destroy(dns_t *d);

/*
 * Starts a lookup. proxy_host non-NULL replaces SRV (proxy_port 0 means 5269). The callback runs
 * once, later, on the worker's thread (never from inside this call). 0 with *id set (for
 * dns_cancel), FG_EDOMAIN for an unusable name, -ENOMEM.
 */
int dns_resolve_s2s(dns_t *d, const char *domain, const char *proxy_host, uint16_t proxy_port,
                    dns_cb_t cb, void *arg, uint64_t *id);
/* The callback of lookup `id` will not be called. Unknown ids are ignored. */
void dns_cancel(dns_t *d, uint64_t id);
/* Lookups in progress. */
unsigned dns_pending(const dns_t *d);

/* Internal to io/: completions of the resolver's poll SQEs. */
void dns_handle_cqe(dns_t *d, unsigned op, uint32_t idx, uint32_t gen, int res);
