/*
 * test_gen_messages.c - the generated codecs (src/kafka/gen_messages.c).
 *
 * Every request and response at every served version: a pseudo-random
 * sample (gen_samples.c) is encoded, decoded from an exact-size heap copy
 * (so ASan sees any read past the end), re-encoded, and the bytes must be
 * equal; every strict prefix of an encoding must fail to decode. Golden
 * tests compare against bytes written out by hand from the protocol spec.
 */
#include "test.h"
#include "kafka/api.h"
#include "kafka/gen_samples.h"
#include "kafka/header.h"
#include "kafka/frame.h"
#include "common/alloc.h"

#define ARENA_MAX (64u << 20)
#define BUF_MAX (16u << 20)

typedef struct {
    sl_arena arena;
    sl_buf a, b;
    sl_kwriter wa, wb;
} fixture;

static void fx_init(fixture *fx)
{
    sl_arena_init(&fx->arena, ARENA_MAX);
    sl_buf_init(&fx->a, BUF_MAX);
    sl_buf_init(&fx->b, BUF_MAX);
    sl_kwriter_init(&fx->wa, &fx->a, NULL, 0);
    sl_kwriter_init(&fx->wb, &fx->b, NULL, 0);
}

static void fx_reset(fixture *fx)
{
    sl_arena_reset(&fx->arena);
    sl_buf_reset(&fx->a);
    sl_buf_reset(&fx->b);
    sl_kwriter_init(&fx->wa, &fx->a, NULL, 0);
    sl_kwriter_init(&fx->wb, &fx->b, NULL, 0);
}

static void fx_deinit(fixture *fx)
{
    sl_arena_deinit(&fx->arena);
    sl_buf_deinit(&fx->a);
    sl_buf_deinit(&fx->b);
}

static int encode_any(int16_t key, bool response, int16_t v, const void *msg, sl_kwriter *w)
{
    return response ? sl_kafka_response_encode_any(key, v, msg, w) : sl_kafka_request_encode_any(key, v, msg, w);
}

/* Decodes n bytes from an exact-size copy; *left gets the bytes not consumed. */
static int decode_copy(int16_t key, bool response, int16_t v, const uint8_t *p, size_t n,
                       sl_arena *arena, void **msg, size_t *left, uint8_t **copy_out)
{
    uint8_t *copy = sl_malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    sl_kreader r;
    sl_kreader_init(&r, copy, n);
    int rc = response ? sl_kafka_response_decode_any(key, v, &r, arena, msg)
                      : sl_kafka_request_decode_any(key, v, &r, arena, msg);
    *left = sl_kread_left(&r);
    *copy_out = copy; /* decoded views point into it */
    return rc;
}

static void round_trip_one(fixture *fx, const sl_kafka_api_info *api, bool response, int16_t v, uint64_t seed)
{
    fx_reset(fx);
    uint64_t rng = seed * 0x9e3779b97f4a7c15u + (uint64_t)api->key * 131 + (uint64_t)v;
    void *msg = sl_kafka_sample_any(api->key, response, v, &fx->arena, &rng);
    SL_CHECK_OK(encode_any(api->key, response, v, msg, &fx->wa));
    void *back = NULL;
    size_t left = 99;
    uint8_t *copy;
    int rc = decode_copy(api->key, response, v, fx->a.data, fx->a.len, &fx->arena, &back, &left, &copy);
    if (rc != 0 || left != 0)
        sl_test_fail(__FILE__, __LINE__, "%s v%d seed %" PRIu64 ": decode rc %d, %zu bytes left",
                     response ? api->response->name : api->request->name, v, seed, rc, left);
    SL_CHECK_OK(encode_any(api->key, response, v, back, &fx->wb));
    if (fx->a.len != fx->b.len || memcmp(fx->a.data, fx->b.data, fx->a.len) != 0)
        sl_test_fail(__FILE__, __LINE__, "%s v%d seed %" PRIu64 ": re-encoding differs (%zu vs %zu bytes)",
                     response ? api->response->name : api->request->name, v, seed, fx->a.len, fx->b.len);
    sl_free(copy);
}

