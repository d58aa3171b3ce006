#include "admin/cli_store.h"

#include "admin/cli_streams.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "admin/cli.h"
#include "admin/cli_common.h"
#include "core/err.h"
#include "policy/domain.h"
#include "policy/json.h"
#include "policy/schema.h"

int cli_store_open(const char *path, cli_store_mode_t mode, store_t **out)
{
    char err[512] = "";
    struct stat st;
    if (mode != CLI_STORE_CREATE) {
        char data[4096];
        snprintf(data, sizeof(data), "%s/data.mdb", path);
        if (stat(path, &st) != 0 || stat(data, &st) != 0)
            return cli_fail(
                CLI_EXIT_STORE,
                "store %s does not exist; create it with: fedgate-admin --store %s init", path,
                path);
    }
    unsigned flags = mode == CLI_STORE_CREATE ? STORE_CREATE
                     : mode == CLI_STORE_READ ? STORE_READONLY
                                              : 0;
    int rc = store_open(path, flags, out, err, sizeof(err));
    if (rc == 0)
        return 0;
    *out = NULL;
    if (rc == -EACCES || rc == -EPERM || rc == -EROFS)
        return cli_fail(CLI_EXIT_STORE,
                        "store %s: %s; choose a writable directory with --store DIR or "
                        "$FEDGATE_STORE",
                        path, fg_strerror(rc));
    if (err[0])
        return cli_fail(CLI_EXIT_STORE, "%s", err);
    return cli_fail(CLI_EXIT_STORE, "store %s: %s", path, fg_strerror(rc));
}

void cli_report_print(const report_t *rep)
{
    if (!rep)
        return;
    char line[REPORT_FIELD_MAX + REPORT_SUBJECT_MAX + REPORT_TEXT_MAX + 32];
    for (size_t i = 0; i < rep->n; i++) {
        report_format(&rep->msg[i], line, sizeof(line));
        FILE *f = rep->msg[i].severity == REPORT_INFO ? stdout : stderr;
        fprintf(f, "%s\n", line);
    }
    if (rep->dropped)
        fprintf(stderr, "error: %zu more messages not shown\n", rep->dropped);
}

int cli_finish(int rc, const report_t *rep, const char *subject)
{
    if (rc == 0 || rc == FG_EREFUSED || !report_has_errors(rep)) {
        cli_report_print(rep);
    } else {
        /* "already exists", "not found", a store failure: the warnings about the values given
           are noise next to that, so only the error lines are shown. */
        char line[REPORT_FIELD_MAX + REPORT_SUBJECT_MAX + REPORT_TEXT_MAX + 32];
        for (size_t i = 0; i < rep->n; i++) {
            if (rep->msg[i].severity != REPORT_ERROR)
                continue;
            report_format(&rep->msg[i], line, sizeof(line));
            fprintf(stderr, "%s\n", line);
        }
    }
    if (rc == 0)
        return CLI_EXIT_OK;
    if (!report_has_errors(rep)) {
        if (subject && *subject)
            cli_fail(0, "%s: %s", subject, fg_strerror(rc));
        else
            cli_fail(0, "%s", fg_strerror(rc));
    }
    return cli_exit_from_err(rc);
}

int cli_finish_found(int rc, const report_t *rep, const char *what, const char *subject,
                     const char *missing)
{
    if (rc == FG_ENOTFOUND && !report_has_errors(rep))
        return cli_fail(CLI_EXIT_NOTFOUND, "%s %s: %s", what, subject, missing);
    return cli_finish(rc, rep, subject);
}

void cli_print_what_if(const store_ctx_t *ctx, const char *verb, const char *subject)
{
    if (!ctx->change)
        printf("what if: %s %s: no change\n", verb, subject);
    else
        printf("%s\n", ctx->change);
}

int cli_domain_arg(const char *what, const char *in, char *out)
{
    const char *why = NULL;
    /* A name to look up: the key form, so a record stored under an address before addresses
       were refused can still be shown and removed. New and changed records are validated by
       the store with the full rule. */
    if (domain_normalize_key(in, out, DOMAIN_BUF, &why) == 0)
        return 0;
    char line[512];
    domain_error_line(in, why, line, sizeof(line));
    return cli_fail(CLI_EXIT_REFUSED, "%s: %s", what, line);
}

