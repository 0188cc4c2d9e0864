/* Tests for src/net/outq.c: memory pieces and file ranges arrive in order; refs are released. */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include "test.h"
#include "net/outq.h"
#include "common/alloc.h"
#include "common/error.h"

static int released;
static void release(void *ref) { released += (int)(intptr_t)ref; }

static size_t drain(int fd, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, out + n, cap - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    return n;
}

SL_TEST(memory_and_file_pieces_in_order)
{
    char path[512];
    snprintf(path, sizeof path, "%s/f", sl_test_tmpdir());
    int ffd = open(path, O_RDWR | O_CREAT, 0644);
    SL_CHECK(ffd >= 0);
    SL_CHECK_INT(write(ffd, "0123456789", 10), 10);
    int sv[2];
    SL_CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    sl_outq q;
    sl_outq_init(&q);
    uint8_t *owned = sl_malloc(6);
    memcpy(owned, "ABCDEF", 6);
    sl_outq_push_mem(&q, owned, 3, NULL);
    sl_outq_push_file(&q, ffd, 2, 5, (void *)7, release);
    sl_outq_push_mem(&q, owned + 3, 3, owned);
    sl_outq_push_mem(&q, (const uint8_t *)"", 0, NULL);
    SL_CHECK_INT(q.bytes, 11);
    SL_CHECK_OK(sl_outq_flush(&q, sv[0]));
    SL_CHECK(sl_outq_empty(&q));
    SL_CHECK_INT(released, 7);
    uint8_t got[64];
    size_t n = drain(sv[1], got, sizeof got);
    SL_CHECK_INT(n, 11);
    SL_CHECK_MEM(got, "ABC23456DEF", 11);
    close(sv[0]);
    close(sv[1]);
    close(ffd);
}

SL_TEST(full_socket_returns_eagain_and_resumes)
{
    int sv[2];
    SL_CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    sl_outq q;
    sl_outq_init(&q);
    size_t total = 1 << 20;
    uint8_t *big = sl_malloc(total);
    for (size_t i = 0; i < total; i++) big[i] = (uint8_t)(i * 7);
    sl_outq_push_mem(&q, big, total, big);
    uint8_t *got = sl_malloc(total);
    size_t n = 0;
    int rounds = 0, rc;
    while ((rc = sl_outq_flush(&q, sv[0])) == SL_EAGAIN) {
        n += drain(sv[1], got + n, total - n);
        rounds++;
        SL_CHECK(rounds < 100000);
    }
    SL_CHECK_OK(rc);
    n += drain(sv[1], got + n, total - n);
    SL_CHECK_INT(n, total);
    SL_CHECK(rounds > 1);
    for (size_t i = 0; i < total; i++)
        if (got[i] != (uint8_t)(i * 7)) SL_CHECK(!"byte mismatch");
    sl_free(got);
    close(sv[0]);
    close(sv[1]);
}

SL_TEST(clear_releases_unsent_refs)
{
    sl_outq q;
    sl_outq_init(&q);
    released = 0;
    sl_outq_push_file(&q, 0, 0, 100, (void *)3, release);
    static const uint8_t ten[10];
    sl_outq_push_mem(&q, ten, 10, NULL);
    uint8_t *owned = sl_malloc(4);
    sl_outq_push_mem(&q, owned, 4, owned);
    sl_outq_clear(&q);
    SL_CHECK_INT(released, 3);
    SL_CHECK(sl_outq_empty(&q));
}
