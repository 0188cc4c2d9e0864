/*
 * h_txn.c - InitProducerId 0-4, AddPartitionsToTxn 0-1, AddOffsetsToTxn 0-1,
 * EndTxn 0-1: the transaction coordinator's requests (txn.c holds the state
 * machine).
 *
 * Checks, in Kafka's order: the transactional id is known and has this
 * producer id (else INVALID_PRODUCER_ID_MAPPING), the epoch is the current
 * one (else INVALID_PRODUCER_EPOCH, which clients take as "fenced";
 * InitProducerId v4 says PRODUCER_FENCED), and no change of the transaction
 * is still being made durable or its markers written (else
 * CONCURRENT_TRANSACTIONS, which clients retry). A request that changes the
 * transaction is answered when its record is durable; EndTxn when the
 * markers are.
 */
#include <string.h>
#include "broker/txn_int.h"
#include "broker/group_int.h"
#include "common/error.h"
#include "common/log.h"

static int64_t now_ms(const sl_broker *b) { return sl_wall_ms(b->cfg.clock); }

static bool preparing(const sl_txn *t) { return t->state == SL_TXN_PREPARE_COMMIT || t->state == SL_TXN_PREPARE_ABORT; }

/* ---- InitProducerId ---- */

typedef struct init_state {
    sl_InitProducerIdResponse resp;
} init_state;

static void init_done(sl_request *req, void *arg, int16_t err)
{
    init_state *st = arg;
    if (err) {
        st->resp.ErrorCode = err;
        st->resp.ProducerId = -1;
        st->resp.ProducerEpoch = -1;
    }
    if (sl__request_respond(req, &st->resp) != 0) req->state = SL_REQ_NO_RESPONSE;
}

/* An existing id initialised again: the open transaction is aborted (CONCURRENT_TRANSACTIONS: retry), or the
   epoch goes up and the id starts Empty. SL_PARKED when its record is being stored. */
static int16_t init_existing(sl_tcoord *tc, sl_txn *txn, const sl_InitProducerIdRequest *m, int16_t version)
{
    if (txn->writes > 0 || preparing(txn)) return SL_KERR_CONCURRENT_TRANSACTIONS;
    bool owner = m->ProducerId >= 0; /* KIP-360: the producer asks for a new epoch of its own id */
    if (owner && (m->ProducerId != txn->pid || (m->ProducerEpoch != txn->epoch && m->ProducerEpoch != txn->fenced_epoch)))
        return version >= 4 ? SL_KERR_PRODUCER_FENCED : SL_KERR_INVALID_PRODUCER_EPOCH;
    if (txn->state == SL_TXN_ONGOING) {
        sl__txn_fence_abort(tc, txn, owner ? SL_FENCE_OWNER_BUMP : SL_FENCE_NEW_INSTANCE);
        return SL_KERR_CONCURRENT_TRANSACTIONS;
    }
    if (txn->epoch >= INT16_MAX - 1) {
        if (sl__txn_new_pid(tc, txn) != 0) return SL_KERR_COORDINATOR_NOT_AVAILABLE;
    } else {
        txn->epoch++;
        txn->fenced_epoch = -1;
    }
    sl__txn_clear_parts(txn);
    sl__txn_set_state(txn, SL_TXN_EMPTY);
    txn->timeout_ms = m->TransactionTimeoutMs;
    txn->update_ms = now_ms(tc->broker);
    return SL_PARKED;
}

static int16_t init_transactional(sl_broker *b, sl_request *req, const sl_InitProducerIdRequest *m, init_state *st)
{
    sl_tcoord *tc = b->tcoord;
    sl_kstr id = m->TransactionalId;
    if (id.len == 0 || memchr(id.ptr, 0, (size_t)id.len)) return SL_KERR_INVALID_REQUEST;
    if (m->TransactionTimeoutMs <= 0 || m->TransactionTimeoutMs > b->cfg.transaction_max_timeout_ms)
        return SL_KERR_INVALID_TRANSACTION_TIMEOUT;
    sl_txn *txn = sl__txn_find(tc, id.ptr, (size_t)id.len);
    if (txn) {
        int16_t err = init_existing(tc, txn, m, req->hdr.RequestApiVersion);
        if (err != SL_PARKED) return err;
    } else if (m->ProducerId >= 0) {
        return SL_KERR_INVALID_PRODUCER_ID_MAPPING; /* KIP-360 for an id this coordinator does not know */
    } else if (!(txn = sl__txn_create(tc, id.ptr, (size_t)id.len, m->TransactionTimeoutMs))) {
        return SL_KERR_COORDINATOR_NOT_AVAILABLE;
    }
    st->resp.ProducerId = txn->pid;
    st->resp.ProducerEpoch = txn->epoch;
    sl__txn_store_for(tc, txn, req, init_done, st);
    return SL_PARKED;
}

