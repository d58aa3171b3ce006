/*
 * The live stream table for `fedgate-admin status`. The gateway publishes one
 * `fedgate_stream_info{...}` line per open stream on its metrics listener; the admin process never
 * links io/, so it reads that page with one plain HTTP/1.0 GET over loopback, parses the lines and
 * prints them.
 *
 * Ownership: cli_streams_fetch() fills a caller-owned buf_t (freed by the caller with buf_free);
 * rows handed to the callback point into that buffer's copy of a line and are valid only during
 * the call.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef struct {
    const char *id, *dir, *partner, *local, *remote, *state, *auth, *tls;
    uint64_t since; /* unix seconds the stream opened */
} cli_stream_row_t;

typedef void (*cli_stream_row_fn)(const cli_stream_row_t *row, void *ctx);

/* GET /metrics from ADDR:PORT ("127.0.0.1:9269", "[::1]:9269"; a wildcard address means this
   host). Waits at most timeout_ms in all. 0 and the body in *out, -ECONNREFUSED when nothing
   listens, -ETIMEDOUT, FG_EPARSE for an answer that is not HTTP 200, FG_ELIMIT past 4 MiB. */
int cli_streams_fetch(const char *addr, int timeout_ms, buf_t *out);

/* Calls fn (may be NULL: count only) for every fedgate_stream_info line of a metrics page;
   returns the number of rows. Lines that do not parse are skipped. */
size_t cli_streams_parse(const char *page, size_t len, cli_stream_row_fn fn, void *ctx);
