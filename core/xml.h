/*
 * The XML stream parser: expat behind a small event API, fed incrementally with whatever bytes
 * arrive. It reports three events in stream order:
 *
 *   XML_EV_STREAM_OPEN   the stream header <stream:stream ...> (a stanza_t without children whose
 *                        attributes, prefix and namespace declarations are exactly as sent)
 *   XML_EV_STANZA        one complete depth-1 element (stanza, db:*, stream:features, starttls...)
 *   XML_EV_STREAM_CLOSE  </stream:stream>
 *
 * and stops with an xml_reason_t at the first malformed byte or exceeded limit. The parser decides
 * nothing about XMPP semantics beyond well-formedness, restricted XML and the limits; the stream
 * engine checks the header's namespace (→ <invalid-namespace/>), its prefix and the prefixes of
 * depth-1 elements (→ <bad-namespace-prefix/>) from the event's stanza_t:
 *   header:   stanza_ns(el) == STANZA_NS_STREAM, stanza_prefix(el) == "stream",
 *             stanza_decl(el, NULL) == "jabber:server", stanza_decl(el, "db") for dialback
 *   stanzas:  stanza_prefix(el) == NULL for jabber:server content (<foo:message
 *             xmlns:foo='jabber:server'> has prefix "foo"), stanza_ns(el) checks the namespace.
 *
 * Security settings, always on: reparse deferral off (events fire as soon as their bytes arrive),
 * random hash salt per parser (getrandom), billion-laughs and allocation-tracker limits, and RFC
 * 6120 §11.1 restricted XML: any DOCTYPE, entity declaration, comment, processing instruction
 * (other than the XML declaration) or reference to an undeclared entity stops the parser with
 * XML_REASON_RESTRICTED. Only UTF-8 is accepted. Limits come from stream_limits_t (core/peer.h).
 *
 * Ownership: the parser owns its expat instance and a stanza arena. The stanza_t in an event is
 * borrowed until the handler returns; when the handler returns XML_CB_STOP, it stays valid until
 * the next xml_feed(), xml_reset() or xml_parser_free() call (so a paused stanza can be routed
 * from outside the handler). The header stays readable through xml_stream_header() until
 * xml_reset() or xml_parser_free(). Input bytes are copied; the caller's buffer is not kept.
 *
 * Thread safety: one parser per stream, used by one thread. xml_reset() and xml_parser_free() must
 * not be called from inside the handler (return XML_CB_STOP, then call them).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/peer.h"
#include "core/stanza.h"

typedef struct xml_parser xml_parser_t;

typedef enum {
    XML_EV_STREAM_OPEN = 1,
    XML_EV_STANZA = 2,
    XML_EV_STREAM_CLOSE = 3,
} xml_event_type_t;

typedef struct {
    xml_event_type_t type;
    /* STREAM_OPEN: the header element (no children); STANZA: the depth-1 element; CLOSE: NULL.
       Borrowed until the handler returns. */
    const stanza_t *el;
    /* Bytes of input the event covers: the header's start tag, the whole stanza from '<' to the
       final '>', the close tag. */
    size_t bytes;
    /* STANZA only (else NULL/0): the stanza exactly as received, `bytes` long, borrowed like el.
       Forwarding these bytes saves serializing the tree. raw may point into the buffer given to
       xml_feed(): after a pause it is valid only while that buffer is unchanged too. */
    const char *raw;
    size_t raw_len;
    /* STANZA only: true when raw means the same on any stream whose header binds the same default
       namespace and the standard `db` (jabber:server:dialback) and `stream` prefixes: every other
       prefix the stanza uses is declared inside it. When false, write el with stanza_write(). */
    bool raw_portable;
} xml_event_t;

/* Handler return values. */
enum {
    XML_CB_CONTINUE = 0, /* keep parsing the rest of the input */
    XML_CB_STOP = 1,     /* pause right after this event: xml_feed() returns with *consumed set to
                            the end of the event's bytes (after <starttls/>, <auth/> success,
                            or to apply back-pressure) */
};
typedef int (*xml_handler_t)(void *ctx, const xml_event_t *ev);

