/*
 * Wire tests of transactions: InitProducerId with a transactional id
 * (validation, epoch bumps, KIP-360), AddPartitionsToTxn / AddOffsetsToTxn /
 * EndTxn and their Kafka error codes, COMMIT/ABORT control batches in the
 * log (Kafka's layout and 6-byte value), the last stable offset in Fetch and
 * ListOffsets, the aborted-transactions list of read_committed fetches (null
 * for read_uncommitted), Produce checks (partition not added, stale epoch,
 * control batches from clients), fencing, the transaction timeout,
 * TxnOffsetCommit visible only at commit (RequireStable), and open and
 * half-ended transactions across restarts.
 */
#include "wire.h"
#include "storage/batch.h"

static sl_arena arena;

#define T "t"

static int start(wbroker *w)
{
    sl_arena_init(&arena, 64 << 20);
    wbroker_start(w);
    int fd = wconnect(w->port);
    wtopic(fd, T);
    return fd;
}

static void stop(wbroker *w, int fd)
{
    close(fd);
    wbroker_stop(w);
    sl_arena_deinit(&arena);
}

static sl_kstr ks(const char *s) { return (sl_kstr){s, (int32_t)strlen(s)}; }

static int16_t init_txn_v(int fd, int16_t v, const char *id, int32_t timeout, int64_t *pid, int16_t *epoch)
{
    sl_InitProducerIdRequest m;
    sl_InitProducerIdRequest_init(&m);
    m.TransactionalId = ks(id);
    m.TransactionTimeoutMs = timeout;
    m.ProducerId = *pid;
    m.ProducerEpoch = *epoch;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 22, v, 60, (wenc_fn)sl_InitProducerIdRequest_encode, &m, &r);
    sl_InitProducerIdResponse ir;
    SL_CHECK_OK(sl_InitProducerIdResponse_decode(&ir, &r, v, &arena));
    if (!ir.ErrorCode) {
        *pid = ir.ProducerId;
        *epoch = ir.ProducerEpoch;
    }
    sl_free(resp);
    return ir.ErrorCode;
}

/* A fresh producer's InitProducerId (no pid/epoch), retried while CONCURRENT_TRANSACTIONS (a fence aborting). */
static void init_txn(int fd, const char *id, int32_t timeout, int64_t *pid, int16_t *epoch)
{
    for (int i = 0; i < 200; i++) {
        *pid = -1;
        *epoch = -1;
        int16_t err = init_txn_v(fd, 4, id, timeout, pid, epoch);
        if (err == 0) return;
        SL_CHECK_INT(err, SL_KERR_CONCURRENT_TRANSACTIONS);
        usleep(10000);
    }
    SL_CHECK(!"InitProducerId kept answering CONCURRENT_TRANSACTIONS");
}

/* AddPartitionsToTxn v1 for partitions parts[0..n) of topic; returns the first partition's error, the others in errs. */
static int16_t add_parts(int fd, const char *id, int64_t pid, int16_t epoch, const char *topic, const int32_t *parts,
                         int n, int16_t *errs)
{
    sl_AddPartitionsToTxnRequest m;
    sl_AddPartitionsToTxnRequest_init(&m);
    sl_AddPartitionsToTxnRequest_AddPartitionsToTxnTopic t = {ks(topic), {(int32_t *)parts, n}};
    m.V3AndBelowTransactionalId = ks(id);
    m.V3AndBelowProducerId = pid;
    m.V3AndBelowProducerEpoch = epoch;
    m.V3AndBelowTopics.items = &t;
    m.V3AndBelowTopics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 24, 1, 61, (wenc_fn)sl_AddPartitionsToTxnRequest_encode, &m, &r);
    sl_AddPartitionsToTxnResponse ar;
    SL_CHECK_OK(sl_AddPartitionsToTxnResponse_decode(&ar, &r, 1, &arena));
    SL_CHECK_INT(ar.ResultsByTopicV3AndBelow.count, 1);
    SL_CHECK_INT(ar.ResultsByTopicV3AndBelow.items[0].ResultsByPartition.count, n);
    for (int i = 0; errs && i < n; i++) errs[i] = ar.ResultsByTopicV3AndBelow.items[0].ResultsByPartition.items[i].PartitionErrorCode;
    int16_t err = ar.ResultsByTopicV3AndBelow.items[0].ResultsByPartition.items[0].PartitionErrorCode;
    sl_free(resp);
    return err;
}

