#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include "core/err.h"
#include "io/xq.h"

static void test_bounded_fifo(void **state)
{
    xq_t q;
    assert_int_equal(xq_init(&q, 5), 0); /* rounded up to 8 */
    xq_msg_t m = {.type = 1};
    int pushed = 0;
    while (xq_push(&q, &m) == 0) {
        m.arg++;
        pushed++;
        assert_true(pushed <= 8);
    }
    assert_int_equal(pushed, 8);
    assert_int_equal(xq_push(&q, &m), FG_ELIMIT);
    assert_int_equal(xq_len(&q), 8);
    xq_msg_t out;
    for (uint64_t i = 0; i < 8; i++) {
        assert_int_equal(xq_pop(&q, &out), 1);
        assert_int_equal(out.arg, i);
    }
    assert_int_equal(xq_pop(&q, &out), 0);
    xq_destroy(&q);
}

enum { NMSG = 500000 };

static void *producer(void *arg)
{
    xq_t *q = arg;
    for (uint64_t i = 0; i < NMSG;) {
        xq_msg_t m = {.type = 2, .arg = i};
        if (xq_push(q, &m) == 0)
            i++;
    }
    return NULL;
}

/* Across two threads nothing is lost, duplicated or reordered, whatever the interleaving. */
static void test_threads_order(void **state)
{
    xq_t q;
    pthread_t th;
    assert_int_equal(xq_init(&q, 64), 0);
    pthread_create(&th, NULL, producer, &q);
    uint64_t expect = 0;
    xq_msg_t m;
    while (expect < NMSG) {
        if (xq_pop(&q, &m)) {
            if (m.arg != expect)
                fail_msg("got %llu, expected %llu", (unsigned long long)m.arg,
                         (unsigned long long)expect);
            expect++;
        }
    }
    pthread_join(th, NULL);
    assert_int_equal(xq_pop(&q, &m), 0);
    xq_destroy(&q);
}

static void test_wake_only_when_sleeping(void **state)
{
    xq_wake_t w;
    assert_int_equal(xq_wake_init(&w), 0);
    /* Consumer awake: no eventfd write. */
    xq_wake_ring(&w);
    assert_int_equal(atomic_load(&w.rings), 0);
    struct pollfd p = {.fd = w.efd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
    /* Consumer about to sleep: exactly one write, however many producers ring. */
    atomic_store(&w.sleeping, 1);
    xq_wake_ring(&w);
    xq_wake_ring(&w);
    assert_int_equal(atomic_load(&w.rings), 1);
    assert_int_equal(poll(&p, 1, 0), 1);
    uint64_t v = 0;
    assert_int_equal(read(w.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
    assert_int_equal(v, 1);
    xq_wake_destroy(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_fifo),
        cmocka_unit_test(test_threads_order),
        cmocka_unit_test(test_wake_only_when_sleeping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
