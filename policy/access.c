#include "policy/access.h"

#include "core/err.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* The localpart rules we enforce are the ASCII subset of RFC 7622's: no '@', '/', spaces,
   controls or the characters it forbids; ASCII is lower-cased (PRECIS case mapping). Non-ASCII
   localparts are kept byte-for-byte. */
static const char *local_check(const char *s, size_t n)
{
    if (n == 0)
        return "empty user part";
    if (n > 1023)
        return "user part longer than 1023 octets";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || strchr("\"&'/:<>@", c))
            return "user part has a character JIDs do not allow";
    }
    return NULL;
}

int access_key(access_scope_t scope, const char *subject, char *out, size_t outlen,
               const char **why)
{
    char dom[DOMAIN_BUF];
    const char *reason = NULL;
    int ret = FG_EPARSE;
    if (outlen)
        out[0] = '\0';
    switch (scope) {
    case ACCESS_GLOBAL:
        ret = snprintf(out, outlen, "global") < (int)outlen ? 0 : FG_ELIMIT;
        break;
    case ACCESS_DOMAIN:
        ret = domain_normalize_why(subject, dom, sizeof(dom), &reason);
        if (!ret)
            ret = snprintf(out, outlen, "domain:%s", dom) < (int)outlen ? 0 : FG_ELIMIT;
        break;
    case ACCESS_USER: {
        const char *at = subject ? strchr(subject, '@') : NULL;
        if (!at) {
            reason = "a user is local@domain";
            break;
        }
        if (strchr(at, '/')) {
            reason = "give the bare JID, without a resource";
            break;
        }
        size_t n = (size_t)(at - subject);
        reason = local_check(subject, n);
        if (reason)
            break;
        ret = domain_normalize_why(at + 1, dom, sizeof(dom), &reason);
        if (ret)
            break;
        /* LMDB keys are at most 511 octets, and the change log prefixes 9 */
        if (n + strlen(dom) + 6 > 500) {
            reason = "user:<jid> longer than 500 octets";
            ret = FG_EPARSE;
            break;
        }
        if (n + strlen(dom) + 7 > outlen) {
            ret = FG_ELIMIT;
            break;
        }
        memcpy(out, "user:", 5);
        for (size_t i = 0; i < n; i++)
            out[5 + i] = (char)tolower((unsigned char)subject[i]);
        out[5 + n] = '@';
        strcpy(out + 6 + n, dom);
        ret = 0;
        break;
    }
    default:
        reason = "unknown scope";
    }
    if (ret && !reason)
        reason = "malformed";
    if (why)
        *why = ret ? reason : NULL;
    return ret;
}

int access_key_parse(const char *in, access_scope_t *scope, char *out, size_t outlen,
                     const char **why)
{
    if (!in || !*in) {
        if (why)
            *why = "empty scope: use global, domain:D or user:JID";
        return FG_EPARSE;
    }
    if (strcmp(in, "global") == 0) {
        *scope = ACCESS_GLOBAL;
        return access_key(ACCESS_GLOBAL, NULL, out, outlen, why);
    }
    if (strncmp(in, "domain:", 7) == 0) {
        *scope = ACCESS_DOMAIN;
        return access_key(ACCESS_DOMAIN, in + 7, out, outlen, why);
    }
    if (strncmp(in, "user:", 5) == 0) {
        *scope = ACCESS_USER;
        return access_key(ACCESS_USER, in + 5, out, outlen, why);
    }
    *scope = strchr(in, '@') ? ACCESS_USER : ACCESS_DOMAIN;
    return access_key(*scope, in, out, outlen, why);
}

bool access_resolve(const char *jid, access_get_fn get, void *arg)
{
    char key[ACCESS_KEY_MAX];
    bool v;
    const char *at = strchr(jid, '@');
    if (at) {
        size_t n = strlen(jid);
        if (n + 6 <= sizeof(key)) {
            memcpy(key, "user:", 5);
            memcpy(key + 5, jid, n + 1);
            if (get(arg, key, &v) == 1)
                return v;
        }
    }
    const char *dom = at ? at + 1 : jid;
    size_t dn = strlen(dom);
    if (dn + 8 <= sizeof(key)) {
        memcpy(key, "domain:", 7);
        memcpy(key + 7, dom, dn + 1);
        if (get(arg, key, &v) == 1)
            return v;
    }
    if (get(arg, "global", &v) == 1)
        return v;
    return ACCESS_DEFAULT;
}
