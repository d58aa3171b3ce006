#include "admin/cli_csv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef struct {
    char *buf; /* CLI_CSV_MAX_FIELDS * (CLI_CSV_MAX_FIELD + 1) bytes, one slot per field */
    const char *fields[CLI_CSV_MAX_FIELDS];
    size_t n;
    size_t len; /* bytes in the current field */
} csv_row_t;

static int put_char(csv_row_t *r, char c)
{
    if (r->n >= CLI_CSV_MAX_FIELDS || r->len >= CLI_CSV_MAX_FIELD)
        return FG_EPARSE;
    r->buf[r->n * (CLI_CSV_MAX_FIELD + 1) + r->len++] = c;
    return 0;
}

static int end_field(csv_row_t *r)
{
    if (r->n >= CLI_CSV_MAX_FIELDS)
        return FG_EPARSE;
    char *slot = r->buf + r->n * (CLI_CSV_MAX_FIELD + 1);
    slot[r->len] = '\0';
    r->fields[r->n++] = slot;
    r->len = 0;
    return 0;
}

int cli_csv_parse(const char *data, size_t len, cli_csv_row_fn fn, void *ctx, size_t *bad_line)
{
    int ret = 0;
    csv_row_t r = {0};
    size_t i = 0, line = 1;
    r.buf = malloc((size_t)CLI_CSV_MAX_FIELDS * (CLI_CSV_MAX_FIELD + 1));
    if (!r.buf) {
        ret = -ENOMEM;
        goto out;
    }
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    if (i < len && data[i] == '#') { /* "#TYPE Microsoft.Rtc...": Windows PowerShell's type line */
        while (i < len && data[i] != '\n')
            i++;
        i++;
        line++;
    }
    while (i < len) {
        size_t start_line = line;
        bool any = false;
        r.n = 0;
        r.len = 0;
        /* One record. */
        for (;;) {
            if (i < len && data[i] == '"') {
                any = true;
                i++;
                for (;;) {
                    if (i >= len) {
                        *bad_line = start_line;
                        ret = FG_EPARSE; /* unterminated quote: a truncated file */
                        goto out;
                    }
                    if (data[i] == '"') {
                        if (i + 1 < len && data[i + 1] == '"') {
                            i += 2;
                            if ((ret = put_char(&r, '"')))
                                goto too_big;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (data[i] == '\n')
                        line++;
                    if ((ret = put_char(&r, data[i++])))
                        goto too_big;
                }
                /* Text after the closing quote up to the separator is kept, as Excel does. */
            }
            while (i < len && data[i] != ',' && data[i] != '\n') {
                if (data[i] != '\r' || (i + 1 < len && data[i + 1] != '\n')) {
                    any = true;
                    if ((ret = put_char(&r, data[i])))
                        goto too_big;
                }
                i++;
            }
            if ((ret = end_field(&r)))
                goto too_big;
            if (i < len && data[i] == ',') {
                any = true;
                i++;
                continue;
            }
            break;
        }
        if (i < len && data[i] == '\n') {
            i++;
            line++;
        }
        if (!any)
            continue; /* blank line */
        if ((ret = fn(ctx, start_line, r.n, r.fields)))
            goto out;
        continue;
    too_big:
        *bad_line = start_line;
        ret = FG_EPARSE;
        goto out;
    }
out:
    free(r.buf);
    return ret;
}
