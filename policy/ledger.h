/*
 * The authorisation ledger: which local user (bare JID) has invited which partner user (bare JID)
 * by sending an outbound presence `subscribe` or `subscribed`, and when. A PublicUnverified
 * partner's users may subscribe to, and message, a local user only while such an invitation is
 * valid (lync-spec §4.1, docs/partner-types.md).
 *
 * It also remembers when the local user last wrote to the partner user (an outbound message), so
 * the partner user's replies pass for the same interval: a conversation our user started, not an
 * invitation (no subscription is allowed by it).
 *
 * Storage: the `ledger` database of the policy store (docs/store.md), so every worker and every
 * node reading the store sees the same invitations, and they survive restarts.
 *   key   = local bare JID, NUL, remote bare JID (both normalised by ledger_bare_jid)
 *   value = version byte (1), flags byte (bit 0: answered), invited_at, messaged_at (Unix s,
 *           i64 little-endian each; 0 = never)
 *   key "\0count" = number of entries (u64 LE), "\0batches" = committed batches (u64 LE); both
 *   are written in the same transaction as the entries, so they always agree with them.
 *
 * Writing: the stanza path never waits on the disk. ledger_post_*() copy the operation into a
 * bounded queue (mutex held for one copy) and return; ONE writer thread swaps the queue out and
 * applies everything in it in ONE write transaction (group commit), commits (fsync), then calls
 * the optional on_commit hook. A full queue answers FG_ELIMIT at once: the caller bounces the
 * stanza with <resource-constraint/>. Each batch is all-or-nothing (LMDB), so a crash loses at
 * most the operations not yet committed, never half a batch.
 *
 * Reading: a ledger_reader_t per worker thread holds one LMDB read transaction that is renewed
 * at the start of a batch of stanzas (ledger_reader_refresh) and reset at its end
 * (ledger_reader_end): a lookup takes no lock and allocates nothing; no read transaction is held
 * across a wait. A lookup outside a batch renews and resets by itself (slower).
 *
 * Ownership: the writer and readers are owned by their opener and freed by stop/close. Posting
 * is thread-safe; a reader belongs to one thread. Strings passed in are copied or borrowed for
 * the call only. Entries handed to a ledger_list() callback are borrowed for the callback.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One bare JID in a key; two of them plus the NUL fit LMDB's 511-octet key limit. */
#define LEDGER_JID_MAX         254
#define LEDGER_KEY_MAX         (2 * LEDGER_JID_MAX + 1)
#define LEDGER_QUEUE_DEFAULT   4096
#define LEDGER_VALUE_VERSION   1
#define LEDGER_VALUE_LEN       18
#define LEDGER_F_ANSWERED      0x01
#define LEDGER_HIST_BUCKETS    16 /* batch-size histogram: bucket i counts sizes in [2^i, 2^i+1) */
#define LEDGER_REFRESH_DEFAULT 28800

typedef enum {
    LEDGER_ABSENT = 0,       /* no invitation */
    LEDGER_VALID = 1,        /* answered, or unanswered and younger than the refresh interval */
    LEDGER_EXPIRED = 2,      /* unanswered for longer than SubscriptionRefreshInterval */
    LEDGER_CONVERSATION = 3, /* no valid invitation, but our user wrote to them within the
                                interval: their messages pass, a subscription request does not */
} ledger_answer_t;

typedef struct {
    int64_t invited_at;  /* Unix seconds of the latest invitation; 0 = never invited */
    int64_t messaged_at; /* Unix seconds of the local user's latest message to them; 0 = never */
    bool answered;       /* the partner user answered (subscribe/subscribed back): no expiry */
} ledger_entry_t;

/* ---- keys and values (pure) ---- */

/*
 * Bare JID of `jid` (a resource is dropped) with ASCII letters lower-cased in every part (as
 * access keys), into out. Length written, FG_EPARSE (not a JID, or no localpart: invitations are
 * between users), FG_ELIMIT (longer than LEDGER_JID_MAX).
 */
int ledger_bare_jid(const char *jid, char *out, size_t outlen);
/*
 * The same for an address the stream engine has already validated (core/stream runs jid_parse
 * on every stanza's to and from): no syntax checks, one pass. For the stanza path; operator
 * input goes through ledger_bare_jid. Length, FG_EPARSE (no localpart), FG_ELIMIT.
 */
int ledger_bare_jid_trusted(const char *jid, char *out, size_t outlen);
/* local NUL remote into key[LEDGER_KEY_MAX]; length or FG_ELIMIT. Inputs already bare. */
int ledger_key(const char *local, const char *remote, char *key, size_t keylen);
void ledger_value_encode(const ledger_entry_t *e, uint8_t out[LEDGER_VALUE_LEN]);
/* 0, FG_EPARSE (wrong length, unknown flag), FG_EVERSION (newer writer). */
int ledger_value_decode(const void *v, size_t len, ledger_entry_t *out);
/* The rule: answered entries never expire; an invitation is valid while now < invited_at +
   refresh_s; failing that, a message is a conversation while now < messaged_at + refresh_s. */
