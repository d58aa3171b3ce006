/*
 * Batches (many records in one write transaction, all or nothing), JSON import and export.
 */
#include "policy/store_int.h"

#include "core/err.h"
#include "policy/json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A set of strings (keys seen in this batch), open addressing, grows by doubling. */
typedef struct {
    char **slot;
    size_t cap, n;
} strset_t;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool strset_has(const strset_t *set, const char *s)
{
    if (!set->cap)
        return false;
    for (size_t i = hash_str(s) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->slot[i])
            return false;
        if (strcmp(set->slot[i], s) == 0)
            return true;
    }
}

/* 1 added, 0 already present, -ENOMEM */
static int strset_add(strset_t *set, const char *s)
{
    if (strset_has(set, s))
        return 0;
    if ((set->n + 1) * 2 > set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        char **slot = calloc(cap, sizeof(*slot));
        if (!slot)
            return -ENOMEM;
        for (size_t i = 0; i < set->cap; i++)
            if (set->slot[i]) {
                size_t j = hash_str(set->slot[i]) & (cap - 1);
                while (slot[j])
                    j = (j + 1) & (cap - 1);
                slot[j] = set->slot[i];
            }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    char *copy = strdup(s);
    if (!copy)
        return -ENOMEM;
    size_t i = hash_str(s) & (set->cap - 1);
    while (set->slot[i])
        i = (i + 1) & (set->cap - 1);
    set->slot[i] = copy;
    set->n++;
    return 1;
}

static void strset_free(strset_t *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
    memset(set, 0, sizeof(*set));
}

struct store_batch {
    store_op_t op;
    size_t created, updated, removed, unchanged;
    size_t errors;
    int fatal; /* a store error (not a validation one): the batch can only abort */
    strset_t partners, hosted, access;
    partner_t old; /* scratch */
};

int store_batch_begin(store_t *s, store_ctx_t *ctx, store_batch_t **out)
{
    store_batch_t *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    int ret = store_op_begin(s, ctx, &b->op);
    if (ret) {
        free(b);
        return ret;
    }
    *out = b;
    return 0;
}

static void batch_free(store_batch_t *b)
{
    strset_free(&b->partners);
    strset_free(&b->hosted);
    strset_free(&b->access);
    free(b);
}

void store_batch_abort(store_batch_t *b)
{
    if (!b)
        return;
    store_op_end(&b->op, FG_EREFUSED, "", "", NULL, NULL, false);
    batch_free(b);
}

void store_batch_counts(const store_batch_t *b, size_t *created, size_t *updated, size_t *removed)
{
    *created = b->created;
    *updated = b->updated;
    *removed = b->removed;
}

/* Validation errors are counted and the batch goes on, so every bad entry is reported; a store
   error stops it. */
static int batch_result(store_batch_t *b, int ret, bool changed, bool created)
{
    if (ret == 0) {
        if (!changed)
            b->unchanged++;
        else if (created)
            b->created++;
        else
            b->updated++;
        return 0;
    }
    if (ret == FG_EREFUSED || ret == FG_ECONFLICT || ret == FG_EDOMAIN || ret == FG_EPARSE ||
        ret == FG_ESTALE || ret == FG_ENOTFOUND)
        b->errors++;
    else if (!b->fatal)
        b->fatal = ret;
    return ret;
}

int store_batch_partner(store_batch_t *b, partner_t *p, const char *subject, report_t *rep)
{
    char saved[REPORT_SUBJECT_MAX] = "";
    char *before = NULL, *after = NULL;
    bool changed = false, created = false;
    int ret;
    if (b->fatal)
        return b->fatal;
    if (rep) {
        memcpy(saved, rep->subject, sizeof(saved));
        report_set_subject(rep, subject);
    }
    /* Normalise first so the duplicate check compares keys. */
    char key[DOMAIN_BUF];
    if (strcmp(p->domain, STORE_DEFAULT_KEY) != 0 && domain_normalize(p->domain, key, sizeof(key)))
        ret = partner_validate(p, 0, rep); /* reports the bad domain (and the rest) */
    else {
        if (strcmp(p->domain, STORE_DEFAULT_KEY) == 0)
            strcpy(key, STORE_DEFAULT_KEY);
        ret = strset_add(&b->partners, key);
        if (ret == 0) {
            report_add(rep, REPORT_ERROR, "domain", "partner %s appears twice in this import", key);
            ret = FG_ECONFLICT;
        } else if (ret > 0) {
            ret = store_tx_partner_put(&b->op, p, &b->old, STORE_PUT_UPSERT, STORE_ANY_REV, rep,
                                       &before, &after, &changed, &created);
        }
    }
    free(before);
    free(after);
    if (rep)
        report_set_subject(rep, saved);
    return batch_result(b, ret, changed, created);
}

int store_batch_hosted(store_batch_t *b, hosted_t *h, const char *subject, report_t *rep)
{
    char saved[REPORT_SUBJECT_MAX] = "";
    char *before = NULL, *after = NULL;
    bool changed = false, created = false;
    int ret;
    if (b->fatal)
        return b->fatal;
    if (rep) {
        memcpy(saved, rep->subject, sizeof(saved));
        report_set_subject(rep, subject);
    }
    char key[DOMAIN_BUF];
    if (domain_normalize(h->domain, key, sizeof(key)) == 0 && strset_add(&b->hosted, key) == 0) {
        report_add(rep, REPORT_ERROR, "domain", "hosted domain %s appears twice in this import",
                   key);
        ret = FG_ECONFLICT;
    } else {
        ret = store_tx_hosted_put(&b->op, h, STORE_PUT_UPSERT, STORE_ANY_REV, rep, &before, &after,
                                  &changed, &created);
    }
    free(before);
    free(after);
    if (rep)
        report_set_subject(rep, saved);
    return batch_result(b, ret, changed, created);
}

int store_batch_settings(store_batch_t *b, settings_t *st, report_t *rep)
{
    char saved[REPORT_SUBJECT_MAX] = "";
    char *before = NULL, *after = NULL;
    bool changed = false;
    if (b->fatal)
        return b->fatal;
    if (rep) {
        memcpy(saved, rep->subject, sizeof(saved));
        report_set_subject(rep, "settings");
    }
    int ret = store_tx_settings_put(&b->op, st, STORE_ANY_REV, rep, &before, &after, &changed);
    free(before);
    free(after);
    if (rep)
        report_set_subject(rep, saved);
    return batch_result(b, ret, changed, false);
}

int store_batch_access(store_batch_t *b, const char *key_in, bool value, report_t *rep)
{
    char key[ACCESS_KEY_MAX], before[8], after[8];
    access_scope_t scope;
    const char *why = NULL;
    bool changed = false;
    if (b->fatal)
        return b->fatal;
    int ret = access_key_parse(key_in, &scope, key, sizeof(key), &why);
    if (ret) {
        report_add(rep, REPORT_ERROR, "access", "\"%.300s\" is not a valid scope: %s", key_in,
                   why ? why : "malformed");
        return batch_result(b, FG_EREFUSED, false, false);
    }
    if (strset_add(&b->access, key) == 0) {
        report_add(rep, REPORT_ERROR, "access", "%s appears twice in this import", key);
        return batch_result(b, FG_ECONFLICT, false, false);
    }
    ret = store_tx_access_set(&b->op, key, &value, before, after, &changed);
    return batch_result(b, ret, changed, !strcmp(before, "null"));
}

/* Sections of an import document, for STORE_IMPORT_REPLACE. */
enum {
    SECTION_PARTNERS = 1u << 0,
    SECTION_HOSTED = 1u << 1,
    SECTION_ACCESS = 1u << 2,
};

/* STORE_IMPORT_REPLACE: in each section the document has, remove what the batch did not
   mention. A section the document lacks is left alone: `partner get --json` piped into an
   import with replace must not empty the hosted domains and the access policy. */
static int batch_replace(store_batch_t *b, unsigned sections)
{
    MDB_cursor *c = NULL;
    const store_db_t dbs[3] = {DB_PARTNERS, DB_HOSTED, DB_ACCESS};
    const unsigned bits[3] = {SECTION_PARTNERS, SECTION_HOSTED, SECTION_ACCESS};
    strset_t *sets[3] = {&b->partners, &b->hosted, &b->access};
    strset_t doomed = {0};
    int ret = 0;
    for (int i = 0; i < 3 && !ret; i++) {
        if (!(sections & bits[i]))
            continue;
        ret = store_mdb_err(mdb_cursor_open(b->op.t, b->op.e->dbi[dbs[i]], &c));
        if (ret)
            break;
        MDB_val k, v;
        int rc;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && !ret;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            char key[ACCESS_KEY_MAX];
            if (k.mv_size >= sizeof(key)) {
                ret = FG_ESTORE;
                break;
            }
            memcpy(key, k.mv_data, k.mv_size);
            key[k.mv_size] = '\0';
            if (!strset_has(sets[i], key) && strset_add(&doomed, key) < 0)
                ret = -ENOMEM;
        }
        mdb_cursor_close(c);
        if (!ret && rc != MDB_NOTFOUND && rc != 0)
            ret = store_mdb_err(rc);
        /* Delete after the walk: never modify under an open cursor. */
        for (size_t j = 0; !ret && j < doomed.cap; j++) {
            char *before = NULL;
            const char *key = doomed.slot[j];
            if (!key)
                continue;
            if (dbs[i] == DB_PARTNERS)
                ret = store_tx_partner_del(&b->op, key, STORE_ANY_REV, &b->old, NULL, &before);
            else if (dbs[i] == DB_HOSTED)
                ret = store_tx_hosted_del(&b->op, key, NULL, &before);
            else
                ret = store_del_key(b->op.e, b->op.t, DB_ACCESS, key);
            free(before);
            b->removed++;
        }
        strset_free(&doomed);
    }
    return ret;
}

