/*
 * SHA-1 (FIPS 180-4), only for the XEP-0114 component handshake, whose wire format fixes the
 * algorithm: hex(SHA1(stream id + secret)). Not used for anything that needs collision resistance.
 * No allocation; all state is in the caller's sha1_t.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SHA1_LEN     20
#define SHA1_HEX_LEN 40

typedef struct {
    uint32_t h[5];
    uint64_t total;
    uint8_t block[64];
    size_t fill;
} sha1_t;

void sha1_init(sha1_t *s);
void sha1_update(sha1_t *s, const void *data, size_t n);
void sha1_final(sha1_t *s, uint8_t out[SHA1_LEN]);
void sha1(const void *data, size_t n, uint8_t out[SHA1_LEN]);
