/*
 * fedgate: the gateway daemon. Reads everything from the store (gateway settings, hosted domains
 * with their certificates and routes, partners), starts one io_uring worker per core with its own
 * policy reader, listens on the configured s2s, direct-TLS s2s, component and metrics addresses,
 * and runs until SIGTERM or SIGINT, then shuts down gracefully: stop accepting, close every stream
 * with <system-shutdown/>, bounce what is queued, stop the workers.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/log.h"
#include "io/gw.h"
#include "io/gw_ptype.h"
#include "io/gw_session.h"
#include "io/listen.h"
#include "io/mhttp.h"
#include "policy/store.h"
#include "tls/tls_ctx.h"

#define MAX_CREDS 4096
/* How often the control thread checks certificate files for changes (ms). */
#define GW_TLS_CHECK_MS 2000

typedef struct {
    tls_cred_config_t creds[MAX_CREDS];
    hosted_t *hosted; /* copies the creds point into */
    size_t n;
    size_t ninternal; /* enabled hosted domains with route s2s */
} creds_t;

static int add_cred(const hosted_t *h, void *arg)
{
    creds_t *c = arg;
    if (h->enabled && h->route == HOSTED_ROUTE_S2S)
        c->ninternal++;
    if (!h->enabled || !h->cert_path[0] || !h->key_path[0] || c->n == MAX_CREDS)
        return 0;
    c->hosted[c->n] = *h;
    c->creds[c->n].domain = c->hosted[c->n].domain;
    c->creds[c->n].cert_file = c->hosted[c->n].cert_path;
    c->creds[c->n].key_file = c->hosted[c->n].key_path;
    c->n++;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fedgate --store DIR [--workers N] [--log-level error|warn|info|debug]\n"
               "               [--listen-s2s ADDR:PORT] [--listen-s2s-tls ADDR:PORT]\n"
               "               [--listen-component ADDR:PORT] [--listen-component-tls ADDR:PORT]\n"
               "               [--listen-metrics ADDR:PORT]\n"
               "               [--resolver ADDR:PORT] [--spin-us N]\n"
               "Listeners and the resolver come from the store's gateway settings; the options\n"
               "override them for development (\"\" turns a listener off). --spin-us: how long an\n"
               "idle worker polls before it sleeps (0: never; default: the io layer's).\n");
}

static void collect_gw(void *arg, buf_t *out)
{
    gw_t *gw = arg;
    char line[256];
    snprintf(line, sizeof(line),
             "# HELP fedgate_partner_connections Partner streams counted against "
             "ConnectionLimit\n# TYPE fedgate_partner_connections gauge\n"
             "fedgate_partner_connections %u\n",
             atomic_load(&gw->nconns));
    buf_append_str(out, line);
    /* Read from the metrics thread: xq_len is two atomic loads, a snapshot. */
    buf_append_str(out, "# HELP fedgate_worker_queue_depth Messages waiting in a worker's queues "
                        "from the other workers and the control thread\n"
                        "# TYPE fedgate_worker_queue_depth gauge\n");
    for (unsigned i = 0; i < gw->nworkers; i++) {
        worker_t *w = wgroup_worker(gw->g, i);
        uint32_t n = 0;
        for (unsigned j = 0; w && w->inq && j <= gw->nworkers; j++)
            n += xq_len(&w->inq[j]);
        snprintf(line, sizeof(line), "fedgate_worker_queue_depth{worker=\"%u\"} %u\n", i, n);
        buf_append_str(out, line);
    }
}

/* The /metrics server: a thread of its own, so scrapes never wait behind stanza traffic. */
static mhttp_t *metrics_srv;

/* balanced: connections are dealt out over the workers in turn instead of by SO_REUSEPORT's hash
   (components: one that opens a connection per worker has every stanza delivered on the worker
   that received it, see gw_route). */
static int open_listener(gw_t *gw, const char *what, const char *addr, const conn_ops_t *ops,
                         bool balanced)
{
    struct sockaddr_storage sa;
    char text[80];
    if (!addr[0])
        return 0;
    int rc = listen_parse_addr(addr, &sa);
    if (rc == 0)
        rc = !ops       ? mhttp_start(&metrics_srv, &sa, gw->metrics, NULL)
             : balanced ? wgroup_listen_balanced(gw->g, &sa, ops, NULL)
                        : wgroup_listen(gw->g, &sa, ops, NULL);
    if (rc != 0) {
        fprintf(stderr, "fedgate: cannot listen for %s on %s: %s\n", what, addr, fg_strerror(rc));
        return rc;
    }
    listen_format_addr(&sa, text, sizeof(text));
    printf("fedgate: listening for %s on %s\n", what, text);
    return 0;
}

