/* `fedgate-admin gateway get|set`: Lync's Get/Set-CsXmppGatewayConfiguration (the singleton). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/cli.h"
#include "admin/cli_common.h"
#include "admin/cli_schema.h"
#include "admin/cli_store.h"
#include "core/buf.h"
#include "core/err.h"
#include "policy/json.h"
#include "policy/schema.h"
#include "policy/settings.h"
#include "policy/store.h"

#define OPT_TABLE_MAX 64

static const cli_opt_t get_opts[] = {
    {"json", CLI_OPT_FLAG, NULL, "print {\"settings\":{...}}, which import accepts"},
    {"show-passphrase", CLI_OPT_FLAG, NULL, "include the DialbackPassphrase"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t set_extra[] = {
    {"generate-passphrase", CLI_OPT_FLAG, NULL,
     "replace the DialbackPassphrase by 32 random bytes"},
    {"what-if", CLI_OPT_FLAG, NULL, "show what would change, change nothing"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static int print_settings(const settings_t *st, bool json, bool show_secret)
{
    if (!json) {
        cli_schema_print(&schema_settings, st, "Global", show_secret);
        return 0;
    }
    buf_t b;
    buf_init(&b, 1u << 20);
    int rc = json_put_raw(&b, "{\"settings\": ");
    if (!rc)
        rc = json_encode_object(&schema_settings, st,
                                JSON_F_PRETTY | (show_secret ? JSON_F_SECRETS : 0), 0, &b);
    if (!rc)
        rc = json_put_raw(&b, "}\n");
    int ret =
        rc ? cli_fail(CLI_EXIT_STORE, "encoding JSON: %s", fg_strerror(rc)) : cli_write_stdout(&b);
    buf_free(&b);
    return ret;
}

static int gateway_get(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    settings_t st;
    int ret = cli_args_parse(&a, get_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "gateway get [--json] [--show-passphrase]",
                       "Shows the gateway settings (Get-CsXmppGatewayConfiguration).", get_opts);
        return 0;
    }
    if (a.n_pos > 1 || (a.n_pos == 1 && strcasecmp(a.pos[0], "global") != 0))
        return cli_fail(CLI_EXIT_NOTFOUND, "gateway settings \"%s\": only \"global\" exists",
                        a.pos[0]);
    if ((ret = cli_store_open(store_path, CLI_STORE_READ, &s)))
        return ret;
    int rc = store_settings_get(s, &st);
    ret = rc ? cli_finish(rc, NULL, "gateway settings")
             : print_settings(&st, cli_args_flag(&a, "json"), cli_args_flag(&a, "show-passphrase"));
    explicit_bzero(&st, sizeof(st));
    store_close(s);
    return ret;
}

typedef struct {
    const cli_args_t *a;
    report_t *rep;
    int usage;
} gw_edit_t;

static int gw_edit(settings_t *st, void *arg)
{
    gw_edit_t *e = arg;
    int rc = cli_schema_apply(&schema_settings, st, e->a, e->rep);
    if (rc > 0) {
        e->usage = rc;
        return FG_EPARSE;
    }
    if (rc)
        return rc;
    if (cli_args_flag(e->a, "generate-passphrase")) {
        rc = settings_generate_passphrase(st);
        if (rc)
            report_add(e->rep, REPORT_ERROR, "dialback_passphrase", "cannot generate: %s",
                       fg_strerror(rc));
    }
    return rc;
}

static int gateway_set(int argc, char **argv, const char *store_path)
{
    cli_opt_t opts[OPT_TABLE_MAX];
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    settings_t out;
    if (!cli_schema_opts(&schema_settings, set_extra, opts, OPT_TABLE_MAX))
        return cli_fail(CLI_EXIT_STORE, "internal: option table too small");
    int ret = cli_args_parse(&a, opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "gateway set [options] [--what-if]",
                       "Changes the gateway settings (Set-CsXmppGatewayConfiguration); options not "
                       "given keep their value.",
                       opts);
        return 0;
    }
    if (a.n_pos > 1 || (a.n_pos == 1 && strcasecmp(a.pos[0], "global") != 0))
        return cli_fail(CLI_EXIT_NOTFOUND, "gateway settings \"%s\": only \"global\" exists",
                        a.pos[0]);
    if (!cli_schema_any(&schema_settings, &a) && !cli_args_flag(&a, "generate-passphrase"))
        return cli_fail(CLI_EXIT_USAGE, "gateway set: nothing to change (see --help)");
    if (cli_args_flag(&a, "generate-passphrase") &&
        (cli_args_flag(&a, "dialback-passphrase") || cli_args_flag(&a, "dialback-passphrase-file")))
        return cli_fail(
            CLI_EXIT_USAGE,
            "--generate-passphrase and --dialback-passphrase[-file] exclude each other");
    report_init(&rep, 0);
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    gw_edit_t e = {.a = &a, .rep = &rep};
    int rc = store_settings_modify(s, &ctx, gw_edit, &e, &out, &rep);
    if (e.usage) {
        ret = e.usage;
        goto out;
    }
    ret = cli_finish(rc, &rep, "gateway settings");
    if (ret)
        goto out;
    if (ctx.what_if)
        cli_print_what_if(&ctx, "gateway set", "global");
    else
        print_settings(&out, false, false);
out:
    explicit_bzero(&out, sizeof(out));
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

int cli_gateway_main(int argc, char **argv, const char *store_path)
{
    int help = cli_actions_help(argc, argv, "gateway get|set");
    if (help >= 0)
        return help;
    if (strcmp(argv[1], "get") == 0)
        return gateway_get(argc - 1, argv + 1, store_path);
    if (strcmp(argv[1], "set") == 0)
        return gateway_set(argc - 1, argv + 1, store_path);
    return cli_fail(CLI_EXIT_USAGE, "gateway: unknown action '%s' (get, set)", argv[1]);
}
