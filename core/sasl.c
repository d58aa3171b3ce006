#include "core/sasl.h"

#include "core/err.h"

#include <string.h>

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int sasl_b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len)
{
    size_t o = 0;
    *out_len = 0;
    if (in_len == 1 && in[0] == '=')
        return 0;
    if (in_len % 4 != 0)
        return FG_EPARSE;
    for (size_t i = 0; i < in_len; i += 4) {
        int v[4];
        int pad = 0;
        bool last = i + 4 == in_len;
        for (int j = 0; j < 4; j++) {
            unsigned char c = (unsigned char)in[i + j];
            if (c == '=' && last && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            /* '=' anywhere but the final one or two positions, or a data char after '=' */
            if (pad > 0)
                return FG_EPARSE;
            v[j] = b64_value(c);
            if (v[j] < 0)
                return FG_EPARSE;
        }
        if (pad == 1 && (v[2] & 0x3))
            return FG_EPARSE;
        if (pad == 2 && (v[1] & 0xf))
            return FG_EPARSE;
        size_t nbytes = (size_t)(3 - pad);
        if (o + nbytes > out_cap)
            return FG_ELIMIT;
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (uint8_t)(w >> 16);
        if (nbytes > 1)
            out[o++] = (uint8_t)(w >> 8);
        if (nbytes > 2)
            out[o++] = (uint8_t)w;
    }
    *out_len = o;
    return 0;
}

int sasl_b64_encode(const void *in, size_t n, char *out, size_t out_cap)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = in;
    size_t need = n == 0 ? 1 : (n + 2) / 3 * 4;
    size_t o = 0;
    if (need + 1 > out_cap)
        return FG_ELIMIT;
    if (n == 0) {
        out[0] = '=';
        out[1] = '\0';
        return 1;
    }
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            w |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            w |= p[i + 2];
        out[o++] = a[(w >> 18) & 63];
        out[o++] = a[(w >> 12) & 63];
        out[o++] = i + 1 < n ? a[(w >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? a[w & 63] : '=';
    }
    out[o] = '\0';
    return (int)o;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

bool sasl_domain_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len > 0 && a[a_len - 1] == '.')
        a_len--;
    if (b_len > 0 && b[b_len - 1] == '.')
        b_len--;
    if (a_len != b_len || a_len == 0)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return false;
    return true;
}

sasl_authz_t sasl_authzid_check(const uint8_t *authzid, size_t n, const char *claimed)
{
    if (n == 0)
        return SASL_AUTHZ_OK;
    if (n > SASL_MAX_AUTHZID)
        return SASL_AUTHZ_INVALID;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = authzid[i];
        /* No controls (a trailing LF included), spaces, DEL, or JID separators: a bare domain. */
        if (c <= 0x20 || c == 0x7f || c == '@' || c == '/' || c == '"' || c == '\'' || c == '<' ||
            c == '>' || c == '&')
            return SASL_AUTHZ_INVALID;
    }
    if (authzid[0] == '.' || (n >= 2 && authzid[n - 1] == '.' && authzid[n - 2] == '.'))
        return SASL_AUTHZ_INVALID;
    if (!claimed || !sasl_domain_equal((const char *)authzid, n, claimed, strlen(claimed)))
        return SASL_AUTHZ_MISMATCH;
    return SASL_AUTHZ_OK;
}

bool sasl_cert_covers(const char *const *names, size_t n, const char *domain)
{
    size_t dlen = domain ? strlen(domain) : 0;
    if (dlen == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *nm = names[i];
        size_t nlen = nm ? strlen(nm) : 0;
        if (nlen == 0)
            continue;
        if (sasl_domain_equal(nm, nlen, domain, dlen))
            return true;
        if (nlen > 2 && nm[0] == '*' && nm[1] == '.') {
            /* The wildcard replaces the whole first label of domain, which must be non-empty:
               the same rule as tls_identity_match_one(), so that the certificate tls/ reports as
               matching is the one the engine offers EXTERNAL for. Which names a CA may sign is
               the trust anchors' business, not this check's. */
            const char *dot = memchr(domain, '.', dlen);
            if (!dot || dot == domain)
                continue;
            size_t rest = dlen - (size_t)(dot + 1 - domain);
            if (sasl_domain_equal(nm + 2, nlen - 2, dot + 1, rest))
                return true;
        }
    }
    return false;
}
