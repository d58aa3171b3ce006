#include "policy/domain.h"

#include "core/err.h"

#include <ctype.h>
#include <idn2.h>
#include <stdio.h>
#include <string.h>

static bool is_ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* RFC 1035 §2.3.1 / RFC 1123 §2.1 on an ASCII, lower-cased name without trailing dot. */
static const char *check_ldh(const char *s, size_t len)
{
    if (len == 0)
        return "empty name";
    if (len > DOMAIN_MAX)
        return "longer than 253 characters";
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (label == 0)
                return "empty label (two dots in a row or a leading dot)";
            if (label > 63)
                return "label longer than 63 characters";
            if (s[i - label] == '-' || s[i - 1] == '-')
                return "label starts or ends with a hyphen";
            label = 0;
            continue;
        }
        if (!is_ldh((unsigned char)s[i]))
            return "label has a character other than a letter, digit or hyphen";
        label++;
    }
    return NULL;
}

#define REASON_IP "an IP address is not a domain; name the partner by its XMPP domain"

/* Digits and dots only: every form inet_aton takes for IPv4 ("1.2.3.4", "127.1", "3232235777"),
   valid or not. Colons with hex digits: IPv6, bracketed or not. Checked before the LDH rules so
   the operator reads why, not "a character other than a letter". */
static bool looks_like_ip(const char *s)
{
    bool colon = strchr(s, ':') != NULL, digits_dots = true;
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p) && *p != '.')
            digits_dots = false;
        if (colon && !isxdigit((unsigned char)*p) && !strchr(":.[]%", *p))
            return false;
    }
    return colon || digits_dots;
}

/* RFC 3696 §2: a top-level label is never all-numeric; such a name would read as an address. */
static bool numeric_tld(const char *s, size_t len)
{
    size_t i = len;
    while (i > 0 && s[i - 1] != '.')
        i--;
    if (i == len)
        return false;
    for (size_t k = i; k < len; k++)
        if (!isdigit((unsigned char)s[k]))
            return false;
    return true;
}

static bool has_alabel(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((p == s || p[-1] == '.') && strncmp(p, "xn--", 4) == 0)
            return true;
    return false;
}

