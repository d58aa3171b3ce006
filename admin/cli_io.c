/*
 * `fedgate-admin export` and `import`: the whole policy as JSON, and imports of that JSON or of a
 * CSV written by PowerShell's `Get-CsXmppAllowedPartner | Export-Csv` (how a Lync deployment
 * migrates). Every import is one store transaction: all entries or none.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/cli.h"
#include "admin/cli_common.h"
#include "admin/cli_csv.h"
#include "admin/cli_store.h"
#include "core/buf.h"
#include "core/err.h"
#include "policy/partner.h"
#include "policy/schema.h"
#include "policy/store.h"

#define EXPORT_MAX        (1024u << 20)
#define IMPORT_MAX        (512u << 20)
#define IMPORT_REPORT_MAX 20000

/* ---- export ---- */

static const cli_opt_t export_opts[] = {
    {"output", CLI_OPT_VALUE, "FILE", "write to FILE (atomically: a temporary file, then rename)"},
    {"secrets", CLI_OPT_FLAG, NULL, "include the dialback passphrase and component secrets"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

/* Writes b to path through a temporary file in the same directory, so a reader never sees half
   an export and an existing file is replaced only by a complete one. */
static int write_atomic(const char *path, const buf_t *b, bool secret)
{
    int ret = 0;
    char tmp[4096];
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dirname(dir),
                         strrchr(path, '/') ? strrchr(path, '/') + 1 : path) >= sizeof(tmp))
        return cli_fail(CLI_EXIT_USAGE, "--output: path too long");
    int fd = mkstemp(tmp);
    if (fd < 0)
        return cli_fail(CLI_EXIT_STORE, "--output %s: %s", path, strerror(errno));
    if (!secret)
        fchmod(fd, 0644);
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->data + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            ret = cli_fail(CLI_EXIT_STORE, "--output %s: %s", path, strerror(errno));
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fd = -1;
        ret = cli_fail(CLI_EXIT_STORE, "--output %s: %s", path, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        ret = cli_fail(CLI_EXIT_STORE, "--output %s: %s", path, strerror(errno));
        goto fail;
    }
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return ret;
}

/* "-o FILE" is the one short option: map it onto --output. */
static void map_short(int argc, char **argv)
{
    static char output[] = "--output";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return;
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = output;
    }
}

int cli_export_main(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    buf_t b;
    map_short(argc, argv);
    int ret = cli_args_parse(&a, export_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "export [-o FILE] [--secrets]",
                       "Prints the whole policy (settings, partners, hosted domains, access) as "
                       "one JSON document\nthat import accepts. Secrets are left out unless "
                       "--secrets is given.",
                       export_opts);
        return 0;
    }
    if (a.n_pos)
        return cli_fail(CLI_EXIT_USAGE, "export takes no arguments (use -o FILE)");
    if ((ret = cli_args_once(&a, "output")))
        return ret;
    if ((ret = cli_store_open(store_path, CLI_STORE_READ, &s)))
        return ret;
    buf_init(&b, EXPORT_MAX);
    bool secrets = cli_args_flag(&a, "secrets");
    int rc = store_export_json(s, secrets ? STORE_EXPORT_SECRETS : 0, &b);
    if (rc) {
        ret = cli_finish(rc, NULL, "export");
        goto out;
    }
    const char *file = cli_args_value(&a, "output");
    ret = file && strcmp(file, "-") != 0 ? write_atomic(file, &b, secrets) : cli_write_stdout(&b);
out:
    if (secrets)
        explicit_bzero(b.data, b.len);
    buf_free(&b);
    store_close(s);
    return ret;
}

/* ---- PowerShell CSV ---- */

/* Columns PowerShell adds around the cmdlet's own properties; they carry no policy. */
static const char *const ps_noise[] = {
    "PSComputerName", "PSShowComputerName", "RunspaceId", "Element", "XmlElement", "Anchor", NULL};

typedef struct {
    store_batch_t *batch;
    report_t *rep;
    const schema_field_t *col[CLI_CSV_MAX_FIELDS];
    int identity_col; /* Lync's Identity: the primary domain again */
    int domain_col;
    size_t ncols;
    bool have_header;
    bool bad_header; /* reported once; the rows are not read */
    size_t rows;
} csv_import_t;

