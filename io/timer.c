#include "io/timer.h"

#include <stdlib.h>
#include <time.h>

#include "core/err.h"

int timer_heap_init(timer_heap_t *h, uint32_t cap)
{
    h->heap = calloc(cap ? cap : 1, sizeof(*h->heap));
    h->len = 0;
    h->cap = cap;
    h->seq = 0;
    return h->heap ? 0 : -ENOMEM;
}

void timer_heap_free(timer_heap_t *h)
{
    free(h->heap);
    h->heap = NULL;
    h->len = h->cap = 0;
}

uint64_t timer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void timer_init(timer_ent_t *t, timer_fn_t fn, void *arg)
{
    t->deadline = 0;
    t->pos = 0;
    t->seq = 0;
    t->fn = fn;
    t->arg = arg;
}

static int before(const timer_ent_t *a, const timer_ent_t *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    /* Wrap-safe comparison of insertion order. */
    return (int32_t)(a->seq - b->seq) < 0;
}

static void place(timer_heap_t *h, uint32_t i, timer_ent_t *t)
{
    h->heap[i] = t;
    t->pos = i + 1;
}

static void sift_up(timer_heap_t *h, uint32_t i)
{
    timer_ent_t *t = h->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(t, h->heap[p]))
            break;
        place(h, i, h->heap[p]);
        i = p;
    }
    place(h, i, t);
}

static void sift_down(timer_heap_t *h, uint32_t i)
{
    timer_ent_t *t = h->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        const timer_ent_t *best = t;
        if (l < h->len && before(h->heap[l], best)) {
            m = l;
            best = h->heap[l];
        }
        if (l + 1 < h->len && before(h->heap[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        place(h, i, h->heap[m]);
        i = m;
    }
    place(h, i, t);
}

static void remove_at(timer_heap_t *h, uint32_t i)
{
    timer_ent_t *t = h->heap[i];
    timer_ent_t *last = h->heap[--h->len];
    t->pos = 0;
    if (i == h->len)
        return;
    place(h, i, last);
    if (i > 0 && before(last, h->heap[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}

int timer_arm_at(timer_heap_t *h, timer_ent_t *t, uint64_t deadline_ns)
{
    if (t->pos)
        remove_at(h, t->pos - 1);
    if (h->len >= h->cap)
        return FG_ELIMIT;
    t->deadline = deadline_ns;
    t->seq = h->seq++;
    place(h, h->len++, t);
    sift_up(h, h->len - 1);
    return 0;
}

void timer_cancel(timer_heap_t *h, timer_ent_t *t)
{
    if (t->pos)
        remove_at(h, t->pos - 1);
}

uint64_t timer_next(const timer_heap_t *h)
{
    return h->len ? h->heap[0]->deadline : UINT64_MAX;
}

unsigned timer_run(timer_heap_t *h, uint64_t now)
{
    unsigned fired = 0;
    /* Only timers armed before this call may fire: anything armed by a callback gets a sequence
     * number at or past `stop`. */
    uint32_t stop = h->seq;
    while (h->len && h->heap[0]->deadline <= now && (int32_t)(h->heap[0]->seq - stop) < 0) {
        timer_ent_t *t = h->heap[0];
        remove_at(h, 0);
        fired++;
        t->fn(t, t->arg);
    }
    return fired;
}
