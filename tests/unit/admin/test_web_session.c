/* Sessions, CSRF tokens and the sign-in rate limit of the control panel (admin/web_session.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/web_session.h"
#include "core/err.h"

static web_sessions_t *new_table(uint32_t idle, uint32_t max)
{
    web_sessions_t *ss = malloc(sizeof(*ss));
    assert_non_null(ss);
    web_sessions_init(ss, idle, max);
    return ss;
}

static void test_create_find_end(void **state)
{
    web_sessions_t *ss = new_table(0, 0);
    char tok[WEB_TOKEN_LEN + 1], tok2[WEB_TOKEN_LEN + 1];
    web_session_t s, found;

    assert_int_equal(ss->idle_s, WEB_SESSION_IDLE_S);
    assert_int_equal(web_session_create(ss, "alice", NULL, tok, &s), 0);
    assert_int_equal(strlen(tok), WEB_TOKEN_LEN);
    assert_int_equal(strlen(s.csrf), WEB_TOKEN_LEN);
    assert_string_not_equal(tok, s.csrf);
    assert_int_equal(web_session_create(ss, "bob", NULL, tok2, &s), 0);
    assert_string_not_equal(tok, tok2);

    assert_int_equal(web_session_find(ss, tok, web_now_ms(), &found), 0);
    assert_string_equal(found.user, "alice");
    /* The token itself is not kept, only its hash. */
    for (size_t i = 0; i < WEB_SESSIONS_MAX; i++)
        assert_null(memmem(&ss->s[i], sizeof(ss->s[i]), tok, WEB_TOKEN_LEN));
    /* A token of the right length that was never issued, a short one, none. */
    char fake[WEB_TOKEN_LEN + 1];
    memcpy(fake, tok, sizeof(fake));
    fake[0] = fake[0] == 'A' ? 'B' : 'A';
    assert_int_equal(web_session_find(ss, fake, web_now_ms(), &found), FG_ENOTFOUND);
    assert_int_equal(web_session_find(ss, "short", web_now_ms(), &found), FG_ENOTFOUND);
    assert_int_equal(web_session_find(ss, NULL, web_now_ms(), &found), FG_ENOTFOUND);

    web_session_end(ss, tok);
    assert_int_equal(web_session_find(ss, tok, web_now_ms(), &found), FG_ENOTFOUND);
    assert_int_equal(web_session_find(ss, tok2, web_now_ms(), &found), 0);
    web_session_end_user(ss, "bob");
    assert_int_equal(web_session_find(ss, tok2, web_now_ms(), &found), FG_ENOTFOUND);
    free(ss);
}

static void test_idle_and_absolute_expiry(void **state)
{
    web_sessions_t *ss = new_table(10, 25);
    char tok[WEB_TOKEN_LEN + 1];
    web_session_t s, found;
    assert_int_equal(web_session_create(ss, "alice", NULL, tok, &s), 0);
    uint64_t t0 = s.created_ms;

    /* Each request within the idle time keeps the session alive... */
    assert_int_equal(web_session_find(ss, tok, t0 + 9000, &found), 0);
    assert_int_equal(web_session_find(ss, tok, t0 + 18000, &found), 0);
    /* ...but never past the absolute limit. */
    assert_int_equal(web_session_find(ss, tok, t0 + 25000, &found), FG_ENOTFOUND);
    /* And once ended it stays ended. */
    assert_int_equal(web_session_find(ss, tok, t0 + 1000, &found), FG_ENOTFOUND);

    assert_int_equal(web_session_create(ss, "bob", NULL, tok, &s), 0);
    assert_int_equal(web_session_find(ss, tok, s.created_ms + 10000, &found), FG_ENOTFOUND);
    free(ss);
}

static void test_full_table_evicts_least_recent(void **state)
{
    web_sessions_t *ss = new_table(0, 0);
    char first[WEB_TOKEN_LEN + 1], tok[WEB_TOKEN_LEN + 1], last[WEB_TOKEN_LEN + 1];
    web_session_t s, found;
    assert_int_equal(web_session_create(ss, "first", NULL, first, &s), 0);
    for (int i = 1; i < WEB_SESSIONS_MAX; i++) {
        assert_int_equal(web_session_create(ss, "u", NULL, tok, &s), 0);
        ss->s[i].seen_ms += (uint64_t)i; /* a strict order of last use */
    }
    ss->s[0].seen_ms += 100000; /* "first" was used most recently */
    assert_int_equal(web_session_create(ss, "last", NULL, last, &s), 0);
    assert_int_equal(web_session_find(ss, first, ss->s[0].seen_ms, &found), 0);
    assert_int_equal(web_session_find(ss, last, web_now_ms(), &found), 0);
    size_t used = 0;
    for (size_t i = 0; i < WEB_SESSIONS_MAX; i++)
        used += ss->s[i].used;
    assert_int_equal(used, WEB_SESSIONS_MAX);
    free(ss);
}

