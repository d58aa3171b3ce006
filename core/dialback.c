#include "core/dialback.h"

#include "core/err.h"
#include "core/sha256.h"

#include <string.h>

static bool usable(const char *s)
{
    return s && *s && !strchr(s, ' ');
}

int dialback_key(const void *secret, size_t secret_len, const char *receiving,
                 const char *originating, const char *stream_id, char out[DIALBACK_KEY_LEN + 1])
{
    uint8_t digest[SHA256_LEN];
    char hmac_key[SHA256_HEX_LEN + 1];
    uint8_t pad[SHA256_BLOCK_LEN];
    uint8_t inner[SHA256_LEN];
    sha256_t s;

    if (!usable(receiving) || !usable(originating) || !usable(stream_id))
        return FG_EPARSE;
    /* XEP-0185 keys the HMAC with the hex text of the secret's hash, not the raw digest. */
    sha256(secret, secret_len, digest);
    sha256_hex(digest, sizeof(digest), hmac_key);
    /* The message is assembled piecewise so domain length needs no fixed buffer; a 64-byte key
       fits one block and needs no pre-hashing. */
    for (int i = 0; i < SHA256_BLOCK_LEN; i++)
        pad[i] = (uint8_t)hmac_key[i] ^ 0x36;
    sha256_init(&s);
    sha256_update(&s, pad, sizeof(pad));
    sha256_update(&s, receiving, strlen(receiving));
    sha256_update(&s, " ", 1);
    sha256_update(&s, originating, strlen(originating));
    sha256_update(&s, " ", 1);
    sha256_update(&s, stream_id, strlen(stream_id));
    sha256_final(&s, inner);
    for (int i = 0; i < SHA256_BLOCK_LEN; i++)
        pad[i] = (uint8_t)hmac_key[i] ^ 0x5c;
    sha256_init(&s);
    sha256_update(&s, pad, sizeof(pad));
    sha256_update(&s, inner, sizeof(inner));
    sha256_final(&s, digest);
    sha256_hex(digest, sizeof(digest), out);
    memset(hmac_key, 0, sizeof(hmac_key));
    memset(pad, 0, sizeof(pad));
    return 0;
}

bool dialback_equal_ct(const void *a, size_t a_len, const void *b, size_t b_len)
{
    const volatile uint8_t *x = a;
    const volatile uint8_t *y = b;
    uint8_t diff = 0;
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        diff |= x[i] ^ y[i];
    return diff == 0;
}

bool dialback_verify(const void *secret, size_t secret_len, const char *receiving,
                     const char *originating, const char *stream_id, const char *key,
                     size_t key_len)
{
    char expect[DIALBACK_KEY_LEN + 1];
    if (dialback_key(secret, secret_len, receiving, originating, stream_id, expect) != 0)
        return false;
    bool ok = dialback_equal_ct(expect, DIALBACK_KEY_LEN, key, key_len);
    memset(expect, 0, sizeof(expect));
    return ok;
}
