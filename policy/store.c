/*
 * The validated write operations of the store. Each public operation is one write transaction:
 * read what it needs, validate (record rules, then cross-record rules), write the records and the
 * domain index, append the audit entry, commit — or abort on any error or in what-if mode.
 */
#include "policy/store_int.h"

#include "core/err.h"
#include "policy/json.h"
#include "policy/schema.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_OUT_MAX (64u << 20)

/* ---- small helpers ---- */

char *store_obj_json(const schema_t *sc, const void *obj)
{
    buf_t b;
    buf_init(&b, 1 << 20);
    if (json_encode_object(sc, obj, 0, 0, &b) || buf_append(&b, "", 1)) {
        buf_free(&b);
        return NULL;
    }
    return (char *)b.data; /* buf owns data allocated with malloc; handed to the caller */
}

static int norm_key(const char *in, char *out, report_t *rep, const char *field)
{
    if (in && strcmp(in, STORE_DEFAULT_KEY) == 0) {
        strcpy(out, STORE_DEFAULT_KEY);
        return 0;
    }
    const char *why;
    /* The key form: a partner stored under an address before addresses were refused can still
       be read and removed; creating or changing one validates the name (partner_validate). */
    if (domain_normalize_key(in, out, DOMAIN_BUF, &why)) {
        char line[700];
        domain_error_line(in ? in : "", why, line, sizeof(line));
        report_add(rep, REPORT_ERROR, field, "%s", line);
        return FG_EDOMAIN;
    }
    return 0;
}

/* ---- an operation: one write txn plus its audit entry ---- */

int store_op_begin(store_t *s, store_ctx_t *ctx, store_op_t *op)
{
    memset(op, 0, sizeof(*op));
    if (s->readonly)
        return FG_EREFUSED;
    op->s = s;
    op->e = s->e;
    op->ctx = ctx;
    if (ctx)
        ctx->change = NULL;
    int ret = store_mdb_err(mdb_txn_begin(s->e->env, NULL, 0, &op->t));
    if (!ret)
        store_changes_begin(s->e);
    return ret;
}

