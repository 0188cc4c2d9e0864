/*
 * offsets_txn.c - offsets committed inside a transaction: TxnOffsetCommit
 * 0-3, and what becomes of them at the transaction's end.
 *
 * A TxnOffsetCommit is checked against the transaction (txn.c: open, this
 * producer and epoch, the group's offsets added with AddOffsetsToTxn) and,
 * from v3, against the group (generation, member, instance id). Its offsets
 * are written to __consumer_offsets as one *transactional* batch (the
 * producer's id and epoch, Kafka's layout), then held in coord->txn_offsets:
 * invisible to OffsetFetch (which, with RequireStable, answers
 * UNSTABLE_OFFSET_COMMIT for them) until the transaction's marker in
 * __consumer_offsets is durable. A COMMIT applies them; an ABORT drops them.
 * A replay on start does the same from the log. The segments holding a
 * pending batch are kept by compaction until the marker.
 */
#include <string.h>
#include "broker/group_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "storage/batch.h"

static bool same_key(const sl_txn_offset *t, int64_t pid, const sl_group *g, const char *topic, size_t len,
                     int32_t partition)
{
    return t->pid == pid && t->group == g && t->value.partition == partition && strlen(t->value.topic) == len &&
           memcmp(t->value.topic, topic, len) == 0;
}

static void txn_offset_free(sl_txn_offset *t)
{
    sl_free(t->value.topic);
    sl_free(t->value.metadata);
}

void sl__offsets_txn_add(sl_coord *c, int64_t pid, sl_group *g, const sl_goffset *value, int64_t log_offset)
{
    size_t len = strlen(value->topic);
    for (int i = 0; i < c->ntxn_offsets; i++) {
        sl_txn_offset *t = &c->txn_offsets[i];
        if (!same_key(t, pid, g, value->topic, len, value->partition)) continue;
        sl_free(t->value.metadata);
        t->value.offset = value->offset;
        t->value.leader_epoch = value->leader_epoch;
        t->value.commit_ts = value->commit_ts;
        t->value.metadata = sl_strdup(value->metadata ? value->metadata : "");
        return;
    }
    if (c->ntxn_offsets == c->txn_offsets_cap) {
        c->txn_offsets_cap = c->txn_offsets_cap ? c->txn_offsets_cap * 2 : 16;
        c->txn_offsets = sl_realloc(c->txn_offsets, sizeof *c->txn_offsets * (size_t)c->txn_offsets_cap);
    }
    sl_txn_offset *t = &c->txn_offsets[c->ntxn_offsets++];
    t->pid = pid;
    t->group = g;
    t->value = *value;
    t->value.topic = sl_strdup(value->topic);
    t->value.metadata = sl_strdup(value->metadata ? value->metadata : "");
    t->log_offset = log_offset;
    g->txn_pending++;
}

/* Removes the entries `drop` says so (keeping the order of the rest). */
static void remove_if(sl_coord *c, bool (*drop)(const sl_txn_offset *, const void *), const void *arg,
                      void (*before)(sl_coord *, sl_txn_offset *, const void *))
{
    int k = 0;
    for (int i = 0; i < c->ntxn_offsets; i++) {
        sl_txn_offset *t = &c->txn_offsets[i];
        if (!drop(t, arg)) {
            c->txn_offsets[k++] = *t;
            continue;
        }
        if (before) before(c, t, arg);
        t->group->txn_pending--;
        txn_offset_free(t);
    }
    c->ntxn_offsets = k;
}

typedef struct end_arg {
    int64_t pid;
    bool commit;
} end_arg;

static bool of_pid(const sl_txn_offset *t, const void *arg) { return t->pid == ((const end_arg *)arg)->pid; }

static void apply_commit(sl_coord *c, sl_txn_offset *t, const void *arg)
{
    (void)c;
    if (!((const end_arg *)arg)->commit) return;
    const sl_goffset *v = &t->value;
    sl_goffset *o = sl__goffset_get(t->group, v->topic, strlen(v->topic), v->partition);
    sl__goffset_set(o, v->offset, v->leader_epoch, v->metadata, strlen(v->metadata), v->commit_ts);
}

void sl__offsets_txn_complete(sl_coord *c, int64_t pid, bool commit)
{
    end_arg a = {pid, commit};
    remove_if(c, of_pid, &a, apply_commit);
}

