/* The SRV merge/order rules of io/srv.c, table-driven, no network. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "io/srv.h"

/* A scripted random source: returns the listed values in turn. */
typedef struct {
    const uint32_t *v;
    size_t n, i;
} script_t;

static uint32_t scripted(void *arg)
{
    script_t *s = arg;
    uint32_t r = s->n ? s->v[s->i % s->n] : 0;
    s->i++;
    return r;
}

#define RR(t, p, pr, w)                                                                            \
    {                                                                                              \
        t, p, pr, w, false                                                                         \
    }

typedef struct {
    const char *name;
    srv_status_t s_st; /* xmpps */
    srv_rr_t s_rr[4];
    size_t s_n;
    srv_status_t x_st; /* xmpp */
    srv_rr_t x_rr[4];
    size_t x_n;
    uint32_t rnd[4];
    size_t nrnd;
    srv_plan_kind_t want_plan;
    const char *want; /* "target:port:t|s ..." in order */
} row_t;

static const row_t rows[] = {
    {"xmpp only, by priority",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_RECORDS,
     {RR("b.example", 5269, 20, 0), RR("a.example", 5270, 10, 0)},
     2,
     {0},
     0,
     SRV_PLAN_TARGETS,
     "a.example:5270:s b.example:5269:s"},
    {"merge both services by priority",
     SRV_ANS_RECORDS,
     {RR("tls.example", 5223, 5, 0)},
     1,
     SRV_ANS_RECORDS,
     {RR("plain.example", 5269, 10, 0), RR("low.example", 5269, 1, 0)},
     2,
     {0},
     0,
     SRV_PLAN_TARGETS,
     "low.example:5269:s tls.example:5223:t plain.example:5269:s"},
    {"equal priority zero weights: xmpps first",
     SRV_ANS_RECORDS,
     {RR("tls.example", 5223, 0, 0)},
     1,
     SRV_ANS_RECORDS,
     {RR("plain.example", 5269, 0, 0)},
     1,
     {0},
     0,
     SRV_PLAN_TARGETS,
     "tls.example:5223:t plain.example:5269:s"},
    /* weights 10 and 90, sum 100: a draw of 50 passes the first (running sum 10) and picks the
     * second (running sum 100). */
    {"weighted: draw picks the heavy one",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_RECORDS,
     {RR("light.example", 5269, 1, 10), RR("heavy.example", 5269, 1, 90)},
     2,
     {50},
     1,
     SRV_PLAN_TARGETS,
     "heavy.example:5269:s light.example:5269:s"},
    {"weighted: small draw picks the light one",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_RECORDS,
     {RR("light.example", 5269, 1, 10), RR("heavy.example", 5269, 1, 90)},
     2,
     {7},
     1,
     SRV_PLAN_TARGETS,
     "light.example:5269:s heavy.example:5269:s"},
    /* zero weight first in the list; draw 0 selects it (running sum 0 >= 0). */
    {"weighted: zero weight selected by draw 0",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_RECORDS,
     {RR("w5.example", 5269, 1, 5), RR("w0.example", 5269, 1, 0)},
     2,
     {0},
     1,
     SRV_PLAN_TARGETS,
     "w0.example:5269:s w5.example:5269:s"},
    {"weighted across services",
     SRV_ANS_RECORDS,
     {RR("tls.example", 5223, 3, 1)},
     1,
     SRV_ANS_RECORDS,
     {RR("plain.example", 5269, 3, 99)},
     1,
     {2},
     1,
     SRV_PLAN_TARGETS,
     "plain.example:5269:s tls.example:5223:t"},
    {"no SRV at all: fallback",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_NONE,
     {},
     0,
     {0},
     0,
     SRV_PLAN_FALLBACK,
     ""},
    {"xmpp-server dot: no service",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_RECORDS,
     {RR(".", 0, 0, 0)},
     1,
     {0},
     0,
     SRV_PLAN_NO_SERVICE,
     ""},
    {"xmpp-server dot but xmpps has targets",
     SRV_ANS_RECORDS,
     {RR("tls.example", 5223, 0, 0)},
     1,
     SRV_ANS_RECORDS,
     {RR(".", 0, 0, 0)},
     1,
     {0},
     0,
     SRV_PLAN_TARGETS,
     "tls.example:5223:t"},
    {"xmpps dot: xmpp-server used",
     SRV_ANS_RECORDS,
     {RR(".", 0, 0, 0)},
     1,
     SRV_ANS_RECORDS,
     {RR("plain.example", 5269, 0, 0)},
     1,
     {0},
     0,
     SRV_PLAN_TARGETS,
     "plain.example:5269:s"},
    {"xmpps dot, no xmpp-server: no A fallback",
     SRV_ANS_RECORDS,
     {RR(".", 0, 0, 0)},
     1,
     SRV_ANS_NONE,
     {},
     0,
     {0},
     0,
     SRV_PLAN_NO_SERVICE,
     ""},
    {"empty target is the root too",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_RECORDS,
     {RR("", 0, 0, 0)},
     1,
     {0},
     0,
     SRV_PLAN_NO_SERVICE,
     ""},
    {"lookup failed, nothing else: error, no fallback",
     SRV_ANS_NONE,
     {},
     0,
     SRV_ANS_ERROR,
     {},
     0,
     {0},
     0,
     SRV_PLAN_ERROR,
     ""},
    {"xmpps failed but xmpp has records",
     SRV_ANS_ERROR,
     {},
     0,
     SRV_ANS_RECORDS,
     {RR("plain.example", 5269, 0, 0)},
     1,
     {0},
     0,
     SRV_PLAN_TARGETS,
     "plain.example:5269:s"},
};

