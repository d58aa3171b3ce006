/*
 * The environment registry, opening and checking a store, LMDB error translation, the audit log
 * and the generic key/value API.
 */
#include "policy/store_int.h"

#include "core/err.h"
#include "policy/schema.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *const store_db_names[DB_COUNT_] = {
    "partners", "partner_domains", "hosted",   "settings", "access",  "meta",
    "audit",    "users",           "sessions", "panel",    "changes", "ledger",
};

int store_mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return FG_ENOTFOUND;
    case MDB_KEYEXIST:
        return FG_ECONFLICT;
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_PAGE_FULL:
        return FG_ESPACE;
    case MDB_READERS_FULL:
    case MDB_DBS_FULL:
    case MDB_TLS_FULL:
        return FG_ELIMIT;
    case MDB_VERSION_MISMATCH:
        return FG_EVERSION;
    default:
        if (rc > 0 && rc < 4096)
            return -rc;
        return FG_ESTORE; /* MDB_CORRUPTED, MDB_INVALID, MDB_PAGE_NOTFOUND, MDB_BAD_* ... */
    }
}

/* ---- registry ---- */

#define REGISTRY_MAX 16
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static store_env_t *registry[REGISTRY_MAX];

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    if (strlen(dir) >= sizeof(tmp))
        return -ENAMETOOLONG;
    strcpy(tmp, dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST)
        return -errno;
    return 0;
}

/*
 * A truncated data file makes LMDB's mmap fault (SIGBUS) on the first read of a missing page, and
 * LMDB itself never checks. The page count of the meta page cannot be compared with the file size
 * either: pages allocated and freed inside one transaction count in it but are never written.
 * So the environment is walked once when this process first opens it (every record of every
 * database, including the free list), with SIGBUS turned into an error for the length of the
 * walk. Cost: one sequential read of the used pages, done once per process and store.
 */
static __thread sigjmp_buf *walk_jmp;

static void walk_sigbus(int sig)
{
    if (walk_jmp)
        siglongjmp(*walk_jmp, 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

static volatile unsigned char walk_sink;
static __thread MDB_cursor *walk_cursor; /* closed by the caller after a SIGBUS jump */

static int walk_db(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc)
        return store_mdb_err(rc);
    walk_cursor = c;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        /* the first and last byte reach the first and last page of an overflow value */
        if (v.mv_size)
            walk_sink ^= ((const unsigned char *)v.mv_data)[0] ^
                         ((const unsigned char *)v.mv_data)[v.mv_size - 1];
        for (size_t off = 4096; off < v.mv_size; off += 4096)
            walk_sink ^= ((const unsigned char *)v.mv_data)[off];
    }
    walk_cursor = NULL;
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
}

