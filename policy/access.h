/*
 * External access policy: Lync's EnableXmppAccess (lync-spec §4.2) at three scopes, the most
 * specific of which wins: `user:<bare jid>`, then `domain:<hosted domain>`, then `global`.
 * The global default is false, as in Lync.
 *
 * Keys are the strings of the `access` database. Nothing here allocates.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "policy/domain.h"

typedef enum {
    ACCESS_GLOBAL = 0,
    ACCESS_DOMAIN = 1,
    ACCESS_USER = 2,
} access_scope_t;

/* Buffer for any key; a stored user key is at most 500 octets (LMDB's key limit). */
#define ACCESS_KEY_MAX 1290
#define ACCESS_DEFAULT false

/*
 * Builds the normalised key for a scope: "global", "domain:<normalised domain>" or
 * "user:<localpart>@<normalised domain>" (the localpart is lower-cased ASCII; a resource is
 * refused). `subject` is ignored for ACCESS_GLOBAL. 0, FG_EDOMAIN or FG_EPARSE (why set).
 */
int access_key(access_scope_t scope, const char *subject, char *out, size_t outlen,
               const char **why);
/* Parses a key typed by an operator: "global", "domain:D", "user:JID" (or a bare JID/domain),
   normalising it into out and reporting its scope. 0, FG_EDOMAIN or FG_EPARSE. */
int access_key_parse(const char *in, access_scope_t *scope, char *out, size_t outlen,
                     const char **why);

/*
 * The most-specific-wins rule with the lookups supplied by the caller: `get` returns 1 and sets
 * *value when the key is stored, 0 when absent. Used by the store (admin) and the reader cache
 * (workers) so both answer the same. `jid` is a normalised bare JID "local@domain".
 */
typedef int (*access_get_fn)(void *arg, const char *key, bool *value);
bool access_resolve(const char *jid, access_get_fn get, void *arg);