static void test_csrf(void **state)
{
    web_sessions_t *ss = new_table(0, 0);
    char tok[WEB_TOKEN_LEN + 1], other[WEB_TOKEN_LEN + 1];
    web_session_t s, s2;
    assert_int_equal(web_session_create(ss, "alice", NULL, tok, &s), 0);
    assert_int_equal(web_session_create(ss, "alice", NULL, other, &s2), 0);
    assert_true(web_session_csrf_ok(&s, s.csrf));
    assert_false(web_session_csrf_ok(&s, s2.csrf)); /* another session's token */
    assert_false(web_session_csrf_ok(&s, NULL));
    assert_false(web_session_csrf_ok(&s, ""));
    assert_false(web_session_csrf_ok(&s, tok)); /* the cookie is not the CSRF token */
    char cut[WEB_TOKEN_LEN];
    memcpy(cut, s.csrf, WEB_TOKEN_LEN - 1);
    cut[WEB_TOKEN_LEN - 1] = '\0';
    assert_false(web_session_csrf_ok(&s, cut));
    web_session_t empty = {0};
    assert_false(web_session_csrf_ok(&empty, ""));
    free(ss);
}

static void test_rate_limit_per_address(void **state)
{
    web_sessions_t *ss = new_table(0, 0);
    unsigned wait = 0;
    uint64_t t = 1000000;
    for (int i = 0; i < WEB_RL_ADDR_FAILURES; i++) {
        assert_int_equal(web_rl_check(ss, "192.0.2.1", "alice", t, &wait), 0);
        web_rl_failure(ss, "192.0.2.1", "alice", t);
    }
    assert_int_equal(web_rl_check(ss, "192.0.2.1", "alice", t + 1000, &wait), FG_ELIMIT);
    assert_true(wait > 0 && wait <= WEB_RL_WINDOW_S);
    /* Any account from that address waits; another address may still try. */
    assert_int_equal(web_rl_check(ss, "192.0.2.1", "bob", t + 1000, &wait), FG_ELIMIT);
    assert_int_equal(web_rl_check(ss, "192.0.2.2", "alice", t + 1000, &wait), 0);
    /* The window passes. */
    assert_int_equal(web_rl_check(ss, "192.0.2.1", "alice", t + WEB_RL_WINDOW_S * 1000u, &wait), 0);
    free(ss);
}

static void test_rate_limit_per_account_and_success(void **state)
{
    web_sessions_t *ss = new_table(0, 0);
    unsigned wait = 0;
    uint64_t t = 5000000;
    char addr[32];
    /* Guesses for one account spread over many addresses still hit the account's limit. */
    for (int i = 0; i < WEB_RL_USER_FAILURES; i++) {
        snprintf(addr, sizeof(addr), "198.51.100.%d", i);
        assert_int_equal(web_rl_check(ss, addr, "admin", t, &wait), 0);
        web_rl_failure(ss, addr, "admin", t);
    }
    assert_int_equal(web_rl_check(ss, "203.0.113.9", "admin", t, &wait), FG_ELIMIT);
    assert_int_equal(web_rl_check(ss, "203.0.113.9", "viewer", t, &wait), 0);

    /* A correct password clears the address's count. */
    for (int i = 0; i < WEB_RL_ADDR_FAILURES - 1; i++)
        web_rl_failure(ss, "192.0.2.7", "viewer", t);
    web_rl_success(ss, "192.0.2.7", t);
    web_rl_failure(ss, "192.0.2.7", "viewer", t);
    assert_int_equal(web_rl_check(ss, "192.0.2.7", "viewer", t, &wait), 0);
    free(ss);
}

static void test_rate_limit_table_is_bounded(void **state)
{
    web_sessions_t *ss = new_table(0, 0);
    unsigned wait;
    char addr[32], user[32];
    /* Far more distinct keys than entries: the table recycles, nothing overflows. */
    for (int i = 0; i < 4 * WEB_RL_ENTRIES; i++) {
        snprintf(addr, sizeof(addr), "10.0.%d.%d", i / 256, i % 256);
        snprintf(user, sizeof(user), "user%d", i);
        web_rl_failure(ss, addr, user, 1000 + (uint64_t)i);
        assert_int_equal(web_rl_check(ss, addr, user, 1000 + (uint64_t)i, &wait), 0);
    }
    free(ss);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_find_end),
        cmocka_unit_test(test_idle_and_absolute_expiry),
        cmocka_unit_test(test_full_table_evicts_least_recent),
        cmocka_unit_test(test_csrf),
        cmocka_unit_test(test_rate_limit_per_address),
        cmocka_unit_test(test_rate_limit_per_account_and_success),
        cmocka_unit_test(test_rate_limit_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
