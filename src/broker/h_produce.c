/*
 * h_produce.c - Produce v3-7: validate, append, and answer when durable.
 *
 * Each partition's records blob is checked whole (sizes, magic 2, CRC-32C,
 * max.message.bytes) before anything is appended, so a bad batch costs
 * nothing but its error code. The blob is appended exactly as received,
 * patched in place (base offsets, leader epoch) in the request's own frame
 * buffer: no copy.
 *
 * With flush mode `always` and acks != 0, the answer waits until the
 * partition's durable offset passes the append (flusher.c); the request is
 * linked into each partition's produce waits, which are in offset order, so
 * a finished round completes a prefix of them. acks=0 gets no response at
 * all; if such a produce fails, the connection is closed instead, which is
 * how Kafka tells an acks=0 producer something went wrong.
 */
#include <string.h>
#include "broker/broker_int.h"
#include "common/error.h"
#include "common/log.h"
#include "storage/batch.h"

typedef struct sl_produce_state {
    int pending;
    sl_ProduceResponse resp;
} sl_produce_state;

static int16_t verdict_error(sl_batch_verdict v)
{
    switch (v) {
    case SL_BATCH_OK: return 0;
    case SL_BATCH_TOO_LARGE: return SL_KERR_MESSAGE_TOO_LARGE;
    case SL_BATCH_INVALID: return SL_KERR_INVALID_RECORD;
    case SL_BATCH_CORRUPT: break;
    }
    return SL_KERR_CORRUPT_MESSAGE;
}

static int16_t legacy_format(const sl_partition *p, int8_t magic)
{
    static bool logged;
    if (!logged) {
        SL_WARN("produce", "a client sent a legacy message set (magic %d) to %s-%d; this broker stores record "
                "batch v2 only: configure the client for Kafka >= 0.11 (Sarama: config.Version >= V0_11_0_0)",
                magic, p->topic->name, p->index);
        logged = true;
    }
    return SL_KERR_UNSUPPORTED_FOR_MESSAGE_FORMAT;
}

/* An idempotent producer's batch: one per partition (as Kafka requires), its sequence checked. */
static int16_t check_producer(sl_broker *broker, sl_partition *p, const uint8_t *data, const sl_batches_info *info,
                              sl_batch_header *h, int64_t *dup_first, int64_t *dup_last)
{
    if (info->nbatches != 1) return SL_KERR_INVALID_RECORD;
    sl_batch_header_parse(data, SL_BATCH_HEADER_SIZE, h);
    int16_t err = sl__producer_check(p, h, dup_first, dup_last);
    if (!err && *dup_first < 0 && (h->Attributes & SL_BATCH_ATTR_TRANSACTIONAL))
        err = sl__txn_check_produce(broker, h, p);
    if (!err && *dup_first < 0) err = sl__producer_before_append(broker, p);
    return err;
}

/* Validates and appends one partition's blob: 0 with *base, or a Kafka error. A retried idempotent batch is
   not appended: *base and *dup_end (the offset after it) are those of the first append. */
