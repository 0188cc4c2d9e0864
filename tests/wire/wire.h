/*
 * wire.h - helpers for wire tests: a broker in a thread of the test
 * process, raw sockets to it, and builders for requests and record
 * batches. Requests are encoded with the project's codecs except where a
 * test spells out golden bytes; responses are checked field by field.
 */
#ifndef SL_TEST_WIRE_H
#define SL_TEST_WIRE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include "test.h"
#include "broker/broker.h"
#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "kafka/gen_errors.h"
#include "kafka/gen_messages.h"
#include "kafka/header.h"
#include "kafka/wire.h"

typedef struct wbroker {
    sl_broker *broker;
    pthread_t thread;
    int port;
    sl_broker_config cfg;
} wbroker;

static void *wbroker_main(void *arg)
{
    wbroker *w = arg;
    sl_broker_run(w->broker);
    return NULL;
}

static SL_UNUSED void wbroker_config(wbroker *w, const char *subdir)
{
    sl_broker_config_default(&w->cfg);
    snprintf(w->cfg.data_dir, sizeof w->cfg.data_dir, "%s/%s", sl_test_tmpdir(), subdir ? subdir : "data");
    w->cfg.listen_port = 0;
    w->cfg.handle_signals = false;
    sl_logger_set_level(SL_LOG_WARN);
}

static SL_UNUSED void wbroker_start(wbroker *w)
{
    SL_CHECK_OK(sl_broker_open(&w->cfg, &w->broker));
    w->port = sl_broker_port(w->broker);
    SL_CHECK(pthread_create(&w->thread, NULL, wbroker_main, w) == 0);
}

static SL_UNUSED void wbroker_stop(wbroker *w)
{
    sl_broker_shutdown(w->broker);
    pthread_join(w->thread, NULL);
    sl_broker_close(w->broker);
    w->broker = NULL;
}

static SL_UNUSED int wconnect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    SL_CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    SL_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static SL_UNUSED void wsend(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        SL_CHECK(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes; returns 0, or -1 if the peer closed first. Waits up to timeout_ms. */
static SL_UNUSED int wrecv_exact(int fd, void *data, size_t len, int timeout_ms)
{
    uint8_t *p = data;
    while (len) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, timeout_ms) <= 0) return -2;
        ssize_t n = read(fd, p, len);
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Receives one response frame (without its size); caller frees. NULL if closed. */
static SL_UNUSED uint8_t *wrecv_frame(int fd, size_t *len, int timeout_ms)
{
    uint8_t sz[4];
    if (wrecv_exact(fd, sz, 4, timeout_ms) != 0) return NULL;
    *len = sl_be32(sz);
    uint8_t *buf = sl_malloc(*len ? *len : 1);
    SL_CHECK_OK(wrecv_exact(fd, buf, *len, timeout_ms));
    return buf;
}

/* Returns true if the broker closed the connection (read returns 0) within timeout_ms. */
static SL_UNUSED bool wclosed(int fd, int timeout_ms)
{
    uint8_t b;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, timeout_ms) <= 0) return false;
    return read(fd, &b, 1) <= 0;
}

typedef int (*wenc_fn)(const void *msg, sl_kwriter *w, int16_t version);

/* Frames a request: size, header (v1 or v2 by flexibility), body from `enc`. */
static SL_UNUSED void wrequest(sl_buf *out, int16_t key, int16_t version, int32_t corr, wenc_fn enc, const void *msg)
{
    sl_buf_init(out, 64 << 20);
    sl_kwriter w;
    sl_kwriter_init(&w, out, NULL, 0);
    uint8_t hdr[12] = {0};
    sl_put_be16(hdr + 4, (uint16_t)key);
    sl_put_be16(hdr + 6, (uint16_t)version);
    sl_put_be32(hdr + 8, (uint32_t)corr);
    sl_buf_append(out, hdr, sizeof hdr);
    static const uint8_t client[] = {0, 4, 't', 'e', 's', 't'};
    sl_buf_append(out, client, sizeof client);
    const sl_kafka_api_info *api = sl_kafka_api_find(key);
    if (api && api->flexible_min >= 0 && version >= api->flexible_min) sl_buf_append(out, "\0", 1);
    SL_CHECK_OK(enc(msg, &w, version));
    SL_CHECK_OK(w.err);
    sl_put_be32(out->data, (uint32_t)(out->len - 4));
}