static void round_trip_all(bool response, int seeds)
{
    fixture fx;
    fx_init(&fx);
    int count = 0;
    for (int i = 0; i < SL_KAFKA_API_COUNT; i++) {
        const sl_kafka_api_info *api = &sl_kafka_apis[i];
        for (int16_t v = api->min; v <= api->max; v++)
            for (int s = 0; s < seeds; s++, count++) round_trip_one(&fx, api, response, v, (uint64_t)s);
    }
    printf("%d round trips\n", count);
    fx_deinit(&fx);
}

SL_TEST(round_trip_every_request_version)
{
    round_trip_all(false, 40);
}

SL_TEST(round_trip_every_response_version)
{
    round_trip_all(true, 40);
}

static void truncation_all(bool response)
{
    fixture fx;
    fx_init(&fx);
    int prefixes = 0;
    for (int i = 0; i < SL_KAFKA_API_COUNT; i++) {
        const sl_kafka_api_info *api = &sl_kafka_apis[i];
        for (int16_t v = api->min; v <= api->max; v++) {
            for (uint64_t seed = 1; seed <= 3; seed++) {
                fx_reset(&fx);
                uint64_t rng = seed * 7919 + (uint64_t)api->key * 31 + (uint64_t)v;
                void *msg = sl_kafka_sample_any(api->key, response, v, &fx.arena, &rng);
                SL_CHECK_OK(encode_any(api->key, response, v, msg, &fx.wa));
                for (size_t n = 0; n < fx.a.len; n++, prefixes++) {
                    void *back = NULL;
                    size_t left;
                    uint8_t *copy;
                    int rc = decode_copy(api->key, response, v, fx.a.data, n, &fx.arena, &back, &left, &copy);
                    if (rc != SL_EINVAL)
                        sl_test_fail(__FILE__, __LINE__, "%s v%d: %zu-byte prefix of %zu decoded with rc %d",
                                     api->name, v, n, fx.a.len, rc);
                    sl_free(copy);
                }
            }
        }
    }
    printf("%d truncated prefixes rejected\n", prefixes);
    fx_deinit(&fx);
}

SL_TEST(every_request_prefix_fails)
{
    truncation_all(false);
}

SL_TEST(every_response_prefix_fails)
{
    truncation_all(true);
}

/* Flips bytes of valid encodings: decode must never crash, and what decodes
 * must re-encode to a fixed point (decode(encode(m)) encodes the same). */
SL_TEST(mutated_inputs_decode_safely)
{
    fixture fx;
    fx_init(&fx);
    uint64_t rng = 12345;
    int decoded = 0, total = 0;
    for (int i = 0; i < SL_KAFKA_API_COUNT; i++) {
        const sl_kafka_api_info *api = &sl_kafka_apis[i];
        for (int16_t v = api->min; v <= api->max; v++) {
            for (int k = 0; k < 60; k++, total++) {
                bool response = k & 1;
                fx_reset(&fx);
                void *msg = sl_kafka_sample_any(api->key, response, v, &fx.arena, &rng);
                SL_CHECK_OK(encode_any(api->key, response, v, msg, &fx.wa));
                if (fx.a.len == 0) continue;
                rng = rng * 6364136223846793005u + 1442695040888963407u;
                size_t at = (size_t)(rng >> 33) % fx.a.len;
                fx.a.data[at] ^= (uint8_t)((rng >> 20) | 1);
                void *back;
                size_t left;
                uint8_t *copy;
                if (decode_copy(api->key, response, v, fx.a.data, fx.a.len, &fx.arena, &back, &left, &copy) == 0) {
                    decoded++;
                    SL_CHECK_OK(encode_any(api->key, response, v, back, &fx.wb));
                    void *again;
                    uint8_t *copy2;
                    SL_CHECK_OK(decode_copy(api->key, response, v, fx.b.data, fx.b.len, &fx.arena, &again, &left, &copy2));
                    SL_CHECK_INT(left, 0);
                    sl_buf_reset(&fx.a);
                    sl_kwriter_init(&fx.wa, &fx.a, NULL, 0);
                    SL_CHECK_OK(encode_any(api->key, response, v, again, &fx.wa));
                    SL_CHECK_INT(fx.a.len, fx.b.len);
                    SL_CHECK_MEM(fx.a.data, fx.b.data, fx.a.len);
                    sl_free(copy2);
                }
                sl_free(copy);
            }
        }
    }
    printf("%d of %d mutated inputs still decoded\n", decoded, total);
    fx_deinit(&fx);
}

