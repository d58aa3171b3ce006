/*
 * SASL EXTERNAL for s2s (RFC 6120 §6, XEP-0178): the strict base64 codec of RFC 6120 §13.9.1, the
 * authorization-identity rules, and the check that a peer certificate identity covers a domain.
 * The stream engine (core/stream.h) drives the exchange; this module holds the pure rules.
 * Inputs are borrowed for the call; nothing is allocated.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest authzid we accept (a domain name: RFC 1035 limits it to 253 octets as text). */
#define SASL_MAX_AUTHZID 255

/*
 * Strict base64 decode (RFC 4648 §4 alphabet, RFC 6120 §13.9.1): the length must be a multiple of
 * four, only alphabet characters, '=' only as one or two final padding characters, unused bits of
 * the last character zero, no whitespace. The single character "=" is RFC 6120's empty response
 * and decodes to zero bytes. 0 with *out_len set, FG_EPARSE, or FG_ELIMIT if out_cap is too small.
 */
int sasl_b64_decode(const char *in, size_t in_len, uint8_t *out, size_t out_cap, size_t *out_len);

/* Base64 of n bytes plus a NUL into out; "=" for n == 0. Returns the length written (without NUL),
   or FG_ELIMIT if out_cap is too small. */
int sasl_b64_encode(const void *in, size_t n, char *out, size_t out_cap);

typedef enum {
    SASL_AUTHZ_OK = 0,      /* absent, or the claimed domain itself */
    SASL_AUTHZ_INVALID = 1, /* not a bare domain (node, resource, control bytes, a newline...) */
    SASL_AUTHZ_MISMATCH = 2 /* a well-formed domain other than the claimed one */
} sasl_authz_t;

/*
 * Judge a decoded authzid (n bytes, may be 0) against the domain from the stream header. A server's
 * authzid MUST be a bare domain (RFC 6120 §6.3.8); every byte must be printable ASCII or UTF-8
 * without spaces or controls, so the "example.org\n" of old XEP-0178 drafts is INVALID.
 */
sasl_authz_t sasl_authzid_check(const uint8_t *authzid, size_t n, const char *claimed);

/*
 * True iff one of the certificate's DNS identities (names[0..n)) covers domain: equal ignoring
 * ASCII case and a trailing dot, or a "*." wildcard standing for exactly one left-most label (RFC
 * 6120 §13.7.1.2.1). The identities come from tls/ (it extracts DNS-ID, SRV-ID, XmppAddr, CN).
 */
bool sasl_cert_covers(const char *const *names, size_t n, const char *domain);

/* ASCII case-insensitive domain equality, ignoring one trailing dot on either side. */
bool sasl_domain_equal(const char *a, size_t a_len, const char *b, size_t b_len);
