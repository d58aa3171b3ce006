/*
 * The store, writer side: the LMDB environment and every validated change to it. Used only by
 * fedgate-admin (CLI and web panel); workers read through policy/lookup.h.
 *
 * Layout (DESIGN.md §5, docs/store.md): one environment in a directory, map size 1 GiB, mode
 * 0600, named databases partners, partner_domains, hosted, settings, access, meta, audit, users,
 * sessions (room for 16). Every operation below that changes something runs in ONE write
 * transaction together with its audit record: it is all-or-nothing, and two processes committing
 * at once serialise on LMDB's writer lock, so no update is lost.
 *
 * Return codes: 0; FG_EREFUSED validation failed (messages in the report, nothing saved);
 * FG_ECONFLICT name already used (the report names the other owner); FG_ENOTFOUND;
 * FG_ESTALE the object's revision is not the expected one ("changed by someone else");
 * FG_EVERSION the store was written by a newer schema; FG_ESTORE corrupt or failing store;
 * FG_ESPACE map full; -errno from the system.
 *
 * Ownership: store_t is owned by the caller of store_open and freed by store_close. One store_t
 * may be used by several threads (LMDB serialises writers); a store_txn_t belongs to the thread
 * that began it. Pointers returned by store_kv_get are borrowed until the transaction ends.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "policy/access.h"
#include "policy/hosted.h"
#include "policy/partner.h"
#include "policy/report.h"
#include "policy/settings.h"

typedef struct store store_t;
typedef struct store_txn store_txn_t;
typedef struct store_batch store_batch_t;

#define STORE_MAP_SIZE    (1ull << 30)
#define STORE_MAX_DBS     16
#define STORE_ANY_REV     0 /* expected revision that skips the staleness check */
#define STORE_ACTOR_MAX   128
#define STORE_DEFAULT_KEY "*" /* partners key of the profile for unknown domains */

enum {
    STORE_CREATE = 1u << 0,   /* create the directory and environment if missing */
    STORE_READONLY = 1u << 1, /* open read-only (get/list/export/audit only) */
};

/* Who changes what, and whether for real. */
typedef struct {
    const char *actor; /* "os:alice", "web:admin"; NULL = "os:" + the effective OS user */
    const char *verb;  /* audit verb; NULL = the operation's own ("partner new") */
    bool what_if;      /* validate and describe the change, commit nothing */
    /* Out: JSON {"verb":..,"subject":..,"before":..,"after":..} of what changed (or would), or
       NULL when nothing changed. Allocated by the store; the caller frees it with free(). */
    char *change;
} store_ctx_t;

/*
 * Opens (and with STORE_CREATE creates) the store in directory `dir`. Runs mdb_reader_check.
 * A store whose meta/schema_version is newer than SCHEMA_VERSION is refused with FG_EVERSION; a
 * file that is not an LMDB environment, truncated or corrupt gives FG_ESTORE. `err` (may be NULL)
 * receives one line for the operator: `store /x: written by schema version 2, this build reads
 * up to 1; upgrade fedgate`. Opening does not create defaults: see store_init.
 */
int store_open(const char *dir, unsigned flags, store_t **out, char *err, size_t errlen);
void store_close(store_t *s);
const char *store_path(const store_t *s);

/*
 * Creates whatever is missing: meta/schema_version, the gateway settings with Lync's defaults
 * and a freshly generated DialbackPassphrase, access/global = `global_access` (false for a bare
 * init, true for the README's demo). Idempotent: existing values are kept. Audited as "init".
 */
int store_init(store_t *s, store_ctx_t *ctx, bool global_access, report_t *rep);

/* meta/schema_version: the record layout the store was written with (what `status` shows),
   which may be older than SCHEMA_VERSION. 0, or FG_ENOTFOUND before store_init. */
int store_schema_version(store_t *s, uint32_t *version);

/* meta: the change counter (one per committed change) and the LMDB transaction id. */
int store_meta(store_t *s, uint64_t *change_counter, uint64_t *txn_id);

/* ---- partners ---- */

