#include "admin/cli_schema.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cli_store.h"
#include "core/err.h"

/* "-file" option names and enum metavars live here; the tables are built once per process. */
static char pool[8192];
static size_t pool_used;

/* A copy of a+b in the pool; NULL when the pool is full. */
static const char *pool_printf(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    if (pool_used + n > sizeof(pool))
        return NULL;
    char *p = pool + pool_used;
    snprintf(p, n, "%s%s", a, b);
    pool_used += n;
    return p;
}

static const char *metavar(const schema_field_t *f)
{
    switch (f->type) {
    case SCHEMA_BOOL:
        return "true|false";
    case SCHEMA_U32:
        return "N";
    case SCHEMA_U32_OPT:
        return "N|unset";
    case SCHEMA_ENUM: {
        char buf[256] = "";
        size_t used = 0;
        for (size_t i = 0; f->names && f->names[i]; i++)
            used += (size_t)snprintf(buf + used, used < sizeof(buf) ? sizeof(buf) - used : 0,
                                     "%s%s", i ? "|" : "", f->names[i]);
        const char *m = used < sizeof(buf) ? pool_printf(buf, "") : NULL;
        return m ? m : "NAME";
    }
    case SCHEMA_DOMAIN:
        return "DOMAIN";
    case SCHEMA_DOMAIN_LIST:
        return "D1,D2";
    case SCHEMA_HOSTPORT:
        return "HOST[:PORT]";
    case SCHEMA_LISTEN:
        return "ADDR:PORT";
    case SCHEMA_PATH:
        return "FILE";
    default:
        return "TEXT";
    }
}

static bool writable(const schema_field_t *f)
{
    return f->cli && !(f->flags & (SCHEMA_F_KEY | SCHEMA_F_READONLY));
}

static bool secret(const schema_field_t *f)
{
    return f->type == SCHEMA_SECRET || (f->flags & SCHEMA_F_SECRET);
}

size_t cli_schema_opts(const schema_t *s, const cli_opt_t *extra, cli_opt_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        if (!writable(f))
            continue;
        if (n + 2 >= cap)
            return 0;
        out[n++] = (cli_opt_t){f->cli, CLI_OPT_VALUE, metavar(f), f->help};
        const char *file_opt = secret(f) ? pool_printf(f->cli, "-file") : NULL;
        if (file_opt)
            out[n++] =
                (cli_opt_t){file_opt, CLI_OPT_VALUE, "FILE", "read it from the first line of FILE"};
    }
    for (size_t i = 0; extra && extra[i].name; i++) {
        if (n + 1 >= cap)
            return 0;
        out[n++] = extra[i];
    }
    out[n] = (cli_opt_t){NULL, 0, NULL, NULL};
    return n;
}

/* The schema field an option stands for; *from_file set for "<cli>-file". */
static const schema_field_t *field_of(const schema_t *s, const char *opt, bool *from_file)
{
    *from_file = false;
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        if (!writable(f))
            continue;
        if (strcmp(f->cli, opt) == 0)
            return f;
        size_t l = strlen(f->cli);
        if (secret(f) && strncmp(opt, f->cli, l) == 0 && strcmp(opt + l, "-file") == 0) {
            *from_file = true;
            return f;
        }
    }
    return NULL;
}

bool cli_schema_any(const schema_t *s, const cli_args_t *a)
{
    bool ff;
    for (size_t i = 0; i < a->n_occ; i++)
        if (field_of(s, a->opts[a->occ[i].opt].name, &ff))
            return true;
    return false;
}

int cli_schema_apply(const schema_t *s, void *obj, const cli_args_t *a, report_t *rep)
{
    int ret = 0;
    for (size_t i = 0; i < a->n_occ; i++) {
        const char *opt = a->opts[a->occ[i].opt].name;
        bool from_file;
        const schema_field_t *f = field_of(s, opt, &from_file);
        if (!f)
            continue;
        const char *value = a->occ[i].value;
        char secret_buf[4096];
        if (from_file) {
            int rc = cli_read_secret_file(opt, value, secret_buf, sizeof(secret_buf));
            if (rc)
                return rc;
            value = secret_buf;
        }
        char err[512] = "";
        int rc = schema_parse_value(f, obj, value, err, sizeof(err));
        if (from_file)
            explicit_bzero(secret_buf, sizeof(secret_buf));
        if (rc) {
            if (err[0])
                report_add(rep, REPORT_ERROR, "", "%s", err);
            else
                report_add(rep, REPORT_ERROR, f->cli, "\"%s\" is not valid: %s", value,
                           fg_strerror(rc));
            ret = FG_EREFUSED;
        }
    }
    return ret;
}

/* "listen_s2s_tls" -> "ListenS2sTls", the label style of the Lync properties. */
static const char *pascal_case(const char *in, char *out, size_t outlen)
{
    size_t o = 0;
    bool up = true;
    for (; *in && o + 1 < outlen; in++) {
        if (*in == '_') {
            up = true;
            continue;
        }
        out[o++] = up ? (char)toupper((unsigned char)*in) : *in;
        up = false;
    }
    out[o] = '\0';
    return out;
}

void cli_schema_print(const schema_t *s, const void *obj, const char *identity, bool show_secret)
{
    cli_list_t l = {0};
    static char labels[CLI_LIST_MAX][64];
    char v[8192];
    if (identity)
        cli_list_add(&l, "Identity", "%s", identity);
    for (size_t i = 0; i < s->nfields; i++) {
        const schema_field_t *f = &s->fields[i];
        schema_format_value(f, obj, show_secret, v, sizeof(v));
        if (f->type == SCHEMA_BOOL) /* PowerShell prints booleans as True/False */
            snprintf(v, sizeof(v), "%s",
                     *(const bool *)((const char *)obj + f->offset) ? "True" : "False");
        cli_list_add(&l, f->lync ? f->lync : pascal_case(f->json, labels[i], sizeof(labels[i])),
                     "%s", v);
    }
    cli_list_print(&l, stdout);
}