/* FNV-1a over the TLS inputs, to tell whether a rebuild is needed. */
static uint64_t sig_add(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return (h ^ 0xff) * 1099511628211ull;
}

/*
 * A TLS context from the store as it is now: the certificate of every enabled hosted domain and
 * the trust anchors. *sig summarises those inputs (names and paths) so that the control thread
 * rebuilds only when they, or the files behind them, changed: with skip_sig equal to the new
 * summary nothing is built and 1 is returned. 0 with *out set, or an error.
 */
static int tls_build(const char *store_dir, tls_ctx_t **out, uint64_t *sig, size_t *ncreds,
                     size_t *ninternal, uint64_t skip_sig)
{
    int rc;
    store_t *store = NULL;
    settings_t *st = calloc(1, sizeof(*st));
    creds_t *cr = calloc(1, sizeof(*cr));
    if (cr)
        cr->hosted = calloc(MAX_CREDS, sizeof(hosted_t));
    if (!st || !cr || !cr->hosted) {
        rc = -ENOMEM;
        goto out;
    }
    rc = store_open(store_dir, STORE_READONLY, &store, NULL, 0);
    if (rc == 0)
        rc = store_settings_get(store, st);
    if (rc == 0)
        rc = store_hosted_list(store, add_cred, cr);
    if (rc != 0)
        goto out;
    uint64_t h = 14695981039346656037ull;
    h = sig_add(h, st->trust_anchors);
    h = sig_add(h, cr->ninternal ? "internal" : "");
    for (size_t i = 0; i < cr->n; i++) {
        h = sig_add(h, cr->creds[i].domain);
        h = sig_add(h, cr->creds[i].cert_file);
        h = sig_add(h, cr->creds[i].key_file);
    }
    if (skip_sig && h == skip_sig) {
        /* Same inputs: no context is built (that costs milliseconds of this thread, which also
           wakes the workers on policy changes). */
        *sig = h;
        rc = 1;
        goto out;
    }
    tls_ctx_config_t tc = {.ca_file = st->trust_anchors[0] ? st->trust_anchors : NULL,
                           .creds = cr->creds,
                           .ncreds = cr->n};
    rc = tls_ctx_new(&tc, out);
    if (rc == 0) {
        *sig = h;
        *ncreds = cr->n;
        *ninternal = cr->ninternal;
    }
out:
    if (store)
        store_close(store);
    if (cr)
        free(cr->hosted);
    free(cr);
    free(st);
    return rc;
}

/* Certificates, keys or trust anchors changed (in the store or on disk): hand every worker a new
   context. Open streams keep the one they started with (tls_ctx.h). */
static void tls_maybe_reload(gw_t *gw)
{
    tls_ctx_t *nctx = NULL;
    uint64_t sig = 0;
    size_t n = 0, ni = 0;
    if (!tls_ctx_files_changed(gw->tls)) {
        /* Cheap check first: the store's list of hosted domains and paths. */
        if (tls_build(gw->store, &nctx, &sig, &n, &ni, gw->tls_sig) != 0) {
            if (nctx)
                tls_ctx_unref(nctx);
            return;
        }
    } else if (tls_build(gw->store, &nctx, &sig, &n, &ni, 0) != 0) {
        log_warn("fedgate: certificates changed but cannot be loaded; keeping the old ones");
        return;
    }
    for (unsigned i = 0; i < gw->nworkers; i++) {
        xq_msg_t m = {.type = GW_MSG_TLS, .ptr = tls_ctx_ref(nctx)};
        if (worker_post(NULL, gw->g, i, &m) != 0)
            tls_ctx_unref(nctx);
    }
    tls_ctx_unref(gw->tls);
    gw->tls = nctx;
    gw->tls_sig = sig;
    atomic_store(&gw->have_internal, ni > 0);
    log_info("fedgate: certificates reloaded (%zu hosted domains)", n);
}

static unsigned conns_open(gw_t *gw)
{
    unsigned n = 0;
    for (unsigned i = 0; i < gw->nworkers; i++)
        n += worker_conn_count(wgroup_worker(gw->g, i));
    return n;
}

/*
 * The control thread's loop: wait for SIGTERM/SIGINT, and meanwhile turn every commit to the
 * store (LMDB writes data.mdb) into a wake-up of the workers, so idle ones see a policy change at
 * once instead of at their next periodic refresh.
 */
