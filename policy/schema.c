/*
 * The schema tables and the code they drive. Adding a stored field is adding one row here (with a
 * fresh tag) plus the struct member; encoding, decoding, JSON, CLI parsing and bounds follow.
 */
#include "policy/schema.h"

#include "core/err.h"
#include "core/peer.h"
#include "policy/domain.h"
#include "policy/hosted.h"
#include "policy/partner.h"
#include "policy/settings.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const neg_names[] = {"Required", "Optional", "NotSupported", NULL};
static const char *const type_names[] = {"Federated", "PublicVerified", "PublicUnverified", NULL};
static const char *const route_names[] = {"component", "s2s", NULL};
static const char *const unknown_names[] = {"deny", "allow", NULL};

#define F(st, m) offsetof(st, m)
#define Z(st, m) sizeof(((st *)0)->m)

static const schema_field_t partner_fields[] = {
    {.tag = 1,
     .name = "domain",
     .json = "domain",
     .cli = "domain",
     .lync = "Domain",
     .type = SCHEMA_DOMAIN,
     .offset = F(partner_t, domain),
     .size = Z(partner_t, domain),
     .max = DOMAIN_MAX,
     .flags = SCHEMA_F_KEY | SCHEMA_F_REQUIRED,
     .help = "primary domain of the partner (the key)"},
    {.tag = 2,
     .name = "description",
     .json = "description",
     .cli = "description",
     .lync = "Description",
     .type = SCHEMA_TEXT,
     .offset = F(partner_t, description),
     .size = Z(partner_t, description),
     .max = PARTNER_DESCRIPTION_MAX,
     .help = "free text for administrators, e.g. the partner's contact"},
    {.tag = 3,
     .name = "additional_domains",
     .json = "additional_domains",
     .cli = "additional-domains",
     .lync = "AdditionalDomains",
     .type = SCHEMA_DOMAIN_LIST,
     .offset = F(partner_t, additional),
     .offset_aux = F(partner_t, n_additional),
     .size = Z(partner_t, additional),
     .max = PARTNER_MAX_DOMAINS,
     .help = "other XMPP domains of the partner; subdomains are not implied"},
    {.tag = 4,
     .name = "type",
     .json = "type",
     .cli = "type",
     .lync = "PartnerType",
     .type = SCHEMA_ENUM,
     .offset = F(partner_t, type),
     .size = Z(partner_t, type),
     .def = PARTNER_PUBLIC_UNVERIFIED,
     .names = type_names,
     .help = "Federated, PublicVerified or PublicUnverified: how far its users are trusted"},
    {.tag = 5,
     .name = "tls",
     .json = "tls",
     .cli = "tls",
     .lync = "TlsNegotiation",
     .type = SCHEMA_ENUM,
     .offset = F(partner_t, tls),
     .size = Z(partner_t, tls),
     .def = NEG_REQUIRED,
     .names = neg_names,
     .help = "STARTTLS on the s2s stream: Required, Optional or NotSupported"},
    {.tag = 6,
     .name = "sasl",
     .json = "sasl",
     .cli = "sasl",
     .lync = "SaslNegotiation",
     .type = SCHEMA_ENUM,
     .offset = F(partner_t, sasl),
     .size = Z(partner_t, sasl),
     .def = NEG_REQUIRED,
     .names = neg_names,
     .help = "SASL EXTERNAL with certificates: Required, Optional or NotSupported"},
    {.tag = 7,
     .name = "dialback",
     .json = "dialback",
     .cli = "dialback",
     .lync = "SupportDialbackNegotiation",
     .type = SCHEMA_BOOL,
     .offset = F(partner_t, dialback),
     .size = Z(partner_t, dialback),
     .def = 1,
     .help = "accept and use Server Dialback (XEP-0220)"},
    {.tag = 8,
     .name = "keepalive",
     .json = "keepalive",
     .cli = "keepalive",
     .lync = "EnableKeepAlive",
     .type = SCHEMA_BOOL,
     .offset = F(partner_t, keepalive),
     .size = Z(partner_t, keepalive),
     .def = 1,
     .help = "whitespace keepalives; close a silent stream after KeepAliveInterval"},
    {.tag = 9,
     .name = "connection_limit",
     .json = "connection_limit",
     .cli = "connection-limit",
     .lync = "ConnectionLimit",
     .type = SCHEMA_U32_OPT,
     .offset = F(partner_t, connection_limit),
     .offset_aux = F(partner_t, connection_limit_set),
     .size = Z(partner_t, connection_limit),
     .min = 0,
     .max = PARTNER_CONN_LIMIT_MAX,
     .help = "simultaneous connections to this partner; unset = gateway PartnerConnectionLimit"},
    {.tag = 10,
     .name = "proxy_fqdn",
     .json = "proxy_fqdn",
     .cli = "proxy-fqdn",
     .lync = "ProxyFqdn",
     .type = SCHEMA_HOSTPORT,
     .offset = F(partner_t, proxy_host),
     .offset_aux = F(partner_t, proxy_port),
     .size = Z(partner_t, proxy_host),
     .help = "HOST[:PORT] to connect to instead of DNS SRV discovery"},
    {.tag = 11,
     .name = "revision",
     .json = "revision",
     .type = SCHEMA_U64,
     .offset = F(partner_t, revision),
     .size = Z(partner_t, revision),
     .flags = SCHEMA_F_READONLY,
     .help = "changes with every update (optimistic concurrency)"},
};

