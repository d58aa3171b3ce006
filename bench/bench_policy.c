/*
 * Policy store benchmark: worker lookup cost (cached, uncached) with 10, 10k and 100k partners,
 * cache rebuild cost, admin commit latency, and how long a commit takes to reach a reader that
 * refreshes in its loop. Baselines measured in the same run: a bare LMDB get (renew + mdb_get +
 * reset) for lookups, a bare key/value write transaction for commits.
 *
 * Usage: bench_policy [max_partners]   (default 100000; the store goes under $TMPDIR)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "policy/lookup.h"
#include "policy/store.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_d);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void name_of(char *out, size_t len, size_t i, bool additional)
{
    snprintf(out, len, "%spartner%06zu.example", additional ? "xmpp." : "", i);
}

static store_t *make_store(const char *dir, size_t n)
{
    store_t *s;
    char err[512];
    store_ctx_t ctx = {.actor = "bench"};
    report_t rep;
    report_init(&rep, 16);
    if (store_open(dir, STORE_CREATE, &s, err, sizeof(err))) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    store_init(s, &ctx, true, &rep);
    free(ctx.change);
    store_batch_t *b;
    partner_t *p = malloc(sizeof(*p));
    if (store_batch_begin(s, &ctx, &b))
        exit(1);
    for (size_t i = 0; i < n; i++) {
        partner_defaults(p);
        name_of(p->domain, sizeof(p->domain), i, false);
        name_of(p->additional[0], sizeof(p->additional[0]), i, true);
        p->n_additional = 1;
        p->dialback = false;
        p->type = (partner_type_t)(i % 3);
        if (store_batch_partner(b, p, "bench", &rep)) {
            fprintf(stderr, "batch: %s\n", rep.n ? rep.msg[0].text : "?");
            exit(1);
        }
    }
    if (store_batch_commit(b, &rep)) {
        fprintf(stderr, "commit failed\n");
        exit(1);
    }
    free(ctx.change);
    free(p);
    report_free(&rep);
    return s;
}

#define BATCH  1000
#define ROUNDS 300

typedef struct {
    char (*names)[64];
    size_t n;
    uint32_t *order;
} names_t;

static names_t make_names_skew(size_t n, bool additional, bool skew)
{
    names_t nm = {malloc(n * 64), n, malloc(BATCH * ROUNDS * sizeof(uint32_t))};
    for (size_t i = 0; i < n; i++)
        name_of(nm.names[i], 64, i, additional && (i & 1));
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < BATCH * ROUNDS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t hot = n / 100 ? n / 100 : 1;
        nm.order[i] = (uint32_t)(skew && (x >> 40) % 10 != 0 ? (x % hot) : (x % n));
    }
    return nm;
}

static names_t make_names(size_t n, bool additional)
{
    return make_names_skew(n, additional, false);
}

typedef enum { M_CACHED, M_UNCACHED, M_RAW, M_FLOOR } mode_t_;

/* The harness alone: fetch the random name and read it, as every lookup mode must. */
static volatile size_t sink;
static size_t floor_sink(const char *d)
{
    sink += strlen(d);
    return 1;
}

static double measure(policy_reader_t *r, const names_t *nm, mode_t_ m)
{
    static double per[ROUNDS];
    partner_t *out = malloc(sizeof(*out));
    size_t hits = 0;
    for (int round = 0; round < ROUNDS; round++) {
        const uint32_t *ord = nm->order + (size_t)round * BATCH;
        double t0 = now_ns();
        for (int i = 0; i < BATCH; i++) {
            const char *d = nm->names[ord[i]];
            if (m == M_CACHED)
                hits += policy_lookup(r, d) != NULL;
            else if (m == M_UNCACHED)
                hits += policy_lookup_uncached(r, d, out) == 0;
            else if (m == M_RAW)
                hits += policy_lookup_raw(r, d) == 0;
            else
                hits += floor_sink(d);
        }
        per[round] = (now_ns() - t0) / BATCH;
    }
    free(out);
    if (hits != (size_t)BATCH * ROUNDS)
        fprintf(stderr, "warning: %zu of %d lookups missed\n", BATCH * ROUNDS - hits,
                BATCH * ROUNDS);
    return pct(per, ROUNDS, 0.5);
}

static int bump(partner_t *p, void *arg)
{
    p->connection_limit_set = true;
    p->connection_limit = (p->connection_limit + 1) % 1000;
    return 0;
}

/* ---- commit visibility: writer commits, a reader thread refreshing in its loop sees it ---- */

typedef struct {
    const char *dir;
    atomic_uint_fast64_t want; /* connection_limit value the reader waits for */
    atomic_int stop;
    atomic_int ready;
    double seen_ns;
    atomic_int seen;
    double rebuild_max_ns;
} vis_t;

