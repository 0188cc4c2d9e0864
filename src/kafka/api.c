/*
 * api.c - type-erased dispatch over the generated api table (api.h).
 */
#include "kafka/api.h"

const sl_kafka_msg_ops *sl_kafka_msg_ops_find(int16_t api_key, int16_t version, bool response)
{
    const sl_kafka_api_info *api = sl_kafka_api_find(api_key);
    if (!api || version < api->min || version > api->max) return NULL;
    SL_ASSERT(api->key == api_key);
    return response ? api->response : api->request;
}

static int decode_any(int16_t api_key, int16_t version, bool response, sl_kreader *r,
                      sl_arena *arena, void **msg_out)
{
    SL_ASSERT(r != NULL && arena != NULL && msg_out != NULL);
    const sl_kafka_msg_ops *ops = sl_kafka_msg_ops_find(api_key, version, response);
    if (!ops) return SL_ERANGE;
    void *msg = sl_arena_alloc(arena, ops->size);
    if (!msg) return SL_ENOMEM;
    int rc = ops->decode(msg, r, version, arena);
    if (rc == 0) *msg_out = msg;
    return rc;
}

int sl_kafka_request_decode_any(int16_t api_key, int16_t version, sl_kreader *r, sl_arena *arena, void **msg_out)
{
    return decode_any(api_key, version, false, r, arena, msg_out);
}

int sl_kafka_response_decode_any(int16_t api_key, int16_t version, sl_kreader *r, sl_arena *arena, void **msg_out)
{
    return decode_any(api_key, version, true, r, arena, msg_out);
}

static int encode_any(int16_t api_key, int16_t version, bool response, const void *msg, sl_kwriter *w)
{
    SL_ASSERT(msg != NULL && w != NULL);
    const sl_kafka_msg_ops *ops = sl_kafka_msg_ops_find(api_key, version, response);
    if (!ops) return SL_ERANGE;
    return ops->encode(msg, w, version);
}

int sl_kafka_request_encode_any(int16_t api_key, int16_t version, const void *msg, sl_kwriter *w)
{
    return encode_any(api_key, version, false, msg, w);
}

int sl_kafka_response_encode_any(int16_t api_key, int16_t version, const void *msg, sl_kwriter *w)
{
    return encode_any(api_key, version, true, msg, w);
}