static const schema_field_t settings_fields[] = {
    {.tag = 1,
     .name = "connection_limit",
     .json = "connection_limit",
     .cli = "connection-limit",
     .lync = "ConnectionLimit",
     .type = SCHEMA_U32,
     .offset = F(settings_t, connection_limit),
     .size = 4,
     .min = 1,
     .max = 100000,
     .def = 1000,
     .help = "simultaneous connections for all partners together"},
    {.tag = 2,
     .name = "partner_connection_limit",
     .json = "partner_connection_limit",
     .cli = "partner-connection-limit",
     .lync = "PartnerConnectionLimit",
     .type = SCHEMA_U32,
     .offset = F(settings_t, partner_connection_limit),
     .size = 4,
     .min = 1,
     .max = 100000,
     .def = 20,
     .help = "simultaneous connections per partner unless the partner sets its own"},
    {.tag = 3,
     .name = "keepalive_interval",
     .json = "keepalive_interval",
     .cli = "keepalive-interval",
     .lync = "KeepAliveInterval",
     .type = SCHEMA_U32,
     .offset = F(settings_t, keepalive_interval),
     .size = 4,
     .min = 10,
     .max = 86400,
     .def = 300,
     .help = "seconds of silence before a keepalive partner's stream is closed"},
    {.tag = 4,
     .name = "stream_establishment_timeout",
     .json = "stream_establishment_timeout",
     .cli = "stream-establishment-timeout",
     .lync = "StreamEstablishmentTimeout",
     .type = SCHEMA_U32,
     .offset = F(settings_t, stream_establishment_timeout),
     .size = 4,
     .min = 5,
     .max = 3600,
     .def = 60,
     .help = "seconds a partner has to finish stream negotiation"},
    {.tag = 5,
     .name = "stream_inactivity_timeout",
     .json = "stream_inactivity_timeout",
     .cli = "stream-inactivity-timeout",
     .lync = "StreamInactivityTimeout",
     .type = SCHEMA_U32,
     .offset = F(settings_t, stream_inactivity_timeout),
     .size = 4,
     .min = 30,
     .max = 604800,
     .def = 600,
     .help = "seconds without a stanza before a stream is closed"},
    {.tag = 6,
     .name = "subscription_refresh_interval",
     .json = "subscription_refresh_interval",
     .cli = "subscription-refresh-interval",
     .lync = "SubscriptionRefreshInterval",
     .type = SCHEMA_U32,
     .offset = F(settings_t, subscription_refresh_interval),
     .size = 4,
     .min = 60,
     .max = 2592000,
     .def = 28800,
     .help = "seconds an unanswered invitation authorises the reverse subscription"},
    {.tag = 7,
     .name = "dialback_passphrase",
     .json = "dialback_passphrase",
     .cli = "dialback-passphrase",
     .lync = "DialbackPassphrase",
     .type = SCHEMA_SECRET,
     .offset = F(settings_t, dialback_passphrase),
     .size = Z(settings_t, dialback_passphrase),
     .max = SETTINGS_SECRET_MAX,
     .flags = SCHEMA_F_SECRET,
     .help = "XEP-0185 dialback secret shared by all gateway nodes (generated once)"},
    {.tag = 8,
     .name = "log_message_bodies",
     .json = "log_message_bodies",
     .cli = "log-message-bodies",
     .lync = "EnableLoggingAllMessageBodies",
     .type = SCHEMA_BOOL,
     .offset = F(settings_t, log_message_bodies),
     .size = 1,
     .def = 0,
     .help = "log message bodies (off: only addresses are logged)"},
    {.tag = 9,
     .name = "listen_s2s",
     .json = "listen_s2s",
     .cli = "listen-s2s",
     .type = SCHEMA_LISTEN,
     .offset = F(settings_t, listen_s2s),
     .size = SETTINGS_ADDR_MAX,
     .max = SETTINGS_ADDR_MAX - 1,
     .def_str = "[::]:5269",
     .help = "ADDR:PORT for s2s with STARTTLS, \"\" = off"},
    {.tag = 10,
     .name = "listen_s2s_tls",
     .json = "listen_s2s_tls",
     .cli = "listen-s2s-tls",
     .type = SCHEMA_LISTEN,
     .offset = F(settings_t, listen_s2s_tls),
     .size = SETTINGS_ADDR_MAX,
     .max = SETTINGS_ADDR_MAX - 1,
     .def_str = "[::]:5270",
     .help = "ADDR:PORT for direct-TLS s2s (XEP-0368), \"\" = off"},
    {.tag = 11,
     .name = "listen_component",
     .json = "listen_component",
     .cli = "listen-component",
     .type = SCHEMA_LISTEN,
     .offset = F(settings_t, listen_component),
     .size = SETTINGS_ADDR_MAX,
     .max = SETTINGS_ADDR_MAX - 1,
     .def_str = "127.0.0.1:5347",
     .help = "ADDR:PORT for XEP-0114 components, \"\" = off"},
    {.tag = 12,
     .name = "listen_metrics",
     .json = "listen_metrics",
     .cli = "listen-metrics",
     .type = SCHEMA_LISTEN,
     .offset = F(settings_t, listen_metrics),
     .size = SETTINGS_ADDR_MAX,
     .max = SETTINGS_ADDR_MAX - 1,
     .def_str = "127.0.0.1:9269",
     .help = "ADDR:PORT of the /metrics endpoint, \"\" = off"},
    {.tag = 13,
     .name = "resolver",
     .json = "resolver",
     .cli = "resolver",
     .type = SCHEMA_LISTEN,
     .offset = F(settings_t, resolver),
     .size = SETTINGS_ADDR_MAX,
     .max = SETTINGS_ADDR_MAX - 1,
     .help = "DNS server ADDR:PORT, \"\" = the system resolver"},
    {.tag = 14,
     .name = "trust_anchors",
     .json = "trust_anchors",
     .cli = "trust-anchors",
     .type = SCHEMA_PATH,
     .offset = F(settings_t, trust_anchors),
     .size = Z(settings_t, trust_anchors),
     .max = SETTINGS_PATH_MAX,
     .def_str = "/etc/ssl/certs/ca-certificates.crt",
     .help = "PEM file of the CAs peer certificates must chain to"},
    {.tag = 15,
     .name = "unknown_domains",
     .json = "unknown_domains",
     .cli = "unknown-domains",
     .type = SCHEMA_ENUM,
     .offset = F(settings_t, unknown_domains),
     .size = Z(settings_t, unknown_domains),
     .def = SETTINGS_UNKNOWN_DENY,
     .names = unknown_names,
     .help = "deny, or allow with the default partner profile (partner \"*\")"},
    {.tag = 16,
     .name = "max_stanza_size",
     .json = "max_stanza_size",
     .cli = "max-stanza-size",
     .type = SCHEMA_U32,
     .offset = F(settings_t, max_stanza_size),
     .size = 4,
     .min = 10000,
     .max = 16777216,
     .def = 65536,
     .help = "largest stanza accepted after authentication, octets"},
    {.tag = 17,
     .name = "revision",
     .json = "revision",
     .type = SCHEMA_U64,
     .offset = F(settings_t, revision),
     .size = 8,
     .flags = SCHEMA_F_READONLY,
     .help = "changes with every update"},
    {.tag = 18,
     .name = "listen_component_tls",
     .json = "listen_component_tls",
     .cli = "listen-component-tls",
     .type = SCHEMA_LISTEN,
     .offset = F(settings_t, listen_component_tls),
     .size = SETTINGS_ADDR_MAX,
     .max = SETTINGS_ADDR_MAX - 1,
     .help = "ADDR:PORT for XEP-0114 components over TLS from the first byte, \"\" = off"},
};

