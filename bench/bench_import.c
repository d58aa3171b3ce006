/*
 * JSON import of many partners (store_import_json, what `fedgate-admin import` runs): wall time
 * for 20k and 100k partners into a fresh store, each against baselines measured in the same run
 * on the same document: tokenising it alone (json_parse) and one pass over the partners array
 * with json_iter_t. The walk the import used before (json_child(i) from the start for every i,
 * n*n/2 steps) is timed at 20k only, where it still ends in a second or two.
 *
 *   bench_import [N...]     default: 20000 100000
 */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/err.h"
#include "policy/json.h"
#include "policy/report.h"
#include "policy/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* An export-shaped document: n partners with the fields an export writes. */
static int make_doc(buf_t *b, int n)
{
    int ret = buf_append_str(b, "{\"fedgate_store\": 1, \"schema_version\": 1, \"partners\": [");
    for (int i = 0; !ret && i < n; i++) {
        char one[512];
        snprintf(one, sizeof(one),
                 "%s\n{\"domain\": \"p%d.bench.example\", \"description\": \"partner %d\", "
                 "\"additional_domains\": [\"x%d.bench.example\"], \"type\": \"Federated\", "
                 "\"tls\": \"Required\", \"sasl\": \"Optional\", \"dialback\": false, "
                 "\"keepalive\": true, \"connection_limit\": null, \"proxy_fqdn\": \"\"}",
                 i ? "," : "", i, i, i);
        ret = buf_append_str(b, one);
    }
    if (!ret)
        ret = buf_append_str(b, "\n]}\n");
    return ret;
}

static int one(int n)
{
    buf_t b;
    buf_init(&b, 1u << 30);
    int ret = make_doc(&b, n);
    json_tok_t *tok = malloc((size_t)(b.len / 4 + 64) * sizeof(*tok));
    char dir[] = "/tmp/fedgate-bench-import.XXXXXX";
    store_t *s = NULL;
    if (ret || !tok || !mkdtemp(dir)) {
        fprintf(stderr, "bench_import: setup failed\n");
        ret = 1;
        goto out;
    }
    json_doc_t d;
    double t0 = now_s();
    ret = json_parse(&d, (const char *)b.data, b.len, tok, (uint32_t)(b.len / 4 + 64));
    double parse = now_s() - t0;
    if (ret) {
        fprintf(stderr, "bench_import: json_parse: %s\n", fg_strerror(ret));
        goto out;
    }
    int arr = json_find(&d, 0, "partners");
    volatile uint32_t sink = 0;
    t0 = now_s();
    json_iter_t it;
    json_iter_init(&it, &d, arr);
    for (int t; (t = json_iter_next(&it, NULL)) >= 0;)
        sink += d.tok[t].size;
    double iter = now_s() - t0;
    double old = -1;
    if (n <= 20000) {
        t0 = now_s();
        for (uint32_t i = 0; i < d.tok[arr].size; i++)
            sink += d.tok[json_child(&d, arr, i)].size;
        old = now_s() - t0;
    }

    (void)sink; /* keeps the walks from being optimised away */
    char err[256];
    ret = store_open(dir, STORE_CREATE, &s, err, sizeof(err));
    store_ctx_t ctx = {.actor = "bench"};
    report_t rep;
    report_init(&rep, 0);
    if (!ret)
        ret = store_init(s, &ctx, false, &rep);
    free(ctx.change);
    ctx.change = NULL;
    report_clear(&rep);
    uint64_t steps0 = json_steps();
    t0 = now_s();
    if (!ret)
        ret = store_import_json(s, &ctx, (const char *)b.data, b.len, 0, &rep);
    double import = now_s() - t0;
    uint64_t steps = json_steps() - steps0;
    free(ctx.change);
    if (ret) {
        fprintf(stderr, "bench_import: import of %d: %s %s\n", n, fg_strerror(ret),
                rep.n ? rep.msg[0].text : err);
        report_free(&rep);
        goto out;
    }
    report_free(&rep);
    printf("%6d partners (%5.1f MB): baseline json_parse %7.1f ms; iterate %6.2f ms; ", n,
           (double)b.len / 1e6, parse * 1e3, iter * 1e3);
    if (old >= 0)
        printf("old json_child walk %7.1f ms (x%.0f of iterate); ", old * 1e3, old / iter);
    printf("store_import_json %7.1f ms (x%.1f of json_parse, %.1f us/partner, %.1f json steps/"
           "partner)\n",
           import * 1e3, import / parse, import * 1e6 / n, (double)steps / n);
out:
    store_close(s);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(tok);
    buf_free(&b);
    return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
    int ret = 0;
    if (argc > 1) {
        for (int i = 1; i < argc && !ret; i++)
            ret = one(atoi(argv[i]));
    } else {
        ret = one(20000);
        if (!ret)
            ret = one(100000);
    }
    return ret;
}
