#include "admin/cli_common.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"

static int find_opt(const cli_opt_t *opts, const char *name, size_t len)
{
    for (int i = 0; opts[i].name; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return i;
    return -1;
}

static int add_occ(cli_args_t *a, int opt, const char *value)
{
    if (a->n_occ >= CLI_MAX_OCCURRENCES)
        return cli_fail(CLI_EXIT_USAGE, "too many options (at most %d)", CLI_MAX_OCCURRENCES);
    a->occ[a->n_occ].opt = opt;
    a->occ[a->n_occ].value = value;
    a->n_occ++;
    return 0;
}

int cli_args_parse(cli_args_t *a, const cli_opt_t *opts, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->opts = opts;
    while (opts[a->n_opts].name)
        a->n_opts++;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!only_pos && strcmp(s, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (!only_pos && (strcmp(s, "-h") == 0 || strcmp(s, "-?") == 0))
            s = "--help";
        if (!only_pos && s[0] == '-' && s[1] == '-' && s[2]) {
            const char *name = s + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            int o = find_opt(opts, name, len);
            if (o < 0)
                return cli_fail(CLI_EXIT_USAGE, "unknown option --%.*s (see --help)", (int)len,
                                name);
            const char *value = NULL;
            if (opts[o].kind == CLI_OPT_FLAG) {
                if (eq)
                    return cli_fail(CLI_EXIT_USAGE, "option --%s takes no value", opts[o].name);
            } else if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return cli_fail(CLI_EXIT_USAGE, "option --%s needs a value (%s)", opts[o].name,
                                opts[o].metavar ? opts[o].metavar : "VALUE");
            }
            int rc = add_occ(a, o, value);
            if (rc)
                return rc;
            continue;
        }
        if (!only_pos && s[0] == '-' && s[1] != '\0')
            return cli_fail(CLI_EXIT_USAGE, "unknown option %s (see --help)", s);
        if (a->n_pos >= CLI_MAX_POSITIONALS)
            return cli_fail(CLI_EXIT_USAGE, "too many arguments");
        a->pos[a->n_pos++] = s;
    }
    return 0;
}

static int opt_index(const cli_args_t *a, const char *name)
{
    return find_opt(a->opts, name, strlen(name));
}

const char *cli_args_value(const cli_args_t *a, const char *name)
{
    int o = opt_index(a, name);
    const char *v = NULL;
    for (size_t i = 0; o >= 0 && i < a->n_occ; i++)
        if (a->occ[i].opt == o)
            v = a->occ[i].value;
    return v;
}

size_t cli_args_count(const cli_args_t *a, const char *name)
{
    int o = opt_index(a, name);
    size_t n = 0;
    for (size_t i = 0; o >= 0 && i < a->n_occ; i++)
        if (a->occ[i].opt == o)
            n++;
    return n;
}

bool cli_args_flag(const cli_args_t *a, const char *name)
{
    return cli_args_count(a, name) > 0;
}

int cli_args_once(const cli_args_t *a, const char *name)
{
    if (cli_args_count(a, name) > 1)
        return cli_fail(CLI_EXIT_USAGE, "option --%s given more than once", name);
    return 0;
}

int cli_actions_help(int argc, char **argv, const char *usage)
{
    if (argc >= 2 && strcmp(argv[1], "--help") != 0 && strcmp(argv[1], "-h") != 0 &&
        strcmp(argv[1], "help") != 0)
        return -1;
    fprintf(argc < 2 ? stderr : stdout, "usage: fedgate-admin %s ... (--help on each)\n", usage);
    return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
}

void cli_print_help(FILE *f, const char *usage, const char *summary, const cli_opt_t *opts)
{
    fprintf(f, "usage: fedgate-admin %s\n", usage);
    if (summary)
        fprintf(f, "\n%s\n", summary);
    if (!opts || !opts[0].name)
        return;
    fprintf(f, "\noptions:\n");
    size_t w = 0;
    for (int i = 0; opts[i].name; i++) {
        size_t l = strlen(opts[i].name) + (opts[i].metavar ? strlen(opts[i].metavar) + 1 : 0);
        if (l > w)
            w = l;
    }
    for (int i = 0; opts[i].name; i++) {
        char left[128];
        snprintf(left, sizeof(left), "%s%s%s", opts[i].name, opts[i].metavar ? " " : "",
                 opts[i].metavar ? opts[i].metavar : "");
        if (w > 28) /* long enum lists: help on its own line rather than a ragged table */
            fprintf(f, "  --%s\n        %s\n", left, opts[i].help ? opts[i].help : "");
        else
            fprintf(f, "  --%-*s  %s\n", (int)w, left, opts[i].help ? opts[i].help : "");
    }
}

int cli_fail(int code, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "error: %s\n", line);
    return code;
}

void cli_warn(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "warning: %s\n", line);
}

int cli_exit_from_err(int err)
{
    switch (err) {
    case 0:
        return CLI_EXIT_OK;
    case FG_EPARSE:
    case FG_EDOMAIN:
    case FG_EREFUSED:
    case FG_ELIMIT:
        return CLI_EXIT_REFUSED;
    case FG_ENOTFOUND:
        return CLI_EXIT_NOTFOUND;
    case FG_ECONFLICT:
        return CLI_EXIT_EXISTS;
    default:
        return CLI_EXIT_STORE;
    }
}

int cli_parse_u32(const char *s, uint32_t *out)
{
    if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
        return FG_EPARSE;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > UINT32_MAX)
        return FG_EPARSE;
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "$true", "yes", "on", "1"};
    static const char *const no[] = {"false", "$false", "no", "off", "0"};
    for (size_t i = 0; s && i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return FG_EPARSE;
}

void cli_list_add(cli_list_t *l, const char *name, const char *fmt, ...)
{
    if (l->n >= CLI_LIST_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *v = NULL;
    if (vasprintf(&v, fmt, ap) < 0)
        v = NULL;
    va_end(ap);
    l->name[l->n] = name;
    l->value[l->n] = v;
    l->n++;
}

void cli_list_print(cli_list_t *l, FILE *f)
{
    size_t w = 0;
    for (size_t i = 0; i < l->n; i++)
        if (strlen(l->name[i]) > w)
            w = strlen(l->name[i]);
    for (size_t i = 0; i < l->n; i++) {
        fprintf(f, "%-*s : %s\n", (int)w, l->name[i], l->value[i] ? l->value[i] : "");
        free(l->value[i]);
        l->value[i] = NULL;
    }
    l->n = 0;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

const char *cli_os_user(void)
{
    static char name[64];
    /* Only root's $SUDO_USER is believed: anyone else could name someone else in the log. */
    const char *sudo = getuid() == 0 ? getenv("SUDO_USER") : NULL;
    if (sudo && *sudo && strlen(sudo) < sizeof(name)) {
        snprintf(name, sizeof(name), "%s", sudo);
        return name;
    }
    struct passwd *pw = getpwuid(getuid());
    if (pw && pw->pw_name && strlen(pw->pw_name) < sizeof(name))
        snprintf(name, sizeof(name), "%s", pw->pw_name);
    else
        snprintf(name, sizeof(name), "uid:%u", (unsigned)getuid());
    return name;
}

const char *cli_actor(void)
{
    static char actor[80];
    snprintf(actor, sizeof(actor), "os:%s", cli_os_user());
    return actor;
}