static const schema_field_t hosted_fields[] = {
    {.tag = 1,
     .name = "domain",
     .json = "domain",
     .cli = "domain",
     .type = SCHEMA_DOMAIN,
     .offset = F(hosted_t, domain),
     .size = Z(hosted_t, domain),
     .max = DOMAIN_MAX,
     .flags = SCHEMA_F_KEY | SCHEMA_F_REQUIRED,
     .help = "a domain this gateway serves"},
    {.tag = 2,
     .name = "cert_path",
     .json = "cert_path",
     .cli = "cert",
     .type = SCHEMA_PATH,
     .offset = F(hosted_t, cert_path),
     .size = Z(hosted_t, cert_path),
     .max = HOSTED_PATH_MAX,
     .help = "PEM certificate chain for the domain"},
    {.tag = 3,
     .name = "key_path",
     .json = "key_path",
     .cli = "key",
     .type = SCHEMA_PATH,
     .offset = F(hosted_t, key_path),
     .size = Z(hosted_t, key_path),
     .max = HOSTED_PATH_MAX,
     .help = "PEM private key for the certificate"},
    {.tag = 4,
     .name = "route",
     .json = "route",
     .cli = "route",
     .type = SCHEMA_ENUM,
     .offset = F(hosted_t, route),
     .size = Z(hosted_t, route),
     .def = HOSTED_ROUTE_COMPONENT,
     .names = route_names,
     .help = "component (XEP-0114) or s2s to an internal server"},
    {.tag = 5,
     .name = "secret",
     .json = "secret",
     .cli = "secret",
     .type = SCHEMA_SECRET,
     .offset = F(hosted_t, secret),
     .size = Z(hosted_t, secret),
     .max = HOSTED_SECRET_MAX,
     .flags = SCHEMA_F_SECRET,
     .help = "component handshake secret"},
    {.tag = 6,
     .name = "target",
     .json = "target",
     .cli = "target",
     .type = SCHEMA_HOSTPORT,
     .offset = F(hosted_t, target_host),
     .offset_aux = F(hosted_t, target_port),
     .size = Z(hosted_t, target_host),
     .help = "HOST[:PORT] of the internal server (s2s route)"},
    {.tag = 7,
     .name = "enabled",
     .json = "enabled",
     .cli = "enabled",
     .type = SCHEMA_BOOL,
     .offset = F(hosted_t, enabled),
     .size = 1,
     .def = 1,
     .help = "serve the domain; false keeps the record but refuses its traffic"},
    {.tag = 8,
     .name = "revision",
     .json = "revision",
     .type = SCHEMA_U64,
     .offset = F(hosted_t, revision),
     .size = 8,
     .flags = SCHEMA_F_READONLY,
     .help = "changes with every update"},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
const schema_t schema_partner = {"partner", SCHEMA_KIND_PARTNER, sizeof(partner_t), partner_fields,
                                 COUNT(partner_fields)};
const schema_t schema_settings = {"settings", SCHEMA_KIND_SETTINGS, sizeof(settings_t),
                                  settings_fields, COUNT(settings_fields)};
const schema_t schema_hosted = {"hosted", SCHEMA_KIND_HOSTED, sizeof(hosted_t), hosted_fields,
                                COUNT(hosted_fields)};

/* ---- field access ---- */

#define AT(obj, off)  ((char *)(obj) + (off))
#define CAT(obj, off) ((const char *)(obj) + (off))

static uint32_t get_u32(const void *o, size_t off)
{
    uint32_t v;
    memcpy(&v, CAT(o, off), 4);
    return v;
}
static void set_u32(void *o, size_t off, uint32_t v)
{
    memcpy(AT(o, off), &v, 4);
}
static uint64_t get_u64(const void *o, size_t off)
{
    uint64_t v;
    memcpy(&v, CAT(o, off), 8);
    return v;
}
static void set_u64(void *o, size_t off, uint64_t v)
{
    memcpy(AT(o, off), &v, 8);
}
static int get_enum(const void *o, size_t off)
{
    int v;
    memcpy(&v, CAT(o, off), sizeof(int));
    return v;
}
static void set_enum(void *o, size_t off, int v)
{
    memcpy(AT(o, off), &v, sizeof(int));
}
static bool get_bool(const void *o, size_t off)
{
    return *(const bool *)CAT(o, off);
}
static void set_bool(void *o, size_t off, bool v)
{
    *(bool *)AT(o, off) = v;
}
static uint16_t get_u16(const void *o, size_t off)
{
    uint16_t v;
    memcpy(&v, CAT(o, off), 2);
    return v;
}
static void set_u16(void *o, size_t off, uint16_t v)
{
    memcpy(AT(o, off), &v, 2);
}
static size_t enum_count(const schema_field_t *f)
{
    size_t n = 0;
    while (f->names[n])
        n++;
    return n;
}
static char *list_item(void *o, const schema_field_t *f, size_t i)
{
    return AT(o, f->offset) + i * DOMAIN_BUF;
}
static const char *clist_item(const void *o, const schema_field_t *f, size_t i)
{
    return CAT(o, f->offset) + i * DOMAIN_BUF;
}

static void set_text(void *o, const schema_field_t *f, const char *s, size_t n)
{
    char *dst = AT(o, f->offset);
    if (n >= f->size)
        n = f->size - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* Sets every field to its default without touching bytes past a string's NUL or a list's count:
   decoding 100k records into one scratch struct must not clear 16 KiB each time. */
static void set_defaults(const schema_t *s, void *obj)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        switch (f->type) {
        case SCHEMA_BOOL:
            set_bool(obj, f->offset, f->def != 0);
            break;
        case SCHEMA_U32:
            set_u32(obj, f->offset, (uint32_t)f->def);
            break;
        case SCHEMA_U32_OPT:
            set_u32(obj, f->offset, 0);
            set_bool(obj, f->offset_aux, false);
            break;
        case SCHEMA_U64:
            set_u64(obj, f->offset, f->def);
            break;
        case SCHEMA_ENUM:
            set_enum(obj, f->offset, (int)f->def);
            break;
        case SCHEMA_TEXT:
        case SCHEMA_SECRET:
        case SCHEMA_PATH:
        case SCHEMA_LISTEN:
        case SCHEMA_DOMAIN:
            set_text(obj, f, f->def_str ? f->def_str : "", f->def_str ? strlen(f->def_str) : 0);
            break;
        case SCHEMA_DOMAIN_LIST:
            set_u32(obj, f->offset_aux, 0);
            break;
        case SCHEMA_HOSTPORT:
            AT(obj, f->offset)[0] = '\0';
            set_u16(obj, f->offset_aux, 0);
            break;
        }
    }
}

