/*
 * header.c - request/response header codecs (layouts in header.h). The
 * header version follows from the api table: a request header is v2 exactly
 * when the request version is flexible, a response header v1 when the
 * response is flexible, except ApiVersions (always v0).
 */
#include "kafka/header.h"
#include "kafka/gen_messages.h"

static bool is_flexible(const sl_kafka_api_info *api, int16_t version)
{
    return api->flexible_min >= 0 && version >= api->flexible_min;
}

int sl_kafka_request_header_peek(const uint8_t *p, size_t len, sl_kreq_header *h)
{
    SL_ASSERT(h != NULL);
    SL_ASSERT(p != NULL || len == 0);
    if (len < 8) return SL_EINVAL;
    h->RequestApiKey = (int16_t)sl_be16(p);
    h->RequestApiVersion = (int16_t)sl_be16(p + 2);
    h->CorrelationId = (int32_t)sl_be32(p + 4);
    h->ClientId = SL_KSTR_NULL;
    return 0;
}

int sl_kafka_request_header_decode(sl_kreq_header *h, sl_kreader *r)
{
    SL_ASSERT(h != NULL && r != NULL);
    h->RequestApiKey = sl_kread_int16(r);
    h->RequestApiVersion = sl_kread_int16(r);
    h->CorrelationId = sl_kread_int32(r);
    h->ClientId = SL_KSTR_NULL;
    if (r->err) return SL_EINVAL;
    const sl_kafka_api_info *api = sl_kafka_api_find(h->RequestApiKey);
    if (!api || h->RequestApiVersion < api->min || h->RequestApiVersion > api->max) return SL_ERANGE;
    h->ClientId = sl_kread_str(r, false, true);
    if (is_flexible(api, h->RequestApiVersion)) sl_kread_tagged_skip(r);
    SL_ASSERT(r->p <= r->end);
    return r->err ? SL_EINVAL : 0;
}

int sl_kafka_request_header_encode(sl_kwriter *w, const sl_kreq_header *h)
{
    SL_ASSERT(w != NULL && h != NULL);
    const sl_kafka_api_info *api = sl_kafka_api_find(h->RequestApiKey);
    SL_ASSERT(api != NULL);
    sl_kwrite_int16(w, h->RequestApiKey);
    sl_kwrite_int16(w, h->RequestApiVersion);
    sl_kwrite_int32(w, h->CorrelationId);
    sl_kwrite_str(w, false, true, h->ClientId);
    if (is_flexible(api, h->RequestApiVersion)) sl_kwrite_uvarint(w, 0);
    return w->err;
}

int sl_kafka_response_header_version(int16_t api_key, int16_t api_version)
{
    const sl_kafka_api_info *api = sl_kafka_api_find(api_key);
    if (!api || api_key == SL_KAPI_API_VERSIONS) return 0;
    return is_flexible(api, api_version) ? 1 : 0;
}

int sl_kafka_response_header_encode(sl_kwriter *w, int16_t api_key, int16_t api_version, int32_t correlation_id)
{
    SL_ASSERT(w != NULL);
    sl_kwrite_int32(w, correlation_id);
    if (sl_kafka_response_header_version(api_key, api_version) == 1) sl_kwrite_uvarint(w, 0);
    return w->err;
}

int sl_kafka_response_header_decode(sl_kreader *r, int16_t api_key, int16_t api_version, int32_t *correlation_id)
{
    SL_ASSERT(r != NULL && correlation_id != NULL);
    *correlation_id = sl_kread_int32(r);
    if (sl_kafka_response_header_version(api_key, api_version) == 1) sl_kread_tagged_skip(r);
    return r->err ? SL_EINVAL : 0;
}
