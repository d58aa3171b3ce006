/* `fedgate-admin partner new|set|get|remove`: Lync's New/Set/Get/Remove-CsXmppAllowedPartner. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cli.h"
#include "admin/cli_common.h"
#include "admin/cli_schema.h"
#include "admin/cli_store.h"
#include "core/buf.h"
#include "core/err.h"
#include "policy/json.h"
#include "policy/partner.h"
#include "policy/schema.h"
#include "policy/store.h"

#define OPT_TABLE_MAX 64
#define JSON_OUT_MAX  (512u << 20)

static const cli_opt_t new_extra[] = {
    {"domain", CLI_OPT_VALUE, "DOMAIN", "primary domain (instead of the DOMAIN argument)"},
    {"identity", CLI_OPT_VALUE, "DOMAIN", "same as --domain (Lync's -Identity)"},
    {"what-if", CLI_OPT_FLAG, NULL, "show what would change, change nothing"},
    {"json", CLI_OPT_FLAG, NULL, "print the stored partner as JSON"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t set_extra[] = {
    {"identity", CLI_OPT_VALUE, "DOMAIN", "the partner (instead of the DOMAIN argument)"},
    {"add-domain", CLI_OPT_VALUE, "D", "add an additional domain (repeatable)"},
    {"remove-domain", CLI_OPT_VALUE, "D", "remove an additional domain (repeatable)"},
    {"clear-domains", CLI_OPT_FLAG, NULL, "remove every additional domain"},
    {"what-if", CLI_OPT_FLAG, NULL, "show what would change, change nothing"},
    {"json", CLI_OPT_FLAG, NULL, "print the stored partner as JSON"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t get_opts[] = {
    {"identity", CLI_OPT_VALUE, "DOMAIN", "the partner (instead of the DOMAIN argument)"},
    {"filter", CLI_OPT_VALUE, "GLOB", "partners whose primary domain matches, e.g. '*.org'"},
    {"json", CLI_OPT_FLAG, NULL, "print {\"partners\":[...]}, which import accepts"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t remove_opts[] = {
    {"identity", CLI_OPT_VALUE, "DOMAIN", "the partner (instead of the DOMAIN argument)"},
    {"what-if", CLI_OPT_FLAG, NULL, "show what would change, change nothing"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

/* The partner named by the DOMAIN argument or --identity/--domain (exactly one of them). */
static int identity_of(const cli_args_t *a, const char **out)
{
    const char *id = cli_args_value(a, "identity");
    const char *dom = cli_args_value(a, "domain");
    size_t given = (a->n_pos > 0) + (id != NULL) + (dom != NULL);
    if (cli_args_count(a, "identity") > 1 || cli_args_count(a, "domain") > 1 || a->n_pos > 1)
        return cli_fail(CLI_EXIT_USAGE, "name one partner only");
    if (given > 1)
        return cli_fail(CLI_EXIT_USAGE,
                        "give the partner once: DOMAIN, --domain or --identity, not several");
    if (given == 0)
        return cli_fail(CLI_EXIT_USAGE, "missing the partner's primary DOMAIN");
    *out = a->n_pos ? a->pos[0] : id ? id : dom;
    return 0;
}

/* {"partners": [...]} built while the store is walked: a partner_t is ~18 KiB, so a large store is
   never copied into memory, only its JSON (a few hundred bytes per partner). */
typedef struct {
    buf_t b;
    size_t n;
} json_out_t;

static int json_begin(json_out_t *o)
{
    buf_init(&o->b, JSON_OUT_MAX);
    o->n = 0;
    return json_put_raw(&o->b, "{\"partners\": [\n");
}

static int json_add(const partner_t *p, void *arg)
{
    json_out_t *o = arg;
    int rc = json_put_raw(&o->b, o->n++ ? ",\n  " : "  ");
    if (!rc)
        rc = json_encode_object(&schema_partner, p, JSON_F_PRETTY, 1, &o->b);
    return rc;
}

/* Closes the document and prints it; frees the buffer. */
static int json_end(json_out_t *o, int rc)
{
    if (!rc)
        rc = json_put_raw(&o->b, "\n]}\n");
    int ret = rc ? cli_fail(CLI_EXIT_STORE, "encoding JSON: %s", fg_strerror(rc))
                 : cli_write_stdout(&o->b);
    buf_free(&o->b);
    return ret;
}

static int print_json(const partner_t *p)
{
    json_out_t o;
    int rc = json_begin(&o);
    if (!rc)
        rc = json_add(p, &o);
    return json_end(&o, rc);
}

static void print_list(const partner_t *p)
{
    cli_schema_print(&schema_partner, p, p->domain, false);
}

static int show_result(const cli_args_t *a, const partner_t *p)
{
    if (cli_args_flag(a, "json"))
        return print_json(p);
    print_list(p);
    return 0;
}

/* ---- new ---- */

