/*
 * Stanzas: a compact tree for one depth-1 element of an XMPP stream (a <message/>, <iq/>,
 * <presence/>, <db:result/>, <stream:features/>, ...), its builder, serializer and error bounce.
 *
 * Memory: every node and string of a stanza lives in one stanza_arena_t. The arena is a chain of
 * blocks that are kept across stanza_arena_reset(), so after a few stanzas (warm-up) building a
 * stanza allocates nothing. An arena has a maximum size: past it, allocation fails with FG_ELIMIT.
 *
 * Ownership: the arena owns all stanza_t and strings in it; they are borrowed by everyone else and
 * become invalid at stanza_arena_reset()/_reset_to()/_free(). A stanza handed out by core/xml is
 * borrowed until the event handler returns (the parser's arena is reset at the next stanza). To
 * keep one longer, stanza_clone() it into an arena you own, or serialize it with stanza_write(). No
 * function keeps a pointer to caller strings: the builder copies its arguments.
 *
 * Namespaces: each element records its namespace URI, the prefix it was written with (NULL for the
 * default namespace) and the declarations written on it. The serializer re-declares a namespace
 * only where the output stream's scope does not already bind it, so `<message/>` under a stream
 * with xmlns='jabber:server', `<db:result/>` under xmlns:db, payloads with their own xmlns and
 * xml:lang all come out as real servers write them.
 *
 * Fields of the structs below are public for reading; change them only through the builder.
 * Thread safety: an arena and its stanzas belong to one thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define STANZA_NS_STREAM     "http://etherx.jabber.org/streams"
#define STANZA_NS_SERVER     "jabber:server"
#define STANZA_NS_CLIENT     "jabber:client"
#define STANZA_NS_COMPONENT  "jabber:component:accept"
#define STANZA_NS_DIALBACK   "jabber:server:dialback"
#define STANZA_NS_STREAMS    "urn:ietf:params:xml:ns:xmpp-streams"
#define STANZA_NS_STANZAS    "urn:ietf:params:xml:ns:xmpp-stanzas"
#define STANZA_NS_TLS        "urn:ietf:params:xml:ns:xmpp-tls"
#define STANZA_NS_SASL       "urn:ietf:params:xml:ns:xmpp-sasl"
#define STANZA_NS_XML        "http://www.w3.org/XML/1998/namespace"
#define STANZA_NS_XMPP_ERRS  "urn:xmpp:errors"
#define STANZA_NS_DB_FEATURE "urn:xmpp:features:dialback"
#define STANZA_NS_BIDI_FEAT  "urn:xmpp:features:bidi"
#define STANZA_NS_BIDI       "urn:xmpp:bidi"

/* Deepest tree the serializer, stanza_clone() and the builder accept (the parser's own limit is
   stream_limits_t.max_depth, much smaller). */
#define STANZA_MAX_DEPTH 256

typedef struct stanza_arena stanza_arena_t;
typedef struct stanza stanza_t;

typedef struct {
    const char *name;   /* local name */
    const char *ns;     /* namespace URI, "" for an unprefixed attribute */
    const char *prefix; /* prefix as written ("xml" for xml:lang), NULL when unprefixed */
    const char *value;  /* NUL-terminated; may contain NUL bytes only via value_len */
    uint32_t value_len;
} stanza_attr_t;

/* One namespace declaration written on an element: xmlns='uri' (prefix NULL) or xmlns:p='uri'. */
typedef struct {
    const char *prefix;
    const char *uri;
} stanza_nsdecl_t;

/* An element or a text node. Text nodes have name == NULL and carry text/text_len; everything
   else in them is empty. */
struct stanza {
    stanza_t *next;     /* next sibling (element or text), NULL at the end */
    stanza_t *parent;   /* NULL for the depth-1 element */
    stanza_t *first;    /* first child (element or text) */
    stanza_t *last;     /* last child */
    const char *name;   /* local name; NULL for a text node */
    const char *ns;     /* namespace URI; "" when none */
    const char *prefix; /* NULL when written in the default namespace */
    stanza_attr_t *attrs;
    stanza_nsdecl_t *decls;
    const char *text; /* text nodes: NUL-terminated UTF-8, unescaped */
    uint32_t text_len;
    uint16_t nattrs, attrs_cap;
    uint16_t ndecls, decls_cap;
};

/* ---- arena ---- */

/* Create an arena that never holds more than max_bytes (block headers included). Allocates nothing
   until first use. 0 or -ENOMEM. */
