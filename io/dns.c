#include "io/dns.h"

#include <ares.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/err.h"
#include "core/log.h"
#include "io/worker.h"

#define DNS_SOCKS 16

typedef struct {
    int fd; /* -1: free */
    bool want_r, want_w;
    bool armed;
    uint32_t gen;
    uint64_t armed_tag;
} dns_sock_t;

typedef struct dns_query dns_query_t;

typedef struct {
    dns_query_t *q;
    unsigned i;
} gai_ctx_t;

struct dns_query {
    dns_t *d;
    uint64_t id;
    bool cancelled;
    bool done;
    bool proxy;
    int outstanding; /* c-ares callbacks still to come, +1 while a phase is being started */
    char domain[SRV_NAME_MAX];
    dns_cb_t cb;
    void *arg;
    srv_rr_t rr[2][DNS_MAX_TARGETS]; /* [0] xmpps, [1] xmpp */
    size_t nrr[2];
    srv_status_t st[2];
    int ares_st[2];
    srv_rr_t targets[DNS_MAX_TARGETS];
    size_t ntargets;
    srv_plan_kind_t plan;
    struct {
        struct sockaddr_storage a[DNS_MAX_ADDRS_PER_TARGET];
        socklen_t len[DNS_MAX_ADDRS_PER_TARGET];
        size_t n;
        int status;
    } addrs[DNS_MAX_TARGETS];
    gai_ctx_t gctx[DNS_MAX_TARGETS];
    dns_query_t *next;
    dns_result_t res;
};

