/*
 * JIDs (RFC 7622) for routing and addressing checks on s2s streams.
 *
 * jid_parse() splits a JID into borrowed slices of the caller's string: nothing is allocated or
 * copied, and a jid_t is valid exactly as long as the string it was parsed from. Parts are NOT
 * NUL-terminated; use the lengths.
 *
 * Domains: core has no IDNA library. It compares domains as ASCII, case-insensitively, with one
 * trailing dot ignored (RFC 7622 §3.2). Domains are therefore expected in A-label (xn--) or ASCII
 * form; policy/domain normalises U-labels to A-labels before they reach the store, and a peer that
 * sends a U-label simply does not match an A-label entry. Non-ASCII bytes are accepted in every
 * part as long as they are valid UTF-8 (no PRECIS enforcement in core).
 *
 * Thread safety: every function is pure and reentrant.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Each part is at most 1023 bytes (RFC 7622 §3.2-3.4). */
#define JID_PART_MAX 1023
/* Largest JID jid_parse() accepts: three parts plus '@' and '/'. */
#define JID_MAX (3 * JID_PART_MAX + 2)

typedef struct {
    const char *local; /* NULL when there is no localpart */
    size_t local_len;
    const char *domain; /* never NULL after a successful parse; may end with one '.' */
    size_t domain_len;
    const char *resource; /* NULL when there is no resourcepart */
    size_t resource_len;
} jid_t;

/*
 * Parse `len` bytes of `s` (need not be NUL-terminated) as localpart@domainpart/resourcepart.
 * The resource is everything after the first '/', the localpart everything before the first '@'
 * that precedes it (RFC 7622 §3.1). Checks: valid UTF-8, no control characters or spaces in the
 * local and domain parts, each present part non-empty and ≤ JID_PART_MAX bytes, localpart free of
 * " & ' / : < > @, domain made of labels of 1..63 bytes (or an IP literal in [brackets]).
 * Returns 0 or FG_EPARSE; *out is written only on success. `out` borrows from `s`.
 */
int jid_parse(const char *s, size_t len, jid_t *out);

/* jid_parse() on a NUL-terminated string; NULL is FG_EPARSE. */
int jid_parse_str(const char *s, jid_t *out);

/*
 * Check that `len` bytes of `d` form a domainpart (the rules of jid_parse for that part). Stream
 * headers' to/from and dialback from/to must be bare domains: use this on them.
 * Returns 0 or FG_EPARSE.
 */
int jid_domain_check(const char *d, size_t len);

/* Length of the domain without its trailing dot, if any. */
size_t jid_domain_len_noroot(const char *d, size_t len);

/*
 * Domain equality for routing: ASCII case-insensitive, one trailing dot ignored on either side.
 * Bytes ≥ 0x80 compare exactly. Neither string needs to be NUL-terminated.
 */
bool jid_domain_equal(const char *a, size_t alen, const char *b, size_t blen);

/* jid_domain_equal() with NUL-terminated strings; NULL equals nothing. */
bool jid_domain_equal_str(const char *a, const char *b);

/* True when the JID is a bare domain (no localpart, no resourcepart). */
bool jid_is_domain(const jid_t *j);

/*
 * Write the bare JID (local@domain, or domain) into out[0..size) NUL-terminated, with the
 * domain's trailing dot removed and its ASCII letters lower-cased. Returns the length written
 * (without the NUL), or FG_ELIMIT when it does not fit (out is then an empty string if size > 0).
 */
int jid_bare(const jid_t *j, char *out, size_t size);

/* jid_bare() for the domain only. */
int jid_domain(const jid_t *j, char *out, size_t size);
