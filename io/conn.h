/*
 * conn: per-connection byte I/O on a worker's ring, and the handler interface the daemon plugs its
 * TLS + stream engine into.
 *
 * A connection lives on exactly one worker and every callback runs on that worker's thread.
 * Received bytes arrive through multishot recv into the worker's provided buffer ring; sends are
 * queued per connection (bounded: conn_send refuses past the bound, that is the backpressure
 * signal) and flushed once per loop iteration, so several conn_send() calls in one batch become one
 * send SQE.
 *
 * Lifecycle: on_open once (accepted, or connected), then any number of on_data / on_writable /
 * on_timer, then on_close exactly once — whether the handler called conn_close(), the peer closed,
 * an error happened or an outgoing connect failed (then on_close comes without on_open). After
 * on_close returns the conn_t must not be used. on_close is never called from inside conn_close():
 * it is delivered from the worker loop after the current callback returns, so a handler may call
 * conn_close() and keep using its own state until then.
 *
 * Ownership: the worker owns conn_t. `data` given to on_data is borrowed until on_data returns (it
 * is a provided buffer that goes back to the kernel right after). conn_send copies. The handler
 * owns whatever it puts in the context pointer and frees it in on_close.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct conn conn_t;
typedef struct worker worker_t;

/* Timer ids a handler may use with conn_timer_arm (e.g. establishment, inactivity, keepalive). */
#define CONN_TIMERS 4

/* on_close reasons besides negative errno values from the kernel. */
#define CONN_CLOSED_LOCAL 0 /* the handler called conn_close() */
/* -EPIPE: the peer closed its side (EOF); -ETIMEDOUT: connect timed out; FG_ELIMIT: a bound hit. */

typedef struct {
    void (*on_open)(conn_t *c);
    void (*on_data)(conn_t *c, const uint8_t *data, size_t len);
    /* The send queue drained to half its bound after conn_send() refused or conn_want_writable()
     * asked. Optional. */
    void (*on_writable)(conn_t *c);
    void (*on_timer)(conn_t *c, unsigned id);
    void (*on_close)(conn_t *c, int reason);
} conn_ops_t;

/* Queues bytes (copied). 0, FG_ELIMIT when the bound would be exceeded (nothing is queued; the
 * handler gets on_writable later), -EPIPE if the connection is closing. An outgoing connection
 * accepts bytes while it connects; they are sent once it is open. */
int conn_send(conn_t *c, const void *data, size_t len);
/* Bytes queued and not yet acknowledged by the kernel. */
size_t conn_send_queued(const conn_t *c);
/* How many more bytes conn_send would take now. */
size_t conn_send_space(const conn_t *c);
/* Asks for on_writable once the queue is at most half full (soon, if it already is). */
void conn_want_writable(conn_t *c);
/* Flushes what is queued (bounded by the linger time), then closes. Idempotent. */
void conn_close(conn_t *c);
/* Releases the send buffers if nothing is queued (an idle connection then holds no buffer memory;
 * the next conn_send allocates again). For the daemon's inactivity/keepalive timer. */
void conn_trim(conn_t *c);
/* Closes without flushing (the peer misbehaved). Idempotent. */
void conn_abort(conn_t *c);
/* Stops / restarts delivery of on_data (receive-side backpressure). Bytes already received by the
 * kernel stay in its socket buffer; a few already completed may still be delivered after pause.
 * From its first pause on, a connection receives one buffer per receive operation (single-shot),
 * so what can still arrive after a later pause is one buffer. */
void conn_recv_pause(conn_t *c);
void conn_recv_resume(conn_t *c);
/* Arms timer `id` (< CONN_TIMERS) to fire on_timer after ms milliseconds, replacing an earlier
 * arming of the same id. 0 or -EINVAL. */
int conn_timer_arm(conn_t *c, unsigned id, uint64_t ms);
void conn_timer_cancel(conn_t *c, unsigned id);

void conn_set_ctx(conn_t *c, void *ctx);
/* For accepted connections, initially the listener's arg. */
void *conn_ctx(const conn_t *c);
int conn_fd(const conn_t *c);
worker_t *conn_worker(const conn_t *c);
/* A process-unique id for logs and for naming a connection in a cross-worker message: worker
 * index in the top bits, then slot generation and index. */
uint64_t conn_id(const conn_t *c);
/* The open connection `id` names, if it lives on w and is still the same connection (the slot's
 * generation matches); NULL otherwise. Call on w's thread. */
conn_t *conn_lookup(worker_t *w, uint64_t id);
/* The peer address (looked up on first use). */
const struct sockaddr_storage *conn_peer(conn_t *c);

/*
 * Opens an outgoing TCP connection from worker w (call on w's thread). The result comes as on_open,
 * or on_close(-errno / -ETIMEDOUT) if the connect fails or takes longer than timeout_ms (a timeout
 * linked to the connect SQE). 0 with *out set (may be NULL), FG_ELIMIT when the connection table is
 * full, or -errno when no socket could be made.
 */
int io_connect(worker_t *w, const struct sockaddr *sa, socklen_t salen, uint64_t timeout_ms,
               const conn_ops_t *ops, void *ctx, conn_t **out);
