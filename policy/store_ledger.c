/*
 * The LMDB side of the authorisation ledger (policy/ledger.h): the batch transaction of the
 * writer thread, the per-worker readers and the tool operations. Lives here because only
 * policy/store*.c include lmdb.h.
 */
#include "core/err.h"
#include "policy/ledger.h"
#include "policy/ledger_int.h"
#include "policy/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define META_COUNT   "\0count"
#define META_BATCHES "\0batches"

struct ledger_db {
    store_env_t *e;
};

struct ledger_reader {
    store_env_t *e;
    MDB_txn *txn;
    bool active; /* renewed and not yet reset */
};

static uint64_t rd_le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void wr_le64(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static int meta_get(MDB_txn *t, MDB_dbi dbi, const char *key, size_t klen, uint64_t *out)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t, dbi, &k, &v);
    *out = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return store_mdb_err(rc);
    if (v.mv_size != 8)
        return FG_EPARSE;
    *out = rd_le64(v.mv_data);
    return 0;
}

static int meta_put(MDB_txn *t, MDB_dbi dbi, const char *key, size_t klen, uint64_t val)
{
    uint8_t b[8];
    wr_le64(b, val);
    MDB_val k = {klen, (void *)key}, v = {8, b};
    return store_mdb_err(mdb_put(t, dbi, &k, &v, 0));
}

int ledger_db_open(const char *dir, ledger_db_t **out)
{
    char err[512];
    ledger_db_t *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    int ret = store_env_acquire(dir, false, false, &d->e, err, sizeof(err));
    if (ret) {
        free(d);
        return ret;
    }
    if (d->e->readonly || d->e->dbi[DB_LEDGER] == 0) {
        store_env_release(d->e);
        free(d);
        return FG_EREFUSED;
    }
    *out = d;
    return 0;
}

void ledger_db_close(ledger_db_t *d)
{
    if (!d)
        return;
    store_env_release(d->e);
    free(d);
}

/* Deletes unanswered entries older than cutoff; *count is decreased by the deletions. */
static int purge(MDB_txn *t, MDB_dbi dbi, int64_t cutoff, uint64_t *count)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int ret = store_mdb_err(mdb_cursor_open(t, dbi, &c));
    if (ret)
        return ret;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        ledger_entry_t en;
        if (k.mv_size && ((const char *)k.mv_data)[0] != '\0' &&
            ledger_value_decode(v.mv_data, v.mv_size, &en) == 0 && !en.answered &&
            en.invited_at < cutoff && en.messaged_at < cutoff) {
            rc = mdb_cursor_del(c, 0);
            if (rc)
                break;
            if (*count)
                (*count)--;
        }
        /* After a delete the cursor already points at the following record; MDB_NEXT returns
           that one (LMDB's C_DEL handling) rather than skipping it. */
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND)
        ret = store_mdb_err(rc);
    mdb_cursor_close(c);
    return ret;
}

static int apply_one(MDB_txn *t, MDB_dbi dbi, const ledger_op_t *op, uint64_t *count)
{
    MDB_val k = {op->klen, (void *)op->key}, v;
    ledger_entry_t en = {0};
    uint8_t buf[LEDGER_VALUE_LEN];
    if (op->kind == LEDGER_OP_PURGE)
        return purge(t, dbi, op->t, count);
    int rc = mdb_get(t, dbi, &k, &v);
    if (rc && rc != MDB_NOTFOUND)
        return store_mdb_err(rc);
    bool exists = rc == 0;
    /* An undecodable entry (newer writer) is left alone rather than overwritten. */
    if (exists && ledger_value_decode(v.mv_data, v.mv_size, &en) != 0)
        return 0;
    switch (op->kind) {
    case LEDGER_OP_INVITE:
        en.invited_at = op->t; /* a repeated invitation restarts the interval */
        break;
    case LEDGER_OP_MESSAGE:
        en.messaged_at = op->t;
        break;
    case LEDGER_OP_ANSWER:
        if (!exists || en.answered)
            return 0;
        en.answered = true;
        break;
    case LEDGER_OP_REMOVE:
        if (!exists)
            return 0;
        rc = mdb_del(t, dbi, &k, NULL);
        if (!rc && *count)
            (*count)--;
        return store_mdb_err(rc);
    default:
        return 0;
    }
    ledger_value_encode(&en, buf);
    v.mv_size = sizeof(buf);
    v.mv_data = buf;
    rc = mdb_put(t, dbi, &k, &v, 0);
    if (!rc && !exists)
        (*count)++;
    return store_mdb_err(rc);
}

