/*
 * The authorisation ledger: keys, values, the bounded queue and the group-commit writer thread.
 * The LMDB side is policy/store_ledger.c.
 *
 * The queue is two fixed arrays: producers append to the front one under a mutex; the writer
 * swaps front and back under the same mutex (O(1)) and applies the back one without holding it,
 * so a post waits at most for another post's copy, never for a transaction or an fsync. While
 * the writer commits (fsync, milliseconds), posts accumulate and become the next batch: batch
 * size adapts to load by itself.
 */
#include "policy/ledger.h"

#include "core/err.h"
#include "core/jid.h"
#include "policy/ledger_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- keys and values ---- */

int ledger_bare_jid(const char *jid, char *out, size_t outlen)
{
    jid_t j;
    if (!jid || jid_parse_str(jid, &j) != 0 || !j.local)
        return FG_EPARSE;
    size_t cap = outlen < LEDGER_JID_MAX + 1 ? outlen : LEDGER_JID_MAX + 1;
    int n = jid_bare(&j, out, cap);
    if (n < 0)
        return FG_ELIMIT;
    for (int i = 0; i < n; i++)
        if (out[i] >= 'A' && out[i] <= 'Z')
            out[i] = (char)(out[i] - 'A' + 'a');
    return n;
}

int ledger_bare_jid_trusted(const char *jid, char *out, size_t outlen)
{
    size_t n = 0;
    bool at = false;
    if (!jid || !outlen)
        return FG_EPARSE;
    for (const char *p = jid; *p && *p != '/'; p++, n++) {
        char c = *p;
        if (n >= LEDGER_JID_MAX || n + 1 >= outlen) {
            out[0] = '\0';
            return FG_ELIMIT;
        }
        at |= c == '@';
        out[n] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    /* One trailing dot of the domain is not part of it (RFC 7622 §3.2). */
    if (n && out[n - 1] == '.')
        n--;
    out[n] = '\0';
    return at && n && out[0] != '@' ? (int)n : FG_EPARSE;
}

int ledger_key(const char *local, const char *remote, char *key, size_t keylen)
{
    size_t l = local ? strlen(local) : 0, r = remote ? strlen(remote) : 0;
    if (!l || !r || l > LEDGER_JID_MAX || r > LEDGER_JID_MAX || l + 1 + r > keylen)
        return FG_ELIMIT;
    memcpy(key, local, l);
    key[l] = '\0';
    memcpy(key + l + 1, remote, r);
    return (int)(l + 1 + r);
}

void ledger_value_encode(const ledger_entry_t *e, uint8_t out[LEDGER_VALUE_LEN])
{
    uint64_t t = (uint64_t)e->invited_at, m = (uint64_t)e->messaged_at;
    out[0] = LEDGER_VALUE_VERSION;
    out[1] = e->answered ? LEDGER_F_ANSWERED : 0;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(t >> (8 * i));
        out[10 + i] = (uint8_t)(m >> (8 * i));
    }
}

int ledger_value_decode(const void *v, size_t len, ledger_entry_t *out)
{
    const uint8_t *b = v;
    if (len < 1)
        return FG_EPARSE;
    if (b[0] > LEDGER_VALUE_VERSION)
        return FG_EVERSION;
    if (b[0] != LEDGER_VALUE_VERSION || len != LEDGER_VALUE_LEN || (b[1] & ~LEDGER_F_ANSWERED))
        return FG_EPARSE;
    uint64_t t = 0, m = 0;
    for (int i = 7; i >= 0; i--) {
        t = t << 8 | b[2 + i];
        m = m << 8 | b[10 + i];
    }
    out->invited_at = (int64_t)t;
    out->messaged_at = (int64_t)m;
    out->answered = b[1] & LEDGER_F_ANSWERED;
    return 0;
}

ledger_answer_t ledger_judge(const ledger_entry_t *e, int64_t now, uint32_t refresh_s)
{
    if (e->answered)
        return LEDGER_VALID;
    /* A clock stepped back leaves a time in the future: still valid, not expired. */
    if (e->invited_at && now - e->invited_at < (int64_t)refresh_s)
        return LEDGER_VALID;
    if (e->messaged_at && now - e->messaged_at < (int64_t)refresh_s)
        return LEDGER_CONVERSATION;
    return LEDGER_EXPIRED;
}

const char *ledger_answer_name(ledger_answer_t a)
{
    switch (a) {
    case LEDGER_VALID:
        return "valid";
    case LEDGER_EXPIRED:
        return "expired";
    case LEDGER_CONVERSATION:
        return "conversation";
    default:
        return "absent";
    }
}

/* ---- writer ---- */

struct ledger_writer {
    ledger_db_t *db;
    ledger_writer_config_t cfg;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* writer waits for work */
    pthread_cond_t done; /* flushers wait for commits */
    ledger_op_t *front, *back;
    size_t n; /* operations in front */
    bool sleeping, stopping;
    uint64_t seq_posted;    /* operations accepted so far */
    uint64_t seq_committed; /* operations whose batch finished (committed or failed) */
    int last_err;
    ledger_writer_stats_t st;
};

static void hist_add(ledger_writer_stats_t *st, size_t n)
{
    int b = 0;
    while (b < LEDGER_HIST_BUCKETS - 1 && ((size_t)2 << b) <= n)
        b++;
    st->hist[b]++;
}

