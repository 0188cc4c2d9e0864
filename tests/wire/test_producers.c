/*
 * Wire tests of idempotent producers: InitProducerId, sequence checks with
 * Kafka's error codes, retries answered with the first append's offsets and
 * not appended again, producer ids never reused, and the producer state
 * surviving a clean restart and a crash (the log replayed from the snapshot
 * written at the partition's first idempotent batch).
 */
#include <sys/stat.h>
#include "wire.h"
#include "storage/batch.h"

static sl_arena arena;

static void init_pid(int fd, int16_t v, int64_t *pid, int16_t *epoch)
{
    sl_InitProducerIdRequest m;
    sl_InitProducerIdRequest_init(&m);
    m.TransactionalId = SL_KSTR_NULL;
    m.TransactionTimeoutMs = 60000;
    m.ProducerId = -1;
    m.ProducerEpoch = -1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 22, v, 50, (wenc_fn)sl_InitProducerIdRequest_encode, &m, &r);
    sl_InitProducerIdResponse ir;
    SL_CHECK_OK(sl_InitProducerIdResponse_decode(&ir, &r, v, &arena));
    SL_CHECK_INT(ir.ErrorCode, 0);
    *pid = ir.ProducerId;
    *epoch = ir.ProducerEpoch;
    sl_free(resp);
}

/* One batch of n records from producer (pid, epoch) starting at sequence seq. */
static size_t idem_batch(uint8_t *out, size_t cap, int64_t pid, int16_t epoch, int32_t seq, int n)
{
    sl_record_in recs[16];
    char vals[16][16];
    SL_CHECK(n <= 16);
    for (int i = 0; i < n; i++) {
        int len = snprintf(vals[i], sizeof vals[i], "v%d", seq + i);
        recs[i] = (sl_record_in){.timestamp = 1700000000000 + i, .key = NULL, .key_len = -1, .value = vals[i],
                                 .value_len = len};
    }
    sl_batch_header h = {.ProducerId = pid, .ProducerEpoch = epoch, .BaseSequence = seq};
    size_t len = sl_batch_encode(out, cap, &h, recs, n);
    SL_CHECK(len > 0);
    return len;
}

static int16_t produce(int fd, const char *topic, uint8_t *records, size_t len, int64_t *base)
{
    sl_ProduceRequest m;
    sl_ProduceRequest_init(&m);
    sl_ProduceRequest_PartitionProduceData pd = {.Index = 0, .Records = {.ptr = records, .len = (int32_t)len}};
    sl_ProduceRequest_TopicProduceData td = {.Name = {topic, (int32_t)strlen(topic)}, .PartitionData = {&pd, 1}};
    m.Acks = -1;
    m.TimeoutMs = 5000;
    m.TopicData.items = &td;
    m.TopicData.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 0, 7, 51, (wenc_fn)sl_ProduceRequest_encode, &m, &r);
    sl_ProduceResponse pr;
    SL_CHECK_OK(sl_ProduceResponse_decode(&pr, &r, 7, &arena));
    int16_t err = pr.Responses.items[0].PartitionResponses.items[0].ErrorCode;
    *base = pr.Responses.items[0].PartitionResponses.items[0].BaseOffset;
    sl_free(resp);
    return err;
}

static int start(wbroker *w)
{
    sl_arena_init(&arena, 64 << 20);
    wbroker_start(w);
    int fd = wconnect(w->port);
    wtopic(fd, "t");
    return fd;
}

static void stop(wbroker *w, int fd)
{
    close(fd);
    wbroker_stop(w);
    sl_arena_deinit(&arena);
}

