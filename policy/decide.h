/*
 * Stanza-level decisions of the partner types and the external access policy (lync-spec §4,
 * DESIGN.md §6, docs/partner-types.md): pure functions over plain values and a stanza tree. No
 * I/O, no allocation, no lock; the caller supplies the partner type (policy_lookup), the local
 * user's effective EnableXmppAccess (policy_access) and, only when decide_needs_ledger() says so,
 * the ledger's answer (ledger_lookup).
 *
 * Ownership: nothing is kept. decide_strip_status() edits the caller's tree in place (unlinks
 * nodes; their memory stays in the stanza's arena until it is reset). Strings in decide_t are
 * static.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"
#include "core/stanza.h"
#include "policy/ledger.h"

typedef enum {
    DECIDE_INBOUND = 0,  /* from a partner user to a local user */
    DECIDE_OUTBOUND = 1, /* from a local user to a partner user */
} decide_dir_t;

typedef enum {
    DECIDE_K_MESSAGE = 0,   /* message of any type but error */
    DECIDE_K_MESSAGE_ERROR, /* message type='error' */
    DECIDE_K_IQ,            /* iq get/set */
    DECIDE_K_IQ_REPLY,      /* iq result/error */
    DECIDE_K_PRESENCE,      /* available (no type) or unavailable */
    DECIDE_K_PROBE,
    DECIDE_K_SUBSCRIBE,
    DECIDE_K_SUBSCRIBED,
    DECIDE_K_UNSUBSCRIBE,
    DECIDE_K_UNSUBSCRIBED,
    DECIDE_K_PRESENCE_ERROR,
    DECIDE_K_OTHER, /* anything else (not a message/presence/iq, unknown type) */
    DECIDE_K_COUNT_,
} decide_kind_t;

typedef enum {
    DECIDE_PASS = 0,
    DECIDE_PASS_STRIP_STATUS, /* pass after decide_strip_status() */
    DECIDE_RECORD_INVITE,     /* pass, and ledger_post_invite(local, remote) */
    DECIDE_RECORD_MESSAGE,    /* pass, and ledger_post_message(local, remote): replies may pass */
    DECIDE_ANSWER_INVITE,     /* pass, and ledger_post_answer(local, remote) */
    DECIDE_REMOVE_INVITE,     /* pass, and ledger_post_remove(local, remote) */
    DECIDE_REFUSE,            /* do not pass: bounce (if .bounce) or drop, and count .reason */
} decide_verdict_t;

/* One metrics counter per rule (label: decide_reason_name). */
typedef enum {
    DECIDE_R_PASS = 0,
    DECIDE_R_STRIP_STATUS,         /* outbound presence to PublicVerified/PublicUnverified */
    DECIDE_R_RECORD_INVITE,        /* outbound subscribe/subscribed */
    DECIDE_R_RECORD_MESSAGE,       /* outbound message opening a PublicUnverified conversation */
    DECIDE_R_ANSWER_INVITE,        /* inbound subscribe/subscribed answering an invitation */
    DECIDE_R_REMOVE_INVITE,        /* unsubscribe/unsubscribed, either direction */
    DECIDE_R_OUT_NO_ACCESS,        /* local sender without EnableXmppAccess */
    DECIDE_R_IN_NO_ACCESS,         /* local recipient without EnableXmppAccess */
    DECIDE_R_UNVERIFIED_MESSAGE,   /* PublicUnverified message, no valid invitation */
    DECIDE_R_UNVERIFIED_SUBSCRIBE, /* PublicUnverified subscribe, no valid invitation */
    DECIDE_R_COUNT_,
} decide_reason_t;

typedef struct {
    decide_dir_t dir;
    decide_kind_t kind;     /* decide_kind(stanza) */
    partner_type_t type;    /* of the partner owning the remote user's domain */
    bool access;            /* effective EnableXmppAccess of the local user */
    ledger_answer_t ledger; /* invitation local -> remote; LEDGER_ABSENT when not looked up */
} decide_in_t;

typedef struct {
    decide_verdict_t verdict;
    decide_reason_t reason;
    bool strip_status;     /* remove <status/> before passing (also with RECORD/REMOVE_INVITE) */
    bool bounce;           /* REFUSE: send stanza_bounce(err_type, condition) back to the sender */
    const char *err_type;  /* "cancel" */
    const char *condition; /* "service-unavailable", "not-allowed" */
} decide_t;

/* Kind of a stanza from its name and type attribute. */
decide_kind_t decide_kind(const stanza_t *st);
/* Whether decide() needs the ledger's answer for this stanza (PublicUnverified partner: inbound
   message, subscribe, subscribed; outbound message). Otherwise skip the lookup. */
bool decide_needs_ledger(decide_dir_t dir, decide_kind_t kind, partner_type_t type);
/* The interval to pass to ledger_lookup for it: SubscriptionRefreshInterval inbound, half of it
   outbound, so a conversation still going is recorded again before it would expire (at most one
   ledger write per pair per half interval). */
uint32_t decide_ledger_interval(decide_dir_t dir, uint32_t refresh_s);
decide_t decide(const decide_in_t *in);

/*
 * The ledger side of a verdict: RECORD_INVITE, RECORD_MESSAGE, ANSWER_INVITE and REMOVE_INVITE
 * post the matching
 * operation for (local, remote) (normalised bare JIDs, local = our user whatever the direction);
 * other verdicts post nothing. Never blocks: FG_ELIMIT when the ledger queue is full (bounce the
 * stanza with <resource-constraint/>, type wait). The one function here that is not pure.
 */
int decide_post(ledger_writer_t *w, decide_verdict_t v, const char *local, const char *remote,
                int64_t now);

/* Unlinks every <status/> child of a presence (any namespace the presence is in), in place.
   Returns the number removed. */
size_t decide_strip_status(stanza_t *presence);

const char *decide_verdict_name(decide_verdict_t v);
const char *decide_reason_name(decide_reason_t r); /* metric label, e.g. "unverified_message" */
const char *decide_kind_name(decide_kind_t k);

/*
 * EnableLoggingAllMessageBodies: the audit line for a message crossing the gateway, into out
 * (always NUL-terminated when outlen > 0; a long body is cut and ends in "..."):
 *   off: message in from=<from> to=<to> type=<type> id=<id>
 *   on:  the same, then body="<body with \ " and control characters escaped>"
 * Nothing of the content is written when log_bodies is false. Returns the length written.
 */
size_t decide_audit_line(char *out, size_t outlen, decide_dir_t dir, const stanza_t *st,
                         bool log_bodies);