int stanza_arena_new(stanza_arena_t **out, size_t max_bytes);
/* Free the arena and everything in it. NULL is a no-op. */
void stanza_arena_free(stanza_arena_t *a);
/* Forget every stanza in the arena and clear its sticky error; the blocks are kept for reuse. */
void stanza_arena_reset(stanza_arena_t *a);
/* Opaque position for stanza_arena_reset_to(): everything allocated after it is forgotten. Lets a
   long-lived object (the stream header) sit at the bottom while stanzas above it come and go. */
typedef struct {
    void *block;
    size_t used;
    size_t total;
} stanza_mark_t;
stanza_mark_t stanza_arena_mark(const stanza_arena_t *a);
void stanza_arena_reset_to(stanza_arena_t *a, stanza_mark_t m);
/* Change the maximum. Blocks already held stay; a smaller maximum only affects new growth. */
void stanza_arena_set_max(stanza_arena_t *a, size_t max_bytes);
/* Release all blocks but the first (call on an idle stream after a large stanza). */
void stanza_arena_trim(stanza_arena_t *a);
/* stanza_arena_reset_to(m), then release the blocks above the one m is in: what lies below the
   mark stays valid. */
void stanza_arena_trim_to(stanza_arena_t *a, stanza_mark_t m);
/* First error since the last reset: FG_ELIMIT (maximum reached) or -ENOMEM; 0 if none. Builder
   functions that return a pointer return NULL and set this error. */
int stanza_arena_error(const stanza_arena_t *a);

typedef struct {
    size_t used;      /* bytes handed out since the last reset, padding included */
    size_t reserved;  /* bytes of blocks held (what the arena costs in memory) */
    uint64_t mallocs; /* heap allocations since creation (block allocations) */
} stanza_arena_stats_t;
void stanza_arena_stats(const stanza_arena_t *a, stanza_arena_stats_t *out);

/* Raw allocation (8-byte aligned) and string copies, for code that builds its own structures in a
   stanza's arena. NULL on failure (sticky error set). */
void *stanza_arena_alloc(stanza_arena_t *a, size_t n);
char *stanza_arena_strndup(stanza_arena_t *a, const char *s, size_t n);
char *stanza_arena_strdup(stanza_arena_t *a, const char *s);

/* ---- reading ---- */

/* NULL-safe accessors. stanza_ns() returns "" for no namespace, never NULL for an element. */
const char *stanza_name(const stanza_t *e);
const char *stanza_ns(const stanza_t *e);
const char *stanza_prefix(const stanza_t *e);
bool stanza_is_text(const stanza_t *e);
/* True when e is an element named `name` in namespace `ns` (ns NULL: any namespace). */
bool stanza_is(const stanza_t *e, const char *ns, const char *name);

/* Unprefixed attribute by local name (what to/from/type/id are), or NULL. */
const char *stanza_attr(const stanza_t *e, const char *name);
/* Attribute by namespace URI and local name (ns "" = unprefixed), or NULL. */
const char *stanza_attr_ns(const stanza_t *e, const char *ns, const char *name);
const char *stanza_to(const stanza_t *e);
const char *stanza_from(const stanza_t *e);
const char *stanza_type(const stanza_t *e);
const char *stanza_id(const stanza_t *e);
/* xml:lang, or NULL. */
const char *stanza_lang(const stanza_t *e);

/* Namespace URI a declaration on e binds to `prefix` (NULL: the default namespace), or NULL when e
   itself declares nothing for it. Only e's own declarations are searched (use it on the stream
   header to check xmlns, xmlns:stream and xmlns:db). */
const char *stanza_decl(const stanza_t *e, const char *prefix);

/* Element children only, in document order: first child element, next sibling element. */
stanza_t *stanza_first_child(const stanza_t *e);
stanza_t *stanza_next_sibling(const stanza_t *e);
/* First child element with that namespace (NULL: any) and name (NULL: any). */
stanza_t *stanza_child(const stanza_t *e, const char *ns, const char *name);
/* Number of child elements. */
size_t stanza_child_count(const stanza_t *e);

/*
 * Text of an element: the first text child (the parser merges adjacent character data and CDATA
 * into one text node, so for <body/>, <auth/>, <db:result/> this is the whole content), or "" when
 * there is none. *len (may be NULL) receives its length. Whitespace is kept as sent.
 */
const char *stanza_text(const stanza_t *e, size_t *len);

/* ---- building ---- */

/*
 * New element in arena a: a root when parent is NULL, else appended as parent's last child.
 * ns NULL or "" = no namespace; the element is written with the default namespace (prefix NULL)
 * unless stanza_set_prefix() is called. Returns NULL on failure (also when parent is the result of
 * a failed call, so calls can be chained and checked once with stanza_arena_error()).
 */
