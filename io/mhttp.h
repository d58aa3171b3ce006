/*
 * mhttp: the /metrics endpoint. A deliberately tiny HTTP/1.0 responder: it reads one request
 * (bounded to 4 KiB), answers `GET /metrics` with the registry's text exposition (bounded, 4 MiB by
 * default) and anything else with 404, then closes. It is meant for a loopback port scraped by
 * Prometheus and by `fedgate-admin status`, not for the Internet.
 *
 * The daemon serves it with mhttp_start(): a thread of its own (poll() on non-blocking sockets)
 * that never carries stanzas, so a scrape answers in milliseconds however busy the workers are.
 * The thread is bounded: a fixed number of connections at once (when all are taken, the oldest one
 * that has not finished its request is dropped for the newcomer), a deadline for the request and
 * one for the response, so a slow or hostile client cannot stall it. Everything the registry's
 * collectors read must therefore be safe to read from a non-worker thread (atomics or a mutex).
 *
 * mhttp_listen() is the older variant on a worker's ring (conn layer), kept for processes that
 * have no thread to spare; the daemon does not use it.
 *
 * Ownership: the registry is borrowed and must outlive the server (mhttp_stop) or the worker group
 * (mhttp_listen); so must whatever its collectors read. The server owns its sockets and thread.
 */
#pragma once

#include <stddef.h>
#include <sys/socket.h>

#include "io/metrics.h"
#include "io/worker.h"

#define MHTTP_REQ_MAX  4096
#define MHTTP_BODY_MAX (4u * 1024u * 1024u)

typedef struct mhttp mhttp_t;

/* Zero fields take the default. */
typedef struct {
    unsigned max_clients;      /* connections served at once (default 8, at most 64) */
    unsigned read_timeout_ms;  /* the whole request, counted from accept (default 2000) */
    unsigned write_timeout_ms; /* the whole response, counted from the request (default 5000) */
    size_t body_max;           /* exposition bound; beyond it the answer is 500 (default 4 MiB) */
} mhttp_config_t;

/*
 * Listens on sa (port 0: a free port, written back) and starts the server thread. cfg may be NULL.
 * 0 with *out set, or -errno (socket, bind, thread creation), -ENOMEM.
 */
int mhttp_start(mhttp_t **out, struct sockaddr_storage *sa, metrics_t *m,
                const mhttp_config_t *cfg);
/* Stops the thread (joined), closes every connection and the listener, frees h. NULL is a no-op. */
void mhttp_stop(mhttp_t *h);

/* Listens on sa (port 0: written back) on worker `worker` only. Before wgroup_start.
 * 0 or -errno / FG_ELIMIT from wgroup_listen_one. */
int mhttp_listen(wgroup_t *g, unsigned worker, struct sockaddr_storage *sa, metrics_t *m);
