#include "tls/tls_identity.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* DER tags used below. */
enum {
    DER_BOOLEAN = 0x01,
    DER_INTEGER = 0x02,
    DER_OCTETS = 0x04,
    DER_OID = 0x06,
    DER_UTF8 = 0x0c,
    DER_PRINTABLE = 0x13,
    DER_T61 = 0x14,
    DER_IA5 = 0x16,
    DER_UTCTIME = 0x17,
    DER_GENTIME = 0x18,
    DER_SEQ = 0x30,
    DER_SET = 0x31,
    DER_CTX0 = 0xa0, /* [0] constructed: version, otherName, otherName value */
    DER_CTX3 = 0xa3, /* [3] constructed: extensions */
    GN_DNS = 0x82,   /* [2] primitive dNSName */
    GN_URI = 0x86,   /* [6] primitive uniformResourceIdentifier */
};

static const uint8_t OID_SAN[] = {0x55, 0x1d, 0x11}; /* 2.5.29.17 */
static const uint8_t OID_CN[] = {0x55, 0x04, 0x03};  /* 2.5.4.3 */
static const uint8_t OID_XMPPADDR[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05}; /* .8.5 */
static const uint8_t OID_SRVNAME[] = {0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07};  /* .8.7 */
static const char SRV_PREFIX[] = "_xmpp-server.";

typedef struct {
    const uint8_t *p;
    size_t len;
} der_t;

/* Read one TLV from *cur (definite lengths up to 2^24, low tag numbers only) and advance past it.
 * 1 read, 0 at the end, FG_EPARSE malformed. */
static int der_next(der_t *cur, uint8_t *tag, der_t *val)
{
    if (cur->len == 0)
        return 0;
    if (cur->len < 2 || (cur->p[0] & 0x1f) == 0x1f)
        return FG_EPARSE;
    size_t hdr = 2, n = cur->p[1];
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k == 0 || k > 3 || cur->len < 2 + k)
            return FG_EPARSE;
        n = 0;
        for (size_t i = 0; i < k; i++)
            n = (n << 8) | cur->p[2 + i];
        hdr += k;
    }
    if (n > cur->len - hdr)
        return FG_EPARSE;
    *tag = cur->p[0];
    val->p = cur->p + hdr;
    val->len = n;
    cur->p += hdr + n;
    cur->len -= hdr + n;
    return 1;
}

/* Like der_next, but the element must exist and carry `want`. */
static int der_expect(der_t *cur, uint8_t want, der_t *val)
{
    uint8_t tag;
    int r = der_next(cur, &tag, val);
    if (r < 0)
        return r;
    return (r == 1 && tag == want) ? 0 : FG_EPARSE;
}

static int der_oid_is(der_t oid, const uint8_t *want, size_t n)
{
    return oid.len == n && memcmp(oid.p, want, n) == 0;
}

/* Collected identities. The walk runs twice: once to size the block, once to fill it. */
typedef struct {
    tls_id_t *ids; /* NULL on the sizing pass */
    char *pool;
    size_t count;
    size_t bytes;
    int has_san_id; /* DNS-ID, SRV-ID (any service), URI-ID or XmppAddr seen */
    der_t cn;       /* last commonName of the subject */
    time_t not_before, not_after;
} collect_t;

/* A presented name is kept only if it is a plausible domain string: no NUL or control bytes, not
 * empty, bounded. Anything else is skipped rather than failing the certificate. */
static int name_acceptable(const uint8_t *p, size_t n)
{
    if (n == 0 || n > TLS_IDENTITY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x21 || p[i] == 0x7f)
            return 0;
    return 1;
}

static int collect_add(collect_t *c, tls_id_type_t type, const uint8_t *p, size_t n)
{
    if (!name_acceptable(p, n))
        return 0;
    if (c->count >= TLS_IDENTITY_MAX)
        return FG_ELIMIT;
    if (c->ids) {
        char *dst = c->pool + c->bytes;
        memcpy(dst, p, n);
        dst[n] = '\0';
        c->ids[c->count].type = type;
        c->ids[c->count].name = dst;
    }
    c->count++;
    c->bytes += n + 1;
    return 0;
}

static int parse_other_name(collect_t *c, der_t on)
{
    der_t oid, wrapped, val;
    uint8_t tag;
    int ret = der_expect(&on, DER_OID, &oid);
    if (ret == 0)
        ret = der_expect(&on, DER_CTX0, &wrapped);
    if (ret == 0 && der_next(&wrapped, &tag, &val) != 1)
        ret = FG_EPARSE;
    if (ret < 0)
        return ret;
    if (der_oid_is(oid, OID_XMPPADDR, sizeof OID_XMPPADDR)) {
        c->has_san_id = 1;
        if (tag == DER_UTF8)
            return collect_add(c, TLS_ID_XMPPADDR, val.p, val.len);
    } else if (der_oid_is(oid, OID_SRVNAME, sizeof OID_SRVNAME)) {
        c->has_san_id = 1;
        size_t k = sizeof SRV_PREFIX - 1;
        if (tag == DER_IA5 && val.len > k && strncasecmp((const char *)val.p, SRV_PREFIX, k) == 0)
            return collect_add(c, TLS_ID_SRV, val.p + k, val.len - k);
    }
    return 0;
}

