/*
 * h_meta.c - ApiVersions, Metadata and ListOffsets: the requests that tell
 * a client what exists and where. One node: it is every partition's leader,
 * its only replica, the controller and the coordinator.
 */
#include <string.h>
#include "broker/broker_int.h"
#include "common/error.h"
#include "common/log.h"


/* KIP-511: [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? */
static bool software_name_valid(sl_kstr s)
{
    if (s.len <= 0) return false;
    for (int32_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        bool edge = i == 0 || i == s.len - 1;
        if (!alnum && (edge || (c != '-' && c != '.'))) return false;
    }
    return true;
}

int sl__handle_api_versions(sl_broker *broker, sl_request *req)
{
    (void)broker;
    sl_ApiVersionsRequest m;
    int16_t version = req->hdr.RequestApiVersion;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_ApiVersionsResponse resp;
    sl_ApiVersionsResponse_init(&resp);
    if (version >= 3 && (!software_name_valid(m.ClientSoftwareName) || !software_name_valid(m.ClientSoftwareVersion))) {
        resp.ErrorCode = SL_KERR_INVALID_REQUEST;
        return sl__request_respond(req, &resp);
    }
    int n = sl__api_count();
    if (!ARENA_ARRAY(req, resp.ApiKeys.items, n)) return SL_ENOMEM;
    resp.ApiKeys.count = n;
    for (int i = 0; i < n; i++) {
        const sl_api_entry *e = sl__api_at(i);
        resp.ApiKeys.items[i].ApiKey = e->key;
        resp.ApiKeys.items[i].MinVersion = e->min;
        resp.ApiKeys.items[i].MaxVersion = e->max;
    }
    return sl__request_respond(req, &resp);
}

static int fill_topic(sl_broker *broker, sl_request *req, sl_topic *topic,
                      sl_MetadataResponse_MetadataResponseTopic *out)
{
    out->ErrorCode = 0;
    out->Name = sl__kstr(topic->name);
    out->IsInternal = sl__topic_internal(topic);
    int32_t n = topic->npartitions;
    if (!ARENA_ARRAY(req, out->Partitions.items, n)) return SL_ENOMEM;
    out->Partitions.count = n;
    int32_t *node = sl_arena_alloc(&req->arena, sizeof *node);
    if (!node) return SL_ENOMEM;
    *node = broker->cfg.node_id;
    for (int32_t i = 0; i < n; i++) {
        sl_MetadataResponse_MetadataResponsePartition *p = &out->Partitions.items[i];
        p->ErrorCode = 0;
        p->PartitionIndex = i;
        p->LeaderId = broker->cfg.node_id;
        p->ReplicaNodes.items = node;
        p->ReplicaNodes.count = 1;
        p->IsrNodes.items = node;
        p->IsrNodes.count = 1;
        p->OfflineReplicas.items = NULL;
        p->OfflineReplicas.count = 0;
    }
    return 0;
}

static int16_t lookup_or_create(sl_broker *broker, sl_kstr name, bool allow_create, sl_topic **out)
{
    *out = sl__topic_find(broker, name.ptr, (size_t)SL_MAX(name.len, 0));
    if (*out) return 0;
    if (name.len < 0 || !sl__topic_name_valid(name.ptr, (size_t)name.len)) return SL_KERR_INVALID_TOPIC_EXCEPTION;
    if (!allow_create || !broker->cfg.auto_create) return SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
    sl_topic_config tc;
    sl__topic_config_default(broker, &tc);
    char msg[160];
    int16_t err = sl__topic_create(broker, name.ptr, (size_t)name.len, broker->cfg.default_partitions, &tc,
                                   false, msg, sizeof msg);
    if (err) return err;
    *out = sl__topic_find(broker, name.ptr, (size_t)name.len);
    return *out ? 0 : SL_KERR_UNKNOWN_SERVER_ERROR;
}

static int metadata_topics(sl_broker *broker, sl_request *req, const sl_MetadataRequest *m,
                           sl_MetadataResponse *resp)
{
    int16_t version = req->hdr.RequestApiVersion;
    bool all = version == 0 ? m->Topics.count <= 0 : m->Topics.count < 0;
    int32_t n = all ? broker->ntopics : m->Topics.count;
    if (!ARENA_ARRAY(req, resp->Topics.items, n)) return SL_ENOMEM;
    resp->Topics.count = n;
    if (all) {
        int i = 0;
        for (sl_topic *t = sl__topic_next(broker, NULL); t && i < n; t = sl__topic_next(broker, t))
            if (fill_topic(broker, req, t, &resp->Topics.items[i++])) return SL_ENOMEM;
        resp->Topics.count = i;
        return 0;
    }
    bool allow = version < 4 || m->AllowAutoTopicCreation;
    for (int32_t i = 0; i < n; i++) {
        sl_MetadataResponse_MetadataResponseTopic *out = &resp->Topics.items[i];
        sl_topic *t = NULL;
        int16_t err = lookup_or_create(broker, m->Topics.items[i].Name, allow, &t);
        if (err) {
            out->ErrorCode = err;
            out->Name = m->Topics.items[i].Name;
            continue;
        }
        if (fill_topic(broker, req, t, out)) return SL_ENOMEM;
    }
    return 0;
}

