#include "admin/web_api.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/users.h"
#include "admin/web_api_config.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/domain.h"
#include "policy/partner.h"
#include "policy/schema.h"

/* ---- shared helpers ---- */

void web_api_actor(const web_req_t *req, char *out, size_t outlen)
{
    snprintf(out, outlen, "web:%s", req->session.user);
}

/* True when two members of the top-level object have the same name. */
static bool has_duplicate_member(const json_doc_t *d)
{
    const json_tok_t *tok = d->tok;
    uint32_t a = 1;
    for (uint32_t i = 0; i < tok[0].size; i++) {
        uint32_t b = tok[a + 1].next;
        for (uint32_t j = i + 1; j < tok[0].size; j++) {
            if (tok[a].end - tok[a].start == tok[b].end - tok[b].start &&
                memcmp(d->text + tok[a].start, d->text + tok[b].start, tok[a].end - tok[a].start) ==
                    0)
                return true;
            b = tok[b + 1].next;
        }
        a = tok[a + 1].next;
    }
    return false;
}

int web_api_body(web_req_t *req, web_api_body_t *b)
{
    const char *ct = web_req_header(req, "Content-Type");
    char why[96];
    int ret;

    memset(b, 0, sizeof(*b));
    if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
        web_reply_error(req, 415, "unsupported_media_type", NULL,
                        "send the body as Content-Type: application/json");
        return FG_EPARSE;
    }
    b->tok = malloc(sizeof(*b->tok) * WEB_API_MAX_TOKENS);
    if (!b->tok) {
        web_reply_error(req, 500, "internal", NULL, "out of memory");
        return -ENOMEM;
    }
    ret = json_parse(&b->doc, (const char *)req->body.data, req->body.len, b->tok,
                     WEB_API_MAX_TOKENS);
    if (ret == FG_ELIMIT) {
        web_reply_error(req, 413, "too_large", NULL, "too many JSON values in the body");
    } else if (ret) {
        snprintf(why, sizeof(why), "malformed JSON at byte %u", (unsigned)b->doc.err_pos);
        web_reply_error(req, 400, "bad_json", NULL, why);
    } else if (b->doc.ntok == 0 || b->tok[0].type != JSON_OBJECT) {
        ret = FG_EPARSE;
        web_reply_error(req, 400, "bad_json", NULL, "the body must be a JSON object");
    } else if (has_duplicate_member(&b->doc)) {
        /* Parsers disagree on which of two equal names wins; refuse rather than guess. */
        ret = FG_EPARSE;
        web_reply_error(req, 400, "bad_json", NULL, "a member name appears twice");
    }
    if (ret)
        web_api_body_free(b);
    return ret;
}

void web_api_body_free(web_api_body_t *b)
{
    free(b->tok);
    b->tok = NULL;
}

int web_api_only_members(web_req_t *req, const web_api_body_t *b, const char *const *allowed)
{
    const json_tok_t *tok = b->doc.tok;
    uint32_t key = 1;
    for (uint32_t i = 0; i < tok[0].size; i++) {
        bool ok = false;
        for (size_t k = 0; allowed[k] && !ok; k++)
            ok = json_string_eq(&b->doc, (int)key, allowed[k]);
        if (!ok) {
            char name[64] = "";
            json_string(&b->doc, (int)key, name, sizeof(name));
            char reason[128];
            snprintf(reason, sizeof(reason), "unknown member \"%s\"", name);
            web_reply_error(req, 422, "refused", name, reason);
            return FG_EREFUSED;
        }
        key = tok[key + 1].next; /* past the value and its children */
    }
    return 0;
}

int web_api_put_member(buf_t *b, const char *key, const char *value)
{
    int ret = json_put_raw(b, key);
    return ret ? ret : json_put_string(b, value);
}

int web_api_put_messages(buf_t *b, const report_t *rep)
{
    int ret = json_put_raw(b, ",\"messages\":[");
    for (size_t i = 0; rep && i < rep->n && !ret; i++) {
        const report_msg_t *m = &rep->msg[i];
        char line[REPORT_FIELD_MAX + REPORT_SUBJECT_MAX + REPORT_TEXT_MAX + 32];
        report_format(m, line, sizeof(line));
        ret = web_api_put_member(
            b, i ? ",{\"severity\":" : "{\"severity\":", report_severity_name(m->severity));
        if (!ret)
            ret = web_api_put_member(b, ",\"field\":", m->field);
        if (!ret)
            ret = web_api_put_member(b, ",\"subject\":", m->subject);
        if (!ret)
            ret = web_api_put_member(b, ",\"text\":", m->text);
        if (!ret)
            ret = web_api_put_member(b, ",\"line\":", line);
        if (!ret)
            ret = json_put_raw(b, "}");
    }
    if (!ret)
        ret = json_put_raw(b, "]");
    return ret;
}

