/*
 * The partner-type and access-policy rules as one function over plain values. The table is in
 * docs/partner-types.md; comments here say why a row is what it is.
 */
#include "policy/decide.h"

#include <stdio.h>
#include <string.h>

decide_kind_t decide_kind(const stanza_t *st)
{
    const char *name = stanza_name(st), *type = stanza_type(st);
    if (!name)
        return DECIDE_K_OTHER;
    switch (name[0]) {
    case 'm':
        if (strcmp(name, "message") != 0)
            return DECIDE_K_OTHER;
        return type && !strcmp(type, "error") ? DECIDE_K_MESSAGE_ERROR : DECIDE_K_MESSAGE;
    case 'i':
        if (strcmp(name, "iq") != 0 || !type)
            return DECIDE_K_OTHER;
        if (!strcmp(type, "get") || !strcmp(type, "set"))
            return DECIDE_K_IQ;
        if (!strcmp(type, "result") || !strcmp(type, "error"))
            return DECIDE_K_IQ_REPLY;
        return DECIDE_K_OTHER;
    case 'p':
        if (strcmp(name, "presence") != 0)
            return DECIDE_K_OTHER;
        if (!type || !strcmp(type, "unavailable"))
            return DECIDE_K_PRESENCE;
        if (!strcmp(type, "subscribe"))
            return DECIDE_K_SUBSCRIBE;
        if (!strcmp(type, "subscribed"))
            return DECIDE_K_SUBSCRIBED;
        if (!strcmp(type, "unsubscribe"))
            return DECIDE_K_UNSUBSCRIBE;
        if (!strcmp(type, "unsubscribed"))
            return DECIDE_K_UNSUBSCRIBED;
        if (!strcmp(type, "probe"))
            return DECIDE_K_PROBE;
        if (!strcmp(type, "error"))
            return DECIDE_K_PRESENCE_ERROR;
        return DECIDE_K_OTHER;
    default:
        return DECIDE_K_OTHER;
    }
}

bool decide_needs_ledger(decide_dir_t dir, decide_kind_t kind, partner_type_t type)
{
    if (type != PARTNER_PUBLIC_UNVERIFIED)
        return false;
    if (dir == DECIDE_OUTBOUND)
        return kind == DECIDE_K_MESSAGE;
    return kind == DECIDE_K_MESSAGE || kind == DECIDE_K_SUBSCRIBE || kind == DECIDE_K_SUBSCRIBED;
}

uint32_t decide_ledger_interval(decide_dir_t dir, uint32_t refresh_s)
{
    return dir == DECIDE_OUTBOUND ? refresh_s / 2 : refresh_s;
}

static bool is_presence(decide_kind_t k)
{
    return k >= DECIDE_K_PRESENCE && k <= DECIDE_K_PRESENCE_ERROR;
}

/* Stanzas that must never be answered with an error (RFC 6120 §8.3.1). */
static bool unbounceable(decide_kind_t k)
{
    return k == DECIDE_K_MESSAGE_ERROR || k == DECIDE_K_IQ_REPLY || k == DECIDE_K_PRESENCE_ERROR ||
           k == DECIDE_K_OTHER;
}

static decide_t pass(decide_verdict_t v, decide_reason_t r)
{
    decide_t d = {.verdict = v, .reason = r};
    return d;
}

static decide_t refuse(decide_reason_t r, bool bounce, const char *condition)
{
    decide_t d = {.verdict = DECIDE_REFUSE, .reason = r, .bounce = bounce};
    if (bounce) {
        d.err_type = "cancel";
        d.condition = condition;
    }
    return d;
}

