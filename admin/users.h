/*
 * Control panel accounts, kept in the store's `users` database: name -> role and argon2id password
 * hash (libsodium crypto_pwhash_str). Two roles, as Lync's CsAdministrator and
 * CsViewOnlyAdministrator: "admin" may change everything, "viewer" may only look. Every account
 * change is audited in the same transaction, without the hash.
 *
 * Ownership: users_main() borrows argv and store_path for the length of the call; the other
 * functions borrow their arguments for the call and write only to caller buffers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct store;

#define USERS_NAME_MAX      64   /* [a-z0-9._-], starting with a letter or digit */
#define USERS_PASSWORD_MIN  10   /* octets */
#define USERS_PASSWORD_MAX  1024 /* octets */
#define USERS_GENERATED_LEN 24   /* characters of a --generate password (144 bits) */

typedef enum {
    USERS_ROLE_VIEWER = 0,
    USERS_ROLE_ADMIN = 1,
} users_role_t;

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

const char *users_role_name(users_role_t r);            /* "admin", "viewer" */
int users_role_parse(const char *s, users_role_t *out); /* 0 or FG_EPARSE */
/* 0, or FG_EPARSE with a static reason in *why. */
int users_name_check(const char *name, const char **why);

/* Creates an account (FG_ECONFLICT if the name exists; FG_EREFUSED for a bad name or a password
   outside the length bounds, with *why set). `actor` is recorded in the audit log. */
int users_add(struct store *s, const char *actor, const char *name, users_role_t role,
              const char *password, const char **why);
/* Checks a password. 0 with *role set, FG_EAUTH for a wrong password or an unknown name (the
   same work is done in both cases so the answer's timing does not tell them apart). */
int users_verify(struct store *s, const char *name, const char *password, users_role_t *role);
/* The account's current role. 0, FG_ENOTFOUND. */
int users_get_role(struct store *s, const char *name, users_role_t *role);
/* The role and a stamp of the account's current password hash (a hash of the hash): a session
   remembers the stamp it signed in with, and a password changed since then no longer matches.
   0, FG_ENOTFOUND. */
#define USERS_STAMP_LEN 16
int users_get(struct store *s, const char *name, users_role_t *role,
              unsigned char stamp[USERS_STAMP_LEN]);