void schema_defaults(const schema_t *s, void *obj)
{
    memset(obj, 0, s->struct_size);
    set_defaults(s, obj);
}

const schema_field_t *schema_find(const schema_t *s, const char *name)
{
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        if (strcmp(f->name, name) == 0 || strcmp(f->json, name) == 0 ||
            (f->cli && strcmp(f->cli, name) == 0) || (f->lync && strcasecmp(f->lync, name) == 0))
            return f;
    }
    return NULL;
}

/* ---- text values ---- */

/* Printable UTF-8: well-formed sequences, no C0/C1 controls or DEL. Tab allowed. */
static bool text_ok(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + n;
    while (p < e) {
        unsigned c = *p;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return false;
            p++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(e - p) < len)
            return false;
        for (size_t i = 1; i < len; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
            return false;
        p += len;
    }
    return true;
}

static int parse_bool(const char *t, bool *out)
{
    static const char *const yes[] = {"true", "$true", "yes", "on", "1"};
    static const char *const no[] = {"false", "$false", "no", "off", "0"};
    for (size_t i = 0; i < COUNT(yes); i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return FG_EPARSE;
}

static int parse_u64(const char *t, uint64_t *out)
{
    if (!*t || strlen(t) > 19)
        return FG_EPARSE;
    uint64_t v = 0;
    for (const char *p = t; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return FG_EPARSE;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return 0;
}

/* Shows a value inside an error line: quoted, cut, controls escaped. */
static void shown(const char *t, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; t[i] && n + 5 < outlen && i < 80; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c == 0x7f || c == '"')
            n += (size_t)snprintf(out + n, outlen - n, "\\x%02x", c);
        else
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

static const char *fname(const schema_field_t *f)
{
    return f->cli ? f->cli : f->name;
}

static int check_text_value(const schema_field_t *f, const char *t, size_t n, char *err,
                            size_t errlen)
{
    char v[400];
    shown(t, v, sizeof(v));
    if (n > f->max) {
        snprintf(err, errlen, "%s: value is %zu characters long, at most %llu allowed", fname(f), n,
                 (unsigned long long)f->max);
        return FG_ELIMIT;
    }
    if (!text_ok(t, n)) {
        snprintf(err, errlen, "%s: \"%s\" has a control character or invalid UTF-8", fname(f), v);
        return FG_EPARSE;
    }
    if (f->type == SCHEMA_PATH && n > 0 && t[0] != '/') {
        snprintf(err, errlen, "%s: \"%s\" is not an absolute path", fname(f), v);
        return FG_EPARSE;
    }
    if (f->type == SCHEMA_LISTEN && n > 0) {
        char host[DOMAIN_BUF];
        unsigned port;
        const char *why = NULL;
        if (domain_parse_hostport(t, true, host, sizeof(host), &port, &why)) {
            snprintf(err, errlen, "%s: \"%s\" is not ADDR:PORT (%s)", fname(f), v, why);
            return FG_EPARSE;
        }
    }
    return 0;
}

int schema_parse_list(const schema_field_t *f, void *obj, const char *const *items, size_t n,
                      char *err, size_t errlen)
{
    /* Parse into scratch first so a bad element leaves the list unchanged. */
    char tmp[PARTNER_MAX_DOMAINS][DOMAIN_BUF];
    size_t count = 0;
    if (errlen)
        err[0] = '\0';
    if (f->type != SCHEMA_DOMAIN_LIST) {
        snprintf(err, errlen, "%s is not a list", fname(f));
        return FG_EPARSE;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = items[i] ? items[i] : "";
        size_t len = strlen(s);
        while (len && (s[0] == ' ' || s[0] == '\t')) {
            s++;
            len--;
        }
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (!len)
            continue; /* "a,,b" and a trailing comma: nothing named, nothing to refuse */
        if (count >= f->max || count >= PARTNER_MAX_DOMAINS) {
            snprintf(err, errlen, "%s: more than %llu domains", fname(f),
                     (unsigned long long)f->max);
            return FG_ELIMIT;
        }
        char item[1024];
        if (len >= sizeof(item))
            len = sizeof(item) - 1; /* still longer than any domain: refused below, named */
        memcpy(item, s, len);
        item[len] = '\0';
        const char *why;
        if (domain_normalize_why(item, tmp[count], DOMAIN_BUF, &why)) {
            char line[512];
            domain_error_line(item, why, line, sizeof(line));
            snprintf(err, errlen, "%s: %s", fname(f), line);
            return FG_EDOMAIN;
        }
        count++;
    }
    for (size_t i = 0; i < count; i++)
        memcpy(list_item(obj, f, i), tmp[i], DOMAIN_BUF);
    set_u32(obj, f->offset_aux, (uint32_t)count);
    return 0;
}

int schema_parse_value(const schema_field_t *f, void *obj, const char *text, char *err,
                       size_t errlen)
{
    char v[400];
    int ret = 0;
    if (errlen)
        err[0] = '\0';
    if (!text)
        text = "";
    shown(text, v, sizeof(v));
    if (f->flags & SCHEMA_F_READONLY) {
        snprintf(err, errlen, "%s is maintained by the store and cannot be set", fname(f));
        return FG_EREFUSED;
    }
    switch (f->type) {
    case SCHEMA_BOOL: {
        bool b;
        if (parse_bool(text, &b)) {
            snprintf(err, errlen, "%s: \"%s\" is not true or false", fname(f), v);
            return FG_EPARSE;
        }
        set_bool(obj, f->offset, b);
        break;
    }
    case SCHEMA_U32:
    case SCHEMA_U32_OPT: {
        if (f->type == SCHEMA_U32_OPT &&
            (!*text || strcasecmp(text, "unset") == 0 || strcasecmp(text, "default") == 0 ||
             strcasecmp(text, "none") == 0 || strcasecmp(text, "null") == 0)) {
            set_bool(obj, f->offset_aux, false);
            set_u32(obj, f->offset, 0);
            break;
        }
        uint64_t x;
        if (parse_u64(text, &x) || x < f->min || x > f->max) {
            snprintf(err, errlen, "%s: \"%s\" is not a whole number between %llu and %llu%s",
                     fname(f), v, (unsigned long long)f->min, (unsigned long long)f->max,
                     f->type == SCHEMA_U32_OPT ? " (or \"unset\")" : "");
            return FG_EPARSE;
        }
        set_u32(obj, f->offset, (uint32_t)x);
        if (f->type == SCHEMA_U32_OPT)
            set_bool(obj, f->offset_aux, true);
        break;
    }
    case SCHEMA_U64: {
        uint64_t x;
        if (parse_u64(text, &x)) {
            snprintf(err, errlen, "%s: \"%s\" is not a whole number", fname(f), v);
            return FG_EPARSE;
        }
        set_u64(obj, f->offset, x);
        break;
    }
    case SCHEMA_ENUM: {
        size_t n = enum_count(f);
        for (size_t i = 0; i < n; i++)
            if (peer_name_eq(text, f->names[i])) {
                set_enum(obj, f->offset, (int)i);
                return 0;
            }
        char allowed[160] = "";
        for (size_t i = 0; i < n; i++)
            snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed), "%s%s",
                     i ? (i + 1 == n ? " or " : ", ") : "", f->names[i]);
        snprintf(err, errlen, "%s: \"%s\" is not one of %s", fname(f), v, allowed);
        return FG_EPARSE;
    }
    case SCHEMA_TEXT:
    case SCHEMA_SECRET:
    case SCHEMA_PATH:
    case SCHEMA_LISTEN: {
        size_t n = strlen(text);
        ret = check_text_value(f, text, n, err, errlen);
        if (ret)
            return ret;
        set_text(obj, f, text, n);
        break;
    }
    case SCHEMA_DOMAIN: {
        char d[DOMAIN_BUF];
        const char *why;
        if (domain_normalize_why(text, d, sizeof(d), &why)) {
            char line[512];
            domain_error_line(text, why, line, sizeof(line));
            snprintf(err, errlen, "%s: %s", fname(f), line);
            return FG_EDOMAIN;
        }
        set_text(obj, f, d, strlen(d));
        break;
    }
    case SCHEMA_DOMAIN_LIST: {
        /* Commas only: a space inside an element is part of it (and makes it invalid), so
           "bad domain.example" is refused whole instead of becoming two domains. */
        const char *items[PARTNER_MAX_DOMAINS + 1];
        char copy[PARTNER_MAX_DOMAINS * DOMAIN_BUF + 64];
        size_t n = 0, len = strlen(text);
        if (len >= sizeof(copy)) {
            snprintf(err, errlen, "%s: more than %llu domains", fname(f),
                     (unsigned long long)f->max);
            return FG_ELIMIT;
        }
        memcpy(copy, text, len + 1);
        for (char *p = copy; p;) {
            char *comma = strchr(p, ',');
            if (comma)
                *comma = '\0';
            if (p[strspn(p, " \t")]) {
                /* One over the limit is enough for schema_parse_list to refuse it. */
                if (n > PARTNER_MAX_DOMAINS) {
                    snprintf(err, errlen, "%s: more than %llu domains", fname(f),
                             (unsigned long long)f->max);
                    return FG_ELIMIT;
                }
                items[n++] = p;
            }
            p = comma ? comma + 1 : NULL;
        }
        return schema_parse_list(f, obj, items, n, err, errlen);
    }
    case SCHEMA_HOSTPORT: {
        if (!*text) {
            AT(obj, f->offset)[0] = '\0';
            set_u16(obj, f->offset_aux, 0);
            break;
        }
        char host[DOMAIN_BUF];
        unsigned port;
        const char *why;
        if (domain_parse_hostport(text, false, host, sizeof(host), &port, &why)) {
            snprintf(err, errlen, "%s: \"%s\" is not HOST[:PORT] (%s)", fname(f), v, why);
            return FG_EPARSE;
        }
        set_text(obj, f, host, strlen(host));
        set_u16(obj, f->offset_aux, (uint16_t)port);
        break;
    }
    }
    return 0;
}

