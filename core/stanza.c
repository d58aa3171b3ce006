#include "core/stanza.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

typedef struct block {
    struct block *next;
    size_t size; /* bytes of data[] */
    size_t used;
    _Alignas(16) unsigned char data[];
} block_t;

struct stanza_arena {
    block_t *head; /* blocks in allocation order; reset goes back to head */
    block_t *cur;
    size_t max;      /* upper bound of reserved */
    size_t reserved; /* block bytes held, headers included */
    size_t used;     /* bytes handed out since reset */
    uint64_t mallocs;
    int err;
};

/* Small first block: an idle stream holds only its header (~450 bytes); stanzas grow the
   arena to its working size once, and the blocks are then reused. */
#define ARENA_FIRST_BLOCK 1024

int stanza_arena_new(stanza_arena_t **out, size_t max_bytes)
{
    stanza_arena_t *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->max = max_bytes;
    *out = a;
    return 0;
}

void stanza_arena_free(stanza_arena_t *a)
{
    if (!a)
        return;
    block_t *b = a->head;
    while (b) {
        block_t *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void stanza_arena_reset(stanza_arena_t *a)
{
    a->cur = a->head;
    if (a->cur)
        a->cur->used = 0;
    a->used = 0;
    a->err = 0;
}

stanza_mark_t stanza_arena_mark(const stanza_arena_t *a)
{
    stanza_mark_t m = {a->cur, a->cur ? a->cur->used : 0, a->used};
    return m;
}

void stanza_arena_reset_to(stanza_arena_t *a, stanza_mark_t m)
{
    if (!m.block) {
        stanza_arena_reset(a);
        return;
    }
    a->cur = m.block;
    a->cur->used = m.used;
    a->used = m.total;
    a->err = 0;
}

void stanza_arena_set_max(stanza_arena_t *a, size_t max_bytes)
{
    a->max = max_bytes;
}

void stanza_arena_trim(stanza_arena_t *a)
{
    if (!a->head)
        return;
    block_t *b = a->head->next;
    while (b) {
        block_t *next = b->next;
        a->reserved -= sizeof(block_t) + b->size;
        free(b);
        b = next;
    }
    a->head->next = NULL;
    stanza_arena_reset(a);
}

void stanza_arena_trim_to(stanza_arena_t *a, stanza_mark_t m)
{
    if (!m.block) {
        stanza_arena_trim(a);
        return;
    }
    stanza_arena_reset_to(a, m);
    /* Blocks are chained in the order the current cycle uses them, so everything after the
       mark's block lies above the mark. */
    block_t *mb = m.block;
    block_t *b = mb->next;
    while (b) {
        block_t *next = b->next;
        a->reserved -= sizeof(block_t) + b->size;
        free(b);
        b = next;
    }
    mb->next = NULL;
}

int stanza_arena_error(const stanza_arena_t *a)
{
    return a->err;
}

void stanza_arena_stats(const stanza_arena_t *a, stanza_arena_stats_t *out)
{
    out->used = a->used;
    out->reserved = a->reserved;
    out->mallocs = a->mallocs;
}

static void *arena_fail(stanza_arena_t *a, int err)
{
    if (!a->err)
        a->err = err;
    return NULL;
}

void *stanza_arena_alloc(stanza_arena_t *a, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (n == 0)
        n = 8;
    block_t *b = a->cur;
    if (b && b->size - b->used >= n)
        goto bump;
    /* Reuse the blocks kept by a reset before growing. */
    while (b && b->next) {
        b = b->next;
        b->used = 0;
        a->cur = b;
        if (b->size >= n)
            goto bump;
    }
    size_t size = b ? b->size * 2 : ARENA_FIRST_BLOCK;
    while (size < n)
        size *= 2;
    if (sizeof(block_t) + size > a->max - a->reserved || a->reserved > a->max) {
        /* Fall back to the smallest block that fits before refusing. */
        size = n;
        if (a->reserved > a->max || sizeof(block_t) + size > a->max - a->reserved)
            return arena_fail(a, FG_ELIMIT);
    }
    block_t *nb = malloc(sizeof(block_t) + size);
    if (!nb)
        return arena_fail(a, -ENOMEM);
    a->mallocs++;
    a->reserved += sizeof(block_t) + size;
    nb->size = size;
    nb->used = 0;
    if (b) {
        /* Insert after the current block so blocks past it stay in the chain. */
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = a->head;
        a->head = nb;
    }
    a->cur = b = nb;
bump:;
    void *p = b->data + b->used;
    b->used += n;
    a->used += n;
    return p;
}

char *stanza_arena_strndup(stanza_arena_t *a, const char *s, size_t n)
{
    char *p = stanza_arena_alloc(a, n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *stanza_arena_strdup(stanza_arena_t *a, const char *s)
{
    return stanza_arena_strndup(a, s, strlen(s));
}

/* ---- reading ---- */

const char *stanza_name(const stanza_t *e)
{
    return e ? e->name : NULL;
}

const char *stanza_ns(const stanza_t *e)
{
    return e && e->name ? e->ns : NULL;
}

const char *stanza_prefix(const stanza_t *e)
{
    return e ? e->prefix : NULL;
}

bool stanza_is_text(const stanza_t *e)
{
    return e && !e->name;
}

bool stanza_is(const stanza_t *e, const char *ns, const char *name)
{
    if (!e || !e->name)
        return false;
    if (name && strcmp(e->name, name) != 0)
        return false;
    return !ns || strcmp(e->ns, ns) == 0;
}

const char *stanza_attr_ns(const stanza_t *e, const char *ns, const char *name)
{
    if (!e)
        return NULL;
    for (uint16_t i = 0; i < e->nattrs; i++) {
        const stanza_attr_t *at = &e->attrs[i];
        if (strcmp(at->name, name) == 0 && strcmp(at->ns, ns) == 0)
            return at->value;
    }
    return NULL;
}

const char *stanza_attr(const stanza_t *e, const char *name)
{
    return stanza_attr_ns(e, "", name);
}

const char *stanza_to(const stanza_t *e)
{
    return stanza_attr(e, "to");
}

const char *stanza_from(const stanza_t *e)
{
    return stanza_attr(e, "from");
}

const char *stanza_type(const stanza_t *e)
{
    return stanza_attr(e, "type");
}

const char *stanza_id(const stanza_t *e)
{
    return stanza_attr(e, "id");
}

const char *stanza_lang(const stanza_t *e)
{
    return stanza_attr_ns(e, STANZA_NS_XML, "lang");
}

static bool prefix_equal(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

const char *stanza_decl(const stanza_t *e, const char *prefix)
{
    if (!e)
        return NULL;
    for (uint16_t i = 0; i < e->ndecls; i++)
        if (prefix_equal(e->decls[i].prefix, prefix))
            return e->decls[i].uri;
    return NULL;
}

static stanza_t *next_element(stanza_t *n)
{
    while (n && !n->name)
        n = n->next;
    return n;
}

stanza_t *stanza_first_child(const stanza_t *e)
{
    return e ? next_element(e->first) : NULL;
}

stanza_t *stanza_next_sibling(const stanza_t *e)
{
    return e ? next_element(e->next) : NULL;
}

stanza_t *stanza_child(const stanza_t *e, const char *ns, const char *name)
{
    for (stanza_t *c = stanza_first_child(e); c; c = stanza_next_sibling(c))
        if (stanza_is(c, ns, name))
            return c;
    return NULL;
}

size_t stanza_child_count(const stanza_t *e)
{
    size_t n = 0;
    for (stanza_t *c = stanza_first_child(e); c; c = stanza_next_sibling(c))
        n++;
    return n;
}

const char *stanza_text(const stanza_t *e, size_t *len)
{
    for (stanza_t *c = e ? e->first : NULL; c; c = c->next)
        if (!c->name) {
            if (len)
                *len = c->text_len;
            return c->text;
        }
    if (len)
        *len = 0;
    return "";
}

/* ---- building ---- */

static unsigned depth_of(const stanza_t *e)
{
    unsigned d = 0;
    for (; e; e = e->parent)
        d++;
    return d;
}

static void append_child(stanza_t *parent, stanza_t *c)
{
    c->parent = parent;
    if (parent->last)
        parent->last->next = c;
    else
        parent->first = c;
    parent->last = c;
}

stanza_t *stanza_new(stanza_arena_t *a, stanza_t *parent, const char *ns, const char *name)
{
    if (a->err)
        return NULL;
    if (!name || (parent && !parent->name))
        return arena_fail(a, -EINVAL);
    if (parent && depth_of(parent) >= STANZA_MAX_DEPTH)
        return arena_fail(a, FG_ELIMIT);
    stanza_t *e = stanza_arena_alloc(a, sizeof(*e));
    if (!e)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->name = stanza_arena_strdup(a, name);
    e->ns = ns && *ns ? stanza_arena_strdup(a, ns) : "";
    if (!e->name || !e->ns)
        return NULL;
    if (parent)
        append_child(parent, e);
    return e;
}

int stanza_set_prefix(stanza_arena_t *a, stanza_t *e, const char *prefix)
{
    if (!e || !e->name)
        return -EINVAL;
    if (!prefix || !*prefix) {
        e->prefix = NULL;
        return 0;
    }
    const char *p = stanza_arena_strdup(a, prefix);
    if (!p)
        return a->err;
    e->prefix = p;
    return 0;
}

/* Room for one more attribute; arrays grow by copying inside the arena. */
static int attrs_grow(stanza_arena_t *a, stanza_t *e)
{
    if (e->nattrs < e->attrs_cap)
        return 0;
    if (e->attrs_cap >= UINT16_MAX / 2)
        return FG_ELIMIT;
    uint16_t cap = e->attrs_cap ? e->attrs_cap * 2 : 4;
    stanza_attr_t *n = stanza_arena_alloc(a, sizeof(*n) * cap);
    if (!n)
        return a->err;
    if (e->nattrs)
        memcpy(n, e->attrs, sizeof(*n) * e->nattrs);
    e->attrs = n;
    e->attrs_cap = cap;
    return 0;
}

int stanza_set_attr_ns(stanza_arena_t *a, stanza_t *e, const char *ns, const char *prefix,
                       const char *name, const char *value)
{
    if (!e || !e->name || !name)
        return -EINVAL;
    if (!ns)
        ns = "";
    if (prefix && !*prefix)
        prefix = NULL;
    /* A namespaced attribute needs a prefix to be written at all. */
    if ((*ns != '\0') != (prefix != NULL))
        return -EINVAL;
    for (uint16_t i = 0; i < e->nattrs; i++) {
        stanza_attr_t *at = &e->attrs[i];
        if (strcmp(at->name, name) != 0 || strcmp(at->ns, ns) != 0)
            continue;
        if (!value) {
            memmove(at, at + 1, sizeof(*at) * (size_t)(e->nattrs - i - 1));
            e->nattrs--;
            return 0;
        }
        size_t vlen = strlen(value);
        char *v = stanza_arena_strndup(a, value, vlen);
        if (!v)
            return a->err;
        at->value = v;
        at->value_len = (uint32_t)vlen;
        return 0;
    }
    if (!value)
        return 0;
    int ret = attrs_grow(a, e);
    if (ret < 0)
        return ret;
    size_t vlen = strlen(value);
    stanza_attr_t at = {
        .name = stanza_arena_strdup(a, name),
        .ns = *ns ? stanza_arena_strdup(a, ns) : "",
        .prefix = prefix ? stanza_arena_strdup(a, prefix) : NULL,
        .value = stanza_arena_strndup(a, value, vlen),
        .value_len = (uint32_t)vlen,
    };
    if (a->err)
        return a->err;
    e->attrs[e->nattrs++] = at;
    return 0;
}

int stanza_set_attr(stanza_arena_t *a, stanza_t *e, const char *name, const char *value)
{
    return stanza_set_attr_ns(a, e, "", NULL, name, value);
}

int stanza_add_decl(stanza_arena_t *a, stanza_t *e, const char *prefix, const char *uri)
{
    if (!e || !e->name || !uri)
        return -EINVAL;
    if (e->ndecls == e->decls_cap) {
        if (e->decls_cap >= UINT16_MAX / 2)
            return FG_ELIMIT;
        uint16_t cap = e->decls_cap ? e->decls_cap * 2 : 4;
        stanza_nsdecl_t *n = stanza_arena_alloc(a, sizeof(*n) * cap);
        if (!n)
            return a->err;
        if (e->ndecls)
            memcpy(n, e->decls, sizeof(*n) * e->ndecls);
        e->decls = n;
        e->decls_cap = cap;
    }
    stanza_nsdecl_t d = {
        .prefix = prefix && *prefix ? stanza_arena_strdup(a, prefix) : NULL,
        .uri = stanza_arena_strdup(a, uri),
    };
    if (a->err)
        return a->err;
    e->decls[e->ndecls++] = d;
    return 0;
}

int stanza_add_text(stanza_arena_t *a, stanza_t *e, const char *text, size_t len)
{
    if (!e || !e->name)
        return -EINVAL;
    if (len > UINT32_MAX)
        return FG_ELIMIT;
    if (memchr(text, '\0', len))
        return -EINVAL;
    stanza_t *t = stanza_arena_alloc(a, sizeof(*t));
    if (!t)
        return a->err;
    memset(t, 0, sizeof(*t));
    char *s = stanza_arena_strndup(a, text, len);
    if (!s)
        return a->err;
    t->text = s;
    t->text_len = (uint32_t)len;
    append_child(e, t);
    return 0;
}

static stanza_t *clone_rec(stanza_arena_t *dst, stanza_t *parent, const stanza_t *e, unsigned depth)
{
    if (depth > STANZA_MAX_DEPTH)
        return arena_fail(dst, FG_ELIMIT);
    stanza_t *c = stanza_new(dst, parent, e->ns, e->name);
    if (!c)
        return NULL;
    if (e->prefix && stanza_set_prefix(dst, c, e->prefix) < 0)
        return NULL;
    for (uint16_t i = 0; i < e->ndecls; i++)
        if (stanza_add_decl(dst, c, e->decls[i].prefix, e->decls[i].uri) < 0)
            return NULL;
    if (e->nattrs) {
        c->attrs = stanza_arena_alloc(dst, sizeof(stanza_attr_t) * e->nattrs);
        if (!c->attrs)
            return NULL;
        c->attrs_cap = e->nattrs;
        for (uint16_t i = 0; i < e->nattrs; i++) {
            const stanza_attr_t *at = &e->attrs[i];
            stanza_attr_t *ct = &c->attrs[i];
            ct->name = stanza_arena_strdup(dst, at->name);
            ct->ns = *at->ns ? stanza_arena_strdup(dst, at->ns) : "";
            ct->prefix = at->prefix ? stanza_arena_strdup(dst, at->prefix) : NULL;
            ct->value = stanza_arena_strndup(dst, at->value, at->value_len);
            ct->value_len = at->value_len;
        }
        c->nattrs = e->nattrs;
        if (dst->err)
            return NULL;
    }
    for (const stanza_t *k = e->first; k; k = k->next) {
        if (!k->name) {
            if (stanza_add_text(dst, c, k->text, k->text_len) < 0)
                return NULL;
        } else if (!clone_rec(dst, c, k, depth + 1)) {
            return NULL;
        }
    }
    return c;
}

stanza_t *stanza_clone(stanza_arena_t *dst, const stanza_t *e)
{
    if (dst->err)
        return NULL;
    if (!e || !e->name)
        return arena_fail(dst, -EINVAL);
    return clone_rec(dst, NULL, e, 1);
}

/* ---- writing ---- */

static const stanza_nsdecl_t s2s_decls[] = {
    {NULL, STANZA_NS_SERVER},
    {"stream", STANZA_NS_STREAM},
    {"db", STANZA_NS_DIALBACK},
};
const stanza_scope_t stanza_scope_s2s = {s2s_decls, 3};

static const stanza_nsdecl_t component_decls[] = {
    {NULL, STANZA_NS_COMPONENT},
    {"stream", STANZA_NS_STREAM},
};
const stanza_scope_t stanza_scope_component = {component_decls, 2};

/* Declarations an element adds beyond those recorded on it. More than this many distinct
   undeclared prefixes on one element is refused (a parsed element has at most its own prefix and
   its attributes' prefixes, and real stanzas use one or two). */
#define FRAME_ADDED_MAX 16

/* The namespace bindings written on one element, linked to its parent's frame. */
typedef struct frame {
    const struct frame *up;
    const stanza_nsdecl_t *scope; /* only in the root frame: the output stream's scope */
    size_t nscope;
    stanza_nsdecl_t added[FRAME_ADDED_MAX]; /* declarations written on the element */
    size_t nadded;
} frame_t;

/* URI bound to prefix (NULL: default namespace) at this frame; "" when the default namespace is
   unset, NULL for an unbound prefix. */
static const char *frame_lookup(const frame_t *f, const char *prefix)
{
    if (prefix && strcmp(prefix, "xml") == 0)
        return STANZA_NS_XML;
    for (; f; f = f->up) {
        for (size_t i = 0; i < f->nadded; i++)
            if (prefix_equal(f->added[i].prefix, prefix))
                return f->added[i].uri;
        for (size_t i = 0; i < f->nscope; i++)
            if (prefix_equal(f->scope[i].prefix, prefix))
                return f->scope[i].uri;
    }
    return prefix ? NULL : "";
}

/* Binding in force where the element of frame f starts (its parent's scope). */
static const char *parent_lookup(const frame_t *f, const char *prefix)
{
    if (f->up)
        return frame_lookup(f->up, prefix);
    for (size_t i = 0; i < f->nscope; i++)
        if (prefix_equal(f->scope[i].prefix, prefix))
            return f->scope[i].uri;
    return prefix ? NULL : "";
}

/* True when this element's own written declarations already bind prefix. */
static bool frame_declares(const frame_t *f, const char *prefix)
{
    for (size_t i = 0; i < f->nadded; i++)
        if (prefix_equal(f->added[i].prefix, prefix))
            return true;
    return false;
}

/* Make prefix → uri visible at this element, adding a declaration when the scope does not bind it
   that way. A conflicting declaration on the element itself cannot be written (FG_EPROTO). */
static int frame_need(frame_t *f, const char *prefix, const char *uri)
{
    if (prefix && strcmp(prefix, "xml") == 0)
        return strcmp(uri, STANZA_NS_XML) == 0 ? 0 : FG_EPROTO;
    const char *cur = frame_lookup(f, prefix);
    if (cur && strcmp(cur, uri) == 0)
        return 0;
    if (frame_declares(f, prefix))
        return FG_EPROTO;
    if (f->nadded == FRAME_ADDED_MAX)
        return FG_ELIMIT;
    f->added[f->nadded].prefix = prefix;
    f->added[f->nadded].uri = uri;
    f->nadded++;
    return 0;
}

static inline int put(buf_t *out, const char *s, size_t n)
{
    return buf_append(out, s, n);
}

static inline int puts_(buf_t *out, const char *s)
{
    return buf_append(out, s, strlen(s));
}

/* Bit 1: escaped in text, bit 2: escaped in attribute values. */
static const uint8_t escape_class[256] = {
    ['&'] = 3, ['<'] = 3, ['>'] = 3, ['\r'] = 3, ['\''] = 2, ['"'] = 2, ['\t'] = 2, ['\n'] = 2,
};

static const char *escape_of(char c)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '\r':
        return "&#xD;";
    case '\'':
        return "&apos;";
    case '"':
        return "&quot;";
    case '\t':
        return "&#x9;";
    default:
        return "&#xA;";
    }
}

int stanza_write_escaped(buf_t *out, const char *s, size_t len, bool attr)
{
    const uint8_t mask = attr ? 2 : 1;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (!(escape_class[(unsigned char)s[i]] & mask))
            continue;
        int ret = put(out, s + run, i - run);
        if (ret == 0)
            ret = puts_(out, escape_of(s[i]));
        if (ret < 0)
            return ret;
        run = i + 1;
    }
    return put(out, s + run, len - run);
}

static int write_qname(buf_t *out, const char *prefix, const char *name)
{
    int ret = 0;
    if (prefix) {
        ret = puts_(out, prefix);
        if (ret == 0)
            ret = put(out, ":", 1);
    }
    return ret ? ret : puts_(out, name);
}

static int write_decl(buf_t *out, const stanza_nsdecl_t *d)
{
    int ret = put(out, d->prefix ? " xmlns:" : " xmlns", d->prefix ? 7 : 6);
    if (ret == 0 && d->prefix)
        ret = puts_(out, d->prefix);
    if (ret == 0)
        ret = put(out, "='", 2);
    if (ret == 0)
        ret = stanza_write_escaped(out, d->uri, strlen(d->uri), true);
    return ret ? ret : put(out, "'", 1);
}

/* Namespace rename applied while writing (NULL from: none). */
typedef struct {
    const char *from, *to;
} nsmap_t;

static const char *map_ns(const nsmap_t *m, const char *ns)
{
    return m && m->from && strcmp(ns, m->from) == 0 ? m->to : ns;
}

/* Writes "<qname decls attrs" of e into out with frame f set up for e's children. */
static int write_start(buf_t *out, const stanza_t *e, frame_t *f, const nsmap_t *m)
{
    /* Recorded declarations are written unless the scope already says the same thing. */
    stanza_nsdecl_t kept[FRAME_ADDED_MAX];
    size_t nkept = 0;
    for (uint16_t i = 0; i < e->ndecls; i++) {
        const stanza_nsdecl_t *d = &e->decls[i];
        if (d->prefix && strcmp(d->prefix, "xml") == 0)
            continue;
        const char *uri = map_ns(m, d->uri);
        const char *cur = parent_lookup(f, d->prefix);
        if (cur && strcmp(cur, uri) == 0)
            continue;
        if (nkept == FRAME_ADDED_MAX)
            return FG_ELIMIT;
        kept[nkept].prefix = d->prefix;
        kept[nkept].uri = uri;
        nkept++;
    }
    memcpy(f->added, kept, sizeof(kept[0]) * nkept);
    f->nadded = nkept;

    int ret = frame_need(f, e->prefix, map_ns(m, e->ns));
    for (uint16_t i = 0; ret == 0 && i < e->nattrs; i++)
        if (e->attrs[i].prefix)
            ret = frame_need(f, e->attrs[i].prefix, e->attrs[i].ns);
    if (ret < 0)
        return ret;

    ret = put(out, "<", 1);
    if (ret == 0)
        ret = write_qname(out, e->prefix, e->name);
    for (size_t i = 0; ret == 0 && i < f->nadded; i++)
        ret = write_decl(out, &f->added[i]);
    for (uint16_t i = 0; ret == 0 && i < e->nattrs; i++) {
        const stanza_attr_t *at = &e->attrs[i];
        ret = put(out, " ", 1);
        if (ret == 0)
            ret = write_qname(out, at->prefix, at->name);
        if (ret == 0)
            ret = put(out, "='", 2);
        if (ret == 0)
            ret = stanza_write_escaped(out, at->value, at->value_len, true);
        if (ret == 0)
            ret = put(out, "'", 1);
    }
    return ret;
}

static int write_elem(buf_t *out, const stanza_t *e, const frame_t *up, const stanza_scope_t *scope,
                      const nsmap_t *m, unsigned depth)
{
    if (depth > STANZA_MAX_DEPTH)
        return FG_ELIMIT;
    frame_t f = {.up = up};
    if (!up && scope) {
        f.scope = scope->decls;
        f.nscope = scope->n;
    }
    int ret = write_start(out, e, &f, m);
    if (ret < 0)
        return ret;
    if (!e->first)
        return put(out, "/>", 2);
    ret = put(out, ">", 1);
    for (const stanza_t *c = e->first; ret == 0 && c; c = c->next) {
        if (!c->name)
            ret = stanza_write_escaped(out, c->text, c->text_len, false);
        else
            ret = write_elem(out, c, &f, NULL, m, depth + 1);
    }
    if (ret == 0)
        ret = put(out, "</", 2);
    if (ret == 0)
        ret = write_qname(out, e->prefix, e->name);
    return ret ? ret : put(out, ">", 1);
}

int stanza_write(buf_t *out, const stanza_t *e, const stanza_scope_t *scope)
{
    if (!e || !e->name)
        return -EINVAL;
    size_t len0 = out->len;
    int ret = write_elem(out, e, NULL, scope, NULL, 1);
    if (ret < 0)
        out->len = len0;
    return ret;
}

int stanza_write_ns(buf_t *out, const stanza_t *e, const stanza_scope_t *scope, const char *from_ns,
                    const char *to_ns)
{
    if (!e || !e->name || !from_ns || !to_ns)
        return -EINVAL;
    nsmap_t m = {from_ns, to_ns};
    size_t len0 = out->len;
    int ret = write_elem(out, e, NULL, scope, &m, 1);
    if (ret < 0)
        out->len = len0;
    return ret;
}

int stanza_write_open(buf_t *out, const stanza_t *e, const stanza_scope_t *scope)
{
    if (!e || !e->name)
        return -EINVAL;
    size_t len0 = out->len;
    frame_t f = {0};
    if (scope) {
        f.scope = scope->decls;
        f.nscope = scope->n;
    }
    int ret = write_start(out, e, &f, NULL);
    if (ret == 0)
        ret = put(out, ">", 1);
    if (ret < 0)
        out->len = len0;
    return ret;
}

/* ---- errors ---- */

bool stanza_is_unbounceable(const stanza_t *st)
{
    const char *type = stanza_type(st);
    if (!type)
        return false;
    if (strcmp(type, "error") == 0)
        return true;
    return strcmp(type, "result") == 0 && strcmp(st->name, "iq") == 0;
}

stanza_t *stanza_bounce(stanza_arena_t *a, const stanza_t *st, const char *err_type,
                        const char *condition, const char *text)
{
    if (a->err)
        return NULL;
    if (!st || !st->name || !err_type || !condition)
        return arena_fail(a, -EINVAL);
    if (stanza_is_unbounceable(st))
        return NULL;
    stanza_t *r = stanza_new(a, NULL, st->ns, st->name);
    if (!r || stanza_set_prefix(a, r, st->prefix) < 0)
        return NULL;
    const char *to = stanza_from(st), *from = stanza_to(st), *id = stanza_id(st);
    if ((to && stanza_set_attr(a, r, "to", to) < 0) ||
        (from && stanza_set_attr(a, r, "from", from) < 0) ||
        (id && stanza_set_attr(a, r, "id", id) < 0) || stanza_set_attr(a, r, "type", "error") < 0)
        return NULL;
    /* The error element is in the stanza's own (content) namespace, the condition in the
       stanza-error namespace (RFC 6120 §8.3.2). */
    stanza_t *err = stanza_new(a, r, st->ns, "error");
    if (!err || stanza_set_prefix(a, err, st->prefix) < 0 ||
        stanza_set_attr(a, err, "type", err_type) < 0)
        return NULL;
    if (!stanza_new(a, err, STANZA_NS_STANZAS, condition))
        return NULL;
    if (text) {
        stanza_t *t = stanza_new(a, err, STANZA_NS_STANZAS, "text");
        if (!t || stanza_add_text(a, t, text, strlen(text)) < 0)
            return NULL;
    }
    return r;
}
