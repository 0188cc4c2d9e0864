/*
 * h_offsets.c - OffsetCommit 1-7 and OffsetFetch 1-7.
 *
 * A commit is checked whole against the group (generation, member,
 * instance id: Kafka's order, group.c), then per partition (the topic and
 * partition exist, metadata <= 4096 bytes). The accepted partitions become
 * one batch in __consumer_offsets; the answer, and the new offsets'
 * visibility to OffsetFetch, wait until that batch is durable.
 */
#include <string.h>
#include "broker/group_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

typedef struct commit_state {
    sl_OffsetCommitRequest m;
    sl_OffsetCommitResponse resp;
    sl_coord *coord;
    int64_t now_ms;
} commit_state;

static bool partition_exists(sl_broker *b, sl_kstr topic, int32_t partition)
{
    sl_topic *t = topic.len > 0 ? sl__topic_find(b, topic.ptr, (size_t)topic.len) : NULL;
    return t && partition >= 0 && partition < t->npartitions;
}

static int build_response(sl_request *req, commit_state *st, int16_t err)
{
    const sl_OffsetCommitRequest *m = &st->m;
    int32_t nt = SL_MAX(m->Topics.count, 0);
    if (!ARENA_ARRAY(req, st->resp.Topics.items, nt)) return SL_ENOMEM;
    st->resp.Topics.count = nt;
    for (int32_t i = 0; i < nt; i++) {
        const sl_OffsetCommitRequest_OffsetCommitRequestTopic *t = &m->Topics.items[i];
        sl_OffsetCommitResponse_OffsetCommitResponseTopic *rt = &st->resp.Topics.items[i];
        int32_t np = SL_MAX(t->Partitions.count, 0);
        rt->Name = t->Name;
        if (!ARENA_ARRAY(req, rt->Partitions.items, np)) return SL_ENOMEM;
        rt->Partitions.count = np;
        for (int32_t j = 0; j < np; j++) {
            const sl_OffsetCommitRequest_OffsetCommitRequestPartition *p = &t->Partitions.items[j];
            int16_t e = err;
            if (!e && !partition_exists(req->conn->broker, t->Name, p->PartitionIndex))
                e = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            if (!e && p->CommittedMetadata.len > SL_GROUP_METADATA_MAX) e = SL_KERR_OFFSET_METADATA_TOO_LARGE;
            rt->Partitions.items[j].PartitionIndex = p->PartitionIndex;
            rt->Partitions.items[j].ErrorCode = e;
        }
    }
    return 0;
}

static sl_goffset value_of(const commit_state *st, const sl_OffsetCommitRequest_OffsetCommitRequestPartition *p,
                           int16_t version)
{
    sl_goffset v = {.offset = p->CommittedOffset, .leader_epoch = version >= 6 ? p->CommittedLeaderEpoch : -1};
    v.commit_ts = version == 1 && p->CommitTimestamp >= 0 ? p->CommitTimestamp : st->now_ms;
    return v;
}

/* The commit's batch is durable (err 0) or lost: the offsets become visible, or the partitions fail. */
static void commit_done(sl_request *req, void *arg, int16_t err)
{
    commit_state *st = arg;
    int16_t version = req->hdr.RequestApiVersion;
    sl_group *g = sl__group_find(st->coord, st->m.GroupId.ptr, (size_t)st->m.GroupId.len);
    for (int32_t i = 0; i < st->resp.Topics.count; i++) {
        const sl_OffsetCommitRequest_OffsetCommitRequestTopic *t = &st->m.Topics.items[i];
        for (int32_t j = 0; j < st->resp.Topics.items[i].Partitions.count; j++) {
            int16_t *e = &st->resp.Topics.items[i].Partitions.items[j].ErrorCode;
            const sl_OffsetCommitRequest_OffsetCommitRequestPartition *p = &t->Partitions.items[j];
            if (*e != 0) continue;
            *e = err;
            /* No entry: the group or the topic was deleted meanwhile; their tombstones follow in the log. */
            sl_goffset *o = g ? sl__goffset_find(g, t->Name.ptr, (size_t)t->Name.len, p->PartitionIndex) : NULL;
            if (!o) continue;
            o->pending--;
            if (!err) {
                sl_goffset v = value_of(st, p, version);
                sl__goffset_set(o, v.offset, v.leader_epoch, p->CommittedMetadata.ptr,
                                (size_t)SL_MAX(p->CommittedMetadata.len, 0), v.commit_ts);
            } else if (o->pending == 0 && !o->committed) {
                sl__goffset_remove(g, o);
            }
        }
    }
    if (sl__request_respond(req, &st->resp) != 0) sl__conn_close(req->conn, "cannot encode an OffsetCommit response");
}

