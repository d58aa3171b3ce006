/*
 * The authorisation ledger on a real LMDB store under mkdtemp(): keys and values, invitations
 * judged with an injected clock (expiry without sleeping), answers, removal on unsubscribe /
 * unsubscribed in both directions, purge, the queue-full answer, restart, concurrent posters,
 * the tool operations, and SIGKILL of a process in the middle of a burst of invitations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <lmdb.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "core/err.h"
#include "policy/decide.h"
#include "policy/ledger.h"
#include "policy/store.h"

#include "policy_test.h"

typedef struct {
    char *dir;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    char err[256];
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = "test:unit"};
    report_init(&rep, 0);
    fx->dir = test_tmpdir();
    if (!fx->dir || store_open(fx->dir, STORE_CREATE, &s, err, sizeof(err)) ||
        store_init(s, &ctx, true, &rep))
        return -1;
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    test_rmtree(fx->dir);
    free(fx->dir);
    free(fx);
    return 0;
}

static void test_keys_values(void **state)
{
    (void)state;
    char b[LEDGER_JID_MAX + 1];
    assert_int_equal(ledger_bare_jid("Alice@Example.ORG/Laptop", b, sizeof(b)), 17);
    assert_string_equal(b, "alice@example.org");
    assert_int_equal(ledger_bare_jid("example.org", b, sizeof(b)), FG_EPARSE); /* no user */
    assert_int_equal(ledger_bare_jid("a@b@c/", b, sizeof(b)), FG_EPARSE);
    assert_int_equal(ledger_bare_jid(NULL, b, sizeof(b)), FG_EPARSE);
    char longjid[400];
    memset(longjid, 'x', 300);
    strcpy(longjid + 300, "@example.org");
    assert_int_equal(ledger_bare_jid(longjid, b, sizeof(b)), FG_ELIMIT);

    assert_int_equal(ledger_bare_jid_trusted("Alice@Example.ORG./Laptop/x", b, sizeof(b)), 17);
    assert_string_equal(b, "alice@example.org");
    assert_int_equal(ledger_bare_jid_trusted("example.org/r@x", b, sizeof(b)), FG_EPARSE);
    assert_int_equal(ledger_bare_jid_trusted("@example.org", b, sizeof(b)), FG_EPARSE);
    assert_int_equal(ledger_bare_jid_trusted(longjid, b, sizeof(b)), FG_ELIMIT);
    assert_int_equal(ledger_bare_jid_trusted("a@b", b, 3), FG_ELIMIT);

    char key[LEDGER_KEY_MAX];
    assert_int_equal(ledger_key("a@x", "b@y", key, sizeof(key)), 7);
    assert_memory_equal(key, "a@x\0b@y", 7);
    assert_int_equal(ledger_key("", "b@y", key, sizeof(key)), FG_ELIMIT);

    ledger_entry_t e = {.invited_at = 1700000000, .messaged_at = 1700000123, .answered = true}, d;
    uint8_t v[LEDGER_VALUE_LEN];
    ledger_value_encode(&e, v);
    assert_int_equal(ledger_value_decode(v, sizeof(v), &d), 0);
    assert_int_equal(d.invited_at, e.invited_at);
    assert_int_equal(d.messaged_at, e.messaged_at);
    assert_true(d.answered);
    assert_int_equal(ledger_value_decode(v, sizeof(v) - 1, &d), FG_EPARSE);
    v[1] = 0x80;
    assert_int_equal(ledger_value_decode(v, sizeof(v), &d), FG_EPARSE);
    v[0] = LEDGER_VALUE_VERSION + 1;
    assert_int_equal(ledger_value_decode(v, sizeof(v), &d), FG_EVERSION);
    assert_int_equal(ledger_value_decode(v, 0, &d), FG_EPARSE);

    ledger_entry_t c = {.invited_at = 0, .messaged_at = 1000};
    assert_int_equal(ledger_judge(&c, 1059, 60), LEDGER_CONVERSATION);
    assert_int_equal(ledger_judge(&c, 1060, 60), LEDGER_EXPIRED);
    c.invited_at = 900; /* an expired invitation does not hide a fresh conversation */
    assert_int_equal(ledger_judge(&c, 1030, 60), LEDGER_CONVERSATION);
    c.invited_at = 1020;
    assert_int_equal(ledger_judge(&c, 1030, 60), LEDGER_VALID);
    ledger_entry_t u = {.invited_at = 1000, .answered = false};
    assert_int_equal(ledger_judge(&u, 1000, 60), LEDGER_VALID);
    assert_int_equal(ledger_judge(&u, 1059, 60), LEDGER_VALID);
    assert_int_equal(ledger_judge(&u, 1060, 60), LEDGER_EXPIRED);
    assert_int_equal(ledger_judge(&u, 500, 60), LEDGER_VALID); /* clock stepped back */
    u.answered = true;
    assert_int_equal(ledger_judge(&u, 1000000, 60), LEDGER_VALID);
    assert_string_equal(ledger_answer_name(LEDGER_EXPIRED), "expired");
}

