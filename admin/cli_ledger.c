/* `fedgate-admin ledger get|remove`: the authorisation ledger (which local user invited which
   partner user; docs/partner-types.md). The gateway writes it; the operator inspects and clears
   it here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/cli.h"
#include "admin/cli_common.h"
#include "admin/cli_store.h"
#include "core/buf.h"
#include "core/err.h"
#include "policy/json.h"
#include "policy/ledger.h"
#include "policy/store.h"

static const cli_opt_t get_opts[] = {
    {"local", CLI_OPT_VALUE, "JID", "only invitations sent by this local user"},
    {"remote", CLI_OPT_VALUE, "JID", "only invitations sent to this partner user"},
    {"json", CLI_OPT_FLAG, NULL, "print {\"ledger\":[...]}"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const cli_opt_t remove_opts[] = {
    {"local", CLI_OPT_VALUE, "JID", "invitations sent by this local user"},
    {"remote", CLI_OPT_VALUE, "JID", "invitations sent to this partner user"},
    {"all", CLI_OPT_FLAG, NULL, "every invitation"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

/* --local/--remote normalised as the gateway keys them; exit status 1 for a bad JID. */
static int jid_opt(const cli_args_t *a, const char *name, char *out, size_t outlen,
                   const char **res)
{
    const char *v = cli_args_value(a, name);
    *res = NULL;
    if (!v)
        return 0;
    int rc = cli_args_once(a, name);
    if (rc)
        return rc;
    if (ledger_bare_jid(v, out, outlen) < 0)
        return cli_fail(CLI_EXIT_REFUSED, "--%s: \"%s\" is not a user JID (local@domain)", name, v);
    *res = out;
    return 0;
}

static void iso_time(int64_t t, char *out, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, len, "@%lld", (long long)t);
}

typedef struct {
    bool json;
    size_t n;
    buf_t b;
    int64_t now;
    uint32_t refresh_s;
} get_out_t;

static int emit(const char *local, const char *remote, const ledger_entry_t *e, void *arg)
{
    get_out_t *o = arg;
    char when[40], msg[40], exp[40];
    const char *state = ledger_answer_name(ledger_judge(e, o->now, o->refresh_s));
    int64_t last = e->invited_at > e->messaged_at ? e->invited_at : e->messaged_at;
    if (e->invited_at)
        iso_time(e->invited_at, when, sizeof(when));
    else
        snprintf(when, sizeof(when), "never");
    if (e->messaged_at)
        iso_time(e->messaged_at, msg, sizeof(msg));
    else
        snprintf(msg, sizeof(msg), "never");
    if (e->answered)
        snprintf(exp, sizeof(exp), "never (answered)");
    else
        iso_time(last + o->refresh_s, exp, sizeof(exp));
    if (!o->json) {
        cli_list_t l = {0};
        if (o->n++)
            printf("\n");
        cli_list_add(&l, "Local", "%s", local);
        cli_list_add(&l, "Remote", "%s", remote);
        cli_list_add(&l, "InvitedAt", "%s", when);
        cli_list_add(&l, "MessagedAt", "%s", msg);
        cli_list_add(&l, "Answered", "%s", e->answered ? "True" : "False");
        cli_list_add(&l, "Expires", "%s", exp);
        cli_list_add(&l, "State", "%s", state);
        cli_list_print(&l, stdout);
        return 0;
    }
    char num[160];
    int rc = json_put_raw(&o->b, o->n++ ? ",\n  {\"local\": " : "\n  {\"local\": ");
    if (!rc)
        rc = json_put_string(&o->b, local);
    if (!rc)
        rc = json_put_raw(&o->b, ", \"remote\": ");
    if (!rc)
        rc = json_put_string(&o->b, remote);
    snprintf(num, sizeof(num),
             ", \"invited_at\": %lld, \"messaged_at\": %lld, \"answered\": %s, \"state\": ",
             (long long)e->invited_at, (long long)e->messaged_at, e->answered ? "true" : "false");
    if (!rc)
        rc = json_put_raw(&o->b, num);
    if (!rc)
        rc = json_put_string(&o->b, state);
    if (!rc)
        rc = json_put_raw(&o->b, "}");
    return rc;
}

/* Opens the store once to report a missing/corrupt one with the CLI's line, and reads the
   SubscriptionRefreshInterval; closed again before the ledger opens its own handles. */
static int check_store(const char *store_path, cli_store_mode_t mode, uint32_t *refresh_s)
{
    store_t *s = NULL;
    settings_t st;
    int ret = cli_store_open(store_path, mode, &s);
    if (ret)
        return ret;
    *refresh_s = LEDGER_REFRESH_DEFAULT;
    if (store_settings_get(s, &st) == 0)
        *refresh_s = st.subscription_refresh_interval;
    store_close(s);
    return 0;
}

