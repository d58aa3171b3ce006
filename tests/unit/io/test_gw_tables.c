/* The gateway's process-wide tables: partner connection accounting and the component registry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "io/gw.h"

static gw_t *new_gw(void)
{
    gw_t *gw = calloc(1, sizeof(*gw));
    assert_non_null(gw);
    pthread_mutex_init(&gw->comp_mu, NULL);
    pthread_mutex_init(&gw->fail_mu, NULL);
    return gw;
}

static void free_gw(gw_t *gw)
{
    pthread_mutex_destroy(&gw->comp_mu);
    pthread_mutex_destroy(&gw->fail_mu);
    free(gw);
}

static void test_connection_limits(void **state)
{
    (void)state;
    gw_t *gw = new_gw();
    /* Partner limit 2, total 3. */
    assert_int_equal(gw_conn_acquire(gw, "a.example", 2, 3), 0);
    assert_int_equal(gw_conn_acquire(gw, "a.example", 2, 3), 0);
    assert_int_equal(gw_conn_acquire(gw, "a.example", 2, 3), FG_ELIMIT);
    assert_int_equal(gw_conn_acquire(gw, "b.example", 2, 3), 0);
    assert_int_equal(atomic_load(&gw->nconns), 3);
    /* The total is reached: another partner is refused too, and a refusal takes nothing. */
    assert_int_equal(gw_conn_acquire(gw, "c.example", 2, 3), FG_ELIMIT);
    assert_int_equal(atomic_load(&gw->nconns), 3);
    gw_conn_release(gw, "a.example");
    assert_int_equal(gw_conn_acquire(gw, "c.example", 2, 3), 0);
    /* A limit of 0 means none. */
    gw_conn_release(gw, "c.example");
    gw_conn_release(gw, "b.example");
    gw_conn_release(gw, "a.example");
    assert_int_equal(atomic_load(&gw->nconns), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(gw_conn_acquire(gw, "a.example", 0, 0), 0);
    free_gw(gw);
}

static void test_component_registry(void **state)
{
    (void)state;
    gw_t *gw = new_gw();
    assert_int_equal(gw_comp_owner(gw, "gw.example"), -1);
    gw_comp_register(gw, "gw.example", 1, 7);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 1);
    assert_int_equal(gw_comp_owner(gw, "other.example"), -1);
    /* A connection that goes while another of the component stays on its worker changes
       nothing. */
    gw_comp_register(gw, "gw.example", 1, 8);
    gw_comp_unregister(gw, "gw.example", 1, false);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 1);
    /* A second connection on another worker: the newest is where the others post. */
    gw_comp_register(gw, "gw.example", 0, 9);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 0);
    /* Worker 1's last connection goes: worker 0 stays the owner. */
    gw_comp_unregister(gw, "gw.example", 1, true);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 0);
    /* Connections on workers 3 and 0; worker 0's goes: worker 3 takes over, then none. */
    gw_comp_register(gw, "gw.example", 3, 11);
    gw_comp_register(gw, "gw.example", 0, 12);
    gw_comp_unregister(gw, "gw.example", 0, false);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 0);
    gw_comp_unregister(gw, "gw.example", 0, true);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 3);
    gw_comp_unregister(gw, "gw.example", 3, true);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), -1);
    /* A worker above 64 is tracked as well. */
    gw_comp_register(gw, "gw.example", 200, 13);
    gw_comp_register(gw, "gw.example", 2, 14);
    gw_comp_unregister(gw, "gw.example", 2, true);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 200);
    gw_comp_unregister(gw, "gw.example", 200, true);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), -1);
    /* The slot is reused for the same domain, not duplicated. */
    gw_comp_register(gw, "gw.example", 1, 10);
    assert_int_equal(atomic_load(&gw->ncomp), 1);
    /* The table is bounded. */
    char d[64];
    for (int i = 0; i < GW_COMP_MAX + 5; i++) {
        snprintf(d, sizeof(d), "c%d.example", i);
        gw_comp_register(gw, d, 0, (uint64_t)i + 100);
    }
    assert_int_equal(atomic_load(&gw->ncomp), GW_COMP_MAX);
    assert_int_equal(gw_comp_owner(gw, "gw.example"), 1);
    free_gw(gw);
}

static void test_failures(void **state)
{
    (void)state;
    gw_t *gw = new_gw();
    gw_note_failure(gw, "a.example", "tls");
    gw_note_failure(gw, "a.example", "policy-violation");
    gw_note_failure(gw, "", "dns"); /* no partner: not recorded */
    buf_t out;
    buf_init(&out, 1 << 16);
    gw_failures_collect(gw, &out);
    assert_int_equal(buf_append(&out, "", 1), 0);
    const char *text = (const char *)out.data;
    assert_non_null(strstr(text, "{partner=\"a.example\",reason=\"policy-violation\"}"));
    assert_null(strstr(text, "reason=\"tls\""));
    assert_null(strstr(text, "reason=\"dns\""));
    buf_free(&out);
    free_gw(gw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_limits),
        cmocka_unit_test(test_component_registry),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