static int16_t add_p0(int fd, const char *id, int64_t pid, int16_t epoch)
{
    int32_t p0 = 0;
    return add_parts(fd, id, pid, epoch, T, &p0, 1, NULL);
}

static int16_t end_txn(int fd, const char *id, int64_t pid, int16_t epoch, bool commit)
{
    sl_EndTxnRequest m = {ks(id), pid, epoch, commit};
    sl_kreader r;
    uint8_t *resp = wcall(fd, 26, 1, 62, (wenc_fn)sl_EndTxnRequest_encode, &m, &r);
    sl_EndTxnResponse er;
    SL_CHECK_OK(sl_EndTxnResponse_decode(&er, &r, 1, &arena));
    sl_free(resp);
    return er.ErrorCode;
}

static int16_t add_offsets(int fd, const char *id, int64_t pid, int16_t epoch, const char *group)
{
    sl_AddOffsetsToTxnRequest m = {ks(id), pid, epoch, ks(group)};
    sl_kreader r;
    uint8_t *resp = wcall(fd, 25, 1, 63, (wenc_fn)sl_AddOffsetsToTxnRequest_encode, &m, &r);
    sl_AddOffsetsToTxnResponse ar;
    SL_CHECK_OK(sl_AddOffsetsToTxnResponse_decode(&ar, &r, 1, &arena));
    sl_free(resp);
    return ar.ErrorCode;
}

/* A batch of n records "<tag><i>" from (pid, epoch, seq); transactional or not. */
static size_t batch(uint8_t *out, size_t cap, int64_t pid, int16_t epoch, int32_t seq, int n, bool txn, uint16_t extra)
{
    sl_record_in recs[16];
    char vals[16][16];
    for (int i = 0; i < n; i++) {
        int len = snprintf(vals[i], sizeof vals[i], "s%d", seq + i);
        recs[i] = (sl_record_in){.timestamp = 1700000000000 + i, .key = NULL, .key_len = -1, .value = vals[i],
                                 .value_len = len};
    }
    sl_batch_header h = {.Attributes = (int16_t)((txn ? SL_BATCH_ATTR_TRANSACTIONAL : 0) | extra),
                         .ProducerId = pid, .ProducerEpoch = epoch, .BaseSequence = seq};
    size_t len = sl_batch_encode(out, cap, &h, recs, n);
    SL_CHECK(len > 0);
    return len;
}

static int16_t produce(int fd, int32_t partition, uint8_t *records, size_t len, int64_t *base)
{
    sl_ProduceRequest m;
    sl_ProduceRequest_init(&m);
    sl_ProduceRequest_PartitionProduceData pd = {.Index = partition, .Records = {.ptr = records, .len = (int32_t)len}};
    sl_ProduceRequest_TopicProduceData td = {.Name = ks(T), .PartitionData = {&pd, 1}};
    m.Acks = -1;
    m.TimeoutMs = 5000;
    m.TopicData.items = &td;
    m.TopicData.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 0, 7, 64, (wenc_fn)sl_ProduceRequest_encode, &m, &r);
    sl_ProduceResponse pr;
    SL_CHECK_OK(sl_ProduceResponse_decode(&pr, &r, 7, &arena));
    int16_t err = pr.Responses.items[0].PartitionResponses.items[0].ErrorCode;
    if (base) *base = pr.Responses.items[0].PartitionResponses.items[0].BaseOffset;
    sl_free(resp);
    return err;
}

static int64_t txn_produce(int fd, int64_t pid, int16_t epoch, int32_t seq, int n)
{
    uint8_t b[4096];
    int64_t base;
    SL_CHECK_INT(produce(fd, 0, b, batch(b, sizeof b, pid, epoch, seq, n, true, 0), &base), 0);
    return base;
}

/* InitProducerId for "tx", then (nrec > 0) a transaction holding nrec records of T-0 from sequence 0. */
static void open_txn(int fd, int32_t timeout_ms, int nrec, int64_t *pid, int16_t *epoch)
{
    init_txn(fd, "tx", timeout_ms, pid, epoch);
    if (nrec <= 0) return;
    SL_CHECK_INT(add_p0(fd, "tx", *pid, *epoch), 0);
    SL_CHECK_INT(txn_produce(fd, *pid, *epoch, 0, nrec), 0);
}