static int ledger_get_verb(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    get_out_t o = {0};
    char lb[LEDGER_JID_MAX + 1], rb[LEDGER_JID_MAX + 1];
    const char *local, *remote;
    int ret = cli_args_parse(&a, get_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "ledger get [--local JID] [--remote JID] [--json]",
                       "Shows invitations (outbound subscribe/subscribed) the gateway recorded.",
                       get_opts);
        return 0;
    }
    if (a.n_pos)
        return cli_fail(CLI_EXIT_USAGE, "ledger get: unexpected argument \"%s\"", a.pos[0]);
    if ((ret = jid_opt(&a, "local", lb, sizeof(lb), &local)) ||
        (ret = jid_opt(&a, "remote", rb, sizeof(rb), &remote)))
        return ret;
    if ((ret = check_store(store_path, CLI_STORE_READ, &o.refresh_s)))
        return ret;
    o.json = cli_args_flag(&a, "json");
    o.now = (int64_t)time(NULL);
    buf_init(&o.b, 256u << 20);
    int rc = json_put_raw(&o.b, "{\"ledger\": [");
    if (!rc)
        rc = ledger_list(store_path, local, remote, emit, &o);
    if (rc) {
        ret = cli_finish(rc, NULL, "ledger get");
        goto out;
    }
    if (!o.n && local && remote) {
        ret = cli_fail(CLI_EXIT_NOTFOUND, "ledger: %s has not invited %s", local, remote);
        goto out;
    }
    if (o.json) {
        rc = json_put_raw(&o.b, o.n ? "\n]}\n" : "]}\n");
        ret = rc ? cli_finish(rc, NULL, "ledger get") : cli_write_stdout(&o.b);
    }
out:
    buf_free(&o.b);
    return ret;
}

static int ledger_remove_verb(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    char lb[LEDGER_JID_MAX + 1], rb[LEDGER_JID_MAX + 1];
    const char *local, *remote;
    uint32_t refresh_s;
    uint64_t removed = 0;
    int ret = cli_args_parse(&a, remove_opts, argc - 1, argv + 1);
    if (ret)
        return ret;
    if (cli_args_flag(&a, "help")) {
        cli_print_help(stdout, "ledger remove --local JID [--remote JID] | --remote JID | --all",
                       "Removes invitations: an uninvited PublicUnverified user is refused again.",
                       remove_opts);
        return 0;
    }
    if (a.n_pos)
        return cli_fail(CLI_EXIT_USAGE, "ledger remove: unexpected argument \"%s\"", a.pos[0]);
    if ((ret = jid_opt(&a, "local", lb, sizeof(lb), &local)) ||
        (ret = jid_opt(&a, "remote", rb, sizeof(rb), &remote)))
        return ret;
    bool all = cli_args_flag(&a, "all");
    if (all && (local || remote))
        return cli_fail(CLI_EXIT_USAGE, "ledger remove: --all excludes --local and --remote");
    if (!all && !local && !remote)
        return cli_fail(CLI_EXIT_USAGE, "ledger remove: give --local and/or --remote, or --all");
    if ((ret = check_store(store_path, CLI_STORE_WRITE, &refresh_s)))
        return ret;
    int rc = ledger_remove(store_path, local, remote, &removed);
    if (rc == FG_ENOTFOUND)
        return cli_fail(CLI_EXIT_NOTFOUND, "ledger: no invitation matches");
    if (rc)
        return cli_finish(rc, NULL, "ledger remove");

    /* Audited like every operator change (its own transaction, after the removal). */
    store_t *s = NULL;
    store_txn_t *t = NULL;
    store_ctx_t ctx = {.actor = cli_actor()};
    char subject[2 * LEDGER_JID_MAX + 16], after[48];
    snprintf(subject, sizeof(subject), "%s -> %s", local ? local : "*", remote ? remote : "*");
    snprintf(after, sizeof(after), "{\"removed\":%llu}", (unsigned long long)removed);
    if (store_open(store_path, 0, &s, NULL, 0) == 0 && store_txn_begin(s, true, &t) == 0) {
        if (store_txn_audit(t, &ctx, "ledger remove", subject, "null", after) == 0)
            store_txn_commit(t);
        else
            store_txn_abort(t);
    }
    store_close(s);
    printf("removed %llu invitation%s\n", (unsigned long long)removed, removed == 1 ? "" : "s");
    return CLI_EXIT_OK;
}

int cli_ledger_main(int argc, char **argv, const char *store_path)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: fedgate-admin ledger get [--local JID] [--remote JID] [--json]\n"
                   "       fedgate-admin ledger remove --local JID [--remote JID] | --remote JID "
                   "| --all\n");
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "get"))
        return ledger_get_verb(argc - 1, argv + 1, store_path);
    if (!strcmp(argv[1], "remove"))
        return ledger_remove_verb(argc - 1, argv + 1, store_path);
    return cli_fail(CLI_EXIT_USAGE, "ledger: unknown action \"%s\" (get, remove)", argv[1]);
}