/* Encodes one record per accepted partition and counts it pending on its offset entry. */
static int encode_accepted(commit_state *st, sl_group *g, int16_t version, sl_buf *kv, sl_irec *recs)
{
    int n = 0;
    char meta[SL_GROUP_METADATA_MAX + 1];
    for (int32_t i = 0; i < st->resp.Topics.count; i++) {
        const sl_OffsetCommitRequest_OffsetCommitRequestTopic *t = &st->m.Topics.items[i];
        for (int32_t j = 0; j < st->resp.Topics.items[i].Partitions.count; j++) {
            const sl_OffsetCommitRequest_OffsetCommitRequestPartition *p = &t->Partitions.items[j];
            if (st->resp.Topics.items[i].Partitions.items[j].ErrorCode) continue;
            sl_goffset v = value_of(st, p, version);
            int32_t mlen = SL_MAX(p->CommittedMetadata.len, 0);
            if (mlen) memcpy(meta, p->CommittedMetadata.ptr, (size_t)mlen);
            meta[mlen] = 0;
            v.metadata = meta;
            sl__offsets_commit_record(kv, g->id, t->Name.ptr, (size_t)t->Name.len, p->PartitionIndex, &v, &recs[n++]);
            sl__goffset_get(g, t->Name.ptr, (size_t)t->Name.len, p->PartitionIndex)->pending++;
        }
    }
    return n;
}

static int count_accepted(const commit_state *st)
{
    int n = 0;
    for (int32_t i = 0; i < st->resp.Topics.count; i++)
        for (int32_t j = 0; j < st->resp.Topics.items[i].Partitions.count; j++)
            n += st->resp.Topics.items[i].Partitions.items[j].ErrorCode == 0;
    return n;
}

static int16_t commit_group(sl_coord *c, const sl_OffsetCommitRequest *m, int16_t version, sl_group **out)
{
    *out = NULL;
    if (!sl__group_id_valid(m->GroupId)) return SL_KERR_INVALID_GROUP_ID;
    int32_t gen = m->GenerationIdOrMemberEpoch;
    sl_group *g = sl__group_find(c, m->GroupId.ptr, (size_t)m->GroupId.len);
    if (!g && gen >= 0) return SL_KERR_ILLEGAL_GENERATION; /* Kafka: a generation of a group it does not know */
    if (!g) g = sl__group_get_or_create(c, m->GroupId.ptr, (size_t)m->GroupId.len);
    *out = g;
    return sl__group_commit_check(g, gen, m->MemberId, version >= 7 ? m->GroupInstanceId : SL_KSTR_NULL);
}

int sl__handle_offset_commit(sl_broker *broker, sl_request *req)
{
    commit_state *st = sl_arena_alloc(&req->arena, sizeof *st);
    if (!st) return SL_ENOMEM;
    if (sl__request_decode(req, &st->m)) return SL_EINVAL;
    sl_OffsetCommitResponse_init(&st->resp);
    st->coord = broker->coord;
    st->now_ms = sl_wall_ms(broker->cfg.clock);
    int16_t version = req->hdr.RequestApiVersion;
    sl_group *g;
    int16_t err = commit_group(st->coord, &st->m, version, &g);
    if (build_response(req, st, err)) return SL_ENOMEM;
    int n = count_accepted(st);
    if (n == 0) {
        if (g) sl__group_maybe_forget(st->coord, g);
        return sl__request_respond(req, &st->resp);
    }
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec *recs = sl_calloc((size_t)n, sizeof *recs);
    int k = encode_accepted(st, g, version, &kv, recs);
    SL_ASSERT(k == n);
    sl__offsets_append_for(st->coord, req, &kv, recs, k, commit_done, st);
    sl_free(recs);
    sl_buf_deinit(&kv);
    return 0;
}

/* ---- OffsetFetch ---- */

/* stable (v7 RequireStable): an offset an open transaction committed answers UNSTABLE_OFFSET_COMMIT, so the
   consumer retries until that transaction ends rather than start from an offset about to change. */