/* Sends a request and receives its response; checks the correlation id; returns the body reader. */
static SL_UNUSED uint8_t *wcall(int fd, int16_t key, int16_t version, int32_t corr, wenc_fn enc, const void *msg,
                                sl_kreader *body)
{
    sl_buf req;
    wrequest(&req, key, version, corr, enc, msg);
    wsend(fd, req.data, req.len);
    sl_buf_deinit(&req);
    size_t len;
    uint8_t *resp = wrecv_frame(fd, &len, 10000);
    SL_CHECK(resp != NULL);
    SL_CHECK(len >= 4);
    SL_CHECK_INT((int32_t)sl_be32(resp), corr);
    size_t hlen = (size_t)(4 + sl_kafka_response_header_version(key, version));
    sl_kreader_init(body, resp + hlen, len - hlen);
    return resp;
}

/*
 * Builds an uncompressed v2 batch of n records with key "k<i>", value
 * "value-<i>" and one header "h"="<i>", CRC-32C computed. Returns its size.
 */
static SL_UNUSED size_t wbatch(uint8_t *out, size_t cap, int n, int64_t ts)
{
    uint8_t *p = out + 61;
    for (int i = 0; i < n; i++) {
        uint8_t rec[128];
        char key[16], val[32], hv[16];
        int kl = snprintf(key, sizeof key, "k%d", i), vl = snprintf(val, sizeof val, "value-%d", i);
        int hl = snprintf(hv, sizeof hv, "%d", i);
        size_t r = 0;
        rec[r++] = 0;                      /* attributes */
        rec[r++] = 0;                      /* timestamp delta (zig-zag 0) */
        rec[r++] = (uint8_t)(i * 2);       /* offset delta, zig-zag, i < 64 */
        rec[r++] = (uint8_t)(kl * 2);
        memcpy(rec + r, key, (size_t)kl), r += (size_t)kl;
        rec[r++] = (uint8_t)(vl * 2);
        memcpy(rec + r, val, (size_t)vl), r += (size_t)vl;
        rec[r++] = 2;                      /* one header */
        rec[r++] = 2;                      /* key length 1 */
        rec[r++] = 'h';
        rec[r++] = (uint8_t)(hl * 2);
        memcpy(rec + r, hv, (size_t)hl), r += (size_t)hl;
        SL_CHECK((size_t)(p - out) + r + 1 <= cap && r < 64);
        *p++ = (uint8_t)(r * 2);           /* record length, zig-zag */
        memcpy(p, rec, r);
        p += r;
    }
    size_t len = (size_t)(p - out);
    memset(out, 0, 61);
    sl_put_be32(out + 8, (uint32_t)(len - 12));
    sl_put_be32(out + 12, 0xffffffffu);
    out[16] = 2;
    sl_put_be32(out + 23, (uint32_t)(n - 1));
    sl_put_be64(out + 27, (uint64_t)ts);
    sl_put_be64(out + 35, (uint64_t)ts);
    sl_put_be64(out + 43, (uint64_t)-1);
    sl_put_be16(out + 51, 0xffff);
    sl_put_be32(out + 53, 0xffffffffu);
    sl_put_be32(out + 57, (uint32_t)n);
    sl_put_be32(out + 17, sl_crc32c(0, out + 21, len - 21));
    return len;
}

/* Creates `topic` (default partitions) through Metadata v6 auto-creation. */
static SL_UNUSED void wtopic(int fd, const char *topic)
{
    sl_MetadataRequest m;
    sl_MetadataRequest_init(&m);
    sl_MetadataRequest_MetadataRequestTopic t = {.Name = {topic, (int32_t)strlen(topic)}};
    m.Topics.items = &t;
    m.Topics.count = 1;
    m.AllowAutoTopicCreation = true;
    sl_kreader r;
    sl_free(wcall(fd, 3, 6, 90, (wenc_fn)sl_MetadataRequest_encode, &m, &r));
}

/* ListOffsets v3 of topic/partition at ts (-1 latest, -2 earliest); decodes with `arena`. */
static SL_UNUSED int64_t wlist_offset(int fd, const char *topic, int32_t partition, int64_t ts, sl_arena *arena)
{
    sl_ListOffsetsRequest m;
    sl_ListOffsetsRequest_init(&m);
    sl_ListOffsetsRequest_ListOffsetsPartition p = {.PartitionIndex = partition, .Timestamp = ts, .MaxNumOffsets = 1};
    sl_ListOffsetsRequest_ListOffsetsTopic t = {{topic, (int32_t)strlen(topic)}, {&p, 1}};
    m.ReplicaId = -1;
    m.Topics.items = &t;
    m.Topics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 2, 3, 91, (wenc_fn)sl_ListOffsetsRequest_encode, &m, &r);
    sl_ListOffsetsResponse lr;
    SL_CHECK_OK(sl_ListOffsetsResponse_decode(&lr, &r, 3, arena));
    SL_CHECK_INT(lr.Topics.items[0].Partitions.items[0].ErrorCode, 0);
    int64_t off = lr.Topics.items[0].Partitions.items[0].Offset;
    sl_free(resp);
    return off;
}

#endif
