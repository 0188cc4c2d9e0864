/*
 * test_header.c - request/response headers (src/kafka/header.c) against
 * bytes written out by hand from the protocol README: header v1 (classic),
 * v2 (flexible: int16 client id + tagged fields), response v0/v1 and the
 * ApiVersions exception.
 */
#include "test.h"
#include "kafka/header.h"
#include "kafka/gen_messages.h"
#include "common/alloc.h"

/* Produce v3, correlation id 7, client id "rdkafka": request header v1. */
static const uint8_t produce_v3_header[] = {
    0x00, 0x00,                                  /* RequestApiKey 0 */
    0x00, 0x03,                                  /* RequestApiVersion 3 */
    0x00, 0x00, 0x00, 0x07,                      /* CorrelationId 7 */
    0x00, 0x07, 'r', 'd', 'k', 'a', 'f', 'k', 'a', /* ClientId, int16 length */
};

/* ApiVersions v3 (flexible): header v2, client id still int16-length, then tags. */
static const uint8_t apiversions_v3_header[] = {
    0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x04, 't', 'e', 's', 't',
    0x00,                                        /* no tagged fields */
};

SL_TEST(produce_v3_request_header_golden)
{
    sl_kreader r;
    sl_kreader_init(&r, produce_v3_header, sizeof produce_v3_header);
    sl_kreq_header h;
    SL_CHECK_OK(sl_kafka_request_header_decode(&h, &r));
    SL_CHECK_INT(h.RequestApiKey, SL_KAPI_PRODUCE);
    SL_CHECK_INT(h.RequestApiVersion, 3);
    SL_CHECK_INT(h.CorrelationId, 7);
    SL_CHECK(sl_kstr_eq(h.ClientId, SL_KSTR_LIT("rdkafka")));
    SL_CHECK_INT(sl_kread_left(&r), 0);

    sl_buf buf;
    sl_buf_init(&buf, 256);
    sl_kwriter w;
    sl_kwriter_init(&w, &buf, NULL, 0);
    SL_CHECK_OK(sl_kafka_request_header_encode(&w, &h));
    SL_CHECK_INT(buf.len, sizeof produce_v3_header);
    SL_CHECK_MEM(buf.data, produce_v3_header, sizeof produce_v3_header);
    sl_buf_deinit(&buf);
}

SL_TEST(flexible_request_header_keeps_int16_client_id)
{
    sl_kreader r;
    sl_kreader_init(&r, apiversions_v3_header, sizeof apiversions_v3_header);
    sl_kreq_header h;
    SL_CHECK_OK(sl_kafka_request_header_decode(&h, &r));
    SL_CHECK_INT(h.RequestApiKey, SL_KAPI_API_VERSIONS);
    SL_CHECK_INT(h.RequestApiVersion, 3);
    SL_CHECK(sl_kstr_eq(h.ClientId, SL_KSTR_LIT("test")));
    SL_CHECK_INT(sl_kread_left(&r), 0);

    sl_buf buf;
    sl_buf_init(&buf, 256);
    sl_kwriter w;
    sl_kwriter_init(&w, &buf, NULL, 0);
    SL_CHECK_OK(sl_kafka_request_header_encode(&w, &h));
    SL_CHECK_INT(buf.len, sizeof apiversions_v3_header);
    SL_CHECK_MEM(buf.data, apiversions_v3_header, sizeof apiversions_v3_header);
    sl_buf_deinit(&buf);
}

SL_TEST(flexible_header_skips_unknown_tags)
{
    static const uint8_t in[] = {
        0x00, 0x16, 0x00, 0x02, 0x00, 0x00, 0x00, 0x09, 0xff, 0xff, /* InitProducerId v2, null client */
        0x01, 0x05, 0x02, 0xaa, 0xbb,                                /* tag 5, 2 bytes */
        0x7e,                                                         /* first body byte */
    };
    sl_kreader r;
    sl_kreader_init(&r, in, sizeof in);
    sl_kreq_header h;
    SL_CHECK_OK(sl_kafka_request_header_decode(&h, &r));
    SL_CHECK_INT(h.ClientId.len, -1);
    SL_CHECK_INT(sl_kread_int8(&r), 0x7e);
}

