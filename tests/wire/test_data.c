/*
 * Wire tests of the data path: Metadata auto-create, Produce (acks, CRC,
 * size and name errors, storage errors through the fault table), Fetch
 * (exact bytes back, long-poll), ListOffsets, admin requests, restart.
 */
#include <time.h>
#include "wire.h"
#include "common/fileio.h"
#include "storage/batch.h"
#include "broker/broker_int.h"

static sl_arena arena;

static void metadata(int fd, const char *topic, int16_t *err, int32_t *nparts)
{
    sl_MetadataRequest m;
    sl_MetadataRequest_init(&m);
    sl_MetadataRequest_MetadataRequestTopic t;
    sl_MetadataRequest_MetadataRequestTopic_init(&t);
    t.Name = (sl_kstr){topic, (int32_t)strlen(topic)};
    m.Topics.items = &t;
    m.Topics.count = 1;
    m.AllowAutoTopicCreation = true;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 3, 5, 11, (wenc_fn)sl_MetadataRequest_encode, &m, &r);
    sl_MetadataResponse mr;
    SL_CHECK_OK(sl_MetadataResponse_decode(&mr, &r, 5, &arena));
    SL_CHECK_INT(mr.Brokers.count, 1);
    SL_CHECK_INT(mr.Topics.count, 1);
    *err = mr.Topics.items[0].ErrorCode;
    *nparts = mr.Topics.items[0].Partitions.count;
    sl_free(resp);
}

/* A one-partition Produce request; the structs live in *pr. */
typedef struct produce_req {
    sl_ProduceRequest m;
    sl_ProduceRequest_TopicProduceData td;
    sl_ProduceRequest_PartitionProduceData pd;
} produce_req;

static void produce_req_init(produce_req *pr, const char *topic, int32_t part, int16_t acks, const uint8_t *records,
                             size_t len)
{
    memset(pr, 0, sizeof *pr);
    sl_ProduceRequest_init(&pr->m);
    pr->pd.Index = part;
    pr->pd.Records.ptr = records;
    pr->pd.Records.len = (int32_t)len;
    pr->td.Name = (sl_kstr){topic, (int32_t)strlen(topic)};
    pr->td.PartitionData.items = &pr->pd;
    pr->td.PartitionData.count = 1;
    pr->m.Acks = acks;
    pr->m.TimeoutMs = 5000;
    pr->m.TopicData.items = &pr->td;
    pr->m.TopicData.count = 1;
}

/* Produces one records blob to topic/partition; returns error code and base offset. */
static int16_t produce(int fd, const char *topic, int32_t part, int16_t acks, uint8_t *records, size_t len,
                       int64_t *base)
{
    produce_req q;
    produce_req_init(&q, topic, part, acks, records, len);
    sl_kreader r;
    uint8_t *resp = wcall(fd, 0, 7, 21, (wenc_fn)sl_ProduceRequest_encode, &q.m, &r);
    sl_ProduceResponse pr;
    SL_CHECK_OK(sl_ProduceResponse_decode(&pr, &r, 7, &arena));
    SL_CHECK_INT(pr.Responses.count, 1);
    SL_CHECK_INT(pr.Responses.items[0].PartitionResponses.count, 1);
    int16_t err = pr.Responses.items[0].PartitionResponses.items[0].ErrorCode;
    *base = pr.Responses.items[0].PartitionResponses.items[0].BaseOffset;
    sl_free(resp);
    return err;
}

typedef struct fetched {
    int16_t err;
    int64_t hw, log_start;
    uint8_t *records;
    int32_t len;
    uint8_t *frame;
} fetched;

/* A one-partition Fetch request; the structs live in *fq. */
typedef struct fetch_req {
    sl_FetchRequest m;
    sl_FetchRequest_FetchTopic ft;
    sl_FetchRequest_FetchPartition fp;
} fetch_req;