int ledger_db_apply(ledger_db_t *d, const ledger_op_t *ops, size_t n)
{
    MDB_txn *t = NULL;
    MDB_dbi dbi = d->e->dbi[DB_LEDGER];
    uint64_t count, batches;
    int ret = store_mdb_err(mdb_txn_begin(d->e->env, NULL, 0, &t));
    if (ret)
        return ret;
    ret = meta_get(t, dbi, META_COUNT, sizeof(META_COUNT) - 1, &count);
    if (!ret)
        ret = meta_get(t, dbi, META_BATCHES, sizeof(META_BATCHES) - 1, &batches);
    for (size_t i = 0; !ret && i < n; i++)
        ret = apply_one(t, dbi, &ops[i], &count);
    if (!ret)
        ret = meta_put(t, dbi, META_COUNT, sizeof(META_COUNT) - 1, count);
    if (!ret)
        ret = meta_put(t, dbi, META_BATCHES, sizeof(META_BATCHES) - 1, batches + 1);
    if (ret) {
        mdb_txn_abort(t);
        return ret;
    }
    return store_mdb_err(mdb_txn_commit(t));
}

/* ---- readers ---- */

int ledger_reader_open(const char *dir, ledger_reader_t **out)
{
    char err[512];
    ledger_reader_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    int ret = store_env_acquire(dir, false, false, &r->e, err, sizeof(err));
    if (ret == FG_ESTORE) /* already open read-only in this process (a tool): share that one */
        ret = store_env_acquire(dir, false, true, &r->e, err, sizeof(err));
    if (ret) {
        free(r);
        return ret;
    }
    ret = store_mdb_err(mdb_txn_begin(r->e->env, NULL, MDB_RDONLY, &r->txn));
    if (ret) {
        store_env_release(r->e);
        free(r);
        return ret;
    }
    mdb_txn_reset(r->txn);
    *out = r;
    return 0;
}

void ledger_reader_close(ledger_reader_t *r)
{
    if (!r)
        return;
    mdb_txn_abort(r->txn);
    store_env_release(r->e);
    free(r);
}

int ledger_reader_refresh(ledger_reader_t *r)
{
    if (r->active)
        mdb_txn_reset(r->txn);
    r->active = false;
    int ret = store_mdb_err(mdb_txn_renew(r->txn));
    if (!ret)
        r->active = true;
    return ret;
}

void ledger_reader_end(ledger_reader_t *r)
{
    if (r->active)
        mdb_txn_reset(r->txn);
    r->active = false;
}

int ledger_get(ledger_reader_t *r, const char *local, const char *remote, ledger_entry_t *out)
{
    char key[LEDGER_KEY_MAX];
    int klen = ledger_key(local, remote, key, sizeof(key));
    if (klen < 0)
        return FG_ENOTFOUND;
    bool own = !r->active;
    if (own) {
        int ret = ledger_reader_refresh(r);
        if (ret)
            return ret;
    }
    MDB_val k = {(size_t)klen, key}, v;
    /* dbi 0: a read-only store made before the ledger existed (store_env.c): no entries. */
    int rc = r->e->dbi[DB_LEDGER] ? mdb_get(r->txn, r->e->dbi[DB_LEDGER], &k, &v) : MDB_NOTFOUND;
    int ret = store_mdb_err(rc);
    if (!ret)
        ret = ledger_value_decode(v.mv_data, v.mv_size, out);
    if (own)
        ledger_reader_end(r);
    return ret;
}

ledger_answer_t ledger_lookup(ledger_reader_t *r, const char *local, const char *remote,
                              int64_t now, uint32_t refresh_s)
{
    ledger_entry_t e;
    if (ledger_get(r, local, remote, &e) != 0)
        return LEDGER_ABSENT;
    return ledger_judge(&e, now, refresh_s);
}

/* ---- tools ---- */

static bool key_split(const MDB_val *k, const char **local, const char **remote, char *buf)
{
    if (!k->mv_size || k->mv_size >= LEDGER_KEY_MAX + 1 || ((const char *)k->mv_data)[0] == '\0')
        return false;
    memcpy(buf, k->mv_data, k->mv_size);
    buf[k->mv_size] = '\0';
    size_t l = strlen(buf);
    if (l + 1 >= k->mv_size)
        return false;
    *local = buf;
    *remote = buf + l + 1;
    return true;
}

