/*
 * Command-line options derived from the policy schema table (policy/schema.h): every writable
 * field with a `cli` name becomes `--<cli> VALUE`, parsed by schema_parse_value(), so the CLI
 * accepts and refuses exactly what the store, import and the web panel do. A secret field also
 * gets `--<cli>-file F` (first line of F), which keeps it out of the process list.
 *
 * Ownership: option tables are built into caller arrays; option and metavar strings are static.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "admin/cli_common.h"
#include "policy/report.h"
#include "policy/schema.h"

/* Appends the schema's options, then `extra` (NULL-name terminated), to out (cap entries, one
   kept for the terminator). Returns the count, or 0 when cap is too small. */
size_t cli_schema_opts(const schema_t *s, const cli_opt_t *extra, cli_opt_t *out, size_t cap);

/*
 * Applies every schema option of `a`, in command-line order, onto obj. A bad value adds one
 * REPORT_ERROR naming the option and the value and parsing goes on, so all bad options are
 * reported at once. Returns 0, FG_EREFUSED (bad values) or a usage exit status already printed
 * (CLI_EXIT_USAGE from an unreadable -file) as a positive number.
 */
int cli_schema_apply(const schema_t *s, void *obj, const cli_args_t *a, report_t *rep);

/* True when `a` holds at least one schema option. */
bool cli_schema_any(const schema_t *s, const cli_args_t *a);

/*
 * Format-List output of one object: `Identity` (when given) then every field in table order,
 * labelled with its Lync property name when it has one, else its JSON name. Secrets show as
 * "(set)"/"(unset)" unless show_secret.
 */
void cli_schema_print(const schema_t *s, const void *obj, const char *identity, bool show_secret);