static int check_pages(MDB_env *env, const char *dir, char *err, size_t errlen)
{
    char file[4200];
    struct stat sb;
    MDB_stat st;
    snprintf(file, sizeof(file), "%s/data.mdb", dir);
    if (stat(file, &sb) || mdb_env_stat(env, &st))
        return FG_ESTORE;
    if (sb.st_size % st.ms_psize) {
        snprintf(err, errlen,
                 "store %s is truncated (%lld bytes is not a whole number of %u-byte pages): "
                 "restore it from an export or a backup",
                 dir, (long long)sb.st_size, st.ms_psize);
        return FG_ESTORE;
    }

    MDB_txn *txn = NULL;
    int ret = store_mdb_err(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
    if (ret)
        return ret;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = walk_sigbus;
    sigemptyset(&sa.sa_mask);
    sigjmp_buf jb;
    sigaction(SIGBUS, &sa, &old);
    if (sigsetjmp(jb, 1) == 0) {
        walk_jmp = &jb;
        ret = walk_db(txn, 0); /* free list */
        if (!ret)
            ret = walk_db(txn, 1); /* main db: the named databases' records */
        MDB_dbi dbi;
        for (int i = 0; !ret && i < DB_COUNT_; i++)
            if (mdb_dbi_open(txn, store_db_names[i], 0, &dbi) == 0)
                ret = walk_db(txn, dbi);
    } else {
        ret = FG_ESTORE;
        snprintf(err, errlen,
                 "store %s is truncated (%lld bytes; a page it uses is missing): restore it "
                 "from an export or a backup",
                 dir, (long long)sb.st_size);
    }
    walk_jmp = NULL;
    sigaction(SIGBUS, &old, NULL);
    if (walk_cursor)
        mdb_cursor_close(walk_cursor);
    walk_cursor = NULL;
    mdb_txn_abort(txn);
    if (ret && !err[0])
        snprintf(err, errlen, "store %s is corrupt (%s)", dir, fg_strerror(ret));
    return ret;
}

static int env_open(store_env_t *e, bool create, bool readonly, char *err, size_t errlen)
{
    int ret, rc;
    char file[4200];
    MDB_txn *txn = NULL;
    struct stat sb;

    snprintf(file, sizeof(file), "%s/data.mdb", e->path);
    if (stat(file, &sb) != 0) {
        if (!create) {
            snprintf(err, errlen, "no store in %s: create it with `fedgate-admin init`", e->path);
            return FG_ENOTFOUND;
        }
        ret = mkdir_p(e->path);
        if (ret) {
            snprintf(err, errlen, "cannot create store directory %s: %s", e->path, strerror(-ret));
            return ret;
        }
    } else if (!S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a store file", file);
        return FG_ESTORE;
    } else if (sb.st_size < 8192) {
        /* Two meta pages at least; anything shorter is not an LMDB environment. */
        snprintf(err, errlen, "store %s is truncated or not an LMDB store (%lld bytes)", e->path,
                 (long long)sb.st_size);
        return FG_ESTORE;
    }
    if (!readonly && access(e->path, W_OK) != 0)
        readonly = true; /* a reader without write permission on the directory */
    e->readonly = readonly;

    rc = mdb_env_create(&e->env);
    if (!rc)
        rc = mdb_env_set_mapsize(e->env, STORE_MAP_SIZE);
    if (!rc)
        rc = mdb_env_set_maxdbs(e->env, STORE_MAX_DBS);
    if (!rc)
        rc = mdb_env_set_maxreaders(e->env, 512);
    if (rc) {
        ret = store_mdb_err(rc);
        snprintf(err, errlen, "store %s: %s", e->path, mdb_strerror(rc));
        goto fail;
    }
    /* MDB_NOTLS: read transactions belong to the reader object, not the thread, so a worker may
       keep one reset transaction per reader and the admin may nest a read inside a write. */
    rc = mdb_env_open(e->env, e->path, MDB_NOTLS | (readonly ? MDB_RDONLY : 0), 0600);
    if (rc) {
        ret = store_mdb_err(rc);
        if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == EINVAL)
            snprintf(err, errlen, "store %s is corrupt or not an LMDB store (%s)", e->path,
                     mdb_strerror(rc));
        else
            snprintf(err, errlen, "cannot open store %s: %s", e->path, mdb_strerror(rc));
        if (rc == EINVAL || rc == MDB_INVALID)
            ret = FG_ESTORE;
        goto fail;
    }
    ret = check_pages(e->env, e->path, err, errlen);
    if (ret)
        goto fail;
    int dead = 0;
    mdb_reader_check(e->env, &dead); /* frees slots of crashed readers so they pin no pages */

    rc = mdb_txn_begin(e->env, NULL, readonly ? MDB_RDONLY : 0, &txn);
    if (rc) {
        ret = store_mdb_err(rc);
        snprintf(err, errlen, "store %s: %s", e->path, mdb_strerror(rc));
        goto fail;
    }
    for (int i = 0; i < DB_COUNT_; i++) {
        rc = mdb_dbi_open(txn, store_db_names[i], readonly ? 0 : MDB_CREATE, &e->dbi[i]);
        if (rc == MDB_NOTFOUND && i == DB_LEDGER) {
            /* A read-only open of a store made before the ledger existed: no invitations yet.
               dbi 0 (the free list) is refused by every user operation, so reads see nothing. */
            e->dbi[i] = 0;
            continue;
        }
        if (rc == MDB_NOTFOUND) {
            snprintf(err, errlen,
                     "store %s has no %s database: it was not created by fedgate-admin init",
                     e->path, store_db_names[i]);
            ret = FG_ESTORE;
            goto fail;
        }
        if (rc) {
            ret = store_mdb_err(rc);
            snprintf(err, errlen, "store %s is corrupt (database %s: %s)", e->path,
                     store_db_names[i], mdb_strerror(rc));
            goto fail;
        }
    }
    uint32_t found = 0;
    ret = store_check_version(e, txn, &found);
    if (ret) {
        snprintf(err, errlen,
                 "store %s was written by schema version %u; this build reads up to %d: "
                 "upgrade fedgate",
                 e->path, found, SCHEMA_VERSION);
        goto fail;
    }
    /* Commit even when read-only: handles opened in an aborted txn would be closed again. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) {
        ret = store_mdb_err(rc);
        snprintf(err, errlen, "store %s: %s", e->path, mdb_strerror(rc));
        goto fail;
    }
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (e->env)
        mdb_env_close(e->env);
    e->env = NULL;
    return ret;
}

int store_env_acquire(const char *dir, bool create, bool readonly, store_env_t **out, char *err,
                      size_t errlen)
{
    char real[PATH_MAX];
    int ret = 0;
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!dir || !*dir || strlen(dir) >= sizeof(real) - 16) {
        snprintf(err, errlen, "no store path given");
        return -EINVAL;
    }
    if (create && access(dir, F_OK) != 0) {
        ret = mkdir_p(dir);
        if (ret) {
            snprintf(err, errlen, "cannot create store directory %s: %s", dir, strerror(-ret));
            return ret;
        }
    }
    if (!realpath(dir, real)) {
        ret = -errno;
        snprintf(err, errlen, "no store in %s: %s", dir, strerror(errno));
        return ret == -ENOENT ? FG_ENOTFOUND : ret;
    }
    pthread_mutex_lock(&registry_lock);
    int free_slot = -1;
    for (int i = 0; i < REGISTRY_MAX; i++) {
        if (registry[i] && strcmp(registry[i]->path, real) == 0) {
            if (registry[i]->readonly && !readonly) {
                snprintf(err, errlen, "store %s is already open read-only in this process", real);
                ret = FG_ESTORE;
            } else {
                registry[i]->refs++;
                *out = registry[i];
            }
            goto out;
        }
        if (!registry[i] && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0) {
        snprintf(err, errlen, "too many stores open in one process");
        ret = FG_ELIMIT;
        goto out;
    }
    store_env_t *e = calloc(1, sizeof(*e));
    if (!e) {
        ret = -ENOMEM;
        goto out;
    }
    strcpy(e->path, real);
    ret = env_open(e, create, readonly, err, errlen);
    if (ret) {
        free(e);
        goto out;
    }
    e->refs = 1;
    registry[free_slot] = e;
    *out = e;
out:
    pthread_mutex_unlock(&registry_lock);
    return ret;
}

void store_env_release(store_env_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--e->refs == 0) {
        for (int i = 0; i < REGISTRY_MAX; i++)
            if (registry[i] == e)
                registry[i] = NULL;
        mdb_env_close(e->env);
        free(e);
    }
    pthread_mutex_unlock(&registry_lock);
}

int store_check_version(store_env_t *e, MDB_txn *txn, uint32_t *found)
{
    MDB_val k = {14, (void *)"schema_version"}, v;
    int rc = mdb_get(txn, e->dbi[DB_META], &k, &v);
    *found = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return store_mdb_err(rc);
    if (v.mv_size != 4)
        return FG_ESTORE;
    const uint8_t *b = v.mv_data;
    *found = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return *found > SCHEMA_VERSION ? FG_EVERSION : 0;
}

/* ---- records ---- */

static MDB_val key_of(const char *k)
{
    MDB_val v = {strlen(k), (void *)k};
    return v;
}

int store_get_rec(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, const schema_t *s,
                  void *obj)
{
    MDB_val k = key_of(key), v;
    int rc = mdb_get(t, e->dbi[db], &k, &v);
    if (rc)
        return store_mdb_err(rc);
    return schema_decode(s, v.mv_data, v.mv_size, obj);
}

void store_changes_begin(store_env_t *e)
{
    e->txn_changes = 0;
}

/* Records that `key` of `db` changed in this txn, under the sequence number the txn's audit
   entry will take (change_counter + 1). Only the databases readers cache are logged. */
static int log_change(store_env_t *e, MDB_txn *t, store_db_t db, const char *key)
{
    if (db != DB_PARTNERS && db != DB_HOSTED && db != DB_SETTINGS && db != DB_ACCESS)
        return 0;
    if (e->txn_changes > STORE_CHANGES_TXN)
        return 0;
    MDB_val k = {14, (void *)"change_counter"}, v;
    uint64_t seq = 1;
    int rc = mdb_get(t, e->dbi[DB_META], &k, &v);
    if (rc == 0 && v.mv_size == 8)
        seq = store_rd_be64(v.mv_data) + 1;
    else if (rc != MDB_NOTFOUND)
        return store_mdb_err(rc);
    uint8_t buf[8 + 1 + 1024];
    size_t n = strlen(key);
    if (n > 1024)
        return FG_ELIMIT;
    store_be64(buf, seq);
    if (++e->txn_changes > STORE_CHANGES_TXN) {
        buf[8] = STORE_CHANGE_FULL; /* too many to patch: readers rebuild */
        n = 0;
    } else {
        buf[8] = (uint8_t)db;
        memcpy(buf + 9, key, n);
    }
    MDB_val ck = {9 + n, buf}, cv = {0, NULL};
    return store_mdb_err(mdb_put(t, e->dbi[DB_CHANGES], &ck, &cv, 0));
}

int store_put_rec(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, const schema_t *s,
                  const void *obj)
{
    uint8_t buf[STORE_REC_BUF];
    size_t len;
    int ret = schema_encode(s, obj, buf, sizeof(buf), &len);
    if (ret)
        return ret;
    MDB_val k = key_of(key), v = {len, buf};
    ret = store_mdb_err(mdb_put(t, e->dbi[db], &k, &v, 0));
    return ret ? ret : log_change(e, t, db, key);
}

int store_get_str(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, MDB_val *v)
{
    MDB_val k = key_of(key);
    return store_mdb_err(mdb_get(t, e->dbi[db], &k, v));
}

int store_put_str(store_env_t *e, MDB_txn *t, store_db_t db, const char *key, const void *val,
                  size_t n)
{
    MDB_val k = key_of(key), v = {n, (void *)val};
    int ret = store_mdb_err(mdb_put(t, e->dbi[db], &k, &v, 0));
    return ret ? ret : log_change(e, t, db, key);
}

int store_del_key(store_env_t *e, MDB_txn *t, store_db_t db, const char *key)
{
    MDB_val k = key_of(key);
    int ret = store_mdb_err(mdb_del(t, e->dbi[db], &k, NULL));
    return ret ? ret : log_change(e, t, db, key);
}

/* ---- audit ---- */

void store_default_actor(char *out, size_t outlen)
{
    struct passwd pw, *res = NULL;
    char buf[1024];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
        snprintf(out, outlen, "os:%s", res->pw_name);
    else
        snprintf(out, outlen, "os:uid%u", (unsigned)geteuid());
}

void store_be64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        b[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t store_rd_be64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

int store_audit_append_txn(store_env_t *e, MDB_txn *t, const char *actor, const char *verb,
                           const char *subject, const char *before, const char *after)
{
    MDB_val v;
    uint64_t seq = 0;
    int ret = store_get_str(e, t, DB_META, "change_counter", &v);
    if (ret == 0 && v.mv_size == 8)
        seq = store_rd_be64(v.mv_data);
    else if (ret && ret != FG_ENOTFOUND)
        return ret;
    seq++;
    uint8_t cnt[8];
    store_be64(cnt, seq);
    ret = store_put_str(e, t, DB_META, "change_counter", cnt, 8);
    if (ret)
        return ret;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    char actor_buf[STORE_ACTOR_MAX];
    if (!actor) {
        store_default_actor(actor_buf, sizeof(actor_buf));
        actor = actor_buf;
    }
    if (!before)
        before = "null";
    if (!after)
        after = "null";
    size_t la = strlen(actor) + 1, lv = strlen(verb) + 1, ls = strlen(subject) + 1,
           lb = strlen(before) + 1, lf = strlen(after) + 1;
    size_t total = 8 + la + lv + ls + lb + lf;
    uint8_t key[8];
    store_be64(key, seq);
    MDB_val k = {8, key}, val = {total, NULL};
    int rc = mdb_put(t, e->dbi[DB_AUDIT], &k, &val, MDB_RESERVE);
    if (rc)
        return store_mdb_err(rc);
    uint8_t *p = val.mv_data;
    store_be64(p, (uint64_t)ms);
    p += 8;
    memcpy(p, actor, la);
    p += la;
    memcpy(p, verb, lv);
    p += lv;
    memcpy(p, subject, ls);
    p += ls;
    memcpy(p, before, lb);
    p += lb;
    memcpy(p, after, lf);

    /* The log is bounded: the entry STORE_AUDIT_KEEP changes older goes. */
    if (seq > STORE_AUDIT_KEEP) {
        store_be64(key, seq - STORE_AUDIT_KEEP);
        rc = mdb_del(t, e->dbi[DB_AUDIT], &k, NULL);
        if (rc && rc != MDB_NOTFOUND)
            return store_mdb_err(rc);
    }
    /* The change log keeps the last STORE_CHANGES_KEEP sequences; meta/changes_floor is the
       oldest sequence still complete, so a reader further behind rebuilds instead of patching.
       At most 1024 keys go per change, so a big import is trimmed over later changes. */
    if (seq > STORE_CHANGES_KEEP) {
        uint64_t cutoff = seq - STORE_CHANGES_KEEP, low = cutoff;
        MDB_cursor *c;
        rc = mdb_cursor_open(t, e->dbi[DB_CHANGES], &c);
        if (rc)
            return store_mdb_err(rc);
        MDB_val ck, cv;
        int n = 0;
        /* always the first entry: deletion goes in ascending order */
        for (rc = mdb_cursor_get(c, &ck, &cv, MDB_FIRST); rc == 0 && n < 1024;
             rc = mdb_cursor_get(c, &ck, &cv, MDB_FIRST), n++) {
            if (ck.mv_size < 9)
                break;
            uint64_t s = store_rd_be64(ck.mv_data);
            if (s > cutoff) {
                low = cutoff;
                break;
            }
            low = s; /* entries of s may remain if the loop stops here */
            rc = mdb_cursor_del(c, 0);
            if (rc)
                break;
        }
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND)
            low = cutoff; /* everything up to the cutoff is gone */
        else if (rc)
            return store_mdb_err(rc);
        uint8_t fb[8];
        store_be64(fb, low + 1);
        rc = mdb_put(t, e->dbi[DB_META], &(MDB_val){13, (void *)"changes_floor"}, &(MDB_val){8, fb},
                     0);
        if (rc)
            return store_mdb_err(rc);
    }
    char last[1024];
    int n = snprintf(last, sizeof(last), "{\"seq\":%llu,\"time_ms\":%lld,\"verb\":\"%.64s\"}",
                     (unsigned long long)seq, (long long)ms, verb);
    return store_put_str(e, t, DB_META, "last_change", last, (size_t)n);
}

int store_audit_list(store_t *s, int64_t since_ms, int (*cb)(const store_audit_t *a, void *arg),
                     void *arg)
{
    MDB_txn *t = NULL;
    MDB_cursor *c = NULL;
    int ret = store_mdb_err(mdb_txn_begin(s->e->env, NULL, MDB_RDONLY, &t));
    if (ret)
        return ret;
    ret = store_mdb_err(mdb_cursor_open(t, s->e->dbi[DB_AUDIT], &c));
    if (ret)
        goto out;
    MDB_val k, v;
    int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 || v.mv_size < 13 || ((const char *)v.mv_data)[v.mv_size - 1]) {
            ret = FG_ESTORE;
            goto out;
        }
        store_audit_t a;
        const char *p = (const char *)v.mv_data + 8, *end = (const char *)v.mv_data + v.mv_size;
        a.seq = store_rd_be64(k.mv_data);
        a.time_ms = (int64_t)store_rd_be64(v.mv_data);
        const char **fields[5] = {&a.actor, &a.verb, &a.subject, &a.before, &a.after};
        for (int i = 0; i < 5; i++) {
            if (p >= end) {
                ret = FG_ESTORE;
                goto out;
            }
            *fields[i] = p;
            p += strlen(p) + 1;
        }
        if (a.time_ms < since_ms)
            continue;
        ret = cb(&a, arg);
        if (ret)
            goto out;
    }
    if (rc != MDB_NOTFOUND)
        ret = store_mdb_err(rc);
