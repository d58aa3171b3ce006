#include "policy/report.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

void report_init(report_t *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    r->max = max ? max : REPORT_DEFAULT_MAX;
}

void report_free(report_t *r)
{
    free(r->msg);
    r->msg = NULL;
    r->n = r->cap = 0;
    r->dropped = r->errors = r->warnings = 0;
}

void report_clear(report_t *r)
{
    r->n = 0;
    r->dropped = r->errors = r->warnings = 0;
    r->subject[0] = '\0';
}

void report_set_subject(report_t *r, const char *subject)
{
    if (r)
        copy_str(r->subject, sizeof(r->subject), subject);
}

void report_add(report_t *r, report_severity_t sev, const char *field, const char *fmt, ...)
{
    if (!r)
        return;
    if (sev == REPORT_ERROR)
        r->errors++;
    else if (sev == REPORT_WARNING)
        r->warnings++;
    if (r->n >= r->max) {
        r->dropped++;
        return;
    }
    if (r->n == r->cap) {
        /* Grow geometrically but never past max: the report stays bounded. */
        size_t cap = r->cap ? r->cap * 2 : 8;
        if (cap > r->max)
            cap = r->max;
        report_msg_t *m = realloc(r->msg, cap * sizeof(*m));
        if (!m) {
            r->dropped++;
            return;
        }
        r->msg = m;
        r->cap = cap;
    }
    report_msg_t *m = &r->msg[r->n++];
    m->severity = sev;
    copy_str(m->field, sizeof(m->field), field);
    copy_str(m->subject, sizeof(m->subject), r->subject);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->text, sizeof(m->text), fmt, ap);
    va_end(ap);
}

const char *report_severity_name(report_severity_t s)
{
    switch (s) {
    case REPORT_ERROR:
        return "error";
    case REPORT_WARNING:
        return "warning";
    case REPORT_INFO:
        return "info";
    }
    return "?";
}

size_t report_format(const report_msg_t *m, char *out, size_t outlen)
{
    int n = snprintf(out, outlen, "%s: %s%s%s%s%s", report_severity_name(m->severity), m->subject,
                     m->subject[0] ? ": " : "", m->field, m->field[0] ? ": " : "", m->text);
    return n < 0 ? 0 : (size_t)n;
}
