/*
 * fedgate-admin's command line: resolves the store path and dispatches a verb to its module
 * (cli_partner, cli_gateway, cli_domain, cli_access, cli_io, cli_store; serve and user go to the
 * control panel's web_main and users_main).
 *
 * Every *_main function borrows argv (argv[0] is the verb or noun) and store_path for the length
 * of the call and returns the process exit status of cli_common.h.
 */
#pragma once

/* Default store directory when neither --store nor $FEDGATE_STORE is given. */
#define CLI_DEFAULT_STORE "/var/lib/fedgate"

/* The whole program: `fedgate-admin [--store DIR] VERB ...`. */
int cli_main(int argc, char **argv);

int cli_init_main(int argc, char **argv, const char *store_path);
int cli_status_main(int argc, char **argv, const char *store_path);
int cli_partner_main(int argc, char **argv, const char *store_path);
int cli_gateway_main(int argc, char **argv, const char *store_path);
int cli_domain_main(int argc, char **argv, const char *store_path);
int cli_access_main(int argc, char **argv, const char *store_path);
int cli_ledger_main(int argc, char **argv, const char *store_path);
int cli_export_main(int argc, char **argv, const char *store_path);
int cli_import_main(int argc, char **argv, const char *store_path);
int cli_audit_main(int argc, char **argv, const char *store_path);
