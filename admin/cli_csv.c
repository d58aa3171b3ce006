#include "admin/cli_csv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
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
    /* A NUL would silently cut the field short: "evil.example\0.good.example". */
    if (c == '\0' || r->n >= CLI_CSV_MAX_FIELDS || r->len >= CLI_CSV_MAX_FIELD)
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

/* ',' unless the header line has more ';' than ',' outside quotes: Export-Csv -UseCulture in
   locales whose list separator is ';' (de-DE, fr-FR, ...). */
static char detect_sep(const char *data, size_t i, size_t len)
{
    size_t commas = 0, semis = 0;
    bool quoted = false;
    for (; i < len && (quoted || data[i] != '\n'); i++) {
        if (data[i] == '"')
            quoted = !quoted;
        else if (!quoted && data[i] == ',')
            commas++;
        else if (!quoted && data[i] == ';')
            semis++;
    }
    return semis > commas ? ';' : ',';
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
    const char sep = detect_sep(data, i, len);
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
                            if (put_char(&r, '"'))
                                goto too_big;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (data[i] == '\n')
                        line++;
                    if (put_char(&r, data[i++]))
                        goto too_big;
                }
                /* Text after the closing quote up to the separator is kept, as Excel does. */
            }
            while (i < len && data[i] != sep && data[i] != '\n') {
                if (data[i] != '\r' || (i + 1 < len && data[i + 1] != '\n')) {
                    any = true;
                    if (put_char(&r, data[i]))
                        goto too_big;
                }
                i++;
            }
            if (end_field(&r))
                goto too_big;
            if (i < len && data[i] == sep) {
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

int cli_csv_utf16_to_utf8(const char *data, size_t len, char **out, size_t *outlen)
{
    const unsigned char *u = (const unsigned char *)data;
    if (len < 2 || u[0] != 0xFF || u[1] != 0xFE)
        return 1;
    /* Every UTF-16 unit becomes at most 3 UTF-8 bytes (a surrogate pair, 4 bytes for 2 units). */
    char *o = malloc((len / 2) * 3 + 1);
    size_t n = 0;
    if (!o)
        return -ENOMEM;
    for (size_t i = 2; i + 1 < len; i += 2) {
        uint32_t c = (uint32_t)u[i] | (uint32_t)u[i + 1] << 8;
        if (c >= 0xD800 && c <= 0xDBFF && i + 3 < len) {
            uint32_t lo = (uint32_t)u[i + 2] | (uint32_t)u[i + 3] << 8;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
                i += 2;
            }
        }
        if (c >= 0xD800 && c <= 0xDFFF)
            c = 0xFFFD; /* a lone surrogate */
        if (c < 0x80) {
            o[n++] = (char)c;
        } else if (c < 0x800) {
            o[n++] = (char)(0xC0 | c >> 6);
            o[n++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            o[n++] = (char)(0xE0 | c >> 12);
            o[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            o[n++] = (char)(0x80 | (c & 0x3F));
        } else {
            o[n++] = (char)(0xF0 | c >> 18);
            o[n++] = (char)(0x80 | ((c >> 12) & 0x3F));
            o[n++] = (char)(0x80 | ((c >> 6) & 0x3F));
            o[n++] = (char)(0x80 | (c & 0x3F));
        }
    }
    o[n] = '\0';
    *out = o;
    *outlen = n;
    return 0;
}
