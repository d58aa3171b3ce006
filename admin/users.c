#include "admin/users.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "admin/cli_common.h"
#include "core/err.h"
#include "policy/store.h"

/* Value of a `users` record: "<version> <role> <argon2id hash string>". Text keeps it readable
   with mdb_dump; the hash string carries its own parameters and salt. */
#define USERS_RECORD_VERSION 1
#define USERS_RECORD_MAX     (crypto_pwhash_STRBYTES + 32)

const char *users_role_name(users_role_t r)
{
    return r == USERS_ROLE_ADMIN ? "admin" : "viewer";
}

int users_role_parse(const char *s, users_role_t *out)
{
    if (s && strcasecmp(s, "admin") == 0)
        *out = USERS_ROLE_ADMIN;
    else if (s && strcasecmp(s, "viewer") == 0)
        *out = USERS_ROLE_VIEWER;
    else
        return FG_EPARSE;
    return 0;
}

int users_name_check(const char *name, const char **why)
{
    size_t n = name ? strlen(name) : 0;
    *why = NULL;
    if (n == 0 || n > USERS_NAME_MAX) {
        *why = "an account name has 1 to 64 characters";
        return FG_EPARSE;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
            *why = "an account name has lower-case letters, digits, '.', '_' and '-', and starts "
                   "with a letter or digit";
            return FG_EPARSE;
        }
    }
    return 0;
}

static int password_check(const char *pw, const char **why)
{
    size_t n = strlen(pw);
    if (n < USERS_PASSWORD_MIN) {
        *why = "a password has at least 10 characters";
        return FG_EREFUSED;
    }
    if (n > USERS_PASSWORD_MAX) {
        *why = "a password has at most 1024 characters";
        return FG_EREFUSED;
    }
    return 0;
}