struct dns {
    worker_t *w;
    ares_channel ch;
    bool ch_ok;
    dns_sock_t socks[DNS_SOCKS];
    timer_ent_t tmr;
    srv_rng_t rng;
    void *rng_arg;
    uint64_t rng_state;
    uint64_t next_id;
    dns_query_t *queries;
    unsigned pending;
    bool in_process; /* inside a c-ares call: callbacks may not finish queries synchronously */
    timer_ent_t finish_tmr;
    uint64_t last_log_ns;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_global_init(void)
{
    ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static uint32_t xorshift(void *arg)
{
    uint64_t *s = arg;
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (uint32_t)(x >> 32);
}

unsigned dns_pending(const dns_t *d)
{
    return d->pending;
}

/* ---- sockets in the ring ------------------------------------------------------------------ */

static void sock_arm(dns_t *d, unsigned i)
{
    dns_sock_t *s = &d->socks[i];
    if (s->armed || s->fd < 0 || (!s->want_r && !s->want_w))
        return;
    struct io_uring_sqe *sqe = worker_sqe(d->w);
    if (!sqe)
        return;
    unsigned mask = (s->want_r ? POLLIN : 0) | (s->want_w ? POLLOUT : 0);
    s->gen = (s->gen + 1) & CONNTAB_GEN_MASK;
    s->armed_tag = iotag_make(IOOP_DNS_POLL, i, s->gen);
    io_uring_prep_poll_add(sqe, s->fd, mask);
    io_uring_sqe_set_data64(sqe, s->armed_tag);
    s->armed = true;
}

static void sock_disarm(dns_t *d, unsigned i)
{
    dns_sock_t *s = &d->socks[i];
    if (!s->armed)
        return;
    struct io_uring_sqe *sqe = worker_sqe(d->w);
    if (sqe) {
        io_uring_prep_poll_remove(sqe, s->armed_tag);
        io_uring_sqe_set_data64(sqe, iotag_make(IOOP_DNS_CANCEL, i, 0));
    }
    /* Its completion (if any) carries the old generation and is ignored. */
    s->armed = false;
    s->gen = (s->gen + 1) & CONNTAB_GEN_MASK;
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_t *d = data;
    int slot = -1, free_slot = -1;
    for (int i = 0; i < DNS_SOCKS; i++) {
        if (d->socks[i].fd == fd)
            slot = i;
        else if (d->socks[i].fd < 0 && free_slot < 0)
            free_slot = i;
    }
    if (!readable && !writable) {
        if (slot >= 0) {
            sock_disarm(d, (unsigned)slot);
            d->socks[slot].fd = -1;
        }
        return;
    }
    if (slot < 0) {
        if (free_slot < 0) {
            /* More sockets than we watch: c-ares still times the query out. */
            if (worker_log_allowed(&d->last_log_ns, 10ull * 1000000000ull))
                log_warn("dns: worker %u: too many resolver sockets", worker_index(d->w));
            return;
        }
        slot = free_slot;
        d->socks[slot].fd = fd;
        d->socks[slot].armed = false;
    }
    dns_sock_t *s = &d->socks[slot];
    if (s->armed && (s->want_r != (bool)readable || s->want_w != (bool)writable))
        sock_disarm(d, (unsigned)slot);
    s->want_r = readable;
    s->want_w = writable;
    sock_arm(d, (unsigned)slot);
}

static void update_timer(dns_t *d)
{
    struct timeval tv, *tvp = ares_timeout(d->ch, NULL, &tv);
    if (!tvp) {
        timer_cancel(worker_timers(d->w), &d->tmr);
        return;
    }
    uint64_t ns = (uint64_t)tvp->tv_sec * 1000000000ull + (uint64_t)tvp->tv_usec * 1000ull;
    timer_arm_at(worker_timers(d->w), &d->tmr, timer_now_ns() + ns);
}

static void finish_ready(dns_t *d);

static void process(dns_t *d, ares_socket_t r, ares_socket_t w)
{
    d->in_process = true;
    ares_process_fd(d->ch, r, w);
    d->in_process = false;
    finish_ready(d);
    update_timer(d);
}

static void timer_fire(timer_ent_t *t, void *arg)
{
    process(arg, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

void dns_handle_cqe(dns_t *d, unsigned op, uint32_t idx, uint32_t gen, int res)
{
    if (op != IOOP_DNS_POLL || idx >= DNS_SOCKS)
        return;
    dns_sock_t *s = &d->socks[idx];
    if (s->fd < 0 || !s->armed || s->gen != gen)
        return; /* stale: the socket was closed or re-armed since */
    s->armed = false;
    int fd = s->fd;
    if (res > 0) {
        bool r = res & (POLLIN | POLLERR | POLLHUP);
        bool w = res & POLLOUT;
        process(d, r ? fd : ARES_SOCKET_BAD, w ? fd : ARES_SOCKET_BAD);
    }
    /* Still watched (c-ares may have closed or changed it meanwhile): arm again. */
    if (s->fd == fd)
        sock_arm(d, idx);
}

/* ---- query state ------------------------------------------------------------------------- */

static void query_free(dns_query_t *q)
{
    dns_t *d = q->d;
    for (dns_query_t **pp = &d->queries; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    d->pending--;
    free(q);
}

static void deliver(dns_query_t *q)
{
    if (!q->cancelled && q->cb)
        q->cb(q->arg, &q->res);
}

/* Results are delivered from the loop (never from inside dns_resolve_s2s or a c-ares call), so a
 * callback may start or cancel lookups freely. */
static void finish_ready(dns_t *d)
{
    if (d->in_process)
        return;
    for (;;) {
        dns_query_t *q = d->queries;
        while (q && !(q->done && q->outstanding == 0))
            q = q->next;
        if (!q)
            break;
        deliver(q);
        query_free(q);
    }
}

static void finish_timer(timer_ent_t *t, void *arg)
{
    finish_ready(arg);
}

static void complete(dns_query_t *q, int status)
{
    q->res.status = status;
    q->res.plan = q->plan;
    q->done = true;
    if (!q->d->in_process)
        timer_arm_at(worker_timers(q->d->w), &q->d->finish_tmr, 0);
}

static void assemble(dns_query_t *q)
{
    dns_result_t *r = &q->res;
    r->n = 0;
    int last_err = 0;
    for (size_t t = 0; t < q->ntargets; t++) {
        if (q->addrs[t].status)
            last_err = q->addrs[t].status;
        for (size_t i = 0; i < q->addrs[t].n && r->n < DNS_MAX_ENDPOINTS; i++) {
            dns_endpoint_t *e = &r->ep[r->n++];
            memset(e, 0, sizeof(*e));
            e->addr = q->addrs[t].a[i];
            e->addrlen = q->addrs[t].len[i];
            e->direct_tls = q->targets[t].direct_tls;
            snprintf(e->name, sizeof(e->name), "%s", q->targets[t].target);
        }
    }
    complete(q, r->n ? 0 : (last_err ? last_err : FG_ENOTFOUND));
}

static int map_ares(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return 0;
    case ARES_ENODATA:
    case ARES_ENOTFOUND:
    case ARES_ENONAME:
        return FG_ENOTFOUND;
    case ARES_ETIMEOUT:
        return -ETIMEDOUT;
    case ARES_ENOMEM:
        return -ENOMEM;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return -ECANCELED;
    default:
        return -EIO;
    }
}

static void gai_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    gai_ctx_t *g = arg;
    dns_query_t *q = g->q;
    unsigned t = g->i;
    q->addrs[t].status = map_ares(status);
    if (status == ARES_SUCCESS && ai) {
        uint16_t port = q->targets[t].port;
        for (struct ares_addrinfo_node *n = ai->nodes; n; n = n->ai_next) {
            size_t k = q->addrs[t].n;
            if (k >= DNS_MAX_ADDRS_PER_TARGET)
                break;
            if (n->ai_family == AF_INET && n->ai_addrlen >= sizeof(struct sockaddr_in)) {
                struct sockaddr_in *sin = (struct sockaddr_in *)&q->addrs[t].a[k];
                memcpy(sin, n->ai_addr, sizeof(*sin));
                sin->sin_port = htons(port);
                q->addrs[t].len[k] = sizeof(*sin);
            } else if (n->ai_family == AF_INET6 && n->ai_addrlen >= sizeof(struct sockaddr_in6)) {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&q->addrs[t].a[k];
                memcpy(sin6, n->ai_addr, sizeof(*sin6));
                sin6->sin6_port = htons(port);
                q->addrs[t].len[k] = sizeof(*sin6);
            } else {
                continue;
            }
            q->addrs[t].n++;
        }
    }
    if (ai)
        ares_freeaddrinfo(ai);
    if (--q->outstanding == 0 && !q->done)
        assemble(q);
}

static void start_addresses(dns_query_t *q)
{
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    q->outstanding++; /* guard: callbacks may run synchronously */
    for (size_t t = 0; t < q->ntargets; t++) {
        q->gctx[t].q = q;
        q->gctx[t].i = (unsigned)t;
        q->outstanding++;
        if (strcasecmp(q->targets[t].target, "localhost") == 0) {
            /* RFC 6761 §6.3: localhost is the loopback address and is never asked of a DNS
               server; c-ares skips the DNS lookup for it, and /etc/hosts is off here. */
            struct sockaddr_in *sin = (struct sockaddr_in *)&q->addrs[t].a[0];
            memset(sin, 0, sizeof(*sin));
            sin->sin_family = AF_INET;
            sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            sin->sin_port = htons(q->targets[t].port);
            q->addrs[t].len[0] = sizeof(*sin);
            q->addrs[t].n = 1;
            q->addrs[t].status = 0;
            q->outstanding--;
            continue;
        }
        ares_getaddrinfo(q->d->ch, q->targets[t].target, NULL, &hints, gai_cb, &q->gctx[t]);
    }
    if (--q->outstanding == 0 && !q->done)
        assemble(q);
}

static void plan_targets(dns_query_t *q)
{
    srv_answer_t a[2];
    for (int s = 0; s < 2; s++) {
        a[s].status = q->st[s];
        a[s].rr = q->rr[s];
        a[s].n = q->nrr[s];
    }
    q->plan =
        srv_plan(&a[0], &a[1], q->d->rng, q->d->rng_arg, q->targets, DNS_MAX_TARGETS, &q->ntargets);
    switch (q->plan) {
    case SRV_PLAN_TARGETS:
        break;
    case SRV_PLAN_FALLBACK:
        memset(&q->targets[0], 0, sizeof(q->targets[0]));
        snprintf(q->targets[0].target, sizeof(q->targets[0].target), "%s", q->domain);
        q->targets[0].port = XMPP_SERVER_PORT;
        q->ntargets = 1;
        break;
    case SRV_PLAN_NO_SERVICE:
        complete(q, FG_ENOTFOUND);
        return;
    case SRV_PLAN_ERROR:
        complete(q, q->ares_st[0] == ARES_ETIMEOUT || q->ares_st[1] == ARES_ETIMEOUT ? -ETIMEDOUT
                                                                                     : -EIO);
        return;
    }
    start_addresses(q);
}

typedef struct {
    dns_query_t *q;
    int svc;
} srv_ctx_t;

static void srv_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    srv_ctx_t *c = arg;
    dns_query_t *q = c->q;
    int s = c->svc;
    free(c);
    q->nrr[s] = 0;
    q->ares_st[s] = status;
    if (status == ARES_SUCCESS) {
        struct ares_srv_reply *reply = NULL;
        int pr = ares_parse_srv_reply(abuf, alen, &reply);
        if (pr == ARES_SUCCESS) {
            for (struct ares_srv_reply *r = reply; r && q->nrr[s] < DNS_MAX_TARGETS; r = r->next) {
                srv_rr_t *rr = &q->rr[s][q->nrr[s]++];
                memset(rr, 0, sizeof(*rr));
                snprintf(rr->target, sizeof(rr->target), "%s", r->host ? r->host : "");
                size_t l = strlen(rr->target);
                if (l > 1 && rr->target[l - 1] == '.')
                    rr->target[l - 1] = '\0';
                rr->port = r->port;
                rr->priority = r->priority;
                rr->weight = r->weight;
                rr->direct_tls = s == 0;
            }
            q->st[s] = q->nrr[s] ? SRV_ANS_RECORDS : SRV_ANS_NONE;
        } else {
            q->st[s] = pr == ARES_ENODATA ? SRV_ANS_NONE : SRV_ANS_ERROR;
        }
        if (reply)
            ares_free_data(reply);
    } else if (status == ARES_ENODATA || status == ARES_ENOTFOUND) {
        q->st[s] = SRV_ANS_NONE;
    } else {
        q->st[s] = SRV_ANS_ERROR;
    }
    if (--q->outstanding == 0 && !q->done) {
        if (q->cancelled)
            complete(q, -ECANCELED);
        else
            plan_targets(q);
    }
}

/* ---- public ------------------------------------------------------------------------------- */

int dns_resolve_s2s(dns_t *d, const char *domain, const char *proxy_host, uint16_t proxy_port,
                    dns_cb_t cb, void *arg, uint64_t *id)
{
    const char *name = proxy_host ? proxy_host : domain;
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len >= SRV_NAME_MAX - 24 || strchr(name, '/') || name[0] == '.')
        return FG_EDOMAIN;
    dns_query_t *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->d = d;
    q->id = ++d->next_id;
    q->cb = cb;
    q->arg = arg;
    snprintf(q->domain, sizeof(q->domain), "%s", domain ? domain : name);
    q->next = d->queries;
    d->queries = q;
    d->pending++;
    if (id)
        *id = q->id;
    d->in_process = true;
    if (proxy_host) {
        q->proxy = true;
        q->plan = SRV_PLAN_TARGETS;
        snprintf(q->targets[0].target, sizeof(q->targets[0].target), "%s", proxy_host);
        q->targets[0].port = proxy_port ? proxy_port : XMPP_SERVER_PORT;
        q->ntargets = 1;
        start_addresses(q);
    } else {
        static const char *const svc[2] = {"_xmpps-server._tcp.", "_xmpp-server._tcp."};
        q->outstanding++;
        for (int s = 0; s < 2; s++) {
            char qname[SRV_NAME_MAX + 32];
            snprintf(qname, sizeof(qname), "%s%s", svc[s], domain);
            srv_ctx_t *c = malloc(sizeof(*c));
            if (!c) {
                q->st[s] = SRV_ANS_ERROR;
                continue;
            }
            c->q = q;
            c->svc = s;
            q->outstanding++;
            ares_query(d->ch, qname, ns_c_in, ns_t_srv, srv_answer, c);
        }
        if (--q->outstanding == 0 && !q->done)
            plan_targets(q);
    }
    d->in_process = false;
    /* Never deliver from inside this call. */
    if (q->done)
        timer_arm_at(worker_timers(d->w), &d->finish_tmr, 0);
    update_timer(d);
    return 0;
}

void dns_cancel(dns_t *d, uint64_t id)
{
    for (dns_query_t *q = d->queries; q; q = q->next)
        if (q->id == id)
            q->cancelled = true;
}

int dns_create(worker_t *w, const dns_config_t *cfg, dns_t **out)
{
    int ret = 0;
    if (w->dns)
        return -EEXIST;
    pthread_once(&ares_once, ares_global_init);
    if (ares_init_status != ARES_SUCCESS)
        return -EIO;
    dns_t *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->w = w;
    for (int i = 0; i < DNS_SOCKS; i++)
        d->socks[i].fd = -1;
    timer_init(&d->tmr, timer_fire, d);
    timer_init(&d->finish_tmr, finish_timer, d);
    if (cfg && cfg->rng) {
        d->rng = cfg->rng;
        d->rng_arg = cfg->rng_arg;
    } else {
        if (getrandom(&d->rng_state, sizeof(d->rng_state), 0) != sizeof(d->rng_state) ||
            d->rng_state == 0)
            d->rng_state = timer_now_ns() | 1;
        d->rng = xorshift;
        d->rng_arg = &d->rng_state;
    }
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES;
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = d;
    o.timeout = (int)(cfg && cfg->timeout_ms ? cfg->timeout_ms : 2000);
    o.tries = (int)(cfg && cfg->tries ? cfg->tries : 2);
    if (cfg && cfg->servers) {
        /* A configured resolver is the whole truth (split DNS): /etc/hosts is not consulted. */
        o.lookups = (char *)"b";
        mask |= ARES_OPT_LOOKUPS;
    }
    int st = ares_init_options(&d->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        ret = st == ARES_ENOMEM ? -ENOMEM : -EIO;
        goto fail;
    }
    d->ch_ok = true;
    if (cfg && cfg->servers && ares_set_servers_ports_csv(d->ch, cfg->servers) != ARES_SUCCESS) {
        ret = FG_EPARSE;
        goto fail;
    }
    w->dns = d;
    *out = d;
    return 0;
fail:
    if (d->ch_ok)
        ares_destroy(d->ch);
    free(d);
    return ret;
}

void dns_destroy(dns_t *d)
{
    if (!d)
        return;
    for (dns_query_t *q = d->queries; q; q = q->next)
        q->cancelled = true;
    d->in_process = true;
    /* Calls every pending callback with ARES_EDESTRUCTION and closes the sockets (which disarms
     * their polls through sock_state_cb). */
    ares_destroy(d->ch);
    for (int i = 0; i < DNS_SOCKS; i++)
        sock_disarm(d, (unsigned)i);
    while (d->queries)
        query_free(d->queries);
    timer_cancel(worker_timers(d->w), &d->tmr);
    timer_cancel(worker_timers(d->w), &d->finish_tmr);
    if (d->w->dns == d)
        d->w->dns = NULL;
    free(d);
}
