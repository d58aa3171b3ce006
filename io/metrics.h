/*
 * metrics: a Prometheus text-format registry. Series are registered once (name + fixed label text),
 * then updated on the hot path without locks: every writer thread has its own slot (a worker index,
 * plus one for the control thread) and only that thread writes it; a scrape sums the slots.
 * Collectors add families computed at scrape time (e.g. the io counters of every worker).
 *
 * Ownership: the registry copies names, labels and help text. Rendered text is appended to a
 * caller-owned buf_t. metrics_register and metrics_render take an internal mutex (never on the hot
 * path); metrics_add/metrics_set take none.
 */
#pragma once

#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct metrics metrics_t;

typedef enum { METRIC_COUNTER = 0, METRIC_GAUGE } metric_type_t;

/* nslots writer threads, at most max_series series. 0 or -ENOMEM. */
int metrics_create(metrics_t **out, unsigned nslots, unsigned max_series);
void metrics_destroy(metrics_t *m);
/*
 * Registers a series, or returns the id of the same (name, labels) registered before. `labels` is
 * the inside of the braces, e.g. `dir="in",partner="example.org"`, or NULL. Returns the id (>= 0),
 * FG_ELIMIT when full, -EINVAL for a name that is not a valid metric name.
 */
int metrics_register(metrics_t *m, metric_type_t type, const char *name, const char *labels,
                     const char *help);
/* Hot path: adds v to this slot's value of series id. Only the thread owning `slot` may call. */
void metrics_add(metrics_t *m, unsigned slot, int id, int64_t v);
/* Sets this slot's value (gauges: the scrape shows the sum of all slots). */
void metrics_set(metrics_t *m, unsigned slot, int id, int64_t v);
/* The sum over slots, as a scrape would show it. */
int64_t metrics_value(metrics_t *m, int id);

typedef void (*metrics_collect_fn)(void *arg, buf_t *out);
/* Adds a scrape-time collector (appends complete families to out). 0 or FG_ELIMIT. */
int metrics_add_collector(metrics_t *m, metrics_collect_fn fn, void *arg);
/* Appends the whole exposition. 0, FG_ELIMIT when out's bound is reached, -ENOMEM. */
int metrics_render(metrics_t *m, buf_t *out);
/* Escapes a label value (\\, \", \n) into out (NUL-terminated, truncated to outlen). */
void metrics_escape_label(const char *in, char *out, size_t outlen);
