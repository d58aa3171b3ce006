/*
 * listen: listening sockets and the file descriptor budget.
 *
 * Every worker gets its own SO_REUSEPORT socket on each listening address, so the kernel spreads
 * incoming connections over the workers without any shared accept queue in user space.
 * The process may hold at most RLIMIT_NOFILE descriptors (20,000 on the production box, and the
 * hard limit cannot be raised): listen_fd_budget() says how many connections fit once a reserve for
 * everything else (rings, eventfds, listeners, DNS sockets, the store, logs) is kept aside; the
 * worker group never admits more, so EMFILE stays an exception that is handled, not the limit.
 *
 * Ownership: returned fds belong to the caller.
 */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

/* socket + SO_REUSEADDR (+ SO_REUSEPORT) + TCP_NODELAY (inherited by accepted sockets) + bind +
 * listen(backlog 4096). 0 or -errno. */
int listen_open(const struct sockaddr_storage *sa, bool reuseport, int *fd_out);
/* getsockname into *sa. 0 or -errno. */
int listen_local_addr(int fd, struct sockaddr_storage *sa);
/* Connections that fit under the soft RLIMIT_NOFILE after `reserve` descriptors (0 if none). */
unsigned listen_fd_budget(unsigned reserve);
/* Parses "1.2.3.4:port", "[::1]:port" (IPv6 must be bracketed) or ":port" (IPv4 any). Numeric
 * addresses only. 0 or FG_EPARSE. */
int listen_parse_addr(const char *text, struct sockaddr_storage *sa);
/* Formats "ip:port" / "[ip6]:port" into out. */
void listen_format_addr(const struct sockaddr_storage *sa, char *out, size_t outlen);
/* Port of an AF_INET/AF_INET6 address (host order). */
unsigned listen_port(const struct sockaddr_storage *sa);
/* Size of the sockaddr inside sa. */
socklen_t listen_addr_len(const struct sockaddr_storage *sa);
