/*
 * timer: a per-worker min-heap of deadlines. Each worker owns one heap and drives it from its ring:
 * the loop waits at most until the earliest deadline, then fires everything that is due. Nothing
 * here is thread-safe; only the owning worker touches its heap.
 *
 * Ownership: the heap stores borrowed pointers to timer_ent_t objects that live inside their
 * owners (a connection, the DNS state, a listener). An owner must timer_cancel() its entries before
 * freeing them. The heap itself is a fixed array allocated once (bounded capacity).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct timer_ent timer_ent_t;
typedef void (*timer_fn_t)(timer_ent_t *t, void *arg);

struct timer_ent {
    uint64_t deadline; /* monotonic ns */
    uint32_t pos;      /* index in the heap + 1; 0 = not armed */
    uint32_t seq;      /* insertion order: equal deadlines fire first-in first-out */
    timer_fn_t fn;
    void *arg;
};

typedef struct {
    timer_ent_t **heap;
    uint32_t len;
    uint32_t cap;
    uint32_t seq;
} timer_heap_t;

/* Allocates room for cap entries. 0 or -ENOMEM. */
int timer_heap_init(timer_heap_t *h, uint32_t cap);
void timer_heap_free(timer_heap_t *h);
/* Monotonic clock in nanoseconds. */
uint64_t timer_now_ns(void);
void timer_init(timer_ent_t *t, timer_fn_t fn, void *arg);
static inline int timer_armed(const timer_ent_t *t)
{
    return t->pos != 0;
}
/* (Re)arms t at the absolute deadline. 0, or FG_ELIMIT when the heap is full. */
int timer_arm_at(timer_heap_t *h, timer_ent_t *t, uint64_t deadline_ns);
/* Removes t if armed; a no-op otherwise. */
void timer_cancel(timer_heap_t *h, timer_ent_t *t);
/* Earliest deadline, or UINT64_MAX when nothing is armed. */
uint64_t timer_next(const timer_heap_t *h);
/* Disarms and calls every timer due at `now`, in deadline order; returns how many fired. A callback
 * may re-arm its own timer or others: a timer re-armed for `now` or earlier fires on the next call,
 * never in the same one, so a callback cannot keep this loop busy forever. */
unsigned timer_run(timer_heap_t *h, uint64_t now);
