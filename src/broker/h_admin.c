/*
 * h_admin.c - CreateTopics, DeleteTopics, CreatePartitions and
 * DescribeConfigs. Every requested topic or resource gets exactly one
 * result, in request order, with an error message a person can act on.
 * One node: the only valid replication factor is 1 (or -1, the default).
 */
#include <stdio.h>
#include <string.h>
#include "broker/broker_int.h"
#include "common/error.h"
#include "common/log.h"

#define ALLOC_N(req, ptr, n) ((ptr) = sl_arena_alloc(&(req)->arena, sizeof *(ptr) * (size_t)((n) > 0 ? (n) + 1 : 1)))
#define MSG_MAX 200

static sl_kstr arena_msg(sl_request *req, const char *msg)
{
    sl_kstr k = {NULL, -1};
    if (!msg[0]) return k;
    char *c = sl_arena_alloc(&req->arena, strlen(msg) + 1);
    if (!c) return k;
    memcpy(c, msg, strlen(msg) + 1);
    return sl__kstr(c);
}

static int16_t create_one(sl_broker *broker, const sl_CreateTopicsRequest_CreatableTopic *t, bool validate_only,
                          char *msg)
{
    int32_t np = t->NumPartitions == -1 ? broker->cfg.default_partitions : t->NumPartitions;
    if (t->ReplicationFactor != -1 && t->ReplicationFactor != 1) {
        snprintf(msg, MSG_MAX, "replication factor %d is impossible on this single-node broker: use 1 or -1",
                 t->ReplicationFactor);
        return SL_KERR_INVALID_REPLICATION_FACTOR;
    }
    if (t->Assignments.count > 0) {
        if (t->NumPartitions != -1 && t->NumPartitions != t->Assignments.count) {
            snprintf(msg, MSG_MAX, "give either a partition count or replica assignments, not both");
            return SL_KERR_INVALID_REQUEST;
        }
        np = t->Assignments.count;
        for (int32_t i = 0; i < t->Assignments.count; i++) {
            const sl_CreateTopicsRequest_CreatableReplicaAssignment *a = &t->Assignments.items[i];
            if (a->BrokerIds.count != 1 || a->BrokerIds.items[0] != broker->cfg.node_id || a->PartitionIndex != i) {
                snprintf(msg, MSG_MAX, "replica assignments must place partition %d on broker %d only", i,
                         broker->cfg.node_id);
                return SL_KERR_INVALID_REPLICA_ASSIGNMENT;
            }
        }
    }
    sl_topic_config tc;
    sl__topic_config_default(broker, &tc);
    for (int32_t i = 0; i < t->Configs.count; i++) {
        const sl_CreateTopicsRequest_CreatableTopicConfig *c = &t->Configs.items[i];
        int16_t err = sl__topic_config_set(&tc, c->Name.ptr, (size_t)SL_MAX(c->Name.len, 0), c->Value.ptr,
                                           (size_t)SL_MAX(c->Value.len, 0), msg, MSG_MAX);
        if (err) return err;
    }
    return sl__topic_create(broker, t->Name.ptr, (size_t)SL_MAX(t->Name.len, 0), np, &tc, validate_only, msg,
                            MSG_MAX);
}

int sl__handle_create_topics(sl_broker *broker, sl_request *req)
{
    sl_CreateTopicsRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_CreateTopicsResponse resp;
    sl_CreateTopicsResponse_init(&resp);
    int32_t n = SL_MAX(m.Topics.count, 0);
    if (!ALLOC_N(req, resp.Topics.items, n)) return SL_ENOMEM;
    resp.Topics.count = n;
    for (int32_t i = 0; i < n; i++) {
        char msg[MSG_MAX] = "";
        sl_CreateTopicsResponse_CreatableTopicResult *out = &resp.Topics.items[i];
        out->Name = m.Topics.items[i].Name;
        out->ErrorCode = create_one(broker, &m.Topics.items[i], m.validateOnly, msg);
        out->ErrorMessage = arena_msg(req, msg);
    }
    return sl__request_respond(req, &resp);
}

int sl__handle_delete_topics(sl_broker *broker, sl_request *req)
{
    sl_DeleteTopicsRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_DeleteTopicsResponse resp;
    sl_DeleteTopicsResponse_init(&resp);
    int32_t n = SL_MAX(m.TopicNames.count, 0);
    if (!ALLOC_N(req, resp.Responses.items, n)) return SL_ENOMEM;
    resp.Responses.count = n;
    for (int32_t i = 0; i < n; i++) {
        sl_kstr name = m.TopicNames.items[i];
        sl_DeleteTopicsResponse_DeletableTopicResult *out = &resp.Responses.items[i];
        out->Name = name;
        sl_topic *t = sl__topic_find(broker, name.ptr, (size_t)SL_MAX(name.len, 0));
        out->ErrorCode = !t ? SL_KERR_UNKNOWN_TOPIC_OR_PARTITION
                         : sl__topic_internal(t) ? SL_KERR_INVALID_TOPIC_EXCEPTION : sl__topic_delete(broker, t);
    }
    return sl__request_respond(req, &resp);
}

