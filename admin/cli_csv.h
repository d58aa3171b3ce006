/*
 * RFC 4180 CSV reader for the files PowerShell's Export-Csv writes: optional UTF-8 BOM, an
 * optional "#TYPE ..." first line (Windows PowerShell 5.1), a header row, quoted fields with ""
 * escapes and embedded newlines, CRLF or LF line ends.
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

/* 0, the callback's return value, or FG_EPARSE (unterminated quote, a field or record over the
   limits; *bad_line says where). Blank lines are skipped. */
int cli_csv_parse(const char *data, size_t len, cli_csv_row_fn fn, void *ctx, size_t *bad_line);
