/*
 * Validation report: the list of messages a check produces, each naming the setting to change.
 *
 * Every validating function of policy/ appends to a report_t instead of stopping at the first
 * problem, so the CLI, the web panel and import can show all of them at once. A report is bounded
 * (`max` messages; later ones are counted in `dropped`, never lost silently).
 *
 * Ownership: the caller owns the report_t; report_free() releases the message array, which
 * report_add() allocates on first use. Message strings live inside the report until
 * report_clear()/report_free().
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    REPORT_ERROR = 0,   /* the change is refused, nothing is saved */
    REPORT_WARNING = 1, /* saved, but the operator should look at it */
    REPORT_INFO = 2,    /* what a change did or would do (--what-if) */
} report_severity_t;

#define REPORT_FIELD_MAX   48
#define REPORT_SUBJECT_MAX 288
#define REPORT_TEXT_MAX    320
#define REPORT_DEFAULT_MAX 1000

typedef struct {
    report_severity_t severity;
    char field[REPORT_FIELD_MAX];     /* JSON name of the setting ("tls"), or "" */
    char subject[REPORT_SUBJECT_MAX]; /* what it is about: "fabrikam.com", "entry 3", or "" */
    char text[REPORT_TEXT_MAX];       /* one sentence, says what to change */
} report_msg_t;

typedef struct {
    report_msg_t *msg; /* n entries */
    size_t n;
    size_t cap;
    size_t max;     /* bound on n */
    size_t dropped; /* messages past max */
    size_t errors;  /* count of REPORT_ERROR, including dropped ones */
    size_t warnings;
    char subject[REPORT_SUBJECT_MAX]; /* default subject for report_add() */
} report_t;

/* max 0 means REPORT_DEFAULT_MAX. Never fails; memory is taken on the first report_add(). */
void report_init(report_t *r, size_t max);
void report_free(report_t *r);
void report_clear(report_t *r);
/* Sets the subject copied into every following message ("" to clear). */
void report_set_subject(report_t *r, const char *subject);
/* Appends a message. A NULL report is allowed and ignored (callers that only want the verdict). */
void report_add(report_t *r, report_severity_t sev, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline bool report_has_errors(const report_t *r)
{
    return r && r->errors > 0;
}
/* "error: fabrikam.com: tls: ..." / "warning: ..." / "info: ..." — the line the CLI prints. */
size_t report_format(const report_msg_t *m, char *out, size_t outlen);
const char *report_severity_name(report_severity_t s); /* "error", "warning", "info" */
