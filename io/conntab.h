/*
 * conntab: a worker's bounded table of connection slots, and the io_uring completion tag.
 *
 * Every SQE a worker submits carries a 64-bit user_data tag = (op, slot index, generation). A
 * slot's generation increases each time the slot is freed, so a completion that arrives after its
 * connection was closed and the slot reused carries an old generation and is recognised as stale:
 * conntab_get() returns NULL for it and the worker ignores it (only recycling any provided buffer).
 *
 * Ownership: the table owns the slot array (entries of `entry_size` bytes each, zeroed when
 * allocated). Pointers returned by conntab_alloc/conntab_get are borrowed until conntab_free of
 * that slot. Not thread-safe: one table per worker.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Operation kinds carried in the completion tag. */
enum {
    IOOP_NONE = 0,
    IOOP_ACCEPT,   /* idx = listener index */
    IOOP_RECV,     /* idx = connection slot */
    IOOP_SEND,     /* idx = connection slot */
    IOOP_CONNECT,  /* idx = connection slot */
    IOOP_LINK_TMO, /* idx = connection slot (timeout linked to a connect) */
    IOOP_CANCEL,   /* idx = connection slot */
    IOOP_XQ_WAKE,  /* eventfd read of the cross-worker queue */
    IOOP_DNS_POLL, /* idx = DNS socket slot */
    IOOP_DNS_CANCEL,
    IOOP_NOP, /* tests and wake-ups */
    IOOP_MAX_
};

#define CONNTAB_GEN_BITS 24u
#define CONNTAB_GEN_MASK ((1u << CONNTAB_GEN_BITS) - 1u)

static inline uint64_t iotag_make(unsigned op, uint32_t idx, uint32_t gen)
{
    return ((uint64_t)(op & 0xffu) << 56) | ((uint64_t)(gen & CONNTAB_GEN_MASK) << 32) | idx;
}
static inline unsigned iotag_op(uint64_t tag)
{
    return (unsigned)(tag >> 56);
}
static inline uint32_t iotag_idx(uint64_t tag)
{
    return (uint32_t)tag;
}
static inline uint32_t iotag_gen(uint64_t tag)
{
    return (uint32_t)(tag >> 32) & CONNTAB_GEN_MASK;
}

/* Every table entry starts with this header. */
typedef struct {
    uint32_t idx;
    uint32_t gen; /* current generation of the slot */
    uint8_t in_use;
} conntab_hdr_t;

typedef struct {
    uint8_t *slots;
    size_t entry_size;
    uint32_t cap;
    uint32_t used;
    uint32_t *free_list; /* stack of free slot indexes */
    uint32_t nfree;
} conntab_t;

/* entry_size >= sizeof(conntab_hdr_t). 0 or -ENOMEM. */
int conntab_init(conntab_t *t, uint32_t cap, size_t entry_size);
void conntab_free_all(conntab_t *t);
/* A zeroed entry (apart from its header), or NULL when all cap slots are in use. */
void *conntab_alloc(conntab_t *t);
/* Returns the slot to the table and bumps its generation: tags made before this are stale. */
void conntab_free(conntab_t *t, void *entry);
/* The live entry the tag's (idx, gen) names, or NULL if out of range, free, or stale. */
void *conntab_get(const conntab_t *t, uint32_t idx, uint32_t gen);
/* Entry at idx whatever its state (for iteration); NULL when out of range. */
void *conntab_at(const conntab_t *t, uint32_t idx);
