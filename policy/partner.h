/*
 * Partner record: one XMPP federated partner as Lync's New/Set-CsXmppAllowedPartner define it
 * (lync-spec §1.2), and the rules a record must satisfy before it is stored: field bounds, domain
 * syntax, and the negotiation matrix of lync-spec §2.1 with the rule set of DESIGN.md §6.
 *
 * partner_t is a plain fixed-size value (no pointers): copy it, keep it on the stack or in an
 * array; nothing to free. Its fields are described by schema_partner (schema.h), which gives their
 * JSON and CLI names.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"
#include "policy/domain.h"
#include "policy/report.h"

#define PARTNER_MAX_DOMAINS     64   /* additional domains per partner */
#define PARTNER_DESCRIPTION_MAX 1024 /* octets of description */
#define PARTNER_CONN_LIMIT_MAX  100000

typedef struct {
    char domain[DOMAIN_BUF];                       /* primary domain, the key; normalised */
    char description[PARTNER_DESCRIPTION_MAX + 1]; /* free text, printable UTF-8 */
    uint32_t n_additional;
    char additional[PARTNER_MAX_DOMAINS][DOMAIN_BUF]; /* normalised, kept sorted, no duplicates */
    partner_type_t type;                              /* default PublicUnverified */
    negotiation_t tls;                                /* default Required */
    negotiation_t sasl;                               /* default Required */
    bool dialback;                                    /* SupportDialbackNegotiation, default true */
    bool keepalive;                                   /* EnableKeepAlive, default true */
    bool connection_limit_set;   /* false: the gateway's PartnerConnectionLimit applies */
    uint32_t connection_limit;   /* 0..PARTNER_CONN_LIMIT_MAX when set */
    char proxy_host[DOMAIN_BUF]; /* ProxyFqdn: "" = DNS SRV; else FQDN or IP literal */
    uint16_t proxy_port;         /* 0 = SRV-less default 5269 */
    uint64_t revision; /* set by the store: 1 on create, +1 per update; 0 = never stored */
} partner_t;

/* Lync's defaults (lync-spec §7 item 1): PublicUnverified, TLS Required, SASL Required, dialback
   and keepalive true, no connection limit, no additional domains, no proxy, revision 0. */
void partner_defaults(partner_t *p);

/* Row 1..18 of the matrix in lync-spec §2.1 for a combination; 0 for values out of range. */
int partner_matrix_row(negotiation_t tls, negotiation_t sasl, bool dialback);

/* Category of a matrix row as DESIGN.md §6 decides it. */
typedef enum {
    PARTNER_NEG_OK = 0,      /* rows 2, 7, 8, 13, 15, 17 */
    PARTNER_NEG_WARNING = 1, /* rows 1, 3, 4, 9, 10: saved, warning printed */
    PARTNER_NEG_ERROR = 2,   /* rows 5, 6, 11, 12, 14, 16, 18: refused, nothing saved */
} partner_neg_verdict_t;
partner_neg_verdict_t partner_matrix_verdict(int row);

/*
 * Adds the negotiation-matrix message (if any) for p's TLS/SASL/dialback to rep, with field
 * "tls", "sasl" or "dialback" and a text that says which setting to change. Rows 13, 15 and 17
 * add a REPORT_INFO describing the method that will be used. Returns the verdict.
 */
partner_neg_verdict_t partner_check_negotiation(const partner_t *p, report_t *rep);

/*
 * Every rule a single record must satisfy (the store adds the cross-record rules: domain
 * uniqueness across partners and hosted domains). Normalises p->domain, p->additional and
 * p->proxy_host in place, sorts and de-duplicates nothing silently: a duplicate additional domain
 * or one equal to the primary is an error. `gateway_partner_limit` / `gateway_conn_limit` are the
 * gateway settings for the "limit above the gateway's" warnings; 0 skips those checks.
 * Returns 0 when no error was added (warnings allowed), FG_EREFUSED otherwise.
 */
int partner_validate(partner_t *p, uint32_t gateway_conn_limit, report_t *rep);

/* The value the gateway enforces: the partner's limit when set, else the gateway default. */
static inline uint32_t partner_effective_limit(const partner_t *p, uint32_t gateway_partner_limit)
{
    return p->connection_limit_set ? p->connection_limit : gateway_partner_limit;
}

/* Copies the negotiation rules core/ needs. */
void partner_rules(const partner_t *p, peer_rules_t *out);

/* Additional-domain list edits (Lync's PSListModifier @{Add=..}/@{Remove=..}/$Null). The domain
   is normalised first. add: 0, FG_EDOMAIN, FG_ELIMIT (list full), FG_ECONFLICT (already listed or
   equals the primary). remove: 0 or FG_ENOTFOUND. */
int partner_add_domain(partner_t *p, const char *domain);
int partner_remove_domain(partner_t *p, const char *domain);
void partner_clear_domains(partner_t *p);
/* True when d (normalised) is p's primary or one of its additional domains. */
bool partner_has_domain(const partner_t *p, const char *d);

/* Binary record codec (schema_encode/decode on schema_partner). */
int partner_encode(const partner_t *p, uint8_t *out, size_t cap, size_t *len);
int partner_decode(const uint8_t *in, size_t len, partner_t *p);