static const report_msg_t *first_error(const report_t *rep)
{
    for (size_t i = 0; rep && i < rep->n; i++)
        if (rep->msg[i].severity == REPORT_ERROR)
            return &rep->msg[i];
    return NULL;
}

void web_api_fail(web_req_t *req, int err, const report_t *rep)
{
    const report_msg_t *m = first_error(rep);
    const char *code;
    unsigned status;

    switch (err) {
    case FG_EREFUSED:
    case FG_EPARSE:
    case FG_EDOMAIN:
    case FG_ELIMIT:
        status = 422;
        code = "refused";
        break;
    case FG_ECONFLICT:
        status = 409;
        code = "exists";
        break;
    case FG_ESTALE:
        status = 409;
        code = "stale";
        m = NULL; /* the reason is always the same sentence */
        break;
    case FG_ENOTFOUND:
        status = 404;
        code = "not_found";
        break;
    case FG_ESPACE:
        status = 507;
        code = "store_full";
        break;
    default:
        status = 500;
        code = "store";
        log_error("web: store operation failed: %s", fg_strerror(err));
        break;
    }
    web_reply_error(req, status, code, m ? m->field : NULL, m ? m->text : fg_strerror(err));
    /* Reopen the object to add every message, so the page can show them all. */
    if (rep && rep->n && req->out.len > 0 && req->out.data[req->out.len - 1] == '}') {
        req->out.len--;
        if (web_api_put_messages(&req->out, rep) || json_put_raw(&req->out, "}"))
            web_reply_error(req, 500, "internal", NULL, "response too large");
        else
            req->status = status;
    }
}

void web_api_reply_object(web_req_t *req, unsigned status, const char *name, const schema_t *s,
                          const void *obj, const report_t *rep)
{
    buf_reset(&req->out);
    int ret = json_put_raw(&req->out, "{\"");
    if (!ret)
        ret = json_put_raw(&req->out, name);
    if (!ret)
        ret = json_put_raw(&req->out, "\":");
    if (!ret)
        ret = json_encode_object(s, obj, 0, 0, &req->out);
    if (!ret)
        ret = web_api_put_messages(&req->out, rep);
    if (!ret)
        ret = json_put_raw(&req->out, "}");
    if (ret)
        web_reply_error(req, 500, "internal", NULL, "response too large");
    else
        web_reply_json(req, status);
}

void web_api_reply_removed(web_req_t *req, const char *name, const report_t *rep)
{
    buf_reset(&req->out);
    json_put_raw(&req->out, "{\"removed\":");
    json_put_string(&req->out, name);
    if (rep)
        web_api_put_messages(&req->out, rep);
    json_put_raw(&req->out, "}");
    web_reply_json(req, 200);
}

int web_api_revision(web_req_t *req, const web_api_body_t *b, uint64_t *rev, report_t *rep)
{
    int ret = 0;
    *rev = STORE_ANY_REV;
    if (b) {
        int t = json_find(&b->doc, 0, "revision");
        int64_t v;
        if (t >= 0 && json_int(&b->doc, t, 1, INT64_MAX, &v))
            ret = FG_EPARSE;
        else if (t >= 0)
            *rev = (uint64_t)v;
    } else {
        const char *q = web_req_query(req, "revision");
        char *end;
        if (q) {
            errno = 0;
            unsigned long long v = strtoull(q, &end, 10);
            if (!*q || *end || errno || v == 0 || *q == '-')
                ret = FG_EPARSE;
            else
                *rev = v;
        }
    }
    if (ret)
        report_add(rep, REPORT_ERROR, "revision", "revision must be a positive integer");
    return ret;
}

int web_api_list_begin(web_req_t *req, web_api_list_t *l, const char *open, const schema_t *s)
{
    buf_reset(&req->out);
    *l = (web_api_list_t){.b = &req->out, .schema = s};
    return json_put_raw(&req->out, open);
}

int web_api_list_item(web_api_list_t *l, const void *obj)
{
    int ret = l->n++ ? json_put_raw(l->b, ",") : 0;
    if (!ret)
        ret = json_encode_object(l->schema, obj, 0, 0, l->b);
    return ret;
}

