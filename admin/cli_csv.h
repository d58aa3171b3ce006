/*
 * RFC 4180 CSV reader for the files PowerShell's Export-Csv writes: optional UTF-8 BOM, an
 * optional "#TYPE ..." first line (Windows PowerShell 5.1), a header row, quoted fields with ""
 * escapes and embedded newlines, CRLF or LF line ends, ',' or (Export-Csv -UseCulture in many
 * European locales) ';' as separator, chosen from the header row.
 *
 * Ownership: cli_csv_parse() borrows `data` for the length of the call; the field strings handed to
 * the row callback are borrowed until the callback returns.
 */
#pragma once

#include <stddef.h>

#define CLI_CSV_MAX_FIELDS 64
#define CLI_CSV_MAX_FIELD  4096

/* Called once per record (the header row included, as line 1 after any #TYPE line). `line` is the
   1-based line number where the record starts. A non-zero return stops parsing and is returned. */
typedef int (*cli_csv_row_fn)(void *ctx, size_t line, size_t n, const char *const *fields);

/* 0, the callback's return value, or FG_EPARSE (unterminated quote, a NUL byte, a field or record
   over the limits; *bad_line says where). Blank lines are skipped. */
int cli_csv_parse(const char *data, size_t len, cli_csv_row_fn fn, void *ctx, size_t *bad_line);

/* Export-Csv -Encoding Unicode writes UTF-16LE with a BOM: converts such data to UTF-8 in a new
   heap buffer (*out, NUL-terminated, the caller frees it). 0 converted, 1 not UTF-16LE (nothing
   allocated), -ENOMEM. Lone surrogates become U+FFFD. */
int cli_csv_utf16_to_utf8(const char *data, size_t len, char **out, size_t *outlen);