int ledger_list(const char *dir, const char *local, const char *remote,
                int (*cb)(const char *local, const char *remote, const ledger_entry_t *e,
                          void *arg),
                void *arg)
{
    ledger_reader_t *r = NULL;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    char buf[LEDGER_KEY_MAX + 2];
    int ret = ledger_reader_open(dir, &r);
    if (ret)
        return ret;
    if ((ret = ledger_reader_refresh(r)))
        goto out;
    if (!r->e->dbi[DB_LEDGER]) /* no ledger database yet: nothing to list */
        goto out;
    int rc = mdb_cursor_open(r->txn, r->e->dbi[DB_LEDGER], &c);
    if ((ret = store_mdb_err(rc)))
        goto out;
    MDB_cursor_op op = MDB_FIRST;
    size_t llen = local ? strlen(local) : 0;
    if (local) { /* entries of one local user are adjacent: start at "local\0" */
        k.mv_size = llen + 1;
        k.mv_data = (void *)local;
        op = MDB_SET_RANGE;
    }
    for (rc = mdb_cursor_get(c, &k, &v, op); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const char *l, *rm;
        ledger_entry_t e;
        if (!key_split(&k, &l, &rm, buf))
            continue;
        if (local && strcmp(l, local) != 0)
            break;
        if (remote && strcmp(rm, remote) != 0)
            continue;
        if ((ret = ledger_value_decode(v.mv_data, v.mv_size, &e)))
            break;
        if ((ret = cb(l, rm, &e, arg)))
            break;
    }
    if (!ret && rc != MDB_NOTFOUND && rc != 0)
        ret = store_mdb_err(rc);
out:
    if (c)
        mdb_cursor_close(c);
    ledger_reader_close(r);
    return ret;
}

int ledger_counts(const char *dir, uint64_t *entries, uint64_t *batches)
{
    ledger_reader_t *r = NULL;
    int ret = ledger_reader_open(dir, &r);
    *entries = *batches = 0;
    if (ret)
        return ret;
    ret = ledger_reader_refresh(r);
    if (!ret && r->e->dbi[DB_LEDGER] != 0) {
        ret = meta_get(r->txn, r->e->dbi[DB_LEDGER], META_COUNT, sizeof(META_COUNT) - 1, entries);
        if (!ret)
            ret = meta_get(r->txn, r->e->dbi[DB_LEDGER], META_BATCHES, sizeof(META_BATCHES) - 1,
                           batches);
    }
    ledger_reader_close(r);
    return ret;
}

int ledger_remove(const char *dir, const char *local, const char *remote, uint64_t *removed)
{
    ledger_db_t *d = NULL;
    MDB_txn *t = NULL;
    MDB_cursor *c = NULL;
    MDB_val k, v;
    char buf[LEDGER_KEY_MAX + 2];
    uint64_t count = 0, n = 0;
    *removed = 0;
    int ret = ledger_db_open(dir, &d);
    if (ret)
        return ret;
    MDB_dbi dbi = d->e->dbi[DB_LEDGER];
    if ((ret = store_mdb_err(mdb_txn_begin(d->e->env, NULL, 0, &t))))
        goto out;
    if ((ret = meta_get(t, dbi, META_COUNT, sizeof(META_COUNT) - 1, &count)))
        goto out;
    if ((ret = store_mdb_err(mdb_cursor_open(t, dbi, &c))))
        goto out;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        const char *l, *rm;
        if (key_split(&k, &l, &rm, buf) && (!local || !strcmp(l, local)) &&
            (!remote || !strcmp(rm, remote))) {
            if ((rc = mdb_cursor_del(c, 0)))
                break;
            n++;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    if (rc != MDB_NOTFOUND && (ret = store_mdb_err(rc)))
        goto out;
    mdb_cursor_close(c);
    c = NULL;
    if (!n) {
        ret = FG_ENOTFOUND;
        goto out;
    }
    if ((ret = meta_put(t, dbi, META_COUNT, sizeof(META_COUNT) - 1, count > n ? count - n : 0)))
        goto out;
    ret = store_mdb_err(mdb_txn_commit(t));
    t = NULL;
    if (!ret)
        *removed = n;
out:
    if (c)
        mdb_cursor_close(c);
    if (t)
        mdb_txn_abort(t);
    ledger_db_close(d);
    return ret;
}