static int wait_for_signal(gw_t *gw, const sigset_t *sigs)
{
    int sfd = signalfd(-1, sigs, SFD_CLOEXEC);
    int ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (ifd >= 0 &&
        inotify_add_watch(ifd, gw->store, IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        log_warn("fedgate: cannot watch %s for changes (%s); policy changes are seen within %d ms",
                 gw->store, strerror(errno), GW_REFRESH_MS);
        close(ifd);
        ifd = -1;
    }
    int sig = SIGTERM;
    uint64_t last_tls_check = 0;
    bool tls_pending = false;
    for (;;) {
        int timeout = GW_TLS_CHECK_MS;
        if (tls_pending) {
            uint64_t since = (timer_now_ns() - last_tls_check) / 1000000ull;
            timeout = since >= 1000 ? 0 : (int)(1000 - since);
        }
        struct pollfd p[2] = {{.fd = sfd, .events = POLLIN}, {.fd = ifd, .events = POLLIN}};
        int n = poll(p, ifd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            last_tls_check = timer_now_ns();
            tls_pending = false;
            tls_maybe_reload(gw);
            continue;
        }
        if (n < 0 || sfd < 0)
            break;
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                sig = (int)si.ssi_signo;
            break;
        }
        if (ifd >= 0 && (p[1].revents & POLLIN)) {
            _Alignas(struct inotify_event) char ev[4096];
            bool changed = false;
            ssize_t r;
            while ((r = read(ifd, ev, sizeof(ev))) > 0) {
                for (char *q = ev; q < ev + r;) {
                    struct inotify_event *e = (struct inotify_event *)q;
                    if (e->len && strcmp(e->name, "data.mdb") == 0)
                        changed = true;
                    q += sizeof(*e) + e->len;
                }
            }
            if (changed) {
                wgroup_notify(gw->g);
                /* The gateway's own ledger writes change data.mdb too: rebuilding the TLS
                   context is checked at most once a second on changes, and by the timeout. */
                uint64_t now = timer_now_ns();
                if (now - last_tls_check >= 1000000000ull) {
                    last_tls_check = now;
                    tls_pending = false;
                    tls_maybe_reload(gw);
                } else {
                    tls_pending = true; /* checked when the second is over (poll timeout) */
                }
            }
        }
    }
    if (ifd >= 0)
        close(ifd);
    if (sfd >= 0)
        close(sfd);
    return sig;
}

