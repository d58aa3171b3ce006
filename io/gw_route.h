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
#include <stdint.h>

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
/* A stanza posted to another worker: one block holding from, to and the bytes. Blocks come from
   the posting worker's pool and go back to it in batches (GW_MSG_RETURN), so the cross-worker
   path allocates nothing in steady state. */
typedef struct gw_route_msg gw_route_msg_t;
struct gw_route_msg {
    gw_route_msg_t *next; /* pool or return list */
    unsigned origin;      /* worker whose pool it belongs to */
    size_t cap;           /* bytes of buf */
    size_t len;           /* stanza bytes */
    uint16_t from_len, to_len;
    char buf[]; /* from NUL to NUL stanza */
};
/* Pool block size (larger stanzas get a block of their own, freed on return). */
#define GW_MSG_BLOCK 8192
/* Blocks a worker keeps in its pool. */
#define GW_POOL_MAX 4096
/* Blocks a consumer collects before sending them back in one message. */
#define GW_RETURN_BATCH 32

/* Consumer side: deliver a posted stanza, then queue its block for return to its origin. */
void gw_route_deliver_msg(gw_worker_t *k, gw_route_msg_t *m);
/* Origin side: a batch of blocks came back. */
void gw_route_recycle(gw_worker_t *k, gw_route_msg_t *list);
/* Send back what is queued for return (from a timer, so stragglers don't wait for a batch). */
void gw_route_flush_returns(gw_worker_t *k);
/* Free the pool and the return lists (worker stop). */
void gw_route_free_pools(gw_worker_t *k);