/* ---- golden encodings, written out by hand from the spec ---- */

static void check_encoding(sl_buf *buf, const uint8_t *want, size_t n)
{
    if (buf->len != n) sl_test_fail(__FILE__, __LINE__, "encoded %zu bytes, want %zu", buf->len, n);
    SL_CHECK_MEM(buf->data, want, n);
}

SL_TEST(apiversions_v0_request_is_empty)
{
    fixture fx;
    fx_init(&fx);
    sl_ApiVersionsRequest req;
    sl_ApiVersionsRequest_init(&req);
    SL_CHECK_OK(sl_ApiVersionsRequest_encode(&req, &fx.wa, 0));
    SL_CHECK_INT(fx.a.len, 0);
    sl_kreader r;
    sl_kreader_init(&r, "", 0);
    SL_CHECK_OK(sl_ApiVersionsRequest_decode(&req, &r, 0, &fx.arena));
    SL_CHECK_INT(req.ClientSoftwareName.len, 0);
    fx_deinit(&fx);
}

SL_TEST(apiversions_v3_request_golden)
{
    static const uint8_t want[] = {
        0x07, 's', 'l', 'u', 'i', 'c', 'e', /* compact string: length + 1 */
        0x04, '0', '.', '1',
        0x00,                               /* no tagged fields */
    };
    fixture fx;
    fx_init(&fx);
    sl_ApiVersionsRequest req;
    sl_ApiVersionsRequest_init(&req);
    req.ClientSoftwareName = SL_KSTR_LIT("sluice");
    req.ClientSoftwareVersion = SL_KSTR_LIT("0.1");
    SL_CHECK_OK(sl_ApiVersionsRequest_encode(&req, &fx.wa, 3));
    check_encoding(&fx.a, want, sizeof want);
    sl_ApiVersionsRequest back;
    sl_kreader r;
    sl_kreader_init(&r, want, sizeof want);
    SL_CHECK_OK(sl_ApiVersionsRequest_decode(&back, &r, 3, &fx.arena));
    SL_CHECK(sl_kstr_eq(back.ClientSoftwareName, SL_KSTR_LIT("sluice")));
    SL_CHECK(sl_kstr_eq(back.ClientSoftwareVersion, SL_KSTR_LIT("0.1")));
    fx_deinit(&fx);
}

SL_TEST(apiversions_v0_response_golden)
{
    /* The shape of the v0 error reply to an unsupported ApiVersions version. */
    static const uint8_t want[] = {
        0x00, 0x23,             /* ErrorCode 35 UNSUPPORTED_VERSION */
        0x00, 0x00, 0x00, 0x01, /* ApiKeys: int32 count */
        0x00, 0x12, 0x00, 0x00, 0x00, 0x03,
    };
    fixture fx;
    fx_init(&fx);
    sl_ApiVersionsResponse_ApiVersion entry = {.ApiKey = 18, .MinVersion = 0, .MaxVersion = 3};
    sl_ApiVersionsResponse resp;
    sl_ApiVersionsResponse_init(&resp);
    resp.ErrorCode = 35;
    resp.ThrottleTimeMs = 100; /* not in v0: not written */
    resp.ApiKeys.items = &entry;
    resp.ApiKeys.count = 1;
    SL_CHECK_OK(sl_ApiVersionsResponse_encode(&resp, &fx.wa, 0));
    check_encoding(&fx.a, want, sizeof want);
    sl_kreader r;
    sl_kreader_init(&r, want, sizeof want);
    SL_CHECK_OK(sl_ApiVersionsResponse_decode(&resp, &r, 0, &fx.arena));
    SL_CHECK_INT(resp.ThrottleTimeMs, 0);
    SL_CHECK_INT(resp.ApiKeys.count, 1);
    SL_CHECK_INT(resp.ApiKeys.items[0].MaxVersion, 3);
    SL_CHECK_INT(resp.FinalizedFeaturesEpoch, -1);
    fx_deinit(&fx);
}