size_t schema_format_value(const schema_field_t *f, const void *obj, bool show_secret, char *out,
                           size_t outlen)
{
    int n = 0;
    switch (f->type) {
    case SCHEMA_BOOL:
        n = snprintf(out, outlen, "%s", get_bool(obj, f->offset) ? "true" : "false");
        break;
    case SCHEMA_U32:
        n = snprintf(out, outlen, "%u", get_u32(obj, f->offset));
        break;
    case SCHEMA_U32_OPT:
        n = get_bool(obj, f->offset_aux) ? snprintf(out, outlen, "%u", get_u32(obj, f->offset))
                                         : snprintf(out, outlen, "%s", "");
        break;
    case SCHEMA_U64:
        n = snprintf(out, outlen, "%llu", (unsigned long long)get_u64(obj, f->offset));
        break;
    case SCHEMA_ENUM: {
        int v = get_enum(obj, f->offset);
        n = snprintf(out, outlen, "%s", v >= 0 && (size_t)v < enum_count(f) ? f->names[v] : "?");
        break;
    }
    case SCHEMA_SECRET:
        if (!show_secret) {
            n = snprintf(out, outlen, "%s", CAT(obj, f->offset)[0] ? "(set)" : "(unset)");
            break;
        }
        /* fall through */
    case SCHEMA_TEXT:
    case SCHEMA_PATH:
    case SCHEMA_LISTEN:
    case SCHEMA_DOMAIN:
        n = snprintf(out, outlen, "%s", CAT(obj, f->offset));
        break;
    case SCHEMA_DOMAIN_LIST: {
        uint32_t c = get_u32(obj, f->offset_aux);
        size_t len = 0;
        if (outlen)
            out[0] = '\0';
        for (uint32_t i = 0; i < c && i < f->max; i++) {
            int k = snprintf(len < outlen ? out + len : NULL, len < outlen ? outlen - len : 0,
                             "%s%s", i ? "," : "", clist_item(obj, f, i));
            len += k > 0 ? (size_t)k : 0;
        }
        return len;
    }
    case SCHEMA_HOSTPORT: {
        const char *h = CAT(obj, f->offset);
        uint16_t port = get_u16(obj, f->offset_aux);
        bool v6 = strchr(h, ':') != NULL;
        if (!h[0])
            n = snprintf(out, outlen, "%s", "");
        else if (port)
            n = snprintf(out, outlen, v6 ? "[%s]:%u" : "%s:%u", h, port);
        else
            n = snprintf(out, outlen, v6 ? "[%s]" : "%s", h);
        break;
    }
    }
    return n < 0 ? 0 : (size_t)n;
}