SL_TEST(unserved_api_or_version_is_erange)
{
    static const struct { int16_t key, version; } cases[] = {
        {0, -1}, {0, 8}, {1, 3}, {1, 12}, {4, 0}, {18, 4}, {-1, 0}, {999, 0},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        uint8_t in[10];
        sl_put_be16(in, (uint16_t)cases[i].key);
        sl_put_be16(in + 2, (uint16_t)cases[i].version);
        sl_put_be32(in + 4, 77);
        sl_put_be16(in + 8, 0xffff);
        sl_kreader r;
        sl_kreader_init(&r, in, sizeof in);
        sl_kreq_header h;
        SL_CHECK_INT(sl_kafka_request_header_decode(&h, &r), SL_ERANGE);
        /* Enough is filled in to answer ApiVersions with the v0 error body. */
        SL_CHECK_INT(h.RequestApiKey, cases[i].key);
        SL_CHECK_INT(h.RequestApiVersion, cases[i].version);
        SL_CHECK_INT(h.CorrelationId, 77);
    }
}

SL_TEST(truncated_header_is_einval)
{
    for (size_t n = 0; n < sizeof produce_v3_header; n++) {
        uint8_t *copy = sl_malloc(n ? n : 1);
        memcpy(copy, produce_v3_header, n);
        sl_kreader r;
        sl_kreader_init(&r, copy, n);
        sl_kreq_header h;
        SL_CHECK_INT(sl_kafka_request_header_decode(&h, &r), SL_EINVAL);
        sl_free(copy);
    }
    sl_kreq_header h;
    SL_CHECK_INT(sl_kafka_request_header_peek(produce_v3_header, 7, &h), SL_EINVAL);
}

SL_TEST(peek_reads_fixed_part)
{
    sl_kreq_header h;
    SL_CHECK_OK(sl_kafka_request_header_peek(apiversions_v3_header, 8, &h));
    SL_CHECK_INT(h.RequestApiKey, 18);
    SL_CHECK_INT(h.RequestApiVersion, 3);
    SL_CHECK_INT(h.CorrelationId, 1);
    SL_CHECK_INT(h.ClientId.len, -1);
}

SL_TEST(response_header_versions)
{
    SL_CHECK_INT(sl_kafka_response_header_version(SL_KAPI_API_VERSIONS, 3), 0);
    SL_CHECK_INT(sl_kafka_response_header_version(SL_KAPI_API_VERSIONS, 0), 0);
    SL_CHECK_INT(sl_kafka_response_header_version(SL_KAPI_OFFSET_FETCH, 5), 0);
    SL_CHECK_INT(sl_kafka_response_header_version(SL_KAPI_OFFSET_FETCH, 6), 1);
    SL_CHECK_INT(sl_kafka_response_header_version(SL_KAPI_INIT_PRODUCER_ID, 2), 1);
    SL_CHECK_INT(sl_kafka_response_header_version(SL_KAPI_TXN_OFFSET_COMMIT, 3), 1);
    SL_CHECK_INT(sl_kafka_response_header_version(SL_KAPI_PRODUCE, 7), 0);
    SL_CHECK_INT(sl_kafka_response_header_version(4, 0), 0);
}

SL_TEST(response_header_encode_golden)
{
    sl_buf buf;
    sl_buf_init(&buf, 64);
    sl_kwriter w;
    sl_kwriter_init(&w, &buf, NULL, 0);
    SL_CHECK_OK(sl_kafka_response_header_encode(&w, SL_KAPI_API_VERSIONS, 3, 0x01020304));
    static const uint8_t v0[] = {0x01, 0x02, 0x03, 0x04};
    SL_CHECK_INT(buf.len, 4);
    SL_CHECK_MEM(buf.data, v0, 4);
    sl_buf_reset(&buf);
    SL_CHECK_OK(sl_kafka_response_header_encode(&w, SL_KAPI_OFFSET_FETCH, 7, 0x01020304));
    static const uint8_t v1[] = {0x01, 0x02, 0x03, 0x04, 0x00};
    SL_CHECK_INT(buf.len, 5);
    SL_CHECK_MEM(buf.data, v1, 5);

    sl_kreader r;
    sl_kreader_init(&r, buf.data, buf.len);
    int32_t corr = 0;
    SL_CHECK_OK(sl_kafka_response_header_decode(&r, SL_KAPI_OFFSET_FETCH, 7, &corr));
    SL_CHECK_INT(corr, 0x01020304);
    SL_CHECK_INT(sl_kread_left(&r), 0);
    sl_buf_deinit(&buf);
}
