#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "core/err.h"
#include "io/timer.h"

typedef struct {
    int order[64];
    int n;
} log_t;

typedef struct {
    timer_ent_t t;
    int id;
    log_t *log;
    timer_heap_t *h;
    int rearm;
} tt_t;

static void fire(timer_ent_t *t, void *arg)
{
    tt_t *x = arg;
    x->log->order[x->log->n++] = x->id;
    if (x->rearm) {
        x->rearm = 0;
        /* Re-armed for "now": must not fire again inside the same timer_run. */
        timer_arm_at(x->h, &x->t, 0);
    }
}

static void test_order_and_cancel(void **state)
{
    timer_heap_t h;
    log_t log = {.n = 0};
    tt_t t[10];
    assert_int_equal(timer_heap_init(&h, 10), 0);
    /* Deadlines deliberately out of order, with ties. */
    uint64_t dl[10] = {50, 10, 30, 10, 90, 70, 20, 60, 40, 80};
    for (int i = 0; i < 10; i++) {
        t[i].id = i;
        t[i].log = &log;
        t[i].h = &h;
        t[i].rearm = 0;
        timer_init(&t[i].t, fire, &t[i]);
        assert_int_equal(timer_arm_at(&h, &t[i].t, dl[i]), 0);
    }
    assert_int_equal(timer_next(&h), 10);
    timer_cancel(&h, &t[2].t); /* 30 */
    assert_false(timer_armed(&t[2].t));
    timer_cancel(&h, &t[2].t); /* idempotent */
    /* Moving a timer re-sorts it. */
    assert_int_equal(timer_arm_at(&h, &t[4].t, 5), 0);
    assert_int_equal(timer_run(&h, 45), 5);
    /* 5 (id 4), ties at 10 fire in arming order (1 then 3), then 20, 40. */
    int want1[] = {4, 1, 3, 6, 8};
    for (int i = 0; i < 5; i++)
        assert_int_equal(log.order[i], want1[i]);
    assert_int_equal(timer_run(&h, 1000), 4);
    int want2[] = {0, 7, 5, 9};
    for (int i = 0; i < 4; i++)
        assert_int_equal(log.order[5 + i], want2[i]);
    assert_int_equal(timer_next(&h), UINT64_MAX);
    timer_heap_free(&h);
}

static void test_full_heap(void **state)
{
    timer_heap_t h;
    log_t log = {.n = 0};
    tt_t t[3];
    assert_int_equal(timer_heap_init(&h, 2), 0);
    for (int i = 0; i < 3; i++) {
        t[i].id = i;
        t[i].log = &log;
        timer_init(&t[i].t, fire, &t[i]);
    }
    assert_int_equal(timer_arm_at(&h, &t[0].t, 1), 0);
    assert_int_equal(timer_arm_at(&h, &t[1].t, 2), 0);
    assert_int_equal(timer_arm_at(&h, &t[2].t, 3), FG_ELIMIT);
    /* Re-arming an armed timer in a full heap works: it takes its own place. */
    assert_int_equal(timer_arm_at(&h, &t[0].t, 9), 0);
    assert_int_equal(timer_next(&h), 2);
    timer_heap_free(&h);
}

static void test_rearm_in_callback(void **state)
{
    timer_heap_t h;
    log_t log = {.n = 0};
    tt_t t = {.id = 7, .log = &log, .rearm = 1};
    t.h = &h;
    assert_int_equal(timer_heap_init(&h, 4), 0);
    timer_init(&t.t, fire, &t);
    timer_arm_at(&h, &t.t, 10);
    assert_int_equal(timer_run(&h, 100), 1);
    assert_true(timer_armed(&t.t));
    assert_int_equal(timer_run(&h, 100), 1);
    assert_int_equal(log.n, 2);
    timer_heap_free(&h);
}

/* Random arm/cancel against a brute-force model: the heap always yields the earliest deadline. */
static void test_random_against_model(void **state)
{
    enum { N = 200 };
    timer_heap_t h;
    static tt_t t[N];
    log_t log = {.n = 0};
    assert_int_equal(timer_heap_init(&h, N), 0);
    for (int i = 0; i < N; i++) {
        t[i].id = i;
        t[i].log = &log;
        timer_init(&t[i].t, fire, &t[i]);
    }
    srand(42);
    for (int step = 0; step < 20000; step++) {
        int i = rand() % N;
        if (rand() % 3 == 0)
            timer_cancel(&h, &t[i].t);
        else
            timer_arm_at(&h, &t[i].t, (uint64_t)(rand() % 100000));
        uint64_t min = UINT64_MAX;
        for (int k = 0; k < N; k++)
            if (timer_armed(&t[k].t) && t[k].t.deadline < min)
                min = t[k].t.deadline;
        assert_true(timer_next(&h) == min);
    }
    timer_heap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_cancel),
        cmocka_unit_test(test_full_heap),
        cmocka_unit_test(test_rearm_in_callback),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