int main(int argc, char **argv)
{
    static gw_t gwv;
    gw_t *gw = &gwv;
    const char *store_dir = getenv("FEDGATE_STORE");
    const char *o_s2s = NULL, *o_tls = NULL, *o_comp = NULL, *o_ctls = NULL, *o_metrics = NULL,
               *o_res = NULL;
    unsigned nworkers = 0;
    int rc = 1;
    store_t *store = NULL;
    enum { O_S2S = 256, O_TLS, O_COMP, O_CTLS, O_METRICS, O_RES, O_SPIN };
    long spin_us = -1;
    static const struct option opts[] = {{"store", required_argument, NULL, 's'},
                                         {"workers", required_argument, NULL, 'w'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"listen-s2s", required_argument, NULL, O_S2S},
                                         {"listen-s2s-tls", required_argument, NULL, O_TLS},
                                         {"listen-component-tls", required_argument, NULL, O_CTLS},
                                         {"listen-component", required_argument, NULL, O_COMP},
                                         {"listen-metrics", required_argument, NULL, O_METRICS},
                                         {"resolver", required_argument, NULL, O_RES},
                                         {"spin-us", required_argument, NULL, O_SPIN},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "s:w:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            store_dir = optarg;
            break;
        case 'w': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 256) {
                fprintf(stderr, "fedgate: --workers: \"%s\" is not a number from 1 to 256\n",
                        optarg);
                return 2;
            }
            nworkers = (unsigned)v;
            break;
        }
        case 'l': {
            int lv = log_parse_level(optarg);
            if (lv < 0) {
                fprintf(stderr, "fedgate: --log-level: \"%s\" is not error, warn, info or debug\n",
                        optarg);
                return 2;
            }
            log_set_level((log_level_t)lv);
            break;
        }
        case O_S2S:
            o_s2s = optarg;
            break;
        case O_TLS:
            o_tls = optarg;
            break;
        case O_CTLS:
            o_ctls = optarg;
            break;
        case O_COMP:
            o_comp = optarg;
            break;
        case O_METRICS:
            o_metrics = optarg;
            break;
        case O_RES:
            o_res = optarg;
            break;
        case O_SPIN: {
            char *end;
            spin_us = strtol(optarg, &end, 10);
            if (*end || spin_us < 0 || spin_us > 100000) {
                fprintf(stderr, "fedgate: --spin-us: \"%s\" is not a number from 0 to 100000\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || !store_dir) {
        usage(stderr);
        return 2;
    }
    if (!nworkers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        nworkers = n > 0 && n <= 256 ? (unsigned)n : 1;
    }

    /* Signals are taken by sigwait() in this thread only; workers inherit the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[256] = "";
    if (store_open(store_dir, STORE_READONLY, &store, err, sizeof(err)) != 0) {
        fprintf(stderr, "fedgate: %s\n", err[0] ? err : "cannot open the store");
        return 5;
    }
    if (store_settings_get(store, &gw->settings) != 0) {
        fprintf(stderr, "fedgate: store %s has no gateway settings; run fedgate-admin init\n",
                store_dir);
        rc = 5;
        goto out;
    }
    if (!gw->settings.dialback_passphrase[0]) {
        fprintf(stderr, "fedgate: store %s has no DialbackPassphrase; run fedgate-admin init\n",
                store_dir);
        rc = 5;
        goto out;
    }
    store_close(store);
    store = NULL;

    snprintf(gw->store, sizeof(gw->store), "%s", store_dir);
    gw->nworkers = nworkers;
    const char *res = o_res ? o_res : gw->settings.resolver;
    if (strlen(res) >= sizeof(gw->resolver)) {
        fprintf(stderr, "fedgate: --resolver: address too long\n");
        rc = 2;
        goto out;
    }
    memcpy(gw->resolver, res, strlen(res) + 1);
    uint32_t est = gw->settings.stream_establishment_timeout;
    gw->connect_timeout_ms = est && est < 10 ? (int)est * 1000 : 10000;
    pthread_mutex_init(&gw->comp_mu, NULL);
    pthread_mutex_init(&gw->fail_mu, NULL);
    gw_global = gw;

    if (tls_global_init(0) != 0) {
        fprintf(stderr, "fedgate: TLS initialisation failed\n");
        goto out;
    }
    size_t ncreds = 0, ninternal = 0;
    int trc = tls_build(gw->store, &gw->tls, &gw->tls_sig, &ncreds, &ninternal, 0);
    atomic_store(&gw->have_internal, ninternal > 0);
    if (trc != 0) {
        fprintf(stderr, "fedgate: cannot load certificates or trust anchors: %s\n",
                fg_strerror(trc));
        goto out;
    }
    if (metrics_create(&gw->metrics, nworkers + 1, 8192) != 0)
        goto out;
    gw->m_in = metrics_register(gw->metrics, METRIC_COUNTER, "fedgate_stanzas_total", "dir=\"in\"",
                                "Stanzas relayed (in: from partners)");
    gw->m_out = metrics_register(gw->metrics, METRIC_COUNTER, "fedgate_stanzas_total",
                                 "dir=\"out\"", "Stanzas relayed (out: to partners)");
    gw->m_cross =
        metrics_register(gw->metrics, METRIC_COUNTER, "fedgate_stanzas_cross_worker_total", NULL,
                         "Stanzas handed to the worker of their component");
    gw->m_refused_unknown =
        metrics_register(gw->metrics, METRIC_COUNTER, "fedgate_streams_refused_total",
                         "reason=\"not-a-partner\"", "Streams refused");
    gw->m_refused_limit =
        metrics_register(gw->metrics, METRIC_COUNTER, "fedgate_streams_refused_total",
                         "reason=\"connection-limit\"", "Streams refused");
    static const char xpool_help[] = "Parser instances a stream borrowed between stanzas: lent "
                                     "an idle one, built one, dropped one on return";
    static const char *const xpool_results[] = {"result=\"lent\"", "result=\"built\"",
                                                "result=\"dropped\""};
    for (int i = 0; i < 3; i++)
        gw->m_xpool[i] = metrics_register(gw->metrics, METRIC_COUNTER, "fedgate_parser_pool_total",
                                          xpool_results[i], xpool_help);
    gw->m_xpool[3] = metrics_register(gw->metrics, METRIC_GAUGE, "fedgate_parser_pool_idle_bytes",
                                      NULL, "Heap of the idle parser instances of all workers");

    gw->snap = calloc(nworkers, sizeof(*gw->snap));
    if (!gw->snap)
        goto out;
    for (unsigned i = 0; i < nworkers; i++) {
        pthread_mutex_init(&gw->snap[i].mu, NULL);
        buf_init(&gw->snap[i].text, GW_SNAP_MAX);
    }
    wgroup_config_t wc = {.nworkers = nworkers,
                          .on_start = gw_worker_start,
                          .on_stop = gw_worker_stop,
                          .on_msg = gw_worker_msg,
                          .on_drop = gw_worker_drop_msg,
                          .on_notify = gw_worker_notify,
                          .on_flush = gw_sess_seal_all,
                          .arg = gw};
    if (spin_us >= 0)
        wc.spin_us = spin_us == 0 ? WGROUP_NO_SPIN : (unsigned)spin_us;
    int wrc = wgroup_create(&gw->g, &wc);
    if (wrc != 0) {
        fprintf(stderr, "fedgate: cannot create the workers: %s\n", fg_strerror(wrc));
        goto out;
    }
    metrics_add_collector(gw->metrics, wgroup_metrics_collect, gw->g);
    metrics_add_collector(gw->metrics, collect_gw, gw);
    metrics_add_collector(gw->metrics, gw_failures_collect, gw);
    metrics_add_collector(gw->metrics, gw_streams_collect, gw);
    const settings_t *st = &gw->settings;
    if (open_listener(gw, "s2s", o_s2s ? o_s2s : st->listen_s2s, &gw_in_ops, false) ||
        open_listener(gw, "s2s direct TLS", o_tls ? o_tls : st->listen_s2s_tls, &gw_tls_ops,
                      false) ||
        open_listener(gw, "components", o_comp ? o_comp : st->listen_component, &gw_comp_ops,
                      true) ||
        open_listener(gw, "components over TLS", o_ctls ? o_ctls : st->listen_component_tls,
                      &gw_comp_tls_ops, true) ||
        open_listener(gw, "metrics", o_metrics ? o_metrics : st->listen_metrics, NULL, false))
        goto out;
    /* The invitation ledger's writer (group commit), before any worker posts to it. */
    wrc = gw_ptype_start(gw->store, &gw->ledger);
    if (wrc != 0) {
        fprintf(stderr, "fedgate: cannot open the ledger in %s: %s\n", store_dir, fg_strerror(wrc));
        goto out;
    }
    wrc = wgroup_start(gw->g);
    if (wrc != 0) {
        fprintf(stderr, "fedgate: cannot start the workers: %s\n", fg_strerror(wrc));
        goto out;
    }
    printf("fedgate: %u workers, %zu hosted domain certificates, store %s\n", nworkers, ncreds,
           store_dir);
    fflush(stdout);
    log_info("fedgate started: %u workers", nworkers);
    if (ncreds == 0)
        log_warn("fedgate: the store hosts no domain yet, so every stream is refused "
                 "(<host-unknown/>); add one with: fedgate-admin domain new DOMAIN --cert FILE "
                 "--key FILE --route component --secret-file FILE");

    int sig = wait_for_signal(gw, &sigs);
    log_info("fedgate: %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    atomic_store(&gw->shutting_down, 1);
    wgroup_quiesce(gw->g);
    for (unsigned i = 0; i < nworkers; i++) {
        xq_msg_t m = {.type = GW_MSG_SHUTDOWN};
        for (int tries = 0; tries < 100 && worker_post(NULL, gw->g, i, &m) != 0; tries++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    /* Streams answer <system-shutdown/> with their closing tag and go; wait for that (bounded),
       so bounces and closing tags reach the peers before the sockets are torn down. */
    for (int i = 0; i < 200 && conns_open(gw) > 0; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    wgroup_stop(gw->g);
    rc = 0;
out:
    if (store)
        store_close(store);
    mhttp_stop(metrics_srv); /* its collectors read the workers, the stream tables, the registry */
    if (gw->g)
        wgroup_destroy(gw->g);
    gw_ptype_stop(gw->ledger); /* after the workers: commits what they queued */
    if (gw->metrics)
        metrics_destroy(gw->metrics);
    if (gw->snap) {
        for (unsigned i = 0; i < nworkers; i++) {
            buf_free(&gw->snap[i].text);
            pthread_mutex_destroy(&gw->snap[i].mu);
        }
        free(gw->snap);
    }
    if (gw->tls)
        tls_ctx_unref(gw->tls);
    return rc;
}