/* A broker with its config as is, topic T, and open_txn(): returns the connection. */
static int begin(wbroker *w, int32_t timeout_ms, int nrec, int64_t *pid, int16_t *epoch)
{
    int fd = start(w);
    open_txn(fd, timeout_ms, nrec, pid, epoch);
    return fd;
}

typedef struct fetched {
    int64_t hw, lso;
    int32_t naborted;            /* -1: null */
    sl_FetchResponse_AbortedTransaction aborted[8];
    uint8_t records[65536];
    int32_t len;
} fetched;

static void fetch(int fd, int64_t offset, int8_t isolation, fetched *out)
{
    sl_FetchRequest m;
    sl_FetchRequest_init(&m);
    sl_FetchRequest_FetchPartition fp = {.Partition = 0, .CurrentLeaderEpoch = -1, .FetchOffset = offset,
                                         .LogStartOffset = -1, .PartitionMaxBytes = 1 << 20};
    sl_FetchRequest_FetchTopic ft = {.Topic = ks(T), .Partitions = {&fp, 1}};
    m.ReplicaId = -1;
    m.MaxWaitMs = 0;
    m.MinBytes = 1;
    m.MaxBytes = 1 << 20;
    m.IsolationLevel = isolation;
    m.Topics.items = &ft;
    m.Topics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 1, 11, 65, (wenc_fn)sl_FetchRequest_encode, &m, &r);
    sl_FetchResponse fr;
    SL_CHECK_OK(sl_FetchResponse_decode(&fr, &r, 11, &arena));
    sl_FetchResponse_PartitionData *pd = &fr.Responses.items[0].Partitions.items[0];
    SL_CHECK_INT(pd->ErrorCode, 0);
    out->hw = pd->HighWatermark;
    out->lso = pd->LastStableOffset;
    out->naborted = pd->AbortedTransactions.count;
    SL_CHECK(out->naborted <= 8);
    for (int i = 0; i < out->naborted; i++) out->aborted[i] = pd->AbortedTransactions.items[i];
    out->len = SL_MAX(pd->Records.len, 0);
    SL_CHECK(out->len <= (int32_t)sizeof out->records);
    if (out->len) memcpy(out->records, pd->Records.ptr, (size_t)out->len);
    sl_free(resp);
}

/* ListOffsets v2 latest with an isolation level. */
static int64_t latest(int fd, int8_t isolation)
{
    sl_ListOffsetsRequest m;
    sl_ListOffsetsRequest_init(&m);
    sl_ListOffsetsRequest_ListOffsetsPartition p = {.PartitionIndex = 0, .Timestamp = -1, .MaxNumOffsets = 1};
    sl_ListOffsetsRequest_ListOffsetsTopic t = {ks(T), {&p, 1}};
    m.ReplicaId = -1;
    m.IsolationLevel = isolation;
    m.Topics.items = &t;
    m.Topics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 2, 2, 66, (wenc_fn)sl_ListOffsetsRequest_encode, &m, &r);
    sl_ListOffsetsResponse lr;
    SL_CHECK_OK(sl_ListOffsetsResponse_decode(&lr, &r, 2, &arena));
    int64_t off = lr.Topics.items[0].Partitions.items[0].Offset;
    sl_free(resp);
    return off;
}

/* The batch at `offset` in a fetched slice (NULL if none starts there). */
static const uint8_t *batch_at(const fetched *f, int64_t offset)
{
    for (int32_t p = 0; p + SL_BATCH_HEADER_SIZE <= f->len; p += (int32_t)sl_batch_size(f->records + p))
        if ((int64_t)sl_be64(f->records + p) == offset) return f->records + p;
    return NULL;
}

/* A COMMIT/ABORT marker as Kafka writes it: control + transactional, key {0, type}, value {0, int32 0}. */
static void check_marker(const uint8_t *b, int64_t pid, int16_t epoch, bool commit)
{
    SL_CHECK(b != NULL);
    sl_batch_header h;
    SL_CHECK_OK(sl_batch_header_parse(b, (size_t)sl_batch_size(b), &h));
    SL_CHECK_INT(h.Attributes, SL_BATCH_ATTR_CONTROL | SL_BATCH_ATTR_TRANSACTIONAL);
    SL_CHECK_INT(h.ProducerId, pid);
    SL_CHECK_INT(h.ProducerEpoch, epoch);
    SL_CHECK_INT(h.BaseSequence, -1);
    SL_CHECK_INT(h.RecordsCount, 1);
    sl_batch_iter it;
    sl_record r;
    SL_CHECK_OK(sl_batch_iter_init(&it, b, (size_t)sl_batch_size(b)));
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), 1);
    static const uint8_t commit_key[4] = {0, 0, 0, 1}, abort_key[4] = {0, 0, 0, 0}, value[6] = {0};
    SL_CHECK_INT(r.key_len, 4);
    SL_CHECK_MEM(r.key, commit ? commit_key : abort_key, 4);
    SL_CHECK_INT(r.value_len, 6);
    SL_CHECK_MEM(r.value, value, 6);
}