static const uint8_t apiversions_v3_response[] = {
    0x00, 0x00,                               /* ErrorCode */
    0x03,                                     /* ApiKeys: compact count 2 + 1 */
    0x00, 0x00, 0x00, 0x03, 0x00, 0x07, 0x00, /* {0, 3, 7} + empty tags */
    0x00, 0x12, 0x00, 0x00, 0x00, 0x03, 0x00, /* {18, 0, 3} + empty tags */
    0x00, 0x00, 0x00, 0x00,                   /* ThrottleTimeMs */
    0x02,                                     /* two tagged fields, ascending */
    0x01, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x01,    /* tag 1 FinalizedFeaturesEpoch = 1 */
    0x03, 0x01, 0x01,                         /* tag 3 ZkMigrationReady = true */
};

SL_TEST(apiversions_v3_response_golden)
{
    fixture fx;
    fx_init(&fx);
    sl_ApiVersionsResponse_ApiVersion entries[2] = {{0, 3, 7}, {18, 0, 3}};
    sl_ApiVersionsResponse resp;
    sl_ApiVersionsResponse_init(&resp);
    resp.ApiKeys.items = entries;
    resp.ApiKeys.count = 2;
    resp.FinalizedFeaturesEpoch = 1;
    resp.ZkMigrationReady = true;
    SL_CHECK_OK(sl_ApiVersionsResponse_encode(&resp, &fx.wa, 3));
    check_encoding(&fx.a, apiversions_v3_response, sizeof apiversions_v3_response);

    sl_ApiVersionsResponse back;
    sl_kreader r;
    sl_kreader_init(&r, apiversions_v3_response, sizeof apiversions_v3_response);
    SL_CHECK_OK(sl_ApiVersionsResponse_decode(&back, &r, 3, &fx.arena));
    SL_CHECK_INT(back.ApiKeys.count, 2);
    SL_CHECK_INT(back.ApiKeys.items[1].ApiKey, 18);
    SL_CHECK_INT(back.FinalizedFeaturesEpoch, 1);
    SL_CHECK(back.ZkMigrationReady);
    SL_CHECK_INT(back.SupportedFeatures.count, 0);
    fx_deinit(&fx);
}

SL_TEST(apiversions_v3_response_defaults_omit_tags)
{
    static const uint8_t want[] = {0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00};
    fixture fx;
    fx_init(&fx);
    sl_ApiVersionsResponse resp;
    sl_ApiVersionsResponse_init(&resp);
    SL_CHECK_OK(sl_ApiVersionsResponse_encode(&resp, &fx.wa, 3));
    check_encoding(&fx.a, want, sizeof want);
    fx_deinit(&fx);
}

SL_TEST(unknown_tagged_fields_are_skipped)
{
    uint8_t in[sizeof apiversions_v3_response + 4];
    memcpy(in, apiversions_v3_response, sizeof apiversions_v3_response);
    in[21] = 0x03; /* three tagged fields now */
    static const uint8_t extra[] = {0x09, 0x02, 0xaa, 0xbb};
    memcpy(in + sizeof apiversions_v3_response, extra, sizeof extra);
    fixture fx;
    fx_init(&fx);
    sl_ApiVersionsResponse back;
    sl_kreader r;
    sl_kreader_init(&r, in, sizeof in);
    SL_CHECK_OK(sl_ApiVersionsResponse_decode(&back, &r, 3, &fx.arena));
    SL_CHECK_INT(sl_kread_left(&r), 0);
    SL_CHECK(back.ZkMigrationReady);
    /* Re-encoding drops the unknown tag. */
    SL_CHECK_OK(sl_ApiVersionsResponse_encode(&back, &fx.wa, 3));
    check_encoding(&fx.a, apiversions_v3_response, sizeof apiversions_v3_response);
    fx_deinit(&fx);
}