/* Why the parser stopped. xml_reason_condition() names the RFC 6120 stream error for each. */
typedef enum {
    XML_REASON_NONE = 0,
    XML_REASON_NOT_WELL_FORMED,      /* syntax, invalid UTF-8, unbound prefix, junk after close */
    XML_REASON_UNSUPPORTED_ENCODING, /* the XML declaration names an encoding other than UTF-8 */
    XML_REASON_RESTRICTED,           /* DOCTYPE, entity declaration/reference, comment, PI */
    XML_REASON_STANZA_TOO_BIG,       /* stanza (or incomplete one) over the current maximum */
    XML_REASON_LIMIT,                /* depth, attribute count or name length over the limit */
    XML_REASON_STREAM_REOPEN,        /* a <stream:stream> start tag inside the stream */
    XML_REASON_NOMEM,                /* allocation failed */
} xml_reason_t;

/*
 * Create a parser. Copies from *limits: max_stanza_bytes_preauth (the maximum in force until
 * xml_set_max_stanza()), max_buffered_bytes, max_depth (elements below the stream header: a
 * stanza's own element is depth 1), max_attrs (attributes plus namespace declarations on one
 * element) and max_name_len (bytes of a prefix or local name). handler must not be NULL.
 * 0, -ENOMEM, or a negative errno from getrandom.
 */
int xml_parser_new(xml_parser_t **out, const stream_limits_t *limits, xml_handler_t handler,
                   void *ctx);
/* Free everything; NULL is a no-op. */
void xml_parser_free(xml_parser_t *p);

/*
 * Parse `len` more bytes of the stream, calling the handler for each complete event.
 * Returns 0 and sets *consumed (may be NULL) to len, or to fewer bytes when the handler returned
 * XML_CB_STOP: the bytes data[*consumed..len) are not consumed. After a stop, either xml_reset()
 * (stream restart: feed the unconsumed bytes to the new stream) or call xml_feed() again with the
 * unconsumed bytes at the front of `data` to continue the same stream.
 * Errors: FG_EPARSE (malformed or restricted XML), FG_ELIMIT (a limit), -ENOMEM; xml_error() then
 * tells which, and every later xml_feed() returns the same error until xml_reset().
 * len 0 is allowed and does nothing.
 */
int xml_feed(xml_parser_t *p, const void *data, size_t len, size_t *consumed);

/*
 * Start a new stream on the same parser: after STARTTLS and after SASL success (RFC 6120 §5.4.3.3,
 * §6.4.6) and to reuse a parser. Clears the error, the header and the depth; keeps the limits in
 * force, the handler and the arena's blocks; picks a fresh hash salt. 0, -ENOMEM or -errno.
 */
int xml_reset(xml_parser_t *p);

/* Change the stanza size maximum in force (the engine raises it from max_stanza_bytes_preauth to
   max_stanza_bytes after authentication). Values under 10000 are raised to 10000 (RFC 6120
   §13.12). Takes effect from the next byte. Survives xml_reset(). */
void xml_set_max_stanza(xml_parser_t *p, uint32_t max_bytes);
uint32_t xml_max_stanza(const xml_parser_t *p);

/* Reason of the error that stopped the parser, XML_REASON_NONE when it has not failed. */
xml_reason_t xml_error(const xml_parser_t *p);
/* Human-readable detail of that error for logs (expat's message, or which limit). Static text. */
const char *xml_error_detail(const xml_parser_t *p);
/* The RFC 6120 §4.9.3 stream error condition for a reason: "not-well-formed",
   "unsupported-encoding", "restricted-xml", "policy-violation" (STANZA_TOO_BIG, with
   <stanza-too-big xmlns='urn:xmpp:errors'/> as application condition, and LIMIT),
   "invalid-xml" (STREAM_REOPEN), "resource-constraint" (NOMEM); NULL for NONE. */
const char *xml_reason_condition(xml_reason_t r);
/* Short name for logs: "none", "not-well-formed", "stanza-too-big", ... */
const char *xml_reason_name(xml_reason_t r);

/* The current stream's header, or NULL before XML_EV_STREAM_OPEN. Valid until xml_reset() or
   xml_parser_free(). */
const stanza_t *xml_stream_header(const xml_parser_t *p);
/* True while the parser has delivered the header and not the close tag. */
bool xml_stream_open(const xml_parser_t *p);

/* Give back memory a large stanza left behind (the tree's extra arena blocks, the text and raw
   buffers) while keeping the header: for a stream that goes idle. Does nothing in the middle of a
   stanza or while paused. The next large stanza allocates again. Meant to be called
   periodically: when no byte was fed since the previous xml_trim() (a whole period idle), it
   also tries xml_hibernate(), so a busy stream keeps its expat instance and allocates nothing
   per stanza. */
void xml_trim(xml_parser_t *p);