SL_TEST(init_producer_id_validates_and_bumps_the_epoch)
{
    wbroker w;
    wbroker_config(&w, NULL);
    int fd = start(&w);
    sl_FindCoordinatorRequest fc;
    sl_FindCoordinatorRequest_init(&fc);
    fc.Key = ks("tx");
    fc.KeyType = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 10, 2, 67, (wenc_fn)sl_FindCoordinatorRequest_encode, &fc, &r);
    sl_FindCoordinatorResponse fr;
    SL_CHECK_OK(sl_FindCoordinatorResponse_decode(&fr, &r, 2, &arena));
    SL_CHECK_INT(fr.ErrorCode, 0);
    SL_CHECK_INT(fr.Port, w.port);
    sl_free(resp);
    int64_t pid = -1;
    int16_t epoch = -1;
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 0, &pid, &epoch), SL_KERR_INVALID_TRANSACTION_TIMEOUT);
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 900001, &pid, &epoch), SL_KERR_INVALID_TRANSACTION_TIMEOUT);
    SL_CHECK_INT(init_txn_v(fd, 4, "", 60000, &pid, &epoch), SL_KERR_INVALID_REQUEST);
    SL_CHECK_INT(init_txn_v(fd, 0, "tx", 900000, &pid, &epoch), 0);
    SL_CHECK(pid >= 0);
    SL_CHECK_INT(epoch, 0);
    int64_t first = pid;
    pid = epoch = -1;
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 60000, &pid, &epoch), 0); /* a new instance: same id, epoch + 1 */
    SL_CHECK_INT(pid, first);
    SL_CHECK_INT(epoch, 1);
    int64_t p = first;
    int16_t e = 0; /* KIP-360 from a stale epoch: fenced */
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 60000, &p, &e), SL_KERR_PRODUCER_FENCED);
    SL_CHECK_INT(init_txn_v(fd, 3, "tx", 60000, &p, &e), SL_KERR_INVALID_PRODUCER_EPOCH);
    p = first + 1;
    e = 1;
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 60000, &p, &e), SL_KERR_PRODUCER_FENCED); /* someone else's id */
    p = first;
    e = 1; /* KIP-360 from the current epoch: bumped */
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 60000, &p, &e), 0);
    SL_CHECK_INT(p, first);
    SL_CHECK_INT(e, 2);
    /* Another id gets another producer id. */
    int64_t pid2 = -1;
    int16_t epoch2 = -1;
    SL_CHECK_INT(init_txn_v(fd, 4, "tx2", 60000, &pid2, &epoch2), 0);
    SL_CHECK(pid2 != first);
    stop(&w, fd);
}