out:
    if (c)
        mdb_cursor_close(c);
    mdb_txn_abort(t);
    return ret;
}

/* ---- generic key/value ---- */

static int db_by_name(const char *name, bool write, store_db_t *out)
{
    for (int i = 0; i < DB_COUNT_; i++)
        if (strcmp(store_db_names[i], name) == 0) {
            if (write && i != DB_USERS && i != DB_SESSIONS && i != DB_PANEL)
                return FG_EREFUSED; /* policy databases change only through validated ops */
            *out = (store_db_t)i;
            return 0;
        }
    return FG_EREFUSED;
}

int store_txn_begin(store_t *s, bool write, store_txn_t **out)
{
    if (write && s->readonly)
        return FG_EREFUSED;
    store_txn_t *t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    int ret = store_mdb_err(mdb_txn_begin(s->e->env, NULL, write ? 0 : MDB_RDONLY, &t->txn));
    if (ret) {
        free(t);
        return ret;
    }
    t->s = s;
    t->write = write;
    if (write)
        store_changes_begin(s->e);
    *out = t;
    return 0;
}

int store_txn_commit(store_txn_t *t)
{
    int ret = t->write ? store_mdb_err(mdb_txn_commit(t->txn)) : (mdb_txn_abort(t->txn), 0);
    free(t);
    return ret;
}