static void fetch_req_init(fetch_req *fq, const char *topic, int32_t part, int64_t offset, int32_t max_wait,
                           int32_t min_bytes, int32_t max_bytes)
{
    memset(fq, 0, sizeof *fq);
    sl_FetchRequest_init(&fq->m);
    fq->fp.Partition = part;
    fq->fp.FetchOffset = offset;
    fq->fp.PartitionMaxBytes = max_bytes;
    fq->fp.CurrentLeaderEpoch = -1;
    fq->fp.LogStartOffset = -1;
    fq->ft.Topic = (sl_kstr){topic, (int32_t)strlen(topic)};
    fq->ft.Partitions.items = &fq->fp;
    fq->ft.Partitions.count = 1;
    fq->m.ReplicaId = -1;
    fq->m.MaxWaitMs = max_wait;
    fq->m.MinBytes = min_bytes;
    fq->m.MaxBytes = max_bytes;
    fq->m.Topics.items = &fq->ft;
    fq->m.Topics.count = 1;
}

static void fetch(int fd, const char *topic, int32_t part, int64_t offset, int32_t max_wait, int32_t min_bytes,
                  fetched *out)
{
    fetch_req fq;
    fetch_req_init(&fq, topic, part, offset, max_wait, min_bytes, 1 << 20);
    sl_kreader r;
    out->frame = wcall(fd, 1, 11, 31, (wenc_fn)sl_FetchRequest_encode, &fq.m, &r);
    sl_FetchResponse fr;
    SL_CHECK_OK(sl_FetchResponse_decode(&fr, &r, 11, &arena));
    SL_CHECK_INT(fr.Responses.count, 1);
    sl_FetchResponse_PartitionData *pd = &fr.Responses.items[0].Partitions.items[0];
    out->err = pd->ErrorCode;
    out->hw = pd->HighWatermark;
    out->log_start = pd->LogStartOffset;
    out->records = (uint8_t *)pd->Records.ptr;
    out->len = pd->Records.len;
}

/* Starts an already configured broker, connects, and auto-creates a topic. */
static int start_configured(wbroker *w, const char *topic)
{
    sl_arena_init(&arena, 64 << 20);
    wbroker_start(w);
    int fd = wconnect(w->port);
    int16_t err;
    int32_t np;
    metadata(fd, topic, &err, &np);
    SL_CHECK_INT(err, 0);
    return fd;
}

/* The usual start of a test: a broker with the default config, a connection, and a topic. */
static int start_with_topic(wbroker *w, const char *topic)
{
    wbroker_config(w, NULL);
    return start_configured(w, topic);
}

