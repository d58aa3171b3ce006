#include "io/metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define METRICS_MAX_COLLECTORS 8

typedef struct {
    char *name;
    char *labels;
    char *help;
    metric_type_t type;
} series_t;

struct metrics {
    unsigned nslots;
    unsigned max;
    _Atomic unsigned n; /* published series: fields of [0, n) are complete */
    series_t *series;
    _Atomic int64_t *values; /* [slot * max + id] */
    pthread_mutex_t mu;
    struct {
        metrics_collect_fn fn;
        void *arg;
    } coll[METRICS_MAX_COLLECTORS];
    unsigned ncoll;
};

int metrics_create(metrics_t **out, unsigned nslots, unsigned max_series)
{
    metrics_t *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->nslots = nslots ? nslots : 1;
    m->max = max_series ? max_series : 1;
    m->series = calloc(m->max, sizeof(*m->series));
    m->values = calloc((size_t)m->nslots * m->max, sizeof(*m->values));
    pthread_mutex_init(&m->mu, NULL);
    if (!m->series || !m->values) {
        metrics_destroy(m);
        return -ENOMEM;
    }
    *out = m;
    return 0;
}

void metrics_destroy(metrics_t *m)
{
    if (!m)
        return;
    if (m->series) {
        for (unsigned i = 0; i < m->max; i++) {
            free(m->series[i].name);
            free(m->series[i].labels);
            free(m->series[i].help);
        }
    }
    free(m->series);
    free((void *)m->values);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static int valid_name(const char *s)
{
    if (!s || !*s || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return 0;
    return 1;
}

int metrics_register(metrics_t *m, metric_type_t type, const char *name, const char *labels,
                     const char *help)
{
    int ret;
    if (!valid_name(name))
        return -EINVAL;
    if (!labels)
        labels = "";
    pthread_mutex_lock(&m->mu);
    unsigned n = atomic_load_explicit(&m->n, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(m->series[i].name, name) == 0 && strcmp(m->series[i].labels, labels) == 0) {
            ret = (int)i;
            goto out;
        }
    }
    if (n >= m->max) {
        ret = FG_ELIMIT;
        goto out;
    }
    series_t *s = &m->series[n];
    s->name = strdup(name);
    s->labels = strdup(labels);
    s->help = strdup(help ? help : "");
    s->type = type;
    if (!s->name || !s->labels || !s->help) {
        free(s->name);
        free(s->labels);
        free(s->help);
        memset(s, 0, sizeof(*s));
        ret = -ENOMEM;
        goto out;
    }
    atomic_store_explicit(&m->n, n + 1, memory_order_release);
    ret = (int)n;
out:
    pthread_mutex_unlock(&m->mu);
    return ret;
}

void metrics_add(metrics_t *m, unsigned slot, int id, int64_t v)
{
    if (slot >= m->nslots || id < 0 || (unsigned)id >= m->max)
        return;
    _Atomic int64_t *p = &m->values[(size_t)slot * m->max + (unsigned)id];
    /* Single writer per slot: a relaxed load+store is enough and avoids a locked instruction. */
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

void metrics_set(metrics_t *m, unsigned slot, int id, int64_t v)
{
    if (slot >= m->nslots || id < 0 || (unsigned)id >= m->max)
        return;
    atomic_store_explicit(&m->values[(size_t)slot * m->max + (unsigned)id], v,
                          memory_order_relaxed);
}

int64_t metrics_value(metrics_t *m, int id)
{
    int64_t sum = 0;
    if (id < 0 || (unsigned)id >= m->max)
        return 0;
    for (unsigned s = 0; s < m->nslots; s++)
        sum += atomic_load_explicit(&m->values[(size_t)s * m->max + (unsigned)id],
                                    memory_order_relaxed);
    return sum;
}

int metrics_add_collector(metrics_t *m, metrics_collect_fn fn, void *arg)
{
    int ret = 0;
    pthread_mutex_lock(&m->mu);
    if (m->ncoll >= METRICS_MAX_COLLECTORS) {
        ret = FG_ELIMIT;
    } else {
        m->coll[m->ncoll].fn = fn;
        m->coll[m->ncoll].arg = arg;
        m->ncoll++;
    }
    pthread_mutex_unlock(&m->mu);
    return ret;
}

void metrics_escape_label(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    if (!outlen)
        return;
    for (; *in && o + 2 < outlen; in++) {
        if (*in == '\\' || *in == '"') {
            out[o++] = '\\';
            out[o++] = *in;
        } else if (*in == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else {
            out[o++] = *in;
        }
    }
    out[o] = '\0';
}

static int appendf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(buf_t *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(line))
        n = sizeof(line) - 1;
    return buf_append(b, line, (size_t)n);
}

int metrics_render(metrics_t *m, buf_t *out)
{
    int ret = 0;
    pthread_mutex_lock(&m->mu);
    unsigned n = atomic_load_explicit(&m->n, memory_order_acquire);
    for (unsigned i = 0; i < n && ret == 0; i++) {
        series_t *s = &m->series[i];
        /* One HELP/TYPE header per family, written at the family's first series. */
        bool first = true;
        for (unsigned j = 0; j < i; j++)
            if (strcmp(m->series[j].name, s->name) == 0) {
                first = false;
                break;
            }
        if (!first)
            continue;
        ret = appendf(out, "# HELP %s %s\n# TYPE %s %s\n", s->name, s->help, s->name,
                      s->type == METRIC_COUNTER ? "counter" : "gauge");
        for (unsigned j = i; j < n && ret == 0; j++) {
            series_t *t = &m->series[j];
            if (strcmp(t->name, s->name) != 0)
                continue;
            int64_t v = metrics_value(m, (int)j);
            if (t->labels[0])
                ret = appendf(out, "%s{%s} %lld\n", t->name, t->labels, (long long)v);
            else
                ret = appendf(out, "%s %lld\n", t->name, (long long)v);
        }
    }
    for (unsigned c = 0; c < m->ncoll && ret == 0; c++)
        m->coll[c].fn(m->coll[c].arg, out);
    pthread_mutex_unlock(&m->mu);
    return ret;
}