/* ---- session ---- */

static int put_session(buf_t *b, const web_session_t *s, users_role_t role)
{
    int ret = web_api_put_member(b, "{\"user\":", s->user);
    if (!ret)
        ret = web_api_put_member(b, ",\"role\":", users_role_name(role));
    if (!ret)
        ret = web_api_put_member(b, ",\"csrf\":", s->csrf);
    if (!ret)
        ret = json_put_raw(b, "}");
    return ret;
}

static void api_login(web_req_t *req)
{
    static const char *const members[] = {"name", "password", NULL};
    web_api_body_t b;
    char name[USERS_NAME_MAX + 2] = "";
    char password[USERS_PASSWORD_MAX + 2] = "";
    char addr[64];
    char token[WEB_TOKEN_LEN + 1];
    unsigned wait;
    users_role_t role;
    web_session_t s;

    if (web_api_body(req, &b))
        return;
    if (web_api_only_members(req, &b, members))
        goto out;
    int tn = json_find(&b.doc, 0, "name"), tp = json_find(&b.doc, 0, "password");
    if (tn < 0 || tp < 0 || json_string(&b.doc, tn, name, sizeof(name)) ||
        json_string(&b.doc, tp, password, sizeof(password))) {
        web_reply_error(req, 422, "refused", tn < 0 ? "name" : "password",
                        "give the account name and password as strings");
        goto out;
    }
    web_req_client(req, addr, sizeof(addr));
    uint64_t now = web_now_ms();
    if (web_rl_check(&req->srv->sessions, addr, name, now, &wait)) {
        req->retry_after = wait;
        web_reply_error(req, 429, "rate_limited", NULL,
                        "too many failed sign-ins; wait before trying again");
        goto out;
    }
    if (users_verify(req->srv->store, name, password, &role) != 0) {
        web_rl_failure(&req->srv->sessions, addr, name, now);
        log_warn("web: failed sign-in for \"%.64s\" from %s", name, addr);
        web_reply_error(req, 401, "bad_credentials", NULL, "wrong account name or password");
        goto out;
    }
    web_rl_success(&req->srv->sessions, addr, now);
    unsigned char stamp[USERS_STAMP_LEN];
    if (users_get(req->srv->store, name, &role, stamp) ||
        web_session_create(&req->srv->sessions, name, stamp, token, &s)) {
        web_reply_error(req, 500, "internal", NULL, "no randomness for a session");
        goto out;
    }
    snprintf(req->set_cookie, sizeof(req->set_cookie),
             WEB_COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict%s", token,
             req->srv->https ? "; Secure" : "");
    log_info("web: %s signed in from %s", name, addr);
    buf_reset(&req->out);
    if (put_session(&req->out, &s, role))
        web_reply_error(req, 500, "internal", NULL, "response too large");
    else
        web_reply_json(req, 200);
out:
    web_api_body_free(&b);
    memset(password, 0, sizeof(password));
}

static void api_logout(web_req_t *req)
{
    web_session_end(&req->srv->sessions, web_req_cookie(req, WEB_COOKIE_NAME));
    snprintf(req->set_cookie, sizeof(req->set_cookie),
             WEB_COOKIE_NAME "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
             req->srv->https ? "; Secure" : "");
    buf_reset(&req->out);
    json_put_raw(&req->out, "{\"signed_out\":true}");
    web_reply_json(req, 200);
}

/* ---- partners ---- */

static int list_partner_cb(const partner_t *p, void *arg)
{
    return web_api_list_item(arg, p);
}

static void partners_list(web_req_t *req)
{
    const char *filter = web_req_query(req, "filter");
    web_api_list_t la;
    int ret = web_api_list_begin(req, &la, "{\"partners\":[", &schema_partner);
    if (!ret)
        ret = store_partner_list(req->srv->store, filter && *filter ? filter : NULL,
                                 list_partner_cb, &la);
    if (!ret)
        ret = json_put_raw(&req->out, "]}");
    if (ret == FG_ELIMIT)
        web_reply_error(req, 507, "too_large", NULL, "the list is too large; use ?filter=");
    else if (ret)
        web_api_fail(req, ret, NULL);
    else
        web_reply_json(req, 200);
}

static void partners_get(web_req_t *req, const char *domain)
{
    partner_t p;
    int ret = store_partner_get(req->srv->store, domain, &p);
    if (ret) {
        web_api_fail(req, ret, NULL);
        return;
    }
    web_api_reply_object(req, 200, "partner", &schema_partner, &p, NULL);
}

