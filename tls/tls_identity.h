/*
 * Certificate identities and RFC 6125 matching as RFC 6120 §13.7 applies them to XMPP servers.
 *
 * tls_identity_parse() reads the presented identifiers out of a DER X.509 certificate with its own
 * bounds-checked DER walk (no library state, safe on hostile input): DNS-IDs (SAN dNSName), SRV-IDs
 * (SAN otherName SRVName, kept only for the `_xmpp-server` service), XmppAddr (SAN otherName
 * id-on-xmppAddr), and the subject's CN only when the certificate has no DNS-ID, SRV-ID, URI-ID or
 * XmppAddr at all (RFC 6125 §6.4.4). tls_identity_matches() compares them with a reference domain.
 *
 * Ownership: a tls_identities_t owns one heap block holding its entries and their strings;
 * tls_identities_free() releases it. Entry names are NUL-terminated and borrowed until then.
 * Pure functions; safe from any thread.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum {
    TLS_ID_DNS = 1, /* SAN dNSName, may carry a left-most wildcard label */
    TLS_ID_SRV,     /* SAN SRVName for _xmpp-server; `name` is the domain after the service label */
    TLS_ID_XMPPADDR, /* SAN id-on-xmppAddr, compared as a domain */
    TLS_ID_CN,       /* subject commonName, present only when none of the above (nor a URI) is */
} tls_id_type_t;

typedef struct {
    tls_id_type_t type;
    const char *name;
} tls_id_t;

/* Hard bounds on what one certificate may present; more is refused as malformed. */
enum { TLS_IDENTITY_MAX = 1024, TLS_IDENTITY_NAME_MAX = 253 };

typedef struct {
    size_t count;
    tls_id_t *ids;     /* count entries, in certificate order; CN last */
    time_t not_before; /* validity period of the certificate, UTC (0 when unreadable) */
    time_t not_after;
    void *_block; /* the single allocation behind ids and names */
} tls_identities_t;

/* Parse a DER certificate. 0, FG_EPARSE for malformed DER, FG_ELIMIT past the bounds above,
 * -ENOMEM. On error *out is left empty (count 0) and needs no free, though freeing is harmless. */
int tls_identity_parse(const uint8_t *der, size_t len, tls_identities_t *out);
void tls_identities_free(tls_identities_t *ids);

/* Does any identity match the reference `domain` (a normalised domain, A-labels, one trailing
 * dot tolerated on either side)? Case-insensitive. Wildcards only as the whole left-most label of
 * a DNS-ID or CN-ID, matching exactly one non-empty label that is not an A-label (xn--). SRV-IDs
 * and XmppAddrs match exactly. Returns 1 or 0. */
int tls_identity_matches(const tls_identities_t *ids, const char *domain);

/* One presented name against one reference domain, with the rules above (exposed for tests and
 * for the stream layer's logs). */
int tls_identity_match_one(tls_id_type_t type, const char *presented, const char *domain);

/* The identities as a flat list of names for a matcher that knows only DNS-ID rules (core's
 * stream_tls_up takes such a list): DNS-IDs and CN-IDs as they are; SRV-IDs and XmppAddrs, which
 * match exactly, only when they hold no '*' so a flat matcher cannot read them as wildcards.
 * Pointers borrowed from ids. Returns the number written (at most max). */
size_t tls_identity_flatten(const tls_identities_t *ids, const char **names, size_t max);

/* "dns", "srv", "xmppaddr", "cn". */
const char *tls_id_type_name(tls_id_type_t type);
