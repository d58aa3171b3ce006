/*
 * Store plumbing shared by the verbs: opening the store with one clear line when it cannot be,
 * printing a validation report, turning a policy return code into the exit status, the --what-if
 * output, and the verbs about the store itself (init, status, audit).
 *
 * Ownership: cli_store_open() hands the caller a store_t to close with store_close(). Reports are
 * owned by the caller; the printers only read them.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "policy/report.h"
#include "policy/store.h"

typedef enum {
    CLI_STORE_READ = 0,   /* the store must exist; opened read-only */
    CLI_STORE_WRITE = 1,  /* the store must exist */
    CLI_STORE_CREATE = 2, /* created when missing (init) */
} cli_store_mode_t;

/* 0 and *out, or the exit status after printing one "error:" line naming the store. */
int cli_store_open(const char *path, cli_store_mode_t mode, store_t **out);

/* Prints every message: errors and warnings to stderr ("error: ...", "warning: ..."), info
   lines to stdout. A report whose messages were cut at its bound says how many were left out. */
void cli_report_print(const report_t *rep);

/*
 * The exit status for a policy return code, after printing the report. When rc is an error but
 * the report holds no error line, prints one built from rc and `subject` so the operator never
 * gets a bare exit status.
 */
int cli_finish(int rc, const report_t *rep, const char *subject);
/* cli_finish() for an operation on one named object: a plain FG_ENOTFOUND (no error line in the
   report) becomes "error: <what> <subject>: <missing>" and CLI_EXIT_NOTFOUND. */
int cli_finish_found(int rc, const report_t *rep, const char *what, const char *subject,
                     const char *missing);

/* For --what-if: the before/after JSON of ctx->change on stdout (the store already reported
   "info: what-if: would ..."), or "what if: <verb> <subject>: no change". */
void cli_print_what_if(const store_ctx_t *ctx, const char *verb, const char *subject);

/* Normalises a domain given on the command line into out (DOMAIN_BUF bytes). 0, or the exit
   status after printing `error: <what>: invalid domain "x": <why>`. */
int cli_domain_arg(const char *what, const char *in, char *out);

/* Writes the buffer to stdout; 0 or CLI_EXIT_STORE when stdout failed (a full disk, a closed
   pipe), so scripts never take a cut JSON document for a whole one. */
int cli_write_stdout(const buf_t *b);

/* Reads a whole file ("-" = stdin) into a NUL-terminated heap buffer of at most max bytes.
   0, -errno, or FG_ELIMIT. The caller frees *out. */
int cli_read_file(const char *path, size_t max, char **out, size_t *len);

/* Reads a secret from the first line of a file (trailing CR/LF removed). 0 or exit status. */
int cli_read_secret_file(const char *option, const char *path, char *out, size_t outlen);

/*
 * Parses an --since value into Unix milliseconds: "2026-11-24", "2026-11-24T20:15:00Z" (UTC,
 * seconds optional), "@1700000000" (Unix seconds), or an age "90s", "15m", "2h", "7d" before `now`.
 * 0 or FG_EPARSE.
 */
int cli_parse_time(const char *s, int64_t now_ms, int64_t *out_ms);
