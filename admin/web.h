/*
 * The fedgate control panel: `fedgate-admin serve`, a libmicrohttpd server that hands out the
 * embedded page and the JSON API under /api/ (partners, gateway settings, hosted domains, access
 * policy, audit, session). Every change goes through the same validated policy operations as the
 * CLI, so the panel and the CLI refuse the same inputs with the same messages.
 *
 * Ownership: web_main() borrows argv and store_path for the length of the call; it owns the store
 * handle, the HTTP daemon and every session, and releases them before it returns.
 */
#pragma once

/*
 * Entry point of `fedgate-admin serve [--listen ADDR:PORT] [--cert FILE --key FILE]
 * [--session-ttl SECONDS] [--pid-file FILE]`. argv[0] is "serve". Listens on 127.0.0.1:8443 by
 * default (HTTPS when --cert and --key are given, plain HTTP otherwise) and runs until SIGINT or
 * SIGTERM. Returns the process exit status: 0 after a clean stop, 2 for a usage error, 5 when the
 * store cannot be opened or the listener cannot start.
 */
int web_main(int argc, char **argv, const char *store_path);
