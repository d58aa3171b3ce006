/* Stub: the implementation follows. */
#include "core/stanza.h"

#include "core/err.h"

static const stanza_nsdecl_t s2s_decls[] = {{NULL, STANZA_NS_SERVER}};
const stanza_scope_t stanza_scope_s2s = {s2s_decls, 1};
const stanza_scope_t stanza_scope_component = {s2s_decls, 1};

int stanza_arena_new(stanza_arena_t **out, size_t max_bytes)
{
    return 0;
}
void stanza_arena_free(stanza_arena_t *a)
{
}
void stanza_arena_reset(stanza_arena_t *a)
{
}
stanza_mark_t stanza_arena_mark(const stanza_arena_t *a)
{
    stanza_mark_t m = {0};
    return m;
}
void stanza_arena_reset_to(stanza_arena_t *a, stanza_mark_t m)
{
}
void stanza_arena_set_max(stanza_arena_t *a, size_t max_bytes)
{
}
void stanza_arena_trim(stanza_arena_t *a)
{
}
int stanza_arena_error(const stanza_arena_t *a)
{
    return 0;
}
void stanza_arena_stats(const stanza_arena_t *a, stanza_arena_stats_t *out)
{
}
void *stanza_arena_alloc(stanza_arena_t *a, size_t n)
{
    return NULL;
}
char *stanza_arena_strndup(stanza_arena_t *a, const char *s, size_t n)
{
    return NULL;
}
char *stanza_arena_strdup(stanza_arena_t *a, const char *s)
{
    return NULL;
}
const char *stanza_name(const stanza_t *e)
{
    return NULL;
}
const char *stanza_ns(const stanza_t *e)
{
    return NULL;
}
const char *stanza_prefix(const stanza_t *e)
{
    return NULL;
}
bool stanza_is_text(const stanza_t *e)
{
    return 0;
}
bool stanza_is(const stanza_t *e, const char *ns, const char *name)
{
    return 0;
}
const char *stanza_attr(const stanza_t *e, const char *name)
{
    return NULL;
}
const char *stanza_attr_ns(const stanza_t *e, const char *ns, const char *name)
{
    return NULL;
}
const char *stanza_to(const stanza_t *e)
{
    return NULL;
}
const char *stanza_from(const stanza_t *e)
{
    return NULL;
}
const char *stanza_type(const stanza_t *e)
{
    return NULL;
}
const char *stanza_id(const stanza_t *e)
{
    return NULL;
}
const char *stanza_lang(const stanza_t *e)
{
    return NULL;
}
const char *stanza_decl(const stanza_t *e, const char *prefix)
{
    return NULL;
}
stanza_t *stanza_first_child(const stanza_t *e)
{
    return NULL;
}
stanza_t *stanza_next_sibling(const stanza_t *e)
{
    return NULL;
}
stanza_t *stanza_child(const stanza_t *e, const char *ns, const char *name)
{
    return NULL;
}
size_t stanza_child_count(const stanza_t *e)
{
    return 0;
}
const char *stanza_text(const stanza_t *e, size_t *len)
{
    return NULL;
}
stanza_t *stanza_new(stanza_arena_t *a, stanza_t *parent, const char *ns, const char *name)
{
    return NULL;
}
int stanza_set_prefix(stanza_arena_t *a, stanza_t *e, const char *prefix)
{
    return 0;
}
int stanza_set_attr(stanza_arena_t *a, stanza_t *e, const char *name, const char *value)
{
    return 0;
}
int stanza_set_attr_ns(stanza_arena_t *a, stanza_t *e, const char *ns, const char *prefix,
                       const char *name, const char *value)
{
    return 0;
}
int stanza_add_decl(stanza_arena_t *a, stanza_t *e, const char *prefix, const char *uri)
{
    return 0;
}
int stanza_add_text(stanza_arena_t *a, stanza_t *e, const char *text, size_t len)
{
    return 0;
}
stanza_t *stanza_clone(stanza_arena_t *dst, const stanza_t *e)
{
    return NULL;
}
int stanza_write(buf_t *out, const stanza_t *e, const stanza_scope_t *scope)
{
    return 0;
}
int stanza_write_open(buf_t *out, const stanza_t *e, const stanza_scope_t *scope)
{
    return 0;
}
int stanza_write_escaped(buf_t *out, const char *s, size_t len, bool attr)
{
    return 0;
}
bool stanza_is_unbounceable(const stanza_t *st)
{
    return 0;
}
stanza_t *stanza_bounce(stanza_arena_t *a, const stanza_t *st, const char *err_type,
                        const char *condition, const char *text)
{
    return NULL;
}
