#include "admin/web_session.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/err.h"

void web_sessions_init(web_sessions_t *ss, uint32_t idle_s, uint32_t max_s)
{
    memset(ss, 0, sizeof(*ss));
    ss->idle_s = idle_s ? idle_s : WEB_SESSION_IDLE_S;
    ss->max_s = max_s ? max_s : WEB_SESSION_MAX_S;
}

uint64_t web_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void random_token(char *out)
{
    uint8_t raw[32];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(out, WEB_TOKEN_LEN + 1, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
}

static void token_hash(const char *token, uint8_t out[32])
{
    crypto_generichash(out, 32, (const unsigned char *)token, strlen(token), NULL, 0);
}

int web_session_create(web_sessions_t *ss, const char *user, const unsigned char *stamp,
                       char *token, web_session_t *out)
{
    uint64_t now = web_now_ms();
    web_session_t *slot = NULL;

    if (sodium_init() < 0)
        return -EIO;
    for (size_t i = 0; i < WEB_SESSIONS_MAX; i++) {
        web_session_t *s = &ss->s[i];
        if (!s->used) {
            slot = s;
            break;
        }
        if (!slot || s->seen_ms < slot->seen_ms)
            slot = s;
    }
    memset(slot, 0, sizeof(*slot));
    random_token(token);
    token_hash(token, slot->id_hash);
    snprintf(slot->user, sizeof(slot->user), "%s", user);
    random_token(slot->csrf);
    if (stamp)
        memcpy(slot->stamp, stamp, USERS_STAMP_LEN);
    slot->created_ms = slot->seen_ms = now;
    slot->used = true;
    *out = *slot;
    return 0;
}

static web_session_t *lookup(web_sessions_t *ss, const char *token)
{
    uint8_t h[32];
    if (!token || strlen(token) != WEB_TOKEN_LEN)
        return NULL;
    token_hash(token, h);
    for (size_t i = 0; i < WEB_SESSIONS_MAX; i++)
        if (ss->s[i].used && sodium_memcmp(ss->s[i].id_hash, h, sizeof(h)) == 0)
            return &ss->s[i];
    return NULL;
}

int web_session_find(web_sessions_t *ss, const char *token, uint64_t now_ms, web_session_t *out)
{
    web_session_t *s = lookup(ss, token);
    if (!s)
        return FG_ENOTFOUND;
    uint64_t idle = now_ms > s->seen_ms ? now_ms - s->seen_ms : 0;
    uint64_t age = now_ms > s->created_ms ? now_ms - s->created_ms : 0;
    if (idle >= (uint64_t)ss->idle_s * 1000u || age >= (uint64_t)ss->max_s * 1000u) {
        memset(s, 0, sizeof(*s));
        return FG_ENOTFOUND;
    }
    if (now_ms > s->seen_ms)
        s->seen_ms = now_ms;
    *out = *s;
    return 0;
}

void web_session_end(web_sessions_t *ss, const char *token)
{
    web_session_t *s = lookup(ss, token);
    if (s)
        memset(s, 0, sizeof(*s));
}

void web_session_end_user(web_sessions_t *ss, const char *user)
{
    for (size_t i = 0; i < WEB_SESSIONS_MAX; i++)
        if (ss->s[i].used && strcmp(ss->s[i].user, user) == 0)
            memset(&ss->s[i], 0, sizeof(ss->s[i]));
}

bool web_session_csrf_ok(const web_session_t *s, const char *header)
{
    if (!header || strlen(header) != WEB_TOKEN_LEN || !s->csrf[0])
        return false;
    return sodium_memcmp(s->csrf, header, WEB_TOKEN_LEN) == 0;
}

/* The entry for key, created (evicting the stalest) when `create`. */
static web_rl_entry_t *rl_entry(web_sessions_t *ss, const char *prefix, const char *what,
                                uint64_t now_ms, bool create)
{
    char key[sizeof(ss->rl[0].key)];
    web_rl_entry_t *victim = NULL;
    snprintf(key, sizeof(key), "%s%s", prefix, what ? what : "");
    for (size_t i = 0; i < WEB_RL_ENTRIES; i++) {
        web_rl_entry_t *e = &ss->rl[i];
        if (e->key[0] && strcmp(e->key, key) == 0) {
            if (now_ms - e->window_start_ms >= (uint64_t)WEB_RL_WINDOW_S * 1000u) {
                e->window_start_ms = now_ms;
                e->failures = 0;
            }
            return e;
        }
        if (!victim || !e->key[0] ||
            (victim->key[0] && e->window_start_ms < victim->window_start_ms))
            victim = e;
    }
    if (!create)
        return NULL;
    memset(victim, 0, sizeof(*victim));
    snprintf(victim->key, sizeof(victim->key), "%s", key);
    victim->window_start_ms = now_ms;
    return victim;
}

static unsigned rl_wait(const web_rl_entry_t *e, uint64_t now_ms)
{
    uint64_t end = e->window_start_ms + (uint64_t)WEB_RL_WINDOW_S * 1000u;
    return end > now_ms ? (unsigned)((end - now_ms + 999) / 1000) : 1;
}

int web_rl_check(web_sessions_t *ss, const char *addr, const char *user, uint64_t now_ms,
                 unsigned *retry_after_s)
{
    web_rl_entry_t *a = rl_entry(ss, "a:", addr, now_ms, false);
    web_rl_entry_t *u = rl_entry(ss, "u:", user, now_ms, false);
    unsigned wait = 0;
    if (a && a->failures >= WEB_RL_ADDR_FAILURES)
        wait = rl_wait(a, now_ms);
    if (u && u->failures >= WEB_RL_USER_FAILURES && rl_wait(u, now_ms) > wait)
        wait = rl_wait(u, now_ms);
    if (!wait)
        return 0;
    *retry_after_s = wait;
    return FG_ELIMIT;
}

void web_rl_failure(web_sessions_t *ss, const char *addr, const char *user, uint64_t now_ms)
{
    web_rl_entry_t *a = rl_entry(ss, "a:", addr, now_ms, true);
    a->failures++;
    web_rl_entry_t *u = rl_entry(ss, "u:", user, now_ms, true);
    u->failures++;
}

void web_rl_success(web_sessions_t *ss, const char *addr, uint64_t now_ms)
{
    web_rl_entry_t *a = rl_entry(ss, "a:", addr, now_ms, false);
    if (a)
        a->failures = 0;
}
