/*
 * srv: the pure part of s2s DNS, with no I/O — how the answers to `_xmpps-server._tcp.D` and
 * `_xmpp-server._tcp.D` become an ordered list of targets (RFC 6120 §3.2, XEP-0368, RFC 2782).
 *
 *  - Records of both services are merged and ordered by priority, then by RFC 2782 weighted random
 *    selection inside each priority (the random source is injected so tests are deterministic).
 *    xmpps records are listed before xmpp records of the same priority before the draw, so an
 *    all-zero-weight tie prefers direct TLS.
 *  - A service whose only target is "." is not offered. If xmpp-server says ".", there is no
 *    service at all unless xmpps has targets; if xmpps says ".", xmpp-server targets are used and
 *    there is never an A/AAAA fallback.
 *  - Fallback to A/AAAA of D on port 5269 happens only when both lookups completed without an
 *    answer (NXDOMAIN or NODATA). A failed lookup (timeout, SERVFAIL) with no records from the
 *    other one is an error, not a reason to fall back.
 *
 * Ownership: everything is caller-provided arrays; nothing is allocated.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_NAME_MAX 256

typedef struct {
    char target[SRV_NAME_MAX]; /* no trailing dot; "." alone means "no service" */
    uint16_t port;
    uint16_t priority;
    uint16_t weight;
    bool direct_tls; /* from _xmpps-server */
} srv_rr_t;

typedef enum {
    SRV_ANS_RECORDS = 0, /* the lookup returned records */
    SRV_ANS_NONE,        /* NXDOMAIN or NODATA */
    SRV_ANS_ERROR,       /* timeout, SERVFAIL, refused, malformed */
} srv_status_t;

typedef struct {
    srv_status_t status;
    const srv_rr_t *rr;
    size_t n;
} srv_answer_t;

typedef enum {
    SRV_PLAN_TARGETS = 0, /* connect to the ordered targets */
    SRV_PLAN_FALLBACK,    /* no SRV answer: A/AAAA of the domain on 5269, STARTTLS */
    SRV_PLAN_NO_SERVICE,  /* "." says the domain offers no s2s service */
    SRV_PLAN_ERROR,       /* lookups failed; nothing to try */
} srv_plan_kind_t;

/* Uniform 32-bit random numbers. */
typedef uint32_t (*srv_rng_t)(void *arg);

/* Orders rr[0..n) in place: priority ascending, RFC 2782 weighted random order within a priority.
 */
void srv_order(srv_rr_t *rr, size_t n, srv_rng_t rng, void *rng_arg);

/*
 * Applies the rules above. `out` receives up to `max` ordered targets (excess lowest-ranked targets
 * are dropped), *nout their number. Returns the plan kind.
 */
srv_plan_kind_t srv_plan(const srv_answer_t *xmpps, const srv_answer_t *xmpp, srv_rng_t rng,
                         void *rng_arg, srv_rr_t *out, size_t max, size_t *nout);

/* True for the "no service" target ("." or empty). */
bool srv_is_dot(const char *target);
const char *srv_plan_name(srv_plan_kind_t k);
