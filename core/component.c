#include "core/component.h"

#include "core/dialback.h"

#include <string.h>

void component_digest(const char *stream_id, const void *secret, size_t secret_len,
                      char out[SHA1_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    uint8_t d[SHA1_LEN];
    sha1_t s;
    sha1_init(&s);
    sha1_update(&s, stream_id, strlen(stream_id));
    sha1_update(&s, secret, secret_len);
    sha1_final(&s, d);
    for (int i = 0; i < SHA1_LEN; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[SHA1_HEX_LEN] = '\0';
}

bool component_verify(const char *stream_id, const void *secret, size_t secret_len,
                      const char *digest, size_t digest_len)
{
    char expect[SHA1_HEX_LEN + 1];
    char got[SHA1_HEX_LEN];
    if (digest_len != SHA1_HEX_LEN)
        return false;
    component_digest(stream_id, secret, secret_len, expect);
    /* Fold upper-case hex letters without a data-dependent branch. */
    for (size_t i = 0; i < SHA1_HEX_LEN; i++) {
        unsigned char c = (unsigned char)digest[i];
        unsigned char is_upper = (unsigned char)(((unsigned)(c - 'A') < 6u) ? 0x20 : 0);
        got[i] = (char)(c | is_upper);
    }
    bool ok = dialback_equal_ct(expect, SHA1_HEX_LEN, got, SHA1_HEX_LEN);
    memset(expect, 0, sizeof(expect));
    return ok;
}
