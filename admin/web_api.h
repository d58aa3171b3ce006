/*
 * The control panel's JSON API under /api/: session (sign-in, sign-out, who am I), partners,
 * gateway settings, hosted domains, access policy and the audit log. Scripts may use it as the
 * page does (docs/control-panel.md describes every route).
 *
 * Every request needs a session except POST /api/login. Every change (POST, PUT, PATCH, DELETE)
 * needs the session's CSRF token in X-CSRF-Token, the admin role, a same-origin request, and
 * goes through the store's validated operations, exactly as the CLI: a refused change is 422
 * with {"error":"refused","field":..,"reason":..,"messages":[..]} and nothing is saved; an object
 * changed since it was read is 409 {"error":"stale","reason":"changed by someone else"}.
 *
 * The helpers below are shared by the route handlers of web_api.c and web_api_config.c.
 * Ownership: handlers borrow the request; a parsed body (web_api_body_t) owns its token array
 * until web_api_body_free().
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "admin/web_http.h"
#include "policy/json.h"
#include "policy/report.h"
#include "policy/store.h"

#define WEB_API_MAX_TOKENS 8192

typedef struct {
    json_doc_t doc;
    json_tok_t *tok; /* owned */
} web_api_body_t;

/* Routes one /api/ request; always leaves a response in req. */
void web_api_dispatch(web_req_t *req);

/* Parses the request body as one JSON object. On failure answers the request (400 malformed,
   415 not JSON) and returns non-zero. */
int web_api_body(web_req_t *req, web_api_body_t *b);
void web_api_body_free(web_api_body_t *b);
/* Fails with 422 naming the first member of the body's object that is not in `allowed`
   (NULL-terminated); returns non-zero when it did. */
int web_api_only_members(web_req_t *req, const web_api_body_t *b, const char *const *allowed);

/* Answers a failed store operation: 422 refused (with the report's messages), 409 exists or
   stale, 404, 507 store full, 500 store error. */
void web_api_fail(web_req_t *req, int err, const report_t *rep);
/* Answers `status` with {"<name>": <obj encoded by s>, "messages": [..]}; 500 when too large. */
void web_api_reply_object(web_req_t *req, unsigned status, const char *name, const schema_t *s,
                          const void *obj, const report_t *rep);
/* Answers 200 {"removed": <name>}, with the report's messages when rep is not NULL. */
void web_api_reply_removed(web_req_t *req, const char *name, const report_t *rep);
/* A list answer being written to req->out: {"<name>":[item,item..]}. */
typedef struct {
    buf_t *b;
    size_t n;               /* items written so far */
    const schema_t *schema; /* encodes each item for web_api_list_item() */
} web_api_list_t;

/* Starts a list answer in req->out with `open`, e.g. "{\"hosted\":["; the caller closes it. */
int web_api_list_begin(web_req_t *req, web_api_list_t *l, const char *open, const schema_t *s);
/* Appends one record encoded by l->schema, comma-separated: the body of a store list callback. */
int web_api_list_item(web_api_list_t *l, const void *obj);
/* The expected revision of a change: the body's "revision" member, or ?revision=N when b is
   NULL; STORE_ANY_REV when absent. FG_EPARSE, with the reason added to rep, when it is not a
   positive integer. */
int web_api_revision(web_req_t *req, const web_api_body_t *b, uint64_t *rev, report_t *rep);
/* Appends `key` as raw JSON text (e.g. ",\"field\":") then value as a JSON string. */
int web_api_put_member(buf_t *b, const char *key, const char *value);
/* Appends ,"messages":[...] with every message of the report (warnings shown by the page). */
int web_api_put_messages(buf_t *b, const report_t *rep);
/* The audit actor for the signed-in user: "web:<name>". */
void web_api_actor(const web_req_t *req, char *out, size_t outlen);
