/*
 * Gateway settings: the single global instance of Lync's Set/Get-CsXmppGatewayConfiguration
 * (lync-spec §3) with Lync's defaults, plus what fedgate itself needs: listeners, the DNS
 * resolver override, the trust anchors file, the policy for unknown domains and the stanza size.
 *
 * settings_t is a plain fixed-size value; nothing to free. Field names for JSON and CLI come from
 * schema_settings (schema.h).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"
#include "policy/report.h"

#define SETTINGS_SECRET_MAX 1024 /* octets of DialbackPassphrase */
#define SETTINGS_PATH_MAX   1024
#define SETTINGS_ADDR_MAX   64 /* "[ipv6]:port" */

/* What happens to a peer domain that no partner lists (DESIGN.md §6). */
typedef enum {
    SETTINGS_UNKNOWN_DENY = 0,  /* refuse with <policy-violation/> (default, Lync's allow-list) */
    SETTINGS_UNKNOWN_ALLOW = 1, /* treat it with the default partner profile (partner key "*") */
} settings_unknown_t;

typedef struct {
    uint32_t connection_limit;              /* ConnectionLimit, 1000 */
    uint32_t partner_connection_limit;      /* PartnerConnectionLimit, 20 */
    uint32_t keepalive_interval;            /* KeepAliveInterval, seconds, 300 */
    uint32_t stream_establishment_timeout;  /* StreamEstablishmentTimeout, seconds, 60 */
    uint32_t stream_inactivity_timeout;     /* StreamInactivityTimeout, seconds, 600 */
    uint32_t subscription_refresh_interval; /* SubscriptionRefreshInterval, seconds, 28800 */
    char dialback_passphrase[SETTINGS_SECRET_MAX + 1]; /* DialbackPassphrase; "" only before
                                                          store_init generated one */
    bool log_message_bodies;                           /* EnableLoggingAllMessageBodies, false */
    char listen_s2s[SETTINGS_ADDR_MAX];                /* "[::]:5269"; "" = off */
    char listen_s2s_tls[SETTINGS_ADDR_MAX];       /* direct TLS, XEP-0368: "[::]:5270"; "" = off */
    char listen_component[SETTINGS_ADDR_MAX];     /* XEP-0114: "127.0.0.1:5347"; "" = off */
    char listen_component_tls[SETTINGS_ADDR_MAX]; /* XEP-0114 inside TLS (no STARTTLS in
                                                     XEP-0114); "" = off */
    char listen_metrics[SETTINGS_ADDR_MAX];       /* "127.0.0.1:9269"; "" = off */
    char resolver[SETTINGS_ADDR_MAX];             /* DNS server "addr:port"; "" = system resolver */
    char trust_anchors[SETTINGS_PATH_MAX + 1];    /* CA bundle, PEM */
    settings_unknown_t unknown_domains;           /* deny */
    uint32_t max_stanza_size;                     /* octets after authentication, 65536 */
    uint64_t revision;                            /* set by the store, as partner_t.revision */
} settings_t;

/* Lync's defaults (lync-spec §7 item 5) and fedgate's; dialback_passphrase left "". */
void settings_defaults(settings_t *s);

/* Bounds and cross-field rules (partner limit above the total, inactivity shorter than the
   keepalive interval, ...). 0 when no error was added, FG_EREFUSED otherwise. */
int settings_validate(const settings_t *s, report_t *rep);

/* Fills 32 random bytes from getrandom(2), hex-encoded (64 characters). 0 or -errno. */
int settings_generate_passphrase(settings_t *s);

/* The stream limits and timers a new stream copies (core/peer.h). */
void settings_stream_limits(const settings_t *s, stream_limits_t *out);

int settings_encode(const settings_t *s, uint8_t *out, size_t cap, size_t *len);
int settings_decode(const uint8_t *in, size_t len, settings_t *s);
