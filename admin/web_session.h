/*
 * Control panel sessions, CSRF tokens and the login rate limit.
 *
 * A session is created by a successful sign-in and named by a random 256-bit token that only the
 * browser's HttpOnly, SameSite=Strict cookie holds; the server keeps the token's BLAKE2b hash, so
 * a memory dump does not hand out live cookies. Each session carries its own CSRF token, which
 * the page reads from GET /api/session and sends back in the X-CSRF-Token header on every change.
 * Sessions end after `idle_s` without a request, after `max_s` in any case, on sign-out, and when
 * `fedgate-admin serve` stops (they live in this process only).
 *
 * The rate limit counts failed sign-ins per client address and per account name in a fixed
 * window; past the limit every attempt is answered 429 with the seconds to wait, even with the
 * right password.
 *
 * Ownership: web_sessions_t is a fixed-size value owned by the server; nothing allocates.
 * Not thread-safe: the HTTP daemon calls it from its single thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "admin/users.h"

#define WEB_TOKEN_LEN        43 /* 32 random bytes, base64url without padding */
#define WEB_COOKIE_NAME      "fg_session"
#define WEB_SESSIONS_MAX     256
#define WEB_SESSION_IDLE_S   1800  /* default: 30 minutes without a request */
#define WEB_SESSION_MAX_S    43200 /* default: 12 hours after sign-in */
#define WEB_RL_ENTRIES       512
#define WEB_RL_WINDOW_S      300 /* failures are counted over five minutes */
#define WEB_RL_ADDR_FAILURES 5   /* per client address */
#define WEB_RL_USER_FAILURES 10  /* per account name, whatever the address */

typedef struct {
    bool used;
    uint8_t id_hash[32];
    char user[USERS_NAME_MAX + 1];
    char csrf[WEB_TOKEN_LEN + 1];
    unsigned char stamp[USERS_STAMP_LEN]; /* of the password hash at sign-in (users_get) */
    uint64_t created_ms;                  /* monotonic clock */
    uint64_t seen_ms;
} web_session_t;

typedef struct {
    char key[USERS_NAME_MAX + 8]; /* "a:<address>" or "u:<name>" */
    uint64_t window_start_ms;
    uint32_t failures;
} web_rl_entry_t;

typedef struct {
    web_session_t s[WEB_SESSIONS_MAX];
    web_rl_entry_t rl[WEB_RL_ENTRIES];
    uint32_t idle_s;
    uint32_t max_s;
} web_sessions_t;

/* idle_s / max_s of 0 take the defaults above. */
void web_sessions_init(web_sessions_t *ss, uint32_t idle_s, uint32_t max_s);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t web_now_ms(void);

/* New session for `user` signed in with the password whose stamp is given (NULL: zeroes); the
   cookie value goes to token (WEB_TOKEN_LEN + 1 bytes) and a copy of the session to *out. When the
   table is full the least recently used session ends. 0 or -errno (no randomness). */
int web_session_create(web_sessions_t *ss, const char *user, const unsigned char *stamp,
                       char *token, web_session_t *out);
/* Looks up the cookie value; an expired session is ended. On success refreshes its idle timer and
   copies it to *out. 0 or FG_ENOTFOUND. */
int web_session_find(web_sessions_t *ss, const char *token, uint64_t now_ms, web_session_t *out);
/* Ends the session named by token (sign-out). */
void web_session_end(web_sessions_t *ss, const char *token);
/* Ends every session of `user` (account removed or password changed from the panel). */
void web_session_end_user(web_sessions_t *ss, const char *user);

/* Constant-time comparison of the X-CSRF-Token header with the session's token. */
bool web_session_csrf_ok(const web_session_t *s, const char *header);

/* 0 when a sign-in from addr for user may be tried; FG_ELIMIT with *retry_after_s set when either
   has used up its failures for the current window. */
int web_rl_check(web_sessions_t *ss, const char *addr, const char *user, uint64_t now_ms,
                 unsigned *retry_after_s);
void web_rl_failure(web_sessions_t *ss, const char *addr, const char *user, uint64_t now_ms);
/* A correct password clears the address's count (not the account's). */
void web_rl_success(web_sessions_t *ss, const char *addr, uint64_t now_ms);
