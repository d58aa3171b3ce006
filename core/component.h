/*
 * XEP-0114 (Jabber Component Protocol) handshake, server side: the component proves it knows the
 * route's shared secret by sending hex(SHA1(stream_id + secret)) in <handshake/>. The stream engine
 * (core/stream.h, STREAM_COMPONENT) runs the protocol; this module only computes and checks the
 * digest. Inputs are borrowed for the call; nothing is allocated.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/sha1.h"

/* Writes the lowercase hex digest and a NUL into out. */
void component_digest(const char *stream_id, const void *secret, size_t secret_len,
                      char out[SHA1_HEX_LEN + 1]);

/* True iff digest (digest_len bytes) is the handshake value for these inputs. Hex letters match in
   either case (some components send upper case); the comparison time does not depend on where the
   first mismatch is. */
bool component_verify(const char *stream_id, const void *secret, size_t secret_len,
                      const char *digest, size_t digest_len);
