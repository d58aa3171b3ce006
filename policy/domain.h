/*
 * Domain name normalisation: the one place a domain typed by an operator or read from the wire
 * becomes the key of the store.
 *
 * A normalised domain is lower case, has no trailing dot, is in IDNA2008 A-label form (libidn2,
 * non-transitional processing), and obeys RFC 1035/1123: total length <= 253, labels of 1..63
 * octets, letters/digits/hyphen only, no hyphen at either end of a label. It is a name, not an
 * address: IP literals ("1.2.3.4", "127.1", "::1") and names whose top-level label is all digits
 * are refused (RFC 3696 §2). Every key of the partners, partner_domains and hosted databases is
 * normalised; lookups compare bytes.
 *
 * No allocation escapes: outputs go to caller buffers.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define DOMAIN_MAX 253 /* octets of a normalised domain, without NUL */
#define DOMAIN_BUF 256 /* a buffer that always fits one, NUL included */

/*
 * Normalise `in` into `out` (outlen >= DOMAIN_BUF is always enough). 0, or FG_EDOMAIN with `out`
 * set to "" when `in` is not a valid domain; FG_ELIMIT when outlen is too small for the result.
 * A NULL `why` is allowed; otherwise it receives a static reason ("label longer than 63
 * characters", ...) on FG_EDOMAIN, and NULL on success.
 */
int domain_normalize_why(const char *in, char *out, size_t outlen, const char **why);
int domain_normalize(const char *in, char *out, size_t outlen);
/* The same without the name-not-address rule: for looking up, and removing, a record keyed by an
   address that a build before the rule stored. Never for validating a new name. */
int domain_normalize_key(const char *in, char *out, size_t outlen, const char **why);

/* True when `in` is already normalised, the address rule included (pure ASCII check, no libidn2
   call). */
bool domain_is_normalized(const char *in);

/*
 * The one error line for a bad domain, naming it: `invalid domain "Ex ample.com": label has a
 * character other than a letter, digit or hyphen`. The input is shown with control and non-ASCII
 * bytes escaped (\xNN) and cut at 300 octets. Returns strlen of the full line (snprintf rule).
 */
size_t domain_error_line(const char *in, const char *why, char *out, size_t outlen);

/*
 * Shell-style match of a normalised domain against a --filter pattern ("*.org", "fab*"): '*' any
 * run, '?' one octet, case-insensitive. The pattern is not normalised.
 */
bool domain_glob_match(const char *pattern, const char *domain);

/* host[:port] or [v6]:port. host is a normalised domain or an IPv4/IPv6 literal (kept as typed,
   brackets removed): a connect target such as a proxy may be an address. port 0 when absent (then
   `port_required` makes it FG_EPARSE). */
int domain_parse_hostport(const char *in, bool port_required, char *host, size_t hostlen,
                          unsigned *port, const char **why);