/* By primary domain (normalised or not). FG_ENOTFOUND, FG_EDOMAIN. */
int store_partner_get(store_t *s, const char *domain, partner_t *out);
/* By primary or additional domain. */
int store_partner_find(store_t *s, const char *domain, partner_t *out);
/* Calls cb for every partner in key order whose primary domain matches `glob` (NULL = all). A
   non-zero return from cb stops the walk and is returned. */
int store_partner_list(store_t *s, const char *glob, int (*cb)(const partner_t *p, void *arg),
                       void *arg);
/*
 * New partner. Validates (partner_validate + uniqueness against other partners and hosted
 * domains) and stores with revision 1. FG_ECONFLICT when the primary domain exists or a domain
 * belongs to another partner / is hosted. *p is updated with the normalised, stored record.
 */
int store_partner_create(store_t *s, store_ctx_t *ctx, partner_t *p, report_t *rep);
/* Replaces the record keyed by p->domain. expected_rev != STORE_ANY_REV must equal the stored
   revision, else FG_ESTALE. *p receives the stored record (new revision). */
int store_partner_update(store_t *s, store_ctx_t *ctx, partner_t *p, uint64_t expected_rev,
                         report_t *rep);
/*
 * Read-modify-write inside the write transaction: loads the partner with primary `domain`,
 * calls edit(p, arg) on it (which may return an error to abort, e.g. FG_EPARSE from an option),
 * validates and stores it. What `partner set` uses so two concurrent edits never lose one.
 * On success *out (may be NULL) receives the stored record.
 */
int store_partner_modify(store_t *s, store_ctx_t *ctx, const char *domain,
                         int (*edit)(partner_t *p, void *arg), void *arg, partner_t *out,
                         report_t *rep);
int store_partner_remove(store_t *s, store_ctx_t *ctx, const char *domain, uint64_t expected_rev,
                         report_t *rep);

/* ---- gateway settings (the singleton) ---- */

int store_settings_get(store_t *s, settings_t *out);
/* Validates and stores; a "" dialback_passphrase keeps the stored one. FG_ESTALE as above. */
int store_settings_update(store_t *s, store_ctx_t *ctx, settings_t *in, uint64_t expected_rev,
                          report_t *rep);
int store_settings_modify(store_t *s, store_ctx_t *ctx, int (*edit)(settings_t *st, void *arg),
                          void *arg, settings_t *out, report_t *rep);

/* ---- hosted domains ---- */

typedef enum {
    STORE_PUT_CREATE = 0, /* FG_ECONFLICT if it exists */
    STORE_PUT_UPDATE = 1, /* FG_ENOTFOUND if it does not */
    STORE_PUT_UPSERT = 2,
} store_put_mode_t;

int store_hosted_get(store_t *s, const char *domain, hosted_t *out);
int store_hosted_list(store_t *s, int (*cb)(const hosted_t *h, void *arg), void *arg);
/* Validates (hosted_validate + not a partner domain) and stores. An empty secret keeps the stored
   one (exports leave secrets out). */
int store_hosted_put(store_t *s, store_ctx_t *ctx, hosted_t *h, store_put_mode_t mode,
                     uint64_t expected_rev, report_t *rep);
int store_hosted_remove(store_t *s, store_ctx_t *ctx, const char *domain, report_t *rep);

/* ---- access policy (EnableXmppAccess) ---- */

/* `key` in any form access_key_parse accepts. 0 and *value, or FG_ENOTFOUND when unset. */
int store_access_get(store_t *s, const char *key, bool *value);
int store_access_set(store_t *s, store_ctx_t *ctx, const char *key, bool value, report_t *rep);
int store_access_unset(store_t *s, store_ctx_t *ctx, const char *key, report_t *rep);
int store_access_list(store_t *s, int (*cb)(const char *key, bool value, void *arg), void *arg);
/* Effective value for a bare JID, most specific scope wins; false when nothing is set. */
int store_access_effective(store_t *s, const char *jid, bool *value);

/* ---- export / import ---- */

enum {
    STORE_EXPORT_SECRETS = 1u << 0, /* include the dialback passphrase and component secrets */
};
/*
 * The whole policy as one JSON document that store_import_json accepts:
 * {"fedgate_store":1,"schema_version":N,"settings":{..},"partners":[..],"hosted":[..],
 *  "access":{"global":true,"domain:x":false,..}}. Appended to b.
 */
