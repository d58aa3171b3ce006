/*
 * The schema table: one row per stored field of a partner record, the gateway settings and a
 * hosted domain. The same rows drive defaults, validation of bounds and syntax, the binary record
 * encoding in LMDB, the JSON names (CLI --json, export/import, web API), the CLI option names and
 * the Lync property names used when importing a PowerShell CSV.
 *
 * Record encoding (docs/store.md): byte 0 = SCHEMA_VERSION of the writer, byte 1 = record kind,
 * then TLV entries `tag u8, len u16 LE, value`. Tags are never reused. A decoder skips tags it
 * does not know (a newer build added a field without changing meaning) and refuses a record whose
 * version byte is greater than its own SCHEMA_VERSION with FG_EVERSION (a newer build changed
 * meaning). Missing tags take the row's default, so older records read with today's defaults.
 *
 * Ownership: the tables are static and immutable. Objects passed as `void *obj` are the structs
 * of partner.h, settings.h and hosted.h, owned by the caller.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/report.h"

/* Version of the record encoding and store layout this build writes. Stored in every record and
   in meta/schema_version; a store or record with a greater number is refused (FG_EVERSION). */
#define SCHEMA_VERSION 1

/* Byte 1 of every record. */
typedef enum {
    SCHEMA_KIND_PARTNER = 1,
    SCHEMA_KIND_SETTINGS = 2,
    SCHEMA_KIND_HOSTED = 3,
} schema_kind_t;

typedef enum {
    SCHEMA_BOOL,        /* bool; JSON true/false; CLI true|false|yes|no|1|0 */
    SCHEMA_U32,         /* uint32_t within [min, max] */
    SCHEMA_U32_OPT,     /* uint32_t within [min, max] plus a bool "is set" at offset_aux;
                           JSON null / CLI "" or "unset" clears it */
    SCHEMA_U64,         /* uint64_t, read-only (revision) */
    SCHEMA_ENUM,        /* an int-sized enum; names in `names`, parsed loosely (case, '-', ' ') */
    SCHEMA_TEXT,        /* char[size]; printable UTF-8, length <= max */
    SCHEMA_SECRET,      /* like TEXT, never printed or exported unless asked */
    SCHEMA_PATH,        /* char[size]; absolute path, or "" when min == 0 */
    SCHEMA_DOMAIN,      /* char[DOMAIN_BUF]; normalised with domain_normalize() */
    SCHEMA_DOMAIN_LIST, /* char[max][DOMAIN_BUF] plus uint32_t count at offset_aux */
    SCHEMA_HOSTPORT,    /* char[DOMAIN_BUF] host plus uint16_t port at offset_aux (0 = none);
                           text form "host", "host:port", "[v6]:port" */
    SCHEMA_LISTEN,      /* char[size] "addr:port" with port required, or "" = disabled */
} schema_type_t;

enum {
    SCHEMA_F_KEY = 1u << 0,      /* the record key (primary domain, hosted domain) */
    SCHEMA_F_REQUIRED = 1u << 1, /* must be non-empty */
    SCHEMA_F_READONLY = 1u << 2, /* maintained by the store (revision); ignored on input */
    SCHEMA_F_SECRET = 1u << 3,   /* hidden in get/export/audit unless asked */
};

typedef struct {
    uint8_t tag;      /* TLV tag, unique within its schema, never reused */
    const char *name; /* field name in C and in messages ("connection_limit") */
    const char *json; /* JSON member name (same as name today; documented in store.md) */
    const char *cli;  /* CLI option without dashes ("connection-limit"), NULL if none */
    const char *lync; /* Lync property / PowerShell CSV column, NULL if none */
    schema_type_t type;
    size_t offset;            /* of the value in the struct */
    size_t offset_aux;        /* U32_OPT: bool set; DOMAIN_LIST: uint32_t count; HOSTPORT: port */
    size_t size;              /* bytes of the value storage (char arrays) */
    uint64_t min, max;        /* U32: value bounds; TEXT/PATH/SECRET: length; LIST: count max */
    uint64_t def;             /* default for BOOL/U32/U64/ENUM (enum value) */
    const char *def_str;      /* default for text types, NULL = "" */
    const char *const *names; /* ENUM: value names indexed by value, NULL-terminated */
    unsigned flags;           /* SCHEMA_F_* */
    const char *help;         /* one line for --help and the web form */
} schema_field_t;

typedef struct {
    const char *name; /* "partner", "settings", "hosted" */
    schema_kind_t kind;
    size_t struct_size;
    const schema_field_t *fields;
    size_t nfields;
} schema_t;

extern const schema_t schema_partner;  /* partner_t, partner.h */
extern const schema_t schema_settings; /* settings_t, settings.h */
extern const schema_t schema_hosted;   /* hosted_t, hosted.h */

/* Every field to its default (zeroes the struct first). */
void schema_defaults(const schema_t *s, void *obj);

/* Row whose name, json, cli or lync name equals `name` (case-insensitive for lync), or NULL. */
const schema_field_t *schema_find(const schema_t *s, const char *name);

/*
 * Parse the text form of one value (CLI option, CSV cell, form field) into obj. 0, or FG_EPARSE /
 * FG_EDOMAIN / FG_ELIMIT with `err` holding one line naming the field and the value:
 * `connection-limit: "-3" is not a number between 0 and 100000`. For DOMAIN_LIST the text is a
 * list separated by commas only (surrounding spaces trimmed, see schema_parse_list) and replaces
 * the list. READONLY fields return FG_EREFUSED.
 */
int schema_parse_value(const schema_field_t *f, void *obj, const char *text, char *err,
                       size_t errlen);

/*
 * The element form of a DOMAIN_LIST (JSON arrays): each element is trimmed of surrounding spaces
 * and tabs, blank ones are skipped, and every other element must be one valid domain (a comma or
 * an inner space makes it invalid). Replaces the list; on error the list is unchanged and `err`
 * holds the same line schema_parse_value gives for that element.
 */
int schema_parse_list(const schema_field_t *f, void *obj, const char *const *items, size_t n,
                      char *err, size_t errlen);

/* Text form of one value; secrets print as "(set)"/"(unset)" unless show_secret. Returns strlen
   of the full text (snprintf rule). */
size_t schema_format_value(const schema_field_t *f, const void *obj, bool show_secret, char *out,
                           size_t outlen);

/* Bounds and syntax of every field (not cross-field rules: see partner_validate and friends).
   Appends one REPORT_ERROR per bad field; returns the number of errors added. */
size_t schema_check(const schema_t *s, const void *obj, report_t *rep);

/* Equality of one field / of the stored fields (READONLY fields ignored). */
bool schema_field_equal(const schema_field_t *f, const void *a, const void *b);
bool schema_equal(const schema_t *s, const void *a, const void *b);

/*
 * Binary record codec. schema_encode writes into out (cap bytes): 0 and *len, or FG_ELIMIT.
 * SCHEMA_RECORD_MAX always suffices. schema_decode starts from defaults, then applies every known
 * tag: 0, FG_EVERSION (newer version byte), FG_EPARSE (truncated, wrong kind, bad length or value
 * out of bounds). Decoding never reads past len and never allocates.
 */
#define SCHEMA_RECORD_MAX 65536
int schema_encode(const schema_t *s, const void *obj, uint8_t *out, size_t cap, size_t *len);
int schema_decode(const schema_t *s, const uint8_t *in, size_t len, void *obj);
/* Version byte of an encoded record, or FG_EPARSE when empty. */
int schema_record_version(const uint8_t *in, size_t len);