/* The caller is done with the event the parser paused at (XML_CB_STOP) and has no bytes to hand
   back: end the pause now, as the next xml_feed() would, so xml_trim() and xml_hibernate() can
   act. The paused event's tree is no longer valid afterwards. Does nothing (returns false) when
   expat holds bytes after the pause; true when the parser is not paused on return. Not from
   inside the handler. */
bool xml_release(xml_parser_t *p);

/*
 * Give back nearly everything an idle open stream holds: expat's instance (to the pool, with one:
 * xml_set_pool()), the arena's blocks above the header, the text, raw and declaration scratch.
 * What remains is the parser struct, the arena block holding the header (xml_stream_header()
 * stays valid) and the limits. The next xml_feed() with bytes borrows an instance from the pool or
 * rebuilds one with the same settings and hash salt, replaying a start tag with the header's name
 * and namespace declarations, without an event; events, byte counts, `consumed` and raw bytes are
 * then exactly as without hibernation.
 * Refused (returns false, changes nothing) unless the stream header was delivered and not
 * closed, no stanza is open, the parser is neither paused nor failed, and expat holds no
 * unfinished token (every byte fed so far ended in a complete event or keepalive). True when the
 * parser hibernates now or already did. Not from inside the handler.
 */
bool xml_hibernate(xml_parser_t *p);
/* True between a successful xml_hibernate() and the next xml_feed() with bytes or xml_reset(). */
bool xml_hibernating(const xml_parser_t *p);

/*
 * A thread's spare expat instances, lent to its parsers between stanzas.
 *
 * Why: with thousands of streams each receiving a stanza now and then, a stream's own expat
 * instance (its hash tables, buffers, tag stack: ~12 KiB) has left the cache by the time the next
 * stanza comes, and parsing it cold costs several times parsing it warm. A parser given a pool
 * hands its instance back whenever it rests between depth-1 elements (xml_park()); its next
 * bytes borrow the most recently returned instance that sits inside an identical stream header
 * (same qualified name, same namespace declarations), so the few instances a busy thread cycles
 * through stay in its cache. Events, byte counts and raw bytes are exactly as with a private
 * instance: an instance is only ever lent in the state the stream's own would be in.
 *
 * Ownership: the pool owns its idle instances; a parser owns the instance it holds until it parks
 * it. The pool must outlive every parser given it, and all of them and the pool are used by one
 * thread. An instance whose heap grew past the pool's bound (many distinct names) and one
 * returned to a full pool are freed, not kept; a new one is built when no idle one matches.
 */
typedef struct xml_pool xml_pool_t;
/* max_idle: instances kept (at least 1); max_bytes: heap of an instance worth keeping (0: 64 KiB).
   0 or -ENOMEM. */
int xml_pool_new(xml_pool_t **out, unsigned max_idle, size_t max_bytes);
/* Frees the idle instances and the pool; NULL is a no-op. */
void xml_pool_free(xml_pool_t *pool);
typedef struct {
    unsigned idle;     /* instances waiting now */
    size_t idle_bytes; /* their heap */
    uint64_t lent;     /* borrows served by an idle instance */
    uint64_t built;    /* borrows that found none and built one (a synthetic header parsed) */
    uint64_t dropped;  /* instances freed on return: pool full or instance over max_bytes */
} xml_pool_stats_t;
void xml_pool_stats(const xml_pool_t *pool, xml_pool_stats_t *out);
/* Lend from (and park into) `pool` from now on; NULL returns to a private instance per parser.
   Call before the first xml_feed() or while the parser rests between stanzas: with a pool,
   stanza trees are built in the arena of the instance held. */
void xml_set_pool(xml_parser_t *p, xml_pool_t *pool);
/*
 * With a pool: hand the expat instance back to it, and nothing else (the arena, text and raw
 * buffers stay, so the next stanza allocates nothing). Same conditions as xml_hibernate(); true
 * when the parser holds no instance on return. Without a pool: false, changes nothing. Meant to
 * be called after each batch of input is taken care of. Not from inside the handler.
 */
bool xml_park(xml_parser_t *p);

typedef struct {
    size_t bytes;     /* heap bytes held now: expat, the arena's blocks, text scratch, the parser */
    uint64_t mallocs; /* heap allocations (malloc + realloc) since creation, all of the above */
    uint64_t stanzas; /* XML_EV_STANZA events since creation */
    uint64_t wakes;   /* wake-ups after xml_hibernate() or xml_park() since creation */
} xml_stats_t;
void xml_stats(const xml_parser_t *p, xml_stats_t *out);
