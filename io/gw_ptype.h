/*
 * gw_ptype: the PartnerType rules of lync-spec §4.1 at stanza level.
 *
 *  - Inbound from a PublicUnverified partner: a message or a subscription request reaches a local
 *    user only when that user authorised the sender first — sent it a message, a subscription
 *    request or a pre-approval — within SubscriptionRefreshInterval (DESIGN.md §6). Otherwise it
 *    is refused with <service-unavailable/>, the answer a non-existent user gets (RFC 6120 §13.11).
 *  - Outbound presence to PublicVerified and PublicUnverified partners loses its <status/>
 *    ("notes are never visible").
 *  - Federated partners: everything flows.
 *
 * The authorisations live in a per-worker table: a component's outbound stanzas and the inbound
 * ones for its domain are both handled on the component's worker. The table is direct-mapped
 * (GW_AUTH_SLOTS entries of a 64-bit hash of "local|remote" and an expiry): a collision can only
 * forget an authorisation early, never grant one. Nothing is allocated after creation.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"

#define GW_AUTH_SLOTS 65536

typedef struct gw_worker gw_worker_t;

typedef enum {
    GW_ST_OTHER = 0,      /* iq, presence other than the kinds below, anything else */
    GW_ST_MESSAGE,        /* message, not type='error' */
    GW_ST_SUBSCRIBE,      /* presence type='subscribe' */
    GW_ST_SUBSCRIBED,     /* presence type='subscribed' (approval or pre-approval) */
    GW_ST_PRESENCE_AVAIL, /* presence without a type (availability, may carry <status/>) */
} gw_stanza_kind_t;

/* Kind of a serialized stanza, from its start tag only. */
gw_stanza_kind_t gw_ptype_classify(const void *data, size_t len);

/* A local user sent something to a partner JID: remember that it authorised the partner. */
void gw_ptype_outbound(gw_worker_t *k, const char *from, const char *to, gw_stanza_kind_t kind,
                       uint32_t refresh_s);
/* May this inbound stanza from a partner of `type` reach the local user? */
bool gw_ptype_inbound_ok(gw_worker_t *k, partner_type_t type, const char *from, const char *to,
                         gw_stanza_kind_t kind);
/* Outbound presence for a partner of `type`: the bytes to send instead (without <status/>), in
   k's scratch buffer (valid until the next call), or NULL to send the stanza unchanged. */
const uint8_t *gw_ptype_strip_status(gw_worker_t *k, partner_type_t type, const void *data,
                                     size_t len, size_t *out_len);