SL_TEST(commit_and_abort_write_markers_and_move_the_lso)
{
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    int fd = begin(&w, 60000, 0, &pid, &epoch);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), SL_KERR_INVALID_TXN_STATE); /* nothing open */
    SL_CHECK_INT(add_p0(fd, "tx", pid, epoch), 0);
    SL_CHECK_INT(txn_produce(fd, pid, epoch, 0, 3), 0); /* 0-2, open */
    uint8_t b[4096];
    int64_t base;
    SL_CHECK_INT(produce(fd, 0, b, wbatch(b, sizeof b, 1, 1), &base), 0); /* a plain record at 3 */
    SL_CHECK_INT(base, 3);
    fetched f;
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.hw, 4);
    SL_CHECK_INT(f.lso, 0);
    SL_CHECK_INT(f.len, 0); /* read_committed waits at the open transaction */
    fetch(fd, 0, 0, &f);
    SL_CHECK(f.len > 0);
    SL_CHECK_INT(f.lso, 0);
    SL_CHECK_INT(f.naborted, -1); /* read_uncommitted: a null list */
    SL_CHECK_INT(latest(fd, 1), 0);
    SL_CHECK_INT(latest(fd, 0), 4);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), 0);
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.hw, 5);
    SL_CHECK_INT(f.lso, 5);
    SL_CHECK_INT(f.naborted, 0);
    check_marker(batch_at(&f, 4), pid, epoch, true);
    SL_CHECK_INT(latest(fd, 1), 5);
    /* A second transaction, aborted. */
    SL_CHECK_INT(add_p0(fd, "tx", pid, epoch), 0);
    SL_CHECK_INT(txn_produce(fd, pid, epoch, 3, 2), 5); /* 5-6 */
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, false), 0);
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.lso, 8);
    SL_CHECK_INT(f.naborted, 1);
    SL_CHECK_INT(f.aborted[0].ProducerId, pid);
    SL_CHECK_INT(f.aborted[0].FirstOffset, 5);
    check_marker(batch_at(&f, 7), pid, epoch, false);
    fetch(fd, 6, 1, &f); /* from inside it: still listed */
    SL_CHECK_INT(f.naborted, 1);
    fetch(fd, 8, 1, &f); /* past its marker: nothing to return, nothing listed */
    SL_CHECK_INT(f.len, 0);
    SL_CHECK(f.naborted <= 0);
    fetch(fd, 0, 0, &f);
    SL_CHECK_INT(f.naborted, -1);
    /* Retries of the end are answered; the other outcome is refused. */
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, false), 0);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), SL_KERR_INVALID_TXN_STATE);
    stop(&w, fd);
}

SL_TEST(requests_are_checked_with_kafkas_errors)
{
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    w.cfg.default_partitions = 2;
    int fd = begin(&w, 60000, 0, &pid, &epoch);
    int32_t parts[2] = {0, 99};
    int16_t errs[2];
    SL_CHECK_INT(add_parts(fd, "tx", pid, epoch, T, parts, 2, errs), SL_KERR_OPERATION_NOT_ATTEMPTED);
    SL_CHECK_INT(errs[1], SL_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    SL_CHECK_INT(add_parts(fd, "tx", pid, epoch, "__consumer_offsets", parts, 1, NULL), SL_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    SL_CHECK_INT(add_p0(fd, "tx", pid + 1, epoch), SL_KERR_INVALID_PRODUCER_ID_MAPPING);
    SL_CHECK_INT(add_p0(fd, "nope", pid, epoch), SL_KERR_INVALID_PRODUCER_ID_MAPPING);
    SL_CHECK_INT(add_p0(fd, "tx", pid, (int16_t)(epoch + 1)), SL_KERR_INVALID_PRODUCER_EPOCH);
    uint8_t b[4096];
    /* A transactional batch to a partition the transaction has not added. */
    SL_CHECK_INT(produce(fd, 0, b, batch(b, sizeof b, pid, epoch, 0, 2, true, 0), NULL), SL_KERR_INVALID_TXN_STATE);
    SL_CHECK_INT(add_p0(fd, "tx", pid, epoch), 0);
    SL_CHECK_INT(add_p0(fd, "tx", pid, epoch), 0); /* again: nothing new, answered at once */
    SL_CHECK_INT(produce(fd, 1, b, batch(b, sizeof b, pid, epoch, 0, 2, true, 0), NULL), SL_KERR_INVALID_TXN_STATE);
    /* Control batches are the coordinator's; a transactional batch needs a producer id. */
    SL_CHECK_INT(produce(fd, 0, b, batch(b, sizeof b, pid, epoch, 0, 1, true, SL_BATCH_ATTR_CONTROL), NULL),
                 SL_KERR_INVALID_RECORD);
    SL_CHECK_INT(produce(fd, 0, b, batch(b, sizeof b, -1, -1, -1, 1, true, 0), NULL), SL_KERR_INVALID_RECORD);
    SL_CHECK_INT(txn_produce(fd, pid, epoch, 0, 2), 0);
    SL_CHECK_INT(add_offsets(fd, "tx", pid, epoch, ""), SL_KERR_INVALID_GROUP_ID);
    SL_CHECK_INT(end_txn(fd, "tx", pid, (int16_t)(epoch - 1), true), SL_KERR_INVALID_PRODUCER_EPOCH);
    SL_CHECK_INT(end_txn(fd, "tx", pid + 7, epoch, true), SL_KERR_INVALID_PRODUCER_ID_MAPPING);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), 0);
    /* After the end, the same producer's next batch needs a new AddPartitionsToTxn. */
    SL_CHECK_INT(produce(fd, 0, b, batch(b, sizeof b, pid, epoch, 2, 1, true, 0), NULL), SL_KERR_INVALID_TXN_STATE);
    stop(&w, fd);
}

