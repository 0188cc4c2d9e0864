/*
 * test_api.c - the api table and type-erased dispatch (src/kafka/api.c,
 * table generated in gen_messages.c): served ranges as in COMPATIBILITY.md
 * a.3, flexible versions, lookups of unknown keys.
 */
#include "test.h"
#include "kafka/api.h"

SL_TEST(served_ranges)
{
    static const struct { int16_t key, min, max, flex; } want[] = {
        {0, 0, 7, -1}, {1, 4, 11, -1}, {2, 0, 3, -1}, {3, 0, 6, -1}, {8, 1, 7, -1},
        {9, 1, 7, 6}, {10, 0, 2, -1}, {11, 0, 5, -1}, {12, 0, 3, -1}, {13, 0, 3, -1},
        {14, 0, 3, -1}, {15, 0, 4, -1}, {16, 0, 4, 3}, {17, 0, 1, -1}, {18, 0, 3, 3},
        {19, 0, 4, -1}, {20, 0, 3, -1}, {22, 0, 4, 2}, {24, 0, 1, -1}, {25, 0, 1, -1},
        {26, 0, 1, -1}, {28, 0, 3, 3}, {32, 0, 2, -1}, {36, 0, 1, -1}, {37, 0, 1, -1},
        {42, 0, 1, -1},
    };
    SL_CHECK_INT(SL_KAFKA_API_COUNT, SL_ARRAY_LEN(want));
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++) {
        const sl_kafka_api_info *api = sl_kafka_api_find(want[i].key);
        SL_CHECK(api != NULL);
        SL_CHECK_INT(api->key, want[i].key);
        SL_CHECK_INT(api->min, want[i].min);
        SL_CHECK_INT(api->max, want[i].max);
        SL_CHECK_INT(api->flexible_min, want[i].flex);
        SL_CHECK(api == &sl_kafka_apis[i]);
        SL_CHECK(api->request != NULL && api->response != NULL);
        SL_CHECK(strstr(api->request->name, api->name) == api->request->name);
    }
    SL_CHECK_STR(sl_kafka_api_find(SL_KAPI_API_VERSIONS)->name, "ApiVersions");
    SL_CHECK_STR(sl_kafka_api_find(SL_KAPI_PRODUCE)->response->name, "ProduceResponse");
}

SL_TEST(unknown_keys)
{
    static const int16_t keys[] = {-1, 4, 5, 21, 23, 27, 43, 1000, INT16_MIN, INT16_MAX};
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) SL_CHECK(sl_kafka_api_find(keys[i]) == NULL);
    SL_CHECK(sl_kafka_msg_ops_find(1, 3, false) == NULL);
    SL_CHECK(sl_kafka_msg_ops_find(0, 3, true) != NULL);
}

SL_TEST(decode_any_and_encode_any)
{
    sl_arena arena;
    sl_arena_init(&arena, 1 << 20);
    static const uint8_t heartbeat_v3[] = {
        0x00, 0x01, 'g', 0x00, 0x00, 0x00, 0x05, 0x00, 0x01, 'm', 0xff, 0xff,
    };
    sl_kreader r;
    sl_kreader_init(&r, heartbeat_v3, sizeof heartbeat_v3);
    void *msg = NULL;
    SL_CHECK_OK(sl_kafka_request_decode_any(SL_KAPI_HEARTBEAT, 3, &r, &arena, &msg));
    sl_HeartbeatRequest *hb = msg;
    SL_CHECK(sl_kstr_eq(hb->GroupId, SL_KSTR_LIT("g")));
    SL_CHECK_INT(hb->GenerationId, 5);
    SL_CHECK_INT(hb->GroupInstanceId.len, -1);

    sl_buf buf;
    sl_buf_init(&buf, 1024);
    sl_kwriter w;
    sl_kwriter_init(&w, &buf, NULL, 0);
    SL_CHECK_OK(sl_kafka_request_encode_any(SL_KAPI_HEARTBEAT, 3, msg, &w));
    SL_CHECK_INT(buf.len, sizeof heartbeat_v3);
    SL_CHECK_MEM(buf.data, heartbeat_v3, sizeof heartbeat_v3);
    SL_CHECK_INT(sl_kafka_request_encode_any(SL_KAPI_HEARTBEAT, 4, msg, &w), SL_ERANGE);
    SL_CHECK_INT(sl_kafka_response_encode_any(99, 0, msg, &w), SL_ERANGE);
    sl_buf_deinit(&buf);
    sl_arena_deinit(&arena);
}
