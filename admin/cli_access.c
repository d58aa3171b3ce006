/* `fedgate-admin access get|set|remove|check`: Lync's EnableXmppAccess at global, domain and user
   scope (Set-CsExternalAccessPolicy -EnableXmppAccess). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cli.h"
#include "admin/cli_common.h"
#include "admin/cli_store.h"
#include "core/buf.h"
#include "core/err.h"
#include "policy/access.h"
#include "policy/json.h"
#include "policy/store.h"

static const cli_opt_t get_opts[] = {
    {"json", CLI_OPT_FLAG, NULL, "print {\"access\":{...}}, which import accepts"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t write_opts[] = {
    {"what-if", CLI_OPT_FLAG, NULL, "show what would change, change nothing"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t check_opts[] = {
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

/* Normalises a scope key typed by the operator; exit status 1 with the reason otherwise. */
static int key_arg(const char *in, char *out, size_t outlen)
{
    access_scope_t scope;
    const char *why = NULL;
    int rc = access_key_parse(in, &scope, out, outlen, &why);
    if (rc == 0)
        return 0;
    return cli_fail(CLI_EXIT_REFUSED,
                    "access: \"%s\" is not global, domain:DOMAIN or user:LOCAL@DOMAIN%s%s", in,
                    why ? ": " : "", why ? why : "");
}

/* Format-List, as Get-CsExternalAccessPolicy prints a policy. */
static void print_scope(const char *key, bool value, bool gap)
{
    cli_list_t l = {0};
    if (gap)
        printf("\n");
    cli_list_add(&l, "Identity", "%s", key);
    cli_list_add(&l, "EnableXmppAccess", "%s", value ? "True" : "False");
    cli_list_print(&l, stdout);
}

typedef struct {
    bool json;
    size_t n;
    buf_t b;
} access_out_t;

static int emit(const char *key, bool value, void *arg)
{
    access_out_t *o = arg;
    if (!o->json) {
        print_scope(key, value, o->n++ > 0);
        return 0;
    }
    int rc = json_put_raw(&o->b, o->n++ ? ",\n  " : "\n  ");
    if (!rc)
        rc = json_put_string(&o->b, key);
    if (!rc)
        rc = json_put_raw(&o->b, value ? ": true" : ": false");
    return rc;
}

static int access_get(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    access_out_t o = {0};
    char key[ACCESS_KEY_MAX + 1];
    int ret = cli_args_parse(&a, get_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "access get [global | domain:DOMAIN | user:JID] [--json]",
                       "Shows the stored EnableXmppAccess values; all of them without a scope.",
                       get_opts);
        return 0;
    }
    if (a.n_pos > 1)
        return cli_fail(CLI_EXIT_USAGE, "name one scope only");
    if (a.n_pos && (ret = key_arg(a.pos[0], key, sizeof(key))))
        return ret;
    if ((ret = cli_store_open(store_path, CLI_STORE_READ, &s)))
        return ret;
    o.json = cli_args_flag(&a, "json");
    buf_init(&o.b, 256u << 20);
    int rc = json_put_raw(&o.b, "{\"access\": {");
    if (a.n_pos) {
        bool v;
        rc = store_access_get(s, key, &v);
        if (rc == FG_ENOTFOUND) {
            ret = cli_fail(CLI_EXIT_NOTFOUND, "access %s: not set", key);
            goto out;
        }
        if (!rc)
            rc = emit(key, v, &o);
    } else if (!rc) {
        rc = store_access_list(s, emit, &o);
    }
    if (!rc && o.json) {
        rc = json_put_raw(&o.b, o.n ? "\n}}\n" : "}}\n");
        if (!rc)
            ret = cli_write_stdout(&o.b);
    }
    if (rc)
        ret = cli_finish(rc, NULL, "access get");
out:
    buf_free(&o.b);
    store_close(s);
    return ret;
}

static int access_write(int argc, char **argv, const char *store_path, bool set)
{
    cli_args_t a;
    store_t *s = NULL;
    report_t rep;
    store_ctx_t ctx = {.actor = cli_actor()};
    char key[ACCESS_KEY_MAX + 1];
    bool value = false;
    int ret = cli_args_parse(&a, write_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout,
                       set ? "access set global|domain:DOMAIN|user:JID true|false [--what-if]"
                           : "access remove domain:DOMAIN|user:JID [--what-if]",
                       set ? "Sets EnableXmppAccess at a scope; the most specific scope wins."
                           : "Removes a scope's value so the wider scope applies again.",
                       write_opts);
        return 0;
    }
    if (a.n_pos != (set ? 2u : 1u))
        return cli_fail(CLI_EXIT_USAGE, set ? "access set: give a SCOPE and true|false"
                                            : "access remove: give one SCOPE");
    if ((ret = key_arg(a.pos[0], key, sizeof(key))))
        return ret;
    if (set && cli_parse_bool(a.pos[1], &value))
        return cli_fail(CLI_EXIT_REFUSED, "access %s: \"%s\" is not true or false", key, a.pos[1]);
    report_init(&rep, 0);
    if ((ret = cli_store_open(store_path, CLI_STORE_WRITE, &s)))
        goto out;
    ctx.what_if = cli_args_flag(&a, "what-if");
    int rc =
        set ? store_access_set(s, &ctx, key, value, &rep) : store_access_unset(s, &ctx, key, &rep);
    ret = cli_finish_found(rc, &rep, "access", key, "not set");
    if (!ret && ctx.what_if)
        cli_print_what_if(&ctx, set ? "access set" : "access remove", key);
    else if (!ret && set)
        print_scope(key, value, false);
out:
    free(ctx.change);
    report_free(&rep);
    store_close(s);
    return ret;
}

static int access_check(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    store_t *s = NULL;
    char key[ACCESS_KEY_MAX + 1];
    int ret = cli_args_parse(&a, check_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "access check LOCAL@DOMAIN",
                       "Prints the effective EnableXmppAccess of a user (most specific scope "
                       "wins); exit 0 either way.",
                       check_opts);
        return 0;
    }
    if (a.n_pos != 1)
        return cli_fail(CLI_EXIT_USAGE, "access check: give one user JID");
    const char *why = NULL;
    if (access_key(ACCESS_USER, a.pos[0], key, sizeof(key), &why))
        return cli_fail(CLI_EXIT_REFUSED, "access check: \"%s\" is not a bare JID%s%s", a.pos[0],
                        why ? ": " : "", why ? why : "");
    if ((ret = cli_store_open(store_path, CLI_STORE_READ, &s)))
        return ret;
    bool v = false;
    int rc = store_access_effective(s, key + 5, &v); /* key is "user:<jid>" */
    ret = cli_finish(rc, NULL, key);
    if (!ret)
        print_scope(key, v, false);
    store_close(s);
    return ret;
}

int cli_access_main(int argc, char **argv, const char *store_path)
{
    int help = cli_actions_help(argc, argv, "access get|set|remove|check");
    if (help >= 0)
        return help;
    const char *sub = argv[1];
    if (strcmp(sub, "get") == 0 || strcmp(sub, "list") == 0)
        return access_get(argc - 1, argv + 1, store_path);
    if (strcmp(sub, "set") == 0)
        return access_write(argc - 1, argv + 1, store_path, true);
    if (strcmp(sub, "remove") == 0)
        return access_write(argc - 1, argv + 1, store_path, false);
    if (strcmp(sub, "check") == 0)
        return access_check(argc - 1, argv + 1, store_path);
    return cli_fail(CLI_EXIT_USAGE, "access: unknown action '%s' (get, set, remove, check)", sub);
}
