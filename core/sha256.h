/*
 * SHA-256 (FIPS 180-4) and HMAC-SHA-256 (RFC 2104), for XEP-0185 dialback keys.
 *
 * core may use only libc, so this small implementation lives here rather than in tls/. It is not
 * on a hot path (one key per dialback exchange). No allocation; all state is in the caller's
 * sha256_t.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN       32
#define SHA256_BLOCK_LEN 64
#define SHA256_HEX_LEN   64 /* lowercase hex digest, without NUL */

typedef struct {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t block[SHA256_BLOCK_LEN];
    size_t fill; /* bytes waiting in block */
} sha256_t;

void sha256_init(sha256_t *s);
void sha256_update(sha256_t *s, const void *data, size_t n);
void sha256_final(sha256_t *s, uint8_t out[SHA256_LEN]);
void sha256(const void *data, size_t n, uint8_t out[SHA256_LEN]);

/* HMAC-SHA-256 of msg under key (any length). */
void sha256_hmac(const void *key, size_t key_len, const void *msg, size_t msg_len,
                 uint8_t out[SHA256_LEN]);

/* Lowercase hex of n bytes into out (2n chars, then a NUL: out must hold 2n + 1). */
void sha256_hex(const uint8_t *bytes, size_t n, char *out);
