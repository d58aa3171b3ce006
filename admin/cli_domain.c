/* `fedgate-admin domain new|set|get|remove`: the hosted domains the gateway serves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cli.h"
#include "admin/cli_common.h"
#include "admin/cli_schema.h"
#include "admin/cli_store.h"
#include "core/buf.h"
#include "core/err.h"
#include "policy/hosted.h"
#include "policy/json.h"
#include "policy/schema.h"
#include "policy/store.h"

#define OPT_TABLE_MAX 48
#define STALE_RETRIES 8

static const cli_opt_t write_extra[] = {
    {"what-if", CLI_OPT_FLAG, NULL, "show what would change, change nothing"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t get_opts[] = {
    {"json", CLI_OPT_FLAG, NULL, "print {\"hosted\":[...]}, which import accepts"},
    {"show-secret", CLI_OPT_FLAG, NULL, "include component secrets"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t remove_opts[] = {
    {"what-if", CLI_OPT_FLAG, NULL, "show what would change, change nothing"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

typedef struct {
    buf_t b;
    bool json, secrets;
    size_t n;
    int rc;
} hosted_out_t;

static int emit(const hosted_t *h, void *arg)
{
    hosted_out_t *o = arg;
    if (!o->json) {
        if (o->n++)
            printf("\n");
        cli_schema_print(&schema_hosted, h, h->domain, o->secrets);
        return 0;
    }
    int rc = json_put_raw(&o->b, o->n++ ? ",\n  " : "  ");
    if (!rc)
        rc = json_encode_object(&schema_hosted, h,
                                JSON_F_PRETTY | (o->secrets ? JSON_F_SECRETS : 0), 1, &o->b);
    return rc;
}

static int domain_get(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    hosted_out_t o = {0};
    int ret = cli_args_parse(&a, get_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "domain get [DOMAIN] [--json] [--show-secret]",
                       "Shows hosted domains; all of them without DOMAIN.", get_opts);
        return 0;
    }
    if (a.n_pos > 1)
        return cli_fail(CLI_EXIT_USAGE, "name one domain only");
    char dom[DOMAIN_BUF];
    if (a.n_pos && (ret = cli_domain_arg("domain", a.pos[0], dom)))
        return ret;
    if ((ret = cli_store_open(store_path, CLI_STORE_READ, &s)))
        return ret;
    o.json = cli_args_flag(&a, "json");
    o.secrets = cli_args_flag(&a, "show-secret");
    buf_init(&o.b, 256u << 20);
    int rc = json_put_raw(&o.b, "{\"hosted\": [\n");
    if (a.n_pos) {
        hosted_t h;
        rc = store_hosted_get(s, dom, &h);
        if (rc == FG_ENOTFOUND) {
            ret = cli_fail(CLI_EXIT_NOTFOUND, "hosted domain %s: not found", dom);
            goto out;
        }
        if (!rc)
            rc = emit(&h, &o);
        explicit_bzero(&h, sizeof(h));
    } else if (!rc) {
        rc = store_hosted_list(s, emit, &o);
    }
    if (!rc && o.json) {
        rc = json_put_raw(&o.b, "\n]}\n");
        if (!rc)
            ret = cli_write_stdout(&o.b);
    }
    if (rc)
        ret = cli_finish(rc, NULL, "domain get");
out:
    buf_free(&o.b);
    store_close(s);
    return ret;
}

/* new (create) and set (update): set starts from the stored record and keeps what is not given. */
static int domain_put(int argc, char **argv, const char *store_path, bool create)
{
    cli_opt_t opts[OPT_TABLE_MAX];
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    hosted_t h;
    char dom[DOMAIN_BUF];
    const char *verb = create ? "domain new" : "domain set";
    if (!cli_schema_opts(&schema_hosted, write_extra, opts, OPT_TABLE_MAX))
        return cli_fail(CLI_EXIT_STORE, "internal: option table too small");
    int ret = cli_args_parse(&a, opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout,
                       create ? "domain new DOMAIN --cert FILE --key FILE [--route component "
                                "--secret-file F | --route s2s --target HOST[:PORT]] [--what-if]"
                              : "domain set DOMAIN [options] [--what-if]",
                       create ? "Adds a hosted domain: a domain this gateway serves."
                              : "Changes a hosted domain; options not given keep their value.",
                       opts);
        return 0;
    }
    if (a.n_pos != 1)
        return cli_fail(CLI_EXIT_USAGE, "%s: give exactly one DOMAIN", verb);
    if (!create && !cli_schema_any(&schema_hosted, &a))
        return cli_fail(CLI_EXIT_USAGE, "domain set %s: nothing to change (see --help)", a.pos[0]);
    if ((ret = cli_domain_arg("domain", a.pos[0], dom)))
        return ret;
    report_init(&rep, 0);
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    int rc = 0;
    /* set is read, edit, write with the read revision: a concurrent change makes the write fail
       with FG_ESTALE and the edit is applied again to the newer record. */
    for (int attempt = 0; attempt < STALE_RETRIES; attempt++) {
        uint64_t rev = STORE_ANY_REV;
        report_clear(&rep);
        report_set_subject(&rep, dom);
        if (create) {
            hosted_defaults(&h);
            snprintf(h.domain, sizeof(h.domain), "%s", dom);
        } else {
            rc = store_hosted_get(s, dom, &h);
            if (rc == FG_ENOTFOUND) {
                ret = cli_fail(CLI_EXIT_NOTFOUND, "hosted domain %s: not found", dom);
                goto out;
            }
            if (rc)
                break;
            rev = h.revision;
        }
        rc = cli_schema_apply(&schema_hosted, &h, &a, &rep);
        if (rc > 0) {
            ret = rc;
            goto out;
        }
        if (rc)
            break;
        free(ctx.change);
        ctx.change = NULL;
        rc = store_hosted_put(s, &ctx, &h, create ? STORE_PUT_CREATE : STORE_PUT_UPDATE, rev, &rep);
        if (rc != FG_ESTALE)
            break;
    }
    ret = cli_finish(rc, &rep, dom);
    if (ret)
        goto out;
    if (ctx.what_if)
        cli_print_what_if(&ctx, verb, dom);
    else
        cli_schema_print(&schema_hosted, &h, h.domain, false);
