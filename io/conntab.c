#include "io/conntab.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int conntab_init(conntab_t *t, uint32_t cap, size_t entry_size)
{
    memset(t, 0, sizeof(*t));
    t->entry_size = (entry_size + 15u) & ~(size_t)15u;
    t->cap = cap;
    t->slots = calloc(cap ? cap : 1, t->entry_size);
    t->free_list = calloc(cap ? cap : 1, sizeof(uint32_t));
    if (!t->slots || !t->free_list) {
        conntab_free_all(t);
        return -ENOMEM;
    }
    /* Lowest indexes on top of the stack so a fresh table hands out 0, 1, 2, ... */
    for (uint32_t i = 0; i < cap; i++) {
        conntab_hdr_t *h = (conntab_hdr_t *)(t->slots + (size_t)i * t->entry_size);
        h->idx = i;
        h->gen = 1;
        t->free_list[cap - 1 - i] = i;
    }
    t->nfree = cap;
    return 0;
}

void conntab_free_all(conntab_t *t)
{
    free(t->slots);
    free(t->free_list);
    t->slots = NULL;
    t->free_list = NULL;
    t->cap = t->nfree = t->used = 0;
}

void *conntab_at(const conntab_t *t, uint32_t idx)
{
    if (idx >= t->cap)
        return NULL;
    return t->slots + (size_t)idx * t->entry_size;
}

void *conntab_alloc(conntab_t *t)
{
    if (t->nfree == 0)
        return NULL;
    uint32_t idx = t->free_list[--t->nfree];
    conntab_hdr_t *h = conntab_at(t, idx);
    uint32_t gen = h->gen;
    memset(h, 0, t->entry_size);
    h->idx = idx;
    h->gen = gen;
    h->in_use = 1;
    t->used++;
    return h;
}

void conntab_free(conntab_t *t, void *entry)
{
    conntab_hdr_t *h = entry;
    if (!h || !h->in_use)
        return;
    h->in_use = 0;
    /* Generation 0 is never used so a zeroed tag never matches a live slot. */
    h->gen = (h->gen + 1) & CONNTAB_GEN_MASK;
    if (h->gen == 0)
        h->gen = 1;
    t->free_list[t->nfree++] = h->idx;
    t->used--;
}

void *conntab_get(const conntab_t *t, uint32_t idx, uint32_t gen)
{
    conntab_hdr_t *h = conntab_at(t, idx);
    if (!h || !h->in_use || h->gen != gen)
        return NULL;
    return h;
}