static void test_invite_expire_answer(void **state)
{
    fx_t *fx = *state;
    ledger_writer_t *w = NULL;
    ledger_reader_t *r = NULL;
    assert_int_equal(ledger_writer_start(fx->dir, NULL, &w), 0);
    assert_int_equal(ledger_reader_open(fx->dir, &r), 0);
    const char *A = "alice@example.org", *B = "bob@gmail.example", *C = "carol@gmail.example";

    assert_int_equal(ledger_lookup(r, A, B, 1000, 60), LEDGER_ABSENT);
    assert_int_equal(ledger_post_invite(w, A, B, 1000), 0);
    assert_int_equal(ledger_post_invite(w, A, C, 1000), 0);
    assert_int_equal(ledger_writer_flush(w), 0);

    /* A batch: one renewed transaction for several lookups. */
    assert_int_equal(ledger_reader_refresh(r), 0);
    assert_int_equal(ledger_lookup(r, A, B, 1030, 60), LEDGER_VALID);
    assert_int_equal(ledger_lookup(r, A, B, 1060, 60), LEDGER_EXPIRED);
    assert_int_equal(ledger_lookup(r, B, A, 1030, 60), LEDGER_ABSENT); /* directional */
    assert_int_equal(ledger_lookup(r, A, "dave@gmail.example", 1030, 60), LEDGER_ABSENT);
    ledger_reader_end(r);

    /* Re-inviting restarts the interval; answering makes it permanent. */
    assert_int_equal(ledger_post_invite(w, A, B, 2000), 0);
    assert_int_equal(ledger_post_answer(w, A, C, 1010), 0);
    assert_int_equal(ledger_post_answer(w, "x@y", "z@w", 1010), 0); /* nothing to answer */
    assert_int_equal(ledger_writer_flush(w), 0);
    assert_int_equal(ledger_lookup(r, A, B, 2059, 60), LEDGER_VALID);
    assert_int_equal(ledger_lookup(r, A, C, 999999, 60), LEDGER_VALID);
    assert_int_equal(ledger_lookup(r, "x@y", "z@w", 1010, 60), LEDGER_ABSENT);
    ledger_entry_t e;
    assert_int_equal(ledger_get(r, A, C, &e), 0);
    assert_true(e.answered);
    assert_int_equal(e.invited_at, 1000);

    uint64_t n, batches;
    assert_int_equal(ledger_counts(fx->dir, &n, &batches), 0);
    assert_int_equal(n, 2);
    assert_true(batches >= 2);

    /* Purge: unanswered and older than the cutoff only. */
    assert_int_equal(ledger_post_invite(w, C, A, 100), 0);
    assert_int_equal(ledger_post_invite(w, C, B, 100), 0);
    assert_int_equal(ledger_post_message(w, C, B, 1600), 0); /* fresh conversation: kept */
    assert_int_equal(ledger_post_purge(w, 1500), 0);
    assert_int_equal(ledger_writer_flush(w), 0);
    assert_int_equal(ledger_lookup(r, C, A, 100, 60), LEDGER_ABSENT);
    assert_int_equal(ledger_lookup(r, C, B, 1601, 60), LEDGER_CONVERSATION);
    assert_int_equal(ledger_lookup(r, A, B, 2000, 60), LEDGER_VALID);
    assert_int_equal(ledger_lookup(r, A, C, 2000, 60), LEDGER_VALID);
    assert_int_equal(ledger_counts(fx->dir, &n, &batches), 0);
    assert_int_equal(n, 3);

    ledger_writer_stats_t st;
    ledger_writer_stats(w, &st);
    assert_int_equal(st.posted, 9);
    assert_int_equal(st.committed, 9);
    assert_int_equal(st.failed, 0);
    ledger_reader_close(r);
    ledger_writer_stop(w);
}

