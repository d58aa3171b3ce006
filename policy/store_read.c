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
#include <sys/mman.h>

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

/* Pushes a fresh chunk of `cap` bytes as the one allocations come from; NULL when out of memory. */
static chunk_t *arena_grow(arena_t *a, size_t cap)
{
    chunk_t *c = malloc(sizeof(*c) + cap);
    if (!c)
        return NULL;
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
    a->bytes += sizeof(*c) + cap;
    return c;
}

static char *arena_strndup(arena_t *a, const char *s, size_t n)
{
    if ((!a->head || a->head->cap - a->head->used < n + 1) &&
        !arena_grow(a, n + 1 > 65536 ? n + 1 : 65536))
        return NULL;
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

/*
 * One slot is one cache line and holds keys up to SLOT_INLINE octets itself (nearly every domain),
 * so a lookup costs one miss into the table instead of one into the table and one into a string.
 * Longer keys keep a pointer to their arena copy in the same bytes.
 */
#define SLOT_INLINE 53
#define SLOT_EMPTY  0
#define SLOT_TOMB   0xffff

typedef struct {
    uint32_t hash;
    uint32_t val; /* index into the object array, or the access bit */
    uint16_t klen;
    char key[SLOT_INLINE + 1];
} slot_t;

_Static_assert(sizeof(slot_t) == 64, "a slot is one cache line");

typedef struct {
    slot_t *slot;
    size_t cap; /* power of two */
    size_t n;
    size_t tombs;
} table_t;

static inline uint32_t hash_bytes(const char *s, size_t n)
{
    /* Eight bytes per multiply: a byte-at-a-time hash is a chain of dependent multiplies as
       long as the domain, which costs more than the rest of a cached lookup. */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, w;
    while (n >= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    return (uint32_t)h;
}

static int table_init(table_t *t, size_t entries)
{
    size_t cap = 16;
    while (cap < entries * 2 + 16) /* half full after a build: room to patch in place */
        cap <<= 1;
    size_t bytes = cap * sizeof(slot_t);
    /* A big table is one random access per lookup: back it with huge pages where the kernel
       allows, so the access costs a cache miss and not also a TLB miss. */
    size_t align = bytes >= (2u << 20) ? (2u << 20) : 64;
    t->slot = aligned_alloc(align, bytes);
    if (!t->slot)
        return -ENOMEM;
    if (align > 64)
        madvise(t->slot, bytes, MADV_HUGEPAGE);
    memset(t->slot, 0, bytes);
    t->cap = cap;
    t->n = t->tombs = 0;
    return 0;
}

static inline bool slot_is(const slot_t *s, uint32_t h, const char *key, size_t klen)
{
    if (s->hash != h || s->klen != klen)
        return false;
    if (klen <= SLOT_INLINE)
        return memcmp(s->key, key, klen) == 0;
    const char *p;
    memcpy(&p, s->key, sizeof(p));
    return memcmp(p, key, klen) == 0;
}

/* `key` must outlive the table when longer than SLOT_INLINE (an arena copy). Keys are unique:
   callers remove a key before putting it again. FG_ELIMIT when the table needs rebuilding. */
static int table_put(table_t *t, const char *key, size_t klen, uint32_t val)
{
    if ((t->n + t->tombs + 1) * 4 > t->cap * 3 || klen >= SLOT_TOMB || klen == 0)
        return FG_ELIMIT;
    uint32_t h = hash_bytes(key, klen);
    for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        slot_t *s = &t->slot[i];
        if (s->klen != SLOT_EMPTY && s->klen != SLOT_TOMB)
            continue;
        if (s->klen == SLOT_TOMB)
            t->tombs--;
        s->hash = h;
        s->val = val;
        s->klen = (uint16_t)klen;
        if (klen <= SLOT_INLINE)
            memcpy(s->key, key, klen);
        else
            memcpy(s->key, &key, sizeof(key));
        t->n++;
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
        if (s->klen == SLOT_EMPTY)
            return NULL;
        if (slot_is(s, h, key, klen))
            return s;
    }
}

static void table_del(table_t *t, const char *key, size_t klen)
{
    slot_t *s = (slot_t *)table_get(t, key, klen);
    if (!s)
        return;
    s->klen = SLOT_TOMB;
    t->n--;
    t->tombs++;
}

/* ---- the snapshot cache ---- */

typedef struct {
    const char **names; /* primary first, then the additional domains (arena) */
    uint32_t n;
} domlist_t;

typedef struct {
    arena_t arena;
    settings_t settings;
    uint64_t counter;           /* meta/change_counter of the snapshot */
    policy_partner_t *partners; /* slots with domain == NULL are removed partners */
    domlist_t *lists;
    size_t npartners, cap_partners, dead;
    table_t domains; /* primary and additional domain -> partners[] index */
    policy_hosted_t *hosted;
    size_t nhosted;
    table_t hosted_tab;
    table_t access; /* key -> 0/1 */
    policy_partner_t def;
    bool has_def;
} cache_t;

struct policy_reader {
    store_env_t *e;
    MDB_txn *txn; /* reset between refreshes; renewed only inside them */
    uint64_t gen;
    cache_t *cache;
    bool dirty; /* a patch failed half way: the next refresh rebuilds */
    uint64_t rebuilds, patches;
    partner_t scratch;
    hosted_t hscratch;
};

static void cache_free_hosted(cache_t *c)
{
    free(c->hosted);
    free(c->hosted_tab.slot);
    c->hosted = NULL;
    memset(&c->hosted_tab, 0, sizeof(c->hosted_tab));
    c->nhosted = 0;
}

static void cache_free(cache_t *c)
{
    if (!c)
        return;
    arena_free(&c->arena);
    free(c->partners);
    free(c->lists);
    free(c->domains.slot);
    cache_free_hosted(c);
    free(c->access.slot);
    free(c);
}

/* Pointer-aligned space in the arena (for the domain lists). */
static void *arena_alloc(arena_t *a, size_t n)
{
    size_t pad = a->head ? ((a->head->used + 7) & ~(size_t)7) - a->head->used : 0;
    if (!a->head || a->head->cap - a->head->used < n + pad) {
        if (!arena_strndup(a, "", 0)) /* opens a chunk large enough for small requests */
            return NULL;
        if (a->head->cap - a->head->used < n + 8 && !arena_grow(a, n + 64))
            return NULL;
        pad = ((a->head->used + 7) & ~(size_t)7) - a->head->used;
    }
    a->head->used += pad;
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

static size_t entries(policy_reader_t *r, store_db_t db)
{
    MDB_stat st;
    return mdb_stat(r->txn, r->e->dbi[db], &st) ? 0 : st.ms_entries;
}

static uint64_t meta_u64(policy_reader_t *r, const char *key)
{
    MDB_val v;
    if (store_get_str(r->e, r->txn, DB_META, key, &v) || v.mv_size != 8)
        return 0;
    return store_rd_be64(v.mv_data);
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

/* Appends one decoded partner and indexes its domains. */
static int add_partner(cache_t *c, const partner_t *p)
{
    if (strcmp(p->domain, STORE_DEFAULT_KEY) == 0) {
        c->has_def = true;
        return fill_partner(c, p, &c->def);
    }
    if (c->npartners == c->cap_partners) {
        size_t cap = c->cap_partners ? c->cap_partners * 2 : 16;
        policy_partner_t *np = realloc(c->partners, cap * sizeof(*np));
        if (!np)
            return -ENOMEM;
        c->partners = np;
        domlist_t *nl = realloc(c->lists, cap * sizeof(*nl));
        if (!nl)
            return -ENOMEM;
        c->lists = nl;
        c->cap_partners = cap;
    }
    size_t idx = c->npartners;
    policy_partner_t *pp = &c->partners[idx];
    domlist_t *dl = &c->lists[idx];
    int ret = fill_partner(c, p, pp);
    if (ret)
        return ret;
    dl->n = p->n_additional + 1;
    dl->names = arena_alloc(&c->arena, dl->n * sizeof(char *));
    if (!dl->names)
        return -ENOMEM;
    dl->names[0] = pp->domain;
    for (uint32_t i = 0; i < p->n_additional; i++) {
        dl->names[i + 1] = arena_strndup(&c->arena, p->additional[i], strlen(p->additional[i]));
        if (!dl->names[i + 1])
            return -ENOMEM;
    }
    c->npartners++; /* counted before indexing so a failure leaves a removable entry */
    for (uint32_t i = 0; i < dl->n; i++) {
        ret = table_put(&c->domains, dl->names[i], strlen(dl->names[i]), (uint32_t)idx);
        if (ret)
            return ret;
    }
    return 0;
}

static void remove_partner(cache_t *c, const char *key)
{
    if (strcmp(key, STORE_DEFAULT_KEY) == 0) {
        c->has_def = false;
        return;
    }
    const slot_t *s = table_get(&c->domains, key, strlen(key));
    if (!s)
        return;
    size_t idx = s->val;
    policy_partner_t *pp = &c->partners[idx];
    if (!pp->domain || strcmp(pp->domain, key) != 0)
        return; /* key is someone's additional domain, not a primary */
    for (uint32_t i = 0; i < c->lists[idx].n; i++)
        table_del(&c->domains, c->lists[idx].names[i], strlen(c->lists[idx].names[i]));
    pp->domain = NULL;
    c->lists[idx].n = 0;
    c->dead++;
}

static int build_hosted(policy_reader_t *r, cache_t *c)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc, ret;
    cache_free_hosted(c);
    size_t nh = entries(r, DB_HOSTED);
    c->hosted = calloc(nh ? nh : 1, sizeof(*c->hosted));
    ret = c->hosted ? table_init(&c->hosted_tab, nh) : -ENOMEM;
    if (!ret)
        ret = store_mdb_err(mdb_cursor_open(r->txn, r->e->dbi[DB_HOSTED], &cur));
    if (ret)
        return ret;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        hosted_t *h = &r->hscratch;
        ret = schema_decode(&schema_hosted, v.mv_data, v.mv_size, h);
        if (!ret && c->nhosted >= nh)
            ret = FG_ESTORE;
        if (ret)
            goto out;
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
            goto out;
        }
        ret = table_put(&c->hosted_tab, ph->domain, strlen(ph->domain), (uint32_t)c->nhosted);
        if (ret)
            goto out;
        c->nhosted++;
    }
    ret = rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
out:
    mdb_cursor_close(cur);
    return ret;
}