SL_TEST(a_new_instance_fences_the_old_one_and_aborts_its_transaction)
{
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    int fd = begin(&w, 60000, 3, &pid, &epoch);
    int64_t pid2;
    int16_t epoch2;
    init_txn(fd, "tx", 60000, &pid2, &epoch2); /* CONCURRENT_TRANSACTIONS while the old one is aborted */
    SL_CHECK_INT(pid2, pid);
    SL_CHECK_INT(epoch2, epoch + 2); /* the abort's bump, then the new instance's */
    fetched f;
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.lso, 4);
    SL_CHECK_INT(f.naborted, 1);
    SL_CHECK_INT(f.aborted[0].FirstOffset, 0);
    check_marker(batch_at(&f, 3), pid, (int16_t)(epoch + 1), false);
    /* The zombie: every request with its epoch is refused. */
    uint8_t b[4096];
    SL_CHECK_INT(produce(fd, 0, b, batch(b, sizeof b, pid, epoch, 3, 1, true, 0), NULL), SL_KERR_INVALID_PRODUCER_EPOCH);
    SL_CHECK_INT(add_p0(fd, "tx", pid, epoch), SL_KERR_INVALID_PRODUCER_EPOCH);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), SL_KERR_INVALID_PRODUCER_EPOCH);
    int64_t p = pid;
    int16_t e = epoch; /* and it cannot take the id back with KIP-360 */
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 60000, &p, &e), SL_KERR_PRODUCER_FENCED);
    /* The new instance works, from sequence 0 with its epoch. */
    SL_CHECK_INT(add_p0(fd, "tx", pid2, epoch2), 0);
    SL_CHECK_INT(txn_produce(fd, pid2, epoch2, 0, 1), 4);
    SL_CHECK_INT(end_txn(fd, "tx", pid2, epoch2, true), 0);
    SL_CHECK_INT(latest(fd, 1), 6);
    stop(&w, fd);
}

SL_TEST(a_transaction_open_past_its_timeout_is_aborted)
{
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    int fd = begin(&w, 300, 2, &pid, &epoch);
    int64_t t0 = sl_mono_ns(sl_clock_system());
    while (latest(fd, 1) == 0) {
        SL_CHECK(sl_mono_ns(sl_clock_system()) - t0 < 5000000000LL);
        usleep(20000);
    }
    int64_t waited_ms = (sl_mono_ns(sl_clock_system()) - t0) / 1000000;
    SL_CHECK(waited_ms >= 200); /* not before its timeout (300 ms from its first AddPartitionsToTxn) */
    fetched f;
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.naborted, 1);
    check_marker(batch_at(&f, 2), pid, (int16_t)(epoch + 1), false);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), SL_KERR_INVALID_PRODUCER_EPOCH);
    /* Its owner may start over from the epoch it had (KIP-360). */
    int64_t p = pid;
    int16_t e = epoch;
    SL_CHECK_INT(init_txn_v(fd, 4, "tx", 60000, &p, &e), 0);
    SL_CHECK_INT(p, pid);
    SL_CHECK_INT(e, epoch + 2);
    stop(&w, fd);
}

static int16_t txn_commit_offset(int fd, const char *id, int64_t pid, int16_t epoch, const char *group, int64_t off)
{
    sl_TxnOffsetCommitRequest m;
    sl_TxnOffsetCommitRequest_init(&m);
    sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition p = {0, off, -1, ks("m")};
    sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic t = {ks(T), {&p, 1}};
    m.TransactionalId = ks(id);
    m.GroupId = ks(group);
    m.ProducerId = pid;
    m.ProducerEpoch = epoch;
    m.GenerationId = -1;
    m.MemberId = ks("");
    m.GroupInstanceId = SL_KSTR_NULL;
    m.Topics.items = &t;
    m.Topics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 28, 3, 68, (wenc_fn)sl_TxnOffsetCommitRequest_encode, &m, &r);
    sl_TxnOffsetCommitResponse tr;
    SL_CHECK_OK(sl_TxnOffsetCommitResponse_decode(&tr, &r, 3, &arena));
    int16_t err = tr.Topics.items[0].Partitions.items[0].ErrorCode;
    sl_free(resp);
    return err;
}

