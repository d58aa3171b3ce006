/*
 * Per-stanza cost of the partner-type and access checks (policy/decide) on the stanza path,
 * against a baseline measured in the same run: the loop doing only the stanza accessor work the
 * router does anyway (name, type, to, from).
 *
 * Checks = bare JIDs of both ends (ledger_bare_jid_trusted: the stream validated them), partner
 * lookup, effective EnableXmppAccess, decide_kind, decide, and for PublicUnverified inbound
 * messages the ledger lookup (one read transaction renewed per batch of 64 stanzas, as a worker
 * does per event-loop batch). Also printed: the ledger lookup with its own renew/reset per stanza,
 * the alternative the batch design avoids.
 *
 * Usage: bench_decide [invitations]   (default 100000 in the ledger; store under $TMPDIR)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "core/stanza.h"
#include "policy/decide.h"
#include "policy/ledger.h"
#include "policy/lookup.h"
#include "policy/store.h"

#define NST    1024
#define BATCH  64
#define ROUNDS 200

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

static stanza_t *st[NST];
static volatile size_t sink;

typedef enum { M_BASE, M_CHECKS, M_CHECKS_LEDGER, M_CHECKS_LEDGER_EACH } mode_t_;

static const char *domain_of(const char *jid)
{
    const char *at = strchr(jid, '@');
    return at ? at + 1 : jid;
}

static double run(mode_t_ m, policy_reader_t *pr, ledger_reader_t *lr)
{
    static double per[ROUNDS];
    char local[LEDGER_JID_MAX + 1], remote[LEDGER_JID_MAX + 1];
    for (int round = 0; round < ROUNDS; round++) {
        double t0 = now_ns();
        size_t acc = 0;
        for (size_t b = 0; b < NST; b += BATCH) {
            if (m == M_CHECKS_LEDGER)
                ledger_reader_refresh(lr);
            for (size_t i = b; i < b + BATCH; i++) {
                const stanza_t *s = st[i];
                const char *name = stanza_name(s), *type = stanza_type(s), *to = stanza_to(s),
                           *from = stanza_from(s);
                acc += (size_t)name[0] + (type ? (size_t)type[0] : 0) + (size_t)to[0] +
                       (size_t)from[0];
                if (m == M_BASE)
                    continue;
                /* Inbound: from = partner user, to = our user. */
                ledger_bare_jid_trusted(to, local, sizeof(local));
                ledger_bare_jid_trusted(from, remote, sizeof(remote));
                const policy_partner_t *p = policy_lookup(pr, domain_of(remote));
                decide_in_t in = {DECIDE_INBOUND, decide_kind(s),
                                  p ? p->rules.type : PARTNER_PUBLIC_UNVERIFIED,
                                  policy_access(pr, local), LEDGER_ABSENT};
                if (m != M_CHECKS && decide_needs_ledger(in.dir, in.kind, in.type))
                    in.ledger = ledger_lookup(lr, local, remote, 1000, LEDGER_REFRESH_DEFAULT);
                decide_t d = decide(&in);
                acc += (size_t)d.verdict + (size_t)d.reason;
            }
            if (m == M_CHECKS_LEDGER)
                ledger_reader_end(lr);
        }
        sink = acc;
        per[round] = (now_ns() - t0) / NST;
    }
    qsort(per, ROUNDS, sizeof(per[0]), cmp_d);
    return per[ROUNDS / 2];
}