int sl__handle_metadata(sl_broker *broker, sl_request *req)
{
    sl_MetadataRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_MetadataResponse resp;
    sl_MetadataResponse_init(&resp);
    sl_MetadataResponse_MetadataResponseBroker *b = sl_arena_alloc(&req->arena, sizeof *b);
    if (!b) return SL_ENOMEM;
    b->NodeId = broker->cfg.node_id;
    b->Host = sl__kstr(broker->cfg.advertise_host);
    b->Port = broker->cfg.advertise_port;
    b->Rack.ptr = NULL;
    b->Rack.len = -1;
    resp.Brokers.items = b;
    resp.Brokers.count = 1;
    resp.ClusterId = sl__kstr(broker->cluster_id);
    resp.ControllerId = broker->cfg.node_id;
    int rc = metadata_topics(broker, req, &m, &resp);
    if (rc) return rc;
    return sl__request_respond(req, &resp);
}

/* read_committed (isolation 1, v2+): "latest" is the last stable offset. */
static void list_one(sl_partition *p, int16_t version, int8_t isolation, int64_t ts,
                     sl_ListOffsetsResponse_ListOffsetsPartitionResponse *out, sl_arena *arena)
{
    int64_t offset = -1, found_ts = -1;
    if (ts == -1) {
        offset = isolation == 1 ? sl__partition_lso(p) : sl_log_high_watermark(p->log);
    } else if (ts == -2) {
        offset = sl_log_start_offset(p->log);
    } else if (sl_log_offset_for_time(p->log, ts, &offset, &found_ts) != 0) {
        out->ErrorCode = SL_KERR_KAFKA_STORAGE_ERROR;
        return;
    }
    out->ErrorCode = 0;
    out->Timestamp = found_ts;
    out->Offset = offset;
    if (version == 0) {
        int64_t *o = sl_arena_alloc(arena, sizeof *o);
        if (!o) {
            out->ErrorCode = SL_KERR_UNKNOWN_SERVER_ERROR;
            return;
        }
        *o = offset;
        out->OldStyleOffsets.items = o;
        out->OldStyleOffsets.count = offset >= 0 ? 1 : 0;
    }
}

int sl__handle_list_offsets(sl_broker *broker, sl_request *req)
{
    sl_ListOffsetsRequest m;
    int16_t version = req->hdr.RequestApiVersion;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_ListOffsetsResponse resp;
    sl_ListOffsetsResponse_init(&resp);
    int32_t nt = SL_MAX(m.Topics.count, 0);
    if (!ARENA_ARRAY(req, resp.Topics.items, nt)) return SL_ENOMEM;
    resp.Topics.count = nt;
    for (int32_t i = 0; i < nt; i++) {
        const sl_ListOffsetsRequest_ListOffsetsTopic *t = &m.Topics.items[i];
        sl_ListOffsetsResponse_ListOffsetsTopicResponse *tr = &resp.Topics.items[i];
        sl_topic *topic = sl__topic_find(broker, t->Name.ptr, (size_t)SL_MAX(t->Name.len, 0));
        int32_t np = SL_MAX(t->Partitions.count, 0);
        tr->Name = t->Name;
        if (!ARENA_ARRAY(req, tr->Partitions.items, np)) return SL_ENOMEM;
        tr->Partitions.count = np;
        for (int32_t j = 0; j < np; j++) {
            sl_ListOffsetsResponse_ListOffsetsPartitionResponse *pr = &tr->Partitions.items[j];
            sl_partition *p = topic ? sl__partition_get(topic, t->Partitions.items[j].PartitionIndex) : NULL;
            pr->PartitionIndex = t->Partitions.items[j].PartitionIndex;
            pr->Timestamp = -1;
            pr->Offset = -1;
            if (!p) {
                pr->ErrorCode = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            list_one(p, version, version >= 2 ? m.IsolationLevel : 0, t->Partitions.items[j].Timestamp, pr, &req->arena);
        }
    }
    return sl__request_respond(req, &resp);
}

/*
 * FindCoordinator 0-2: one node, so this broker coordinates every group
 * (KeyType 0) and every transactional id (KeyType 1).
 */
int sl__handle_find_coordinator(sl_broker *broker, sl_request *req)
{
    sl_FindCoordinatorRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_FindCoordinatorResponse resp;
    sl_FindCoordinatorResponse_init(&resp);
    if (m.KeyType != 0 && m.KeyType != 1) {
        resp.ErrorCode = SL_KERR_INVALID_REQUEST;
        resp.ErrorMessage = sl__kstr("KeyType must be 0 (group) or 1 (transaction)");
        resp.NodeId = -1;
        resp.Host = sl__kstr("");
        resp.Port = -1;
    } else {
        resp.NodeId = broker->cfg.node_id;
        resp.Host = sl__kstr(broker->cfg.advertise_host);
        resp.Port = broker->cfg.advertise_port;
    }
    return sl__request_respond(req, &resp);
}
