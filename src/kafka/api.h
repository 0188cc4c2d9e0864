/*
 * api.h - decode or encode any served message by api key and version, for
 * the broker's dispatch, the fuzzer and tests. The per-api structs and the
 * table are generated (kafka/gen_messages.h); this adds the type-erased
 * entry points on top of sl_kafka_api_find.
 */
#ifndef SL_KAFKA_API_H
#define SL_KAFKA_API_H

#include "kafka/gen_messages.h"

/*
 * Allocates the request (or response) struct of api_key from the arena and
 * decodes it. SL_ERANGE for an api or version not served, else as
 * sl_<Msg>_decode. *msg_out is set only on success.
 */
int sl_kafka_request_decode_any(int16_t api_key, int16_t version, sl_kreader *r, sl_arena *arena, void **msg_out);
int sl_kafka_response_decode_any(int16_t api_key, int16_t version, sl_kreader *r, sl_arena *arena, void **msg_out);
/* Encodes a struct of the matching type; SL_ERANGE for an api or version not served. */
int sl_kafka_request_encode_any(int16_t api_key, int16_t version, const void *msg, sl_kwriter *w);
int sl_kafka_response_encode_any(int16_t api_key, int16_t version, const void *msg, sl_kwriter *w);
/* The ops of a served api/version pair, or NULL. */
const sl_kafka_msg_ops *sl_kafka_msg_ops_find(int16_t api_key, int16_t version, bool response);

#endif