int sl__handle_init_producer_id(sl_broker *broker, sl_request *req)
{
    init_state *st = sl_arena_alloc(&req->arena, sizeof *st);
    if (!st) return SL_ENOMEM;
    sl_InitProducerIdRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_InitProducerIdResponse_init(&st->resp);
    st->resp.ProducerId = -1;
    st->resp.ProducerEpoch = -1;
    int16_t err;
    if (m.TransactionalId.len >= 0) {
        err = init_transactional(broker, req, &m, st);
        if (err == SL_PARKED) return 0;
    } else {
        /* An idempotent producer (re)initialising gets a new id, epoch 0, as Kafka does (KIP-360 too). */
        err = sl__producer_id_next(broker, &st->resp.ProducerId) ? SL_KERR_KAFKA_STORAGE_ERROR : 0;
        st->resp.ProducerEpoch = err ? -1 : 0;
        if (err) st->resp.ProducerId = -1;
    }
    st->resp.ErrorCode = err;
    return sl__request_respond(req, &st->resp);
}

/* ---- the checks every other request makes ---- */

static int16_t check_txn(sl_tcoord *tc, sl_kstr id, int64_t pid, int16_t epoch, sl_txn **out)
{
    sl_txn *txn = id.len > 0 ? sl__txn_find(tc, id.ptr, (size_t)id.len) : NULL;
    *out = txn;
    if (!txn || txn->pid != pid) return SL_KERR_INVALID_PRODUCER_ID_MAPPING;
    if (epoch != txn->epoch) return SL_KERR_INVALID_PRODUCER_EPOCH;
    if (txn->writes > 0 || preparing(txn)) return SL_KERR_CONCURRENT_TRANSACTIONS;
    return 0;
}

/* Ongoing from here (a new transaction starts from Empty or Complete*). */
static void begin(sl_tcoord *tc, sl_txn *txn)
{
    if (txn->state == SL_TXN_ONGOING) return;
    sl__txn_clear_parts(txn);
    sl__txn_set_state(txn, SL_TXN_ONGOING);
    txn->start_ms = now_ms(tc->broker);
}

/* ---- AddPartitionsToTxn ---- */

typedef struct add_state {
    sl_AddPartitionsToTxnResponse resp;
} add_state;

static void set_all(sl_AddPartitionsToTxnResponse *resp, int16_t err)
{
    for (int32_t i = 0; i < resp->ResultsByTopicV3AndBelow.count; i++) {
        sl_AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult *t = &resp->ResultsByTopicV3AndBelow.items[i];
        for (int32_t j = 0; j < t->ResultsByPartition.count; j++) t->ResultsByPartition.items[j].PartitionErrorCode = err;
    }
}

static void add_done(sl_request *req, void *arg, int16_t err)
{
    add_state *st = arg;
    if (err) set_all(&st->resp, err);
    if (sl__request_respond(req, &st->resp) != 0) req->state = SL_REQ_NO_RESPONSE;
}

/* Mirrors the request in the response; marks partitions that do not exist. Returns how many do not. */
static int add_build(sl_broker *b, sl_request *req, const sl_AddPartitionsToTxnRequest *m, add_state *st)
{
    int32_t nt = SL_MAX(m->V3AndBelowTopics.count, 0);
    int bad = 0;
    if (!ARENA_ARRAY(req, st->resp.ResultsByTopicV3AndBelow.items, nt)) return -1;
    st->resp.ResultsByTopicV3AndBelow.count = nt;
    for (int32_t i = 0; i < nt; i++) {
        const sl_AddPartitionsToTxnRequest_AddPartitionsToTxnTopic *t = &m->V3AndBelowTopics.items[i];
        sl_AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult *r = &st->resp.ResultsByTopicV3AndBelow.items[i];
        int32_t np = SL_MAX(t->Partitions.count, 0);
        sl_topic *topic = t->Name.len > 0 ? sl__topic_find(b, t->Name.ptr, (size_t)t->Name.len) : NULL;
        r->Name = t->Name;
        if (!ARENA_ARRAY(req, r->ResultsByPartition.items, np)) return -1;
        r->ResultsByPartition.count = np;
        for (int32_t j = 0; j < np; j++) {
            int32_t idx = t->Partitions.items[j];
            bool ok = topic && !sl__topic_internal(topic) && sl__partition_get(topic, idx);
            r->ResultsByPartition.items[j] = (sl_AddPartitionsToTxnResponse_AddPartitionsToTxnPartitionResult){
                idx, ok ? 0 : SL_KERR_UNKNOWN_TOPIC_OR_PARTITION};
            bad += !ok;
        }
    }
    return bad;
}

/* Partitions that exist are not attempted when one of the request's does not (Kafka's answer). */
static void not_attempted(sl_AddPartitionsToTxnResponse *resp)
{
    for (int32_t i = 0; i < resp->ResultsByTopicV3AndBelow.count; i++) {
        sl_AddPartitionsToTxnResponse_AddPartitionsToTxnTopicResult *t = &resp->ResultsByTopicV3AndBelow.items[i];
        for (int32_t j = 0; j < t->ResultsByPartition.count; j++)
            if (!t->ResultsByPartition.items[j].PartitionErrorCode)
                t->ResultsByPartition.items[j].PartitionErrorCode = SL_KERR_OPERATION_NOT_ATTEMPTED;
    }
}