static int16_t append_one(sl_broker *broker, sl_partition *p, const sl_krecords *records, int64_t *base,
                          int64_t *dup_end)
{
    *dup_end = -1;
    if (records->len <= 0) return SL_KERR_CORRUPT_MESSAGE;
    if (records->len > 16 && records->ptr[16] < 2) return legacy_format(p, (int8_t)records->ptr[16]);
    sl_batches_info info;
    uint8_t *data = (uint8_t *)records->ptr; /* our own frame buffer: patched in place */
    sl_batch_verdict v = sl_batches_validate(data, (size_t)records->len, p->topic->config.max_message_bytes, &info);
    if (v != SL_BATCH_OK) return verdict_error(v);
    if (info.any_attributes & SL_BATCH_ATTR_CONTROL) return SL_KERR_INVALID_RECORD; /* markers are the coordinator's */
    if ((info.any_attributes & SL_BATCH_ATTR_TRANSACTIONAL) && info.first_producer_id < 0) return SL_KERR_INVALID_RECORD;
    sl_batch_header h;
    int64_t dup_first = -1, dup_last = -1;
    if (info.first_producer_id >= 0) {
        int16_t err = check_producer(broker, p, data, &info, &h, &dup_first, &dup_last);
        if (err) return err;
        if (dup_first >= 0) {
            int64_t n = ++broker->idem_retries;
            if (n == 1 || n == 10 || n == 100 || n == 1000 || n % 10000 == 0)
                SL_INFO("produce", "idempotent producers: %lld retried batch(es) answered with their first append's "
                        "offsets, not appended again (latest: %s-%d, producer %lld)", (long long)n, p->topic->name,
                        p->index, (long long)h.ProducerId);
            *base = dup_first;
            *dup_end = dup_last + 1;
            return 0;
        }
    }
    int rc = sl_log_append(p->log, data, (size_t)records->len, &info, base);
    if (rc) {
        SL_WARN("produce", "append to %s-%d failed: %s; answering KAFKA_STORAGE_ERROR", p->topic->name, p->index,
                sl_strerror(rc));
        return SL_KERR_KAFKA_STORAGE_ERROR;
    }
    if (info.first_producer_id >= 0) sl__producer_appended(broker, p, &h, *base);
    return 0;
}

static void complete_wait(sl_produce_wait *w, int16_t error_code);

static void add_wait(sl_request *req, sl_produce_state *st, sl_partition *p,
                     sl_ProduceResponse_PartitionProduceResponse *pr, int64_t offset_needed)
{
    sl_produce_wait *w = sl_arena_alloc(&req->arena, sizeof *w);
    if (!w) {
        /* Cannot wait, so cannot promise durability: a retriable error (the client resends). */
        pr->ErrorCode = SL_KERR_REQUEST_TIMED_OUT;
        pr->BaseOffset = -1;
        return;
    }
    w->req = req;
    w->presp = pr;
    w->complete = complete_wait;
    w->offset_needed = offset_needed;
    sl_link_insert_tail(&p->produce_waits, &w->link);
    st->pending++;
}

