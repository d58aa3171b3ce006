#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "io/metrics.h"

static void test_register_and_sum(void **state)
{
    metrics_t *m;
    assert_int_equal(metrics_create(&m, 3, 4), 0);
    int a = metrics_register(m, METRIC_COUNTER, "fedgate_stanzas_total", "dir=\"in\"", "stanzas");
    int b = metrics_register(m, METRIC_COUNTER, "fedgate_stanzas_total", "dir=\"out\"", "stanzas");
    int g = metrics_register(m, METRIC_GAUGE, "fedgate_streams", NULL, "open streams");
    assert_true(a >= 0 && b >= 0 && g >= 0);
    /* Same name and labels: same series. */
    assert_int_equal(
        metrics_register(m, METRIC_COUNTER, "fedgate_stanzas_total", "dir=\"in\"", "x"), a);
    assert_int_equal(metrics_register(m, METRIC_COUNTER, "bad name", NULL, NULL), -EINVAL);
    assert_true(metrics_register(m, METRIC_COUNTER, "c4", NULL, NULL) >= 0);
    assert_int_equal(metrics_register(m, METRIC_COUNTER, "c5", NULL, NULL), FG_ELIMIT);

    metrics_add(m, 0, a, 5);
    metrics_add(m, 1, a, 7);
    metrics_add(m, 2, b, 1);
    metrics_set(m, 0, g, 3);
    metrics_set(m, 1, g, 4);
    metrics_add(m, 9, a, 100); /* unknown slot: ignored */
    assert_int_equal(metrics_value(m, a), 12);
    assert_int_equal(metrics_value(m, g), 7);

    buf_t out;
    buf_init(&out, 1 << 16);
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    const char *txt = (const char *)out.data;
    assert_non_null(strstr(txt, "# TYPE fedgate_stanzas_total counter\n"
                                "fedgate_stanzas_total{dir=\"in\"} 12\n"
                                "fedgate_stanzas_total{dir=\"out\"} 1\n"));
    assert_non_null(strstr(txt, "# TYPE fedgate_streams gauge\nfedgate_streams 7\n"));
    /* One header per family. */
    const char *first = strstr(txt, "# TYPE fedgate_stanzas_total");
    assert_null(strstr(first + 1, "# TYPE fedgate_stanzas_total"));
    buf_free(&out);
    metrics_destroy(m);
}

static void collect(void *arg, buf_t *out)
{
    buf_append_str(out, (const char *)arg);
}

static void test_collector_and_escape(void **state)
{
    metrics_t *m;
    assert_int_equal(metrics_create(&m, 1, 4), 0);
    assert_int_equal(metrics_add_collector(m, collect, "extra_metric 1\n"), 0);
    buf_t out;
    buf_init(&out, 4096);
    assert_int_equal(metrics_render(m, &out), 0);
    assert_int_equal(out.len, strlen("extra_metric 1\n"));
    buf_free(&out);
    char esc[64];
    metrics_escape_label("a\"b\\c\nd", esc, sizeof(esc));
    assert_string_equal(esc, "a\\\"b\\\\c\\nd");
    metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_and_sum),
        cmocka_unit_test(test_collector_and_escape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
