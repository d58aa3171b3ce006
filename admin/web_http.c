#include "admin/web_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/web_api.h"
#include "admin/web_assets.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/json.h"

/* The page is served for every one of these paths (the script shows the matching view); any
   other path that is not an embedded file is 404. */
static const char *const page_paths[] = {
    "/",      "/partners", "/partners/new", "/partners/edit", "/gateway", "/hosted", "/access",
    "/audit", NULL,
};

static web_method_t method_of(const char *m)
{
    static const struct {
        const char *name;
        web_method_t m;
    } map[] = {{"GET", WEB_GET}, {"HEAD", WEB_HEAD},   {"POST", WEB_POST},
               {"PUT", WEB_PUT}, {"PATCH", WEB_PATCH}, {"DELETE", WEB_DELETE}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(map[i].name, m) == 0)
            return map[i].m;
    return WEB_OTHER;
}

const char *web_req_header(web_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *web_req_cookie(web_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, name);
}

const char *web_req_query(web_req_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void web_req_client(web_req_t *req, char *out, size_t outlen)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, outlen, "unknown");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)outlen);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)outlen);
}

void web_reply_json(web_req_t *req, unsigned status)
{
    req->status = status;
    req->content_type = "application/json";
}

void web_reply_error(web_req_t *req, unsigned status, const char *code, const char *field,
                     const char *reason)
{
    buf_reset(&req->out);
    int ret = json_put_raw(&req->out, "{\"error\":");
    if (!ret)
        ret = json_put_string(&req->out, code);
    if (!ret && field && *field) {
        ret = json_put_raw(&req->out, ",\"field\":");
        if (!ret)
            ret = json_put_string(&req->out, field);
    }
    if (!ret) {
        ret = json_put_raw(&req->out, ",\"reason\":");
        if (!ret)
            ret = json_put_string(&req->out, reason);
    }
    if (!ret)
        ret = json_put_raw(&req->out, "}");
    if (ret) {
        buf_reset(&req->out);
        buf_append_str(&req->out, "{\"error\":\"internal\"}");
    }
    web_reply_json(req, status);
}

static bool is_page_path(const char *path)
{
    for (size_t i = 0; page_paths[i]; i++)
        if (strcmp(path, page_paths[i]) == 0)
            return true;
    return false;
}

/* Pages and embedded files. The sign-in page and the style sheet are public; everything else
   needs a session and sends the browser to the sign-in page without one. */
static void handle_static(web_req_t *req)
{
    const web_asset_t *a = NULL;
    bool page = is_page_path(req->path);
    bool public_file = strcmp(req->path, "/login") == 0 || strcmp(req->path, "/style.css") == 0 ||
                       strcmp(req->path, "/login.js") == 0;

    if (strcmp(req->path, "/login") == 0)
        a = web_assets_find("/login.html");
    else if (page)
        a = web_assets_find("/index.html");
    else if (strcmp(req->path, "/index.html") && strcmp(req->path, "/login.html"))
        a = web_assets_find(req->path);
    if (!a) {
        web_reply_error(req, 404, "not_found", NULL, "no such page");
        return;
    }
    if (req->method != WEB_GET && req->method != WEB_HEAD) {
        req->allow = "GET, HEAD";
        web_reply_error(req, 405, "method_not_allowed", NULL, "pages are read with GET");
        return;
    }
    if (!public_file && !req->signed_in) {
        if (page) {
            req->status = 303;
            snprintf(req->location, sizeof(req->location), "/login");
            req->content_type = "text/plain; charset=utf-8";
            buf_append_str(&req->out, "sign in first\n");
        } else {
            web_reply_error(req, 401, "unauthenticated", NULL, "sign in first");
        }
        return;
    }
    req->status = 200;
    req->content_type = a->content_type;
    req->static_body = a->data;
    req->static_len = a->len;
}

static void add_security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; "
                            "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                            "frame-ancestors 'none'; base-uri 'none'");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
}

static enum MHD_Result send_response(web_req_t *req)
{
    struct MHD_Response *r;
    enum MHD_Result ok;

    if (req->static_body)
        r = MHD_create_response_from_buffer(req->static_len, (void *)req->static_body,
                                            MHD_RESPMEM_PERSISTENT);
    else
        r = MHD_create_response_from_buffer(req->out.len, req->out.data, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    add_security_headers(r);
    if (req->content_type)
        MHD_add_response_header(r, "Content-Type", req->content_type);
    if (req->set_cookie[0])
        MHD_add_response_header(r, "Set-Cookie", req->set_cookie);
    if (req->location[0])
        MHD_add_response_header(r, "Location", req->location);
    if (req->allow)
        MHD_add_response_header(r, "Allow", req->allow);
    if (req->retry_after) {
        char v[16];
        snprintf(v, sizeof(v), "%u", req->retry_after);
        MHD_add_response_header(r, "Retry-After", v);
    }
    ok = MHD_queue_response(req->conn, req->status ? req->status : 500, r);
    MHD_destroy_response(r);
    req->responded = true;
    return ok;
}

static void dispatch(web_req_t *req)
{
    if (req->body_too_large) {
        web_reply_error(req, 413, "too_large", NULL, "request body larger than 65536 bytes");
        return;
    }
    /* The session cookie names who is asking; the API checks the role and the CSRF token. */
    const char *cookie = web_req_cookie(req, WEB_COOKIE_NAME);
    if (cookie && web_session_find(&req->srv->sessions, cookie, web_now_ms(), &req->session) == 0)
        req->signed_in = true;
    if (strncmp(req->path, "/api/", 5) == 0 || strcmp(req->path, "/api") == 0)
        web_api_dispatch(req);
    else
        handle_static(req);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    web_req_t *req = *con_cls;

    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->srv = cls;
        req->conn = conn;
        req->method = method_of(method);
        req->path = url;
        buf_init(&req->body, WEB_BODY_MAX);
        buf_init(&req->out, WEB_RESPONSE_MAX);
        *con_cls = req;
        /* A declared body above the bound is refused before any of it is read. */
        const char *cl = web_req_header(req, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > WEB_BODY_MAX) {
            req->body_too_large = true;
            web_reply_error(req, 413, "too_large", NULL, "request body larger than 65536 bytes");
            return send_response(req);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!req->body_too_large &&
            buf_append(&req->body, upload_data, *upload_data_size) == FG_ELIMIT)
            req->body_too_large = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->responded)
        return MHD_YES;
    dispatch(req);
    return send_response(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    web_req_t *req = *con_cls;
    if (!req)
        return;
    buf_free(&req->body);
    buf_free(&req->out);
    free(req);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    log_warn("http: %s", line);
}

int web_http_start(web_server_t *srv)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    struct MHD_OptionItem opts[16];
    size_t n = 0;

    if (srv->listen_addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (srv->https)
        flags |= MHD_USE_TLS;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)on_mhd_log, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &srv->listen_addr};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, WEB_CONN_LIMIT, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, WEB_CONN_LIMIT / 2, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, WEB_CONN_TIMEOUT, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, 64 * 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
    if (srv->https) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->cert_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->key_pem};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    srv->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, opts,
                                   MHD_OPTION_END);
    if (!srv->daemon)
        return srv->https ? FG_ETLS : -EADDRNOTAVAIL;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    srv->port = 0;
    if (di && getsockname(di->listen_fd, (struct sockaddr *)&ss, &sl) == 0)
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

void web_http_stop(web_server_t *srv)
{
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
}