static int batch_finish(store_batch_t *b, report_t *rep, unsigned replace)
{
    int ret = b->fatal;
    char after[256];
    if (!ret && b->errors) {
        report_add(rep, REPORT_ERROR, "",
                   "%zu invalid entr%s: nothing was saved; fix them and import again", b->errors,
                   b->errors == 1 ? "y" : "ies");
        ret = FG_EREFUSED;
    }
    if (!ret && replace)
        ret = batch_replace(b, replace);
    bool changed = b->created || b->updated || b->removed;
    snprintf(after, sizeof(after),
             "{\"created\":%zu,\"updated\":%zu,\"removed\":%zu,"
             "\"unchanged\":%zu}",
             b->created, b->updated, b->removed, b->unchanged);
    if (!ret)
        report_add(rep, REPORT_INFO, "", "%s%zu created, %zu updated, %zu removed, %zu unchanged",
                   b->op.ctx && b->op.ctx->what_if ? "what-if: would have " : "", b->created,
                   b->updated, b->removed, b->unchanged);
    ret =
        store_op_end(&b->op, ret, "import", "batch", NULL, changed ? strdup(after) : NULL, changed);
    batch_free(b);
    return ret;
}

int store_batch_commit(store_batch_t *b, report_t *rep)
{
    return batch_finish(b, rep, 0);
}