SL_TEST(produce_then_fetch_returns_the_same_bytes)
{
    wbroker w;
    int fd = start_with_topic(&w, "orders"); /* checks the topic was created */
    int16_t err;
    int32_t np;
    metadata(fd, "orders", &err, &np);
    SL_CHECK_INT(err, 0);
    SL_CHECK_INT(np, 1);
    uint8_t b1[4096], b2[4096], sent[8192];
    size_t l1 = wbatch(b1, sizeof b1, 3, 1700000000000), l2 = wbatch(b2, sizeof b2, 5, 1700000001000);
    memcpy(sent, b1, l1);
    int64_t base;
    SL_CHECK_INT(produce(fd, "orders", 0, -1, b1, l1, &base), 0);
    SL_CHECK_INT(base, 0);
    SL_CHECK_INT(produce(fd, "orders", 0, 1, b2, l2, &base), 0);
    SL_CHECK_INT(base, 3);
    memcpy(sent + l1, b2, l2);
    sl_put_be64(sent + l1, 3);                      /* the broker assigns base offsets */
    sl_put_be32(sent + 12, 0), sl_put_be32(sent + l1 + 12, 0); /* and the leader epoch */
    fetched f;
    fetch(fd, "orders", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.err, 0);
    SL_CHECK_INT(f.hw, 8);
    SL_CHECK_INT(f.log_start, 0);
    SL_CHECK_INT(f.len, (int32_t)(l1 + l2));
    SL_CHECK_MEM(f.records, sent, l1 + l2);
    sl_free(f.frame);
    /* An offset inside the second batch returns that whole batch. */
    fetch(fd, "orders", 0, 5, 0, 1, &f);
    SL_CHECK_INT(f.len, (int32_t)l2);
    SL_CHECK_MEM(f.records, sent + l1, l2);
    sl_free(f.frame);
    /* At the high watermark: empty; past it: OFFSET_OUT_OF_RANGE. */
    fetch(fd, "orders", 0, 8, 0, 1, &f);
    SL_CHECK_INT(f.err, 0);
    SL_CHECK_INT(f.len, 0);
    sl_free(f.frame);
    fetch(fd, "orders", 0, 9, 0, 1, &f);
    SL_CHECK_INT(f.err, SL_KERR_OFFSET_OUT_OF_RANGE);
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
    /* Restart: the data is still there, byte for byte. */
    wbroker_start(&w);
    fd = wconnect(w.port);
    fetch(fd, "orders", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.hw, 8);
    SL_CHECK_MEM(f.records, sent, l1 + l2);
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(produce_errors)
{
    wbroker w;
    wbroker_config(&w, NULL);
    w.cfg.message_max_bytes = 200;
    int fd = start_configured(&w, "t"); /* checks the topic was created */
    int16_t err;
    int32_t np;
    metadata(fd, "bad/name", &err, &np);
    SL_CHECK_INT(err, SL_KERR_INVALID_TOPIC_EXCEPTION);
    uint8_t b[4096];
    size_t l = wbatch(b, sizeof b, 2, 1);
    int64_t base;
    b[l - 1] ^= 1; /* a flipped bit in the last record */
    SL_CHECK_INT(produce(fd, "t", 0, -1, b, l, &base), SL_KERR_CORRUPT_MESSAGE);
    SL_CHECK_INT(base, -1);
    l = wbatch(b, sizeof b, 10, 1); /* > 200 bytes */
    SL_CHECK(l > 200);
    SL_CHECK_INT(produce(fd, "t", 0, -1, b, l, &base), SL_KERR_MESSAGE_TOO_LARGE);
    l = wbatch(b, sizeof b, 1, 1);
    SL_CHECK_INT(produce(fd, "nosuch", 0, -1, b, l, &base), SL_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    SL_CHECK_INT(produce(fd, "t", 5, -1, b, l, &base), SL_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    SL_CHECK_INT(produce(fd, "t", 0, 2, b, l, &base), SL_KERR_INVALID_REQUIRED_ACKS);
    b[16] = 1; /* magic 1 */
    SL_CHECK(produce(fd, "t", 0, -1, b, l, &base) != 0);
    /* Nothing of that reached the log. */
    fetched f;
    fetch(fd, "t", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.hw, 0);
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(acks_zero_gets_no_response)
{
    wbroker w;
    int fd = start_with_topic(&w, "z");
    uint8_t b[4096];
    size_t l = wbatch(b, sizeof b, 2, 1);
    produce_req q;
    produce_req_init(&q, "z", 0, 0, b, l);
    sl_buf req;
    wrequest(&req, 0, 7, 77, (wenc_fn)sl_ProduceRequest_encode, &q.m);
    wsend(fd, req.data, req.len);
    sl_buf_deinit(&req);
    /* The next response on the connection is the Fetch's, not the Produce's. */
    fetched f;
    fetch(fd, "z", 0, 0, 1000, 1, &f);
    SL_CHECK_INT(f.err, 0);
    SL_CHECK_INT(f.hw, 2);
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct late_produce {
    int port;
    int delay_ms;
} late_produce;

static void *produce_later(void *arg)
{
    late_produce *lp = arg;
    usleep((useconds_t)lp->delay_ms * 1000);
    int fd = wconnect(lp->port);
    uint8_t b[4096];
    size_t l = wbatch(b, sizeof b, 1, 1);
    int64_t base;
    SL_CHECK_INT(produce(fd, "lp", 0, -1, b, l, &base), 0);
    close(fd);
    return NULL;
}

SL_TEST(fetch_long_polls_until_data_or_timeout)
{
    wbroker w;
    int fd = start_with_topic(&w, "lp");
    fetched f;
    int64_t t0 = now_ms();
    fetch(fd, "lp", 0, 0, 300, 1, &f);
    int64_t waited = now_ms() - t0;
    SL_CHECK_INT(f.len, 0);
    SL_CHECK(waited >= 280 && waited < 3000);
    sl_free(f.frame);
    /* Data arriving during the wait answers it early. */
    late_produce lp = {w.port, 200};
    pthread_t th;
    pthread_create(&th, NULL, produce_later, &lp);
    t0 = now_ms();
    fetch(fd, "lp", 0, 0, 10000, 1, &f);
    waited = now_ms() - t0;
    pthread_join(th, NULL);
    SL_CHECK(f.len > 0);
    SL_CHECK(waited < 5000);
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(failing_fsync_is_a_storage_error_and_loses_nothing_acked)
{
    sl_fileio_fault_cfg fc = {.fail_write_nth = 0, .fail_sync_nth = 0, .enospc_after = -1};
    sl_fileio *io = sl_fileio_fault_new(&fc);
    wbroker w;
    wbroker_config(&w, NULL);
    w.cfg.io = io;
    int fd = start_configured(&w, "f");
    uint8_t b[4096], acked[4096];
    size_t l = wbatch(b, sizeof b, 3, 1), acked_len = l;
    memcpy(acked, b, l);
    int64_t base;
    SL_CHECK_INT(produce(fd, "f", 0, -1, b, l, &base), 0);
    /* The next sync fails. */
    fc.fail_sync_nth = sl_fileio_fault_syncs(io) + 1;
    sl_fileio_fault_set(io, &fc);
    l = wbatch(b, sizeof b, 2, 1);
    SL_CHECK_INT(produce(fd, "f", 0, -1, b, l, &base), SL_KERR_KAFKA_STORAGE_ERROR);
    fetched f;
    fetch(fd, "f", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.hw, 3);
    SL_CHECK_INT(f.len, (int32_t)acked_len);
    SL_CHECK_MEM(f.records + 61, acked + 61, acked_len - 61); /* the records, byte for byte */
    sl_free(f.frame);
    /* Only that one sync failed: appends work again and continue at offset 3. */
    SL_CHECK_INT(produce(fd, "f", 0, -1, b, l, &base), 0);
    SL_CHECK_INT(base, 3);
    close(fd);
    wbroker_stop(&w);
    sl_fileio_fault_free(io);
}

SL_TEST(request_behind_a_parked_fetch_is_answered_after_it)
{
    wbroker w;
    int fd = start_with_topic(&w, "pf");
    /* A Fetch at the high watermark parks for 300 ms ... */
    fetch_req fq;
    fetch_req_init(&fq, "pf", 0, 0, 300, 1, 1 << 20);
    sl_buf req;
    wrequest(&req, 1, 11, 501, (wenc_fn)sl_FetchRequest_encode, &fq.m);
    wsend(fd, req.data, req.len);
    sl_buf_deinit(&req);
    usleep(50000);
    /* ... and an ApiVersions sent behind it must be answered once the Fetch is. */
    static const uint8_t av[] = {0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 1, 246, 0xff, 0xff};
    wsend(fd, av, sizeof av);
    size_t len;
    uint8_t *resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    SL_CHECK_INT((int32_t)sl_be32(resp), 501);
    sl_free(resp);
    resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    SL_CHECK_INT((int32_t)sl_be32(resp), 502);
    sl_free(resp);
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(full_disk_is_a_storage_error_and_recovers)
{
    sl_fileio_fault_cfg fc = {.enospc_after = -1};
    sl_fileio *io = sl_fileio_fault_new(&fc);
    wbroker w;
    wbroker_config(&w, NULL);
    w.cfg.io = io;
    int fd = start_configured(&w, "full");
    uint8_t b[4096];
    size_t l = wbatch(b, sizeof b, 4, 1);
    int64_t base;
    SL_CHECK_INT(produce(fd, "full", 0, -1, b, l, &base), 0);
    /* The disk fills up: no byte more can be written. */
    fc.enospc_after = 0;
    sl_fileio_fault_set(io, &fc);
    int failures = 0;
    for (int i = 0; i < 3; i++) {
        l = wbatch(b, sizeof b, 4, 1);
        int16_t e = produce(fd, "full", 0, -1, b, l, &base);
        SL_CHECK(e == 0 || e == SL_KERR_KAFKA_STORAGE_ERROR);
        failures += e != 0;
    }
    SL_CHECK(failures >= 1);
    fetched f;
    fetch(fd, "full", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.err, 0);
    SL_CHECK(f.hw >= 4); /* the acknowledged batch is still there */
    int64_t hw_full = f.hw;
    sl_free(f.frame);
    /* Space again: appends continue right after what was acknowledged. */
    fc.enospc_after = -1;
    sl_fileio_fault_set(io, &fc);
    l = wbatch(b, sizeof b, 4, 1);
    SL_CHECK_INT(produce(fd, "full", 0, -1, b, l, &base), 0);
    SL_CHECK_INT(base, hw_full);
    close(fd);
    wbroker_stop(&w);
    sl_fileio_fault_free(io);
}

SL_TEST(a_slow_reader_does_not_stall_other_clients)
{
    wbroker w;
    int fd = start_with_topic(&w, "big");
    /* ~360 KiB of data in 200 batches of 60 records. */
    static uint8_t big[70000];
    for (int i = 0; i < 200; i++) {
        size_t l = wbatch(big, sizeof big, 60, 1);
        int64_t base;
        SL_CHECK_INT(produce(fd, "big", 0, -1, big, l, &base), 0);
    }
    /* The slow client asks for all of it 30 times (~10 MiB, far past the socket buffers) and reads nothing. */
    int slow = wconnect(w.port);
    int rcvbuf = 4096;
    setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    fetch_req fq;
    fetch_req_init(&fq, "big", 0, 0, 0, 1, 8 << 20);
    for (int i = 0; i < 30; i++) {
        sl_buf req;
        wrequest(&req, 1, 11, 900 + i, (wenc_fn)sl_FetchRequest_encode, &fq.m);
        wsend(slow, req.data, req.len);
        sl_buf_deinit(&req);
    }
    /* Others are served promptly meanwhile. */
    int64_t t0 = now_ms();
    for (int i = 0; i < 20; i++) {
        fetched f;
        fetch(fd, "big", 0, 0, 0, 1, &f);
        SL_CHECK_INT(f.err, 0);
        SL_CHECK(f.len > 0);
        sl_free(f.frame);
    }
    SL_CHECK(now_ms() - t0 < 5000);
    close(slow);
    close(fd);
    wbroker_stop(&w);
}

typedef struct hit_and_run {
    int port;
    int rounds;
} hit_and_run;

/* Sends acks=all produces and closes the socket without waiting for the answer. */
static void *produce_and_close(void *arg)
{
    hit_and_run *h = arg;
    uint8_t b[4096];
    size_t l = wbatch(b, sizeof b, 3, 1);
    produce_req q;
    produce_req_init(&q, "hr", 0, -1, b, l);
    for (int i = 0; i < h->rounds; i++) {
        int fd = wconnect(h->port);
        sl_buf req;
        wrequest(&req, 0, 7, i, (wenc_fn)sl_ProduceRequest_encode, &q.m);
        wsend(fd, req.data, req.len);
        wsend(fd, req.data, req.len);
        sl_buf_deinit(&req);
        close(fd);
    }
    return NULL;
}

SL_TEST(clients_that_leave_before_their_acks_cost_nothing)
{
    wbroker w;
    int fd = start_with_topic(&w, "hr");
    enum { THREADS = 8, ROUNDS = 50 };
    pthread_t th[THREADS];
    hit_and_run h = {w.port, ROUNDS};
    for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, produce_and_close, &h);
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    /* The broker is healthy and every batch that arrived whole is in the log, in whole batches. */
    usleep(200000);
    fetched f;
    fetch(fd, "hr", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.err, 0);
    SL_CHECK(f.hw > 0 && f.hw <= THREADS * ROUNDS * 2 * 3);
    SL_CHECK_INT(f.hw % 3, 0);
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w); /* ASan's leak check covers the lingering connections */
}

static int delete_topics_enc(const void *msg, sl_kwriter *w, int16_t version)
{
    return sl_DeleteTopicsRequest_encode(msg, w, version);
}

SL_TEST(pipelined_admin_waits_for_the_produce_before_it)
{
    wbroker w;
    int fd = start_with_topic(&w, "gone");
    uint8_t b[4096];
    size_t l = wbatch(b, sizeof b, 3, 1);
    produce_req q;
    produce_req_init(&q, "gone", 0, -1, b, l);
    sl_DeleteTopicsRequest d;
    sl_DeleteTopicsRequest_init(&d);
    sl_kstr name = {"gone", 4};
    d.TopicNames.items = &name;
    d.TopicNames.count = 1;
    sl_buf r1, r2;
    wrequest(&r1, 0, 7, 61, (wenc_fn)sl_ProduceRequest_encode, &q.m);
    wrequest(&r2, 20, 3, 62, delete_topics_enc, &d);
    SL_CHECK_OK(sl_buf_append(&r1, r2.data, r2.len));
    wsend(fd, r1.data, r1.len); /* one write: both arrive in the same read */
    sl_buf_deinit(&r1);
    sl_buf_deinit(&r2);
    size_t len;
    uint8_t *resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    SL_CHECK_INT((int32_t)sl_be32(resp), 61);
    sl_kreader rd;
    sl_kreader_init(&rd, resp + 4, len - 4);
    sl_ProduceResponse pr;
    SL_CHECK_OK(sl_ProduceResponse_decode(&pr, &rd, 7, &arena));
    SL_CHECK_INT(pr.Responses.items[0].PartitionResponses.items[0].ErrorCode, 0); /* acknowledged, then deleted */
    sl_free(resp);
    resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    SL_CHECK_INT((int32_t)sl_be32(resp), 62);
    sl_free(resp);
    close(fd);
    wbroker_stop(&w);
}

static int create_topics_enc(const void *msg, sl_kwriter *w, int16_t version)
{
    return sl_CreateTopicsRequest_encode(msg, w, version);
}

/* CreateTopics v4 of one topic with the given configs (name/value pairs); returns its error code. */
static int16_t create_topic(int fd, const char *topic, int32_t parts, const char *const *cfgs, int ncfg)
{
    sl_CreateTopicsRequest m;
    sl_CreateTopicsRequest_init(&m);
    sl_CreateTopicsRequest_CreatableTopic t;
    sl_CreateTopicsRequest_CreatableTopicConfig c[8];
    memset(&t, 0, sizeof t);
    memset(c, 0, sizeof c);
    t.Name = (sl_kstr){topic, (int32_t)strlen(topic)};
    t.NumPartitions = parts;
    t.ReplicationFactor = 1;
    for (int i = 0; i < ncfg; i++) {
        c[i].Name = (sl_kstr){cfgs[2 * i], (int32_t)strlen(cfgs[2 * i])};
        c[i].Value = (sl_kstr){cfgs[2 * i + 1], (int32_t)strlen(cfgs[2 * i + 1])};
    }
    t.Configs.items = c;
    t.Configs.count = ncfg;
    m.Topics.items = &t;
    m.Topics.count = 1;
    m.timeoutMs = 5000;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 19, 4, 71, create_topics_enc, &m, &r);
    sl_CreateTopicsResponse cr;
    SL_CHECK_OK(sl_CreateTopicsResponse_decode(&cr, &r, 4, &arena));
    SL_CHECK_INT(cr.Topics.count, 1);
    int16_t err = cr.Topics.items[0].ErrorCode;
    sl_free(resp);
    return err;
}

SL_TEST(retention_deletes_old_segments_through_the_broker)
{
    sl_arena_init(&arena, 64 << 20);
    wbroker w;
    wbroker_config(&w, NULL);
    w.cfg.retention_check_ms = 50;
    wbroker_start(&w);
    int fd = wconnect(w.port);
    static const char *const by_size[] = {"segment.bytes", "1024", "retention.bytes", "2048"};
    SL_CHECK_INT(create_topic(fd, "rs", 1, by_size, 2), 0);
    static const char *const bad[] = {"retention.ms", "soon"};
    SL_CHECK_INT(create_topic(fd, "rbad", 1, bad, 1), SL_KERR_INVALID_CONFIG);
    uint8_t b[4096];
    int64_t now = (int64_t)time(NULL) * 1000, base;
    for (int i = 0; i < 40; i++) {
        size_t l = wbatch(b, sizeof b, 4, now); /* ~220 bytes: a segment holds 4 */
        SL_CHECK_INT(produce(fd, "rs", 0, -1, b, l, &base), 0);
    }
    /* Within a few checks the oldest segments are gone and the log start moved. */
    fetched f;
    int64_t start = 0;
    for (int tries = 0; tries < 100 && start == 0; tries++) {
        usleep(20000);
        fetch(fd, "rs", 0, 150, 0, 1, &f);
        start = f.log_start;
        sl_free(f.frame);
    }
    SL_CHECK(start > 0 && start < 160);
    SL_CHECK_INT(f.hw, 160);
    fetch(fd, "rs", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.err, SL_KERR_OFFSET_OUT_OF_RANGE);
    sl_free(f.frame);
    fetch(fd, "rs", 0, start, 0, 1, &f); /* what is left is readable */
    SL_CHECK_INT(f.err, 0);
    SL_CHECK(f.len > 0);
    SL_CHECK_INT((int64_t)sl_be64(f.records), start);
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
}

typedef struct big_producer {
    int port;
    int count;
    int failures;
} big_producer;

/* Produces `count` batches of one 40 KB record, acks=all, each on the same connection. */
static void *produce_big(void *arg)
{
    big_producer *bp = arg;
    static const uint8_t value[40000];
    sl_record_in rec = {.timestamp = 1, .value = value, .value_len = (int32_t)sizeof value};
    sl_batch_header h = {.Magic = 2, .PartitionLeaderEpoch = -1, .ProducerId = -1, .ProducerEpoch = -1,
                         .BaseSequence = -1};
    uint8_t *b = sl_malloc(sizeof value + 200);
    size_t l = sl_batch_encode(b, sizeof value + 200, &h, &rec, 1);
    SL_CHECK(l > 40000);
    int fd = wconnect(bp->port);
    for (int i = 0; i < bp->count; i++) {
        int64_t base;
        uint8_t *copy = sl_malloc(l);
        memcpy(copy, b, l);
        if (produce(fd, "mem", 0, -1, copy, l, &base) != 0) bp->failures++;
        sl_free(copy);
    }
    close(fd);
    sl_free(b);
    return NULL;
}

SL_TEST(a_small_request_budget_slows_clients_but_loses_nothing)
{
    wbroker w;
    wbroker_config(&w, NULL);
    w.cfg.queued_max_bytes = 100000; /* about two of the 40 KB produces at a time, for all connections */
    int fd = start_configured(&w, "mem");
    enum { THREADS = 6, EACH = 15 };
    pthread_t th[THREADS];
    big_producer bp[THREADS];
    for (int i = 0; i < THREADS; i++) {
        bp[i] = (big_producer){w.port, EACH, 0};
        pthread_create(&th[i], NULL, produce_big, &bp[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        SL_CHECK_INT(bp[i].failures, 0);
    }
    fetched f;
    fetch(fd, "mem", 0, 0, 0, 1, &f);
    SL_CHECK_INT(f.hw, THREADS * EACH);
    sl_free(f.frame);
    close(fd);
    sl_broker_shutdown(w.broker);
    pthread_join(w.thread, NULL); /* the broker thread is done: its counters can be read */
    SL_CHECK(w.broker->mem_waits > 0);     /* the budget did make connections wait */
    SL_CHECK_INT(w.broker->queued_bytes, 0); /* and every byte of it came back */
    sl_broker_close(w.broker);
}

/* fetch_max_bytes caps a response below what the client asks for, in whole batches, yet a first batch
   larger than the cap still comes back whole (KIP-74: consumers always progress). */
SL_TEST(broker_fetch_max_bytes_caps_responses)
{
    wbroker w;
    wbroker_config(&w, NULL);
    uint8_t b[8][4096];
    size_t len[8];
    for (int i = 0; i < 8; i++) len[i] = wbatch(b[i], sizeof b[i], 10, 1700000000000 + i);
    w.cfg.fetch_max_bytes = (int32_t)(len[0] * 3 + len[0] / 2); /* three and a half batches */
    int fd = start_configured(&w, "capped");
    int64_t base;
    for (int i = 0; i < 8; i++) SL_CHECK_INT(produce(fd, "capped", 0, -1, b[i], len[i], &base), 0);
    fetched f;
    fetch(fd, "capped", 0, 0, 0, 1, &f); /* the client asks for 1 MiB */
    SL_CHECK_INT(f.err, 0);
    SL_CHECK_INT(f.hw, 80);
    SL_CHECK_INT(f.len, (int32_t)(len[0] + len[1] + len[2])); /* three whole batches fit */
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
    w.cfg.fetch_max_bytes = (int32_t)len[1] / 2; /* smaller than one batch */
    wbroker_start(&w);
    fd = wconnect(w.port);
    fetch(fd, "capped", 0, 10, 0, 1, &f);
    SL_CHECK_INT(f.err, 0);
    SL_CHECK_INT(f.len, (int32_t)len[1]); /* the first batch, whole */
    sl_free(f.frame);
    close(fd);
    wbroker_stop(&w);
}