static void partners_create(web_req_t *req)
{
    web_api_body_t b;
    partner_t p;
    report_t rep;
    char actor[STORE_ACTOR_MAX];
    store_ctx_t ctx = {.actor = actor};
    int ret;

    if (web_api_body(req, &b))
        return;
    report_init(&rep, 0);
    web_api_actor(req, actor, sizeof(actor));
    partner_defaults(&p);
    if (json_decode_object(&schema_partner, &b.doc, 0, &p, &rep) > 0)
        ret = FG_EREFUSED;
    else
        ret = store_partner_create(req->srv->store, &ctx, &p, &rep);
    free(ctx.change);
    if (ret)
        web_api_fail(req, ret, &rep);
    else
        web_api_reply_object(req, 201, "partner", &schema_partner, &p, &rep);
    report_free(&rep);
    web_api_body_free(&b);
}

typedef struct {
    const json_doc_t *doc;
    report_t *rep;
    uint64_t expected;
} partner_edit_t;

/* Runs inside the store's write transaction on the stored record, so the revision compared here
   is the one being replaced: nothing can slip in between the check and the write. */
static int partner_edit(partner_t *p, void *arg)
{
    partner_edit_t *e = arg;
    uint64_t stored = p->revision;
    char key[DOMAIN_BUF], given[DOMAIN_BUF];

    if (e->expected != STORE_ANY_REV && e->expected != stored)
        return FG_ESTALE;
    snprintf(key, sizeof(key), "%s", p->domain);
    if (json_decode_object(&schema_partner, e->doc, 0, p, e->rep) > 0)
        return FG_EREFUSED;
    p->revision = stored;
    if (domain_normalize(p->domain, given, sizeof(given)) == 0 && strcmp(given, key) != 0) {
        report_add(e->rep, REPORT_ERROR, "domain",
                   "the primary domain of a partner cannot be changed: remove the partner and "
                   "create a new one");
        return FG_EREFUSED;
    }
    return 0;
}

static void partners_update(web_req_t *req, const char *domain)
{
    web_api_body_t b;
    partner_t p;
    report_t rep;
    char actor[STORE_ACTOR_MAX];
    store_ctx_t ctx = {.actor = actor};
    partner_edit_t e = {.rep = &rep};
    int ret;

    if (web_api_body(req, &b))
        return;
    report_init(&rep, 0);
    web_api_actor(req, actor, sizeof(actor));
    e.doc = &b.doc;
    ret = web_api_revision(req, &b, &e.expected, &rep);
    if (!ret)
        ret = store_partner_modify(req->srv->store, &ctx, domain, partner_edit, &e, &p, &rep);
    free(ctx.change);
    if (ret)
        web_api_fail(req, ret, &rep);
    else
        web_api_reply_object(req, 200, "partner", &schema_partner, &p, &rep);
    report_free(&rep);
    web_api_body_free(&b);
}

static void partners_remove(web_req_t *req, const char *domain)
{
    report_t rep;
    char actor[STORE_ACTOR_MAX];
    store_ctx_t ctx = {.actor = actor};
    uint64_t rev;
    int ret;

    report_init(&rep, 0);
    web_api_actor(req, actor, sizeof(actor));
    ret = web_api_revision(req, NULL, &rev, &rep);
    if (!ret)
        ret = store_partner_remove(req->srv->store, &ctx, domain, rev, &rep);
    free(ctx.change);
    if (ret)
        web_api_fail(req, ret, &rep);
    else
        web_api_reply_removed(req, domain, &rep);
    report_free(&rep);
}

static void api_partners(web_req_t *req, const char *rest)
{
    if (!*rest || strcmp(rest, "/") == 0) {
        if (req->method == WEB_GET || req->method == WEB_HEAD)
            partners_list(req);
        else if (req->method == WEB_POST)
            partners_create(req);
        else {
            req->allow = "GET, HEAD, POST";
            web_reply_error(req, 405, "method_not_allowed", NULL, "use GET or POST");
        }
        return;
    }
    const char *domain = rest + 1;
    if (strchr(domain, '/') || !*domain) {
        web_reply_error(req, 404, "not_found", NULL, "no such resource");
        return;
    }
    switch (req->method) {
    case WEB_GET:
    case WEB_HEAD:
        partners_get(req, domain);
        break;
    case WEB_PUT:
    case WEB_PATCH:
        partners_update(req, domain);
        break;
    case WEB_DELETE:
        partners_remove(req, domain);
        break;
    default:
        req->allow = "GET, HEAD, PUT, PATCH, DELETE";
        web_reply_error(req, 405, "method_not_allowed", NULL, "use GET, PUT, PATCH or DELETE");
        break;
    }
}