static void produce_partition(sl_broker *broker, sl_request *req, sl_produce_state *st, int16_t acks,
                              sl_topic *topic, const sl_ProduceRequest_PartitionProduceData *pd,
                              sl_ProduceResponse_PartitionProduceResponse *pr)
{
    pr->Index = pd->Index;
    pr->BaseOffset = -1;
    pr->LogAppendTimeMs = -1;
    pr->LogStartOffset = -1;
    if (acks != 0 && acks != 1 && acks != -1) {
        pr->ErrorCode = SL_KERR_INVALID_REQUIRED_ACKS;
        return;
    }
    sl_partition *p = topic ? sl__partition_get(topic, pd->Index) : NULL;
    if (!p) {
        pr->ErrorCode = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    if (sl__topic_internal(topic)) { /* Kafka: "Cannot append to internal topic" */
        pr->ErrorCode = SL_KERR_INVALID_TOPIC_EXCEPTION;
        return;
    }
    int64_t dup_end;
    pr->ErrorCode = append_one(broker, p, &pd->Records, &pr->BaseOffset, &dup_end);
    pr->LogStartOffset = sl_log_start_offset(p->log);
    if (pr->ErrorCode) {
        pr->BaseOffset = -1;
        return;
    }
    if (dup_end >= 0) { /* a retry: answered once the first append is durable, like the first would have been */
        bool wait = broker->cfg.flush_mode == SL_FLUSH_ALWAYS && dup_end > sl_log_durable_offset(p->log);
        if (wait && acks != 0) add_wait(req, st, p, pr, dup_end);
        return;
    }
    sl__flusher_dirty(broker->flusher, p);
    if (broker->cfg.flush_mode == SL_FLUSH_ALWAYS) {
        if (acks != 0) add_wait(req, st, p, pr, sl_log_end_offset(p->log));
    } else {
        sl__partition_hw_advanced(p);
    }
}

static void respond(sl_request *req, sl_produce_state *st)
{
    req->hstate = NULL;
    if (sl__request_respond(req, &st->resp) != 0)
        req->state = SL_REQ_NO_RESPONSE;
}

/* Test hook (--fault-drop-produce-every N): every Nth produce that waits for its sync loses its connection
   after the append, so its answer never arrives and the client retries what was in fact written. */
static void fault_drop(sl_broker *broker, sl_request *req)
{
    int64_t every = broker->cfg.fault_drop_produce_every;
    if (every <= 0 || ++broker->fault_produces % every != 0) return;
    sl__conn_close(req->conn, "fault injection (--fault-drop-produce-every): dropped after the append");
}

int sl__handle_produce(sl_broker *broker, sl_request *req)
{
    sl_ProduceRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_produce_state *st = sl_arena_alloc(&req->arena, sizeof *st);
    if (!st) return SL_ENOMEM;
    sl_ProduceResponse_init(&st->resp);
    int32_t nt = SL_MAX(m.TopicData.count, 0);
    st->resp.Responses.items = sl_arena_alloc(&req->arena, sizeof *st->resp.Responses.items * (size_t)(nt + 1));
    if (!st->resp.Responses.items) return SL_ENOMEM;
    st->resp.Responses.count = nt;
    bool failed = false;
    for (int32_t i = 0; i < nt; i++) {
        const sl_ProduceRequest_TopicProduceData *td = &m.TopicData.items[i];
        sl_ProduceResponse_TopicProduceResponse *tr = &st->resp.Responses.items[i];
        int32_t np = SL_MAX(td->PartitionData.count, 0);
        tr->Name = td->Name;
        tr->PartitionResponses.items = sl_arena_alloc(&req->arena, sizeof *tr->PartitionResponses.items * (size_t)(np + 1));
        if (!tr->PartitionResponses.items) return SL_ENOMEM;
        tr->PartitionResponses.count = np;
        sl_topic *topic = sl__topic_find(broker, td->Name.ptr, (size_t)SL_MAX(td->Name.len, 0));
        for (int32_t j = 0; j < np; j++) {
            produce_partition(broker, req, st, m.Acks, topic, &td->PartitionData.items[j], &tr->PartitionResponses.items[j]);
            failed |= tr->PartitionResponses.items[j].ErrorCode != 0;
        }
    }
    if (m.Acks == 0) {
        SL_ASSERT(st->pending == 0);
        req->state = SL_REQ_NO_RESPONSE;
        return failed ? SL_ECLOSED : 0;
    }
    if (st->pending == 0) {
        respond(req, st);
        return 0;
    }
    req->state = SL_REQ_WAITING;
    req->hstate = st;
    req->conn->nwaiting_durable++;
    fault_drop(broker, req);
    return 0;
}

static void complete_wait(sl_produce_wait *w, int16_t error_code)
{
    sl_request *req = w->req;
    sl_produce_state *st = req->hstate;
    if (error_code) {
        w->presp->ErrorCode = error_code;
        w->presp->BaseOffset = -1;
    }
    SL_ASSERT(st && st->pending > 0);
    if (--st->pending > 0) return;
    respond(req, st);
    req->conn->nwaiting_durable--;
    sl__conn_pump_later(req->conn);
}

void sl__produce_waits_advance(sl_partition *partition, int16_t error_code)
{
    int64_t durable = sl_log_durable_offset(partition->log);
    while (!sl_link_empty(&partition->produce_waits)) {
        sl_produce_wait *w = SL_CONTAINER(partition->produce_waits.next, sl_produce_wait, link);
        if (w->offset_needed > durable && !error_code) break;
        sl_link_remove(&w->link);
        w->complete(w, w->offset_needed > durable ? error_code : 0);
    }
}

void sl__produce_waits_fail(sl_partition *partition, int16_t error_code)
{
    while (!sl_link_empty(&partition->produce_waits)) {
        sl_produce_wait *w = SL_CONTAINER(partition->produce_waits.next, sl_produce_wait, link);
        sl_link_remove(&w->link);
        w->complete(w, error_code);
    }
}