SL_TEST(sequences_are_checked_and_retries_not_appended_twice)
{
    wbroker w;
    wbroker_config(&w, NULL);
    int fd = start(&w);
    int64_t pid, pid2, base;
    int16_t epoch;
    init_pid(fd, 0, &pid, &epoch); /* librdkafka's idempotence gate needs v0 */
    SL_CHECK(pid >= 0);
    SL_CHECK_INT(epoch, 0);
    init_pid(fd, 4, &pid2, &epoch);
    SL_CHECK(pid2 != pid);
    uint8_t b[4096], first[4096];
    size_t n = idem_batch(b, sizeof b, pid, 0, 0, 3);
    memcpy(first, b, n);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
    SL_CHECK_INT(base, 0);
    SL_CHECK_INT(produce(fd, "t", first, n, &base), 0); /* the retry: the same answer, nothing appended */
    SL_CHECK_INT(base, 0);
    SL_CHECK_INT(wlist_offset(fd, "t", 0, -1, &arena), 3);
    n = idem_batch(b, sizeof b, pid, 0, 3, 2);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
    SL_CHECK_INT(base, 3);
    n = idem_batch(b, sizeof b, pid, 0, 0, 3); /* an older batch still remembered (5 are) */
    SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
    SL_CHECK_INT(base, 0);
    n = idem_batch(b, sizeof b, pid, 0, 9, 1); /* a gap */
    SL_CHECK_INT(produce(fd, "t", b, n, &base), SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    n = idem_batch(b, sizeof b, pid, 0, 4, 1); /* overlaps, not a retry */
    SL_CHECK_INT(produce(fd, "t", b, n, &base), SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    n = idem_batch(b, sizeof b, pid2, 0, 7, 1); /* a producer this partition has not seen, mid-sequence */
    SL_CHECK_INT(produce(fd, "t", b, n, &base), SL_KERR_UNKNOWN_PRODUCER_ID);
    n = idem_batch(b, sizeof b, pid, 1, 5, 1); /* a new epoch starts at 0 */
    SL_CHECK_INT(produce(fd, "t", b, n, &base), SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    n = idem_batch(b, sizeof b, pid, 1, 0, 1);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
    SL_CHECK_INT(base, 5);
    n = idem_batch(b, sizeof b, pid, 0, 5, 1); /* the old epoch is fenced */
    SL_CHECK_INT(produce(fd, "t", b, n, &base), SL_KERR_INVALID_PRODUCER_EPOCH);
    SL_CHECK_INT(wlist_offset(fd, "t", 0, -1, &arena), 6);
    /* two batches in one partition's blob: Kafka allows one for an idempotent producer */
    uint8_t two[8192];
    size_t l1 = idem_batch(two, sizeof two, pid, 1, 1, 1);
    size_t l2 = idem_batch(two + l1, sizeof two - l1, pid, 1, 2, 1);
    SL_CHECK_INT(produce(fd, "t", two, l1 + l2, &base), SL_KERR_INVALID_RECORD);
    SL_CHECK_INT(wlist_offset(fd, "t", 0, -1, &arena), 6);
    stop(&w, fd);
}

static char *pstate_file(wbroker *w) { return sl_asprintf("%s/t-0/producer-state", w->cfg.data_dir); }

static void copy_file(const char *from, const char *to)
{
    uint8_t *data;
    size_t len;
    SL_CHECK_OK(sl_fileio_read_all(sl_fileio_system(), from, 1 << 20, &data, &len));
    char *tmp = sl_asprintf("%s.tmp", to);
    SL_CHECK_OK(sl_fileio_write_atomic(sl_fileio_system(), to, tmp, data, len));
    sl_free(tmp);
    sl_free(data);
}

SL_TEST(producer_state_survives_restart_and_crash)
{
    wbroker w;
    wbroker_config(&w, NULL);
    int fd = start(&w);
    int64_t pid, base;
    int16_t epoch;
    init_pid(fd, 3, &pid, &epoch);
    uint8_t b[4096], last[4096];
    size_t n = 0;
    for (int32_t seq = 0; seq < 40; seq += 4) {
        n = idem_batch(b, sizeof b, pid, 0, seq, 4);
        memcpy(last, b, n);
        SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
        SL_CHECK_INT(base, seq);
    }
    /* the snapshot written before the first idempotent batch: what a crash would leave */
    char *file = pstate_file(&w), *saved = sl_asprintf("%s.first", file);
    copy_file(file, saved);
    close(fd);
    wbroker_stop(&w); /* clean: a snapshot of the whole state */
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK_INT(produce(fd, "t", last, n, &base), 0); /* the retry after a restart: not appended */
    SL_CHECK_INT(base, 36);
    SL_CHECK_INT(wlist_offset(fd, "t", 0, -1, &arena), 40);
    int64_t pid2;
    init_pid(fd, 3, &pid2, &epoch);
    SL_CHECK(pid2 > pid); /* ids are never handed out twice */
    close(fd);
    wbroker_stop(&w);
    copy_file(saved, file); /* as if it had crashed: state from offset 0 = the replayed log */
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK_INT(produce(fd, "t", last, n, &base), 0);
    SL_CHECK_INT(base, 36);
    n = idem_batch(b, sizeof b, pid, 0, 40, 2);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
    SL_CHECK_INT(base, 40);
    n = idem_batch(b, sizeof b, pid, 0, 50, 2);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    /* a damaged snapshot: rebuilt from the whole log, with a warning */
    close(fd);
    wbroker_stop(&w);
    uint8_t junk[8] = "garbage";
    char *tmp = sl_asprintf("%s.tmp", file);
    SL_CHECK_OK(sl_fileio_write_atomic(sl_fileio_system(), file, tmp, junk, sizeof junk));
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    n = idem_batch(b, sizeof b, pid, 0, 42, 1);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
    SL_CHECK_INT(base, 42);
    sl_free(tmp);
    sl_free(file);
    sl_free(saved);
    stop(&w, fd);
}

SL_TEST(partitions_without_idempotent_producers_have_no_state_file)
{
    wbroker w;
    wbroker_config(&w, NULL);
    int fd = start(&w);
    uint8_t b[4096];
    int64_t base;
    size_t n = wbatch(b, sizeof b, 3, 1700000000000);
    SL_CHECK_INT(produce(fd, "t", b, n, &base), 0);
    close(fd);
    wbroker_stop(&w);
    char *file = pstate_file(&w);
    struct stat st;
    SL_CHECK(stat(file, &st) != 0);
    sl_free(file);
    sl_arena_deinit(&arena);
}

static int64_t snapshot_offset(const char *path)
{
    uint8_t *data;
    size_t len;
    SL_CHECK_OK(sl_fileio_read_all(sl_fileio_system(), path, 1 << 20, &data, &len));
    SL_CHECK(len >= 24);
    int64_t off = (int64_t)sl_be64(data + 8);
    sl_free(data);
    return off;
}

SL_TEST(a_segment_roll_writes_a_snapshot_a_restart_can_use)
{
    wbroker w;
    wbroker_config(&w, NULL);
    int fd = start(&w);
    sl_CreateTopicsRequest m;
    sl_CreateTopicsRequest_init(&m);
    sl_CreateTopicsRequest_CreatableTopicConfig cfg = {{"segment.bytes", 13}, {"16384", 5}};
    sl_CreateTopicsRequest_CreatableTopic t = {.Name = {"r", 1}, .NumPartitions = 1, .ReplicationFactor = 1,
                                               .Configs = {&cfg, 1}};
    m.Topics.items = &t;
    m.Topics.count = 1;
    m.timeoutMs = 5000;
    sl_kreader rd;
    sl_free(wcall(fd, 19, 4, 54, (wenc_fn)sl_CreateTopicsRequest_encode, &m, &rd));
    int64_t pid, base;
    int16_t epoch;
    init_pid(fd, 4, &pid, &epoch);
    uint8_t b[4096], last[4096];
    size_t n = 0;
    char *file = sl_asprintf("%s/r-0/producer-state", w.cfg.data_dir), *prev = sl_asprintf("%s.prev", file);
    char *saved = sl_asprintf("%s.saved", file);
    for (int32_t seq = 0; seq < 4000; seq += 8) {
        n = idem_batch(b, sizeof b, pid, 0, seq, 8);
        memcpy(last, b, n);
        SL_CHECK_INT(produce(fd, "r", b, n, &base), 0);
        SL_CHECK_INT(base, seq);
    }
    int64_t at_roll = snapshot_offset(file);
    SL_CHECK(at_roll > 0 && at_roll < 4000);          /* written at a roll, not only at the first batch */
    SL_CHECK(snapshot_offset(prev) < at_roll);         /* and the one before it kept */
    copy_file(file, saved);
    close(fd);
    wbroker_stop(&w);
    copy_file(saved, file); /* a crash after that roll: replay from it, not from the first batch */
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK_INT(produce(fd, "r", last, n, &base), 0);
    SL_CHECK_INT(base, 3992);
    SL_CHECK_INT(wlist_offset(fd, "r", 0, -1, &arena), 4000);
    sl_free(file);
    sl_free(prev);
    sl_free(saved);
    stop(&w, fd);
}

SL_TEST(idle_producers_are_forgotten_after_the_expiration)
{
    wbroker w;
    wbroker_config(&w, NULL);
    w.cfg.producer_id_expiration_ms = 300;
    w.cfg.retention_check_ms = 100;
    int fd = start(&w);
    int64_t a, b, base;
    int16_t epoch;
    init_pid(fd, 4, &a, &epoch);
    init_pid(fd, 4, &b, &epoch);
    uint8_t buf[4096];
    size_t n = idem_batch(buf, sizeof buf, a, 0, 0, 3);
    SL_CHECK_INT(produce(fd, "t", buf, n, &base), 0);
    n = idem_batch(buf, sizeof buf, b, 0, 0, 3);
    SL_CHECK_INT(produce(fd, "t", buf, n, &base), 0);
    for (int i = 0; i < 8; i++) { /* b keeps appending, a goes idle */
        usleep(100 * 1000);
        n = idem_batch(buf, sizeof buf, b, 0, 3 + i, 1);
        SL_CHECK_INT(produce(fd, "t", buf, n, &base), 0);
    }
    n = idem_batch(buf, sizeof buf, a, 0, 3, 1);
    SL_CHECK_INT(produce(fd, "t", buf, n, &base), SL_KERR_UNKNOWN_PRODUCER_ID);
    n = idem_batch(buf, sizeof buf, b, 0, 11, 1);
    SL_CHECK_INT(produce(fd, "t", buf, n, &base), 0);
    stop(&w, fd);
}