/* What the daemon does with a stanza: decide, then post for the verdict (local = our user). */
static void glue(ledger_writer_t *w, decide_dir_t dir, decide_kind_t kind, const char *local,
                 const char *remote, int64_t now)
{
    decide_in_t in = {dir, kind, PARTNER_PUBLIC_UNVERIFIED, true, LEDGER_ABSENT};
    decide_t d = decide(&in);
    assert_int_equal(decide_post(w, d.verdict, local, remote, now), 0);
}

static void test_remove_both_directions(void **state)
{
    fx_t *fx = *state;
    ledger_writer_t *w = NULL;
    ledger_reader_t *r = NULL;
    const char *A = "alice@example.org", *B = "bob@gmail.example";
    assert_int_equal(ledger_writer_start(fx->dir, NULL, &w), 0);
    assert_int_equal(ledger_reader_open(fx->dir, &r), 0);
    decide_kind_t removers[] = {DECIDE_K_UNSUBSCRIBE, DECIDE_K_UNSUBSCRIBED};
    for (int dir = 0; dir < 2; dir++)
        for (int k = 0; k < 2; k++) {
            glue(w, DECIDE_OUTBOUND, k ? DECIDE_K_SUBSCRIBED : DECIDE_K_SUBSCRIBE, A, B, 10);
            assert_int_equal(ledger_writer_flush(w), 0);
            assert_int_equal(ledger_lookup(r, A, B, 11, 60), LEDGER_VALID);
            glue(w, dir, removers[k], A, B, 12);
            assert_int_equal(ledger_writer_flush(w), 0);
            assert_int_equal(ledger_lookup(r, A, B, 13, 60), LEDGER_ABSENT);
        }
    /* A message from our user opens a conversation (replies pass, subscriptions do not); an
       unsubscribed removes it too. */
    glue(w, DECIDE_OUTBOUND, DECIDE_K_MESSAGE, A, B, 10);
    assert_int_equal(ledger_writer_flush(w), 0);
    assert_int_equal(ledger_lookup(r, A, B, 11, 60), LEDGER_CONVERSATION);
    assert_int_equal(ledger_lookup(r, A, B, 70, 60), LEDGER_EXPIRED);
    glue(w, DECIDE_INBOUND, DECIDE_K_UNSUBSCRIBED, A, B, 12);
    assert_int_equal(ledger_writer_flush(w), 0);
    assert_int_equal(ledger_lookup(r, A, B, 13, 60), LEDGER_ABSENT);
    ledger_reader_close(r);
    ledger_writer_stop(w);
}

typedef struct {
    sem_t entered, release;
    int calls;
} gate_t;

static void block_first_commit(void *arg, size_t items, int ret)
{
    gate_t *g = arg;
    (void)items;
    (void)ret;
    if (g->calls++ == 0) {
        sem_post(&g->entered);
        sem_wait(&g->release);
    }
}