/* ---- dispatch ---- */

static bool is_change(web_method_t m)
{
    return m == WEB_POST || m == WEB_PUT || m == WEB_PATCH || m == WEB_DELETE;
}

/* A change must come from the page itself: a browser names the requesting site in Origin and
   Sec-Fetch-Site, and another site's page is refused even before the CSRF token is looked at. */
static bool same_origin(web_req_t *req)
{
    const char *site = web_req_header(req, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return false;
    const char *origin = web_req_header(req, "Origin");
    const char *host = web_req_header(req, "Host");
    if (!origin || strcmp(origin, "null") == 0)
        return origin == NULL;
    if (!host)
        return false;
    const char *p = strstr(origin, "://");
    return p && strcmp(p + 3, host) == 0;
}

static const struct {
    const char *name;
    void (*fn)(web_req_t *req, const char *rest);
} resources[] = {
    {"partners", api_partners}, {"gateway", web_api_gateway}, {"hosted", web_api_hosted},
    {"access", web_api_access}, {"audit", web_api_audit},
};

void web_api_dispatch(web_req_t *req)
{
    const char *path = req->path + 4; /* after "/api" */
    users_role_t role;

    if (*path == '/')
        path++;
    if (is_change(req->method) && !same_origin(req)) {
        web_reply_error(req, 403, "cross_origin", NULL, "changes are accepted from this site only");
        return;
    }
    if (strcmp(path, "login") == 0) {
        if (req->method != WEB_POST) {
            req->allow = "POST";
            web_reply_error(req, 405, "method_not_allowed", NULL, "sign in with POST");
            return;
        }
        api_login(req);
        return;
    }
    if (!req->signed_in) {
        web_reply_error(req, 401, "unauthenticated", NULL, "sign in first");
        return;
    }
    /* The account is read from the store on every request, so `user role`, `user passwd` or
       `user remove` on the command line takes effect at once for open sessions. */
    unsigned char stamp[USERS_STAMP_LEN];
    if (users_get(req->srv->store, req->session.user, &role, stamp)) {
        web_session_end(&req->srv->sessions, web_req_cookie(req, WEB_COOKIE_NAME));
        web_reply_error(req, 401, "unauthenticated", NULL, "the account no longer exists");
        return;
    }
    if (sodium_memcmp(stamp, req->session.stamp, USERS_STAMP_LEN) != 0) {
        web_session_end(&req->srv->sessions, web_req_cookie(req, WEB_COOKIE_NAME));
        web_reply_error(req, 401, "unauthenticated", NULL,
                        "the password changed since sign-in; sign in again");
        return;
    }
    if (is_change(req->method) &&
        !web_session_csrf_ok(&req->session, web_req_header(req, "X-CSRF-Token"))) {
        web_reply_error(req, 403, "csrf", NULL,
                        "missing or wrong X-CSRF-Token header; reload the page");
        return;
    }
    if (strcmp(path, "session") == 0) {
        if (req->method == WEB_GET || req->method == WEB_HEAD) {
            buf_reset(&req->out);
            put_session(&req->out, &req->session, role);
            web_reply_json(req, 200);
        } else {
            req->allow = "GET, HEAD";
            web_reply_error(req, 405, "method_not_allowed", NULL, "use GET");
        }
        return;
    }
    if (strcmp(path, "logout") == 0) {
        if (req->method != WEB_POST) {
            req->allow = "POST";
            web_reply_error(req, 405, "method_not_allowed", NULL, "sign out with POST");
            return;
        }
        api_logout(req);
        return;
    }
    for (size_t i = 0; i < sizeof(resources) / sizeof(resources[0]); i++) {
        size_t n = strlen(resources[i].name);
        if (strncmp(path, resources[i].name, n) != 0 || (path[n] != '\0' && path[n] != '/'))
            continue;
        if (is_change(req->method) && role != USERS_ROLE_ADMIN) {
            web_reply_error(req, 403, "forbidden", NULL,
                            "the viewer role may look but not change anything");
            return;
        }
        resources[i].fn(req, path + n);
        return;
    }
    web_reply_error(req, 404, "not_found", NULL, "no such API resource");
}
