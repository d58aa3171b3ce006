/*
 * Control panel accounts, kept in the store's `users` database: name -> role and argon2id password
 * hash (libsodium crypto_pwhash_str). Two roles, as Lync's CsAdministrator and
 * CsViewOnlyAdministrator: "admin" may change everything, "viewer" may only look.
 *
 * Ownership: users_main() borrows argv and store_path for the length of the call.
 */
#pragma once

/*
 * Entry point of `fedgate-admin user ...`; argv[0] is "user".
 *   user add NAME --role admin|viewer [--password-file F | --generate]
 *   user passwd NAME [--password-file F | --generate]
 *   user role NAME admin|viewer
 *   user remove NAME
 *   user list [--json]
 * Without --password-file or --generate the password is read from the terminal twice (no echo).
 * --generate prints a random password once on stdout. Returns the CLI exit status: 0 done, 1
 * refused (weak password, bad name or role), 2 usage error, 3 no such user, 4 user exists,
 * 5 store error.
 */
int users_main(int argc, char **argv, const char *store_path);
