/*
 * What the stream engine needs to know about a peer domain, as plain values.
 *
 * policy/ decodes partner records into these types and io/ hands a copy to each stream, so core
 * never calls policy: the enums live here, and policy reuses them rather than translating.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* TlsNegotiation / SaslNegotiation in Lync's terms. */
typedef enum {
    NEG_REQUIRED = 0,
    NEG_OPTIONAL = 1,
    NEG_NOT_SUPPORTED = 2,
} negotiation_t;

/* PartnerType in Lync's terms; PublicUnverified is the default. */
typedef enum {
    PARTNER_FEDERATED = 0,
    PARTNER_PUBLIC_VERIFIED = 1,
    PARTNER_PUBLIC_UNVERIFIED = 2,
} partner_type_t;

/* The per-partner negotiation rules a stream enforces (lync-spec §2.4). */
typedef struct {
    negotiation_t tls;
    negotiation_t sasl;
    bool dialback;
    bool keepalive;
    partner_type_t type;
} peer_rules_t;

/* Stream limits and timers, copied from the gateway settings when a stream is created. */
typedef struct {
    uint32_t max_stanza_bytes; /* after authentication; at least 10000 (RFC 6120 §13.12) */
    uint32_t max_stanza_bytes_preauth;
    uint32_t max_buffered_bytes; /* bytes held by the parser for one incomplete stanza */
    uint32_t max_depth;
    uint32_t max_attrs;
    uint32_t max_name_len;
    uint32_t establishment_timeout_s; /* StreamEstablishmentTimeout */
    uint32_t inactivity_timeout_s;    /* StreamInactivityTimeout */
    uint32_t keepalive_interval_s;    /* KeepAliveInterval */
    uint32_t max_domain_pairs;        /* multiplexed pairs per stream */
    uint32_t max_queued_stanzas;      /* per domain pair, while it is being verified */
} stream_limits_t;

const char *negotiation_name(negotiation_t n);   /* "Required", "Optional", "NotSupported" */
const char *partner_type_name(partner_type_t t); /* "Federated", "PublicVerified", ... */
/* Case-insensitive; accepts Lync's names and the spaced labels ("Not supported"). 0 or FG_EPARSE.
 */
int negotiation_parse(const char *s, negotiation_t *out);
int partner_type_parse(const char *s, partner_type_t *out);
/* Compares enum value names ignoring case, spaces, '-' and '_', so "Not supported",
   "not-supported" and "NotSupported" are one value; shared with policy's other enum fields. */
bool peer_name_eq(const char *a, const char *b);
/* Defaults: 65536 / 10000 / 65536+4096 buffered / depth 32 / 64 attrs / 1024 name bytes,
   60 / 600 / 300 s, 64 pairs, 256 queued. */
void stream_limits_default(stream_limits_t *l);