/* ---- import ---- */

static int import_partners(store_batch_t *b, const json_doc_t *d, int arr, partner_t *p,
                           report_t *rep)
{
    char subject[REPORT_SUBJECT_MAX], saved[REPORT_SUBJECT_MAX];
    if (d->tok[arr].type != JSON_ARRAY) {
        report_add(rep, REPORT_ERROR, "partners", "expected an array of partner objects");
        b->errors++;
        return 0;
    }
    /* One pass along the `next` links: json_child(i) walks from the start, which made an
       import of n partners cost n*n/2 steps. */
    json_iter_t it;
    json_iter_init(&it, d, arr);
    int t;
    for (uint32_t i = 0; (t = json_iter_next(&it, NULL)) >= 0; i++) {
        char dom[DOMAIN_BUF] = "?";
        json_string(d, json_find(d, t, "domain"), dom, sizeof(dom));
        snprintf(subject, sizeof(subject), "partners[%u] %.250s", i, dom);
        partner_defaults(p);
        snprintf(saved, sizeof(saved), "%s", rep ? rep->subject : "");
        report_set_subject(rep, subject);
        size_t errs = json_decode_object(&schema_partner, d, t, p, rep);
        report_set_subject(rep, saved);
        if (errs) {
            b->errors++;
            continue;
        }
        int ret = store_batch_partner(b, p, subject, rep);
        if (b->fatal)
            return ret;
    }
    return 0;
}

static int import_hosted(store_batch_t *b, const json_doc_t *d, int arr, report_t *rep)
{
    char subject[REPORT_SUBJECT_MAX], saved[REPORT_SUBJECT_MAX];
    hosted_t h;
    if (d->tok[arr].type != JSON_ARRAY) {
        report_add(rep, REPORT_ERROR, "hosted", "expected an array of hosted domain objects");
        b->errors++;
        return 0;
    }
    /* One pass along the `next` links: json_child(i) walks from the start, which made an
       import of n partners cost n*n/2 steps. */
    json_iter_t it;
    json_iter_init(&it, d, arr);
    int t;
    for (uint32_t i = 0; (t = json_iter_next(&it, NULL)) >= 0; i++) {
        char dom[DOMAIN_BUF] = "?";
        json_string(d, json_find(d, t, "domain"), dom, sizeof(dom));
        snprintf(subject, sizeof(subject), "hosted[%u] %.250s", i, dom);
        hosted_defaults(&h);
        snprintf(saved, sizeof(saved), "%s", rep ? rep->subject : "");
        report_set_subject(rep, subject);
        size_t errs = json_decode_object(&schema_hosted, d, t, &h, rep);
        report_set_subject(rep, saved);
        if (errs) {
            b->errors++;
            continue;
        }
        int ret = store_batch_hosted(b, &h, subject, rep);
        if (b->fatal)
            return ret;
    }
    return 0;
}

