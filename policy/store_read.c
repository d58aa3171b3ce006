/*
 * The worker read side (lookup.h): a per-thread decoded snapshot of the whole policy, rebuilt
 * only when LMDB's transaction id moved.
 *
 * Why a full rebuild rather than lazy filling: a lazily filled cache would mix entries decoded
 * from different commits unless every miss re-validated the snapshot, and a miss would need a
 * read transaction in the middle of stanza processing. A full rebuild gives each worker one
 * consistent commit, answers misses (unknown domains) without touching LMDB, and costs time only
 * when the admin commits — rare next to lookups. docs/store.md has the measured cost at 100k.
 */
#include "policy/lookup.h"

#include "core/err.h"
#include "policy/access.h"
#include "policy/schema.h"
#include "policy/store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena: strings of one snapshot, freed together ---- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk_t;

typedef struct {
    chunk_t *head;
    size_t bytes;
} arena_t;

static char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    if (!a->head || a->head->cap - a->head->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        chunk_t *c = malloc(sizeof(*c) + cap);
        if (!c)
            return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
        a->bytes += sizeof(*c) + cap;
    }
    char *p = a->head->data + a->head->used;
    memcpy(p, s, n);
    p[n] = '\0';
    a->head->used += n + 1;
    return p;
}

static void arena_free(arena_t *a)
{
    while (a->head) {
        chunk_t *n = a->head->next;
        free(a->head);
        a->head = n;
    }
    a->bytes = 0;
}

/* ---- open-addressing tables keyed by string ---- */

typedef struct {
    const char *key; /* NULL = empty slot */
    uint32_t hash;
    uint32_t klen;
    uint32_t val; /* index into the object array, or the access bit */
} slot_t;

typedef struct {
    slot_t *slot;
    size_t cap; /* power of two, at least twice the entries: probes stay short */
    size_t n;
} table_t;

static inline uint32_t hash_bytes(const char *s, size_t n)
{
    /* FNV-1a; domains are short, and this needs no alignment or length tricks. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int table_init(table_t *t, size_t entries)
{
    size_t cap = 16;
    while (cap < entries * 2 + 2)
        cap <<= 1;
    t->slot = calloc(cap, sizeof(*t->slot));
    t->cap = cap;
    t->n = 0;
    return t->slot ? 0 : -ENOMEM;
}

/* Keys must be unique (the store guarantees it); a repeat keeps the first. */
static int table_put(table_t *t, const char *key, size_t klen, uint32_t val)
{
    if ((t->n + 1) * 2 > t->cap)
        return FG_ELIMIT; /* sized from mdb_stat; more entries means the store changed shape */
    uint32_t h = hash_bytes(key, klen);
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        slot_t *s = &t->slot[i];
        if (!s->key) {
            s->key = key;
            s->hash = h;
            s->klen = (uint32_t)klen;
            s->val = val;
            t->n++;
            return 0;
        }
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return 0;
    }
}