static decide_t outbound(const decide_in_t *in)
{
    /* Our user is told why: a not-allowed bounce, unless the stanza is itself an answer. */
    if (!in->access)
        return refuse(DECIDE_R_OUT_NO_ACCESS, !unbounceable(in->kind), "not-allowed");
    /* Status notes are never visible to public providers' users, whatever the presence type
       (a subscription request's <status/> is also a note). */
    bool strip = in->type != PARTNER_FEDERATED && is_presence(in->kind);
    decide_t d;
    switch (in->kind) {
    case DECIDE_K_SUBSCRIBE:
    case DECIDE_K_SUBSCRIBED:
        d = pass(DECIDE_RECORD_INVITE, DECIDE_R_RECORD_INVITE);
        break;
    case DECIDE_K_UNSUBSCRIBE:
    case DECIDE_K_UNSUBSCRIBED:
        d = pass(DECIDE_REMOVE_INVITE, DECIDE_R_REMOVE_INVITE);
        break;
    case DECIDE_K_MESSAGE:
        /* Our user writing first lets the partner user's replies through (a conversation, not an
           invitation). Recorded only when the ledger does not already cover it, so a chat costs
           one write per half interval, not one per message. */
        d = in->type == PARTNER_PUBLIC_UNVERIFIED && in->ledger != LEDGER_VALID &&
                    in->ledger != LEDGER_CONVERSATION
                ? pass(DECIDE_RECORD_MESSAGE, DECIDE_R_RECORD_MESSAGE)
                : pass(DECIDE_PASS, DECIDE_R_PASS);
        break;
    default:
        d = strip ? pass(DECIDE_PASS_STRIP_STATUS, DECIDE_R_STRIP_STATUS)
                  : pass(DECIDE_PASS, DECIDE_R_PASS);
        break;
    }
    d.strip_status = strip;
    return d;
}

static decide_t inbound(const decide_in_t *in)
{
    /* A local user without access looks like a user that does not exist (RFC 6120 §8.3.3.19,
       RFC 6121 §8.5.2): message and iq get/set answered <service-unavailable/>, presence of any
       kind ignored. The sender cannot tell "no access" from "no such user". */
    if (!in->access) {
        bool b = in->kind == DECIDE_K_MESSAGE || in->kind == DECIDE_K_IQ;
        return refuse(DECIDE_R_IN_NO_ACCESS, b, "service-unavailable");
    }
    if (in->kind == DECIDE_K_UNSUBSCRIBE || in->kind == DECIDE_K_UNSUBSCRIBED)
        return pass(DECIDE_REMOVE_INVITE, DECIDE_R_REMOVE_INVITE);
    if (in->type != PARTNER_PUBLIC_UNVERIFIED)
        return pass(DECIDE_PASS, DECIDE_R_PASS);
    bool invited = in->ledger == LEDGER_VALID;
    switch (in->kind) {
    case DECIDE_K_MESSAGE:
        return invited || in->ledger == LEDGER_CONVERSATION
                   ? pass(DECIDE_PASS, DECIDE_R_PASS)
                   : refuse(DECIDE_R_UNVERIFIED_MESSAGE, true, "service-unavailable");
    case DECIDE_K_SUBSCRIBE:
        /* Dropped without a word: what the gateway answers for a user that does not exist. */
        return invited ? pass(DECIDE_ANSWER_INVITE, DECIDE_R_ANSWER_INVITE)
                       : refuse(DECIDE_R_UNVERIFIED_SUBSCRIBE, false, NULL);
    case DECIDE_K_SUBSCRIBED:
        /* An unsolicited approval grants the partner nothing (the local server ignores it when
           no subscription is pending), so it passes; answering a valid invitation makes the
           entry permanent. */
        return invited ? pass(DECIDE_ANSWER_INVITE, DECIDE_R_ANSWER_INVITE)
                       : pass(DECIDE_PASS, DECIDE_R_PASS);
    default:
        return pass(DECIDE_PASS, DECIDE_R_PASS);
    }
}

decide_t decide(const decide_in_t *in)
{
    return in->dir == DECIDE_OUTBOUND ? outbound(in) : inbound(in);
}

int decide_post(ledger_writer_t *w, decide_verdict_t v, const char *local, const char *remote,
                int64_t now)
{
    switch (v) {
    case DECIDE_RECORD_INVITE:
        return ledger_post_invite(w, local, remote, now);
    case DECIDE_RECORD_MESSAGE:
        return ledger_post_message(w, local, remote, now);
    case DECIDE_ANSWER_INVITE:
        return ledger_post_answer(w, local, remote, now);
    case DECIDE_REMOVE_INVITE:
        return ledger_post_remove(w, local, remote);
    default:
        return 0;
    }
}

