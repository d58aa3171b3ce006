/*
 * gw_route: where a stanza goes. Stanzas for a hosted domain go to its route (the component that
 * serves it, possibly on another worker); stanzas for a partner go over the worker's authenticated
 * OUT stream for the domain pair, or a new one whose engine queues them (bounded) while it is set
 * up. What cannot be delivered is bounced to its sender with the RFC 6120 §10.4.3 error.
 *
 * Ownership: stanza bytes are borrowed for the call; a cross-worker delivery copies them into one
 * heap block that the receiving worker frees. Everything runs on the calling worker's thread.
 */
#pragma once

#include <stddef.h>

#include "core/jid.h"
#include "io/gw.h"

/* A stanza (serialized without content namespace) from `from` to `to` (JIDs), entering routing on
   worker k. Never fails: undeliverable stanzas are bounced and counted. */
void gw_route_stanza(gw_worker_t *k, const char *from, const char *to, const void *data,
                     size_t len);
/* Deliver to the component of `to`'s hosted domain, which must be connected to worker k. */
void gw_route_local_component(gw_worker_t *k, const char *from, const char *to, const void *data,
                              size_t len);
/* Bounce a stanza to its sender with a stanza error condition (RFC 6120 §8.3.3). */
void gw_route_bounce(gw_worker_t *k, const void *data, size_t len, const char *condition);
/* The message posted between workers by gw_route_stanza: header plus bytes in one block. */
typedef struct {
    char from[JID_MAX + 1];
    char to[JID_MAX + 1];
    size_t len;
    unsigned char data[];
} gw_route_msg_t;