bool sl__offsets_txn_pending(sl_coord *c, const sl_group *g, const char *topic, size_t topic_len, int32_t partition)
{
    if (!g || !g->txn_pending) return false;
    for (int i = 0; i < c->ntxn_offsets; i++) {
        const sl_txn_offset *t = &c->txn_offsets[i];
        if (t->group == g && same_key(t, t->pid, g, topic, topic_len, partition)) return true;
    }
    return false;
}

static bool of_group(const sl_txn_offset *t, const void *arg) { return t->group == arg; }

void sl__offsets_txn_drop_group(sl_coord *c, sl_group *g)
{
    if (g->txn_pending) remove_if(c, of_group, g, NULL);
}

static bool of_topic(const sl_txn_offset *t, const void *arg) { return strcmp(t->value.topic, arg) == 0; }

void sl__offsets_txn_drop_topic(sl_coord *c, const char *topic) { remove_if(c, of_topic, topic, NULL); }

int64_t sl__offsets_txn_first(const sl_coord *c)
{
    int64_t first = INT64_MAX;
    for (int i = 0; i < c->ntxn_offsets; i++) first = SL_MIN(first, c->txn_offsets[i].log_offset);
    return first;
}

void sl__offsets_txn_free(sl_coord *c)
{
    for (int i = 0; i < c->ntxn_offsets; i++) txn_offset_free(&c->txn_offsets[i]);
    sl_free(c->txn_offsets);
    c->txn_offsets = NULL;
    c->ntxn_offsets = c->txn_offsets_cap = 0;
}

/* ---- TxnOffsetCommit ---- */

typedef struct tcommit_state {
    sl_TxnOffsetCommitRequest m;
    sl_TxnOffsetCommitResponse resp;
    sl_coord *coord;
    int64_t now_ms;
    int64_t log_offset; /* the log end before its batch */
} tcommit_state;

static bool partition_exists(sl_broker *b, sl_kstr topic, int32_t partition)
{
    sl_topic *t = topic.len > 0 ? sl__topic_find(b, topic.ptr, (size_t)topic.len) : NULL;
    return t && !sl__topic_internal(t) && partition >= 0 && partition < t->npartitions;
}

/* The response mirrors the request: err for every partition, else each partition's own check. */
static int build_response(sl_request *req, tcommit_state *st, int16_t err)
{
    int32_t nt = SL_MAX(st->m.Topics.count, 0);
    if (!ARENA_ARRAY(req, st->resp.Topics.items, nt)) return SL_ENOMEM;
    st->resp.Topics.count = nt;
    for (int32_t i = 0; i < nt; i++) {
        const sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic *t = &st->m.Topics.items[i];
        sl_TxnOffsetCommitResponse_TxnOffsetCommitResponseTopic *rt = &st->resp.Topics.items[i];
        int32_t np = SL_MAX(t->Partitions.count, 0);
        rt->Name = t->Name;
        if (!ARENA_ARRAY(req, rt->Partitions.items, np)) return SL_ENOMEM;
        rt->Partitions.count = np;
        for (int32_t j = 0; j < np; j++) {
            const sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition *p = &t->Partitions.items[j];
            int16_t e = err;
            if (!e && !partition_exists(req->conn->broker, t->Name, p->PartitionIndex))
                e = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (!e && p->CommittedMetadata.len > SL_GROUP_METADATA_MAX) e = SL_KERR_OFFSET_METADATA_TOO_LARGE;
            rt->Partitions.items[j] = (sl_TxnOffsetCommitResponse_TxnOffsetCommitResponsePartition){p->PartitionIndex, e};
        }
    }
    return 0;
}

/* Calls fn for each accepted partition with its value (metadata NUL-terminated in meta). */
static int each_accepted(tcommit_state *st, int16_t version,
                         void (*fn)(tcommit_state *, const sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic *,
                                    const sl_goffset *, void *),
                         void *arg)
{
    int n = 0;
    char meta[SL_GROUP_METADATA_MAX + 1];
    for (int32_t i = 0; i < st->resp.Topics.count; i++) {
        const sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic *t = &st->m.Topics.items[i];
        for (int32_t j = 0; j < st->resp.Topics.items[i].Partitions.count; j++) {
            const sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestPartition *p = &t->Partitions.items[j];
            if (st->resp.Topics.items[i].Partitions.items[j].ErrorCode) continue;
            int32_t mlen = SL_MAX(p->CommittedMetadata.len, 0);
            if (mlen) memcpy(meta, p->CommittedMetadata.ptr, (size_t)mlen);
            meta[mlen] = 0;
            char topic[SL_TOPIC_NAME_MAX + 1];
            memcpy(topic, t->Name.ptr, (size_t)t->Name.len);
            topic[t->Name.len] = 0;
            sl_goffset v = {.topic = topic, .partition = p->PartitionIndex, .offset = p->CommittedOffset,
                            .leader_epoch = version >= 2 ? p->CommittedLeaderEpoch : -1, .metadata = meta,
                            .commit_ts = st->now_ms};
            fn(st, t, &v, arg);
            n++;
        }
    }
    return n;
}