static void *reader_thread(void *arg)
{
    vis_t *v = arg;
    policy_reader_t *r;
    if (policy_reader_open(v->dir, &r)) {
        fprintf(stderr, "reader open failed\n");
        return NULL;
    }
    atomic_store(&v->ready, 1);
    const char *d = "partner000000.example";
    while (!atomic_load(&v->stop)) {
        double t0 = now_ns();
        int rc = policy_reader_refresh(r);
        if (rc == 1) {
            double dt = now_ns() - t0;
            if (dt > v->rebuild_max_ns)
                v->rebuild_max_ns = dt;
        }
        const policy_partner_t *p = policy_lookup(r, d);
        uint64_t want = atomic_load(&v->want);
        if (p && want && p->connection_limit == want && !atomic_load(&v->seen)) {
            v->seen_ns = now_ns();
            atomic_store(&v->seen, 1);
        }
        /* a worker's loop: an io_uring wait of up to ~100 µs between refreshes */
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    policy_reader_close(r);
    return NULL;
}

static void visibility(store_t *s, const char *dir, size_t n)
{
    vis_t v = {.dir = dir};
    pthread_t th;
    pthread_create(&th, NULL, reader_thread, &v);
    while (!atomic_load(&v.ready))
        usleep(1000);
    enum { N = 40 };
    double from_start[N], from_return[N];
    report_t rep;
    report_init(&rep, 16);
    for (int i = 0; i < N; i++) {
        store_ctx_t ctx = {.actor = "bench"};
        partner_t out;
        atomic_store(&v.seen, 0);
        double t0 = now_ns();
        if (store_partner_modify(s, &ctx, "partner000000.example", bump, NULL, &out, &rep)) {
            fprintf(stderr, "modify failed\n");
            break;
        }
        double t1 = now_ns();
        free(ctx.change);
        atomic_store(&v.want, out.connection_limit);
        while (!atomic_load(&v.seen))
            usleep(50);
        from_start[i] = (v.seen_ns - t0) / 1e6;
        from_return[i] = (v.seen_ns - t1) / 1e6;
        if (from_return[i] < 0)
            from_return[i] = 0;
        report_clear(&rep);
        usleep(2000);
    }
    atomic_store(&v.stop, 1);
    pthread_join(th, NULL);
    report_free(&rep);
    printf("  commit->visible (%zu partners): from commit start median %.2f ms max %.2f ms; "
           "from commit return median %.2f ms max %.2f ms; reader refresh max %.2f ms\n",
           n, pct(from_start, N, 0.5), pct(from_start, N, 1.0), pct(from_return, N, 0.5),
           pct(from_return, N, 1.0), v.rebuild_max_ns / 1e6);
}

static void commits(store_t *s)
{
    enum { N = 60 };
    double part[N], raw[N];
    report_t rep;
    report_init(&rep, 16);
    for (int i = 0; i < N; i++) {
        store_ctx_t ctx = {.actor = "bench"};
        double t0 = now_ns();
        store_partner_modify(s, &ctx, "partner000001.example", bump, NULL, NULL, &rep);
        part[i] = (now_ns() - t0) / 1e3;
        free(ctx.change);
        report_clear(&rep);
        /* baseline: one bare put + commit through the key/value API */
        store_txn_t *t;
        char v[64];
        snprintf(v, sizeof(v), "%d", i);
        t0 = now_ns();
        if (store_txn_begin(s, true, &t) == 0) {
            store_kv_put(t, STORE_DB_PANEL, "bench", 5, v, strlen(v));
            store_txn_commit(t);
        }
        raw[i] = (now_ns() - t0) / 1e3;
    }
    report_free(&rep);
    double pm = pct(part, N, 0.5), rm = pct(raw, N, 0.5);
    printf("  admin commit (partner modify, validated + audited, fsync): median %.0f us, p99 "
           "%.0f us | baseline bare put+commit: median %.0f us | ratio %.2f\n",
           pm, pct(part, N, 0.99), rm, pm / rm);
}

/* One dependent random read from a 64 MiB array on huge pages: the cost of a DRAM miss on this
   machine, the floor of any lookup whose table does not fit in the caches. */
static double dram_miss_ns(void)
{
    size_t n = (64u << 20) / sizeof(size_t);
    size_t *next = aligned_alloc(2u << 20, n * sizeof(size_t));
    if (!next)
        return 0;
    madvise(next, n * sizeof(size_t), MADV_HUGEPAGE); /* as the lookup table: no TLB misses */
    /* one random cycle through every 64-byte line (Sattolo's shuffle of the line order) */
    size_t lines = n / 8, *perm = malloc(lines * sizeof(size_t));
    for (size_t i = 0; i < lines; i++)
        perm[i] = i;
    uint64_t x = 2463534242ull;
    for (size_t i = lines - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t j = x % i, t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < lines; i++)
        next[perm[i] * 8] = perm[(i + 1) % lines] * 8;
    free(perm);
    size_t p = 0, steps = 2000000;
    double t0 = now_ns();
    for (size_t i = 0; i < steps; i++)
        p = next[p];
    double ns = (now_ns() - t0) / (double)steps;
    sink += p;
    free(next);
    return ns;
}

int main(int argc, char **argv)
{
    size_t max = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    const size_t sizes[] = {10, 10000, 100000};
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    printf("bench_policy: lookups are medians of %d batches of %d random domains\n", ROUNDS, BATCH);
    printf("baseline: one DRAM miss (dependent random read, 64 MiB) %.0f ns\n", dram_miss_ns());
    for (size_t si = 0; si < 3 && sizes[si] <= max; si++) {
        size_t n = sizes[si];
        char dir[512];
        snprintf(dir, sizeof(dir), "%s/fgbench.XXXXXX", tmp);
        if (!mkdtemp(dir))
            return 1;
        double t0 = now_ns();
        store_t *s = make_store(dir, n);
        double build_s = (now_ns() - t0) / 1e9;
        policy_reader_t *r;
        t0 = now_ns();
        if (policy_reader_open(dir, &r)) {
            fprintf(stderr, "reader open failed\n");
            return 1;
        }
        double open_ms = (now_ns() - t0) / 1e6;
        size_t np, nd, nh, bytes;
        policy_reader_stats(r, &np, &nd, &nh, &bytes);
        /* rebuild cost: one commit, then time the refresh that rebuilds */
        store_ctx_t ctx = {.actor = "bench"};
        store_partner_modify(s, &ctx, "partner000002.example", bump, NULL, NULL, NULL);
        free(ctx.change);
        t0 = now_ns();
        int rc = policy_reader_refresh(r);
        double patch_ms = (now_ns() - t0) / 1e6;
        /* a settings change: patched, with one pass over the partners */
        settings_t st;
        store_settings_get(s, &st);
        st.partner_connection_limit = st.partner_connection_limit == 20 ? 21 : 20;
        st.dialback_passphrase[0] = '\0';
        store_settings_update(s, &ctx, &st, STORE_ANY_REV, NULL);
        free(ctx.change);
        ctx.change = NULL;
        t0 = now_ns();
        rc += policy_reader_refresh(r);
        double settings_ms = (now_ns() - t0) / 1e6;
        /* an import of more records than a change logs makes every reader rebuild */
        {
            store_batch_t *bb;
            partner_t *pp = malloc(sizeof(*pp));
            if (store_batch_begin(s, &ctx, &bb) == 0) {
                for (int i = 0; i < 1100; i++) {
                    partner_defaults(pp);
                    snprintf(pp->domain, sizeof(pp->domain), "bulk%04d.example", i);
                    pp->dialback = false;
                    store_batch_partner(bb, pp, "bench", NULL);
                }
                store_batch_commit(bb, NULL);
            }
            free(ctx.change);
            ctx.change = NULL;
            free(pp);
        }
        t0 = now_ns();
        rc += policy_reader_refresh(r);
        double rebuild_ms = (now_ns() - t0) / 1e6;
        t0 = now_ns();
        for (int i = 0; i < 100000; i++)
            policy_reader_refresh(r);
        double refresh_ns = (now_ns() - t0) / 100000;

        names_t prim = make_names(n, false), mixed = make_names(n, true);
        double floor_ns = measure(r, &prim, M_FLOOR);
        double raw = measure(r, &prim, M_RAW);
        double cached = measure(r, &prim, M_CACHED);
        double cached_mix = measure(r, &mixed, M_CACHED);
        names_t skew = make_names_skew(n, false, true);
        double cached_skew = measure(r, &skew, M_CACHED);
        free(skew.names);
        free(skew.order);
        double unc = measure(r, &prim, M_UNCACHED);
        double unc_mix = measure(r, &mixed, M_UNCACHED);
        printf("%zu partners (%zu domains): store built in %.2f s; reader open %.1f ms; cache "
               "%.1f MiB; refresh after a partner commit (patch) %.3f ms; after a settings "
               "commit (patch) %.3f ms; after a 1100-record import (full rebuild) %.1f ms "
               "(refreshes=%d); unchanged refresh %.0f ns\n",
               n, nd, build_s, open_ms, (double)bytes / 1048576.0, patch_ms, settings_ms,
               rebuild_ms, rc, refresh_ns);
        printf("  baseline raw mdb_get (renew+get+reset): %.0f ns; harness floor (fetch the "
               "random name): %.1f ns\n",
               raw, floor_ns);
        printf("  cached lookup: %.1f ns (primary) %.1f ns (half additional); %.1f ns above the "
               "harness floor | ratio to raw %.3f\n",
               cached, cached_mix, cached - floor_ns, cached / raw);
        printf("  cached lookup, 90%% of lookups on 1%% of the partners: %.1f ns\n", cached_skew);
        printf("  uncached lookup (get+decode): %.0f ns (primary) %.0f ns (half additional) | "
               "ratio to raw %.2f\n",
               unc, unc_mix, unc / raw);
        if (si == 0 || n == max || sizes[si] == 10000)
            commits(s);
        visibility(s, dir, n);
        free(prim.names);
        free(prim.order);
        free(mixed.names);
        free(mixed.order);
        policy_reader_close(r);
        store_close(s);
        rmtree(dir);
    }
    return 0;
}