stanza_t *stanza_new(stanza_arena_t *a, stanza_t *parent, const char *ns, const char *name);
/* Set the prefix the element is written with ("db" for <db:result/>); NULL = default namespace. */
int stanza_set_prefix(stanza_arena_t *a, stanza_t *e, const char *prefix);
/* Set or replace an unprefixed attribute. value NULL removes it. 0, FG_ELIMIT, -ENOMEM, -EINVAL. */
int stanza_set_attr(stanza_arena_t *a, stanza_t *e, const char *name, const char *value);
/* Set or replace a namespaced attribute (prefix "xml" with STANZA_NS_XML for xml:lang). */
int stanza_set_attr_ns(stanza_arena_t *a, stanza_t *e, const char *ns, const char *prefix,
                       const char *name, const char *value);
/* Add a namespace declaration to write on e (prefix NULL = default). Normally not needed: the
   serializer declares what is out of scope by itself. */
int stanza_add_decl(stanza_arena_t *a, stanza_t *e, const char *prefix, const char *uri);
/* Append a text child (len bytes of UTF-8, unescaped). */
int stanza_add_text(stanza_arena_t *a, stanza_t *e, const char *text, size_t len);
/* Deep copy of e (and its subtree) into arena dst as a new root. NULL on failure. */
stanza_t *stanza_clone(stanza_arena_t *dst, const stanza_t *e);

/* ---- writing ---- */

/* Namespace scope of the output stream: the declarations its header made. */
typedef struct {
    const stanza_nsdecl_t *decls;
    size_t n;
} stanza_scope_t;
/* xmlns='jabber:server', xmlns:stream='http://etherx.jabber.org/streams',
   xmlns:db='jabber:server:dialback': what fedgate's own s2s headers declare. */
extern const stanza_scope_t stanza_scope_s2s;
/* xmlns='jabber:component:accept', xmlns:stream=...: XEP-0114 streams. */
extern const stanza_scope_t stanza_scope_component;

/*
 * Append the XML of e (and subtree) to out, as it would be written on a stream whose header
 * declared `scope` (NULL = nothing declared). Text is escaped (& < >, and \r as &#xD;), attribute
 * values are written in '...' with & < > ' " and \t \n \r escaped. Declarations recorded on an
 * element are written again; missing ones are added where an element or attribute needs them.
 * Returns 0, FG_ELIMIT (out's maximum, or deeper than STANZA_MAX_DEPTH) or -ENOMEM; on error
 * out->len is restored to its value before the call.
 */
int stanza_write(buf_t *out, const stanza_t *e, const stanza_scope_t *scope);
/* stanza_write() with elements of namespace from_ns written as to_ns (attributes unchanged): a
   stanza read from a XEP-0114 component stream (jabber:component:accept) goes out on s2s as
   jabber:server, and the other way round. -EINVAL for a NULL namespace; else as stanza_write(). */
int stanza_write_ns(buf_t *out, const stanza_t *e, const stanza_scope_t *scope, const char *from_ns,
                    const char *to_ns);
/* Only the start tag of e, without '/>' or children: for stream headers, e.g. a built
   <stream:stream> element with its declarations added by stanza_add_decl(). Same errors. */
int stanza_write_open(buf_t *out, const stanza_t *e, const stanza_scope_t *scope);
/* Append `len` bytes of text or an attribute value escaped as stanza_write() does. */
int stanza_write_escaped(buf_t *out, const char *s, size_t len, bool attr);

/* ---- errors (RFC 6120 §8.3) ---- */

/* True for type='error' stanzas and iq type='result': those must never be answered with an error
   (RFC 6120 §8.3.1, §8.2.3), so stanza_bounce() refuses them. */
bool stanza_is_unbounceable(const stanza_t *st);

/*
 * Build in arena a the error reply to stanza st: same element name (and namespace/prefix), to and
 * from swapped, id copied, type='error', and
 *   <error type='ERR_TYPE'><CONDITION xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>
 *     [<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>TEXT</text>]</error>
 * err_type is "cancel", "continue", "modify", "auth" or "wait"; condition a defined condition such
 * as "service-unavailable", "remote-server-not-found"; text may be NULL. The original payload is
 * not included (RFC 6120 allows either; not echoing it keeps bounced message bodies off other
 * servers). Returns NULL when st is unbounceable (stanza_arena_error() then stays 0) or on arena
 * failure. st may live in another arena; nothing of st is referenced by the result.
 */
stanza_t *stanza_bounce(stanza_arena_t *a, const stanza_t *st, const char *err_type,
                        const char *condition, const char *text);
