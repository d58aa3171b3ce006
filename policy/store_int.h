/*
 * Internals shared by the store's .c files (store_env.c, store.c, store_read.c); not a public
 * header. Holds the one-environment-per-path registry (LMDB forbids opening one environment twice
 * in a process), the database handles and the LMDB error translation.
 */
#pragma once

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/schema.h"
#include "policy/store.h"

typedef enum {
    DB_PARTNERS = 0,
    DB_PARTNER_DOMAINS,
    DB_HOSTED,
    DB_SETTINGS,
    DB_ACCESS,
    DB_META,
    DB_AUDIT,
    DB_USERS,
    DB_SESSIONS,
    DB_PANEL,
    DB_CHANGES, /* (seq, db, key) of every policy record written: readers patch their cache */
    DB_LEDGER,  /* authorisation ledger (policy/ledger.h); written by the gateway, not the admin */
    DB_COUNT_,
} store_db_t;

#define STORE_REC_BUF      32768 /* larger than any encoded record (schema.h sizes) */
#define STORE_AUDIT_KEEP   100000
#define STORE_SETTINGS_KEY "gateway"
#define STORE_CHANGES_KEEP 4096 /* change sequences kept in the change log */
#define STORE_CHANGES_TXN  1024 /* keys logged per transaction; more logs one "full" marker */
#define STORE_CHANGE_FULL  0xff /* db byte of the marker: readers rebuild everything */

typedef struct store_env {
    char path[4096];
    MDB_env *env;
    MDB_dbi dbi[DB_COUNT_];
    int refs;
    bool readonly;
    size_t txn_changes; /* keys logged in the current write txn (one writer at a time) */
} store_env_t;

struct store {
    store_env_t *e;
    bool readonly;
    char path[4096];
};

struct store_txn {
    store_t *s;
    MDB_txn *txn;
    bool write;
};

extern const char *const store_db_names[DB_COUNT_];

/* LMDB or errno code to core/err.h. */
int store_mdb_err(int rc);
/*
 * Takes a reference on the environment of `dir` (opening it on first use). create: make the
 * directory and databases if missing. err receives an operator line on failure.
 */
int store_env_acquire(const char *dir, bool create, bool readonly, store_env_t **out, char *err,
                      size_t errlen);
void store_env_release(store_env_t *e);
/* Checks meta/schema_version inside txn: 0 (absent or <= ours), FG_EVERSION. */
int store_check_version(store_env_t *e, MDB_txn *txn, uint32_t *found);

/* Record get/put in a txn. get: 0, FG_ENOTFOUND, FG_EPARSE/FG_EVERSION from decoding. */
int store_get_rec(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, const schema_t *s,
                  void *obj);
int store_put_rec(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, const schema_t *s,
                  const void *obj);
/* The gateway settings in txn, or their defaults when they were never written. */
int store_get_settings(store_env_t *e, MDB_txn *t, settings_t *st);
int store_get_str(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, MDB_val *v);
int store_put_str(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, const void *v,
                  size_t n);
int store_del_key(store_env_t *e, MDB_txn *t, store_db_t db, const char *key);
/* Appends an audit record and bumps meta/change_counter; writes meta/last_change. */
int store_audit_append_txn(store_env_t *e, MDB_txn *t, const char *actor, const char *verb,
                           const char *subject, const char *before, const char *after);
/* Resets the per-transaction change count; call after beginning a write txn. */
void store_changes_begin(store_env_t *e);
/* Big-endian u64 helpers for keys that sort by number. */
void store_be64(uint8_t *b, uint64_t v);
uint64_t store_rd_be64(const uint8_t *b);
/* "os:<user>" for the effective uid. */
void store_default_actor(char *out, size_t outlen);

/* ---- operations shared by store.c and store_batch.c ---- */

typedef struct {
    store_t *s;
    store_env_t *e;
    MDB_txn *t;
    store_ctx_t *ctx;
} store_op_t;

/* JSON of a record without secrets, malloc'd (NULL on failure). */
char *store_obj_json(const schema_t *sc, const void *obj);
int store_op_begin(store_t *s, store_ctx_t *ctx, store_op_t *op);
/* Audits and commits when ret == 0 and changed (aborts in what-if); frees before/after. */
int store_op_end(store_op_t *op, int ret, const char *verb, const char *subject, char *before,
                 char *after, bool changed);
int store_tx_partner_put(store_op_t *op, partner_t *p, partner_t *old, store_put_mode_t mode,
                         uint64_t expected_rev, report_t *rep, char **before_json,
                         char **after_json, bool *changed, bool *created);
int store_tx_partner_del(store_op_t *op, const char *key, uint64_t expected_rev, partner_t *old,
                         report_t *rep, char **before_json);
int store_tx_settings_put(store_op_t *op, settings_t *in, uint64_t expected_rev, report_t *rep,
                          char **before, char **after, bool *changed);
int store_tx_hosted_put(store_op_t *op, hosted_t *h, store_put_mode_t mode, uint64_t expected_rev,
                        report_t *rep, char **before, char **after, bool *changed, bool *created);
int store_tx_hosted_del(store_op_t *op, const char *key, report_t *rep, char **before);
/* value NULL = unset. before/after receive "true"/"false"/"null" (8 bytes each). */
int store_tx_access_set(store_op_t *op, const char *key, const bool *value, char *before,
                        char *after, bool *changed);