static int build_access(policy_reader_t *r, cache_t *c)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc;
    free(c->access.slot);
    int ret = table_init(&c->access, entries(r, DB_ACCESS));
    if (!ret)
        ret = store_mdb_err(mdb_cursor_open(r->txn, r->e->dbi[DB_ACCESS], &cur));
    if (ret)
        return ret;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *key = arena_strndup(&c->arena, k.mv_data, k.mv_size);
        ret = key ? table_put(&c->access, key, k.mv_size,
                              v.mv_size == 1 && *(const char *)v.mv_data == '1')
                  : -ENOMEM;
        if (ret)
            break;
    }
    mdb_cursor_close(cur);
    return ret ? ret : rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
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
    c->counter = meta_u64(r, "change_counter");
    ret = store_get_settings(r->e, r->txn, &c->settings);
    if (ret)
        goto fail;

    size_t np = entries(r, DB_PARTNERS), nd = entries(r, DB_PARTNER_DOMAINS);
    c->cap_partners = np + 16;
    c->partners = malloc(c->cap_partners * sizeof(*c->partners));
    c->lists = malloc(c->cap_partners * sizeof(*c->lists));
    ret = c->partners && c->lists ? table_init(&c->domains, nd) : -ENOMEM;
    if (!ret)
        ret = store_mdb_err(mdb_cursor_open(r->txn, r->e->dbi[DB_PARTNERS], &cur));
    if (ret)
        goto fail;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        ret = schema_decode(&schema_partner, v.mv_data, v.mv_size, &r->scratch);
        if (!ret)
            ret = add_partner(c, &r->scratch);
        if (ret)
            goto fail;
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc != MDB_NOTFOUND) {
        ret = store_mdb_err(rc);
        goto fail;
    }
    ret = build_hosted(r, c);
    if (!ret)
        ret = build_access(r, c);
    if (ret)
        goto fail;
    *out = c;
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
    cache_free(c);
    return ret;
}

