/*
 * dispatch.c - the served API table and request dispatch.
 *
 * Only what is in this table is advertised by ApiVersions, with exactly
 * these ranges (see ../shared/kafka-protocol/COMPATIBILITY.md, a.3).
 * Produce starts at v0 although only record batch v2 is stored: librdkafka
 * (<= 2.11) compresses with gzip, snappy or lz4 only if the broker's Produce
 * range includes v0. A v0-2 request carrying a legacy message set (magic 0
 * or 1) is answered UNSUPPORTED_FOR_MESSAGE_FORMAT. An
 * ApiVersions request of any version is answered (a version above ours
 * gets Kafka's v0-format UNSUPPORTED_VERSION reply, so the client retries
 * lower); any other unknown key or version closes the connection, which is
 * what Kafka does and what clients expect (no error body exists for it).
 */
#include <string.h>
#include "broker/broker_int.h"
#include "common/error.h"
#include "common/log.h"

static const sl_api_entry apis[] = {
    {0, 0, 7, sl__handle_produce},
    {1, 4, 11, sl__handle_fetch},
    {2, 0, 3, sl__handle_list_offsets},
    {3, 0, 6, sl__handle_metadata},
    {8, 1, 7, sl__handle_offset_commit},
    {9, 1, 7, sl__handle_offset_fetch},
    {10, 0, 2, sl__handle_find_coordinator},
    {11, 0, 5, sl__handle_join_group},
    {12, 0, 3, sl__handle_heartbeat},
    {13, 0, 3, sl__handle_leave_group},
    {14, 0, 3, sl__handle_sync_group},
    {15, 0, 4, sl__handle_describe_groups},
    {16, 0, 4, sl__handle_list_groups},
    {18, 0, 3, sl__handle_api_versions},
    {19, 0, 4, sl__handle_create_topics},
    {20, 0, 3, sl__handle_delete_topics},
    {22, 0, 4, sl__handle_init_producer_id},
    {24, 0, 1, sl__handle_add_partitions_to_txn},
    {25, 0, 1, sl__handle_add_offsets_to_txn},
    {26, 0, 1, sl__handle_end_txn},
    {28, 0, 3, sl__handle_txn_offset_commit},
    {32, 0, 2, sl__handle_describe_configs},
    {37, 0, 1, sl__handle_create_partitions},
    {42, 0, 1, sl__handle_delete_groups},
};

const sl_api_entry *sl__api_entry(int16_t key)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(apis); i++)
        if (apis[i].key == key) return &apis[i];
    return NULL;
}

int sl__api_count(void) { return (int)SL_ARRAY_LEN(apis); }
const sl_api_entry *sl__api_at(int i) { return &apis[i]; }

/* ApiVersions above our maximum: v0 body {35, [{18, min, max}]}, header v0. */
static int unsupported_api_versions(sl_request *req)
{
    const sl_api_entry *e = sl__api_entry(18);
    sl_ApiVersionsResponse resp;
    sl_ApiVersionsResponse_init(&resp);
    sl_ApiVersionsResponse_ApiVersion key = {.ApiKey = 18, .MinVersion = e->min, .MaxVersion = e->max};
    resp.ErrorCode = SL_KERR_UNSUPPORTED_VERSION;
    resp.ApiKeys.items = &key;
    resp.ApiKeys.count = 1;
    req->hdr.RequestApiVersion = 0; /* encode as v0, header v0 */
    return sl__request_respond(req, &resp);
}

int sl__dispatch(sl_broker *broker, sl_request *req)
{
    const uint8_t *p = req->frame + 4;
    size_t len = req->frame_len - 4;
    int rc = sl_kafka_request_header_peek(p, len, &req->hdr);
    if (rc) return rc;
    int16_t key = req->hdr.RequestApiKey, version = req->hdr.RequestApiVersion;
    const sl_api_entry *e = sl__api_entry(key);
    if (key == 18 && e && version > e->max) return unsupported_api_versions(req);
    if (!e || version < e->min || version > e->max) {
        SL_WARN("broker", "%s sent api key %d version %d, which this broker does not serve",
                req->conn->peer, key, version);
        return SL_EINVAL;
    }
    sl_kreader r;
    sl_kreader_init(&r, p, len);
    rc = sl_kafka_request_header_decode(&req->hdr, &r);
    if (rc || r.err) {
        SL_WARN("broker", "%s sent a malformed request header (api %d v%d)", req->conn->peer, key, version);
        return SL_EINVAL;
    }
    req->body = r.p;
    req->body_len = (size_t)(r.end - r.p);
    rc = e->handler(broker, req);
    if (rc && rc != SL_ECLOSED) SL_WARN("broker", "%s sent a malformed api %d v%d request (correlation id %d)", req->conn->peer,
                    key, version, req->hdr.CorrelationId);
    return rc;
}
