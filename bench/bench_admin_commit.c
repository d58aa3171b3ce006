/*
 * Admin commit latency end to end: from starting a `fedgate-admin partner new` process to its exit
 * after the commit, against baselines measured in the same run: the same binary printing its
 * version (process start alone) and `status` (start plus opening the store), and the commit alone
 * in-process (store_partner_create). Prints median/p90/p99 and the ratios.
 *
 *   bench_admin_commit [FEDGATE_ADMIN [N]]    default: $FEDGATE_ADMIN or admin/fedgate-admin, N=200
 */
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "policy/partner.h"
#include "policy/report.h"
#include "policy/store.h"

extern char **environ;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Runs argv with stdout/stderr on /dev/null; returns the exit status or -1. */
static int run(char *const argv[])
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int st = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0 && waitpid(pid, &st, 0) == pid)
        st = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    posix_spawn_file_actions_destroy(&fa);
    return st;
}

typedef struct {
    double p50, p90, p99;
} stats_t;

static stats_t summarise(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    stats_t s = {v[n / 2], v[n * 9 / 10], v[n * 99 / 100]};
    return s;
}

static void print(const char *what, stats_t s, const stats_t *base)
{
    printf("%-46s p50 %9.0f us  p90 %9.0f us  p99 %9.0f us", what, s.p50, s.p90, s.p99);
    if (base)
        printf("  (x%.2f of process start)", s.p50 / base->p50);
    printf("\n");
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int main(int argc, char **argv)
{
    const char *admin = argc > 1 ? argv[1] : getenv("FEDGATE_ADMIN");
    if (!admin)
        admin = "admin/fedgate-admin";
    int n = argc > 2 ? atoi(argv[2]) : 200;
    if (n < 10)
        n = 10;
    if (access(admin, X_OK) != 0) {
        fprintf(stderr, "bench_admin_commit: %s is not executable (give the path)\n", admin);
        return 2;
    }
    char dir[] = "/tmp/fedgate-bench-admin.XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char store[sizeof(dir) + 8];
    snprintf(store, sizeof(store), "%s/s", dir);
    double *v = calloc((size_t)n, sizeof(double));
    char dom[64];
    int ret = 1;
    char *init[] = {(char *)admin, "--store", store, "init", NULL};
    if (!v || run(init) != 0) {
        fprintf(stderr, "bench_admin_commit: init failed\n");
        goto out;
    }

    char *version[] = {(char *)admin, "version", NULL};
    for (int i = 0; i < n; i++) {
        double t = now_us();
        run(version);
        v[i] = now_us() - t;
    }
    stats_t base = summarise(v, n);

    char *status[] = {(char *)admin, "--store", store, "status", NULL};
    for (int i = 0; i < n; i++) {
        double t = now_us();
        run(status);
        v[i] = now_us() - t;
    }
    stats_t st = summarise(v, n);

    char *add[] = {(char *)admin, "--store",    store,   "partner", "new",
                   dom,           "--dialback", "false", NULL};
    for (int i = 0; i < n; i++) {
        snprintf(dom, sizeof(dom), "p%d.bench.example", i);
        double t = now_us();
        if (run(add) != 0) {
            fprintf(stderr, "bench_admin_commit: partner new %s failed\n", dom);
            goto out;
        }
        v[i] = now_us() - t;
    }
    stats_t commit = summarise(v, n);

    char *set[] = {(char *)admin, "--store",       store,     "partner", "set",
                   dom,           "--description", "changed", NULL};
    for (int i = 0; i < n; i++) {
        snprintf(dom, sizeof(dom), "p%d.bench.example", i);
        double t = now_us();
        run(set);
        v[i] = now_us() - t;
    }
    stats_t modify = summarise(v, n);

    /* The commit alone, in this process: what the CLI adds on top is process start and open. */
    store_t *s = NULL;
    char err[256];
    if (store_open(store, 0, &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "bench_admin_commit: %s\n", err);
        goto out;
    }
    for (int i = 0; i < n; i++) {
        partner_t p;
        report_t rep;
        store_ctx_t ctx = {.actor = "bench"};
        partner_defaults(&p);
        p.dialback = false;
        snprintf(p.domain, sizeof(p.domain), "q%d.bench.example", i);
        report_init(&rep, 0);
        double t = now_us();
        int rc = store_partner_create(s, &ctx, &p, &rep);
        v[i] = now_us() - t;
        free(ctx.change);
        report_free(&rep);
        if (rc) {
            fprintf(stderr, "bench_admin_commit: store_partner_create failed\n");
            store_close(s);
            goto out;
        }
    }
    store_close(s);
    stats_t inproc = summarise(v, n);

    printf("fedgate-admin commit latency, %d runs each (%s)\n", n, admin);
    print("baseline: fedgate-admin version", base, NULL);
    print("fedgate-admin status (open store, read)", st, &base);
    print("fedgate-admin partner new (commit)", commit, &base);
    print("fedgate-admin partner set (read-modify-write)", modify, &base);
    print("in-process store_partner_create (commit)", inproc, &base);
    ret = 0;
out:
    free(v);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return ret;
}
