/* Control panel accounts (admin/users.c) against a throw-away store: argon2id hashes, roles,
   the `user` verb's exit codes, and audit records without the hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/users.h"
#include "core/err.h"
#include "policy/store.h"

typedef struct {
    char dir[512];
    char path[600];
    store_t *s;
} fixture_t;

static void rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1200];
    if (!d)
        return;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        if (e->d_type == DT_DIR)
            rmtree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    const char *base = getenv("TMPDIR");
    char err[256];
    report_t rep;
    store_ctx_t ctx = {.actor = "test"};
    snprintf(f->dir, sizeof(f->dir), "%s/fgusers.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/store", f->dir);
    assert_int_equal(store_open(f->path, STORE_CREATE, &f->s, err, sizeof(err)), 0);
    report_init(&rep, 0);
    assert_int_equal(store_init(f->s, &ctx, false, &rep), 0);
    free(ctx.change);
    report_free(&rep);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->s)
        store_close(f->s);
    rmtree(f->dir);
    free(f);
    return 0;
}

static void test_names_and_roles(void **state)
{
    const char *why;
    users_role_t r;
    assert_int_equal(users_name_check("admin", &why), 0);
    assert_int_equal(users_name_check("ops.team-1_a", &why), 0);
    assert_int_equal(users_name_check("", &why), FG_EPARSE);
    assert_non_null(why);
    assert_int_equal(users_name_check("Admin", &why), FG_EPARSE);
    assert_int_equal(users_name_check("-x", &why), FG_EPARSE);
    assert_int_equal(users_name_check("a b", &why), FG_EPARSE);
    assert_int_equal(users_name_check("a/b", &why), FG_EPARSE);
    char long_name[USERS_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[USERS_NAME_MAX + 1] = '\0';
    assert_int_equal(users_name_check(long_name, &why), FG_EPARSE);
    long_name[USERS_NAME_MAX] = '\0';
    assert_int_equal(users_name_check(long_name, &why), 0);
    assert_int_equal(users_role_parse("admin", &r), 0);
    assert_int_equal(r, USERS_ROLE_ADMIN);
    assert_int_equal(users_role_parse("Viewer", &r), 0);
    assert_int_equal(r, USERS_ROLE_VIEWER);
    assert_int_equal(users_role_parse("root", &r), FG_EPARSE);
    assert_int_equal(users_role_parse(NULL, &r), FG_EPARSE);
}

static void test_add_verify(void **state)
{
    fixture_t *f = *state;
    const char *why = NULL;
    users_role_t r = USERS_ROLE_VIEWER;

    assert_int_equal(users_add(f->s, "test", "alice", USERS_ROLE_ADMIN, "correct horse 1", &why),
                     0);
    assert_int_equal(users_verify(f->s, "alice", "correct horse 1", &r), 0);
    assert_int_equal(r, USERS_ROLE_ADMIN);
    assert_int_equal(users_verify(f->s, "alice", "correct horse 2", &r), FG_EAUTH);
    assert_int_equal(users_verify(f->s, "alice", "", &r), FG_EAUTH);
    assert_int_equal(users_verify(f->s, "nobody", "correct horse 1", &r), FG_EAUTH);
    assert_int_equal(users_get_role(f->s, "alice", &r), 0);
    assert_int_equal(users_get_role(f->s, "nobody", &r), FG_ENOTFOUND);
    unsigned char st1[USERS_STAMP_LEN], st2[USERS_STAMP_LEN];
    assert_int_equal(users_get(f->s, "alice", &r, st1), 0);
    assert_int_equal(users_get(f->s, "alice", &r, st2), 0);
    assert_memory_equal(st1, st2, USERS_STAMP_LEN);

    assert_int_equal(users_add(f->s, "test", "alice", USERS_ROLE_VIEWER, "another pass", &why),
                     FG_ECONFLICT);
    assert_int_equal(users_add(f->s, "test", "bob", USERS_ROLE_VIEWER, "short", &why), FG_EREFUSED);
    assert_non_null(why);
    assert_int_equal(users_add(f->s, "test", "Bad Name", USERS_ROLE_VIEWER, "long enough!", &why),
                     FG_EREFUSED);
    assert_int_equal(users_get_role(f->s, "bob", &r), FG_ENOTFOUND);
}

static int find_hash_cb(const store_audit_t *a, void *arg)
{
    int *n = arg;
    if (strcmp(a->verb, "user add") == 0) {
        (*n)++;
        assert_null(strstr(a->after, "argon2"));
        assert_non_null(strstr(a->after, "\"role\":\"viewer\""));
        assert_string_equal(a->actor, "web:root");
    }
    return 0;
}

static void test_stored_as_argon2id_and_audited(void **state)
{
    fixture_t *f = *state;
    const char *why;
    store_txn_t *t;
    const void *val;
    size_t vlen;
    int n = 0;
    assert_int_equal(
        users_add(f->s, "web:root", "carol", USERS_ROLE_VIEWER, "carol's secret", &why), 0);
    assert_int_equal(store_txn_begin(f->s, false, &t), 0);
    assert_int_equal(store_kv_get(t, STORE_DB_USERS, "carol", 5, &val, &vlen), 0);
    assert_non_null(memmem(val, vlen, "$argon2id$", 10));
    assert_null(memmem(val, vlen, "carol's secret", 14));
    store_txn_abort(t);
    assert_int_equal(store_audit_list(f->s, 0, find_hash_cb, &n), 0);
    assert_int_equal(n, 1);
}

static int run_user(fixture_t *f, const char *a1, const char *a2, const char *a3, const char *a4,
                    const char *a5, const char *a6)
{
    char *argv[8] = {"user",     (char *)a1, (char *)a2, (char *)a3,
                     (char *)a4, (char *)a5, (char *)a6, NULL};
    int argc = 1;
    while (argc < 7 && argv[argc])
        argc++;
    return users_main(argc, argv, f->path);
}

static void test_user_verb(void **state)
{
    fixture_t *f = *state;
    char pwfile[700];
    users_role_t r;
    FILE *fp;

    /* The verb opens the store itself; release ours so nothing is shared. */
    store_close(f->s);
    f->s = NULL;
    snprintf(pwfile, sizeof(pwfile), "%s/pw", f->dir);
    fp = fopen(pwfile, "w");
    assert_non_null(fp);
    fputs("from a file 123\n", fp);
    fclose(fp);

    assert_int_equal(run_user(f, "add", "dave", "--role", "admin", "--password-file", pwfile), 0);
    assert_int_equal(run_user(f, "add", "dave", "--role", "admin", "--password-file", pwfile), 4);
    assert_int_equal(run_user(f, "add", "erin", "--role", "boss", "--password-file", pwfile), 2);
    assert_int_equal(run_user(f, "add", "erin", "--password-file", pwfile, NULL, NULL), 2);
    assert_int_equal(run_user(f, "add", "Erin", "--role", "viewer", "--password-file", pwfile), 1);
    assert_int_equal(run_user(f, "frobnicate", "x", NULL, NULL, NULL, NULL), 2);
    assert_int_equal(run_user(f, "add", "gen", "--role", "viewer", "--generate", NULL), 0);
    assert_int_equal(run_user(f, "role", "dave", "viewer", NULL, NULL, NULL), 0);
    assert_int_equal(run_user(f, "role", "nobody", "viewer", NULL, NULL, NULL), 3);
    assert_int_equal(run_user(f, "list", NULL, NULL, NULL, NULL, NULL), 0);

    char err[256];
    unsigned char before[USERS_STAMP_LEN], after[USERS_STAMP_LEN];
    assert_int_equal(store_open(f->path, 0, &f->s, err, sizeof(err)), 0);
    assert_int_equal(users_verify(f->s, "dave", "from a file 123", &r), 0);
    assert_int_equal(r, USERS_ROLE_VIEWER);
    assert_int_equal(users_get(f->s, "dave", &r, before), 0);
    store_close(f->s);
    f->s = NULL;

    /* A new password: the old one fails, the new one works, and the stamp moved on. */
    assert_int_equal(run_user(f, "passwd", "dave", "--generate", NULL, NULL, NULL), 0);
    assert_int_equal(store_open(f->path, 0, &f->s, err, sizeof(err)), 0);
    assert_int_equal(users_verify(f->s, "dave", "from a file 123", &r), FG_EAUTH);
    assert_int_equal(users_get(f->s, "dave", &r, after), 0);
    assert_memory_not_equal(before, after, USERS_STAMP_LEN);
    store_close(f->s);
    f->s = NULL;

    assert_int_equal(run_user(f, "remove", "dave", NULL, NULL, NULL, NULL), 0);
    assert_int_equal(run_user(f, "remove", "dave", NULL, NULL, NULL, NULL), 3);
    assert_int_equal(store_open(f->path, 0, &f->s, err, sizeof(err)), 0);
    assert_int_equal(users_verify(f->s, "dave", "from a file 123", &r), FG_EAUTH);
    assert_int_equal(users_get_role(f->s, "gen", &r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_roles),
        cmocka_unit_test_setup_teardown(test_add_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_as_argon2id_and_audited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_verb, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