static inline const slot_t *table_get(const table_t *t, const char *key, size_t klen)
{
    if (!t->cap)
        return NULL;
    uint32_t h = hash_bytes(key, klen);
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        const slot_t *s = &t->slot[i];
        if (!s->key)
            return NULL;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

/* ---- the snapshot cache ---- */

typedef struct {
    arena_t arena;
    settings_t settings;
    policy_partner_t *partners;
    size_t npartners;
    table_t domains; /* primary and additional domain -> partners[] index */
    policy_hosted_t *hosted;
    size_t nhosted;
    table_t hosted_t_;
    table_t access; /* key -> 0/1 */
    policy_partner_t def;
    bool has_def;
} cache_t;

struct policy_reader {
    store_env_t *e;
    MDB_txn *txn; /* reset between refreshes; renewed only inside them */
    uint64_t gen;
    cache_t *cache;
    partner_t scratch;
    hosted_t hscratch;
};

static void cache_free(cache_t *c)
{
    if (!c)
        return;
    arena_free(&c->arena);
    free(c->partners);
    free(c->domains.slot);
    free(c->hosted);
    free(c->hosted_t_.slot);
    free(c->access.slot);
    free(c);
}

static size_t entries(policy_reader_t *r, store_db_t db)
{
    MDB_stat st;
    return mdb_stat(r->txn, r->e->dbi[db], &st) ? 0 : st.ms_entries;
}

static int fill_partner(cache_t *c, const partner_t *p, policy_partner_t *out)
{
    out->domain = arena_strndup(&c->arena, p->domain, strlen(p->domain));
    partner_rules(p, &out->rules);
    out->connection_limit_set = p->connection_limit_set;
    out->connection_limit = partner_effective_limit(p, c->settings.partner_connection_limit);
    out->proxy_host =
        p->proxy_host[0] ? arena_strndup(&c->arena, p->proxy_host, strlen(p->proxy_host)) : NULL;
    out->proxy_port = p->proxy_port;
    out->revision = p->revision;
    return out->domain && (!p->proxy_host[0] || out->proxy_host) ? 0 : -ENOMEM;
}

static int build(policy_reader_t *r, cache_t **out)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret;
    cache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    uint32_t ver;
    ret = store_check_version(r->e, r->txn, &ver);
    if (ret)
        goto fail;

    ret = store_get_rec(r->e, r->txn, DB_SETTINGS, STORE_SETTINGS_KEY, &schema_settings,
                        &c->settings);
    if (ret == FG_ENOTFOUND) {
        settings_defaults(&c->settings);
        ret = 0;
    }
    if (ret)
        goto fail;

    size_t np = entries(r, DB_PARTNERS), nd = entries(r, DB_PARTNER_DOMAINS);
    c->partners = calloc(np ? np : 1, sizeof(*c->partners));
    ret = c->partners ? table_init(&c->domains, nd) : -ENOMEM;
    if (ret)
        goto fail;
    ret = store_mdb_err(mdb_cursor_open(r->txn, r->e->dbi[DB_PARTNERS], &cur));
    if (ret)
        goto fail;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        partner_t *p = &r->scratch;
        ret = schema_decode(&schema_partner, v.mv_data, v.mv_size, p);
        if (ret)
            goto fail;
        if (strcmp(p->domain, STORE_DEFAULT_KEY) == 0) {
            ret = fill_partner(c, p, &c->def);
            c->has_def = true;
            if (ret)
                goto fail;
            continue;
        }
        if (c->npartners >= np) {
            ret = FG_ESTORE;
            goto fail;
        }
        policy_partner_t *pp = &c->partners[c->npartners];
        ret = fill_partner(c, p, pp);
        for (uint32_t i = 0; !ret && i <= p->n_additional; i++) {
            const char *d = i == 0 ? pp->domain : NULL;
            if (i > 0)
                d = arena_strndup(&c->arena, p->additional[i - 1], strlen(p->additional[i - 1]));
            ret = d ? table_put(&c->domains, d, strlen(d), (uint32_t)c->npartners) : -ENOMEM;
        }
        if (ret)
            goto fail;
        c->npartners++;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc != MDB_NOTFOUND) {
        ret = store_mdb_err(rc);
        goto fail;
    }

    size_t nh = entries(r, DB_HOSTED);
    c->hosted = calloc(nh ? nh : 1, sizeof(*c->hosted));
    ret = c->hosted ? table_init(&c->hosted_t_, nh) : -ENOMEM;
    if (!ret)
        ret = store_mdb_err(mdb_cursor_open(r->txn, r->e->dbi[DB_HOSTED], &cur));
    if (ret)
        goto fail;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        hosted_t *h = &r->hscratch;
        ret = schema_decode(&schema_hosted, v.mv_data, v.mv_size, h);
        if (!ret && c->nhosted >= nh)
            ret = FG_ESTORE;
        if (ret)
            goto fail;
        policy_hosted_t *ph = &c->hosted[c->nhosted];
        arena_t *a = &c->arena;
        ph->domain = arena_strndup(a, h->domain, strlen(h->domain));
        ph->cert_path = arena_strndup(a, h->cert_path, strlen(h->cert_path));
        ph->key_path = arena_strndup(a, h->key_path, strlen(h->key_path));
        ph->secret = arena_strndup(a, h->secret, strlen(h->secret));
        ph->target_host =
            h->target_host[0] ? arena_strndup(a, h->target_host, strlen(h->target_host)) : NULL;
        ph->route = h->route;
        ph->target_port = h->target_port;
        ph->enabled = h->enabled;
        ph->revision = h->revision;
        if (!ph->domain || !ph->cert_path || !ph->key_path || !ph->secret) {
            ret = -ENOMEM;
            goto fail;
        }
        ret = table_put(&c->hosted_t_, ph->domain, strlen(ph->domain), (uint32_t)c->nhosted);
        if (ret)
            goto fail;
        c->nhosted++;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc != MDB_NOTFOUND) {
        ret = store_mdb_err(rc);
        goto fail;
    }

    ret = table_init(&c->access, entries(r, DB_ACCESS));
    if (!ret)
        ret = store_mdb_err(mdb_cursor_open(r->txn, r->e->dbi[DB_ACCESS], &cur));
    if (ret)
        goto fail;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *key = arena_strndup(&c->arena, k.mv_data, k.mv_size);
        ret = key ? table_put(&c->access, key, k.mv_size,
                              v.mv_size == 1 && *(const char *)v.mv_data == '1')
                  : -ENOMEM;
        if (ret)
            goto fail;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc != MDB_NOTFOUND) {
        ret = store_mdb_err(rc);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
    cache_free(c);
    return ret;
}

