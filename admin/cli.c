#include "admin/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cli_common.h"

#if __has_include("admin/web.h")
#include "admin/web.h"
#define CLI_HAVE_WEB 1
#endif
#if __has_include("admin/users.h")
#include "admin/users.h"
#define CLI_HAVE_USERS 1
#endif

typedef int (*cli_verb_fn)(int argc, char **argv, const char *store_path);

typedef struct {
    const char *name;
    cli_verb_fn fn;
    const char *usage;
} cli_verb_t;

static const cli_verb_t verbs[] = {
    {"init", cli_init_main, "init [--demo]                      create the store with defaults"},
    {"status", cli_status_main, "status [--json]                    store path, schema, counters"},
    {"partner", cli_partner_main, "partner new|set|get|remove ...     XMPP federated partners"},
    {"gateway", cli_gateway_main,
     "gateway get|set ...                gateway settings (singleton)"},
    {"domain", cli_domain_main, "domain new|set|get|remove ...      hosted domains"},
    {"access", cli_access_main, "access get|set|remove|check ...    EnableXmppAccess policy"},
    {"ledger", cli_ledger_main, "ledger get|remove ...              invitations"},
    {"export", cli_export_main, "export [-o FILE]                   whole store as JSON"},
    {"import", cli_import_main, "import FILE [--what-if]            JSON or PowerShell CSV"},
    {"audit", cli_audit_main, "audit [--since T] [--json]         change log"},
#ifdef CLI_HAVE_WEB
    {"serve", web_main, "serve [--listen ADDR:PORT] ...     web control panel"},
#endif
#ifdef CLI_HAVE_USERS
    {"user", users_main, "user add|passwd|role|remove|list   control panel accounts"},
#endif
};

static void usage(FILE *f)
{
    fprintf(f, "usage: fedgate-admin [--store DIR] VERB [ARGS...]\n\n"
               "Edits the fedgate policy store. The store is --store DIR, else $FEDGATE_STORE,\n"
               "else " CLI_DEFAULT_STORE ".\n\nverbs:\n");
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        fprintf(f, "  %s\n", verbs[i].usage);
    fprintf(f,
            "\n`fedgate-admin VERB --help` describes each verb. Exit status: 0 done, 1 refused by\n"
            "validation, 2 usage error, 3 not found, 4 already exists, 5 store error.\n");
}

int cli_main(int argc, char **argv)
{
    const char *store = NULL;
    /* --store is accepted anywhere before "--" so it composes with every verb, including the
       control panel's; it is removed before the verb sees its arguments. */
    int n = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            while (i < argc)
                argv[n++] = argv[i++];
            break;
        }
        if (strcmp(argv[i], "--store") == 0) {
            if (i + 1 >= argc)
                return cli_fail(CLI_EXIT_USAGE, "option --store needs a value (DIR)");
            store = argv[++i];
            continue;
        }
        if (strncmp(argv[i], "--store=", 8) == 0) {
            store = argv[i] + 8;
            continue;
        }
        argv[n++] = argv[i];
    }
    argc = n;
    argv[argc] = NULL;
    if (store && !*store)
        return cli_fail(CLI_EXIT_USAGE, "option --store: empty directory name");
    if (!store) {
        store = getenv("FEDGATE_STORE");
        if (!store || !*store)
            store = CLI_DEFAULT_STORE;
    }
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "help") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(verb, "version") == 0 || strcmp(verb, "--version") == 0) {
        printf("fedgate-admin 0.1.0\n");
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (strcmp(verbs[i].name, verb) == 0)
            return verbs[i].fn(argc - 1, argv + 1, store);
    return cli_fail(CLI_EXIT_USAGE, "unknown verb '%s' (fedgate-admin help lists them)", verb);
}