static void fetch_partition(sl_coord *c, sl_group *g, sl_kstr topic, int32_t partition, int16_t err, bool stable,
                            sl_OffsetFetchResponse_OffsetFetchResponsePartition *out)
{
    sl_goffset *o = g && topic.len > 0 ? sl__goffset_find(g, topic.ptr, (size_t)topic.len, partition) : NULL;
    out->PartitionIndex = partition;
    out->ErrorCode = err;
    out->CommittedLeaderEpoch = -1;
    out->CommittedOffset = -1;
    out->Metadata = SL_KSTR_EMPTY;
    if (!err && stable && topic.len > 0 && sl__offsets_txn_pending(c, g, topic.ptr, (size_t)topic.len, partition)) {
        out->ErrorCode = SL_KERR_UNSTABLE_OFFSET_COMMIT;
        return;
    }
    if (!o || !o->committed) return;
    out->CommittedOffset = o->offset;
    out->CommittedLeaderEpoch = o->leader_epoch;
    out->Metadata = sl__kstr(o->metadata ? o->metadata : "");
}

/* Topics null (v2+): every offset the group has, by topic. */
static int fetch_all(sl_request *req, sl_coord *c, sl_group *g, bool stable, sl_OffsetFetchResponse *resp)
{
    int nt = 0; /* distinct topics: at least the topics with a committed offset */
    for (int i = 0; g && i < g->noffsets; i++)
        nt += i == 0 || strcmp(g->offsets[i].topic, g->offsets[i - 1].topic) != 0;
    if (!ARENA_ARRAY(req, resp->Topics.items, nt)) return SL_ENOMEM;
    resp->Topics.count = 0;
    for (int i = 0; g && i < g->noffsets;) {
        int j = i, np = 0;
        for (; j < g->noffsets && strcmp(g->offsets[j].topic, g->offsets[i].topic) == 0; j++)
            np += g->offsets[j].committed;
        if (np) {
            sl_OffsetFetchResponse_OffsetFetchResponseTopic *t = &resp->Topics.items[resp->Topics.count++];
            t->Name = sl__kstr(g->offsets[i].topic);
            if (!ARENA_ARRAY(req, t->Partitions.items, np)) return SL_ENOMEM;
            for (int k = i; k < j; k++)
                if (g->offsets[k].committed)
                    fetch_partition(c, g, t->Name, g->offsets[k].partition, 0, stable,
                                    &t->Partitions.items[t->Partitions.count++]);
        }
        i = j;
    }
    return 0;
}

int sl__handle_offset_fetch(sl_broker *broker, sl_request *req)
{
    sl_OffsetFetchRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_OffsetFetchResponse resp;
    sl_OffsetFetchResponse_init(&resp);
    int16_t version = req->hdr.RequestApiVersion;
    bool valid = sl__group_id_valid(m.GroupId);
    sl_group *g = valid ? sl__group_find(broker->coord, m.GroupId.ptr, (size_t)m.GroupId.len) : NULL;
    int16_t err = valid ? 0 : SL_KERR_INVALID_GROUP_ID;
    if (version >= 2) resp.ErrorCode = err;
    bool stable = version >= 7 && m.RequireStable;
    if (m.Topics.count < 0 && version >= 2) {
        if (fetch_all(req, broker->coord, g, stable, &resp)) return SL_ENOMEM;
        return sl__request_respond(req, &resp);
    }
    int32_t nt = SL_MAX(m.Topics.count, 0);
    if (!ARENA_ARRAY(req, resp.Topics.items, nt)) return SL_ENOMEM;
    resp.Topics.count = nt;
    for (int32_t i = 0; i < nt; i++) {
        const sl_OffsetFetchRequest_OffsetFetchRequestTopic *t = &m.Topics.items[i];
        sl_OffsetFetchResponse_OffsetFetchResponseTopic *rt = &resp.Topics.items[i];
        int32_t np = SL_MAX(t->PartitionIndexes.count, 0);
        rt->Name = t->Name;
        if (!ARENA_ARRAY(req, rt->Partitions.items, np)) return SL_ENOMEM;
        rt->Partitions.count = np;
        for (int32_t j = 0; j < np; j++)
            fetch_partition(broker->coord, g, t->Name, t->PartitionIndexes.items[j], version >= 2 ? 0 : err, stable,
                            &rt->Partitions.items[j]);
    }
    return sl__request_respond(req, &resp);
}