/* OffsetFetch v7 of T-0: the committed offset, or -(error) when the partition has an error. */
static int64_t committed(int fd, const char *group, bool require_stable)
{
    sl_OffsetFetchRequest m;
    sl_OffsetFetchRequest_init(&m);
    int32_t p0 = 0;
    sl_OffsetFetchRequest_OffsetFetchRequestTopic t = {ks(T), {&p0, 1}};
    m.GroupId = ks(group);
    m.Topics.items = &t;
    m.Topics.count = 1;
    m.RequireStable = require_stable;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 9, 7, 69, (wenc_fn)sl_OffsetFetchRequest_encode, &m, &r);
    sl_OffsetFetchResponse fr;
    SL_CHECK_OK(sl_OffsetFetchResponse_decode(&fr, &r, 7, &arena));
    SL_CHECK_INT(fr.ErrorCode, 0);
    const sl_OffsetFetchResponse_OffsetFetchResponsePartition *pr = &fr.Topics.items[0].Partitions.items[0];
    int64_t v = pr->ErrorCode ? -pr->ErrorCode : pr->CommittedOffset;
    sl_free(resp);
    return v;
}

SL_TEST(offsets_committed_in_a_transaction_become_visible_at_commit)
{
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    int fd = begin(&w, 60000, 0, &pid, &epoch);
    SL_CHECK_INT(add_p0(fd, "tx", pid, epoch), 0);
    /* Without AddOffsetsToTxn the group's offsets are not part of the transaction. */
    SL_CHECK_INT(txn_commit_offset(fd, "tx", pid, epoch, "g", 42), SL_KERR_INVALID_TXN_STATE);
    SL_CHECK_INT(add_offsets(fd, "tx", pid, epoch, "g"), 0);
    SL_CHECK_INT(txn_commit_offset(fd, "tx", pid, (int16_t)(epoch + 1), "g", 42), SL_KERR_INVALID_PRODUCER_EPOCH);
    SL_CHECK_INT(txn_commit_offset(fd, "tx", pid, epoch, "g", 42), 0);
    SL_CHECK_INT(committed(fd, "g", true), -SL_KERR_UNSTABLE_OFFSET_COMMIT);
    SL_CHECK_INT(committed(fd, "g", false), -1);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), 0);
    SL_CHECK_INT(committed(fd, "g", true), 42);
    /* Aborted: the offset stays. */
    SL_CHECK_INT(add_offsets(fd, "tx", pid, epoch, "g"), 0);
    SL_CHECK_INT(txn_commit_offset(fd, "tx", pid, epoch, "g", 50), 0);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, false), 0);
    SL_CHECK_INT(committed(fd, "g", true), 42);
    /* Pending at a restart: replayed from __consumer_offsets, settled by the commit after it. */
    SL_CHECK_INT(add_offsets(fd, "tx", pid, epoch, "g"), 0);
    SL_CHECK_INT(txn_commit_offset(fd, "tx", pid, epoch, "g", 60), 0);
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK_INT(committed(fd, "g", true), -SL_KERR_UNSTABLE_OFFSET_COMMIT);
    SL_CHECK_INT(committed(fd, "g", false), 42);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), 0);
    SL_CHECK_INT(committed(fd, "g", true), 60);
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK_INT(committed(fd, "g", true), 60);
    stop(&w, fd);
}

SL_TEST(open_transactions_survive_a_restart)
{
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    int fd = begin(&w, 60000, 3, &pid, &epoch);
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    fetched f;
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.hw, 3);
    SL_CHECK_INT(f.lso, 0); /* the partition still knows the transaction is open */
    SL_CHECK_INT(txn_produce(fd, pid, epoch, 3, 1), 3); /* and the coordinator still has it */
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, false), 0);
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.lso, 5);
    SL_CHECK_INT(f.naborted, 1);
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    fetch(fd, 0, 1, &f); /* the aborted index is rebuilt too */
    SL_CHECK_INT(f.lso, 5);
    SL_CHECK_INT(f.naborted, 1);
    SL_CHECK_INT(f.aborted[0].FirstOffset, 0);
    stop(&w, fd);
}