int cli_write_stdout(const buf_t *b)
{
    if (b->len && fwrite(b->data, 1, b->len, stdout) != b->len)
        return cli_fail(CLI_EXIT_STORE, "writing the output failed");
    if (fflush(stdout) != 0)
        return cli_fail(CLI_EXIT_STORE, "writing the output failed");
    return 0;
}

int cli_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int ret = 0;
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    char *b = NULL;
    size_t n = 0, cap = 0;
    if (fd < 0)
        return -errno;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            if (cap > max) {
                ret = FG_ELIMIT;
                goto out;
            }
            size_t ncap = cap ? cap * 2 : 131072;
            char *nb = realloc(b, ncap);
            if (!nb) {
                ret = -ENOMEM;
                goto out;
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ret = -errno;
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max) {
            ret = FG_ELIMIT;
            goto out;
        }
    }
    if (!b && !(b = malloc(1))) {
        ret = -ENOMEM;
        goto out;
    }
    b[n] = '\0';
    *out = b;
    *len = n;
    b = NULL;
out:
    free(b);
    if (fd > 0)
        close(fd);
    return ret;
}

int cli_read_secret_file(const char *option, const char *path, char *out, size_t outlen)
{
    char *data = NULL;
    size_t len = 0;
    int rc = cli_read_file(path, 65536, &data, &len);
    if (rc)
        return cli_fail(CLI_EXIT_USAGE, "--%s: cannot read %s: %s", option, path, fg_strerror(rc));
    size_t n = strcspn(data, "\r\n");
    if (n == 0) {
        free(data);
        return cli_fail(CLI_EXIT_REFUSED, "--%s: %s: the first line is empty", option, path);
    }
    if (n >= outlen) {
        free(data);
        return cli_fail(CLI_EXIT_REFUSED, "--%s: %s: longer than %zu characters", option, path,
                        outlen - 1);
    }
    memcpy(out, data, n);
    out[n] = '\0';
    explicit_bzero(data, len);
    free(data);
    return 0;
}

int cli_parse_time(const char *s, int64_t now_ms, int64_t *out_ms)
{
    if (!s || !*s)
        return FG_EPARSE;
    char *end = NULL;
    if (s[0] == '@') {
        errno = 0;
        long long v = strtoll(s + 1, &end, 10);
        if (errno || end == s + 1 || *end || v < 0)
            return FG_EPARSE;
        *out_ms = (int64_t)v * 1000;
        return 0;
    }
    size_t l = strlen(s);
    if (isdigit((unsigned char)s[0]) && strchr("smhd", s[l - 1]) && !strchr(s, '-')) {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || end != s + l - 1 || v < 0 || v > 100LL * 365 * 86400)
            return FG_EPARSE;
        int64_t unit = s[l - 1] == 's' ? 1 : s[l - 1] == 'm' ? 60 : s[l - 1] == 'h' ? 3600 : 86400;
        *out_ms = now_ms - (int64_t)v * unit * 1000;
        return 0;
    }
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%d", &tm);
    if (!p)
        return FG_EPARSE;
    if (*p == 'T' || *p == ' ') {
        const char *q = strptime(p + 1, "%H:%M:%S", &tm);
        if (!q)
            q = strptime(p + 1, "%H:%M", &tm);
        if (!q)
            return FG_EPARSE;
        p = q;
    }
    if (*p == 'Z')
        p++;
    if (*p)
        return FG_EPARSE;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return FG_EPARSE;
    *out_ms = (int64_t)t * 1000;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void format_time(int64_t ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char buf[40];
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", buf, (int)(ms % 1000));
}

/* ---- init ---- */

/*
 * What `init --demo` adds on top of the defaults, so that scripts/run.sh gives a gateway that
 * works out of the box. Kept as its own function: later demo content (a hosted domain, listeners)
 * goes here, each through the same validated store operation as the CLI verbs.
 */
static int demo_apply(store_t *s, store_ctx_t *ctx, report_t *rep)
{
    (void)s;
    (void)ctx;
    (void)rep;
    return 0; /* EnableXmppAccess=true globally is applied by store_init itself */
}