static int partner_new(int argc, char **argv, const char *store_path)
{
    cli_opt_t opts[OPT_TABLE_MAX];
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    partner_t p;
    const char *id = NULL;
    if (!cli_schema_opts(&schema_partner, new_extra, opts, OPT_TABLE_MAX))
        return cli_fail(CLI_EXIT_STORE, "internal: option table too small");
    int ret = cli_args_parse(&a, opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "partner new DOMAIN [options] [--what-if]",
                       "Adds an XMPP federated partner (New-CsXmppAllowedPartner). Unset options "
                       "take Lync's defaults:\nPublicUnverified, TLS Required, SASL Required, "
                       "dialback true, keepalive true.",
                       opts);
        return 0;
    }
    if ((ret = identity_of(&a, &id)))
        return ret;
    report_init(&rep, 0);
    report_set_subject(&rep, id);
    partner_defaults(&p);
    if (strlen(id) >= sizeof(p.domain)) {
        /* Let the normaliser name the rule the name breaks (length), from a truncated copy. */
        char dom[DOMAIN_BUF];
        ret = cli_domain_arg("domain", id, dom);
        goto out;
    }
    snprintf(p.domain, sizeof(p.domain), "%s", id);
    int rc = cli_schema_apply(&schema_partner, &p, &a, &rep);
    if (rc > 0) {
        ret = rc;
        goto out;
    }
    if (rc) {
        ret = cli_finish(rc, &rep, id);
        goto out;
    }
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    rc = store_partner_create(s, &ctx, &p, &rep);
    ret = cli_finish(rc, &rep, id);
    if (ret)
        goto out;
    if (ctx.what_if)
        cli_print_what_if(&ctx, "partner new", p.domain);
    else
        ret = show_result(&a, &p);
out:
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

/* ---- set ---- */

typedef struct {
    const cli_args_t *a;
    report_t *rep;
    int usage; /* a positive exit status from reading a -file option */
} set_edit_t;

static int set_edit(partner_t *p, void *arg)
{
    set_edit_t *e = arg;
    int first = 0;
    /* Schema options first (they include --additional-domains, which replaces the list), then
       the list edits in the order given, as Lync applies -AdditionalDomains @{Add=..;Remove=..}. */
    int rc = cli_schema_apply(&schema_partner, p, e->a, e->rep);
    if (rc > 0) {
        e->usage = rc;
        return FG_EPARSE;
    }
    first = rc;
    for (size_t i = 0; i < e->a->n_occ; i++) {
        const char *opt = e->a->opts[e->a->occ[i].opt].name;
        const char *v = e->a->occ[i].value;
        if (strcmp(opt, "clear-domains") == 0) {
            partner_clear_domains(p);
            continue;
        }
        bool add = strcmp(opt, "add-domain") == 0;
        if (!add && strcmp(opt, "remove-domain") != 0)
            continue;
        rc = add ? partner_add_domain(p, v) : partner_remove_domain(p, v);
        if (rc == 0)
            continue;
        if (rc == FG_EDOMAIN) {
            char line[512];
            const char *why = NULL;
            char tmp[DOMAIN_BUF];
            domain_normalize_why(v, tmp, sizeof(tmp), &why);
            domain_error_line(v, why, line, sizeof(line));
            report_add(e->rep, REPORT_ERROR, opt, "%s", line);
        } else if (rc == FG_ECONFLICT) {
            report_add(e->rep, REPORT_ERROR, opt, "\"%s\" is already a domain of %s", v, p->domain);
        } else if (rc == FG_ENOTFOUND) {
            report_add(e->rep, REPORT_ERROR, opt, "\"%s\" is not an additional domain of %s", v,
                       p->domain);
        } else if (rc == FG_ELIMIT) {
            report_add(e->rep, REPORT_ERROR, opt,
                       "\"%s\": a partner has at most %d additional domains", v,
                       PARTNER_MAX_DOMAINS);
        } else {
            report_add(e->rep, REPORT_ERROR, opt, "\"%s\": %s", v, fg_strerror(rc));
        }
        if (!first)
            first = rc;
    }
    return first;
}

static int partner_set(int argc, char **argv, const char *store_path)
{
    cli_opt_t opts[OPT_TABLE_MAX];
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    partner_t out;
    const char *id = NULL;
    char dom[DOMAIN_BUF];
    if (!cli_schema_opts(&schema_partner, set_extra, opts, OPT_TABLE_MAX))
        return cli_fail(CLI_EXIT_STORE, "internal: option table too small");
    int ret = cli_args_parse(&a, opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout,
                       "partner set DOMAIN [options] [--add-domain D]... [--remove-domain D]... "
                       "[--clear-domains] [--what-if]",
                       "Changes a partner (Set-CsXmppAllowedPartner); options not given keep their "
                       "value.\nThe read, the edit and the write happen in one transaction.",
                       opts);
        return 0;
    }
    if ((ret = identity_of(&a, &id)))
        return ret;
    if (!cli_schema_any(&schema_partner, &a) && !cli_args_flag(&a, "add-domain") &&
        !cli_args_flag(&a, "remove-domain") && !cli_args_flag(&a, "clear-domains"))
        return cli_fail(CLI_EXIT_USAGE, "partner set %s: nothing to change (see --help)", id);
    if ((ret = cli_domain_arg("partner", id, dom)))
        return ret;
    report_init(&rep, 0);
    report_set_subject(&rep, dom);
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    set_edit_t e = {.a = &a, .rep = &rep};
    int rc = store_partner_modify(s, &ctx, dom, set_edit, &e, &out, &rep);
    if (e.usage) {
        ret = e.usage;
        goto out;
    }
    ret = cli_finish_found(rc, &rep, "partner", dom, "not found");
    if (ret)
        goto out;
    if (ctx.what_if)
        cli_print_what_if(&ctx, "partner set", dom);
    else
        ret = show_result(&a, &out);
