/*
 * The JSON of the policy plane: one small hand-written reader and writer, and the schema-driven
 * mapping of partner records, gateway settings and hosted domains to JSON objects. The same JSON
 * is printed by `fedgate-admin ... --json`, written by export, read by import and spoken by the
 * web API. Member names are the `json` column of the schema table (docs/store.md lists them).
 *
 * Reader: json_parse() tokenises a document into a caller-supplied token array (jsmn-style: no
 * allocation, bounded by the array size and JSON_MAX_DEPTH). Tokens point into the text, which
 * must outlive them. Writer: appends to a core/buf.h buffer (bounded by its max).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "policy/report.h"
#include "policy/schema.h"

#define JSON_MAX_DEPTH 32

typedef enum {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING, /* start/end exclude the quotes; escapes not yet decoded */
    JSON_ARRAY,
    JSON_OBJECT, /* children alternate: key (STRING), value */
} json_type_t;

typedef struct {
    json_type_t type;
    uint32_t start, end; /* byte offsets in the text */
    uint32_t size;       /* ARRAY: elements; OBJECT: members; else 0 */
    uint32_t next;       /* index of the token after this one and all its children */
} json_tok_t;

typedef struct {
    const char *text;
    size_t len;
    json_tok_t *tok;  /* caller's array */
    uint32_t ntok;    /* used */
    uint32_t cap;     /* size of the array */
    uint32_t err_pos; /* byte offset of a parse error */
} json_doc_t;

/* Tokenise. 0, FG_EPARSE (err_pos set; also for trailing garbage, bad UTF-8, depth > limit) or
   FG_ELIMIT (more tokens than cap). Token 0 is the root. */
int json_parse(json_doc_t *d, const char *text, size_t len, json_tok_t *tok, uint32_t cap);
/* Value token of member `key` of object token `obj`, or -1. */
int json_find(const json_doc_t *d, int obj, const char *key);
/* Index of the i-th element (array) or i-th member value (object) of token t, or -1. Walks from
   the first child: O(i). To visit every child use json_iter_t, which is O(1) per child. */
int json_child(const json_doc_t *d, int t, uint32_t i);

/* One pass over the elements of an array or the members of an object, following the tokens'
   `next` links. Borrows the document; no allocation. */
typedef struct {
    const json_doc_t *d;
    uint32_t tok;  /* the next child (or key, for an object) */
    uint32_t left; /* children not yet returned */
    bool object;
} json_iter_t;
/* A token that is not an array or object (or -1) gives an iterator with nothing to return. */
void json_iter_init(json_iter_t *it, const json_doc_t *d, int t);
/* Next element / member value, or -1 at the end. For an object *key (may be NULL) receives the
   member name token; for an array it is set to -1. */
int json_iter_next(json_iter_t *it, int *key);
/* Links followed by json_child, json_find and json_iter_next on this thread, ever: a cost proxy
   tests use to assert that a walk is linear (wall time is too noisy on a shared machine). */
uint64_t json_steps(void);
/* Decoded string value (escapes, \uXXXX with surrogates) into out, NUL-terminated.
   0, FG_EPARSE (not a string, invalid escape, embedded NUL) or FG_ELIMIT (too long). */
int json_string(const json_doc_t *d, int t, char *out, size_t outlen);
/* True when string token t equals s after decoding. */
bool json_string_eq(const json_doc_t *d, int t, const char *s);
int json_bool(const json_doc_t *d, int t, bool *out);
/* Integer in [min, max]; FG_EPARSE for fractions, exponents or out-of-range. */
int json_int(const json_doc_t *d, int t, int64_t min, int64_t max, int64_t *out);

/* Writer helpers: all return 0 or FG_ELIMIT / -ENOMEM from the buffer. */
int json_put_string(buf_t *b, const char *s); /* quoted, escaped, invalid UTF-8 replaced */
int json_put_raw(buf_t *b, const char *s);

enum {
    JSON_F_SECRETS = 1u << 0, /* include SCHEMA_F_SECRET fields */
    JSON_F_PRETTY = 1u << 1,  /* two-space indentation, one member per line */
};

/* One object from a schema'd struct: every field, in table order, with its json name.
   Unset optional numbers are null. `indent` is the starting level when pretty. */
int json_encode_object(const schema_t *s, const void *obj, unsigned flags, int indent, buf_t *b);

/*
 * Applies the members of object token `t` onto obj (start from defaults for "create", from the
 * stored record for "patch"). Every unknown member, wrong type or bad value adds a REPORT_ERROR
 * naming the member; READONLY members other than "revision" are ignored. Returns the number of
 * errors added. A present "revision" member is decoded into the struct's revision field (the
 * caller uses it as the expected revision).
 */
size_t json_decode_object(const schema_t *s, const json_doc_t *d, int t, void *obj, report_t *rep);
