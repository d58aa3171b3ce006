/*
 * Shared machinery of the fedgate-admin verbs: exit codes, option parsing, diagnostics and the
 * aligned "Name : Value" list output that mirrors PowerShell's Format-List.
 *
 * Ownership: a cli_args_t borrows the argv strings it was parsed from (they live until exit);
 * it owns nothing and needs no cleanup. A cli_list_t copies the values it is given and is
 * printed and emptied by cli_list_print(). Nothing here allocates except cli_list_t values.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Process exit status of every verb (docs/admin.md "Exit status"). */
enum {
    CLI_EXIT_OK = 0,       /* done; warnings, if any, went to stderr as "warning: ..." lines */
    CLI_EXIT_REFUSED = 1,  /* refused by validation; nothing was saved */
    CLI_EXIT_USAGE = 2,    /* bad command line */
    CLI_EXIT_NOTFOUND = 3, /* the named object does not exist */
    CLI_EXIT_EXISTS = 4,   /* the object (or one of its domains) already exists */
    CLI_EXIT_STORE = 5,    /* the store could not be opened, read or written */
};

#define CLI_MAX_OCCURRENCES 256
#define CLI_MAX_POSITIONALS 8

typedef enum {
    CLI_OPT_FLAG,  /* --what-if */
    CLI_OPT_VALUE, /* --tls required, --tls=required; repeatable, every occurrence kept in order */
} cli_opt_kind_t;

typedef struct {
    const char *name; /* long name without the dashes */
    cli_opt_kind_t kind;
    const char *metavar; /* for the help text; NULL for flags */
    const char *help;
} cli_opt_t;

typedef struct {
    int opt;           /* index into the option table */
    const char *value; /* NULL for flags */
} cli_occurrence_t;

typedef struct {
    const cli_opt_t *opts;
    size_t n_opts;
    cli_occurrence_t occ[CLI_MAX_OCCURRENCES];
    size_t n_occ;
    const char *pos[CLI_MAX_POSITIONALS];
    size_t n_pos;
} cli_args_t;

/* Parses argv[0..argc) against the table (NULL-name terminated). "--" ends options. Prints one
   "error: ..." line and returns CLI_EXIT_USAGE on unknown options, missing values or too many
   positionals; 0 otherwise. -h/--help sets the flag "help" if the table has one. */
int cli_args_parse(cli_args_t *a, const cli_opt_t *opts, int argc, char **argv);
/* Last value given for an option, or NULL. */
const char *cli_args_value(const cli_args_t *a, const char *name);
bool cli_args_flag(const cli_args_t *a, const char *name);
/* Number of times the option was given. */
size_t cli_args_count(const cli_args_t *a, const char *name);
/* Fails with a usage error naming the option when it was given more than once. */
int cli_args_once(const cli_args_t *a, const char *name);
/* For a verb with actions ("partner new|set|..."): without an action, prints "usage: fedgate-admin
   <usage> ... (--help on each)" to stderr and returns CLI_EXIT_USAGE; for help, -h or --help,
   prints it to stdout and returns CLI_EXIT_OK; otherwise returns -1 and the action is argv[1]. */
int cli_actions_help(int argc, char **argv, const char *usage);
/* Prints "usage: fedgate-admin <usage>" and the option table to f. */
void cli_print_help(FILE *f, const char *usage, const char *summary, const cli_opt_t *opts);

/* One line on stderr: "error: ...". Returns `code` so callers can `return cli_fail(...)`. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Maps an fg error code (core/err.h) to the exit status. */
int cli_exit_from_err(int err);

/* Strict parsers for command-line values. 0 or FG_EPARSE. */
int cli_parse_u32(const char *s, uint32_t *out);
int cli_parse_bool(const char *s, bool *out);

/* Format-List style output: "Name<pad> : Value", names aligned within one object. */
#define CLI_LIST_MAX 48
typedef struct {
    const char *name[CLI_LIST_MAX]; /* borrowed, static strings */
    char *value[CLI_LIST_MAX];      /* owned copies */
    size_t n;
} cli_list_t;

void cli_list_add(cli_list_t *l, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prints the fields, then frees the values and empties the list. */
void cli_list_print(cli_list_t *l, FILE *f);

/* JSON string literal (with quotes) of s to f; control characters and non-ASCII escaped as UTF-8
   passes through unchanged. */
void cli_json_string(FILE *f, const char *s);

/* The OS user name recorded in the audit log: $SUDO_USER when root runs it (sudo), else the
   login of the real uid, else "uid:N". Borrowed static storage. */
const char *cli_os_user(void);
/* "os:" + cli_os_user(): the actor of every change made from the command line. */
const char *cli_actor(void);