static const cli_opt_t init_opts[] = {
    {"demo", CLI_OPT_FLAG, NULL, "also turn EnableXmppAccess on globally (the demo store)"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

int cli_init_main(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    int ret = cli_args_parse(&a, init_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "init [--demo]",
                       "Creates the store with Lync's defaults (idempotent: existing values are "
                       "kept).",
                       init_opts);
        return 0;
    }
    if (a.n_pos)
        return cli_fail(CLI_EXIT_USAGE, "init takes no arguments (the store is --store DIR)");
    bool demo = cli_args_flag(&a, "demo");
    report_init(&rep, 0);
    ret = cli_store_open(store_path, CLI_STORE_CREATE, &s);
    if (ret)
        goto out;
    ctx.verb = demo ? "init --demo" : "init";
    int rc = store_init(s, &ctx, demo, &rep);
    if (rc == 0 && demo)
        rc = demo_apply(s, &ctx, &rep);
    ret = cli_finish(rc, &rep, store_path);
    if (ret == 0)
        printf("store %s ready%s\n", store_path,
               demo ? " (demo: EnableXmppAccess on globally)" : "");
out:
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

/* ---- status ---- */

typedef struct {
    size_t n;
} count_t;

static int count_partner(const partner_t *p, void *arg)
{
    (void)p;
    ((count_t *)arg)->n++;
    return 0;
}

static int count_hosted(const hosted_t *h, void *arg)
{
    (void)h;
    ((count_t *)arg)->n++;
    return 0;
}

typedef struct {
    uint64_t seq;
    int64_t time_ms;
    char actor[STORE_ACTOR_MAX];
    char verb[64];
    char subject[REPORT_SUBJECT_MAX];
} last_change_t;

static int keep_last(const store_audit_t *e, void *arg)
{
    last_change_t *l = arg;
    l->seq = e->seq;
    l->time_ms = e->time_ms;
    snprintf(l->actor, sizeof(l->actor), "%s", e->actor ? e->actor : "");
    snprintf(l->verb, sizeof(l->verb), "%s", e->verb ? e->verb : "");
    snprintf(l->subject, sizeof(l->subject), "%s", e->subject ? e->subject : "");
    return 0;
}

static const cli_opt_t status_opts[] = {
    {"json", CLI_OPT_FLAG, NULL, "print one JSON object"},
    {"no-streams", CLI_OPT_FLAG, NULL, "do not ask the running gateway for its stream table"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

/* ---- the running gateway's stream table (status) ---- */

typedef struct {
    bool json;
    size_t n;
} streams_out_t;

static void print_stream_row(const cli_stream_row_t *r, void *ctx)
{
    streams_out_t *o = ctx;
    char since[48] = "?";
    format_time((int64_t)r->since * 1000, since, sizeof(since));
    if (o->json) {
        const char *keys[] = {"id", "dir", "partner", "local", "remote", "state", "auth", "tls"};
        const char *vals[] = {r->id,     r->dir,   r->partner, r->local,
                              r->remote, r->state, r->auth,    r->tls};
        printf("%s{", o->n ? "," : "");
        for (int i = 0; i < 8; i++) {
            printf("%s\"%s\":", i ? "," : "", keys[i]);
            cli_json_string(stdout, vals[i]);
        }
        printf(",\"since\":\"%s\"}", since);
    } else {
        if (!o->n)
            printf("\n%-16s %-9s %-24s %-24s %-24s %-8s %-13s %-8s %s\n", "Id", "Direction",
                   "Partner", "Local", "Remote", "State", "Auth", "TLS", "Since");
        printf("%-16s %-9s %-24s %-24s %-24s %-8s %-13s %-8s %s\n", r->id, r->dir, r->partner,
               r->local, r->remote, r->state, r->auth, r->tls, since);
    }
    o->n++;
}

/* Asks the gateway serving this store (its metrics listener) for its metrics page. *addr is the
   listener ("" when off). A gateway that is not running is a state to report, not an error of
   the verb. */
static int fetch_gateway(store_t *s, settings_t *st, const char **addr, buf_t *page)
{
    buf_init(page, 0);
    *addr = store_settings_get(s, st) == 0 ? st->listen_metrics : "";
    return (*addr)[0] ? cli_streams_fetch(*addr, 1000, page) : FG_ENOTFOUND;
}

static void json_gateway(const char *addr, int rc, const buf_t *page)
{
    printf(",\"gateway\":{\"metrics\":");
    cli_json_string(stdout, addr);
    printf(",\"running\":%s", rc == 0 ? "true" : "false");
    if (rc == 0) {
        streams_out_t o = {true, 0};
        printf(",\"streams\":[");
        cli_streams_parse((const char *)page->data, page->len, print_stream_row, &o);
        printf("]");
    }
    printf("}");
}

static void list_gateway(cli_list_t *l, const char *addr, int rc, const buf_t *page)
{
    if (!addr[0]) {
        cli_list_add(l, "Gateway", "unknown (the metrics listener is off)");
    } else if (rc != 0) {
        cli_list_add(l, "Gateway", "not answering on %s (%s)", addr, fg_strerror(rc));
    } else {
        size_t n = cli_streams_parse((const char *)page->data, page->len, NULL, NULL);
        cli_list_add(l, "Gateway", "running, metrics on %s, %zu open stream%s", addr, n,
                     n == 1 ? "" : "s");
    }
}

int cli_status_main(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    settings_t st;
    buf_t page;
    const char *addr = "";
    int grc = FG_ENOTFOUND;
    buf_init(&page, 0);
    int ret = cli_args_parse(&a, status_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(
            stdout, "status [--json]",
            "Store path, schema version, change counter, last change, counts, and the running\n"
            "gateway's open streams (read from its metrics listener).",
            status_opts);
        return 0;
    }
    bool streams = !cli_args_flag(&a, "no-streams");
    if (a.n_pos)
        return cli_fail(CLI_EXIT_USAGE, "status takes no arguments");
    ret = cli_store_open(store_path, CLI_STORE_READ, &s);
    if (ret)
        return ret;
    uint64_t counter = 0, txn = 0;
    count_t partners = {0}, hosted = {0};
    last_change_t last = {0};
    bool global = false;
    uint32_t version = 0;
    int rc = store_meta(s, &counter, &txn);
    if (!rc) {
        /* the stored layout, which an older store keeps until it is rewritten */
        rc = store_schema_version(s, &version);
        if (rc == FG_ENOTFOUND)
            rc = 0;
    }
    if (!rc)
        rc = store_partner_list(s, NULL, count_partner, &partners);
    if (!rc)
        rc = store_hosted_list(s, count_hosted, &hosted);
    if (!rc)
        rc = store_audit_list(s, 0, keep_last, &last);
    if (!rc) {
        rc = store_access_get(s, "global", &global);
        if (rc == FG_ENOTFOUND)
            rc = 0;
    }
    if (rc) {
        ret = cli_finish(rc, NULL, store_path);
        goto out;
    }
    if (streams)
        grc = fetch_gateway(s, &st, &addr, &page);
    char when[48] = "never";
    if (last.seq)
        format_time(last.time_ms, when, sizeof(when));
    if (cli_args_flag(&a, "json")) {
        printf("{\"store\":");
        cli_json_string(stdout, store_path);
        printf(",\"schema_version\":%u,\"change_counter\":%llu,\"txn_id\":%llu,", version,
               (unsigned long long)counter, (unsigned long long)txn);
        printf("\"partners\":%zu,\"hosted\":%zu,\"global_access\":%s,\"last_change\":", partners.n,
               hosted.n, global ? "true" : "false");
        if (last.seq) {
            printf("{\"time\":\"%s\",\"actor\":", when);
            cli_json_string(stdout, last.actor);
            printf(",\"verb\":");
            cli_json_string(stdout, last.verb);
            printf(",\"subject\":");
            cli_json_string(stdout, last.subject);
            printf("}");
        } else {
            printf("null");
        }
        if (streams)
            json_gateway(addr, grc, &page);
        printf("}\n");
        goto out;
    }
    cli_list_t l = {0};
    cli_list_add(&l, "Store", "%s", store_path);
    cli_list_add(&l, "SchemaVersion", "%u", version);
    cli_list_add(&l, "ChangeCounter", "%llu", (unsigned long long)counter);
    cli_list_add(&l, "TransactionId", "%llu", (unsigned long long)txn);
    if (last.seq)
        cli_list_add(&l, "LastChange", "%s by %s: %s %s", when, last.actor, last.verb,
                     last.subject);
    else
        cli_list_add(&l, "LastChange", "never");
    cli_list_add(&l, "Partners", "%zu", partners.n);
    cli_list_add(&l, "HostedDomains", "%zu", hosted.n);
    cli_list_add(&l, "EnableXmppAccess", "%s (global)", global ? "True" : "False");
    if (streams)
        list_gateway(&l, addr, grc, &page);
    cli_list_print(&l, stdout);
    if (streams && grc == 0) {
        streams_out_t o = {false, 0};
        cli_streams_parse((const char *)page.data, page.len, print_stream_row, &o);
    }
out:
    buf_free(&page);
    store_close(s);
    return ret;
}

/* ---- audit ---- */

typedef struct {
    bool json;
    size_t n;
} audit_out_t;

/* "    tls: Required -> Optional; dialback: true -> false" for an update: the members of `after`
   whose text differs from `before` (revision left out). Nothing when either side is not an
   object or does not parse: the header line already says what happened. */
static void print_audit_diff(const char *before, const char *after)
{
    enum { TOKS = 1024 };
    static json_tok_t tb[TOKS], ta[TOKS];
    json_doc_t db, da;
    if (!before || !after || json_parse(&db, before, strlen(before), tb, TOKS) ||
        json_parse(&da, after, strlen(after), ta, TOKS) || tb[0].type != JSON_OBJECT ||
        ta[0].type != JSON_OBJECT)
        return;
    size_t shown = 0;
    for (uint32_t i = 1; i < da.ntok; i = ta[i + 1].next) {
        const json_tok_t *k = &ta[i], *va = &ta[i + 1];
        char key[64];
        if (k->end - k->start >= sizeof(key))
            continue;
        memcpy(key, after + k->start, k->end - k->start);
        key[k->end - k->start] = '\0';
        if (strcmp(key, "revision") == 0)
            continue;
        int j = json_find(&db, 0, key);
        const char *old = j < 0 ? "" : before + tb[j].start;
        int old_len = j < 0 ? 0 : (int)(tb[j].end - tb[j].start);
        int new_len = (int)(va->end - va->start);
        if (j >= 0 && old_len == new_len && memcmp(old, after + va->start, (size_t)new_len) == 0)
            continue;
        const char *nv = after + va->start;
        if (old_len == 0) /* an empty string: show it rather than nothing */
            old = "\"\"", old_len = 2;
        if (new_len == 0)
            nv = "\"\"", new_len = 2;
        printf("%s%s: %.*s -> %.*s", shown++ ? "; " : "    ", key, old_len, old, new_len, nv);
    }
    if (shown)
        printf("\n");
}

static int print_audit(const store_audit_t *e, void *arg)
{
    audit_out_t *o = arg;
    char when[48];
    format_time(e->time_ms, when, sizeof(when));
    if (o->json) {
        printf("%s{\"seq\":%llu,\"time\":\"%s\",\"time_ms\":%lld,\"actor\":", o->n ? ",\n" : "",
               (unsigned long long)e->seq, when, (long long)e->time_ms);
        cli_json_string(stdout, e->actor);
        printf(",\"verb\":");
        cli_json_string(stdout, e->verb);
        printf(",\"subject\":");
        cli_json_string(stdout, e->subject);
        printf(",\"before\":%s,\"after\":%s}", e->before && *e->before ? e->before : "null",
               e->after && *e->after ? e->after : "null");
    } else {
        printf("%s  #%llu  %s  %s %s\n", when, (unsigned long long)e->seq, e->actor, e->verb,
               e->subject ? e->subject : "");
        print_audit_diff(e->before, e->after);
    }
    o->n++;
    return 0;
}

static const cli_opt_t audit_opts[] = {
    {"since", CLI_OPT_VALUE, "T",
     "only changes at or after T: 2026-11-24, 2026-11-24T20:15Z, @UNIXTIME, or an age 15m/2h/7d"},
    {"json", CLI_OPT_FLAG, NULL, "JSON array with the before/after of every change"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

int cli_audit_main(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    int ret = cli_args_parse(&a, audit_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "audit [--since T] [--json]",
                       "Every committed change, oldest first: time, OS user, verb, subject.",
                       audit_opts);
        return 0;
    }
    if (a.n_pos)
        return cli_fail(CLI_EXIT_USAGE, "audit takes no arguments");
    if ((ret = cli_args_once(&a, "since")))
        return ret;
    int64_t since = 0;
    const char *t = cli_args_value(&a, "since");
    if (t && cli_parse_time(t, now_ms(), &since))
        return cli_fail(CLI_EXIT_USAGE,
                        "--since: \"%s\" is not a date (2026-11-24[T20:15[:00]Z]), @UNIXTIME "
                        "or an age (15m, 2h, 7d)",
                        t);
    ret = cli_store_open(store_path, CLI_STORE_READ, &s);
    if (ret)
        return ret;
    audit_out_t o = {.json = cli_args_flag(&a, "json")};
    if (o.json)
        printf("[");
    int rc = store_audit_list(s, since, print_audit, &o);
    if (o.json)
        printf("%s]\n", o.n ? "\n" : "");
    ret = cli_finish(rc, NULL, store_path);
    store_close(s);
    return ret;
}