static void test_queue_full(void **state)
{
    fx_t *fx = *state;
    gate_t g = {.calls = 0};
    sem_init(&g.entered, 0, 0);
    sem_init(&g.release, 0, 0);
    ledger_writer_config_t cfg = {.capacity = 4, .on_commit = block_first_commit, .arg = &g};
    ledger_writer_t *w = NULL;
    assert_int_equal(ledger_writer_start(fx->dir, &cfg, &w), 0);
    assert_int_equal(ledger_post_invite(w, "a@x", "b@y", 1), 0);
    sem_wait(&g.entered); /* the writer is stuck after its first commit */
    char rem[32];
    for (int i = 0; i < 4; i++) {
        snprintf(rem, sizeof(rem), "r%d@y", i);
        assert_int_equal(ledger_post_invite(w, "a@x", rem, 2), 0);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ledger_post_invite(w, "a@x", "full@y", 3), FG_ELIMIT);
    assert_int_equal(ledger_post_remove(w, "a@x", "b@y"), FG_ELIMIT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Refused at once: no waiting for the stuck writer (generous bound for a loaded machine). */
    assert_true((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 100000000L);
    ledger_writer_stats_t st;
    ledger_writer_stats(w, &st);
    assert_int_equal(st.refused, 2);
    sem_post(&g.release);
    assert_int_equal(ledger_writer_flush(w), 0);
    assert_int_equal(ledger_post_invite(w, "a@x", "full@y", 3), 0); /* room again */
    ledger_writer_stop(w);
    uint64_t n, b;
    assert_int_equal(ledger_counts(fx->dir, &n, &b), 0);
    assert_int_equal(n, 6);
    sem_destroy(&g.entered);
    sem_destroy(&g.release);
}

static void test_restart_keeps(void **state)
{
    fx_t *fx = *state;
    ledger_writer_t *w = NULL;
    ledger_reader_t *r = NULL;
    assert_int_equal(ledger_writer_start(fx->dir, NULL, &w), 0);
    assert_int_equal(ledger_post_invite(w, "alice@example.org", "bob@gmail.example", 500), 0);
    assert_int_equal(ledger_post_invite(w, "alice@example.org", "eve@gmail.example", 500), 0);
    assert_int_equal(ledger_post_answer(w, "alice@example.org", "eve@gmail.example", 501), 0);
    ledger_writer_stop(w); /* commits what was posted, closes the environment */
    assert_int_equal(ledger_reader_open(fx->dir, &r), 0);
    assert_int_equal(ledger_lookup(r, "alice@example.org", "bob@gmail.example", 510, 60),
                     LEDGER_VALID);
    assert_int_equal(ledger_lookup(r, "alice@example.org", "eve@gmail.example", 9999, 60),
                     LEDGER_VALID);
    assert_int_equal(ledger_lookup(r, "alice@example.org", "bob@gmail.example", 560, 60),
                     LEDGER_EXPIRED);
    ledger_reader_close(r);
}

typedef struct {
    ledger_writer_t *w;
    int id;
    int refused;
} poster_t;

static void *poster(void *arg)
{
    poster_t *p = arg;
    char l[32], rm[32];
    for (int i = 0; i < 500; i++) {
        snprintf(l, sizeof(l), "u%d@example.org", p->id);
        snprintf(rm, sizeof(rm), "p%d@partner.net", i);
        while (ledger_post_invite(p->w, l, rm, 1) == FG_ELIMIT)
            p->refused++;
    }
    return NULL;
}

static void test_concurrent_posters(void **state)
{
    fx_t *fx = *state;
    ledger_writer_t *w = NULL;
    ledger_writer_config_t cfg = {.capacity = 256};
    assert_int_equal(ledger_writer_start(fx->dir, &cfg, &w), 0);
    pthread_t th[4];
    poster_t p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (poster_t){w, i, 0};
        pthread_create(&th[i], NULL, poster, &p[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(ledger_writer_flush(w), 0);
    ledger_writer_stats_t st;
    ledger_writer_stats(w, &st);
    assert_int_equal(st.committed, 2000);
    assert_true(st.batches < 2000); /* grouped */
    ledger_writer_stop(w);
    uint64_t n, b;
    assert_int_equal(ledger_counts(fx->dir, &n, &b), 0);
    assert_int_equal(n, 2000);
}

typedef struct {
    int n;
    char last[128];
} list_t;

static int count_cb(const char *local, const char *remote, const ledger_entry_t *e, void *arg)
{
    list_t *l = arg;
    (void)e;
    l->n++;
    snprintf(l->last, sizeof(l->last), "%s>%s", local, remote);
    return 0;
}

static void test_list_remove(void **state)
{
    fx_t *fx = *state;
    ledger_writer_t *w = NULL;
    assert_int_equal(ledger_writer_start(fx->dir, NULL, &w), 0);
    ledger_post_invite(w, "a@x", "p@y", 1);
    ledger_post_invite(w, "a@x", "q@y", 1);
    ledger_post_invite(w, "ab@x", "p@y", 1); /* "a@x" must not match "ab@x" */
    ledger_post_invite(w, "b@x", "p@y", 1);
    assert_int_equal(ledger_writer_flush(w), 0);
    ledger_writer_stop(w);

    list_t l = {0};
    assert_int_equal(ledger_list(fx->dir, NULL, NULL, count_cb, &l), 0);
    assert_int_equal(l.n, 4);
    l.n = 0;
    assert_int_equal(ledger_list(fx->dir, "a@x", NULL, count_cb, &l), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.last, "a@x>q@y");
    l.n = 0;
    assert_int_equal(ledger_list(fx->dir, NULL, "p@y", count_cb, &l), 0);
    assert_int_equal(l.n, 3);

    uint64_t removed, n, b;
    assert_int_equal(ledger_remove(fx->dir, "a@x", "p@y", &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(ledger_remove(fx->dir, "a@x", "p@y", &removed), FG_ENOTFOUND);
    assert_int_equal(ledger_remove(fx->dir, NULL, "p@y", &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(ledger_counts(fx->dir, &n, &b), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ledger_remove(fx->dir, NULL, NULL, &removed), 0);
    assert_int_equal(removed, 1);
    l.n = 0;
    assert_int_equal(ledger_list(fx->dir, NULL, NULL, count_cb, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(ledger_counts(fx->dir, &n, &b), 0);
    assert_int_equal(n, 0);
}

/* Child: a writer with small batches posting distinct invitations until it is killed. */
static void burst_child(const char *dir, int round)
{
    ledger_writer_config_t cfg = {.capacity = 64};
    ledger_writer_t *w = NULL;
    char l[32], rm[32];
    if (ledger_writer_start(dir, &cfg, &w))
        _exit(2);
    for (unsigned i = 0;; i++) {
        snprintf(l, sizeof(l), "u%d@example.org", round);
        snprintf(rm, sizeof(rm), "p%u@partner.net", i);
        if (ledger_post_invite(w, l, rm, 1000 + i) == FG_ELIMIT) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

typedef struct {
    uint64_t n;
    int bad;
} verify_t;

static int verify_cb(const char *local, const char *remote, const ledger_entry_t *e, void *arg)
{
    verify_t *v = arg;
    v->n++;
    if (!strstr(local, "@example.org") || !strstr(remote, "@partner.net") || e->invited_at < 1000)
        v->bad++;
    return 0;
}

static void test_sigkill_burst(void **state)
{
    fx_t *fx = *state;
    uint64_t prev_n = 0, prev_b = 0, grew = 0;
    for (int round = 0; round < 15; round++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            burst_child(fx->dir, round);
        struct timespec ts = {0, (long)(20 + (round * 7) % 40) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));

        /* Every entry decodes; the stored count (written in the same transaction as the
           entries) equals what is there: no batch is ever half applied. */
        verify_t v = {0};
        uint64_t n, b;
        assert_int_equal(ledger_list(fx->dir, NULL, NULL, verify_cb, &v), 0);
        assert_int_equal(v.bad, 0);
        assert_int_equal(ledger_counts(fx->dir, &n, &b), 0);
        assert_int_equal(n, v.n);
        assert_true(n >= prev_n);
        assert_true(b >= prev_b);
        grew += n > prev_n;
        prev_n = n;
        prev_b = b;
    }
    assert_true(grew > 0); /* the children did commit before being killed */
}

/* A store made before the ledger existed: read-only opens see an empty ledger; the first
   writable open creates the database. */
static void test_store_without_ledger_db(void **state)
{
    fx_t *fx = *state;
    MDB_env *env;
    MDB_txn *t;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, fx->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &t), 0);
    assert_int_equal(mdb_dbi_open(t, "ledger", 0, &dbi), 0);
    assert_int_equal(mdb_drop(t, dbi, 1), 0);
    assert_int_equal(mdb_txn_commit(t), 0);
    mdb_env_close(env);

    store_t *s = NULL;
    char err[256];
    assert_int_equal(store_open(fx->dir, STORE_READONLY, &s, err, sizeof(err)), 0);
    ledger_reader_t *r = NULL;
    assert_int_equal(ledger_reader_open(fx->dir, &r), 0); /* shares the read-only environment */
    assert_int_equal(ledger_lookup(r, "a@x", "b@y", 1, 60), LEDGER_ABSENT);
    list_t l = {0};
    assert_int_equal(ledger_list(fx->dir, NULL, NULL, count_cb, &l), 0);
    assert_int_equal(l.n, 0);
    ledger_writer_t *w = NULL;
    assert_true(ledger_writer_start(fx->dir, NULL, &w) != 0); /* cannot write through it */
    ledger_reader_close(r);
    store_close(s);

    assert_int_equal(ledger_writer_start(fx->dir, NULL, &w), 0);
    assert_int_equal(ledger_post_invite(w, "a@x", "b@y", 1), 0);
    ledger_writer_stop(w);
    assert_int_equal(ledger_reader_open(fx->dir, &r), 0);
    assert_int_equal(ledger_lookup(r, "a@x", "b@y", 1, 60), LEDGER_VALID);
    ledger_reader_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_values),
        cmocka_unit_test_setup_teardown(test_invite_expire_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_both_directions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_posters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigkill_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_without_ledger_db, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