static int normalize(const char *in, char *out, size_t outlen, const char **why, bool name)
{
    char tmp[1024];
    const char *reason = NULL;
    int ret = FG_EDOMAIN;
    char *idn = NULL;
    bool ascii = true;

    if (outlen)
        out[0] = '\0';
    if (!in || !*in) {
        reason = "empty name";
        goto out;
    }
    size_t len = strlen(in);
    if (len >= sizeof(tmp)) {
        reason = "longer than 253 characters";
        goto out;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 0x80)
            ascii = false;
        else if (c < 0x21 || c == 0x7f) {
            reason = "contains a space or control character";
            goto out;
        }
        tmp[i] = (char)tolower(c);
    }
    tmp[len] = '\0';
    /* One trailing dot names the root (absolute form); it is not part of the key. */
    if (len > 1 && tmp[len - 1] == '.')
        tmp[--len] = '\0';
    else if (len == 1 && tmp[0] == '.') {
        reason = "empty name";
        goto out;
    }

    if (name && looks_like_ip(tmp)) {
        reason = REASON_IP;
        goto out;
    }
    const char *ascii_name = tmp;
    if (!ascii || has_alabel(tmp)) {
        /* IDNA2008 with UTS #46 non-transitional mapping: ß and ς stay distinct, as browsers
           and current registries treat them. A-label input is checked for valid Punycode. */
        int rc = idn2_to_ascii_8z(tmp, &idn, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
        if (rc != IDN2_OK) {
            reason = rc == IDN2_TOO_BIG_DOMAIN  ? "longer than 253 characters"
                     : rc == IDN2_TOO_BIG_LABEL ? "label longer than 63 characters"
                                                : idn2_strerror(rc);
            goto out;
        }
        for (char *p = idn; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        ascii_name = idn;
        len = strlen(idn);
    }
    reason = check_ldh(ascii_name, len);
    if (reason)
        goto out;
    if (name && numeric_tld(ascii_name, len)) {
        /* After IDNA: fullwidth digits map to ASCII ones. */
        reason = looks_like_ip(ascii_name)
                     ? REASON_IP
                     : "the top-level label is all digits, which no domain has (RFC 3696 "
                       "section 2)";
        goto out;
    }
    if (len + 1 > outlen) {
        ret = FG_ELIMIT;
        reason = "output buffer too small";
        goto out;
    }
    memcpy(out, ascii_name, len + 1);
    ret = 0;
out:
    if (idn)
        idn2_free(idn);
    if (why)
        *why = ret ? reason : NULL;
    return ret;
}

int domain_normalize_why(const char *in, char *out, size_t outlen, const char **why)
{
    return normalize(in, out, outlen, why, true);
}

int domain_normalize_key(const char *in, char *out, size_t outlen, const char **why)
{
    return normalize(in, out, outlen, why, false);
}

int domain_normalize(const char *in, char *out, size_t outlen)
{
    return domain_normalize_why(in, out, outlen, NULL);
}

bool domain_is_normalized(const char *in)
{
    size_t len = strlen(in);
    return check_ldh(in, len) == NULL && !numeric_tld(in, len);
}

size_t domain_error_line(const char *in, const char *why, char *out, size_t outlen)
{
    char shown[4 * 300 + 8];
    size_t n = 0;
    for (size_t i = 0; in && in[i] && i < 300; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\')
            n += (size_t)snprintf(shown + n, sizeof(shown) - n, "\\x%02x", c);
        else
            shown[n++] = (char)c;
    }
    if (in && strlen(in) > 300)
        n += (size_t)snprintf(shown + n, sizeof(shown) - n, "...");
    shown[n] = '\0';
    int r = snprintf(out, outlen, "invalid domain \"%s\": %s", shown,
                     why ? why : "not a valid domain name");
    return r < 0 ? 0 : (size_t)r;
}

bool domain_glob_match(const char *p, const char *s)
{
    const char *star = NULL, *retry = NULL;
    while (*s) {
        if (*p == '*') {
            star = ++p;
            retry = s;
        } else if (*p == '?' || (*p && tolower((unsigned char)*p) == (unsigned char)*s)) {
            p++;
            s++;
        } else if (star) {
            p = star;
            s = ++retry;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

static bool parse_port(const char *s, unsigned *port)
{
    if (!*s || strlen(s) > 5)
        return false;
    unsigned v = 0;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s))
            return false;
        v = v * 10 + (unsigned)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = v;
    return true;
}

static bool is_ipv4(const char *s)
{
    int parts = 0;
    while (*s) {
        int v = 0, digits = 0;
        while (isdigit((unsigned char)*s) && digits < 4) {
            v = v * 10 + (*s++ - '0');
            digits++;
        }
        if (!digits || v > 255 || (digits > 1 && s[-digits] == '0'))
            return false;
        parts++;
        if (*s == '.' && parts < 4)
            s++;
        else if (*s)
            return false;
    }
    return parts == 4;
}

static bool is_ipv6(const char *s)
{
    size_t len = strlen(s);
    if (len < 2 || len > 45)
        return false;
    int colons = 0;
    for (const char *p = s; *p; p++) {
        if (*p == ':')
            colons++;
        else if (!isxdigit((unsigned char)*p) && *p != '.')
            return false;
    }
    return colons >= 2 && colons <= 7;
}

int domain_parse_hostport(const char *in, bool port_required, char *host, size_t hostlen,
                          unsigned *port, const char **why)
{
    char tmp[DOMAIN_BUF + 16];
    const char *reason = NULL;
    int ret = FG_EPARSE;
    *port = 0;
    if (hostlen)
        host[0] = '\0';
    if (!in || !*in) {
        reason = "empty address";
        goto out;
    }
    if (strlen(in) >= sizeof(tmp)) {
        reason = "address too long";
        goto out;
    }
    strcpy(tmp, in);
    char *h = tmp, *p = NULL;
    if (tmp[0] == '[') {
        char *close = strchr(tmp, ']');
        if (!close) {
            reason = "missing ']' after an IPv6 address";
            goto out;
        }
        *close = '\0';
        h = tmp + 1;
        if (close[1] == ':')
            p = close + 2;
        else if (close[1]) {
            reason = "unexpected text after ']'";
            goto out;
        }
        if (!is_ipv6(h)) {
            reason = "not an IPv6 address";
            goto out;
        }
    } else {
        char *colon = strchr(tmp, ':');
        if (colon && strchr(colon + 1, ':')) {
            reason = "an IPv6 address needs brackets: [addr]:port";
            goto out;
        }
        if (colon) {
            *colon = '\0';
            p = colon + 1;
        }
    }
    if (p && !parse_port(p, port)) {
        reason = "port is not a number between 1 and 65535";
        goto out;
    }
    if (!p && port_required) {
        reason = "port missing (addr:port)";
        goto out;
    }
    if (tmp[0] == '[' || is_ipv4(h)) {
        if (strlen(h) + 1 > hostlen) {
            reason = "address too long";
            goto out;
        }
        strcpy(host, h);
    } else {
        ret = domain_normalize_why(h, host, hostlen, &reason);
        if (ret)
            goto out;
    }
    ret = 0;
out:
    if (ret == FG_EPARSE && !reason)
        reason = "malformed address";
    if (why)
        *why = ret ? reason : NULL;
    return ret;
}
