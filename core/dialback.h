/*
 * Server Dialback keys (XEP-0220 with the XEP-0185 recommended key):
 *   key = hex(HMAC-SHA256(hex(SHA256(secret)), receiving ' ' originating ' ' stream_id))
 * where both hex strings are lowercase. The same function serves the initiating role (computing the
 * key it sends in db:result) and the authoritative role (recomputing it to answer db:verify).
 *
 * All inputs are borrowed for the call only; nothing is allocated. The secret is the gateway's
 * DialbackPassphrase, shared by every node so that any node can answer for any other.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DIALBACK_KEY_LEN 64 /* lowercase hex of a SHA-256 HMAC, without NUL */

/* Writes the key and a NUL into out. 0, or FG_EPARSE if a domain or the id is empty or holds a
   space (the separator would become ambiguous). */
int dialback_key(const void *secret, size_t secret_len, const char *receiving,
                 const char *originating, const char *stream_id, char out[DIALBACK_KEY_LEN + 1]);

/* True iff key (key_len bytes, not necessarily NUL-terminated) is the key for these values. The
   comparison takes the same time whatever the position of the first differing byte. */
bool dialback_verify(const void *secret, size_t secret_len, const char *receiving,
                     const char *originating, const char *stream_id, const char *key,
                     size_t key_len);

/* Constant-time equality of two byte strings of the given lengths (the lengths are not secret). */
bool dialback_equal_ct(const void *a, size_t a_len, const void *b, size_t b_len);