out:
    explicit_bzero(&h, sizeof(h));
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

static int domain_remove(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    char dom[DOMAIN_BUF];
    int ret = cli_args_parse(&a, remove_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "domain remove DOMAIN [--what-if]", "Removes a hosted domain.",
                       remove_opts);
        return 0;
    }
    if (a.n_pos != 1)
        return cli_fail(CLI_EXIT_USAGE, "domain remove: give exactly one DOMAIN");
    if ((ret = cli_domain_arg("domain", a.pos[0], dom)))
        return ret;
    report_init(&rep, 0);
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    int rc = store_hosted_remove(s, &ctx, dom, &rep);
    ret = cli_finish_found(rc, &rep, "hosted domain", dom, "not found");
    if (!ret && ctx.what_if)
        cli_print_what_if(&ctx, "domain remove", dom);
out:
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

int cli_domain_main(int argc, char **argv, const char *store_path)
{
    int help = cli_actions_help(argc, argv, "domain new|set|get|remove");
    if (help >= 0)
        return help;
    const char *sub = argv[1];
    if (strcmp(sub, "new") == 0)
        return domain_put(argc - 1, argv + 1, store_path, true);
    if (strcmp(sub, "set") == 0)
        return domain_put(argc - 1, argv + 1, store_path, false);
    if (strcmp(sub, "get") == 0 || strcmp(sub, "list") == 0)
        return domain_get(argc - 1, argv + 1, store_path);
    if (strcmp(sub, "remove") == 0)
        return domain_remove(argc - 1, argv + 1, store_path);
    return cli_fail(CLI_EXIT_USAGE, "domain: unknown action '%s' (new, set, get, remove)", sub);
}