void store_txn_abort(store_txn_t *t)
{
    if (!t)
        return;
    mdb_txn_abort(t->txn);
    free(t);
}

int store_kv_get(store_txn_t *t, const char *db, const void *key, size_t klen, const void **val,
                 size_t *vlen)
{
    store_db_t d;
    int ret = db_by_name(db, false, &d);
    if (ret)
        return ret;
    if (klen == 0 || klen > 511)
        return FG_EPARSE;
    MDB_val k = {klen, (void *)key}, v;
    ret = store_mdb_err(mdb_get(t->txn, t->s->e->dbi[d], &k, &v));
    if (!ret) {
        *val = v.mv_data;
        *vlen = v.mv_size;
    }
    return ret;
}

int store_kv_put(store_txn_t *t, const char *db, const void *key, size_t klen, const void *val,
                 size_t vlen)
{
    store_db_t d;
    if (!t->write)
        return FG_EREFUSED;
    int ret = db_by_name(db, true, &d);
    if (ret)
        return ret;
    if (klen == 0 || klen > 511)
        return FG_EPARSE;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return store_mdb_err(mdb_put(t->txn, t->s->e->dbi[d], &k, &v, 0));
}

int store_kv_del(store_txn_t *t, const char *db, const void *key, size_t klen)
{
    store_db_t d;
    if (!t->write)
        return FG_EREFUSED;
    int ret = db_by_name(db, true, &d);
    if (ret)
        return ret;
    if (klen == 0 || klen > 511)
        return FG_EPARSE;
    MDB_val k = {klen, (void *)key};
    return store_mdb_err(mdb_del(t->txn, t->s->e->dbi[d], &k, NULL));
}

int store_kv_iterate(store_txn_t *t, const char *db, const void *prefix, size_t plen,
                     int (*cb)(const void *key, size_t klen, const void *val, size_t vlen,
                               void *arg),
                     void *arg)
{
    store_db_t d;
    MDB_cursor *c = NULL;
    int ret = db_by_name(db, false, &d);
    if (ret)
        return ret;
    ret = store_mdb_err(mdb_cursor_open(t->txn, t->s->e->dbi[d], &c));
    if (ret)
        return ret;
    MDB_val k = {plen, (void *)prefix}, v;
    int rc = plen ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (plen && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0))
            break;
        ret = cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
        if (ret)
            goto out;
    }
    if (rc && rc != MDB_NOTFOUND)
        ret = store_mdb_err(rc);
out:
    mdb_cursor_close(c);
    return ret;
}

int store_txn_audit(store_txn_t *t, const store_ctx_t *ctx, const char *verb, const char *subject,
                    const char *before_json, const char *after_json)
{
    if (!t->write)
        return FG_EREFUSED;
    return store_audit_append_txn(t->s->e, t->txn, ctx ? ctx->actor : NULL,
                                  (ctx && ctx->verb) ? ctx->verb : verb, subject ? subject : "",
                                  before_json, after_json);
}
