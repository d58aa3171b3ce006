/*
 * The store across processes: a SIGKILL in the middle of a large import leaves it exactly before
 * or exactly after; two processes committing at once lose no update; a reader sees another
 * process's commit after refresh. Each child opens the store itself (an LMDB environment must
 * not cross fork()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "core/err.h"
#include "policy/lookup.h"
#include "policy/store.h"

#include "policy_test.h"

#define KILL_LOOPS 20
#define BIG_IMPORT 4000
#define SMALL_SET  50
#define EDITS_EACH 100

static char *make_json(const char *prefix, int n)
{
    buf_t b;
    buf_init(&b, 64u << 20);
    assert_int_equal(buf_append_str(&b, "{\"partners\": ["), 0);
    for (int i = 0; i < n; i++) {
        char line[256];
        snprintf(line, sizeof(line),
                 "%s{\"domain\": \"%s%05d.example\", \"additional_domains\": [\"xmpp.%s%05d."
                 "example\"], \"dialback\": false, \"description\": \"partner %d\"}",
                 i ? "," : "", prefix, i, prefix, i, i);
        assert_int_equal(buf_append_str(&b, line), 0);
    }
    assert_int_equal(buf_append_str(&b, "]}"), 0);
    assert_int_equal(buf_append(&b, "", 1), 0);
    return (char *)b.data;
}

static char *export_partners(const char *dir)
{
    store_t *s;
    char err[256];
    buf_t b;
    buf_init(&b, 256u << 20);
    int rc = store_open(dir, 0, &s, err, sizeof(err));
    if (rc)
        fail_msg("open after kill: %s: %s", fg_strerror(rc), err);
    assert_int_equal(store_export_json(s, 0, &b), 0);
    store_close(s);
    assert_int_equal(buf_append(&b, "", 1), 0);
    /* compare from "partners" on: settings do not change here, but keep the check focused */
    char *p = strstr((char *)b.data, "\"partners\"");
    char *copy = strdup(p);
    buf_free(&b);
    return copy;
}

