#include "admin/cli_streams.h"

#include "core/err.h"

#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STREAMS_PAGE_MAX (4u << 20)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "[::1]:9269" / "127.0.0.1:9269" / "0.0.0.0:9269" into host and port; a wildcard listener is
   reached on loopback. */
static int split_addr(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || !colon[1] || strlen(colon + 1) >= plen)
        return FG_EPARSE;
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= hlen)
        return FG_EPARSE;
    memcpy(host, h, n);
    host[n] = '\0';
    if (strcmp(host, "0.0.0.0") == 0)
        strcpy(host, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        strcpy(host, "::1");
    strcpy(port, colon + 1);
    return 0;
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return -ETIMEDOUT;
    struct pollfd p = {.fd = fd, .events = ev};
    int r = poll(&p, 1, (int)left);
    if (r < 0)
        return -errno;
    return r == 0 ? -ETIMEDOUT : 0;
}

int cli_streams_fetch(const char *addr, int timeout_ms, buf_t *out)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST}, *ai = NULL;
    int fd = -1, ret = split_addr(addr, host, sizeof(host), port, sizeof(port));
    int64_t deadline = now_ms() + timeout_ms;
    if (ret)
        goto out;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        ret = FG_EPARSE;
        goto out;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ret = -errno;
        goto out;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        ret = -errno;
        goto out;
    }
    if ((ret = wait_fd(fd, POLLOUT, deadline)) != 0)
        goto out;
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
        ret = -soerr;
        goto out;
    }
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1)) {
        ret = -EIO;
        goto out;
    }
    buf_init(out, STREAMS_PAGE_MAX);
    for (;;) {
        if ((ret = buf_reserve(out, 16384)) != 0 || (ret = wait_fd(fd, POLLIN, deadline)) != 0)
            goto out;
        ssize_t n = recv(fd, out->data + out->len, 16384, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            ret = -errno;
            goto out;
        }
        if (n == 0)
            break;
        out->len += (size_t)n;
    }
    /* "HTTP/1.x 200 ...\r\n...\r\n\r\nbody": keep only the body. */
    const char *sep = out->len ? memmem(out->data, out->len, "\r\n\r\n", 4) : NULL;
    if (out->len < 12 || memcmp(out->data, "HTTP/1.", 7) != 0 || memcmp(out->data + 8, " 200", 4) ||
        !sep) {
        ret = FG_EPARSE;
        goto out;
    }
    buf_consume(out, (size_t)(sep + 4 - (const char *)out->data));
    ret = 0;
out:
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    return ret;
}

/* Value of label `name` in a `{a="x",b="y"}` label set, unescaped in place inside `line`. */
static const char *label(char *labels, const char *name)
{
    size_t nl = strlen(name);
    for (char *p = labels; p && *p;) {
        if (strncmp(p, name, nl) == 0 && p[nl] == '=' && p[nl + 1] == '"') {
            char *v = p + nl + 2, *w = v;
            for (char *r = v; *r; r++) {
                if (*r == '\\' && r[1]) {
                    r++;
                    *w++ = *r == 'n' ? '\n' : *r;
                } else if (*r == '"') {
                    *w = '\0';
                    return v;
                } else {
                    *w++ = *r;
                }
            }
            return NULL;
        }
        /* skip to the next label: past the closing quote of this value and the comma */
        char *q = strchr(p, '"');
        for (q = q ? q + 1 : NULL; q && *q && *q != '"'; q++)
            if (*q == '\\' && q[1])
                q++;
        p = (q && *q) ? q + 1 : NULL;
        if (p && *p == ',')
            p++;
    }
    return NULL;
}

size_t cli_streams_parse(const char *page, size_t len, cli_stream_row_fn fn, void *ctx)
{
    static const char key[] = "fedgate_stream_info{";
    size_t rows = 0;
    const char *p = page, *end = page + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n > sizeof(key) - 1 && n < 4096 && memcmp(p, key, sizeof(key) - 1) == 0) {
            char line[4096];
            memcpy(line, p, n);
            line[n] = '\0';
            char *close = strrchr(line, '}');
            if (close) {
                *close = '\0';
                char *labels = line + sizeof(key) - 1;
                /* Each label is unescaped in place, so copy them out one at a time: the
                   unescaping of one shortens nothing the next lookup needs to find. */
                static const char *const names[] = {"id",     "dir",   "partner", "local",
                                                    "remote", "state", "auth",    "tls"};
                char vals[8][512];
                bool ok = true;
                for (int i = 0; i < 8 && ok; i++) {
                    char tmp[4096];
                    strcpy(tmp, labels);
                    const char *v = label(tmp, names[i]);
                    ok = v && strlen(v) < sizeof(vals[i]);
                    if (ok)
                        strcpy(vals[i], v);
                }
                if (ok) {
                    cli_stream_row_t r = {vals[0], vals[1], vals[2], vals[3], vals[4],
                                          vals[5], vals[6], vals[7], 0};
                    r.since = strtoull(close + 1, NULL, 10);
                    if (fn)
                        fn(&r, ctx);
                    rows++;
                }
            }
        }
        p = nl ? nl + 1 : end;
    }
    return rows;
}