size_t schema_check(const schema_t *s, const void *obj, report_t *rep)
{
    size_t errors = 0;
    char err[600];
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        const char *fjson = f->json;
        switch (f->type) {
        case SCHEMA_BOOL:
            break;
        case SCHEMA_U32:
        case SCHEMA_U32_OPT: {
            if (f->type == SCHEMA_U32_OPT && !get_bool(obj, f->offset_aux))
                break;
            uint32_t v = get_u32(obj, f->offset);
            if (v < f->min || v > f->max) {
                report_add(rep, REPORT_ERROR, fjson, "%u is out of range: use %llu to %llu", v,
                           (unsigned long long)f->min, (unsigned long long)f->max);
                errors++;
            }
            break;
        }
        case SCHEMA_U64:
            break;
        case SCHEMA_ENUM: {
            int v = get_enum(obj, f->offset);
            if (v < 0 || (size_t)v >= enum_count(f)) {
                report_add(rep, REPORT_ERROR, fjson, "unknown value %d", v);
                errors++;
            }
            break;
        }
        case SCHEMA_TEXT:
        case SCHEMA_SECRET:
        case SCHEMA_PATH:
        case SCHEMA_LISTEN: {
            const char *t = CAT(obj, f->offset);
            size_t n = strnlen(t, f->size);
            if (n == f->size) {
                report_add(rep, REPORT_ERROR, fjson, "not terminated");
                errors++;
            } else if (check_text_value(f, t, n, err, sizeof(err))) {
                /* err starts with the CLI name; the report carries the field separately */
                const char *colon = strchr(err, ':');
                report_add(rep, REPORT_ERROR, fjson, "%s", colon ? colon + 2 : err);
                errors++;
            } else if ((f->flags & SCHEMA_F_REQUIRED) && n == 0) {
                report_add(rep, REPORT_ERROR, fjson, "is required");
                errors++;
            }
            break;
        }
        case SCHEMA_DOMAIN: {
            const char *d = CAT(obj, f->offset);
            if (strnlen(d, DOMAIN_BUF) == DOMAIN_BUF) {
                report_add(rep, REPORT_ERROR, fjson, "not terminated");
                errors++;
            } else if (!d[0]) {
                if (f->flags & SCHEMA_F_REQUIRED) {
                    report_add(rep, REPORT_ERROR, fjson, "is required");
                    errors++;
                }
            } else if (!domain_is_normalized(d)) {
                const char *why = NULL;
                char tmp[DOMAIN_BUF];
                domain_normalize_why(d, tmp, sizeof(tmp), &why);
                domain_error_line(d, why ? why : "not normalised", err, sizeof(err));
                report_add(rep, REPORT_ERROR, fjson, "%s", err);
                errors++;
            }
            break;
        }
        case SCHEMA_DOMAIN_LIST: {
            uint32_t c = get_u32(obj, f->offset_aux);
            if (c > f->max) {
                report_add(rep, REPORT_ERROR, fjson, "%u domains, at most %llu allowed", c,
                           (unsigned long long)f->max);
                errors++;
                break;
            }
            for (uint32_t k = 0; k < c; k++) {
                const char *d = clist_item(obj, f, k);
                if (strnlen(d, DOMAIN_BUF) == DOMAIN_BUF || !domain_is_normalized(d)) {
                    const char *why = "not normalised";
                    char tmp[DOMAIN_BUF];
                    if (strnlen(d, DOMAIN_BUF) < DOMAIN_BUF)
                        domain_normalize_why(d, tmp, sizeof(tmp), &why);
                    domain_error_line(strnlen(d, DOMAIN_BUF) < DOMAIN_BUF ? d : "",
                                      why ? why : "not normalised", err, sizeof(err));
                    report_add(rep, REPORT_ERROR, fjson, "%s", err);
                    errors++;
                }
            }
            break;
        }
        case SCHEMA_HOSTPORT: {
            const char *h = CAT(obj, f->offset);
            if (strnlen(h, DOMAIN_BUF) == DOMAIN_BUF) {
                report_add(rep, REPORT_ERROR, fjson, "not terminated");
                errors++;
            } else if (h[0]) {
                char buf[DOMAIN_BUF + 2], host[DOMAIN_BUF];
                unsigned port;
                const char *why;
                snprintf(buf, sizeof(buf), strchr(h, ':') ? "[%s]" : "%s", h);
                if (domain_parse_hostport(buf, false, host, sizeof(host), &port, &why) ||
                    strcmp(host, h) != 0) {
                    report_add(rep, REPORT_ERROR, fjson, "\"%s\" is not a host name or address", h);
                    errors++;
                }
            }
            break;
        }
        }
    }
    return errors;
}

