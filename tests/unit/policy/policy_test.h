/*
 * Helpers for the policy tests: a throw-away store directory under mkdtemp() and removal.
 */
#pragma once

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline char *test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/fgpolicy.XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void test_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4096 + 512];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        if (e->d_type == DT_DIR)
            test_rmtree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* True when some message of the report has the severity and contains the text. */
static inline int report_contains(const report_t *r, report_severity_t sev, const char *field,
                                  const char *text)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->msg[i].severity == sev && (!field || !strcmp(r->msg[i].field, field)) &&
            (!text || strstr(r->msg[i].text, text)))
            return 1;
    return 0;
}