static char *change_json(const char *verb, const char *subject, const char *before,
                         const char *after, bool what_if)
{
    buf_t b;
    buf_init(&b, JSON_OUT_MAX);
    int ret = buf_append_str(&b, "{\"verb\":");
    if (!ret)
        ret = json_put_string(&b, verb);
    if (!ret)
        ret = buf_append_str(&b, ",\"subject\":");
    if (!ret)
        ret = json_put_string(&b, subject);
    if (!ret)
        ret = buf_append_str(&b, ",\"before\":");
    if (!ret)
        ret = buf_append_str(&b, before ? before : "null");
    if (!ret)
        ret = buf_append_str(&b, ",\"after\":");
    if (!ret)
        ret = buf_append_str(&b, after ? after : "null");
    if (!ret)
        ret = buf_append_str(&b, what_if ? ",\"what_if\":true}" : "}");
    if (!ret)
        ret = buf_append(&b, "", 1);
    if (ret) {
        buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

/* Ends the operation: on ret == 0 with a change, audits and commits (or aborts in what-if);
   otherwise aborts. Takes ownership of before/after. */
int store_op_end(store_op_t *op, int ret, const char *verb, const char *subject, char *before,
                 char *after, bool changed)
{
    store_ctx_t *ctx = op->ctx;
    bool what_if = ctx && ctx->what_if;
    if (!op->t)
        goto out;
    if (ret == 0 && changed) {
        const char *v = (ctx && ctx->verb) ? ctx->verb : verb;
        ret = store_audit_append_txn(op->e, op->t, ctx ? ctx->actor : NULL, v, subject, before,
                                     after);
        if (ret == 0 && ctx)
            ctx->change = change_json(v, subject, before, after, what_if);
    }
    if (ret == 0 && changed && !what_if) {
        int rc = mdb_txn_commit(op->t);
        ret = store_mdb_err(rc);
        if (ret && ctx) {
            free(ctx->change);
            ctx->change = NULL;
        }
    } else {
        mdb_txn_abort(op->t);
    }
    op->t = NULL;
out:
    free(before);
    free(after);
    return ret;
}

/* ---- open / init ---- */

int store_open(const char *dir, unsigned flags, store_t **out, char *err, size_t errlen)
{
    store_t *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    int ret =
        store_env_acquire(dir, flags & STORE_CREATE, flags & STORE_READONLY, &s->e, err, errlen);
    if (ret) {
        free(s);
        return ret;
    }
    s->readonly = (flags & STORE_READONLY) || s->e->readonly;
    snprintf(s->path, sizeof(s->path), "%s", s->e->path);
    *out = s;
    return 0;
}

void store_close(store_t *s)
{
    if (!s)
        return;
    store_env_release(s->e);
    free(s);
}

const char *store_path(const store_t *s)
{
    return s->path;
}

int store_get_settings(store_env_t *e, MDB_txn *t, settings_t *st)
{
    int ret = store_get_rec(e, t, DB_SETTINGS, STORE_SETTINGS_KEY, &schema_settings, st);
    if (ret == FG_ENOTFOUND) {
        settings_defaults(st);
        ret = 0;
    }
    return ret;
}

int store_init(store_t *s, store_ctx_t *ctx, bool global_access, report_t *rep)
{
    store_op_t op;
    int ret = store_op_begin(s, ctx, &op);
    bool changed = false;
    settings_t *st = NULL;
    char after[256] = "";
    if (ret)
        goto out;
    MDB_val v;
    ret = store_get_str(op.e, op.t, DB_META, "schema_version", &v);
    if (ret == FG_ENOTFOUND) {
        uint8_t b[4] = {SCHEMA_VERSION, 0, 0, 0};
        ret = store_put_str(op.e, op.t, DB_META, "schema_version", b, 4);
        changed = true;
    }
    if (ret)
        goto out;
    st = malloc(sizeof(*st));
    if (!st) {
        ret = -ENOMEM;
        goto out;
    }
    ret = store_get_rec(op.e, op.t, DB_SETTINGS, STORE_SETTINGS_KEY, &schema_settings, st);
    if (ret == FG_ENOTFOUND) {
        settings_defaults(st);
        st->revision = 0;
        ret = 0;
    }
    if (ret)
        goto out;
    if (!st->dialback_passphrase[0] || st->revision == 0) {
        if (!st->dialback_passphrase[0])
            ret = settings_generate_passphrase(st);
        if (ret)
            goto out;
        st->revision++;
        ret = store_put_rec(op.e, op.t, DB_SETTINGS, STORE_SETTINGS_KEY, &schema_settings, st);
        if (ret)
            goto out;
        changed = true;
        strcat(after, "\"settings\":\"defaults\"");
    }
    ret = store_get_str(op.e, op.t, DB_ACCESS, "global", &v);
    if (ret == FG_ENOTFOUND) {
        char b = global_access ? '1' : '0';
        ret = store_put_str(op.e, op.t, DB_ACCESS, "global", &b, 1);
        changed = true;
        snprintf(after + strlen(after), sizeof(after) - strlen(after), "%s\"access_global\":%s",
                 after[0] ? "," : "", global_access ? "true" : "false");
    }
    if (ret)
        goto out;
    if (changed)
        report_add(rep, REPORT_INFO, "", "store %s initialised%s", s->path,
                   ctx && ctx->what_if ? " (what-if: nothing saved)" : "");
out:
    free(st);
    {
        char *a = NULL;
        if (!ret && changed) {
            size_t n = strlen(after) + 3;
            a = malloc(n);
            if (a)
                snprintf(a, n, "{%s}", after);
        }
        return store_op_end(&op, ret, "init", s->path, NULL, a, changed);
    }
}

int store_schema_version(store_t *s, uint32_t *version)
{
    MDB_txn *t;
    MDB_val v;
    *version = 0;
    int ret = store_mdb_err(mdb_txn_begin(s->e->env, NULL, MDB_RDONLY, &t));
    if (ret)
        return ret;
    ret = store_get_str(s->e, t, DB_META, "schema_version", &v);
    if (!ret) {
        uint32_t found = 0;
        /* the same decoding (and the same refusal of a newer one) as store_open */
        int rc = store_check_version(s->e, t, &found);
        if (rc && rc != FG_EVERSION)
            ret = rc;
        else
            *version = found;
    }
    mdb_txn_abort(t);
    return ret;
}

int store_meta(store_t *s, uint64_t *change_counter, uint64_t *txn_id)
{
    MDB_txn *t;
    int ret = store_mdb_err(mdb_txn_begin(s->e->env, NULL, MDB_RDONLY, &t));
    if (ret)
        return ret;
    MDB_val v;
    *change_counter = 0;
    ret = store_get_str(s->e, t, DB_META, "change_counter", &v);
    if (!ret && v.mv_size == 8) {
        const uint8_t *b = v.mv_data;
        for (int i = 0; i < 8; i++)
            *change_counter = *change_counter << 8 | b[i];
    }
    *txn_id = mdb_txn_id(t);
    mdb_txn_abort(t);
    return ret == FG_ENOTFOUND ? 0 : ret;
}

/* ---- partners ---- */

static int read_txn(store_t *s, MDB_txn **t)
{
    return store_mdb_err(mdb_txn_begin(s->e->env, NULL, MDB_RDONLY, t));
}

/* One record of a database keyed by normalised domain (partners, hosted). */
static int get_by_domain(store_t *s, store_db_t db, const schema_t *sc, const char *domain,
                         void *out)
{
    char key[DOMAIN_BUF];
    MDB_txn *t;
    int ret = norm_key(domain, key, NULL, "domain");
    if (ret)
        return ret;
    ret = read_txn(s, &t);
    if (ret)
        return ret;
    ret = store_get_rec(s->e, t, db, key, sc, out);
    mdb_txn_abort(t);
    return ret;
}

int store_partner_get(store_t *s, const char *domain, partner_t *out)
{
    return get_by_domain(s, DB_PARTNERS, &schema_partner, domain, out);
}

static int find_in(store_env_t *e, MDB_txn *t, const char *key, partner_t *out)
{
    if (strcmp(key, STORE_DEFAULT_KEY) == 0)
        return store_get_rec(e, t, DB_PARTNERS, key, &schema_partner, out);
    MDB_val v;
    char primary[DOMAIN_BUF];
    int ret = store_get_str(e, t, DB_PARTNER_DOMAINS, key, &v);
    if (ret)
        return ret;
    if (v.mv_size == 0 || v.mv_size > DOMAIN_MAX)
        return FG_ESTORE;
    memcpy(primary, v.mv_data, v.mv_size);
    primary[v.mv_size] = '\0';
    return store_get_rec(e, t, DB_PARTNERS, primary, &schema_partner, out);
}

int store_partner_find(store_t *s, const char *domain, partner_t *out)
{
    char key[DOMAIN_BUF];
    MDB_txn *t;
    int ret = norm_key(domain, key, NULL, "domain");
    if (ret)
        return ret;
    ret = read_txn(s, &t);
    if (ret)
        return ret;
    ret = find_in(s->e, t, key, out);
    mdb_txn_abort(t);
    return ret;
}

/* Calls fn on every key/value of db in key order inside one read transaction; stops at the first
   non-zero return of fn and returns it. */
static int each_rec(store_t *s, store_db_t db,
                    int (*fn)(const MDB_val *k, const MDB_val *v, void *arg), void *arg)
{
    MDB_txn *t = NULL;
    MDB_cursor *c = NULL;
    int ret = read_txn(s, &t);
    if (ret)
        return ret;
    ret = store_mdb_err(mdb_cursor_open(t, s->e->dbi[db], &c));
    if (ret)
        goto out;
    MDB_val k, v;
    int rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        ret = fn(&k, &v, arg);
        if (ret)
            goto out;
    }
    ret = rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
out:
    if (c)
        mdb_cursor_close(c);
    mdb_txn_abort(t);
    return ret;
}

typedef struct {
    const char *glob;
    partner_t *p;
    int (*cb)(const partner_t *p, void *arg);
    void *arg;
} partner_list_t;

static int partner_list_rec(const MDB_val *k, const MDB_val *v, void *arg)
{
    partner_list_t *pl = arg;
    (void)k;
    int ret = schema_decode(&schema_partner, v->mv_data, v->mv_size, pl->p);
    if (ret || (pl->glob && !domain_glob_match(pl->glob, pl->p->domain)))
        return ret;
    return pl->cb(pl->p, pl->arg);
}

int store_partner_list(store_t *s, const char *glob, int (*cb)(const partner_t *p, void *arg),
                       void *arg)
{
    partner_list_t pl = {.glob = glob, .p = malloc(sizeof(partner_t)), .cb = cb, .arg = arg};
    int ret = pl.p ? each_rec(s, DB_PARTNERS, partner_list_rec, &pl) : -ENOMEM;
    free(pl.p);
    return ret;
}

/*
 * The one path that stores a partner. On success before_json and after_json (malloc'd, NULL when
 * unchanged) describe the change and *changed says whether anything was written. `old` is
 * scratch space the caller provides (partner_t is 18 KiB).
 */
int store_tx_partner_put(store_op_t *op, partner_t *p, partner_t *old, store_put_mode_t mode,
                         uint64_t expected_rev, report_t *rep, char **before_json,
                         char **after_json, bool *changed, bool *created)
{
    settings_t st;
    int ret;
    *before_json = *after_json = NULL;
    *changed = *created = false;

    ret = store_get_settings(op->e, op->t, &st);
    if (ret)
        return ret;
    ret = partner_validate(p, st.connection_limit, rep);
    if (ret)
        return ret;
    bool is_default = strcmp(p->domain, STORE_DEFAULT_KEY) == 0;
    ret = store_get_rec(op->e, op->t, DB_PARTNERS, p->domain, &schema_partner, old);
    bool exists = ret == 0;
    if (ret && ret != FG_ENOTFOUND) {
        report_add(rep, REPORT_ERROR, "", "stored record of %s cannot be read: %s", p->domain,
                   fg_strerror(ret));
        return ret;
    }
    if (mode == STORE_PUT_CREATE && exists) {
        report_add(rep, REPORT_ERROR, "domain",
                   "partner %s already exists: change it with `partner set`", p->domain);
        return FG_ECONFLICT;
    }
    if (mode == STORE_PUT_UPDATE && !exists) {
        report_add(rep, REPORT_ERROR, "domain", "no partner %s", p->domain);
        return FG_ENOTFOUND;
    }
    if (expected_rev != STORE_ANY_REV && (!exists || old->revision != expected_rev)) {
        report_add(rep, REPORT_ERROR, "revision",
                   "partner %s was changed by someone else (revision %llu, you edited %llu): "
                   "reload it and apply your change again",
                   p->domain, exists ? (unsigned long long)old->revision : 0ull,
                   (unsigned long long)expected_rev);
        return exists ? FG_ESTALE : FG_ENOTFOUND;
    }

    /* Domain uniqueness: across partners (partner_domains) and against hosted domains. */
    size_t conflicts = 0;
    for (uint32_t i = 0; !is_default && i <= p->n_additional; i++) {
        const char *d = i == 0 ? p->domain : p->additional[i - 1];
        const char *field = i == 0 ? "domain" : "additional_domains";
        MDB_val v;
        ret = store_get_str(op->e, op->t, DB_PARTNER_DOMAINS, d, &v);
        if (ret == 0 &&
            (v.mv_size != strlen(p->domain) || memcmp(v.mv_data, p->domain, v.mv_size) != 0)) {
            report_add(rep, REPORT_ERROR, field,
                       "%s already belongs to partner %.*s: remove it there first", d,
                       (int)(v.mv_size > DOMAIN_MAX ? DOMAIN_MAX : v.mv_size),
                       (const char *)v.mv_data);
            conflicts++;
        } else if (ret && ret != FG_ENOTFOUND) {
            return ret;
        }
        ret = store_get_str(op->e, op->t, DB_HOSTED, d, &v);
        if (ret == 0) {
            report_add(rep, REPORT_ERROR, field,
                       "%s is a hosted domain of this gateway, so it cannot be a partner's", d);
            conflicts++;
        } else if (ret != FG_ENOTFOUND) {
            return ret;
        }
    }
    if (conflicts)
        return FG_ECONFLICT;

    if (exists && schema_equal(&schema_partner, old, p)) {
        p->revision = old->revision;
        return 0; /* nothing to write */
    }
    p->revision = exists ? old->revision + 1 : 1;
    ret = store_put_rec(op->e, op->t, DB_PARTNERS, p->domain, &schema_partner, p);
    if (ret)
        return ret;
    if (!is_default) {
        if (exists)
            for (uint32_t i = 0; i < old->n_additional; i++)
                if (!partner_has_domain(p, old->additional[i])) {
                    ret = store_del_key(op->e, op->t, DB_PARTNER_DOMAINS, old->additional[i]);
                    if (ret && ret != FG_ENOTFOUND)
                        return ret;
                }
        for (uint32_t i = 0; i <= p->n_additional; i++) {
            const char *d = i == 0 ? p->domain : p->additional[i - 1];
            ret = store_put_str(op->e, op->t, DB_PARTNER_DOMAINS, d, p->domain, strlen(p->domain));
            if (ret)
                return ret;
        }
    }
    *before_json = exists ? store_obj_json(&schema_partner, old) : NULL;
    *after_json = store_obj_json(&schema_partner, p);
    *changed = true;
    *created = !exists;
    return 0;
}

int store_tx_partner_del(store_op_t *op, const char *key, uint64_t expected_rev, partner_t *old,
                         report_t *rep, char **before_json)
{
    *before_json = NULL;
    int ret = store_get_rec(op->e, op->t, DB_PARTNERS, key, &schema_partner, old);
    if (ret == FG_ENOTFOUND) {
        report_add(rep, REPORT_ERROR, "domain", "no partner %s", key);
        return ret;
    }
    if (ret)
        return ret;
    if (expected_rev != STORE_ANY_REV && old->revision != expected_rev) {
        report_add(rep, REPORT_ERROR, "revision",
                   "partner %s was changed by someone else (revision %llu, you saw %llu): "
                   "reload it before removing",
                   key, (unsigned long long)old->revision, (unsigned long long)expected_rev);
        return FG_ESTALE;
    }
    ret = store_del_key(op->e, op->t, DB_PARTNERS, key);
    for (uint32_t i = 0; !ret && strcmp(key, STORE_DEFAULT_KEY) != 0 && i <= old->n_additional;
         i++) {
        ret = store_del_key(op->e, op->t, DB_PARTNER_DOMAINS,
                            i == 0 ? old->domain : old->additional[i - 1]);
        if (ret == FG_ENOTFOUND)
            ret = 0;
    }
    if (!ret)
        *before_json = store_obj_json(&schema_partner, old);
    return ret;
}

static int partner_put_op(store_t *s, store_ctx_t *ctx, partner_t *p, store_put_mode_t mode,
                          uint64_t expected_rev, report_t *rep, const char *verb)
{
    store_op_t op;
    char *before = NULL, *after = NULL;
    bool changed = false, created = false;
    partner_t *old = malloc(sizeof(*old));
    int ret = old ? store_op_begin(s, ctx, &op) : -ENOMEM;
    if (ret) {
        free(old);
        return ret;
    }
    ret = store_tx_partner_put(&op, p, old, mode, expected_rev, rep, &before, &after, &changed,
                               &created);
    if (!ret && !changed)
        report_add(rep, REPORT_INFO, "", "partner %s unchanged", p->domain);
    else if (!ret && ctx && ctx->what_if)
        report_add(rep, REPORT_INFO, "", "what-if: would %s partner %s",
                   created ? "create" : "update", p->domain);
    free(old);
    return store_op_end(&op, ret, verb, p->domain, before, after, changed);
}

int store_partner_create(store_t *s, store_ctx_t *ctx, partner_t *p, report_t *rep)
{
    return partner_put_op(s, ctx, p, STORE_PUT_CREATE, STORE_ANY_REV, rep, "partner new");
}

int store_partner_update(store_t *s, store_ctx_t *ctx, partner_t *p, uint64_t expected_rev,
                         report_t *rep)
{
    return partner_put_op(s, ctx, p, STORE_PUT_UPDATE, expected_rev, rep, "partner set");
}

int store_partner_modify(store_t *s, store_ctx_t *ctx, const char *domain,
                         int (*edit)(partner_t *p, void *arg), void *arg, partner_t *out,
                         report_t *rep)
{
    store_op_t op;
    char key[DOMAIN_BUF];
    char *before = NULL, *after = NULL;
    bool changed = false, created = false;
    partner_t *p = malloc(sizeof(*p)), *old = malloc(sizeof(*old));
    int ret = (p && old) ? norm_key(domain, key, rep, "domain") : -ENOMEM;
    if (ret)
        goto fail;
    ret = store_op_begin(s, ctx, &op);
    if (ret)
        goto fail;
    ret = store_get_rec(op.e, op.t, DB_PARTNERS, key, &schema_partner, p);
    if (ret == FG_ENOTFOUND)
        report_add(rep, REPORT_ERROR, "domain", "no partner %s", key);
    if (!ret)
        ret = edit(p, arg);
    if (!ret && strcmp(p->domain, key) != 0) {
        report_add(rep, REPORT_ERROR, "domain",
                   "the primary domain is the partner's key and cannot change: create a new "
                   "partner and remove %s",
                   key);
        ret = FG_EREFUSED;
    }
    if (!ret)
        ret = store_tx_partner_put(&op, p, old, STORE_PUT_UPDATE, p->revision, rep, &before, &after,
                                   &changed, &created);
    if (!ret && !changed)
        report_add(rep, REPORT_INFO, "", "partner %s unchanged", key);
    else if (!ret && ctx && ctx->what_if)
        report_add(rep, REPORT_INFO, "", "what-if: would update partner %s", key);
    if (!ret && out)
        *out = *p;
    ret = store_op_end(&op, ret, "partner set", key, before, after, changed);
    free(p);
    free(old);
    return ret;
fail:
    free(p);
    free(old);
    return ret;
}

int store_partner_remove(store_t *s, store_ctx_t *ctx, const char *domain, uint64_t expected_rev,
                         report_t *rep)
{
    store_op_t op;
    char key[DOMAIN_BUF];
    char *before = NULL;
    partner_t *old = malloc(sizeof(*old));
    int ret = old ? norm_key(domain, key, rep, "domain") : -ENOMEM;
    if (!ret)
        ret = store_op_begin(s, ctx, &op);
    if (ret) {
        free(old);
        return ret;
    }
    ret = store_tx_partner_del(&op, key, expected_rev, old, rep, &before);
    if (!ret && ctx && ctx->what_if)
        report_add(rep, REPORT_INFO, "", "what-if: would remove partner %s", key);
    free(old);
    return store_op_end(&op, ret, "partner remove", key, before, NULL, ret == 0);
}

/* ---- settings ---- */

int store_settings_get(store_t *s, settings_t *out)
{
    MDB_txn *t;
    int ret = read_txn(s, &t);
    if (ret)
        return ret;
    ret = store_get_settings(s->e, t, out);
    mdb_txn_abort(t);
    return ret;
}

int store_tx_settings_put(store_op_t *op, settings_t *in, uint64_t expected_rev, report_t *rep,
                          char **before, char **after, bool *changed)
{
    settings_t old;
    *before = *after = NULL;
    *changed = false;
    int ret = store_get_settings(op->e, op->t, &old);
    if (ret)
        return ret;
    if (expected_rev != STORE_ANY_REV && old.revision != expected_rev) {
        report_add(rep, REPORT_ERROR, "revision",
                   "the gateway settings were changed by someone else (revision %llu, you "
                   "edited %llu): reload them and apply your change again",
                   (unsigned long long)old.revision, (unsigned long long)expected_rev);
        return FG_ESTALE;
    }
    if (!in->dialback_passphrase[0])
        memcpy(in->dialback_passphrase, old.dialback_passphrase, sizeof(in->dialback_passphrase));
    ret = settings_validate(in, rep);
    if (ret)
        return ret;
    if (schema_equal(&schema_settings, &old, in)) {
        in->revision = old.revision;
        return 0;
    }
    in->revision = old.revision + 1;
    ret = store_put_rec(op->e, op->t, DB_SETTINGS, STORE_SETTINGS_KEY, &schema_settings, in);
    if (ret)
        return ret;
    /* The audit log never holds the passphrase: a changed one shows as "(changed)". */
    *before = store_obj_json(&schema_settings, &old);
    *after = store_obj_json(&schema_settings, in);
    if (strcmp(old.dialback_passphrase, in->dialback_passphrase) != 0 && *after) {
        char *a = malloc(strlen(*after) + 40);
        if (a) {
            size_t n = strlen(*after);
            memcpy(a, *after, n - 1);
            strcpy(a + n - 1, ",\"dialback_passphrase\":\"(changed)\"}");
            free(*after);
            *after = a;
        }
    }
    *changed = true;
    return 0;
}

int store_settings_update(store_t *s, store_ctx_t *ctx, settings_t *in, uint64_t expected_rev,
                          report_t *rep)
{
    store_op_t op;
    char *before = NULL, *after = NULL;
    bool changed = false;
    int ret = store_op_begin(s, ctx, &op);
    if (ret)
        return ret;
    ret = store_tx_settings_put(&op, in, expected_rev, rep, &before, &after, &changed);
    if (!ret && ctx && ctx->what_if && changed)
        report_add(rep, REPORT_INFO, "", "what-if: would update the gateway settings");
    return store_op_end(&op, ret, "gateway set", "global", before, after, changed);
}

int store_settings_modify(store_t *s, store_ctx_t *ctx, int (*edit)(settings_t *st, void *arg),
                          void *arg, settings_t *out, report_t *rep)
{
    store_op_t op;
    settings_t st;
    char *before = NULL, *after = NULL;
    bool changed = false;
    int ret = store_op_begin(s, ctx, &op);
    if (ret)
        return ret;
    ret = store_get_settings(op.e, op.t, &st);
    if (!ret)
        ret = edit(&st, arg);
    if (!ret)
        ret = store_tx_settings_put(&op, &st, st.revision, rep, &before, &after, &changed);
    if (!ret && ctx && ctx->what_if && changed)
        report_add(rep, REPORT_INFO, "", "what-if: would update the gateway settings");
    if (!ret && out)
        *out = st;
    return store_op_end(&op, ret, "gateway set", "global", before, after, changed);
}

/* ---- hosted ---- */

int store_hosted_get(store_t *s, const char *domain, hosted_t *out)
{
    return get_by_domain(s, DB_HOSTED, &schema_hosted, domain, out);
}

typedef struct {
    hosted_t *h;
    int (*cb)(const hosted_t *h, void *arg);
    void *arg;
} hosted_list_t;

static int hosted_list_rec(const MDB_val *k, const MDB_val *v, void *arg)
{
    hosted_list_t *hl = arg;
    (void)k;
    int ret = schema_decode(&schema_hosted, v->mv_data, v->mv_size, hl->h);
    return ret ? ret : hl->cb(hl->h, hl->arg);
}

int store_hosted_list(store_t *s, int (*cb)(const hosted_t *h, void *arg), void *arg)
{
    hosted_list_t hl = {.h = malloc(sizeof(hosted_t)), .cb = cb, .arg = arg};
    int ret = hl.h ? each_rec(s, DB_HOSTED, hosted_list_rec, &hl) : -ENOMEM;
    free(hl.h);
    return ret;
}

int store_tx_hosted_put(store_op_t *op, hosted_t *h, store_put_mode_t mode, uint64_t expected_rev,
                        report_t *rep, char **before, char **after, bool *changed, bool *created)
{
    hosted_t *old = malloc(sizeof(*old));
    char key[DOMAIN_BUF];
    int ret = old ? 0 : -ENOMEM;
    *before = *after = NULL;
    *changed = *created = false;
    if (ret)
        goto out;
    /* An empty secret keeps the stored one: exports leave secrets out, and re-importing one
       must not fail or wipe them (as the dialback passphrase in the settings). */
    if (!h->secret[0] && domain_normalize(h->domain, key, sizeof(key)) == 0 &&
        store_get_rec(op->e, op->t, DB_HOSTED, key, &schema_hosted, old) == 0)
        memcpy(h->secret, old->secret, sizeof(h->secret));
    ret = hosted_validate(h, rep);
    if (ret)
        goto out;
    ret = store_get_rec(op->e, op->t, DB_HOSTED, h->domain, &schema_hosted, old);
    bool exists = ret == 0;
    if (ret && ret != FG_ENOTFOUND)
        goto out;
    ret = 0;
    if (mode == STORE_PUT_CREATE && exists) {
        report_add(rep, REPORT_ERROR, "domain", "hosted domain %s already exists", h->domain);
        ret = FG_ECONFLICT;
        goto out;
    }
    if (mode == STORE_PUT_UPDATE && !exists) {
        report_add(rep, REPORT_ERROR, "domain", "no hosted domain %s", h->domain);
        ret = FG_ENOTFOUND;
        goto out;
    }
    if (expected_rev != STORE_ANY_REV && (!exists || old->revision != expected_rev)) {
        report_add(rep, REPORT_ERROR, "revision",
                   "hosted domain %s was changed by someone else: reload it and apply your "
                   "change again",
                   h->domain);
        ret = exists ? FG_ESTALE : FG_ENOTFOUND;
        goto out;
    }
    MDB_val v;
    ret = store_get_str(op->e, op->t, DB_PARTNER_DOMAINS, h->domain, &v);
    if (ret == 0) {
        report_add(rep, REPORT_ERROR, "domain",
                   "%s belongs to partner %.*s: a domain is either hosted or a partner's",
                   h->domain, (int)(v.mv_size > DOMAIN_MAX ? DOMAIN_MAX : v.mv_size),
                   (const char *)v.mv_data);
        ret = FG_ECONFLICT;
        goto out;
    }
    if (ret != FG_ENOTFOUND)
        goto out;
    ret = 0;
    if (exists && schema_equal(&schema_hosted, old, h)) {
        h->revision = old->revision;
        goto out;
    }
    h->revision = exists ? old->revision + 1 : 1;
    ret = store_put_rec(op->e, op->t, DB_HOSTED, h->domain, &schema_hosted, h);
    if (ret)
        goto out;
    *before = exists ? store_obj_json(&schema_hosted, old) : NULL;
    *after = store_obj_json(&schema_hosted, h);
    *changed = true;
    *created = !exists;
out:
    free(old);
    return ret;
}

int store_hosted_put(store_t *s, store_ctx_t *ctx, hosted_t *h, store_put_mode_t mode,
                     uint64_t expected_rev, report_t *rep)
{
    store_op_t op;
    char *before = NULL, *after = NULL;
    bool changed = false, created = false;
    int ret = store_op_begin(s, ctx, &op);
    if (ret)
        return ret;
    ret = store_tx_hosted_put(&op, h, mode, expected_rev, rep, &before, &after, &changed, &created);
    if (!ret && ctx && ctx->what_if && changed)
        report_add(rep, REPORT_INFO, "", "what-if: would %s hosted domain %s",
                   created ? "create" : "update", h->domain);
    return store_op_end(&op, ret, created ? "domain new" : "domain set", h->domain, before, after,
                        changed);
}

int store_tx_hosted_del(store_op_t *op, const char *key, report_t *rep, char **before)
{
    hosted_t *old = malloc(sizeof(*old));
    *before = NULL;
    int ret = old ? store_get_rec(op->e, op->t, DB_HOSTED, key, &schema_hosted, old) : -ENOMEM;
    if (ret == FG_ENOTFOUND)
        report_add(rep, REPORT_ERROR, "domain", "no hosted domain %s", key);
    if (!ret)
        ret = store_del_key(op->e, op->t, DB_HOSTED, key);
    if (!ret)
        *before = store_obj_json(&schema_hosted, old);
    free(old);
    return ret;
}

int store_hosted_remove(store_t *s, store_ctx_t *ctx, const char *domain, report_t *rep)
{
    store_op_t op;
    char key[DOMAIN_BUF];
    char *before = NULL;
    int ret = norm_key(domain, key, rep, "domain");
    if (!ret)
        ret = store_op_begin(s, ctx, &op);
    if (ret)
        return ret;
    ret = store_tx_hosted_del(&op, key, rep, &before);
    if (!ret && ctx && ctx->what_if)
        report_add(rep, REPORT_INFO, "", "what-if: would remove hosted domain %s", key);
    return store_op_end(&op, ret, "domain remove", key, before, NULL, ret == 0);
}

/* ---- access ---- */

static int access_norm(const char *in, char *key, report_t *rep)
{
    access_scope_t scope;
    const char *why = NULL;
    int ret = access_key_parse(in, &scope, key, ACCESS_KEY_MAX, &why);
    if (ret)
        report_add(rep, REPORT_ERROR, "scope", "\"%.300s\" is not a valid scope: %s", in ? in : "",
                   why ? why : "malformed");
    return ret;
}

int store_access_get(store_t *s, const char *key_in, bool *value)
{
    char key[ACCESS_KEY_MAX];
    MDB_txn *t;
    int ret = access_norm(key_in, key, NULL);
    if (ret)
        return ret;
    ret = read_txn(s, &t);
    if (ret)
        return ret;
    MDB_val v;
    ret = store_get_str(s->e, t, DB_ACCESS, key, &v);
    if (!ret)
        *value = v.mv_size == 1 && *(const char *)v.mv_data == '1';
    mdb_txn_abort(t);
    return ret;
}

int store_tx_access_set(store_op_t *op, const char *key, const bool *value, char *before,
                        char *after, bool *changed)
{
    MDB_val v;
    int ret = store_get_str(op->e, op->t, DB_ACCESS, key, &v);
    *changed = false;
    if (ret && ret != FG_ENOTFOUND)
        return ret;
    bool had = ret == 0, old = had && v.mv_size == 1 && *(const char *)v.mv_data == '1';
    strcpy(before, had ? (old ? "true" : "false") : "null");
    strcpy(after, value ? (*value ? "true" : "false") : "null");
    if (!value) {
        if (!had)
            return FG_ENOTFOUND;
        ret = store_del_key(op->e, op->t, DB_ACCESS, key);
    } else if (!had || old != *value) {
        char b = *value ? '1' : '0';
        ret = store_put_str(op->e, op->t, DB_ACCESS, key, &b, 1);
    } else {
        return 0;
    }
    *changed = ret == 0;
    return ret;
}

static int access_op(store_t *s, store_ctx_t *ctx, const char *key_in, const bool *value,
                     report_t *rep)
{
    store_op_t op;
    char key[ACCESS_KEY_MAX];
    char before[8], after[8];
    bool changed = false;
    int ret = access_norm(key_in, key, rep);
    if (!ret)
        ret = store_op_begin(s, ctx, &op);
    if (ret)
        return ret;
    ret = store_tx_access_set(&op, key, value, before, after, &changed);
    if (ret == FG_ENOTFOUND)
        report_add(rep, REPORT_ERROR, "scope", "%s has no access setting", key);
    return store_op_end(&op, ret, value ? "access set" : "access unset", key,
                        changed ? strdup(before) : NULL, changed ? strdup(after) : NULL, changed);
}

int store_access_set(store_t *s, store_ctx_t *ctx, const char *key, bool value, report_t *rep)
{
    return access_op(s, ctx, key, &value, rep);
}

int store_access_unset(store_t *s, store_ctx_t *ctx, const char *key, report_t *rep)
{
    return access_op(s, ctx, key, NULL, rep);
}

typedef struct {
    int (*cb)(const char *key, bool value, void *arg);
    void *arg;
} access_list_t;

static int access_list_rec(const MDB_val *k, const MDB_val *v, void *arg)
{
    access_list_t *al = arg;
    char key[ACCESS_KEY_MAX];
    if (k->mv_size >= sizeof(key))
        return FG_ESTORE;
    memcpy(key, k->mv_data, k->mv_size);
    key[k->mv_size] = '\0';
    return al->cb(key, v->mv_size == 1 && *(const char *)v->mv_data == '1', al->arg);
}

int store_access_list(store_t *s, int (*cb)(const char *key, bool value, void *arg), void *arg)
{
    access_list_t al = {.cb = cb, .arg = arg};
    return each_rec(s, DB_ACCESS, access_list_rec, &al);
}

typedef struct {
    store_env_t *e;
    MDB_txn *t;
} access_ctx_t;

static int access_get_txn(void *arg, const char *key, bool *value)
{
    access_ctx_t *a = arg;
    MDB_val v;
    if (store_get_str(a->e, a->t, DB_ACCESS, key, &v))
        return 0;
    *value = v.mv_size == 1 && *(const char *)v.mv_data == '1';
    return 1;
}

int store_access_effective(store_t *s, const char *jid, bool *value)
{
    char key[ACCESS_KEY_MAX];
    access_scope_t scope;
    const char *why;
    int ret = access_key_parse(jid, &scope, key, sizeof(key), &why);
    if (ret)
        return ret;
    access_ctx_t a = {s->e, NULL};
    ret = read_txn(s, &a.t);
    if (ret)
        return ret;
    /* key is "user:<jid>" or "domain:<d>"; resolve on the part after the prefix */
    *value = access_resolve(strchr(key, ':') ? strchr(key, ':') + 1 : key, access_get_txn, &a);
    mdb_txn_abort(a.t);
    return 0;
}