out:
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

/* ---- get ---- */

static int print_one(const partner_t *p, void *arg)
{
    size_t *n = arg;
    if ((*n)++)
        printf("\n");
    print_list(p);
    return 0;
}

static int partner_get(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    int ret = cli_args_parse(&a, get_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "partner get [DOMAIN | --filter GLOB] [--json]",
                       "Shows partners (Get-CsXmppAllowedPartner); all of them without DOMAIN.",
                       get_opts);
        return 0;
    }
    const char *id = a.n_pos ? a.pos[0] : cli_args_value(&a, "identity");
    const char *glob = cli_args_value(&a, "filter");
    if (a.n_pos > 1 || (a.n_pos && cli_args_value(&a, "identity")))
        return cli_fail(CLI_EXIT_USAGE, "name one partner only");
    if (id && glob)
        return cli_fail(CLI_EXIT_USAGE, "DOMAIN and --filter exclude each other");
    if ((ret = cli_store_open(store_path, CLI_STORE_READ, &s)))
        return ret;
    bool json = cli_args_flag(&a, "json");
    if (id) {
        char dom[DOMAIN_BUF];
        partner_t p;
        if ((ret = cli_domain_arg("partner", id, dom)))
            goto out;
        int rc = store_partner_get(s, dom, &p);
        if (rc == FG_ENOTFOUND) {
            /* Lync keys partners by primary domain only; say where the domain lives instead. */
            if (store_partner_find(s, dom, &p) == 0)
                ret = cli_fail(CLI_EXIT_NOTFOUND,
                               "partner %s: not found (it is an additional domain of %s)", dom,
                               p.domain);
            else
                ret = cli_fail(CLI_EXIT_NOTFOUND, "partner %s: not found", dom);
            goto out;
        }
        if (rc) {
            ret = cli_finish(rc, NULL, dom);
            goto out;
        }
        ret = json ? print_json(&p) : (print_list(&p), 0);
        goto out;
    }
    if (json) {
        json_out_t o;
        int rc = json_begin(&o);
        if (!rc)
            rc = store_partner_list(s, glob, json_add, &o);
        if (rc == FG_ELIMIT || rc == -ENOMEM || rc == 0)
            ret = json_end(&o, rc);
        else {
            buf_free(&o.b);
            ret = cli_finish(rc, NULL, "partner get");
        }
    } else {
        size_t n = 0;
        int rc = store_partner_list(s, glob, print_one, &n);
        if (rc)
            ret = cli_finish(rc, NULL, "partner get");
    }
out:
    store_close(s);
    return ret;
}

/* ---- remove ---- */

static int partner_remove(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    const char *id = NULL;
    char dom[DOMAIN_BUF];
    int ret = cli_args_parse(&a, remove_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "partner remove DOMAIN [--what-if]",
                       "Removes a partner and all its domains (Remove-CsXmppAllowedPartner).",
                       remove_opts);
        return 0;
    }
    if ((ret = identity_of(&a, &id)))
        return ret;
    if ((ret = cli_domain_arg("partner", id, dom)))
        return ret;
    report_init(&rep, 0);
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    int rc = store_partner_remove(s, &ctx, dom, STORE_ANY_REV, &rep);
    ret = cli_finish_found(rc, &rep, "partner", dom, "not found");
    if (!ret && ctx.what_if)
        cli_print_what_if(&ctx, "partner remove", dom);
out:
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

int cli_partner_main(int argc, char **argv, const char *store_path)
{
    int help = cli_actions_help(argc, argv, "partner new|set|get|remove");
    if (help >= 0)
        return help;
    const char *sub = argv[1];
    if (strcmp(sub, "new") == 0)
        return partner_new(argc - 1, argv + 1, store_path);
    if (strcmp(sub, "set") == 0)
        return partner_set(argc - 1, argv + 1, store_path);
    if (strcmp(sub, "get") == 0 || strcmp(sub, "list") == 0)
        return partner_get(argc - 1, argv + 1, store_path);
    if (strcmp(sub, "remove") == 0)
        return partner_remove(argc - 1, argv + 1, store_path);
    return cli_fail(CLI_EXIT_USAGE, "partner: unknown action '%s' (new, set, get, remove)", sub);
}
