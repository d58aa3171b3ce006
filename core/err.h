/*
 * fedgate's one error vocabulary.
 *
 * Every function that can fail returns int: 0 on success, a negative errno for system errors, or
 * one of the FG_E* codes below (all under -1000). Third-party codes (LMDB, wolfSSL, expat, c-ares)
 * are translated into these at the module that calls the library, never further out.
 * Functions that report progress return >0 for bytes/items, 0 for none, <0 for an error.
 */
#pragma once

#include <errno.h>

enum {
    FG_OK = 0,
    FG_ERR_MIN = -1000,
    FG_ELIMIT = -1001,    /* a configured bound (size, count, depth, queue) was reached */
    FG_EPARSE = -1002,    /* malformed input: XML, base64, a record, a command line */
    FG_EDOMAIN = -1003,   /* not a valid domain name */
    FG_ECONFLICT = -1004, /* the name is already used by another object */
    FG_EREFUSED = -1005,  /* refused by a rule (negotiation matrix, policy, role) */
    FG_ESTALE = -1006,    /* the object changed since it was read */
    FG_ESTORE = -1007,    /* the store failed or is corrupt */
    FG_ESPACE = -1008,    /* the store is full */
    FG_EVERSION = -1009,  /* record or schema version this build cannot read */
    FG_ETLS = -1010,      /* TLS handshake, record or certificate failure */
    FG_EPROTO = -1011,    /* the peer broke the protocol */
    FG_EAUTH = -1012,     /* authentication failed */
    FG_ENOTFOUND = -1013, /* the named object does not exist */
    FG_ERR_MAX_ = -1014,
};

/* Static text for any code this file defines or any negative errno. Never NULL. */
const char *fg_strerror(int err);