static void render(const srv_rr_t *rr, size_t n, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        char one[600];
        snprintf(one, sizeof(one), "%s%.255s:%u:%c", i ? " " : "", rr[i].target, rr[i].port,
                 rr[i].direct_tls ? 't' : 's');
        strncat(out, one, outlen - strlen(out) - 1);
    }
}

static void test_table(void **state)
{
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        const row_t *row = &rows[r];
        srv_answer_t s = {row->s_st, row->s_rr, row->s_n};
        srv_answer_t x = {row->x_st, row->x_rr, row->x_n};
        script_t sc = {row->rnd, row->nrnd, 0};
        srv_rr_t out[8];
        size_t n = 99;
        srv_plan_kind_t k = srv_plan(&s, &x, scripted, &sc, out, 8, &n);
        char got[1024];
        render(out, k == SRV_PLAN_TARGETS ? n : 0, got, sizeof(got));
        if (k != row->want_plan || strcmp(got, row->want) != 0)
            fail_msg("row '%s': plan %s [%s], want %s [%s]", row->name, srv_plan_name(k), got,
                     srv_plan_name(row->want_plan), row->want);
    }
}

static void test_bound_keeps_best(void **state)
{
    srv_rr_t x[6];
    for (int i = 0; i < 6; i++) {
        memset(&x[i], 0, sizeof(x[i]));
        snprintf(x[i].target, sizeof(x[i].target), "p%d.example", 6 - i);
        x[i].priority = (uint16_t)(6 - i);
        x[i].port = 5269;
    }
    srv_answer_t s = {SRV_ANS_NONE, NULL, 0}, a = {SRV_ANS_RECORDS, x, 6};
    srv_rr_t out[3];
    size_t n;
    script_t sc = {NULL, 0, 0};
    assert_int_equal(srv_plan(&s, &a, scripted, &sc, out, 3, &n), SRV_PLAN_TARGETS);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].target, "p1.example");
    assert_string_equal(out[2].target, "p3.example");
}

static uint32_t lcg(void *arg)
{
    uint32_t *s = arg;
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* RFC 2782 draws uniformly from [0, sum] inclusive, so with weights 1 and 3 the draws 0 and 1 pick
 * the light target and 2..4 the heavy one: heavy first 3 times in 5 (bounds generous). */
static void test_weight_distribution(void **state)
{
    uint32_t seed = 12345;
    int heavy_first = 0;
    for (int i = 0; i < 4000; i++) {
        srv_rr_t rr[2] = {RR("light", 1, 0, 1), RR("heavy", 1, 0, 3)};
        srv_order(rr, 2, lcg, &seed);
        heavy_first += strcmp(rr[0].target, "heavy") == 0;
    }
    assert_true(heavy_first > 2100 && heavy_first < 2700);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_bound_keeps_best),
        cmocka_unit_test(test_weight_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
