#include "admin/web_api_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/web_api.h"
#include "core/err.h"
#include "policy/access.h"
#include "policy/hosted.h"
#include "policy/schema.h"
#include "policy/settings.h"

#define AUDIT_DEFAULT_LIMIT 200
#define AUDIT_MAX_LIMIT     1000

static void method_not_allowed(web_req_t *req, const char *allow)
{
    req->allow = allow;
    web_reply_error(req, 405, "method_not_allowed", NULL, "method not allowed here");
}

/* Closes a list begun by web_api_list_begin() and sends it, or answers the store's error. */
static void reply_list(web_req_t *req, int ret)
{
    if (!ret)
        ret = json_put_raw(&req->out, "]}");
    if (ret)
        web_api_fail(req, ret, NULL);
    else
        web_reply_json(req, 200);
}

/* DELETE of a hosted domain or an access entry: both are removed by name, with no revision. */
static void remove_one(web_req_t *req,
                       int (*remove)(store_t *s, store_ctx_t *ctx, const char *name, report_t *rep),
                       const char *name)
{
    report_t rep;
    char actor[STORE_ACTOR_MAX];
    store_ctx_t ctx = {.actor = actor};
    report_init(&rep, 0);
    web_api_actor(req, actor, sizeof(actor));
    int ret = remove(req->srv->store, &ctx, name, &rep);
    free(ctx.change);
    if (ret)
        web_api_fail(req, ret, &rep);
    else
        web_api_reply_removed(req, name, NULL);
    report_free(&rep);
}

/* ---- gateway settings ---- */

typedef struct {
    const json_doc_t *doc;
    report_t *rep;
    uint64_t expected;
} settings_edit_t;

static int settings_edit(settings_t *st, void *arg)
{
    settings_edit_t *e = arg;
    uint64_t stored = st->revision;
    if (e->expected != STORE_ANY_REV && e->expected != stored)
        return FG_ESTALE;
    if (json_decode_object(&schema_settings, e->doc, 0, st, e->rep) > 0)
        return FG_EREFUSED;
    st->revision = stored;
    return 0;
}

void web_api_gateway(web_req_t *req, const char *rest)
{
    settings_t st;
    report_t rep;
    web_api_body_t b;
    char actor[STORE_ACTOR_MAX];
    store_ctx_t ctx = {.actor = actor};
    settings_edit_t e = {.rep = &rep};
    int ret;

    if (*rest) {
        web_reply_error(req, 404, "not_found", NULL, "no such resource");
        return;
    }
    if (req->method == WEB_GET || req->method == WEB_HEAD) {
        if ((ret = store_settings_get(req->srv->store, &st)))
            web_api_fail(req, ret, NULL);
        else
            web_api_reply_object(req, 200, "gateway", &schema_settings, &st, NULL);
        return;
    }
    if (req->method != WEB_PUT && req->method != WEB_PATCH) {
        method_not_allowed(req, "GET, HEAD, PUT, PATCH");
        return;
    }
    if (web_api_body(req, &b))
        return;
    report_init(&rep, 0);
    web_api_actor(req, actor, sizeof(actor));
    e.doc = &b.doc;
    ret = web_api_revision(req, &b, &e.expected, &rep);
    if (!ret)
        ret = store_settings_modify(req->srv->store, &ctx, settings_edit, &e, &st, &rep);
    free(ctx.change);
    if (ret)
        web_api_fail(req, ret, &rep);
    else
        web_api_reply_object(req, 200, "gateway", &schema_settings, &st, &rep);
    report_free(&rep);
    web_api_body_free(&b);
}

/* ---- hosted domains ---- */

static int list_hosted_cb(const hosted_t *h, void *arg)
{
    return web_api_list_item(arg, h);
}