int main(int argc, char **argv)
{
    size_t ninv = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
    const char *base = getenv("TMPDIR");
    char dir[512], err[512];
    snprintf(dir, sizeof(dir), "%s/bench_decide.XXXXXX", base && *base ? base : "/tmp");
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
    const char *partners[] = {"fed.example", "pv.example", "pu.example"};
    partner_type_t types[] = {PARTNER_FEDERATED, PARTNER_PUBLIC_VERIFIED,
                              PARTNER_PUBLIC_UNVERIFIED};
    for (int i = 0; i < 3; i++) {
        partner_t p;
        partner_defaults(&p);
        snprintf(p.domain, sizeof(p.domain), "%s", partners[i]);
        p.type = types[i];
        store_partner_create(s, &ctx, &p, &rep);
    }
    store_access_set(s, &ctx, "domain:example.org", true, &rep);
    store_access_set(s, &ctx, "user:blocked@example.org", false, &rep);

    /* The ledger: ninv invitations, of which the stanzas below hit a quarter. */
    ledger_writer_t *w = NULL;
    if (ledger_writer_start(dir, NULL, &w)) {
        fprintf(stderr, "ledger writer failed\n");
        return 1;
    }
    char l[64], r[64];
    for (size_t i = 0; i < ninv; i++) {
        snprintf(l, sizeof(l), "user%zu@example.org", i % 1000);
        snprintf(r, sizeof(r), "c%zu@pu.example", i);
        while (ledger_post_invite(w, l, r, 999) == FG_ELIMIT)
            ledger_writer_flush(w);
    }
    ledger_writer_flush(w);
    ledger_writer_stop(w);

    stanza_arena_t *a;
    stanza_arena_new(&a, 4u << 20);
    const char *kinds[][2] = {
        {"message", "chat"}, {"message", "chat"}, {"presence", NULL}, {"presence", "subscribe"}};
    for (size_t i = 0; i < NST; i++) {
        const char **k = kinds[i % 4];
        st[i] = stanza_new(a, NULL, STANZA_NS_SERVER, k[0]);
        size_t u = (i * 7919) % ninv;
        snprintf(l, sizeof(l), "user%zu@example.org/res", u % 1000);
        /* Every other stanza from an invited contact, the rest from strangers. */
        snprintf(r, sizeof(r), (i / 4) % 2 ? "c%zu@%s/phone" : "x%zu@%s/phone", u, partners[i % 3]);
        stanza_set_attr(a, st[i], "from", r);
        stanza_set_attr(a, st[i], "to", l);
        if (k[1])
            stanza_set_attr(a, st[i], "type", k[1]);
        stanza_add_text(a, stanza_new(a, st[i], STANZA_NS_SERVER, "body"), "hello", 5);
    }
    if (stanza_arena_error(a)) {
        fprintf(stderr, "arena failed\n");
        return 1;
    }

    policy_reader_t *pr = NULL;
    ledger_reader_t *lr = NULL;
    if (policy_reader_open(dir, &pr) || ledger_reader_open(dir, &lr)) {
        fprintf(stderr, "readers failed\n");
        return 1;
    }
    run(M_CHECKS_LEDGER, pr, lr); /* warm-up */
    double b = run(M_BASE, pr, lr);
    double c = run(M_CHECKS, pr, lr);
    double cl = run(M_CHECKS_LEDGER, pr, lr);
    double ce = run(M_CHECKS_LEDGER_EACH, pr, lr);
    printf("bench_decide: %d stanzas (message/presence/subscribe; Federated, PublicVerified, "
           "PublicUnverified), ledger of %zu invitations, median of %d rounds\n",
           NST, ninv, ROUNDS);
    printf("  baseline (accessors only)            %8.1f ns/stanza\n", b);
    printf("  + checks, no ledger lookup           %8.1f ns/stanza  added %7.1f ns  (x%.2f)\n", c,
           c - b, c / b);
    printf("  + checks + ledger (txn per %d)       %8.1f ns/stanza  added %7.1f ns  (x%.2f)\n",
           BATCH, cl, cl - b, cl / b);
    printf("  + checks + ledger (renew per lookup) %8.1f ns/stanza  added %7.1f ns  (x%.2f)\n", ce,
           ce - b, ce / b);
    printf("  target: <= 300 ns added per stanza: %s\n", cl - b <= 300.0 ? "met" : "NOT met");
    ledger_reader_close(lr);
    policy_reader_close(pr);
    stanza_arena_free(a);
    store_close(s);
    free(ctx.change);
    report_free(&rep);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) != 0;
}
