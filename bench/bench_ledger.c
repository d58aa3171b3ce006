/*
 * Ledger group commit: invitations per second that one writer thread sustains while workers
 * post as fast as they can (every commit fsync'ed, LMDB's default), with the batch sizes it
 * formed; against a baseline measured in the same run: the same writer with one commit per
 * invitation (max_batch = 1).
 *
 * Usage: bench_ledger [invitations] [posting threads]   (default 50000, 2; store under $TMPDIR)
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "policy/ledger.h"
#include "policy/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct {
    ledger_writer_t *w;
    size_t from, to;
    int tag;
    unsigned long refused;
} poster_t;

static void *poster(void *arg)
{
    poster_t *p = arg;
    char l[64], r[64];
    for (size_t i = p->from; i < p->to; i++) {
        snprintf(l, sizeof(l), "user%zu@example.org", i % 5000);
        snprintf(r, sizeof(r), "contact%zu.%d@partner.example", i, p->tag);
        /* A worker would bounce with <resource-constraint/>; the benchmark retries instead so
           that every invitation is written. */
        while (ledger_post_invite(p->w, l, r, (int64_t)i) == FG_ELIMIT) {
            p->refused++;
            sched_yield();
        }
    }
    return NULL;
}

/* Posts n invitations from nthreads threads; returns invitations per second to durable commit. */
static double run(const char *dir, size_t n, int nthreads, size_t max_batch, int tag,
                  ledger_writer_stats_t *st, unsigned long *refused)
{
    ledger_writer_config_t cfg = {.max_batch = max_batch};
    ledger_writer_t *w = NULL;
    if (ledger_writer_start(dir, &cfg, &w))
        return -1;
    pthread_t th[16];
    poster_t p[16];
    double t0 = now_s();
    for (int i = 0; i < nthreads; i++) {
        p[i] = (poster_t){w, n * (size_t)i / (size_t)nthreads,
                          n * (size_t)(i + 1) / (size_t)nthreads, tag, 0};
        pthread_create(&th[i], NULL, poster, &p[i]);
    }
    *refused = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        *refused += p[i].refused;
    }
    ledger_writer_flush(w);
    double dt = now_s() - t0;
    ledger_writer_stats(w, st);
    ledger_writer_stop(w);
    return (double)n / dt;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 50000;
    int nthreads = argc > 2 ? atoi(argv[2]) : 2;
    if (nthreads < 1 || nthreads > 16)
        nthreads = 2;
    const char *base = getenv("TMPDIR");
    char dir[512], err[512];
    snprintf(dir, sizeof(dir), "%s/bench_ledger.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = "bench"};
    report_init(&rep, 0);
    if (store_open(dir, STORE_CREATE, &s, err, sizeof(err)) || store_init(s, &ctx, true, &rep)) {
        fprintf(stderr, "store: %s\n", err);
        return 1;
    }
    store_close(s);

    ledger_writer_stats_t g, one;
    unsigned long gref, oref;
    size_t nbase = n / 50 < 200 ? 200 : n / 50; /* one fsync each: keep the baseline short */
    double base_rate = run(dir, nbase, nthreads, 1, 1, &one, &oref);
    double rate = run(dir, n, nthreads, 0, 2, &g, &gref);
    if (rate < 0 || base_rate < 0) {
        fprintf(stderr, "writer failed to start\n");
        return 1;
    }
    printf("bench_ledger: %d posting threads, fsync on every commit (LMDB default), queue %d\n",
           nthreads, LEDGER_QUEUE_DEFAULT);
    printf("  baseline, one commit per invitation: %zu invitations  %9.0f /s  (%llu commits)\n",
           nbase, base_rate, (unsigned long long)one.batches);
    printf("  group commit:                        %zu invitations  %9.0f /s  (%llu commits, "
           "mean batch %.1f, max %llu, queue-full answers %lu)  x%.1f baseline\n",
           n, rate, (unsigned long long)g.batches,
           g.batches ? (double)g.committed / (double)g.batches : 0.0,
           (unsigned long long)g.max_batch, gref, rate / base_rate);
    printf("  batch sizes:");
    for (int i = 0; i < LEDGER_HIST_BUCKETS; i++)
        if (g.hist[i])
            printf(" [%lu..%lu]:%llu", 1ul << i, (2ul << i) - 1, (unsigned long long)g.hist[i]);
    printf("\n  target >= 10000 invitations/s: %s\n", rate >= 10000 ? "met" : "NOT met");
    uint64_t entries, batches;
    if (ledger_counts(dir, &entries, &batches) == 0)
        printf("  stored entries %llu (expected %zu), committed batches %llu\n",
               (unsigned long long)entries, n + nbase, (unsigned long long)batches);
    free(ctx.change);
    report_free(&rep);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) != 0;
}
