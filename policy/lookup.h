/*
 * Read side for workers: a per-thread policy reader with a decoded cache of the whole policy,
 * rebuilt only when the store changed, so that a lookup takes no lock, makes no allocation and
 * touches no LMDB page.
 *
 * Cycle: call policy_reader_refresh() once per event-loop iteration (or batch). It renews the
 * read transaction, compares mdb_txn_id with the snapshot the cache was built from, rebuilds the
 * cache only when it differs, then resets the transaction: no read transaction is ever held
 * across a wait, so the admin can always reclaim pages. Between refreshes every lookup answers
 * from one consistent snapshot (one LMDB commit).
 *
 * Ownership: a policy_reader_t belongs to the thread that opened it. Pointers returned by the
 * lookups point into its cache and are valid until the next policy_reader_refresh() that returns
 * 1 (or policy_reader_close); copy what must live longer. Several readers of one store in one
 * process share a single LMDB environment (the store module keeps one per path).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"
#include "policy/hosted.h"
#include "policy/partner.h"
#include "policy/settings.h"

typedef struct policy_reader policy_reader_t;

/* A partner as a worker needs it. Strings point into the reader's cache. */
typedef struct {
    const char *domain;        /* primary domain */
    peer_rules_t rules;        /* type, tls, sasl, dialback, keepalive */
    uint32_t connection_limit; /* effective: partner's, or the gateway's PartnerConnectionLimit */
    bool connection_limit_set; /* the partner set its own */
    const char *proxy_host;    /* NULL: resolve by SRV */
    uint16_t proxy_port;       /* 0: 5269 */
    uint64_t revision;
} policy_partner_t;

/* A hosted domain as a worker needs it. */
typedef struct {
    const char *domain;
    const char *cert_path;
    const char *key_path;
    hosted_route_t route;
    const char *secret;      /* component route */
    const char *target_host; /* s2s route */
    uint16_t target_port;
    bool enabled;
    uint64_t revision;
} policy_hosted_t;

/*
 * Opens a reader on the store in `dir` (read-only; the store must exist and be initialised).
 * FG_ESTORE / FG_EVERSION as store_open; the cache is built before returning.
 */
int policy_reader_open(const char *dir, policy_reader_t **out);
void policy_reader_close(policy_reader_t *r);

/* 1 when the store changed and the cache was rebuilt (earlier lookup pointers are now invalid),
   0 when unchanged, <0 on error (the previous cache stays in use). */
int policy_reader_refresh(policy_reader_t *r);
/* The LMDB transaction id the cache reflects; grows with every commit seen. */
uint64_t policy_reader_generation(const policy_reader_t *r);

/*
 * Partner whose primary or additional domain is `domain`, or NULL. `domain` must be normalised
 * (domain_normalize) — bytes are compared. No lock, no allocation, no LMDB access.
 */
const policy_partner_t *policy_lookup(const policy_reader_t *r, const char *domain);
const policy_partner_t *policy_lookup_n(const policy_reader_t *r, const char *domain, size_t len);
/* The profile for unknown domains (partner key "*") when settings.unknown_domains is allow and
   the profile exists; NULL otherwise (deny). */
const policy_partner_t *policy_lookup_default(const policy_reader_t *r);
const policy_hosted_t *policy_lookup_hosted(const policy_reader_t *r, const char *domain);
/* Gateway settings of the snapshot (never NULL once open). */
const settings_t *policy_settings(const policy_reader_t *r);
/* EnableXmppAccess for a normalised bare JID, most specific scope wins (access.h). */
bool policy_access(const policy_reader_t *r, const char *jid);
/* Counts in the snapshot and bytes held by the cache (for metrics and the benchmark). */
void policy_reader_stats(const policy_reader_t *r, size_t *partners, size_t *domains,
                         size_t *hosted, size_t *cache_bytes);

/* How many refreshes rebuilt the cache from scratch and how many patched it in place from the
   store's change log (small changes patch; settings changes and big imports rebuild). */
void policy_reader_counts(const policy_reader_t *r, uint64_t *rebuilds, uint64_t *patches);

/*
 * The uncached path: renew the read transaction, mdb_get partner_domains then partners, decode,
 * reset. 0, FG_ENOTFOUND. Allocation-free but ~1 µs; kept for comparison and for tools.
 */
int policy_lookup_uncached(policy_reader_t *r, const char *domain, partner_t *out);
/* Baseline for the benchmark: a bare mdb_get of `domain` in partner_domains, nothing decoded. */
int policy_lookup_raw(policy_reader_t *r, const char *domain);
