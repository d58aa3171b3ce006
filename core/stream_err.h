/*
 * The error vocabulary of the stream engine: RFC 6120 §4.9.3 stream error conditions, the stanza
 * error conditions XEP-0220 uses for dialback errors, and their serialisation. Conditions are
 * passed around as their RFC names (static strings); these functions check them against the
 * defined lists so a typo or a peer's unknown condition becomes undefined-condition
 * (RFC 6120 §4.9.3.21, §8.3.2). Nothing is allocated except through the caller's buf_t.
 */
#pragma once

#include <stdbool.h>

#include "core/buf.h"

/* The static name of a defined stream error condition equal to `name`, or NULL. */
const char *stream_err_stream_condition(const char *name);
/* The static name of a defined stanza error condition (RFC 6120 §8.3.3) equal to `name`, or NULL.
   remote-connection-failed is accepted too (XEP-0220 uses it inside a stanza error). */
const char *stream_err_stanza_condition(const char *name);

/*
 * Append <stream:error><COND xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>[<text ...>TEXT</text>]
 * [<APP xmlns='APP_NS'/>]</stream:error></stream:stream>. An unknown condition is written as
 * undefined-condition. text and app may be NULL. 0, FG_ELIMIT, -ENOMEM.
 */
int stream_err_write(buf_t *out, const char *condition, const char *text, const char *app_ns,
                     const char *app_condition);

/* Append <error type='cancel'><COND xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error> (the
   dialback error payload, XEP-0220 §2.4). Unknown conditions become undefined-condition. */
int stream_err_write_dialback(buf_t *out, const char *condition);
