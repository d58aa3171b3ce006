/*
 * xq: the only way work moves between threads. A bounded single-producer/single-consumer ring of
 * fixed-size messages; the consumer's wake-up (an eventfd its ring has a read armed on) is rung by
 * the producer only when the consumer said it is about to sleep, so a busy or spinning worker
 * receives messages without any system call.
 *
 * Ownership: a message is copied into the ring. A pointer inside it (`ptr`) changes owner with the
 * message: the producer must not touch what it points to after a successful push, the consumer
 * frees it (or passes it on). Exactly one thread pushes and exactly one pops each queue.
 */
#pragma once

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t type; /* meaning defined by the daemon; 0 is reserved */
    uint32_t from; /* producer worker index (or the control thread's index) */
    uint64_t arg;
    void *ptr; /* ownership moves to the consumer */
} xq_msg_t;

typedef struct {
    /* Producer and consumer indexes on their own cache lines so the two threads don't false-share.
     */
    _Alignas(64) _Atomic uint32_t head; /* next slot to pop (consumer writes) */
    _Alignas(64) _Atomic uint32_t tail; /* next slot to fill (producer writes) */
    _Alignas(64) uint32_t mask;
    xq_msg_t *ring;
} xq_t;

/* cap is rounded up to a power of two. 0 or -ENOMEM. */
int xq_init(xq_t *q, uint32_t cap);
void xq_destroy(xq_t *q);
/* Producer side. 0, or FG_ELIMIT when the queue is full (the message is not queued). */
int xq_push(xq_t *q, const xq_msg_t *m);
/* Consumer side. 1 with *m filled, or 0 when empty. */
int xq_pop(xq_t *q, xq_msg_t *m);
/* Consumer side: messages waiting (a snapshot). */
uint32_t xq_len(xq_t *q);

/*
 * The consumer's wake-up. `sleeping` is set by the consumer just before it blocks in the kernel and
 * cleared when it wakes; producers ring the eventfd only when it is set.
 */
typedef struct {
    int efd;
    _Alignas(64) _Atomic int sleeping;
    _Atomic uint64_t rings; /* eventfd writes issued, for benchmarks and tests */
} xq_wake_t;

/* Creates the eventfd. 0 or -errno. */
int xq_wake_init(xq_wake_t *w);
void xq_wake_destroy(xq_wake_t *w);
/* Producer, after pushing: wakes the consumer if it sleeps. */
void xq_wake_ring(xq_wake_t *w);
