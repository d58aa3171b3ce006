/*
 * HTTP plumbing of the control panel: the libmicrohttpd daemon, one web_req_t per request (the
 * bounded request body, the signed-in session, the response being built), the security headers
 * every response carries, the page and static-file routes, and the hand-off of /api/ requests to
 * web_api.
 *
 * Threading: the daemon runs one internal polling thread; every handler runs on it, one request at
 * a time, so the server state (store handle, sessions, rate limiter) needs no lock.
 *
 * Ownership: web_http_start() borrows the server until web_http_stop(). A web_req_t is created
 * when a request arrives and freed when libmicrohttpd reports it completed; handlers borrow it and
 * every string it points to for the length of their call.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "admin/web_session.h"

#define WEB_BODY_MAX     (64 * 1024) /* request bodies above this get 413 */
#define WEB_RESPONSE_MAX (8u << 20)  /* a response body never grows past this */
#define WEB_DEFAULT_PORT 8443
#define WEB_CONN_LIMIT   64 /* simultaneous HTTP connections */
#define WEB_CONN_TIMEOUT 30 /* seconds of silence before a connection is dropped */

struct MHD_Daemon;
struct MHD_Connection;
struct store;

typedef struct {
    struct store *store;       /* borrowed from web_main */
    struct MHD_Daemon *daemon; /* owned between start and stop */
    struct sockaddr_storage listen_addr;
    socklen_t listen_len;
    char *cert_pem; /* owned; NULL for plain HTTP */
    char *key_pem;  /* owned */
    bool https;
    uint16_t port; /* the bound port (useful with port 0) */
    web_sessions_t sessions;
} web_server_t;

typedef enum {
    WEB_GET = 0,
    WEB_HEAD,
    WEB_POST,
    WEB_PUT,
    WEB_PATCH,
    WEB_DELETE,
    WEB_OTHER,
} web_method_t;

typedef struct {
    web_server_t *srv;
    struct MHD_Connection *conn;
    web_method_t method;
    const char *path; /* borrowed from libmicrohttpd, no query string */
    buf_t body;       /* bounded by WEB_BODY_MAX */
    bool body_too_large;
    bool responded;        /* a response was queued early (413 on Content-Length) */
    web_session_t session; /* valid when signed_in */
    bool signed_in;

    /* The response */
    unsigned status;
    buf_t out;
    const char *content_type;
    const unsigned char *static_body; /* an embedded asset instead of `out` */
    size_t static_len;
    char set_cookie[256];
    char location[128];
    const char *allow; /* for 405 */
    unsigned retry_after;
} web_req_t;

/* Starts the daemon on srv->listen_addr (HTTPS when cert_pem is set) and fills srv->port.
   0, -errno or FG_ESTORE-free codes: FG_ETLS when the certificate is refused. */
int web_http_start(web_server_t *srv);
void web_http_stop(web_server_t *srv);

/* Request header value, or NULL. Borrowed until the request completes. */
const char *web_req_header(web_req_t *req, const char *name);
const char *web_req_cookie(web_req_t *req, const char *name);
const char *web_req_query(web_req_t *req, const char *name);
/* The client's address as text ("127.0.0.1"), for the login rate limit and the audit log. */
void web_req_client(web_req_t *req, char *out, size_t outlen);

/* Response helpers: they set status and the JSON body. */
void web_reply_json(web_req_t *req, unsigned status); /* body already in req->out */
/* {"error": code, "reason": reason, "field": field?} */
void web_reply_error(web_req_t *req, unsigned status, const char *code, const char *field,
                     const char *reason);