ledger_answer_t ledger_judge(const ledger_entry_t *e, int64_t now, uint32_t refresh_s);
const char *ledger_answer_name(ledger_answer_t a); /* "valid", "conversation", "expired", ... */

/* ---- the writer (one per process) ---- */

typedef struct ledger_writer ledger_writer_t;

typedef struct {
    size_t capacity;  /* operations the queue holds; 0 = LEDGER_QUEUE_DEFAULT */
    size_t max_batch; /* operations per transaction; 0 = capacity (1 = one commit per op) */
    /* Called by the writer thread after each commit (items = operations in the batch, ret = the
       commit's result). Wakes readers that want to see the change; must not block for long. */
    void (*on_commit)(void *arg, size_t items, int ret);
    void *arg;
} ledger_writer_config_t;

typedef struct {
    uint64_t posted;    /* operations accepted */
    uint64_t refused;   /* FG_ELIMIT answers (queue full) */
    uint64_t committed; /* operations in committed batches */
    uint64_t failed;    /* operations in batches whose commit failed */
    uint64_t batches;
    uint64_t max_batch;
    uint64_t hist[LEDGER_HIST_BUCKETS];
} ledger_writer_stats_t;

/* Opens (creating the ledger database if missing) the store in dir and starts the writer
   thread. cfg may be NULL. 0, FG_ENOTFOUND / FG_ESTORE (store), -errno (thread). */
int ledger_writer_start(const char *dir, const ledger_writer_config_t *cfg, ledger_writer_t **out);
/* Commits everything already posted, stops the thread, closes. NULL is a no-op. */
void ledger_writer_stop(ledger_writer_t *w);

/*
 * Queue an operation. Never blocks on I/O (the queue lock is held for one copy). Bare JIDs as
 * ledger_bare_jid writes them. 0, FG_ELIMIT (queue full), FG_EPARSE (a JID too long or empty),
 * FG_ESTALE (writer stopping).
 */
int ledger_post_invite(ledger_writer_t *w, const char *local, const char *remote, int64_t now);
/* The local user wrote to the partner user (creates the entry if needed; no invitation). */
int ledger_post_message(ledger_writer_t *w, const char *local, const char *remote, int64_t now);
/* The partner user answered a still-valid invitation: the entry stops expiring. */
int ledger_post_answer(ledger_writer_t *w, const char *local, const char *remote, int64_t now);
int ledger_post_remove(ledger_writer_t *w, const char *local, const char *remote);
/* Delete unanswered entries invited and messaged before `cutoff` (now - interval); call it
   from a timer now and then, so the database does not grow with dead invitations. */
int ledger_post_purge(ledger_writer_t *w, int64_t cutoff);
/* Waits until every operation posted before the call is committed (tests, shutdown, tools; never
   on the stanza path). 0 or the error of a failed commit. */
int ledger_writer_flush(ledger_writer_t *w);
void ledger_writer_stats(ledger_writer_t *w, ledger_writer_stats_t *out);

/* ---- readers (one per worker thread) ---- */

typedef struct ledger_reader ledger_reader_t;

int ledger_reader_open(const char *dir, ledger_reader_t **out);
void ledger_reader_close(ledger_reader_t *r);
/* Start of a batch: (re)new the read transaction so lookups see the latest commit. 0 or error. */
int ledger_reader_refresh(ledger_reader_t *r);
/* End of a batch: reset the transaction (no snapshot is pinned while the worker waits). */
void ledger_reader_end(ledger_reader_t *r);
/* Invitation from `local` to `remote` (normalised bare JIDs) judged at `now`. An error reading
   the store answers LEDGER_ABSENT: the PublicUnverified rules then refuse (fail closed). */
ledger_answer_t ledger_lookup(ledger_reader_t *r, const char *local, const char *remote,
                              int64_t now, uint32_t refresh_s);
/* The stored entry itself: 0, FG_ENOTFOUND, FG_EPARSE/FG_EVERSION. */
int ledger_get(ledger_reader_t *r, const char *local, const char *remote, ledger_entry_t *out);

/* ---- tools (fedgate-admin; each call is its own transaction) ---- */

/* Entries whose local / remote equal the filters (NULL = any), in key order. A non-zero return
   of cb stops the walk and is returned. FG_EPARSE when an entry does not decode. */
int ledger_list(const char *dir, const char *local, const char *remote,
                int (*cb)(const char *local, const char *remote, const ledger_entry_t *e,
                          void *arg),
                void *arg);
/* Counters stored with the entries. */
int ledger_counts(const char *dir, uint64_t *entries, uint64_t *batches);
/* Removes one entry (local and remote), every entry of local (remote NULL), every entry to
   remote (local NULL), or all (both NULL) in one transaction; *removed = how many.
   FG_ENOTFOUND when nothing matched. */
int ledger_remove(const char *dir, const char *local, const char *remote, uint64_t *removed);