static bool is_noise(const char *name)
{
    for (size_t i = 0; ps_noise[i]; i++)
        if (strcasecmp(ps_noise[i], name) == 0)
            return true;
    return false;
}

static int csv_header(csv_import_t *c, size_t line, size_t n, const char *const *f)
{
    char subject[64];
    snprintf(subject, sizeof(subject), "line %zu", line);
    c->identity_col = c->domain_col = -1;
    c->ncols = n;
    c->have_header = true;
    report_set_subject(c->rep, subject);
    for (size_t i = 0; i < n; i++) {
        c->col[i] = NULL;
        if (strcasecmp(f[i], "Identity") == 0) {
            c->identity_col = (int)i;
            continue;
        }
        const schema_field_t *sf = schema_find(&schema_partner, f[i]);
        if (sf && (sf->flags & SCHEMA_F_READONLY))
            continue;
        if (sf && (sf->flags & SCHEMA_F_KEY)) {
            c->domain_col = (int)i;
            continue;
        }
        if (sf) {
            c->col[i] = sf;
            continue;
        }
        if (!is_noise(f[i]))
            report_add(c->rep, REPORT_WARNING, "",
                       "column \"%s\" is not a partner property; ignored", f[i]);
    }
    if (c->identity_col < 0 && c->domain_col < 0) {
        report_add(c->rep, REPORT_ERROR, "",
                   "no Identity or Domain column: is this a Get-CsXmppAllowedPartner | Export-Csv "
                   "file?");
        c->bad_header = true;
    }
    return 0;
}

/* AdditionalDomains as written by Export-Csv after `-join`, or as typed: "a.com b.com",
   "a.com;b.com", "{a.com, b.com}" (PowerShell's list display) all become "a.com,b.com". */