static int import_replace(const char *dir, const char *json)
{
    store_t *s;
    char err[256];
    report_t rep;
    store_ctx_t ctx = {.actor = "test:proc"};
    report_init(&rep, 0);
    int rc = store_open(dir, 0, &s, err, sizeof(err));
    if (!rc)
        rc = store_import_json(s, &ctx, json, strlen(json), STORE_IMPORT_REPLACE, &rep);
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void init_store(const char *dir)
{
    store_t *s;
    char err[256];
    store_ctx_t ctx = {.actor = "test:proc"};
    assert_int_equal(store_open(dir, STORE_CREATE, &s, err, sizeof(err)), 0);
    assert_int_equal(store_init(s, &ctx, false, NULL), 0);
    free(ctx.change);
    store_close(s);
}

static void test_sigkill_during_import(void **state)
{
    char *dir = test_tmpdir();
    init_store(dir);
    char *small = make_json("before", SMALL_SET);
    char *big = make_json("after", BIG_IMPORT);
    assert_int_equal(import_replace(dir, small), 0);
    char *before = export_partners(dir);
    double t0 = now_s();
    assert_int_equal(import_replace(dir, big), 0);
    double import_s = now_s() - t0;
    char *after = export_partners(dir);
    assert_int_equal(import_replace(dir, small), 0);
    char *again = export_partners(dir);
    assert_string_equal(before, again); /* the two states are reproducible */
    free(again);
    assert_true(strcmp(before, after) != 0);

    int saw_before = 0, saw_after = 0;
    srand((unsigned)time(NULL));
    for (int loop = 0; loop < KILL_LOOPS; loop++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(import_replace(dir, big) == 0 ? 0 : 1);
        /* kill somewhere between "not started" and "just committed" */
        double frac = (double)rand() / RAND_MAX * 1.6;
        struct timespec d = {0, (long)(frac * import_s * 1e9)};
        while (d.tv_nsec >= 1000000000L) {
            d.tv_sec++;
            d.tv_nsec -= 1000000000L;
        }
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        char *now = export_partners(dir);
        if (strcmp(now, before) == 0) {
            saw_before++;
        } else if (strcmp(now, after) == 0) {
            saw_after++;
            assert_int_equal(import_replace(dir, small), 0); /* back to "before" */
        } else {
            fail_msg("loop %d: store is neither before nor after the import", loop);
        }
        free(now);
    }
    print_message("import %.0f ms; %d kills left it before, %d after\n", import_s * 1000,
                  saw_before, saw_after);
    assert_int_equal(saw_before + saw_after, KILL_LOOPS);
    /* the store still takes writes after all those kills (no stale writer lock) */
    assert_int_equal(import_replace(dir, big), 0);
    free(before);
    free(after);
    free(small);
    free(big);
    test_rmtree(dir);
    free(dir);
}

static int bump(partner_t *p, void *arg)
{
    p->connection_limit_set = true;
    p->connection_limit++;
    return 0;
}

static void child_edits(const char *dir, int id)
{
    store_t *s;
    char err[256];
    int bad = 0;
    if (store_open(dir, 0, &s, err, sizeof(err)))
        _exit(10);
    for (int i = 0; i < EDITS_EACH; i++) {
        store_ctx_t ctx = {.actor = id ? "test:b" : "test:a"};
        report_t rep;
        report_init(&rep, 0);
        /* read-modify-write of one shared record, inside the write transaction */
        if (store_partner_modify(s, &ctx, "shared.example", bump, NULL, NULL, &rep))
            bad++;
        free(ctx.change);
        ctx.change = NULL;
        /* and a record of its own */
        partner_t p;
        partner_defaults(&p);
        snprintf(p.domain, sizeof(p.domain), "c%d-%03d.example", id, i);
        p.dialback = false;
        if (store_partner_create(s, &ctx, &p, &rep))
            bad++;
        free(ctx.change);
        report_free(&rep);
    }
    store_close(s);
    _exit(bad ? 20 : 0);
}

static int count_cb(const partner_t *p, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static void test_concurrent_writers(void **state)
{
    char *dir = test_tmpdir();
    init_store(dir);
    {
        store_t *s;
        char err[256];
        store_ctx_t ctx = {0};
        partner_t p;
        partner_defaults(&p);
        strcpy(p.domain, "shared.example");
        p.dialback = false;
        p.connection_limit_set = true;
        p.connection_limit = 0;
        assert_int_equal(store_open(dir, 0, &s, err, sizeof(err)), 0);
        assert_int_equal(store_partner_create(s, &ctx, &p, NULL), 0);
        free(ctx.change);
        store_close(s);
    }
    pid_t a = fork();
    if (a == 0)
        child_edits(dir, 0);
    pid_t b = fork();
    if (b == 0)
        child_edits(dir, 1);
    int sa, sb;
    assert_int_equal(waitpid(a, &sa, 0), a);
    assert_int_equal(waitpid(b, &sb, 0), b);
    assert_true(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
    assert_true(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);

    store_t *s;
    char err[256];
    partner_t p;
    assert_int_equal(store_open(dir, 0, &s, err, sizeof(err)), 0);
    assert_int_equal(store_partner_get(s, "shared.example", &p), 0);
    assert_int_equal(p.connection_limit, 2 * EDITS_EACH); /* no update lost */
    assert_int_equal(p.revision, 1 + 2 * EDITS_EACH);
    int n = 0;
    assert_int_equal(store_partner_list(s, NULL, count_cb, &n), 0);
    assert_int_equal(n, 1 + 2 * EDITS_EACH);
    uint64_t counter, txn;
    assert_int_equal(store_meta(s, &counter, &txn), 0);
    assert_int_equal(counter, 1 /* init */ + 1 + 4 * EDITS_EACH);
    store_close(s);
    test_rmtree(dir);
    free(dir);
}

static void test_reader_sees_other_process(void **state)
{
    char *dir = test_tmpdir();
    init_store(dir);
    policy_reader_t *r;
    assert_int_equal(policy_reader_open(dir, &r), 0);
    assert_null(policy_lookup(r, "fresh.example"));
    uint64_t g = policy_reader_generation(r);
    pid_t pid = fork();
    if (pid == 0) {
        store_t *s;
        char err[256];
        store_ctx_t ctx = {0};
        partner_t p;
        partner_defaults(&p);
        strcpy(p.domain, "fresh.example");
        p.type = PARTNER_FEDERATED;
        int rc = store_open(dir, 0, &s, err, sizeof(err));
        if (!rc)
            rc = store_partner_create(s, &ctx, &p, NULL);
        _exit(rc ? 1 : 0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_null(policy_lookup(r, "fresh.example")); /* the snapshot holds until refresh */
    assert_int_equal(policy_reader_refresh(r), 1);
    assert_true(policy_reader_generation(r) > g);
    const policy_partner_t *p = policy_lookup(r, "fresh.example");
    assert_non_null(p);
    assert_int_equal(p->rules.type, PARTNER_FEDERATED);
    assert_int_equal(policy_reader_refresh(r), 0);
    policy_reader_close(r);
    test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_sees_other_process),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_sigkill_during_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
