#include "io/xq.h"

#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/err.h"

int xq_init(xq_t *q, uint32_t cap)
{
    uint32_t n = 2;
    while (n < cap && n < (1u << 30))
        n <<= 1;
    atomic_store(&q->head, 0);
    atomic_store(&q->tail, 0);
    q->mask = n - 1;
    q->ring = calloc(n, sizeof(*q->ring));
    return q->ring ? 0 : -ENOMEM;
}

void xq_destroy(xq_t *q)
{
    free(q->ring);
    q->ring = NULL;
}

int xq_push(xq_t *q, const xq_msg_t *m)
{
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
    if (tail - head > q->mask)
        return FG_ELIMIT;
    q->ring[tail & q->mask] = *m;
    /* Release: the consumer that sees the new tail also sees the message. */
    atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
    return 0;
}

int xq_pop(xq_t *q, xq_msg_t *m)
{
    uint32_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);
    if (head == tail)
        return 0;
    *m = q->ring[head & q->mask];
    atomic_store_explicit(&q->head, head + 1, memory_order_release);
    return 1;
}

uint32_t xq_len(xq_t *q)
{
    return atomic_load_explicit(&q->tail, memory_order_acquire) -
           atomic_load_explicit(&q->head, memory_order_relaxed);
}

int xq_wake_init(xq_wake_t *w)
{
    atomic_store(&w->sleeping, 0);
    atomic_store(&w->rings, 0);
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    return w->efd < 0 ? -errno : 0;
}

void xq_wake_destroy(xq_wake_t *w)
{
    if (w->efd >= 0)
        close(w->efd);
    w->efd = -1;
}

void xq_wake_ring(xq_wake_t *w)
{
    /* Sequentially consistent with the consumer's "set sleeping, then re-check the queues": either
     * the consumer sees our message or we see its flag (Dekker pattern), never neither. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&w->sleeping, memory_order_relaxed))
        return;
    /* Clearing here ensures many producers to one sleeper cost one write, not one each. */
    if (!atomic_exchange(&w->sleeping, 0))
        return;
    uint64_t one = 1;
    atomic_fetch_add_explicit(&w->rings, 1, memory_order_relaxed);
    ssize_t r = write(w->efd, &one, sizeof(one));
    (void)r; /* EAGAIN means the counter is already non-zero: the consumer will wake anyway */
}