static int parse_san(collect_t *c, der_t ext_value)
{
    der_t names, gn;
    uint8_t tag;
    int r, ret = der_expect(&ext_value, DER_SEQ, &names);
    if (ret < 0)
        return ret;
    while ((r = der_next(&names, &tag, &gn)) == 1) {
        if (tag == GN_DNS) {
            c->has_san_id = 1;
            ret = collect_add(c, TLS_ID_DNS, gn.p, gn.len);
        } else if (tag == DER_CTX0) {
            ret = parse_other_name(c, gn);
        } else if (tag == GN_URI) {
            c->has_san_id = 1;
        }
        if (ret < 0)
            return ret;
    }
    return r;
}

static int parse_extensions(collect_t *c, der_t wrapped)
{
    der_t exts, ext, oid, val;
    uint8_t tag;
    int r, ret = der_expect(&wrapped, DER_SEQ, &exts);
    if (ret < 0)
        return ret;
    while ((r = der_next(&exts, &tag, &ext)) == 1) {
        if (tag != DER_SEQ)
            return FG_EPARSE;
        ret = der_expect(&ext, DER_OID, &oid);
        if (ret < 0)
            return ret;
        if ((r = der_next(&ext, &tag, &val)) != 1)
            return FG_EPARSE;
        if (tag == DER_BOOLEAN && (r = der_next(&ext, &tag, &val)) != 1)
            return FG_EPARSE;
        if (tag != DER_OCTETS)
            return FG_EPARSE;
        if (der_oid_is(oid, OID_SAN, sizeof OID_SAN) && (ret = parse_san(c, val)) < 0)
            return ret;
    }
    return r;
}

static int parse_subject(collect_t *c, der_t name)
{
    der_t rdn, atv, oid, val;
    uint8_t tag;
    int r;
    while ((r = der_next(&name, &tag, &rdn)) == 1) {
        if (tag != DER_SET)
            return FG_EPARSE;
        while ((r = der_next(&rdn, &tag, &atv)) == 1) {
            if (tag != DER_SEQ || der_expect(&atv, DER_OID, &oid) < 0 ||
                der_next(&atv, &tag, &val) != 1)
                return FG_EPARSE;
            /* The most specific (last) CN wins; BMP and universal strings are not domains. */
            if (der_oid_is(oid, OID_CN, sizeof OID_CN) &&
                (tag == DER_UTF8 || tag == DER_PRINTABLE || tag == DER_IA5 || tag == DER_T61))
                c->cn = val;
        }
        if (r < 0)
            return r;
    }
    return r;
}

