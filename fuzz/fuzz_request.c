/*
 * fuzz_request.c - the Kafka request path as the broker walks it: framing,
 * request header, then the generated decoder of whichever api key and
 * version the header names; whatever decodes is re-encoded, decoded again
 * and re-encoded once more, and the two encodings must be identical (an
 * encoding of a decoded message is canonical: a fixed point). The bytes
 * after the header are also fed to the response decoder of the same api,
 * which clients of the codec (tests, tools) use.
 *
 * Must not crash, leak, or trip ASan/UBSan for any input; a broken
 * round-trip invariant is a bug and aborts via SL_ASSERT.
 */
#include <string.h>
#include "kafka/api.h"
#include "kafka/frame.h"
#include "kafka/header.h"

#define FRAME_MAX (1u << 20)
#define ARENA_MAX (8u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int encode(int16_t key, int16_t version, bool response, const void *msg, sl_buf *out)
{
    sl_kwriter w;
    sl_kwriter_init(&w, out, NULL, 0);
    return response ? sl_kafka_response_encode_any(key, version, msg, &w)
                    : sl_kafka_request_encode_any(key, version, msg, &w);
}

static int decode(int16_t key, int16_t version, bool response, const uint8_t *p, size_t n,
                  sl_arena *arena, void **msg)
{
    sl_kreader r;
    sl_kreader_init(&r, p, n);
    return response ? sl_kafka_response_decode_any(key, version, &r, arena, msg)
                    : sl_kafka_request_decode_any(key, version, &r, arena, msg);
}

/* Decodes a body; on success checks encode(decode(encode(m))) == encode(m). */
static void body_round_trip(int16_t key, int16_t version, bool response, const uint8_t *p, size_t n)
{
    sl_arena arena;
    sl_buf first, second;
    sl_arena_init(&arena, ARENA_MAX);
    /* Canonical encodings are never longer than what was decoded. */
    sl_buf_init(&first, n + 64);
    sl_buf_init(&second, n + 64);
    void *msg = NULL;
    if (decode(key, version, response, p, n, &arena, &msg) != 0) goto out;
    SL_ASSERT(encode(key, version, response, msg, &first) == 0);
    void *again = NULL;
    SL_ASSERT(decode(key, version, response, first.data, first.len, &arena, &again) == 0);
    SL_ASSERT(encode(key, version, response, again, &second) == 0);
    SL_ASSERT(first.len == second.len);
    SL_ASSERT(first.len == 0 || memcmp(first.data, second.data, first.len) == 0);
out:
    sl_buf_deinit(&second);
    sl_buf_deinit(&first);
    sl_arena_deinit(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t frame_len = 0;
    if (sl_kafka_frame(data, size, FRAME_MAX, &frame_len) != SL_KFRAME_OK) return 0;
    SL_ASSERT(frame_len >= 4 + SL_KFRAME_SIZE_MIN && frame_len <= size);
    const uint8_t *body = data + 4;
    size_t body_len = frame_len - 4;

    sl_kreq_header peeked, h;
    SL_ASSERT(sl_kafka_request_header_peek(body, body_len, &peeked) == 0);
    sl_kreader r;
    sl_kreader_init(&r, body, body_len);
    int rc = sl_kafka_request_header_decode(&h, &r);
    if (rc != 0) return 0;
    SL_ASSERT(h.RequestApiKey == peeked.RequestApiKey && h.CorrelationId == peeked.CorrelationId);

    size_t left = sl_kread_left(&r);
    body_round_trip(h.RequestApiKey, h.RequestApiVersion, false, r.p, left);
    body_round_trip(h.RequestApiKey, h.RequestApiVersion, true, r.p, left);
    return 0;
}