static int import_access(store_batch_t *b, const json_doc_t *d, int obj, report_t *rep)
{
    if (d->tok[obj].type != JSON_OBJECT) {
        report_add(rep, REPORT_ERROR, "access", "expected an object of scope: true|false");
        b->errors++;
        return 0;
    }
    json_iter_t it;
    json_iter_init(&it, d, obj);
    int c, v;
    for (uint32_t i = 0; (v = json_iter_next(&it, &c)) >= 0; i++) {
        char key[ACCESS_KEY_MAX];
        bool val;
        if (json_string(d, c, key, sizeof(key)) || json_bool(d, v, &val)) {
            report_add(rep, REPORT_ERROR, "access", "member %u: expected \"scope\": true|false", i);
            b->errors++;
        } else {
            store_batch_access(b, key, val, rep);
            if (b->fatal)
                return b->fatal;
        }
    }
    return 0;
}

int store_import_json(store_t *s, store_ctx_t *ctx, const char *json, size_t len, unsigned flags,
                      report_t *rep)
{
    json_doc_t d;
    json_tok_t *tok = NULL;
    store_batch_t *b = NULL;
    partner_t *p = NULL;
    int ret;
    /* Tokens: start small, grow while the document needs more (bounded by its length). */
    uint32_t cap = (uint32_t)(len / 16 + 64);
    for (;;) {
        free(tok);
        tok = malloc((size_t)cap * sizeof(*tok));
        if (!tok) {
            ret = -ENOMEM;
            goto out;
        }
        ret = json_parse(&d, json, len, tok, cap);
        if (ret != FG_ELIMIT || cap > len + 64)
            break;
        cap = cap * 4 > len + 64 ? (uint32_t)(len + 65) : cap * 4;
    }
    if (ret) {
        size_t line = 1;
        for (size_t i = 0; i < d.err_pos && i < len; i++)
            line += json[i] == '\n';
        report_add(rep, REPORT_ERROR, "", "not valid JSON (line %zu, byte %u)", line, d.err_pos);
        ret = FG_EPARSE;
        goto out;
    }
    int root = 0, partners = -1, hosted = -1, access = -1, settings = -1;
    if (d.tok[0].type == JSON_ARRAY) {
        partners = 0;
    } else if (d.tok[0].type == JSON_OBJECT) {
        uint32_t c = 1;
        for (uint32_t i = 0; i < d.tok[root].size; i++) {
            uint32_t v = d.tok[c].next;
            char key[64] = "";
            json_string(&d, (int)c, key, sizeof(key));
            if (!strcmp(key, "partners"))
                partners = (int)v;
            else if (!strcmp(key, "hosted"))
                hosted = (int)v;
            else if (!strcmp(key, "access"))
                access = (int)v;
            else if (!strcmp(key, "settings"))
                settings = (int)v;
            else if (!strcmp(key, "schema_version")) {
                int64_t ver;
                if (json_int(&d, (int)v, 0, 255, &ver) || ver > SCHEMA_VERSION) {
                    report_add(rep, REPORT_ERROR, "schema_version",
                               "the file was exported by a newer fedgate (schema version "
                               "%.*s); this build reads up to %d",
                               (int)(d.tok[v].end - d.tok[v].start), json + d.tok[v].start,
                               SCHEMA_VERSION);
                    ret = FG_EVERSION;
                    goto out;
                }
            } else if (strcmp(key, "fedgate_store") != 0) {
                report_add(rep, REPORT_ERROR, key,
                           "unknown section \"%s\": expected settings, partners, hosted, access",
                           key);
                ret = FG_EREFUSED;
                goto out;
            }
            c = d.tok[v].next;
        }
    } else {
        report_add(rep, REPORT_ERROR, "", "expected a JSON object or an array of partners");
        ret = FG_EPARSE;
        goto out;
    }

    p = malloc(sizeof(*p));
    ret = p ? store_batch_begin(s, ctx, &b) : -ENOMEM;
    if (ret)
        goto out;
    if (settings >= 0) {
        settings_t st;
        char saved[REPORT_SUBJECT_MAX];
        ret = store_get_settings(b->op.e, b->op.t, &st);
        if (ret)
            goto out;
        snprintf(saved, sizeof(saved), "%s", rep ? rep->subject : "");
        report_set_subject(rep, "settings");
        size_t errs = json_decode_object(&schema_settings, &d, settings, &st, rep);
        report_set_subject(rep, saved);
        if (errs)
            b->errors++;
        else
            store_batch_settings(b, &st, rep);
    }
    ret = 0;
    if (hosted >= 0)
        ret = import_hosted(b, &d, hosted, rep);
    if (!ret && partners >= 0)
        ret = import_partners(b, &d, partners, p, rep);
    if (!ret && access >= 0)
        ret = import_access(b, &d, access, rep);
    unsigned sections = (partners >= 0 ? SECTION_PARTNERS : 0) |
                        (hosted >= 0 ? SECTION_HOSTED : 0) | (access >= 0 ? SECTION_ACCESS : 0);
    ret = batch_finish(b, rep, (flags & STORE_IMPORT_REPLACE) ? sections : 0);
    b = NULL;
out:
    if (b)
        store_batch_abort(b);
    free(p);
    free(tok);
    return ret;
}