static void *writer_main(void *arg)
{
    ledger_writer_t *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->n && !w->stopping) {
            w->sleeping = true;
            pthread_cond_wait(&w->wake, &w->lock);
            w->sleeping = false;
        }
        if (!w->n && w->stopping)
            break;
        ledger_op_t *batch = w->front;
        size_t n = w->n;
        w->front = w->back;
        w->back = batch;
        w->n = 0;
        uint64_t upto = w->seq_posted;
        pthread_mutex_unlock(&w->lock);

        int ret = 0;
        for (size_t i = 0; i < n; i += w->cfg.max_batch) {
            size_t m = n - i < w->cfg.max_batch ? n - i : w->cfg.max_batch;
            int rc = ledger_db_apply(w->db, batch + i, m);
            pthread_mutex_lock(&w->lock);
            if (rc) {
                w->st.failed += m;
                ret = rc;
            } else {
                w->st.committed += m;
            }
            w->st.batches++;
            if (m > w->st.max_batch)
                w->st.max_batch = m;
            hist_add(&w->st, m);
            pthread_mutex_unlock(&w->lock);
            if (w->cfg.on_commit)
                w->cfg.on_commit(w->cfg.arg, m, rc);
        }

        pthread_mutex_lock(&w->lock);
        w->seq_committed = upto;
        if (ret)
            w->last_err = ret;
        pthread_cond_broadcast(&w->done);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int ledger_writer_start(const char *dir, const ledger_writer_config_t *cfg, ledger_writer_t **out)
{
    ledger_writer_t *w = calloc(1, sizeof(*w));
    int ret;
    if (!w)
        return -ENOMEM;
    if (cfg)
        w->cfg = *cfg;
    if (!w->cfg.capacity)
        w->cfg.capacity = LEDGER_QUEUE_DEFAULT;
    if (!w->cfg.max_batch || w->cfg.max_batch > w->cfg.capacity)
        w->cfg.max_batch = w->cfg.capacity;
    w->front = calloc(w->cfg.capacity, sizeof(ledger_op_t));
    w->back = calloc(w->cfg.capacity, sizeof(ledger_op_t));
    if (!w->front || !w->back) {
        ret = -ENOMEM;
        goto fail;
    }
    if ((ret = ledger_db_open(dir, &w->db)))
        goto fail;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    pthread_cond_init(&w->done, NULL);
    ret = -pthread_create(&w->thread, NULL, writer_main, w);
    if (ret) {
        pthread_cond_destroy(&w->done);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        goto fail;
    }
    *out = w;
    return 0;
fail:
    ledger_db_close(w->db);
    free(w->front);
    free(w->back);
    free(w);
    return ret;
}

void ledger_writer_stop(ledger_writer_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
    ledger_db_close(w->db);
    free(w->front);
    free(w->back);
    free(w);
}

static int post(ledger_writer_t *w, ledger_op_kind_t kind, const char *local, const char *remote,
                int64_t t)
{
    int klen = 0;
    char key[LEDGER_KEY_MAX];
    if (kind != LEDGER_OP_PURGE && (klen = ledger_key(local, remote, key, sizeof(key))) < 0)
        return FG_EPARSE;
    pthread_mutex_lock(&w->lock);
    int ret = 0;
    if (w->stopping) {
        ret = FG_ESTALE;
    } else if (w->n == w->cfg.capacity) {
        w->st.refused++;
        ret = FG_ELIMIT;
    } else {
        ledger_op_t *op = &w->front[w->n++];
        op->kind = (uint8_t)kind;
        op->klen = (uint16_t)klen;
        op->t = t;
        memcpy(op->key, key, (size_t)klen);
        w->seq_posted++;
        w->st.posted++;
        /* Signal only a sleeping writer: a busy one takes the queue when its commit returns. */
        if (w->sleeping)
            pthread_cond_signal(&w->wake);
    }
    pthread_mutex_unlock(&w->lock);
    return ret;
}

int ledger_post_invite(ledger_writer_t *w, const char *local, const char *remote, int64_t now)
{
    return post(w, LEDGER_OP_INVITE, local, remote, now);
}

int ledger_post_message(ledger_writer_t *w, const char *local, const char *remote, int64_t now)
{
    return post(w, LEDGER_OP_MESSAGE, local, remote, now);
}

int ledger_post_answer(ledger_writer_t *w, const char *local, const char *remote, int64_t now)
{
    return post(w, LEDGER_OP_ANSWER, local, remote, now);
}

int ledger_post_remove(ledger_writer_t *w, const char *local, const char *remote)
{
    return post(w, LEDGER_OP_REMOVE, local, remote, 0);
}

int ledger_post_purge(ledger_writer_t *w, int64_t cutoff)
{
    return post(w, LEDGER_OP_PURGE, NULL, NULL, cutoff);
}

int ledger_writer_flush(ledger_writer_t *w)
{
    pthread_mutex_lock(&w->lock);
    uint64_t want = w->seq_posted;
    while (w->seq_committed < want)
        pthread_cond_wait(&w->done, &w->lock);
    int ret = w->last_err;
    w->last_err = 0;
    pthread_mutex_unlock(&w->lock);
    return ret;
}

void ledger_writer_stats(ledger_writer_t *w, ledger_writer_stats_t *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->st;
    pthread_mutex_unlock(&w->lock);
}