/* Parses a stored record. 0 or FG_ESTORE. */
static int record_parse(const void *val, size_t vlen, users_role_t *role, char *hash,
                        size_t hashlen)
{
    char rec[USERS_RECORD_MAX + 1];
    char rolename[16];
    int ver;
    if (vlen == 0 || vlen > USERS_RECORD_MAX)
        return FG_ESTORE;
    memcpy(rec, val, vlen);
    rec[vlen] = '\0';
    char *sp1 = strchr(rec, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp2 || sscanf(rec, "%d", &ver) != 1 || ver != USERS_RECORD_VERSION ||
        (size_t)(sp2 - sp1 - 1) >= sizeof(rolename))
        return FG_ESTORE;
    memcpy(rolename, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    rolename[sp2 - sp1 - 1] = '\0';
    if (users_role_parse(rolename, role) || strlen(sp2 + 1) >= hashlen)
        return FG_ESTORE;
    snprintf(hash, hashlen, "%s", sp2 + 1);
    return 0;
}

static int record_get(store_txn_t *t, const char *name, users_role_t *role, char *hash,
                      size_t hashlen)
{
    const void *val;
    size_t vlen;
    int ret = store_kv_get(t, STORE_DB_USERS, name, strlen(name), &val, &vlen);
    if (ret)
        return ret;
    return record_parse(val, vlen, role, hash, hashlen);
}

static int record_put(store_txn_t *t, const char *name, users_role_t role, const char *hash)
{
    char rec[USERS_RECORD_MAX + 1];
    int n =
        snprintf(rec, sizeof(rec), "%d %s %s", USERS_RECORD_VERSION, users_role_name(role), hash);
    if (n < 0 || (size_t)n >= sizeof(rec))
        return FG_ELIMIT;
    return store_kv_put(t, STORE_DB_USERS, name, strlen(name), rec, (size_t)n);
}

static int hash_password(const char *pw, char hash[crypto_pwhash_STRBYTES])
{
    if (sodium_init() < 0)
        return -EIO;
    /* INTERACTIVE limits (64 MiB, 2 passes) keep a sign-in under ~0.2 s on this class of machine,
       and the rate limit caps how many a client can ask for. */
    if (crypto_pwhash_str(hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                          crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
        return -ENOMEM;
    return 0;
}

static void audit_json(char *out, size_t outlen, const char *name, users_role_t role)
{
    snprintf(out, outlen, "{\"name\":\"%s\",\"role\":\"%s\"}", name, users_role_name(role));
}

int users_add(struct store *s, const char *actor, const char *name, users_role_t role,
              const char *password, const char **why)
{
    char hash[crypto_pwhash_STRBYTES];
    char after[160];
    store_txn_t *t = NULL;
    store_ctx_t ctx = {.actor = actor};
    const void *val;
    size_t vlen;
    int ret;

    if ((ret = users_name_check(name, why)) || (ret = password_check(password, why))) {
        ret = FG_EREFUSED;
        goto out;
    }
    if ((ret = hash_password(password, hash)))
        goto out;
    if ((ret = store_txn_begin(s, true, &t)))
        goto out;
    ret = store_kv_get(t, STORE_DB_USERS, name, strlen(name), &val, &vlen);
    if (ret == 0) {
        *why = "an account with this name exists";
        ret = FG_ECONFLICT;
        goto out;
    }
    if (ret != FG_ENOTFOUND)
        goto out;
    if ((ret = record_put(t, name, role, hash)))
        goto out;
    audit_json(after, sizeof(after), name, role);
    if ((ret = store_txn_audit(t, &ctx, "user add", name, "null", after)))
        goto out;
    ret = store_txn_commit(t);
    t = NULL;
out:
    if (t)
        store_txn_abort(t);
    sodium_memzero(hash, sizeof(hash));
    return ret;
}

int users_verify(struct store *s, const char *name, const char *password, users_role_t *role)
{
    /* A valid hash of a password nobody knows, checked when the account does not exist, so an
       unknown name costs the same time as a wrong password. */
    static char dummy[crypto_pwhash_STRBYTES];
    char hash[crypto_pwhash_STRBYTES];
    store_txn_t *t = NULL;
    bool found = false;
    int ret;

    if (sodium_init() < 0)
        return -EIO;
    if (!dummy[0] && hash_password("fedgate: no such account here", dummy))
        return -ENOMEM;
    if ((ret = store_txn_begin(s, false, &t)))
        return ret;
    if (strlen(name) <= USERS_NAME_MAX && record_get(t, name, role, hash, sizeof(hash)) == 0)
        found = true;
    store_txn_abort(t);
    if (!found)
        snprintf(hash, sizeof(hash), "%s", dummy);
    ret = crypto_pwhash_str_verify(hash, password, strlen(password)) == 0 && found ? 0 : FG_EAUTH;
    sodium_memzero(hash, sizeof(hash));
    return ret;
}

int users_get(struct store *s, const char *name, users_role_t *role,
              unsigned char stamp[USERS_STAMP_LEN])
{
    char hash[crypto_pwhash_STRBYTES];
    store_txn_t *t = NULL;
    int ret = store_txn_begin(s, false, &t);
    if (ret)
        return ret;
    ret = record_get(t, name, role, hash, sizeof(hash));
    store_txn_abort(t);
    if (!ret && stamp)
        crypto_generichash(stamp, USERS_STAMP_LEN, (const unsigned char *)hash, strlen(hash), NULL,
                           0);
    sodium_memzero(hash, sizeof(hash));
    return ret;
}

int users_get_role(struct store *s, const char *name, users_role_t *role)
{
    return users_get(s, name, role, NULL);
}

/* ---- the `user` verb ---- */

static const cli_opt_t user_opts[] = {
    {"role", CLI_OPT_VALUE, "admin|viewer", "the account's role: admin changes, viewer only looks"},
    {"password-file", CLI_OPT_VALUE, "FILE", "read the password from the first line of FILE"},
    {"generate", CLI_OPT_FLAG, NULL, "generate a random password and print it once"},
    {"json", CLI_OPT_FLAG, NULL, "list as JSON"},
    {"help", CLI_OPT_FLAG, NULL, "show this help"},
    {NULL, 0, NULL, NULL},
};

static const char user_usage[] =
    "user add NAME --role admin|viewer [--password-file F | --generate]\n"
    "       fedgate-admin user passwd NAME [--password-file F | --generate]\n"
    "       fedgate-admin user role NAME admin|viewer\n"
    "       fedgate-admin user remove NAME\n"
    "       fedgate-admin user list [--json]";

static int read_password_file(const char *path, char *out, size_t outlen)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f)
        return cli_fail(CLI_EXIT_USAGE, "--password-file %s: %s", path, strerror(errno));
    bool ok = fgets(out, (int)outlen, f) != NULL;
    if (f != stdin)
        fclose(f);
    if (!ok)
        return cli_fail(CLI_EXIT_REFUSED, "--password-file %s: empty file", path);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int prompt_line(const char *prompt, char *out, size_t outlen)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    struct termios old, quiet;
    bool restore = false;
    int ret = CLI_EXIT_OK;
    FILE *f = NULL;

    if (fd < 0)
        return cli_fail(CLI_EXIT_USAGE, "no terminal to ask for a password: use --password-file "
                                        "or --generate");
    f = fdopen(fd, "r+");
    if (!f) {
        close(fd);
        return cli_fail(CLI_EXIT_STORE, "terminal: %s", strerror(errno));
    }
    if (tcgetattr(fd, &old) == 0) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        restore = tcsetattr(fd, TCSAFLUSH, &quiet) == 0;
    }
    fputs(prompt, f);
    fflush(f);
    if (!fgets(out, (int)outlen, f))
        ret = cli_fail(CLI_EXIT_USAGE, "no password given");
    out[strcspn(out, "\r\n")] = '\0';
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    fputs("\n", f);
    fclose(f);
    return ret;
}