int sl__handle_create_partitions(sl_broker *broker, sl_request *req)
{
    sl_CreatePartitionsRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_CreatePartitionsResponse resp;
    sl_CreatePartitionsResponse_init(&resp);
    int32_t n = SL_MAX(m.Topics.count, 0);
    if (!ALLOC_N(req, resp.Results.items, n)) return SL_ENOMEM;
    resp.Results.count = n;
    for (int32_t i = 0; i < n; i++) {
        const sl_CreatePartitionsRequest_CreatePartitionsTopic *t = &m.Topics.items[i];
        sl_CreatePartitionsResponse_CreatePartitionsTopicResult *out = &resp.Results.items[i];
        char msg[MSG_MAX] = "";
        out->Name = t->Name;
        sl_topic *topic = sl__topic_find(broker, t->Name.ptr, (size_t)SL_MAX(t->Name.len, 0));
        if (!topic) {
            out->ErrorCode = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            snprintf(msg, sizeof msg, "no topic named '%.*s'", (int)SL_MIN(SL_MAX(t->Name.len, 0), 100), t->Name.ptr);
        } else if (sl__topic_internal(topic)) {
            out->ErrorCode = SL_KERR_INVALID_TOPIC_EXCEPTION;
            snprintf(msg, sizeof msg, "%.100s is internal: its partitions are fixed", topic->name);
        } else {
            out->ErrorCode = sl__topic_add_partitions(broker, topic, t->Count, m.ValidateOnly, msg, sizeof msg);
        }
        out->ErrorMessage = arena_msg(req, msg);
    }
    return sl__request_respond(req, &resp);
}

static bool wanted(const sl_DescribeConfigsRequest_DescribeConfigsResource *res, const char *name)
{
    if (res->ConfigurationKeys.count < 0) return true;
    for (int32_t i = 0; i < res->ConfigurationKeys.count; i++) {
        sl_kstr k = res->ConfigurationKeys.items[i];
        if (k.len >= 0 && strlen(name) == (size_t)k.len && memcmp(name, k.ptr, (size_t)k.len) == 0) return true;
    }
    return false;
}

static int describe_one(sl_broker *broker, sl_request *req, const sl_DescribeConfigsRequest_DescribeConfigsResource *res,
                        sl_DescribeConfigsResponse_DescribeConfigsResult *out)
{
    sl_tconf_entry entries[32];
    int n = 0;
    char msg[MSG_MAX] = "";
    out->ResourceType = res->ResourceType;
    out->ResourceName = res->ResourceName;
    bool is_topic = res->ResourceType == 2;
    if (is_topic) {
        sl_topic *t = sl__topic_find(broker, res->ResourceName.ptr, (size_t)SL_MAX(res->ResourceName.len, 0));
        if (!t) {
            out->ErrorCode = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
            snprintf(msg, sizeof msg, "no such topic");
        } else {
            n = sl__topic_config_describe(broker, &t->config, entries, 32);
        }
    } else if (res->ResourceType == 4) {
        n = sl__broker_config_describe(broker, entries, 32);
    } else {
        out->ErrorCode = SL_KERR_INVALID_REQUEST;
        snprintf(msg, sizeof msg, "resource type %d is not supported (2 = topic, 4 = broker)", res->ResourceType);
    }
    out->ErrorMessage = arena_msg(req, msg);
    if (!ALLOC_N(req, out->Configs.items, n)) return SL_ENOMEM;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!wanted(res, entries[i].name)) continue;
        sl_DescribeConfigsResponse_DescribeConfigsResourceResult *c = &out->Configs.items[k++];
        c->Name = sl__kstr(entries[i].name);
        c->Value = arena_msg(req, entries[i].value);
        if (c->Value.len < 0) c->Value = sl__kstr("");
        c->ReadOnly = entries[i].read_only;
        c->IsDefault = entries[i].is_default;
        c->ConfigSource = entries[i].is_default ? 5 : is_topic ? 1 : 4;
        c->IsSensitive = false;
        c->Synonyms.count = 0;
    }
    out->Configs.count = k;
    return 0;
}

int sl__handle_describe_configs(sl_broker *broker, sl_request *req)
{
    sl_DescribeConfigsRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_DescribeConfigsResponse resp;
    sl_DescribeConfigsResponse_init(&resp);
    int32_t n = SL_MAX(m.Resources.count, 0);
    if (!ALLOC_N(req, resp.Results.items, n)) return SL_ENOMEM;
    resp.Results.count = n;
    for (int32_t i = 0; i < n; i++)
        if (describe_one(broker, req, &m.Resources.items[i], &resp.Results.items[i])) return SL_ENOMEM;
    return sl__request_respond(req, &resp);
}
