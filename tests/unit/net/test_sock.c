/* Tests for src/net/sock.c: address parsing and listening on a free port. */
#include <unistd.h>
#include "test.h"
#include "net/sock.h"
#include "common/error.h"

SL_TEST(parse_addresses)
{
    char host[SL_HOST_MAX];
    int port;
    SL_CHECK_OK(sl_sock_parse_addr("127.0.0.1:9092", host, &port));
    SL_CHECK_STR(host, "127.0.0.1");
    SL_CHECK_INT(port, 9092);
    SL_CHECK_OK(sl_sock_parse_addr("[::1]:0", host, &port));
    SL_CHECK_STR(host, "::1");
    SL_CHECK_INT(port, 0);
    SL_CHECK_OK(sl_sock_parse_addr(":9000", host, &port));
    SL_CHECK_STR(host, "");
    SL_CHECK_INT(sl_sock_parse_addr("localhost", host, &port), SL_EINVAL);
    SL_CHECK_INT(sl_sock_parse_addr("h:65536", host, &port), SL_EINVAL);
    SL_CHECK_INT(sl_sock_parse_addr("h:12x", host, &port), SL_EINVAL);
    SL_CHECK_INT(sl_sock_parse_addr("h:", host, &port), SL_EINVAL);
}

SL_TEST(listen_on_port_zero_reports_the_real_port)
{
    int fd, port;
    SL_CHECK_OK(sl_sock_listen("127.0.0.1", 0, 16, &fd, &port));
    SL_CHECK(port > 0);
    int fd2, port2;
    SL_CHECK_INT(sl_sock_listen("127.0.0.1", port, 16, &fd2, &port2), SL_EBUSY);
    char peer[64];
    SL_CHECK_INT(sl_sock_accept(fd, peer, sizeof peer), SL_EAGAIN);
    close(fd);
}