/* Fills pw from --password-file, --generate or the terminal. *generated says to print it. */
static int get_password(const cli_args_t *a, char *pw, size_t pwlen, bool *generated)
{
    const char *file = cli_args_value(a, "password-file");
    *generated = false;
    if (file && cli_args_flag(a, "generate"))
        return cli_fail(CLI_EXIT_USAGE, "--password-file and --generate exclude each other");
    if (file)
        return read_password_file(file, pw, pwlen);
    if (cli_args_flag(a, "generate")) {
        uint8_t raw[USERS_GENERATED_LEN * 3 / 4];
        if (sodium_init() < 0)
            return cli_fail(CLI_EXIT_STORE, "no randomness available");
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(pw, pwlen, raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        sodium_memzero(raw, sizeof(raw));
        *generated = true;
        return 0;
    }
    char again[USERS_PASSWORD_MAX + 2];
    int ret = prompt_line("Password: ", pw, pwlen);
    if (!ret)
        ret = prompt_line("Password again: ", again, sizeof(again));
    if (!ret && strcmp(pw, again) != 0)
        ret = cli_fail(CLI_EXIT_REFUSED, "the two passwords differ");
    sodium_memzero(again, sizeof(again));
    return ret;
}

static int exit_for(int err, const char *name, const char *why)
{
    switch (err) {
    case 0:
        return CLI_EXIT_OK;
    case FG_ENOTFOUND:
        return cli_fail(CLI_EXIT_NOTFOUND, "user %s: no such account", name);
    case FG_ECONFLICT:
        return cli_fail(CLI_EXIT_EXISTS, "user %s: %s", name, why ? why : "exists");
    case FG_EREFUSED:
    case FG_EPARSE:
        return cli_fail(CLI_EXIT_REFUSED, "user %s: %s", name, why ? why : fg_strerror(err));
    default:
        return cli_fail(CLI_EXIT_STORE, "user %s: %s", name, fg_strerror(err));
    }
}

/* passwd / role / remove: one read-modify-write transaction with its audit record. */
typedef enum { EDIT_PASSWD, EDIT_ROLE, EDIT_REMOVE } edit_kind_t;

static int user_edit(store_t *s, edit_kind_t kind, const char *name, users_role_t new_role,
                     const char *password, const char **why)
{
    char hash[crypto_pwhash_STRBYTES];
    char newhash[crypto_pwhash_STRBYTES];
    char before[160], after[160];
    store_ctx_t ctx = {.actor = NULL};
    store_txn_t *t = NULL;
    users_role_t role;
    const char *verb = kind == EDIT_PASSWD ? "user passwd"
                       : kind == EDIT_ROLE ? "user role"
                                           : "user remove";
    int ret;

    if (kind == EDIT_PASSWD) {
        if ((ret = password_check(password, why)))
            goto out;
        if ((ret = hash_password(password, newhash)))
            goto out;
    }
    if ((ret = store_txn_begin(s, true, &t)))
        goto out;
    if ((ret = record_get(t, name, &role, hash, sizeof(hash))))
        goto out;
    audit_json(before, sizeof(before), name, role);
    if (kind == EDIT_PASSWD)
        ret = record_put(t, name, role, newhash);
    else if (kind == EDIT_ROLE)
        ret = record_put(t, name, new_role, hash);
    else
        ret = store_kv_del(t, STORE_DB_USERS, name, strlen(name));
    if (ret)
        goto out;
    if (kind == EDIT_REMOVE)
        snprintf(after, sizeof(after), "null");
    else
        audit_json(after, sizeof(after), name, kind == EDIT_ROLE ? new_role : role);
    if ((ret = store_txn_audit(t, &ctx, verb, name, before, after)))
        goto out;
    ret = store_txn_commit(t);
    t = NULL;
out:
    if (t)
        store_txn_abort(t);
    sodium_memzero(hash, sizeof(hash));
    sodium_memzero(newhash, sizeof(newhash));
    return ret;
}

typedef struct {
    bool json;
    size_t n;
} list_state_t;

static int list_cb(const void *key, size_t klen, const void *val, size_t vlen, void *arg)
{
    list_state_t *st = arg;
    char name[USERS_NAME_MAX + 1];
    char hash[crypto_pwhash_STRBYTES];
    users_role_t role;
    if (klen > USERS_NAME_MAX)
        return 0;
    memcpy(name, key, klen);
    name[klen] = '\0';
    if (record_parse(val, vlen, &role, hash, sizeof(hash)))
        return 0;
    if (st->json) {
        printf("%s{\"name\":", st->n ? "," : "");
        cli_json_string(stdout, name);
        printf(",\"role\":\"%s\"}", users_role_name(role));
    } else {
        printf("%-*s %s\n", USERS_NAME_MAX < 24 ? USERS_NAME_MAX : 24, name, users_role_name(role));
    }
    st->n++;
    return 0;
}

int users_main(int argc, char **argv, const char *store_path)
{
    cli_args_t a;
    char pw[USERS_PASSWORD_MAX + 2] = "";
    char err[512] = "";
    const char *why = NULL;
    store_t *s = NULL;
    users_role_t role = USERS_ROLE_VIEWER;
    bool generated = false;
    int ret;

    if ((ret = cli_args_parse(&a, user_opts, argc - 1, argv + 1)))
        return ret;
    if (cli_args_flag(&a, "help") || a.n_pos == 0) {
        cli_print_help(a.n_pos ? stdout : stderr, user_usage,
                       "Control panel accounts (roles: admin, viewer).", user_opts);
        return a.n_pos || cli_args_flag(&a, "help") ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    const char *sub = a.pos[0];
    const char *name = a.n_pos > 1 ? a.pos[1] : NULL;
    bool is_list = strcmp(sub, "list") == 0;
    if (!is_list && strcmp(sub, "add") && strcmp(sub, "passwd") && strcmp(sub, "role") &&
        strcmp(sub, "remove"))
        return cli_fail(CLI_EXIT_USAGE,
                        "user: unknown command '%s' (add, passwd, role, remove, "
                        "list)",
                        sub);
    if (!is_list && !name)
        return cli_fail(CLI_EXIT_USAGE, "user %s: the account NAME is missing", sub);
    if (a.n_pos > (strcmp(sub, "role") == 0 ? 3u : is_list ? 1u : 2u))
        return cli_fail(CLI_EXIT_USAGE, "user %s: too many arguments", sub);
    if (name && users_name_check(name, &why))
        return cli_fail(CLI_EXIT_REFUSED, "user %s: %s", name, why);
    if (strcmp(sub, "add") == 0) {
        if (users_role_parse(cli_args_value(&a, "role"), &role))
            return cli_fail(CLI_EXIT_USAGE, "user add: --role admin or --role viewer is needed");
    } else if (strcmp(sub, "role") == 0) {
        const char *r = a.n_pos > 2 ? a.pos[2] : cli_args_value(&a, "role");
        if (users_role_parse(r, &role))
            return cli_fail(CLI_EXIT_USAGE, "user role: give the new role, admin or viewer");
    }
    if (strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0)
        if ((ret = get_password(&a, pw, sizeof(pw), &generated)))
            goto out;

    if ((ret = store_open(store_path, is_list ? STORE_READONLY : 0, &s, err, sizeof(err)))) {
        ret = cli_fail(CLI_EXIT_STORE, "%s", err[0] ? err : fg_strerror(ret));
        goto out;
    }
    if (is_list) {
        list_state_t st = {.json = cli_args_flag(&a, "json")};
        store_txn_t *t;
        if ((ret = store_txn_begin(s, false, &t))) {
            ret = cli_fail(CLI_EXIT_STORE, "users: %s", fg_strerror(ret));
            goto out;
        }
        if (st.json)
            printf("[");
        ret = store_kv_iterate(t, STORE_DB_USERS, NULL, 0, list_cb, &st);
        store_txn_abort(t);
        if (st.json)
            printf("]\n");
        ret = ret ? cli_fail(CLI_EXIT_STORE, "users: %s", fg_strerror(ret)) : CLI_EXIT_OK;
        goto out;
    }
    if (strcmp(sub, "add") == 0)
        ret = users_add(s, NULL, name, role, pw, &why);
    else if (strcmp(sub, "passwd") == 0)
        ret = user_edit(s, EDIT_PASSWD, name, role, pw, &why);
    else if (strcmp(sub, "role") == 0)
        ret = user_edit(s, EDIT_ROLE, name, role, NULL, &why);
    else
        ret = user_edit(s, EDIT_REMOVE, name, role, NULL, &why);
    ret = exit_for(ret, name, why);
    if (ret == CLI_EXIT_OK && generated)
        printf("%s\n", pw);
out:
    if (s)
        store_close(s);
    sodium_memzero(pw, sizeof(pw));
    return ret;
}
