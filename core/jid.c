#include "core/jid.h"

#include "core/err.h"

#include <string.h>

/* Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid (overlong forms, surrogates and
   code points past U+10FFFF are invalid, as in RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0;
        if (c == 0xED && s[1] >= 0xA0)
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;
        if (c == 0xF4 && s[1] >= 0x90)
            return 0;
        return 4;
    }
    return 0;
}

/* Valid UTF-8 with no C0/C1 control characters or DEL, and (for the local and domain parts) no
   space, which no PRECIS profile of RFC 7622 admits there. */
static bool text_ok(const char *s, size_t n, bool allow_space)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (k == 0)
            return false;
        if (k == 1 && (u[i] < 0x20 || u[i] == 0x7F || (u[i] == ' ' && !allow_space)))
            return false;
        if (k == 2 && u[i] == 0xC2 && u[i + 1] < 0xA0)
            return false; /* C1 controls and NBSP */
        i += k;
    }
    return true;
}

static bool local_ok(const char *s, size_t n)
{
    if (n == 0 || n > JID_PART_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (memchr("\"&'/:<>@", s[i], 8))
            return false;
    return text_ok(s, n, false);
}

static bool ip6_literal_ok(const char *s, size_t n)
{
    /* [hex and colons, with an optional dotted IPv4 tail]; the shape only, no address parsing. */
    if (n < 4 || s[0] != '[' || s[n - 1] != ']')
        return false;
    int colons = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        char c = s[i];
        if (c == ':')
            colons++;
        else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                   c == '.'))
            return false;
    }
    return colons >= 2;
}

int jid_domain_check(const char *d, size_t len)
{
    if (!d || len == 0 || len > JID_PART_MAX)
        return FG_EPARSE;
    if (d[0] == '[')
        return ip6_literal_ok(d, len) ? 0 : FG_EPARSE;
    size_t n = jid_domain_len_noroot(d, len);
    if (n == 0)
        return FG_EPARSE;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (c == '.') {
            if (label == 0)
                return FG_EPARSE;
            label = 0;
            continue;
        }
        /* Characters that can never be part of a host name, in any form. */
        if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return FG_EPARSE;
        if (++label > 63)
            return FG_EPARSE;
    }
    if (label == 0)
        return FG_EPARSE;
    return text_ok(d, n, false) ? 0 : FG_EPARSE;
}

int jid_parse(const char *s, size_t len, jid_t *out)
{
    if (!s || len == 0 || len > JID_MAX)
        return FG_EPARSE;
    jid_t j = {0};
    size_t end = len;
    const char *slash = memchr(s, '/', len);
    if (slash) {
        j.resource = slash + 1;
        j.resource_len = len - (size_t)(slash - s) - 1;
        end = (size_t)(slash - s);
        if (j.resource_len == 0 || j.resource_len > JID_PART_MAX ||
            !text_ok(j.resource, j.resource_len, true))
            return FG_EPARSE;
    }
    const char *at = memchr(s, '@', end);
    size_t dstart = 0;
    if (at) {
        j.local = s;
        j.local_len = (size_t)(at - s);
        if (!local_ok(j.local, j.local_len))
            return FG_EPARSE;
        dstart = j.local_len + 1;
    }
    j.domain = s + dstart;
    j.domain_len = end - dstart;
    if (jid_domain_check(j.domain, j.domain_len) < 0)
        return FG_EPARSE;
    *out = j;
    return 0;
}

int jid_parse_str(const char *s, jid_t *out)
{
    return s ? jid_parse(s, strlen(s), out) : FG_EPARSE;
}

size_t jid_domain_len_noroot(const char *d, size_t len)
{
    return len > 0 && d[len - 1] == '.' ? len - 1 : len;
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

bool jid_domain_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    if (!a || !b)
        return false;
    alen = jid_domain_len_noroot(a, alen);
    blen = jid_domain_len_noroot(b, blen);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++)
        if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i]))
            return false;
    return true;
}

bool jid_domain_equal_str(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    return jid_domain_equal(a, strlen(a), b, strlen(b));
}

bool jid_is_domain(const jid_t *j)
{
    return !j->local && !j->resource;
}

static int write_parts(const jid_t *j, bool with_local, char *out, size_t size)
{
    size_t dlen = jid_domain_len_noroot(j->domain, j->domain_len);
    size_t llen = with_local && j->local ? j->local_len + 1 : 0;
    if (llen + dlen + 1 > size) {
        if (size)
            out[0] = '\0';
        return FG_ELIMIT;
    }
    if (llen) {
        memcpy(out, j->local, j->local_len);
        out[j->local_len] = '@';
    }
    for (size_t i = 0; i < dlen; i++)
        out[llen + i] = (char)ascii_lower((unsigned char)j->domain[i]);
    out[llen + dlen] = '\0';
    return (int)(llen + dlen);
}

int jid_bare(const jid_t *j, char *out, size_t size)
{
    return write_parts(j, true, out, size);
}

int jid_domain(const jid_t *j, char *out, size_t size)
{
    return write_parts(j, false, out, size);
}