static int csv_domain_list(const char *in, char *out, size_t outlen)
{
    if (strstr(in, "System.") || strstr(in, "Microsoft.") || strchr(in, '`'))
        return FG_EPARSE;
    size_t o = 0;
    bool sep = false;
    for (const char *p = in; *p; p++) {
        char ch = *p;
        if (ch == '{' || ch == '}')
            continue;
        if (ch == ' ' || ch == ';' || ch == ',' || ch == '\t' || ch == '\n' || ch == '\r') {
            sep = o > 0;
            continue;
        }
        if (o + 3 >= outlen)
            return FG_ELIMIT;
        if (sep)
            out[o++] = ',';
        sep = false;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

static int csv_row(void *arg, size_t line, size_t n, const char *const *f)
{
    csv_import_t *c = arg;
    if (!c->have_header)
        return csv_header(c, line, n, f);
    if (c->bad_header)
        return 0; /* reported once; the commit is refused */
    char subject[64];
    snprintf(subject, sizeof(subject), "line %zu", line);
    report_set_subject(c->rep, subject);
    c->rows++;
    if (n != c->ncols) {
        report_add(c->rep, REPORT_ERROR, "", "%zu fields, the header has %zu", n, c->ncols);
        return 0;
    }
    partner_t p;
    partner_defaults(&p);
    const char *id = c->identity_col >= 0 ? f[c->identity_col] : "";
    const char *dom = c->domain_col >= 0 ? f[c->domain_col] : "";
    if (!*dom)
        dom = id;
    size_t errors = c->rep->errors;
    if (!*dom) {
        report_add(c->rep, REPORT_ERROR, "domain", "Identity and Domain are both empty");
    } else if (*id && strcasecmp(id, dom) != 0) {
        char a[DOMAIN_BUF], b[DOMAIN_BUF];
        if (domain_normalize(id, a, sizeof(a)) || domain_normalize(dom, b, sizeof(b)) ||
            strcmp(a, b) != 0)
            report_add(c->rep, REPORT_ERROR, "domain",
                       "Identity \"%s\" and Domain \"%s\" name different partners", id, dom);
    }
    if (strlen(dom) >= sizeof(p.domain))
        report_add(c->rep, REPORT_ERROR, "domain", "\"%.40s...\" is longer than %d characters", dom,
                   DOMAIN_MAX);
    else
        snprintf(p.domain, sizeof(p.domain), "%s", dom);
    for (size_t i = 0; i < n; i++) {
        const schema_field_t *sf = c->col[i];
        if (!sf)
            continue;
        const char *v = f[i];
        char list[PARTNER_MAX_DOMAINS * DOMAIN_BUF];
        if (sf->type == SCHEMA_DOMAIN_LIST) {
            int rc = csv_domain_list(v, list, sizeof(list));
            if (rc == FG_EPARSE) {
                report_add(c->rep, REPORT_ERROR, sf->json,
                           "\"%s\" is the .NET type name Export-Csv writes for a list; export "
                           "with Select-Object *,@{n='AdditionalDomains';e={$_.AdditionalDomains "
                           "-join ','}} -ExcludeProperty AdditionalDomains",
                           v);
                continue;
            }
            if (rc) {
                report_add(c->rep, REPORT_ERROR, sf->json, "the list is too long");
                continue;
            }
            v = list;
        }
        char text[CLI_CSV_MAX_FIELD + 1];
        if (sf->type == SCHEMA_TEXT && strpbrk(v, "\r\n")) {
            /* Lync accepts multi-line descriptions; fedgate's are one line. */
            size_t o = 0;
            for (const char *q = v; *q && o < sizeof(text) - 1; q++) {
                if (*q == '\r' && q[1] == '\n')
                    continue;
                text[o++] = *q == '\r' || *q == '\n' ? ' ' : *q;
            }
            text[o] = '\0';
            report_add(c->rep, REPORT_WARNING, sf->json, "line breaks replaced by spaces");
            v = text;
        }
        char err[512] = "";
        if (schema_parse_value(sf, &p, v, err, sizeof(err)))
            report_add(c->rep, REPORT_ERROR, "", "%s", err[0] ? err : "bad value");
    }
    if (c->rep->errors != errors)
        return 0; /* this row is already refused; go on to report the others */
    int rc = store_batch_partner(c->batch, &p, subject, c->rep);
    if (rc == FG_EREFUSED || rc == FG_ECONFLICT || rc == FG_EDOMAIN || rc == FG_EPARSE ||
        rc == FG_ELIMIT)
        rc = 0; /* reported in rep; keep checking the remaining rows */
    return rc;
}

static int import_csv(store_t *s, store_ctx_t *ctx, const char *data, size_t len, report_t *rep,
                      size_t *created, size_t *updated)
{
    csv_import_t c = {.rep = rep};
    size_t removed = 0, bad_line = 0;
    char *utf8 = NULL;
    size_t utf8_len = 0;
    int rc = cli_csv_utf16_to_utf8(data, len, &utf8, &utf8_len);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        data = utf8;
        len = utf8_len;
    }
    rc = store_batch_begin(s, ctx, &c.batch);
    if (rc) {
        free(utf8);
        return rc;
    }
    rc = cli_csv_parse(data, len, csv_row, &c, &bad_line);
    free(utf8);
    report_set_subject(rep, "");
    if (rc == FG_EPARSE) {
        char subject[64];
        snprintf(subject, sizeof(subject), "line %zu", bad_line);
        report_set_subject(rep, subject);
        report_add(
            rep, REPORT_ERROR, "",
            "malformed CSV record (an unterminated quote, a NUL byte, or more than %d fields or %d "
            "characters in a field)",
            CLI_CSV_MAX_FIELDS, CLI_CSV_MAX_FIELD);
        report_set_subject(rep, "");
        rc = FG_EREFUSED;
    }
    if (!rc && !c.have_header && !report_has_errors(rep)) {
        report_add(rep, REPORT_ERROR, "", "the file has no header row");
        rc = FG_EREFUSED;
    }
    if (!rc && c.have_header && !c.bad_header && c.rows == 0)
        report_add(rep, REPORT_WARNING, "", "the file has a header but no partner rows");
    store_batch_counts(c.batch, created, updated, &removed);
    if (rc || report_has_errors(rep) || ctx->what_if) {
        store_batch_abort(c.batch);
        return rc ? rc : report_has_errors(rep) ? FG_EREFUSED : 0;
    }
    return store_batch_commit(c.batch, rep);
}

/* ---- import ---- */

static const cli_opt_t import_opts[] = {
    {"format", CLI_OPT_VALUE, "json|csv", "file format (default: from the extension or content)"},
    {"replace", CLI_OPT_FLAG, NULL,
     "JSON only: in each section the file has (partners, hosted, access), also remove the "
     "entries it lacks; sections the file lacks are left alone"},
    {"what-if", CLI_OPT_FLAG, NULL, "validate and show what would change, change nothing"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static bool looks_json(const char *path, const char *data, size_t len)
{
    size_t l = strlen(path);
    if (l > 4 && strcasecmp(path + l - 4, ".csv") == 0)
        return false;
    if (l > 5 && strcasecmp(path + l - 5, ".json") == 0)
        return true;
    size_t i = len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    return i < len && (data[i] == '{' || data[i] == '[');
}

int cli_import_main(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    char *data = NULL;
    size_t len = 0;
    int ret = cli_args_parse(&a, import_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "import FILE [--format json|csv] [--replace] [--what-if]",
                       "Applies a JSON document of the export format, or a CSV of "
                       "Get-CsXmppAllowedPartner | Export-Csv,\nin one transaction: every "
                       "entry is validated, every invalid one is reported, and nothing is\n"
                       "saved unless all are valid. FILE - reads standard input.",
                       import_opts);
        return 0;
    }
    if (a.n_pos != 1)
        return cli_fail(CLI_EXIT_USAGE, "import: give one FILE (- for standard input)");
    const char *path = a.pos[0];
    const char *fmt = cli_args_value(&a, "format");
    if (fmt && strcasecmp(fmt, "json") != 0 && strcasecmp(fmt, "csv") != 0)
        return cli_fail(CLI_EXIT_USAGE, "--format: \"%s\" is not json or csv", fmt);
    int rc = cli_read_file(path, IMPORT_MAX, &data, &len);
    if (rc == FG_ELIMIT)
        return cli_fail(CLI_EXIT_REFUSED, "import %s: larger than %u MiB", path, IMPORT_MAX >> 20);
    if (rc)
        return cli_fail(CLI_EXIT_USAGE, "import %s: %s", path, fg_strerror(rc));
    bool json = fmt ? strcasecmp(fmt, "json") == 0 : looks_json(path, data, len);
    if (!json && cli_args_flag(&a, "replace")) {
        free(data);
        return cli_fail(CLI_EXIT_USAGE, "--replace applies to JSON imports only");
    }
    report_init(&rep, IMPORT_REPORT_MAX);
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    size_t created = 0, updated = 0;
    if (json)
        rc = store_import_json(s, &ctx, data, len,
                               cli_args_flag(&a, "replace") ? STORE_IMPORT_REPLACE : 0, &rep);
    else
        rc = import_csv(s, &ctx, data, len, &rep, &created, &updated);
    if (rc && report_has_errors(&rep)) {
        cli_report_print(&rep);
        if (!json) /* the JSON importer ends its report with the same summary */
            cli_fail(0, "import %s: refused, %zu error%s; nothing was saved", path, rep.errors,
                     rep.errors == 1 ? "" : "s");
        ret = cli_exit_from_err(rc);
        goto out;
    }
    ret = cli_finish(rc, &rep, path);
    if (ret)
        goto out;
    if (json) {
        printf("%s %s\n", ctx.what_if ? "what if: import" : "imported", path);
        if (ctx.what_if && ctx.change)
            printf("%s\n", ctx.change);
    } else {
        printf("%s %s: %zu partner%s %screated, %zu updated\n",
               ctx.what_if ? "what if: import" : "imported", path, created, created == 1 ? "" : "s",
               ctx.what_if ? "would be " : "", updated);
    }
out:
    free(ctx.change);
    free(data);
    report_free(&rep);
    store_close(s);
    return ret;
}