SL_TEST(metadata_v1_request_golden)
{
    static const uint8_t some[] = {0x00, 0x00, 0x00, 0x02, 0x00, 0x03, 'f', 'o', 'o', 0x00, 0x01, 'b'};
    static const uint8_t all[] = {0xff, 0xff, 0xff, 0xff}; /* v1+: null = all topics */
    fixture fx;
    fx_init(&fx);
    sl_MetadataRequest_MetadataRequestTopic topics[2] = {{SL_KSTR_LIT("foo")}, {SL_KSTR_LIT("b")}};
    sl_MetadataRequest req;
    sl_MetadataRequest_init(&req);
    SL_CHECK(req.AllowAutoTopicCreation); /* schema default */
    req.Topics.items = topics;
    req.Topics.count = 2;
    SL_CHECK_OK(sl_MetadataRequest_encode(&req, &fx.wa, 1));
    check_encoding(&fx.a, some, sizeof some);
    sl_buf_reset(&fx.a);
    req.Topics.items = NULL;
    req.Topics.count = -1;
    SL_CHECK_OK(sl_MetadataRequest_encode(&req, &fx.wa, 1));
    check_encoding(&fx.a, all, sizeof all);
    /* v0 has no null: encoding it is refused. */
    sl_buf_reset(&fx.a);
    SL_CHECK_INT(sl_MetadataRequest_encode(&req, &fx.wa, 0), SL_EINVAL);

    sl_MetadataRequest back;
    sl_kreader r;
    sl_kreader_init(&r, some, sizeof some);
    SL_CHECK_OK(sl_MetadataRequest_decode(&back, &r, 1, &fx.arena));
    SL_CHECK_INT(back.Topics.count, 2);
    SL_CHECK(sl_kstr_eq(back.Topics.items[0].Name, SL_KSTR_LIT("foo")));
    SL_CHECK(back.AllowAutoTopicCreation); /* absent before v4: default true */
    sl_kreader_init(&r, all, sizeof all);
    SL_CHECK_OK(sl_MetadataRequest_decode(&back, &r, 1, &fx.arena));
    SL_CHECK_INT(back.Topics.count, -1);
    SL_CHECK(back.Topics.items == NULL);
    sl_kreader_init(&r, all, sizeof all);
    SL_CHECK_INT(sl_MetadataRequest_decode(&back, &r, 0, &fx.arena), SL_EINVAL);
    fx_deinit(&fx);
}

/* A whole Produce v3 request frame: size, header v1, body. */
static const uint8_t produce_v3_frame[] = {
    0x00, 0x00, 0x00, 0x30,                            /* Size 48 */
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x07,    /* Produce v3, correlation id 7 */
    0x00, 0x07, 'r', 'd', 'k', 'a', 'f', 'k', 'a',     /* ClientId */
    0xff, 0xff,                                        /* TransactionalId null */
    0xff, 0xff,                                        /* Acks -1 */
    0x00, 0x00, 0x75, 0x30,                            /* TimeoutMs 30000 */
    0x00, 0x00, 0x00, 0x01,                            /* TopicData: 1 */
    0x00, 0x01, 't',                                   /* Name "t" */
    0x00, 0x00, 0x00, 0x01,                            /* PartitionData: 1 */
    0x00, 0x00, 0x00, 0x02,                            /* Index 2 */
    0x00, 0x00, 0x00, 0x04, 0xde, 0xad, 0xbe, 0xef,    /* Records: 4 bytes */
};