typedef struct encode_arg {
    sl_buf *kv;
    sl_irec *recs;
    int n;
} encode_arg;

static void encode_one(tcommit_state *st, const sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic *t,
                       const sl_goffset *v, void *arg)
{
    encode_arg *a = arg;
    char group[SL_GROUP_ID_MAX + 1];
    memcpy(group, st->m.GroupId.ptr, (size_t)st->m.GroupId.len);
    group[st->m.GroupId.len] = 0;
    sl__offsets_commit_record(a->kv, group, t->Name.ptr, (size_t)t->Name.len, v->partition, v, &a->recs[a->n++]);
}

static void hold_one(tcommit_state *st, const sl_TxnOffsetCommitRequest_TxnOffsetCommitRequestTopic *t,
                     const sl_goffset *v, void *arg)
{
    (void)t;
    sl__offsets_txn_add(st->coord, st->m.ProducerId, arg, v, st->log_offset);
}

/* The batch is durable (or lost): the offsets are held for the transaction's end, or the partitions fail. */
static void tcommit_done(sl_request *req, void *arg, int16_t err)
{
    tcommit_state *st = arg;
    if (err) {
        build_response(req, st, err);
    } else {
        sl_group *g = sl__group_get_or_create(st->coord, st->m.GroupId.ptr, (size_t)st->m.GroupId.len);
        each_accepted(st, req->hdr.RequestApiVersion, hold_one, g);
    }
    if (sl__request_respond(req, &st->resp) != 0) sl__conn_close(req->conn, "cannot encode a TxnOffsetCommit response");
}

static int16_t check_group(sl_coord *c, const sl_TxnOffsetCommitRequest *m, int16_t version)
{
    if (!sl__group_id_valid(m->GroupId)) return SL_KERR_INVALID_GROUP_ID;
    if (version < 3 || (m->GenerationId < 0 && m->MemberId.len <= 0)) return 0; /* no group fields to check */
    sl_group *g = sl__group_find(c, m->GroupId.ptr, (size_t)m->GroupId.len);
    if (!g) return m->GenerationId >= 0 ? SL_KERR_ILLEGAL_GENERATION : SL_KERR_UNKNOWN_MEMBER_ID;
    return sl__group_commit_check(g, m->GenerationId, m->MemberId, m->GroupInstanceId);
}

int sl__handle_txn_offset_commit(sl_broker *broker, sl_request *req)
{
    tcommit_state *st = sl_arena_alloc(&req->arena, sizeof *st);
    if (!st) return SL_ENOMEM;
    if (sl__request_decode(req, &st->m)) return SL_EINVAL;
    sl_TxnOffsetCommitResponse_init(&st->resp);
    st->coord = broker->coord;
    st->now_ms = sl_wall_ms(broker->cfg.clock);
    int16_t version = req->hdr.RequestApiVersion;
    int16_t err = check_group(st->coord, &st->m, version);
    if (!err) err = sl__txn_check_offsets(broker, st->m.TransactionalId, st->m.ProducerId, st->m.ProducerEpoch);
    if (build_response(req, st, err)) return SL_ENOMEM;
    int n = 0;
    for (int32_t i = 0; i < st->resp.Topics.count; i++)
        for (int32_t j = 0; j < st->resp.Topics.items[i].Partitions.count; j++)
            n += st->resp.Topics.items[i].Partitions.items[j].ErrorCode == 0;
    if (n == 0) return sl__request_respond(req, &st->resp);
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    encode_arg a = {&kv, sl_calloc((size_t)n, sizeof *a.recs), 0};
    each_accepted(st, version, encode_one, &a);
    sl_batch_header h = {.Attributes = SL_BATCH_ATTR_TRANSACTIONAL, .ProducerId = st->m.ProducerId,
                         .ProducerEpoch = st->m.ProducerEpoch, .BaseSequence = -1};
    st->log_offset = sl_log_end_offset(st->coord->ilog.p->log);
    sl__ilog_append_for(&st->coord->ilog, req, &h, &kv, a.recs, a.n, tcommit_done, st);
    sl_free(a.recs);
    sl_buf_deinit(&kv);
    return 0;
}