static void hosted_put(web_req_t *req, const char *domain)
{
    web_api_body_t b;
    hosted_t h;
    report_t rep;
    char actor[STORE_ACTOR_MAX];
    store_ctx_t ctx = {.actor = actor};
    uint64_t rev = STORE_ANY_REV;
    int ret;

    if (web_api_body(req, &b))
        return;
    report_init(&rep, 0);
    web_api_actor(req, actor, sizeof(actor));
    hosted_defaults(&h);
    if (domain) {
        /* An update starts from the stored record so members left out keep their values. */
        if ((ret = store_hosted_get(req->srv->store, domain, &h)))
            goto done;
        if ((ret = web_api_revision(req, &b, &rev, &rep)))
            goto done;
    }
    char key[DOMAIN_BUF];
    snprintf(key, sizeof(key), "%s", h.domain);
    if (json_decode_object(&schema_hosted, &b.doc, 0, &h, &rep) > 0) {
        ret = FG_EREFUSED;
        goto done;
    }
    if (domain) {
        char given[DOMAIN_BUF];
        if (domain_normalize(h.domain, given, sizeof(given)) == 0 && strcmp(given, key) != 0) {
            report_add(&rep, REPORT_ERROR, "domain",
                       "a hosted domain cannot be renamed: remove it and create a new one");
            ret = FG_EREFUSED;
            goto done;
        }
    }
    ret = store_hosted_put(req->srv->store, &ctx, &h, domain ? STORE_PUT_UPDATE : STORE_PUT_CREATE,
                           rev, &rep);
done:
    free(ctx.change);
    if (ret)
        web_api_fail(req, ret, &rep);
    else
        web_api_reply_object(req, domain ? 200 : 201, "hosted", &schema_hosted, &h, &rep);
    report_free(&rep);
    web_api_body_free(&b);
}

void web_api_hosted(web_req_t *req, const char *rest)
{
    int ret;
    if (!*rest) {
        if (req->method == WEB_GET || req->method == WEB_HEAD) {
            web_api_list_t la;
            ret = web_api_list_begin(req, &la, "{\"hosted\":[", &schema_hosted);
            if (!ret)
                ret = store_hosted_list(req->srv->store, list_hosted_cb, &la);
            reply_list(req, ret);
        } else if (req->method == WEB_POST) {
            hosted_put(req, NULL);
        } else {
            method_not_allowed(req, "GET, HEAD, POST");
        }
        return;
    }
    const char *domain = rest + 1;
    if (!*domain || strchr(domain, '/')) {
        web_reply_error(req, 404, "not_found", NULL, "no such resource");
        return;
    }
    if (req->method == WEB_GET || req->method == WEB_HEAD) {
        hosted_t h;
        if ((ret = store_hosted_get(req->srv->store, domain, &h)))
            web_api_fail(req, ret, NULL);
        else
            web_api_reply_object(req, 200, "hosted", &schema_hosted, &h, NULL);
    } else if (req->method == WEB_PUT || req->method == WEB_PATCH) {
        hosted_put(req, domain);
    } else if (req->method == WEB_DELETE) {
        remove_one(req, store_hosted_remove, domain);
    } else {
        method_not_allowed(req, "GET, HEAD, PUT, PATCH, DELETE");
    }
}

/* ---- access policy ---- */

static int list_access_cb(const char *key, bool value, void *arg)
{
    web_api_list_t *la = arg;
    int ret = la->n++ ? json_put_raw(la->b, ",") : 0;
    if (!ret)
        ret = web_api_put_member(la->b, "{\"key\":", key);
    if (!ret)
        ret = json_put_raw(la->b, value ? ",\"value\":true}" : ",\"value\":false}");
    return ret;
}

static void access_set(web_req_t *req)
{
    static const char *const members[] = {"key", "value", NULL};
    web_api_body_t b;
    report_t rep;
    char key[ACCESS_KEY_MAX + 8];
    char actor[STORE_ACTOR_MAX];
    store_ctx_t ctx = {.actor = actor};
    bool value;
    int ret;

    if (web_api_body(req, &b))
        return;
    report_init(&rep, 0);
    web_api_actor(req, actor, sizeof(actor));
    if (web_api_only_members(req, &b, members))
        goto out;
    int tk = json_find(&b.doc, 0, "key"), tv = json_find(&b.doc, 0, "value");
    if (tk < 0 || json_string(&b.doc, tk, key, sizeof(key))) {
        report_add(&rep, REPORT_ERROR, "key",
                   "key is \"global\", \"domain:<domain>\" or \"user:<bare JID>\"");
        ret = FG_EPARSE;
    } else if (tv < 0 || json_bool(&b.doc, tv, &value)) {
        report_add(&rep, REPORT_ERROR, "value", "value is true or false");
        ret = FG_EPARSE;
    } else {
        ret = store_access_set(req->srv->store, &ctx, key, value, &rep);
    }
    free(ctx.change);
    if (ret) {
        web_api_fail(req, ret, &rep);
    } else {
        buf_reset(&req->out);
        json_put_raw(&req->out, "{\"saved\":true");
        web_api_put_messages(&req->out, &rep);
        json_put_raw(&req->out, "}");
        web_reply_json(req, 200);
    }
out:
    report_free(&rep);
    web_api_body_free(&b);
}