int sl__handle_add_partitions_to_txn(sl_broker *broker, sl_request *req)
{
    add_state *st = sl_arena_alloc(&req->arena, sizeof *st);
    if (!st) return SL_ENOMEM;
    sl_AddPartitionsToTxnRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_AddPartitionsToTxnResponse_init(&st->resp);
    int bad = add_build(broker, req, &m, st);
    if (bad < 0) return SL_ENOMEM;
    sl_txn *txn;
    int16_t err = check_txn(broker->tcoord, m.V3AndBelowTransactionalId, m.V3AndBelowProducerId,
                            m.V3AndBelowProducerEpoch, &txn);
    if (err) set_all(&st->resp, err);
    else if (bad) not_attempted(&st->resp);
    if (err || bad) return sl__request_respond(req, &st->resp);
    bool was_open = txn->state == SL_TXN_ONGOING, added = false;
    begin(broker->tcoord, txn);
    for (int32_t i = 0; i < m.V3AndBelowTopics.count; i++) {
        const sl_AddPartitionsToTxnRequest_AddPartitionsToTxnTopic *t = &m.V3AndBelowTopics.items[i];
        for (int32_t j = 0; j < t->Partitions.count; j++)
            added |= sl__txn_add_part(txn, t->Name.ptr, (size_t)t->Name.len, t->Partitions.items[j]);
    }
    if (was_open && !added && txn->stored) return sl__request_respond(req, &st->resp);
    txn->update_ms = now_ms(broker);
    sl__txn_store_for(broker->tcoord, txn, req, add_done, st);
    return 0;
}

/* ---- AddOffsetsToTxn ---- */

typedef struct offsets_state {
    sl_AddOffsetsToTxnResponse resp;
} offsets_state;

static void offsets_done(sl_request *req, void *arg, int16_t err)
{
    offsets_state *st = arg;
    st->resp.ErrorCode = err;
    if (sl__request_respond(req, &st->resp) != 0) req->state = SL_REQ_NO_RESPONSE;
}

int sl__handle_add_offsets_to_txn(sl_broker *broker, sl_request *req)
{
    offsets_state *st = sl_arena_alloc(&req->arena, sizeof *st);
    if (!st) return SL_ENOMEM;
    sl_AddOffsetsToTxnRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_AddOffsetsToTxnResponse_init(&st->resp);
    sl_txn *txn;
    int16_t err = check_txn(broker->tcoord, m.TransactionalId, m.ProducerId, m.ProducerEpoch, &txn);
    if (!err && !sl__group_id_valid(m.GroupId)) err = SL_KERR_INVALID_GROUP_ID;
    if (err) {
        st->resp.ErrorCode = err;
        return sl__request_respond(req, &st->resp);
    }
    bool was_open = txn->state == SL_TXN_ONGOING;
    begin(broker->tcoord, txn);
    /* One partition holds every group's offsets: the transaction's marker there settles them. */
    bool added = sl__txn_add_part(txn, SL_OFFSETS_TOPIC, strlen(SL_OFFSETS_TOPIC), 0);
    if (was_open && !added && txn->stored) return sl__request_respond(req, &st->resp);
    txn->update_ms = now_ms(broker);
    sl__txn_store_for(broker->tcoord, txn, req, offsets_done, st);
    return 0;
}

/* ---- EndTxn ---- */

/* An EndTxn for a transaction that is not open: a retry of one that ended, or a mistake. */
static int16_t end_not_open(const sl_txn *txn, bool commit)
{
    switch (txn->state) {
    case SL_TXN_PREPARE_COMMIT: return commit ? SL_KERR_CONCURRENT_TRANSACTIONS : SL_KERR_INVALID_TXN_STATE;
    case SL_TXN_PREPARE_ABORT: return commit ? SL_KERR_INVALID_TXN_STATE : SL_KERR_CONCURRENT_TRANSACTIONS;
    case SL_TXN_COMPLETE_COMMIT: return commit ? 0 : SL_KERR_INVALID_TXN_STATE;
    case SL_TXN_COMPLETE_ABORT: return commit ? SL_KERR_INVALID_TXN_STATE : 0;
    default: return SL_KERR_INVALID_TXN_STATE;
    }
}

int sl__handle_end_txn(sl_broker *broker, sl_request *req)
{
    sl_EndTxnRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_EndTxnResponse resp;
    sl_EndTxnResponse_init(&resp);
    sl_txn *txn;
    int16_t err = check_txn(broker->tcoord, m.TransactionalId, m.ProducerId, m.ProducerEpoch, &txn);
    if (err == SL_KERR_CONCURRENT_TRANSACTIONS && preparing(txn)) err = end_not_open(txn, m.Committed);
    if (!err && txn->state == SL_TXN_ONGOING) {
        sl__txn_end(broker->tcoord, txn, m.Committed, req); /* answered when the markers are durable */
        return 0;
    }
    if (!err) err = end_not_open(txn, m.Committed);
    resp.ErrorCode = err;
    return sl__request_respond(req, &resp);
}
