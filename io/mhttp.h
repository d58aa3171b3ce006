/*
 * mhttp: the /metrics endpoint. A deliberately tiny HTTP/1.0 responder on the connection layer:
 * it reads one request (bounded to 4 KiB), answers `GET /metrics` with the registry's text
 * exposition (up to 4 MiB, sent in pieces as the connection drains) and anything else with 404,
 * then closes. It is meant for a loopback port scraped by
 * Prometheus, not for the Internet.
 *
 * Ownership: the registry is borrowed and must outlive the worker group.
 */
#pragma once

#include "io/metrics.h"
#include "io/worker.h"

/* Listens on sa (port 0: a free port, written back) on worker `worker` only. Before wgroup_start.
 * 0 or -errno / FG_ELIMIT from wgroup_listen_one. */
int mhttp_listen(wgroup_t *g, unsigned worker, struct sockaddr_storage *sa, metrics_t *m);