SL_TEST(produce_v3_request_frame_golden)
{
    fixture fx;
    fx_init(&fx);
    size_t flen = 0;
    SL_CHECK_INT(sl_kafka_frame(produce_v3_frame, sizeof produce_v3_frame, 1 << 20, &flen), SL_KFRAME_OK);
    SL_CHECK_INT(flen, sizeof produce_v3_frame);
    sl_kreader r;
    sl_kreader_init(&r, produce_v3_frame + 4, flen - 4);
    sl_kreq_header h;
    SL_CHECK_OK(sl_kafka_request_header_decode(&h, &r));
    SL_CHECK_INT(h.CorrelationId, 7);
    sl_ProduceRequest req;
    SL_CHECK_OK(sl_ProduceRequest_decode(&req, &r, h.RequestApiVersion, &fx.arena));
    SL_CHECK_INT(sl_kread_left(&r), 0);
    SL_CHECK_INT(req.TransactionalId.len, -1);
    SL_CHECK_INT(req.Acks, -1);
    SL_CHECK_INT(req.TimeoutMs, 30000);
    SL_CHECK_INT(req.TopicData.count, 1);
    sl_ProduceRequest_TopicProduceData *t = &req.TopicData.items[0];
    SL_CHECK(sl_kstr_eq(t->Name, SL_KSTR_LIT("t")));
    SL_CHECK_INT(t->PartitionData.count, 1);
    SL_CHECK_INT(t->PartitionData.items[0].Index, 2);
    const sl_krecords *rec = &t->PartitionData.items[0].Records;
    SL_CHECK_INT(rec->len, 4);
    SL_CHECK(rec->ptr == produce_v3_frame + sizeof produce_v3_frame - 4); /* zero copy */

    sl_kframe_mark mark;
    SL_CHECK_OK(sl_kafka_frame_begin(&fx.wa, &mark));
    SL_CHECK_OK(sl_kafka_request_header_encode(&fx.wa, &h));
    SL_CHECK_OK(sl_ProduceRequest_encode(&req, &fx.wa, 3));
    SL_CHECK_OK(sl_kafka_frame_end(&fx.wa, &mark));
    check_encoding(&fx.a, produce_v3_frame, sizeof produce_v3_frame);
    fx_deinit(&fx);
}

SL_TEST(init_producer_id_v2_flexible_golden)
{
    static const uint8_t want[] = {
        0x00,                   /* TransactionalId: compact null */
        0x00, 0x00, 0xea, 0x60, /* TransactionTimeoutMs 60000 */
        0x00,                   /* no tagged fields */
    };
    fixture fx;
    fx_init(&fx);
    sl_InitProducerIdRequest req;
    sl_InitProducerIdRequest_init(&req);
    req.TransactionalId = SL_KSTR_NULL;
    req.TransactionTimeoutMs = 60000;
    SL_CHECK_OK(sl_InitProducerIdRequest_encode(&req, &fx.wa, 2));
    check_encoding(&fx.a, want, sizeof want);
    sl_kreader r;
    sl_kreader_init(&r, want, sizeof want);
    SL_CHECK_OK(sl_InitProducerIdRequest_decode(&req, &r, 2, &fx.arena));
    SL_CHECK_INT(req.ProducerId, -1); /* v3+ field: default */
    SL_CHECK_INT(req.ProducerEpoch, -1);
    fx_deinit(&fx);
}

SL_TEST(fetch_response_records_spliced_from_file)
{
    fixture fx;
    fx_init(&fx);
    sl_kwriter_splice splices[4];
    sl_kwriter_init(&fx.wa, &fx.a, splices, 4);
    sl_FetchResponse_PartitionData part;
    sl_FetchResponse_PartitionData_init(&part);
    part.Records = SL_KRECORDS_NULL;
    part.Records.from_file = true;
    part.Records.fd = 9;
    part.Records.file_off = 4096;
    part.Records.len = 100000;
    sl_FetchResponse_FetchableTopicResponse topic;
    sl_FetchResponse_FetchableTopicResponse_init(&topic);
    topic.Topic = SL_KSTR_LIT("t");
    topic.Partitions.items = &part;
    topic.Partitions.count = 1;
    sl_FetchResponse resp;
    sl_FetchResponse_init(&resp);
    resp.Responses.items = &topic;
    resp.Responses.count = 1;
    SL_CHECK_OK(sl_FetchResponse_encode(&resp, &fx.wa, 4));
    /* 4 throttle + 4 count + 3 name + 4 count + 4 idx + 2 err + 8 hw + 8 lso
     * + 4 aborted count + 4 records length; the records are not copied. */
    SL_CHECK_INT(fx.a.len, 45);
    SL_CHECK_INT(fx.wa.nsplices, 1);
    SL_CHECK_INT(splices[0].at, 45);
    SL_CHECK_INT(splices[0].len, 100000);
    SL_CHECK_INT(fx.wa.spliced_len, 100000);
    SL_CHECK_INT(sl_be32(fx.a.data + 41), 100000);
    fx_deinit(&fx);
}