static int digits(const uint8_t *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* UTCTime YYMMDDHHMMSSZ or GeneralizedTime YYYYMMDDHHMMSSZ (RFC 5280 §4.1.2.5); 0 if unreadable. */
static time_t parse_time(uint8_t tag, der_t v)
{
    int year;
    const uint8_t *p = v.p;
    if (tag == DER_UTCTIME && v.len == 13) {
        year = digits(p, 2);
        year += year < 50 ? 2000 : 1900;
        p += 2;
    } else if (tag == DER_GENTIME && v.len == 15) {
        year = digits(p, 4);
        p += 4;
    } else {
        return 0;
    }
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = digits(p, 2) - 1;
    tm.tm_mday = digits(p + 2, 2);
    tm.tm_hour = digits(p + 4, 2);
    tm.tm_min = digits(p + 6, 2);
    tm.tm_sec = digits(p + 8, 2);
    if (year < 1900 || tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_hour < 0 || tm.tm_min < 0 ||
        tm.tm_sec < 0 || p[10] != 'Z')
        return 0;
    return timegm(&tm);
}

static int walk_certificate(collect_t *c, const uint8_t *der, size_t len)
{
    der_t root = {der, len}, cert, tbs, v, validity, subject = {0};
    uint8_t tag;
    int ret = der_expect(&root, DER_SEQ, &cert);
    if (ret == 0)
        ret = der_expect(&cert, DER_SEQ, &tbs);
    if (ret < 0)
        return ret;
    if (der_next(&tbs, &tag, &v) != 1)
        return FG_EPARSE;
    if (tag == DER_CTX0 && der_next(&tbs, &tag, &v) != 1) /* optional version, then serial */
        return FG_EPARSE;
    if (tag != DER_INTEGER)
        return FG_EPARSE;
    if (der_expect(&tbs, DER_SEQ, &v) < 0 ||        /* signature algorithm */
        der_expect(&tbs, DER_SEQ, &v) < 0 ||        /* issuer */
        der_expect(&tbs, DER_SEQ, &validity) < 0 || /* validity */
        der_expect(&tbs, DER_SEQ, &subject) < 0 ||  /* subject */
        der_expect(&tbs, DER_SEQ, &v) < 0)          /* subjectPublicKeyInfo */
        return FG_EPARSE;
    if (der_next(&validity, &tag, &v) == 1)
        c->not_before = parse_time(tag, v);
    if (der_next(&validity, &tag, &v) == 1)
        c->not_after = parse_time(tag, v);
    int r;
    while ((r = der_next(&tbs, &tag, &v)) == 1) {
        if (tag == DER_CTX3 && (ret = parse_extensions(c, v)) < 0)
            return ret;
    }
    if (r < 0)
        return r;
    ret = parse_subject(c, subject);
    if (ret < 0)
        return ret;
    if (!c->has_san_id && c->cn.p)
        ret = collect_add(c, TLS_ID_CN, c->cn.p, c->cn.len);
    return ret;
}

int tls_identity_parse(const uint8_t *der, size_t len, tls_identities_t *out)
{
    collect_t c = {0};
    int ret;
    memset(out, 0, sizeof *out);
    ret = walk_certificate(&c, der, len);
    if (ret < 0)
        goto out;
    size_t n = c.count, bytes = c.bytes;
    void *block = malloc(n * sizeof(tls_id_t) + bytes + 1);
    if (!block) {
        ret = -ENOMEM;
        goto out;
    }
    memset(&c, 0, sizeof c);
    c.ids = block;
    c.pool = (char *)block + n * sizeof(tls_id_t);
    ret = walk_certificate(&c, der, len);
    if (ret < 0 || c.count != n) { /* cannot happen: same bytes, same walk */
        free(block);
        ret = ret < 0 ? ret : FG_EPARSE;
        goto out;
    }
    out->count = n;
    out->ids = c.ids;
    out->not_before = c.not_before;
    out->not_after = c.not_after;
    out->_block = block;
out:
    return ret;
}

void tls_identities_free(tls_identities_t *ids)
{
    if (!ids)
        return;
    free(ids->_block);
    memset(ids, 0, sizeof *ids);
}

/* Length without one trailing dot (an absolute name is the same name). */
static size_t name_len(const char *s)
{
    size_t n = strlen(s);
    return (n > 0 && s[n - 1] == '.') ? n - 1 : n;
}

static int eq_nocase(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

int tls_identity_match_one(tls_id_type_t type, const char *presented, const char *domain)
{
    size_t dlen = name_len(domain), plen = name_len(presented);
    if (dlen == 0 || plen == 0 || memchr(domain, '*', dlen))
        return 0;
    switch (type) {
    case TLS_ID_SRV:
    case TLS_ID_XMPPADDR:
        /* Exact only: no wildcard semantics, and an XmppAddr with a local or resource part is a
         * user's address, never a server's. */
        if (memchr(presented, '*', plen) || memchr(presented, '@', plen) ||
            memchr(presented, '/', plen))
            return 0;
        return eq_nocase(presented, plen, domain, dlen);
    case TLS_ID_DNS:
    case TLS_ID_CN:
        break;
    default:
        return 0;
    }
    if (plen > 2 && presented[0] == '*' && presented[1] == '.') {
        const char *rest = presented + 2;
        size_t rlen = plen - 2;
        const char *dot = memchr(domain, '.', dlen);
        /* '*' is the whole left-most label and stands for exactly one non-empty label. */
        if (memchr(rest, '*', rlen) || !dot || dot == domain)
            return 0;
        if (rest[0] == '.')
            return 0;
        return eq_nocase(rest, rlen, dot + 1, dlen - (size_t)(dot + 1 - domain));
    }
    /* Any other '*' is a partial-label or non-left-most wildcard (including one inside an IDN
     * A-label such as xn--*): refused. */
    if (memchr(presented, '*', plen))
        return 0;
    return eq_nocase(presented, plen, domain, dlen);
}

int tls_identity_matches(const tls_identities_t *ids, const char *domain)
{
    if (!ids || !domain)
        return 0;
    for (size_t i = 0; i < ids->count; i++)
        if (tls_identity_match_one(ids->ids[i].type, ids->ids[i].name, domain))
            return 1;
    return 0;
}

size_t tls_identity_flatten(const tls_identities_t *ids, const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; ids && i < ids->count && n < max; i++) {
        const tls_id_t *id = &ids->ids[i];
        if ((id->type == TLS_ID_SRV || id->type == TLS_ID_XMPPADDR) &&
            (strchr(id->name, '*') || strchr(id->name, '@') || strchr(id->name, '/')))
            continue;
        names[n++] = id->name;
    }
    return n;
}

const char *tls_id_type_name(tls_id_type_t type)
{
    switch (type) {
    case TLS_ID_DNS:
        return "dns";
    case TLS_ID_SRV:
        return "srv";
    case TLS_ID_XMPPADDR:
        return "xmppaddr";
    case TLS_ID_CN:
        return "cn";
    }
    return "?";
}