/*
 * Applies the change log between the cache's counter and the snapshot's to the cache in place.
 * 0 patched; 1 when the changes cannot be patched (settings changed, a big import, the log was
 * trimmed past us, a table is full): the caller rebuilds; <0 error (cache left half patched).
 */
#define PATCH_MAX 2048

static int patch(policy_reader_t *r, cache_t *c, uint64_t counter)
{
    uint64_t low = meta_u64(r, "changes_floor");
    if (low && c->counter + 1 < low)
        return 1;
    if (c->dead > 1024 && c->dead * 2 > c->npartners)
        return 1; /* mostly holes: compact by rebuilding */
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t from[8];
    store_be64(from, c->counter + 1);
    k.mv_size = 8;
    k.mv_data = from;
    int ret = store_mdb_err(mdb_cursor_open(r->txn, r->e->dbi[DB_CHANGES], &cur));
    if (ret)
        return ret;
    /* pass 1: classify; pass 2 (partners): remove every changed key, then add back */
    size_t nchanges = 0;
    bool hosted = false, access = false, settings = false;
    int rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < 9)
            goto rebuild;
        const uint8_t *b = k.mv_data;
        if (store_rd_be64(b) > counter)
            break;
        if (++nchanges > PATCH_MAX || b[8] == STORE_CHANGE_FULL)
            goto rebuild;
        settings |= b[8] == DB_SETTINGS;
        hosted |= b[8] == DB_HOSTED;
        access |= b[8] == DB_ACCESS;
        if (b[8] == DB_PARTNERS) {
            char key[DOMAIN_BUF];
            if (k.mv_size - 9 >= sizeof(key))
                goto rebuild;
            memcpy(key, b + 9, k.mv_size - 9);
            key[k.mv_size - 9] = '\0';
            remove_partner(c, key);
        }
    }
    if (rc && rc != MDB_NOTFOUND) {
        ret = store_mdb_err(rc);
        goto out;
    }
    if (settings) {
        /* settings first: add_partner derives the effective connection limits from them */
        ret = store_get_settings(r->e, r->txn, &c->settings);
        if (ret)
            goto out;
        for (size_t i = 0; i < c->npartners; i++)
            if (c->partners[i].domain && !c->partners[i].connection_limit_set)
                c->partners[i].connection_limit = c->settings.partner_connection_limit;
        if (c->has_def && !c->def.connection_limit_set)
            c->def.connection_limit = c->settings.partner_connection_limit;
    }
    k.mv_size = 8; /* pass 1 moved k: start again from the first sequence */
    k.mv_data = from;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *b = k.mv_data;
        if (store_rd_be64(b) > counter)
            break;
        if (b[8] != DB_PARTNERS)
            continue;
        char key[DOMAIN_BUF];
        memcpy(key, b + 9, k.mv_size - 9);
        key[k.mv_size - 9] = '\0';
        if (strcmp(key, STORE_DEFAULT_KEY) == 0 ? c->has_def
                                                : table_get(&c->domains, key, strlen(key)) != NULL)
            continue; /* the same key twice in the log: already added back */
        ret = store_get_rec(r->e, r->txn, DB_PARTNERS, key, &schema_partner, &r->scratch);
        if (ret == FG_ENOTFOUND)
            continue; /* removed */
        if (!ret)
            ret = add_partner(c, &r->scratch);
        if (ret == FG_ELIMIT)
            goto rebuild;
        if (ret)
            goto out;
    }
    if (rc && rc != MDB_NOTFOUND) {
        ret = store_mdb_err(rc);
        goto out;
    }
    if (hosted)
        ret = build_hosted(r, c);
    if (!ret && access)
        ret = build_access(r, c);
    if (ret == FG_ELIMIT)
        goto rebuild;
    if (!ret)
        c->counter = counter;
    goto out;
