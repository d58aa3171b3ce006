/*
 * gw_flow: backpressure from a congested destination to the streams that feed it.
 *
 * A stanza whose destination stream (a component, an OUT stream to a partner or an internal
 * server) has a full send queue is not bounced: it waits in the destination's backlog, and the
 * stream it came from stops receiving (conn_recv_pause) until the destination's queue has drained
 * to half. The sender's TCP window then closes and the load is slowed where it starts, instead of
 * being turned into bounces that each cost the sender a stream of its own. A stanza is bounced
 * with resource-constraint only when the backlog is full too (GW_BACKLOG_MAX).
 *
 * Only partner streams are paused: a component or an internal server, whose stanzas go to every
 * partner, is never held back for one partner's congested stream; what it sends to that stream
 * waits in the backlog and is bounced past it.
 *
 * A paused source stops at the stanza that found the destination congested; what it has received
 * beyond that waits, unparsed, in its input buffer, and gw_sess_resume() feeds it once the gate
 * opens. So each paused source adds at most one stanza to what a destination must absorb. Stanzas
 * for another worker whose inter-worker queue is full wait in this worker's outbox (bounded) and
 * pause their sources the same way.
 *
 * A paused source waits at a gate: the destination's own gate (same worker) or, for a component on
 * another worker, this worker's gate of the component's slot. The destination's worker marks the
 * slot busy while the component is congested and, when it drains, clears the mark and sends
 * GW_MSG_RESUME to every worker that registered a waiter (gw_comp_slot_t.waiters). A lost wake-up
 * (a full inter-worker queue) is repaired by gw_flow_tick, which also resumes any source paused
 * longer than GW_PAUSE_MAX_MS, so a cycle of streams waiting on each other cannot stall delivery:
 * it degrades to the backlog bound and bounces.
 *
 * Ownership: the backlog (records of from, to and the stanza bytes) is the destination session's,
 * freed with it; what it still holds then is bounced. Gates only link sessions; a session leaves
 * its gate when it is freed. Everything runs on the owning worker's thread except the slot
 * atomics.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "io/gw.h"

/* Bytes a destination may hold in its backlog (stanzas that arrived while its queue was full). */
#define GW_BACKLOG_MAX (4u << 20)
/* A source paused longer than this is resumed anyway (ms). */
#define GW_PAUSE_MAX_MS 2000

/* Sends the stanza on d now, or keeps it in d's backlog when d's queue is full or older stanzas
   wait; then, when d is congested, pauses k->cur_src (the stream the stanza came from) until d
   drains. The caller drains d's actions. 0, or an error to bounce with: FG_ELIMIT (full backlog or
   stream queue: resource-constraint) or another stream_send error. */
int gw_flow_send(gw_sess_t *d, const char *from, const char *to, const void *data, size_t len);
/* d's connection can take more: flush its backlog, and release its waiters once it drained. */
void gw_flow_writable(gw_sess_t *d);
/* Paused streams let go at once when their destination drains; the next batch follows once
   those have run, while there is room. */
#define GW_RELEASE_BATCH 16
/* Blocks waiting in one outbox at most; past it stanzas for that worker are bounced. */
#define GW_OUTBOX_MAX 4096

/* A new session's flow-control timer (before it can be a destination). */
void gw_flow_sess_init(gw_sess_t *s);
/* Worker start / stop: the outboxes and their timer. 0 or -ENOMEM. */
int gw_flow_start(gw_worker_t *k);
void gw_flow_stop(gw_worker_t *k);
/* Hands m (a stanza for the component of `slot`, connected to worker `owner`) to that worker. When
   its queue is full, m waits in this worker's outbox for it and k->cur_src is paused until the
   outbox empties; when the component is congested, k->cur_src is paused until it drains. 0 (m
   belongs to the owner or the outbox now) or FG_ELIMIT (the outbox is full: m is still the
   caller's). */
int gw_flow_post(gw_worker_t *k, unsigned owner, unsigned slot, struct gw_route_msg *m);
/* GW_MSG_RESUME: the component of `slot` drained. */
void gw_flow_slot_resumed(gw_worker_t *k, unsigned slot);
/* A paused stream is to run again now (its connection is closing: what it holds is routed). */
void gw_flow_leave(gw_sess_t *s);
/* s is being freed: leave its gate, resume its waiters, clear its slot's mark, bounce its
   backlog. */
void gw_flow_forget(gw_sess_t *s);
/* From the worker's refresh timer: repair lost wake-ups and end overlong pauses. */
void gw_flow_tick(gw_worker_t *k);
/* Release backlog capacity an idle destination no longer needs. */
void gw_flow_trim(gw_sess_t *s);