int store_export_json(store_t *s, unsigned flags, buf_t *b);

enum {
    /* Per section the document has (partners, hosted, access): remove the records of that
       section the document lacks. A section absent from the document is left alone; settings
       are a singleton and only ever updated. */
    STORE_IMPORT_REPLACE = 1u << 0,
};
/*
 * Applies a document of the export format (any of its sections may be missing; a bare array is
 * read as "partners") in ONE write transaction: every entry is validated, every invalid entry is
 * reported (subject "partners[3] fabrikam.com"), and nothing is saved unless all are valid.
 * Existing partners are updated (revision + 1), new ones created. 0 / FG_EREFUSED / FG_EPARSE.
 * With STORE_IMPORT_REPLACE, `{"hosted": []}` removes every hosted domain and nothing else.
 */
int store_import_json(store_t *s, store_ctx_t *ctx, const char *json, size_t len, unsigned flags,
                      report_t *rep);

/*
 * The same machinery for other importers (PowerShell CSV): begin, put records one at a time
 * (each validated against the store and against the records put before it in this batch),
 * commit. commit refuses with FG_EREFUSED when any error was reported to the batch; abort drops
 * everything. One batch at a time per store_t; the writer lock is held from begin to the end.
 */
int store_batch_begin(store_t *s, store_ctx_t *ctx, store_batch_t **out);
/* subject is the report subject for this entry ("line 7"); p/h/st are normalised in place. */
int store_batch_partner(store_batch_t *b, partner_t *p, const char *subject, report_t *rep);
int store_batch_hosted(store_batch_t *b, hosted_t *h, const char *subject, report_t *rep);
int store_batch_settings(store_batch_t *b, settings_t *st, report_t *rep);
int store_batch_access(store_batch_t *b, const char *key, bool value, report_t *rep);
/* Number of created / updated / removed records so far. */
void store_batch_counts(const store_batch_t *b, size_t *created, size_t *updated, size_t *removed);
int store_batch_commit(store_batch_t *b, report_t *rep); /* frees b in every case */
void store_batch_abort(store_batch_t *b);                /* frees b */

/* ---- audit ---- */

typedef struct {
    uint64_t seq;    /* change counter value */
    int64_t time_ms; /* Unix time, milliseconds */
    const char *actor;
    const char *verb;
    const char *subject;
    const char *before; /* JSON or "null"; secrets removed */
    const char *after;
} store_audit_t;

/* Entries with time_ms >= since_ms, oldest first. Strings borrowed for the callback only. */
int store_audit_list(store_t *s, int64_t since_ms, int (*cb)(const store_audit_t *a, void *arg),
                     void *arg);

/* ---- generic key/value access (control panel users, sessions) ---- */

/* Databases the generic API may name. The policy databases are read-only through it. */
#define STORE_DB_USERS    "users"
#define STORE_DB_SESSIONS "sessions"
#define STORE_DB_PANEL    "panel" /* spare room for the control panel */

int store_txn_begin(store_t *s, bool write, store_txn_t **out);
int store_txn_commit(store_txn_t *t); /* frees t in every case */
void store_txn_abort(store_txn_t *t); /* frees t */
/* 0 with *val borrowed until the txn ends, FG_ENOTFOUND, FG_EREFUSED for an unknown db name. */
int store_kv_get(store_txn_t *t, const char *db, const void *key, size_t klen, const void **val,
                 size_t *vlen);
/* Writes are allowed on users, sessions and panel only (FG_EREFUSED otherwise). */
int store_kv_put(store_txn_t *t, const char *db, const void *key, size_t klen, const void *val,
                 size_t vlen);
int store_kv_del(store_txn_t *t, const char *db, const void *key, size_t klen);
/* Keys starting with prefix (plen 0 = all) in key order; a non-zero cb return stops the walk. */
int store_kv_iterate(store_txn_t *t, const char *db, const void *prefix, size_t plen,
                     int (*cb)(const void *key, size_t klen, const void *val, size_t vlen,
                               void *arg),
                     void *arg);
/* Audit entry inside a write txn the caller commits (user created, password changed, ...). */
int store_txn_audit(store_txn_t *t, const store_ctx_t *ctx, const char *verb, const char *subject,
                    const char *before_json, const char *after_json);