bool schema_field_equal(const schema_field_t *f, const void *a, const void *b)
{
    switch (f->type) {
    case SCHEMA_BOOL:
        return get_bool(a, f->offset) == get_bool(b, f->offset);
    case SCHEMA_U32:
        return get_u32(a, f->offset) == get_u32(b, f->offset);
    case SCHEMA_U32_OPT:
        return get_bool(a, f->offset_aux) == get_bool(b, f->offset_aux) &&
               (!get_bool(a, f->offset_aux) || get_u32(a, f->offset) == get_u32(b, f->offset));
    case SCHEMA_U64:
        return get_u64(a, f->offset) == get_u64(b, f->offset);
    case SCHEMA_ENUM:
        return get_enum(a, f->offset) == get_enum(b, f->offset);
    case SCHEMA_DOMAIN_LIST: {
        uint32_t c = get_u32(a, f->offset_aux);
        if (c != get_u32(b, f->offset_aux) || c > f->max)
            return c == get_u32(b, f->offset_aux);
        for (uint32_t i = 0; i < c; i++)
            if (strcmp(clist_item(a, f, i), clist_item(b, f, i)) != 0)
                return false;
        return true;
    }
    case SCHEMA_HOSTPORT:
        if (get_u16(a, f->offset_aux) != get_u16(b, f->offset_aux))
            return false;
        /* fall through */
    default:
        return strncmp(CAT(a, f->offset), CAT(b, f->offset), f->size) == 0;
    }
}

bool schema_equal(const schema_t *s, const void *a, const void *b)
{
    for (size_t i = 0; i < s->nfields; i++)
        if (!(s->fields[i].flags & SCHEMA_F_READONLY) && !schema_field_equal(&s->fields[i], a, b))
            return false;
    return true;
}