rebuild:
    ret = 1;
out:
    mdb_cursor_close(cur);
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
    if (id == r->gen && !r->dirty) {
        mdb_txn_reset(r->txn);
        return 0;
    }
    uint32_t ver;
    uint64_t counter = meta_u64(r, "change_counter");
    ret = store_check_version(r->e, r->txn, &ver);
    if (ret)
        goto out;
    if (counter == r->cache->counter && !r->dirty) {
        /* a commit that touched no policy (control panel sessions): nothing to redo */
        r->gen = id;
        goto out;
    }
    /* Small changes patch the cache in place; anything else rebuilds it from the snapshot. */
    ret = r->dirty ? 1 : patch(r, r->cache, counter);
    if (ret == 0) {
        r->patches++;
        ret = 1;
    } else {
        r->rebuilds++;
        cache_t *c = NULL;
        r->dirty = ret < 0;
        ret = build(r, &c);
        if (ret)
            goto out;
        cache_free(r->cache);
        r->cache = c;
        r->dirty = false;
        ret = 1;
    }
    r->gen = id;
out:
    mdb_txn_reset(r->txn);
    return ret;
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
    const slot_t *s = table_get(&r->cache->hosted_tab, domain, strlen(domain));
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
    *partners = c->npartners - c->dead;
    *domains = c->domains.n;
    *hosted = c->nhosted;
    *cache_bytes = sizeof(*c) + c->arena.bytes +
                   c->cap_partners * (sizeof(*c->partners) + sizeof(*c->lists)) +
                   c->domains.cap * sizeof(slot_t) + c->nhosted * sizeof(*c->hosted) +
                   c->hosted_tab.cap * sizeof(slot_t) + c->access.cap * sizeof(slot_t);
}

void policy_reader_counts(const policy_reader_t *r, uint64_t *rebuilds, uint64_t *patches)
{
    *rebuilds = r->rebuilds;
    *patches = r->patches;
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