SL_TEST(defaults_of_absent_fields)
{
    fixture fx;
    fx_init(&fx);
    /* Fetch v4 request, minimal: fields of v5+ take their defaults. */
    static const uint8_t fetch_v4[] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0xf4, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x10, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    };
    sl_FetchRequest req;
    sl_kreader r;
    sl_kreader_init(&r, fetch_v4, sizeof fetch_v4);
    SL_CHECK_OK(sl_FetchRequest_decode(&req, &r, 4, &fx.arena));
    SL_CHECK_INT(req.ReplicaId, -1);
    SL_CHECK_INT(req.MaxWaitMs, 500);
    SL_CHECK_INT(req.MaxBytes, 0x100000);
    SL_CHECK_INT(req.IsolationLevel, 1);
    SL_CHECK_INT(req.SessionId, 0);
    SL_CHECK_INT(req.SessionEpoch, -1);
    SL_CHECK_INT(req.ForgottenTopicsData.count, 0);
    SL_CHECK_INT(req.RackId.len, 0);
    SL_CHECK(req.RackId.ptr != NULL);
    sl_MetadataResponse md;
    sl_MetadataResponse_init(&md);
    SL_CHECK_INT(md.ClusterId.len, -1);
    SL_CHECK_INT(md.ControllerId, -1);
    sl_JoinGroupRequest jg;
    sl_JoinGroupRequest_init(&jg);
    SL_CHECK_INT(jg.RebalanceTimeoutMs, -1);
    SL_CHECK_INT(jg.GroupInstanceId.len, -1);
    SL_CHECK_INT(jg.MemberId.len, 0);
    fx_deinit(&fx);
}

SL_TEST(null_in_non_nullable_field_rejected)
{
    fixture fx;
    fx_init(&fx);
    uint8_t bad[sizeof produce_v3_frame - 21];
    memcpy(bad, produce_v3_frame + 21, sizeof bad);
    bad[12] = 0xff; /* topic Name length -> -1 */
    bad[13] = 0xff;
    sl_ProduceRequest req;
    sl_kreader r;
    sl_kreader_init(&r, bad, sizeof bad);
    SL_CHECK_INT(sl_ProduceRequest_decode(&req, &r, 3, &fx.arena), SL_EINVAL);
    fx_deinit(&fx);
}

SL_TEST(hostile_counts_bounded)
{
    fixture fx;
    fx_init(&fx);
    /* Produce v3 claiming 2^31-1 topics in a 12-byte body. */
    static const uint8_t hostile[] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff};
    sl_ProduceRequest req;
    sl_kreader r;
    sl_kreader_init(&r, hostile, sizeof hostile);
    SL_CHECK_INT(sl_ProduceRequest_decode(&req, &r, 3, &fx.arena), SL_EINVAL);
    SL_CHECK_INT(fx.arena.used, 0);
    /* A count the input can hold but the arena cannot: SL_ENOMEM, no crash. */
    sl_arena small;
    sl_arena_init(&small, 256);
    uint8_t many[4 + 4 * 1000] = {0, 0, 0x03, 0xe8};
    sl_kreader_init(&r, many, sizeof many);
    sl_MetadataRequest md;
    SL_CHECK_INT(sl_MetadataRequest_decode(&md, &r, 1, &small), SL_ENOMEM);
    sl_arena_deinit(&small);
    fx_deinit(&fx);
}

SL_TEST(version_outside_served_range)
{
    fixture fx;
    fx_init(&fx);
    sl_ProduceRequest req;
    sl_kreader r;
    sl_kreader_init(&r, "", 0);
    SL_CHECK_INT(sl_ProduceRequest_decode(&req, &r, -1, &fx.arena), SL_ERANGE);
    SL_CHECK_INT(sl_ProduceRequest_decode(&req, &r, 8, &fx.arena), SL_ERANGE);
    void *msg;
    SL_CHECK_INT(sl_kafka_request_decode_any(4, 0, &r, &fx.arena, &msg), SL_ERANGE);
    fx_deinit(&fx);
}