int policy_reader_open(const char *dir, policy_reader_t **out)
{
    char err[512];
    policy_reader_t *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    int ret = store_env_acquire(dir, false, false, &r->e, err, sizeof(err));
    if (ret) {
        free(r);
        return ret;
    }
    ret = store_mdb_err(mdb_txn_begin(r->e->env, NULL, MDB_RDONLY, &r->txn));
    if (ret)
        goto fail;
    r->gen = mdb_txn_id(r->txn);
    ret = build(r, &r->cache);
    mdb_txn_reset(r->txn);
    if (ret)
        goto fail;
    *out = r;
    return 0;
fail:
    policy_reader_close(r);
    return ret;
}

void policy_reader_close(policy_reader_t *r)
{
    if (!r)
        return;
    if (r->txn)
        mdb_txn_abort(r->txn);
    cache_free(r->cache);
    store_env_release(r->e);
    free(r);
}

int policy_reader_refresh(policy_reader_t *r)
{
    int ret = store_mdb_err(mdb_txn_renew(r->txn));
    if (ret)
        return ret;
    uint64_t id = mdb_txn_id(r->txn);
    if (id == r->gen) {
        mdb_txn_reset(r->txn);
        return 0;
    }
    cache_t *c = NULL;
    ret = build(r, &c);
    mdb_txn_reset(r->txn);
    if (ret)
        return ret;
    cache_free(r->cache);
    r->cache = c;
    r->gen = id;
    return 1;
}

uint64_t policy_reader_generation(const policy_reader_t *r)
{
    return r->gen;
}

const policy_partner_t *policy_lookup_n(const policy_reader_t *r, const char *domain, size_t len)
{
    const slot_t *s = table_get(&r->cache->domains, domain, len);
    return s ? &r->cache->partners[s->val] : NULL;
}

const policy_partner_t *policy_lookup(const policy_reader_t *r, const char *domain)
{
    return policy_lookup_n(r, domain, strlen(domain));
}

const policy_partner_t *policy_lookup_default(const policy_reader_t *r)
{
    const cache_t *c = r->cache;
    return c->has_def && c->settings.unknown_domains == SETTINGS_UNKNOWN_ALLOW ? &c->def : NULL;
}

const policy_hosted_t *policy_lookup_hosted(const policy_reader_t *r, const char *domain)
{
    const slot_t *s = table_get(&r->cache->hosted_t_, domain, strlen(domain));
    return s ? &r->cache->hosted[s->val] : NULL;
}

const settings_t *policy_settings(const policy_reader_t *r)
{
    return &r->cache->settings;
}

static int access_get_cache(void *arg, const char *key, bool *value)
{
    const slot_t *s = table_get(arg, key, strlen(key));
    if (!s)
        return 0;
    *value = s->val != 0;
    return 1;
}

bool policy_access(const policy_reader_t *r, const char *jid)
{
    return access_resolve(jid, access_get_cache, (void *)&r->cache->access);
}

void policy_reader_stats(const policy_reader_t *r, size_t *partners, size_t *domains,
                         size_t *hosted, size_t *cache_bytes)
{
    const cache_t *c = r->cache;
    *partners = c->npartners;
    *domains = c->domains.n;
    *hosted = c->nhosted;
    *cache_bytes = sizeof(*c) + c->arena.bytes + c->npartners * sizeof(*c->partners) +
                   c->domains.cap * sizeof(slot_t) + c->nhosted * sizeof(*c->hosted) +
                   c->hosted_t_.cap * sizeof(slot_t) + c->access.cap * sizeof(slot_t);
}

int policy_lookup_uncached(policy_reader_t *r, const char *domain, partner_t *out)
{
    int ret = store_mdb_err(mdb_txn_renew(r->txn));
    if (ret)
        return ret;
    size_t n = strlen(domain);
    MDB_val k = {n, (void *)domain}, v;
    int rc = mdb_get(r->txn, r->e->dbi[DB_PARTNERS], &k, &v);
    if (rc == MDB_NOTFOUND) {
        /* Not a primary: resolve an additional domain through the index. */
        rc = mdb_get(r->txn, r->e->dbi[DB_PARTNER_DOMAINS], &k, &v);
        if (rc == 0) {
            MDB_val pk = v;
            rc = mdb_get(r->txn, r->e->dbi[DB_PARTNERS], &pk, &v);
        }
    }
    ret = rc ? store_mdb_err(rc) : schema_decode(&schema_partner, v.mv_data, v.mv_size, out);
    mdb_txn_reset(r->txn);
    return ret;
}

int policy_lookup_raw(policy_reader_t *r, const char *domain)
{
    int ret = store_mdb_err(mdb_txn_renew(r->txn));
    if (ret)
        return ret;
    MDB_val k = {strlen(domain), (void *)domain}, v;
    ret = store_mdb_err(mdb_get(r->txn, r->e->dbi[DB_PARTNER_DOMAINS], &k, &v));
    mdb_txn_reset(r->txn);
    return ret;
}