/* ---- binary codec ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} wr_t;

static int put_tlv(wr_t *w, uint8_t tag, const void *v, size_t n)
{
    if (n > 0xffff || w->len + 3 + n > w->cap)
        return FG_ELIMIT;
    w->p[w->len] = tag;
    w->p[w->len + 1] = (uint8_t)(n & 0xff);
    w->p[w->len + 2] = (uint8_t)(n >> 8);
    if (n)
        memcpy(w->p + w->len + 3, v, n);
    w->len += 3 + n;
    return 0;
}

static void le32(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t rd32(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int schema_encode(const schema_t *s, const void *obj, uint8_t *out, size_t cap, size_t *len)
{
    wr_t w = {out, 0, cap};
    int ret = FG_ELIMIT;
    if (cap < 2)
        goto out;
    out[0] = SCHEMA_VERSION;
    out[1] = (uint8_t)s->kind;
    w.len = 2;
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        uint8_t b[10];
        switch (f->type) {
        case SCHEMA_BOOL:
            b[0] = get_bool(obj, f->offset) ? 1 : 0;
            ret = put_tlv(&w, f->tag, b, 1);
            break;
        case SCHEMA_U32_OPT:
            if (!get_bool(obj, f->offset_aux)) {
                ret = 0;
                break;
            }
            /* fall through */
        case SCHEMA_U32:
            le32(b, get_u32(obj, f->offset));
            ret = put_tlv(&w, f->tag, b, 4);
            break;
        case SCHEMA_U64: {
            uint64_t v = get_u64(obj, f->offset);
            le32(b, (uint32_t)v);
            le32(b + 4, (uint32_t)(v >> 32));
            ret = put_tlv(&w, f->tag, b, 8);
            break;
        }
        case SCHEMA_ENUM:
            b[0] = (uint8_t)get_enum(obj, f->offset);
            ret = put_tlv(&w, f->tag, b, 1);
            break;
        case SCHEMA_TEXT:
        case SCHEMA_SECRET:
        case SCHEMA_PATH:
        case SCHEMA_LISTEN:
        case SCHEMA_DOMAIN: {
            const char *t = CAT(obj, f->offset);
            ret = put_tlv(&w, f->tag, t, strnlen(t, f->size - 1));
            break;
        }
        case SCHEMA_DOMAIN_LIST: {
            uint32_t c = get_u32(obj, f->offset_aux);
            ret = c > f->max ? FG_ELIMIT : 0;
            for (uint32_t k = 0; k < c && !ret; k++) {
                const char *d = clist_item(obj, f, k);
                ret = put_tlv(&w, f->tag, d, strnlen(d, DOMAIN_BUF - 1));
            }
            break;
        }
        case SCHEMA_HOSTPORT: {
            const char *h = CAT(obj, f->offset);
            size_t n = strnlen(h, DOMAIN_BUF - 1);
            ret = 0;
            if (!n)
                break;
            uint8_t tmp[2 + DOMAIN_BUF];
            uint16_t port = get_u16(obj, f->offset_aux);
            tmp[0] = (uint8_t)(port & 0xff);
            tmp[1] = (uint8_t)(port >> 8);
            memcpy(tmp + 2, h, n);
            ret = put_tlv(&w, f->tag, tmp, n + 2);
            break;
        }
        }
        if (ret)
            goto out;
    }
    *len = w.len;
    ret = 0;
out:
    return ret;
}

int schema_record_version(const uint8_t *in, size_t len)
{
    return len ? in[0] : FG_EPARSE;
}

static const schema_field_t *by_tag(const schema_t *s, uint8_t tag)
{
    /* the tables list tags 1..n in order: direct index, with the scan as the general case */
    if (tag >= 1 && tag <= s->nfields && s->fields[tag - 1].tag == tag)
        return &s->fields[tag - 1];
    for (size_t i = 0; i < s->nfields; i++)
        if (s->fields[i].tag == tag)
            return &s->fields[i];
    return NULL;
}

int schema_decode(const schema_t *s, const uint8_t *in, size_t len, void *obj)
{
    if (len < 2)
        return FG_EPARSE;
    if (in[0] > SCHEMA_VERSION)
        return FG_EVERSION;
    if (in[0] == 0 || in[1] != (uint8_t)s->kind)
        return FG_EPARSE;
    set_defaults(s, obj);
    size_t pos = 2;
    while (pos < len) {
        if (len - pos < 3)
            return FG_EPARSE;
        uint8_t tag = in[pos];
        size_t n = (size_t)in[pos + 1] | (size_t)in[pos + 2] << 8;
        pos += 3;
        if (n > len - pos)
            return FG_EPARSE;
        const uint8_t *v = in + pos;
        pos += n;
        const schema_field_t *f = by_tag(s, tag);
        if (!f)
            continue; /* written by a newer build that added a field */
        switch (f->type) {
        case SCHEMA_BOOL:
            if (n != 1 || v[0] > 1)
                return FG_EPARSE;
            set_bool(obj, f->offset, v[0] == 1);
            break;
        case SCHEMA_U32:
        case SCHEMA_U32_OPT: {
            if (n != 4)
                return FG_EPARSE;
            uint32_t x = rd32(v);
            if (x < f->min || x > f->max)
                return FG_EPARSE;
            set_u32(obj, f->offset, x);
            if (f->type == SCHEMA_U32_OPT)
                set_bool(obj, f->offset_aux, true);
            break;
        }
        case SCHEMA_U64:
            if (n != 8)
                return FG_EPARSE;
            set_u64(obj, f->offset, (uint64_t)rd32(v) | (uint64_t)rd32(v + 4) << 32);
            break;
        case SCHEMA_ENUM:
            if (n != 1 || v[0] >= enum_count(f))
                return FG_EPARSE;
            set_enum(obj, f->offset, v[0]);
            break;
        case SCHEMA_TEXT:
        case SCHEMA_SECRET:
        case SCHEMA_PATH:
        case SCHEMA_LISTEN:
            if (n > f->max || n >= f->size || memchr(v, 0, n))
                return FG_EPARSE;
            set_text(obj, f, (const char *)v, n);
            break;
        case SCHEMA_DOMAIN:
            if (n > DOMAIN_MAX || memchr(v, 0, n))
                return FG_EPARSE;
            /* Syntax was checked when the record was written; decoding checks only what keeps
               memory safe (bounds, no NUL): this runs on every uncached lookup and rebuild. */
            set_text(obj, f, (const char *)v, n);
            break;
        case SCHEMA_DOMAIN_LIST: {
            uint32_t c = get_u32(obj, f->offset_aux);
            if (c >= f->max || n == 0 || n > DOMAIN_MAX || memchr(v, 0, n))
                return FG_EPARSE;
            char *d = list_item(obj, f, c);
            memcpy(d, v, n);
            d[n] = '\0';
            set_u32(obj, f->offset_aux, c + 1);
            break;
        }
        case SCHEMA_HOSTPORT:
            if (n < 3 || n - 2 > DOMAIN_MAX || memchr(v + 2, 0, n - 2))
                return FG_EPARSE;
            set_u16(obj, f->offset_aux, (uint16_t)(v[0] | v[1] << 8));
            set_text(obj, f, (const char *)v + 2, n - 2);
            break;
        }
    }
    return 0;
}