SL_TEST(a_failed_marker_sync_is_retried_until_the_transaction_completes)
{
    sl_fileio_fault_cfg fc = {.fail_write_nth = 0, .fail_sync_nth = 0, .enospc_after = -1};
    sl_fileio *io = sl_fileio_fault_new(&fc);
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    w.cfg.io = io;
    int fd = begin(&w, 60000, 2, &pid, &epoch);
    /* The Prepare record's sync passes, the marker's fails: the log drops it, the coordinator writes it again. */
    fc.fail_sync_nth = sl_fileio_fault_syncs(io) + 2;
    sl_fileio_fault_set(io, &fc);
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), 0);
    fetched f;
    fetch(fd, 0, 1, &f);
    SL_CHECK_INT(f.lso, f.hw);
    SL_CHECK(f.hw >= 3);
    check_marker(batch_at(&f, 2), pid, epoch, true);
    SL_CHECK(sl_fileio_fault_syncs(io) >= fc.fail_sync_nth); /* the failure did happen */
    stop(&w, fd);
    sl_fileio_fault_free(io);
}

static void commit_plain(int fd, const char *group, int64_t off)
{
    sl_OffsetCommitRequest m;
    sl_OffsetCommitRequest_init(&m);
    sl_OffsetCommitRequest_OffsetCommitRequestPartition p = {.PartitionIndex = 0, .CommittedOffset = off,
                                                             .CommittedLeaderEpoch = -1, .CommittedMetadata = ks("meta")};
    sl_OffsetCommitRequest_OffsetCommitRequestTopic t = {ks(T), {&p, 1}};
    m.GroupId = ks(group);
    m.GenerationIdOrMemberEpoch = -1;
    m.MemberId = ks("");
    m.GroupInstanceId = SL_KSTR_NULL;
    m.Topics.items = &t;
    m.Topics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 8, 7, 70, (wenc_fn)sl_OffsetCommitRequest_encode, &m, &r);
    sl_OffsetCommitResponse cr;
    SL_CHECK_OK(sl_OffsetCommitResponse_decode(&cr, &r, 7, &arena));
    SL_CHECK_INT(cr.Topics.items[0].Partitions.items[0].ErrorCode, 0);
    sl_free(resp);
}

/* A snapshot of __consumer_offsets taken while a transaction holds offsets must not let compaction drop the
   transaction's batch: its marker, after the snapshot, is what applies it. */
SL_TEST(compaction_keeps_offsets_of_open_transactions)
{
    wbroker w;
    int64_t pid;
    int16_t epoch;
    wbroker_config(&w, NULL);
    w.cfg.offsets_segment_bytes = 16 << 10;
    w.cfg.offsets_compact_bytes = 32 << 10;
    int fd = begin(&w, 60000, 0, &pid, &epoch);
    SL_CHECK_INT(add_offsets(fd, "tx", pid, epoch, "g"), 0);
    SL_CHECK_INT(txn_commit_offset(fd, "tx", pid, epoch, "g", 7), 0);
    for (int i = 0; i < 400; i++) commit_plain(fd, "other", i); /* ~44 KB: a snapshot at the next tick */
    int64_t end = wlist_offset(fd, "__consumer_offsets", 0, -1, &arena);
    for (int i = 0; i < 300 && wlist_offset(fd, "__consumer_offsets", 0, -1, &arena) == end; i++) usleep(10 * 1000);
    SL_CHECK(wlist_offset(fd, "__consumer_offsets", 0, -1, &arena) > end); /* the snapshot was written */
    /* The transaction commits after that snapshot and before the tick that drops the segments before it. */
    SL_CHECK_INT(end_txn(fd, "tx", pid, epoch, true), 0);
    usleep(1500 * 1000);
    SL_CHECK_INT(wlist_offset(fd, "__consumer_offsets", 0, -2, &arena), 0); /* the batch was kept */
    SL_CHECK_INT(committed(fd, "g", true), 7);
    for (int i = 0; i < 800; i++) commit_plain(fd, "other", 1000 + i);
    int64_t start_off = 0;
    for (int i = 0; i < 60 && start_off == 0; i++) {
        usleep(100 * 1000);
        start_off = wlist_offset(fd, "__consumer_offsets", 0, -2, &arena);
    }
    SL_CHECK(start_off > 0); /* a later snapshot holds the applied offset: the old segments went */
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK_INT(committed(fd, "g", true), 7);
    stop(&w, fd);
}
