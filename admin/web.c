#include "admin/web.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/cli_common.h"
#include "admin/web_http.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/store.h"

#define PEM_MAX (1u << 20)

static const cli_opt_t serve_opts[] = {
    {"listen", CLI_OPT_VALUE, "ADDR:PORT",
     "address to listen on (default 127.0.0.1:8443; port 0 picks a free one)"},
    {"cert", CLI_OPT_VALUE, "FILE", "serve HTTPS with this PEM certificate chain"},
    {"key", CLI_OPT_VALUE, "FILE", "the PEM private key of --cert"},
    {"session-ttl", CLI_OPT_VALUE, "SECONDS",
     "end a session after this long without a request (default 1800)"},
    {"session-max", CLI_OPT_VALUE, "SECONDS",
     "end a session this long after sign-in in any case (default 43200)"},
    {"pid-file", CLI_OPT_VALUE, "FILE", "write the process id here once listening"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

/* "127.0.0.1:8443", "[::1]:8443", "localhost:8443" (loopback). 0 or FG_EPARSE. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[64];
    const char *colon;
    const char *port_s;
    memset(ss, 0, sizeof(*ss));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
            return FG_EPARSE;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port_s = end + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host))
            return FG_EPARSE;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port_s = colon + 1;
    }
    uint32_t port;
    if (cli_parse_u32(port_s, &port) || port > 65535)
        return FG_EPARSE;
    if (strcmp(host, "localhost") == 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof(*v4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof(*v6);
        return 0;
    }
    return FG_EPARSE;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    size_t n;
    int ret = 0;
    if (!f)
        return -errno;
    data = malloc(PEM_MAX + 1);
    if (!data) {
        ret = -ENOMEM;
        goto out;
    }
    n = fread(data, 1, PEM_MAX + 1, f);
    if (ferror(f) || n == 0 || n > PEM_MAX) {
        ret = n > PEM_MAX ? FG_ELIMIT : -EIO;
        goto out;
    }
    data[n] = '\0';
    *out = data;
    data = NULL;
out:
    free(data);
    fclose(f);
    return ret;
}

static int write_pid_file(const char *path)
{
    char tmp[4096];
    char line[32];
    int fd, n;
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    if (write(fd, line, (size_t)n) != n) {
        close(fd);
        return -EIO;
    }
    close(fd);
    return rename(tmp, path) == 0 ? 0 : -errno;
}

int web_main(int argc, char **argv, const char *store_path)
{
    static web_server_t srv; /* large (sessions table); one per process */
    cli_args_t a;
    char err[512] = "";
    const char *v;
    uint32_t idle = 0, max = 0;
    sigset_t sigs;
    int sig, ret;

    if ((ret = cli_args_parse(&a, serve_opts, argc - 1, argv + 1)))
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "serve [--listen ADDR:PORT] [--cert FILE --key FILE]",
                       "Serves the control panel and its JSON API until SIGINT or SIGTERM.",
                       serve_opts);
        return CLI_EXIT_OK;
    }
    if (a.n_pos)
        return cli_fail(CLI_EXIT_USAGE, "serve: unexpected argument '%s'", a.pos[0]);
    memset(&srv, 0, sizeof(srv));
    v = cli_args_value(&a, "listen");
    if (parse_listen(v ? v : "127.0.0.1:8443", &srv.listen_addr, &srv.listen_len))
        return cli_fail(CLI_EXIT_USAGE, "--listen: \"%s\" is not ADDR:PORT with an IP address", v);
    if ((v = cli_args_value(&a, "session-ttl")) && (cli_parse_u32(v, &idle) || idle == 0))
        return cli_fail(CLI_EXIT_USAGE, "--session-ttl: \"%s\" is not a number of seconds", v);
    if ((v = cli_args_value(&a, "session-max")) && (cli_parse_u32(v, &max) || max == 0))
        return cli_fail(CLI_EXIT_USAGE, "--session-max: \"%s\" is not a number of seconds", v);
    const char *cert = cli_args_value(&a, "cert"), *key = cli_args_value(&a, "key");
    if (!cert != !key)
        return cli_fail(CLI_EXIT_USAGE, "--cert and --key go together");
    if (cert) {
        if ((ret = read_pem(cert, &srv.cert_pem))) {
            ret = cli_fail(CLI_EXIT_USAGE, "--cert %s: %s", cert, fg_strerror(ret));
            goto out;
        }
        if ((ret = read_pem(key, &srv.key_pem))) {
            ret = cli_fail(CLI_EXIT_USAGE, "--key %s: %s", key, fg_strerror(ret));
            goto out;
        }
        srv.https = true;
    }
    web_sessions_init(&srv.sessions, idle, max);

    if ((ret = store_open(store_path, 0, &srv.store, err, sizeof(err)))) {
        ret = cli_fail(CLI_EXIT_STORE, "%s", err[0] ? err : fg_strerror(ret));
        goto out;
    }
    /* Block the stop signals before the daemon's thread starts so only sigwait() sees them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((ret = web_http_start(&srv))) {
        ret =
            cli_fail(CLI_EXIT_STORE, "serve: cannot listen on %s%s",
                     cli_args_value(&a, "listen") ? cli_args_value(&a, "listen") : "127.0.0.1:8443",
                     srv.https ? " (or the certificate and key were refused)" : "");
        goto out;
    }
    char host[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (srv.listen_addr.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&srv.listen_addr)->sin6_addr, host,
                  sizeof(host));
        printf("listening on %s://[%s]:%u/\n", srv.https ? "https" : "http", host, srv.port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&srv.listen_addr)->sin_addr, host, sizeof(host));
        printf("listening on %s://%s:%u/\n", srv.https ? "https" : "http", host, srv.port);
    }
    fflush(stdout);
    if (!srv.https && !is_loopback(&srv.listen_addr))
        log_warn("serve: listening beyond loopback without --cert/--key: passwords and session "
                 "cookies cross the network in clear text");
    if ((v = cli_args_value(&a, "pid-file")) && (ret = write_pid_file(v)))
        log_warn("serve: --pid-file %s: %s", v, fg_strerror(ret));
    log_info("serve: control panel for store %s on port %u", store_path, srv.port);

    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("serve: stopping on signal %d", sig);
    web_http_stop(&srv);
    ret = CLI_EXIT_OK;
out:
    if (srv.store)
        store_close(srv.store);
    free(srv.cert_pem);
    if (srv.key_pem) {
        memset(srv.key_pem, 0, strlen(srv.key_pem));
        free(srv.key_pem);
    }
    return ret;
}
