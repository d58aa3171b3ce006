/*
 * gw_ptype: the daemon's adapter to the partner-type and access rules (lync-spec §4,
 * docs/partner-types.md). The rules themselves are policy/decide (pure decisions) and
 * policy/ledger (the invitations, in the store): this module only feeds them what the routing
 * code knows about a stanza crossing the gateway and carries out the verdict — bounce or drop a
 * refused stanza, post the ledger operation, strip <status/>, write the audit line, count the
 * rule on /metrics.
 *
 * One ledger writer per process (gw_t.ledger, gw_ptype_start/stop from main), one ledger reader
 * per worker (gw_ptype_worker_open/close from the worker hooks). A lookup renews the reader's
 * read transaction and resets it before returning, so no snapshot is held across a wait of the
 * ring. The invitations are in the store: every worker and every node sees the same ones and they
 * survive restarts.
 *
 * Ownership: the writer belongs to gw_t, the reader, the private parser and its arena and buffer
 * to the worker. Stanza bytes handed to gw_ptype_check are borrowed; the replacement bytes it may
 * return live in the worker's buffer until its next call.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"
#include "core/stanza.h"
#include "policy/decide.h"

typedef struct gw_worker gw_worker_t;

/* How often worker 0 asks the writer to purge dead invitations (ms). */
#define GW_PTYPE_PURGE_MS 60000

/* Starts the process's ledger writer on the store dir (into *out). 0 or the ledger's error. */
int gw_ptype_start(const char *store_dir, ledger_writer_t **out);
/* Commits what is queued and stops the writer (NULL: no-op). */
void gw_ptype_stop(ledger_writer_t *w);

/* Per worker: the ledger reader and the per-rule counters. 0 or the ledger's error. */
int gw_ptype_worker_open(gw_worker_t *k);
void gw_ptype_worker_close(gw_worker_t *k);
/* From a worker's periodic timer: worker 0 posts a purge of expired invitations now and then. */
void gw_ptype_tick(gw_worker_t *k);

/* Kind of a serialized stanza from its start tag (the same kinds as decide_kind on a tree). */
decide_kind_t gw_ptype_kind(const void *data, size_t len);

/*
 * What the audit line without bodies needs, read from the start tag of a stanza's bytes (as
 * received or as serialized) without parsing the rest: an element in arena `a` with the stanza's
 * name and its from, to, type and id as a parser would report them (line ends and white space
 * normalized, entity and character references resolved). decide_audit_line() gives it the same
 * line as the parsed tree. NULL when the tag is not read here (a prefixed name, no end of tag, a
 * reference it does not know, arena full): parse the stanza then.
 */
stanza_t *gw_ptype_head(stanza_arena_t *a, const void *data, size_t len);

/*
 * A stanza crossing the gateway: dir INBOUND (from a partner user to a local user) or OUTBOUND;
 * `type` is the partner's PartnerType (of the remote domain). Decides with policy/decide, then:
 *   - refused: bounced (gw_route_bounce with the rule's condition) or dropped, counted; false;
 *   - ledger operation that cannot be queued: bounced <resource-constraint/>; false;
 *   - passed: true, with *data and *len replaced by the bytes without <status/> when the rule
 * strips them (borrowed from the worker until its next call). Messages get their audit line (bodies
 * only with EnableLoggingAllMessageBodies). Stanzas with a bare domain on either side are outside
 * the user rules: true, unchanged.
 */
bool gw_ptype_check(gw_worker_t *k, decide_dir_t dir, partner_type_t type, const char *from,
                    const char *to, const void **data, size_t *len);
