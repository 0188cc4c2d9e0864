/*
 * sock.c - listening and accepting (see sock.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "net/sock.h"
#include "common/error.h"
#include "common/log.h"

int sl_sock_parse_addr(const char *text, char host[SL_HOST_MAX], int *port)
{
    const char *colon = strrchr(text, ':');
    if (!colon) return SL_EINVAL;
    const char *h = text;
    size_t hlen = (size_t)(colon - text);
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen >= SL_HOST_MAX) return SL_EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535) return SL_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    *port = (int)p;
    return 0;
}

static int bound_port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int sl_sock_listen(const char *host, int port, int backlog, int *fd_out, int *bound_port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char pstr[16];
    snprintf(pstr, sizeof pstr, "%d", port);
    int grc = getaddrinfo(host[0] ? host : NULL, pstr, &hints, &res);
    if (grc != 0) {
        SL_ERROR("net", "cannot resolve listen address '%s': %s", host, gai_strerror(grc));
        return SL_EINVAL;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0) break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        SL_ERROR("net", "cannot listen on %s:%d: %s", host, port, strerror(err));
        return err == EADDRINUSE ? SL_EBUSY : SL_EIO;
    }
    *fd_out = fd;
    *bound_port = bound_port_of(fd);
    return 0;
}

int sl_sock_accept(int listen_fd, char *peer, size_t peer_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return SL_EAGAIN;
        return sl_error_from_errno(errno);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char ip[INET6_ADDRSTRLEN] = "?";
    int p = 0;
    if (ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, sizeof ip);
        p = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    } else {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, sizeof ip);
        p = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    snprintf(peer, peer_len, "%s:%d", ip, p);
    return fd;
}
