/*
 * sock.h - TCP sockets for the broker: parse HOST:PORT, listen, accept.
 * All sockets are non-blocking and close-on-exec; accepted ones have
 * TCP_NODELAY (Kafka responses are latency-sensitive and already batched).
 */
#ifndef SL_NET_SOCK_H
#define SL_NET_SOCK_H

#include "common/base.h"

#define SL_HOST_MAX 256

/* "host:port", "[v6]:port" or ":port" -> host (empty = all) and port. */
int sl_sock_parse_addr(const char *text, char host[SL_HOST_MAX], int *port);
/* Listens on host:port (port 0 = any free port); *bound_port is the real one. */
int sl_sock_listen(const char *host, int port, int backlog, int *fd_out, int *bound_port);
/* Accepts one connection: fd >= 0, SL_EAGAIN when none is pending, or another error. */
int sl_sock_accept(int listen_fd, char *peer, size_t peer_len);

#endif