void web_api_access(web_req_t *req, const char *rest)
{
    int ret;
    if (!*rest) {
        if (req->method == WEB_GET || req->method == WEB_HEAD) {
            web_api_list_t la;
            ret = web_api_list_begin(req, &la, "{\"access\":[", NULL);
            if (!ret)
                ret = store_access_list(req->srv->store, list_access_cb, &la);
            reply_list(req, ret);
        } else if (req->method == WEB_PUT || req->method == WEB_POST) {
            access_set(req);
        } else {
            method_not_allowed(req, "GET, HEAD, PUT, POST");
        }
        return;
    }
    const char *key = rest + 1;
    if (!*key) {
        web_reply_error(req, 404, "not_found", NULL, "no such resource");
        return;
    }
    if (req->method == WEB_DELETE) {
        remove_one(req, store_access_unset, key);
    } else {
        method_not_allowed(req, "DELETE");
    }
}

/* ---- audit log ---- */

typedef struct {
    buf_t *b;
    uint64_t total; /* entries seen in the counting pass */
    uint64_t skip;  /* entries to pass over before writing */
    uint64_t i;
    bool counting;
    int err;
} audit_arg_t;

static int put_raw_json_or_null(buf_t *b, const char *s)
{
    return json_put_raw(b, s && *s ? s : "null");
}

static int audit_cb(const store_audit_t *a, void *arg)
{
    audit_arg_t *aa = arg;
    if (aa->counting) {
        aa->total++;
        return 0;
    }
    if (aa->i++ < aa->skip)
        return 0;
    buf_t *b = aa->b;
    char num[48];
    snprintf(num, sizeof(num),
             "{\"seq\":%llu,\"time_ms\":%lld,\"actor\":", (unsigned long long)a->seq,
             (long long)a->time_ms);
    int ret = json_put_raw(b, aa->i - 1 > aa->skip ? "," : "");
    if (!ret)
        ret = web_api_put_member(b, num, a->actor);
    if (!ret)
        ret = web_api_put_member(b, ",\"verb\":", a->verb);
    if (!ret)
        ret = web_api_put_member(b, ",\"subject\":", a->subject);
    /* before/after are JSON documents the store wrote (secrets removed); they are embedded. */
    if (!ret)
        ret = json_put_raw(b, ",\"before\":");
    if (!ret)
        ret = put_raw_json_or_null(b, a->before);
    if (!ret)
        ret = json_put_raw(b, ",\"after\":");
    if (!ret)
        ret = put_raw_json_or_null(b, a->after);
    if (!ret)
        ret = json_put_raw(b, "}");
    aa->err = ret;
    return ret;
}

void web_api_audit(web_req_t *req, const char *rest)
{
    const char *since = web_req_query(req, "since");
    const char *limit_q = web_req_query(req, "limit");
    long long since_ms = 0;
    unsigned long limit = AUDIT_DEFAULT_LIMIT;
    audit_arg_t aa = {.b = &req->out, .counting = true};
    int ret;

    if (*rest) {
        web_reply_error(req, 404, "not_found", NULL, "no such resource");
        return;
    }
    if (req->method != WEB_GET && req->method != WEB_HEAD) {
        method_not_allowed(req, "GET, HEAD");
        return;
    }
    if (since) {
        char *end;
        since_ms = strtoll(since, &end, 10);
        if (!*since || *end || since_ms < 0) {
            web_reply_error(req, 422, "refused", "since",
                            "since is a time in milliseconds since 1970");
            return;
        }
    }
    if (limit_q) {
        char *end;
        limit = strtoul(limit_q, &end, 10);
        if (!*limit_q || *end || limit == 0 || limit > AUDIT_MAX_LIMIT) {
            web_reply_error(req, 422, "refused", "limit", "limit is a number from 1 to 1000");
            return;
        }
    }
    /* Two passes: count, then write only the newest `limit` entries (oldest first). */
    ret = store_audit_list(req->srv->store, since_ms, audit_cb, &aa);
    if (!ret) {
        aa.counting = false;
        aa.skip = aa.total > limit ? aa.total - limit : 0;
        buf_reset(&req->out);
        ret = json_put_raw(&req->out, "{\"audit\":[");
        if (!ret)
            ret = store_audit_list(req->srv->store, since_ms, audit_cb, &aa);
        if (!ret)
            ret = json_put_raw(&req->out, "]}");
    }
    if (ret)
        web_api_fail(req, ret, NULL);
    else
        web_reply_json(req, 200);
}