/* ---- export ---- */

int store_export_json(store_t *s, unsigned flags, buf_t *out)
{
    MDB_txn *t = NULL;
    MDB_cursor *c = NULL;
    partner_t *p = malloc(sizeof(*p));
    hosted_t h;
    settings_t st;
    unsigned jf = JSON_F_PRETTY | ((flags & STORE_EXPORT_SECRETS) ? JSON_F_SECRETS : 0);
    int ret = p ? store_mdb_err(mdb_txn_begin(s->e->env, NULL, MDB_RDONLY, &t)) : -ENOMEM;
    if (ret)
        goto out;
    ret = store_get_settings(s->e, t, &st);
    char head[96];
    snprintf(head, sizeof(head), "{\n  \"fedgate_store\": 1,\n  \"schema_version\": %d,\n",
             SCHEMA_VERSION);
    if (!ret)
        ret = buf_append_str(out, head);
    if (!ret)
        ret = buf_append_str(out, "  \"settings\": ");
    if (!ret)
        ret = json_encode_object(&schema_settings, &st, jf, 1, out);

    const store_db_t dbs[2] = {DB_PARTNERS, DB_HOSTED};
    const char *names[2] = {",\n  \"partners\": [", ",\n  \"hosted\": ["};
    for (int i = 0; i < 2 && !ret; i++) {
        ret = buf_append_str(out, names[i]);
        if (!ret)
            ret = store_mdb_err(mdb_cursor_open(t, s->e->dbi[dbs[i]], &c));
        MDB_val k, v;
        int rc = 0, n = 0;
        for (rc = ret ? 0 : mdb_cursor_get(c, &k, &v, MDB_FIRST); !ret && rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            const schema_t *sc = i == 0 ? &schema_partner : &schema_hosted;
            void *obj = i == 0 ? (void *)p : (void *)&h;
            ret = schema_decode(sc, v.mv_data, v.mv_size, obj);
            if (!ret)
                ret = buf_append_str(out, n++ ? ",\n    " : "\n    ");
            if (!ret)
                ret = json_encode_object(sc, obj, jf, 2, out);
        }
        if (!ret && rc != MDB_NOTFOUND)
            ret = store_mdb_err(rc);
        if (c)
            mdb_cursor_close(c);
        c = NULL;
        if (!ret)
            ret = buf_append_str(out, n ? "\n  ]" : "]");
    }
    if (!ret)
        ret = buf_append_str(out, ",\n  \"access\": {");
    if (!ret)
        ret = store_mdb_err(mdb_cursor_open(t, s->e->dbi[DB_ACCESS], &c));
    if (!ret) {
        MDB_val k, v;
        int rc, n = 0;
        for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); !ret && rc == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            char key[ACCESS_KEY_MAX];
            if (k.mv_size >= sizeof(key)) {
                ret = FG_ESTORE;
                break;
            }
            memcpy(key, k.mv_data, k.mv_size);
            key[k.mv_size] = '\0';
            ret = buf_append_str(out, n++ ? ",\n    " : "\n    ");
            if (!ret)
                ret = json_put_string(out, key);
            if (!ret)
                ret = buf_append_str(
                    out, v.mv_size == 1 && *(const char *)v.mv_data == '1' ? ": true" : ": false");
        }
        if (!ret && rc != MDB_NOTFOUND)
            ret = store_mdb_err(rc);
        if (!ret)
            ret = buf_append_str(out, n ? "\n  }\n}\n" : "}\n}\n");
    }
out:
    if (c)
        mdb_cursor_close(c);
    if (t)
        mdb_txn_abort(t);
    free(p);
    return ret;
}