size_t decide_strip_status(stanza_t *p)
{
    size_t n = 0;
    stanza_t *prev = NULL, *c = p ? p->first : NULL;
    while (c) {
        stanza_t *next = c->next;
        if (c->name && !strcmp(c->name, "status") &&
            !strcmp(c->ns ? c->ns : "", p->ns ? p->ns : "")) {
            if (prev)
                prev->next = next;
            else
                p->first = next;
            if (p->last == c)
                p->last = prev;
            c->next = NULL;
            c->parent = NULL;
            n++;
        } else {
            prev = c;
        }
        c = next;
    }
    return n;
}

const char *decide_verdict_name(decide_verdict_t v)
{
    static const char *const names[] = {
        "pass",          "pass_strip_status", "record_invite", "record_message",
        "answer_invite", "remove_invite",     "refuse",
    };
    return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}

const char *decide_reason_name(decide_reason_t r)
{
    static const char *const names[DECIDE_R_COUNT_] = {
        "pass",
        "strip_status",
        "record_invite",
        "record_message",
        "answer_invite",
        "remove_invite",
        "out_no_access",
        "in_no_access",
        "unverified_message",
        "unverified_subscribe",
    };
    return (unsigned)r < DECIDE_R_COUNT_ ? names[r] : "?";
}

const char *decide_kind_name(decide_kind_t k)
{
    static const char *const names[DECIDE_K_COUNT_] = {
        "message",   "message_error", "iq",          "iq_reply",     "presence",       "probe",
        "subscribe", "subscribed",    "unsubscribe", "unsubscribed", "presence_error", "other",
    };
    return (unsigned)k < DECIDE_K_COUNT_ ? names[k] : "?";
}

/* Appends s as is within cap; false when it does not fit. */
static bool put_raw(char *out, size_t cap, size_t *pos, const char *s)
{
    size_t n = strlen(s);
    if (*pos + n >= cap)
        return false;
    memcpy(out + *pos, s, n + 1);
    *pos += n;
    return true;
}

/* Appends s escaped (\\, \", control characters as \xNN) within cap; false when cut. */
static bool put_escaped(char *out, size_t cap, size_t *pos, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char tmp[5];
        size_t n;
        if (ch == '\\' || ch == '"') {
            tmp[0] = '\\';
            tmp[1] = (char)ch;
            n = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
            n = 4;
        } else {
            tmp[0] = (char)ch;
            n = 1;
        }
        if (*pos + n >= cap)
            return false;
        memcpy(out + *pos, tmp, n);
        *pos += n;
        out[*pos] = '\0';
    }
    return true;
}

size_t decide_audit_line(char *out, size_t outlen, decide_dir_t dir, const stanza_t *st,
                         bool log_bodies)
{
    if (!outlen)
        return 0;
    const char *from = stanza_from(st), *to = stanza_to(st), *type = stanza_type(st),
               *id = stanza_id(st);
    int n = snprintf(out, outlen, "%s %s from=", stanza_name(st) ? stanza_name(st) : "?",
                     dir == DECIDE_INBOUND ? "in" : "out");
    if (n < 0 || (size_t)n >= outlen)
        return strlen(out);
    size_t pos = (size_t)n;
    /* Addresses and attributes are escaped too: a peer chooses them, and a newline in a log
       line would forge another entry. */
    const char *parts[4][2] = {{"", from}, {" to=", to}, {" type=", type}, {" id=", id}};
    for (int i = 0; i < 4; i++) {
        const char *v = parts[i][1] ? parts[i][1] : "";
        if (!put_raw(out, outlen, &pos, parts[i][0]) ||
            !put_escaped(out, outlen, &pos, v, strlen(v)))
            return pos;
    }
    if (!log_bodies)
        return pos;
    size_t blen = 0;
    const char *body = stanza_text(stanza_child(st, NULL, "body"), &blen);
    if (!put_raw(out, outlen, &pos, " body=\"") || !put_escaped(out, outlen, &pos, body, blen) ||
        !put_raw(out, outlen, &pos, "\"")) {
        /* Cut: end with "..." so the reader knows the body was longer than the line. */
        if (outlen >= 5) {
            if (pos > outlen - 4)
                pos = outlen - 4;
            memcpy(out + pos, "...", 4);
            pos += 3;
        }
    }
    return pos;
}
