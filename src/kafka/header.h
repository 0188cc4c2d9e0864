/*
 * header.h - Kafka request and response headers.
 *
 *   Request v1:  int16 RequestApiKey | int16 RequestApiVersion |
 *                int32 CorrelationId | int16-length nullable string ClientId
 *   Request v2:  v1 | tagged fields            (flexible request versions)
 *   Response v0: int32 CorrelationId
 *   Response v1: v0 | tagged fields            (flexible response versions)
 *
 * ClientId keeps its int16 length even in v2, so the first ten-plus bytes of
 * any request are readable before its version is known. ApiVersions
 * responses always use header v0 (KIP-511: a client that sent a version the
 * broker does not know must still be able to read the reply). Request
 * header v0 (ControlledShutdown v0 only) is never served.
 */
#ifndef SL_KAFKA_HEADER_H
#define SL_KAFKA_HEADER_H

#include "kafka/wire.h"

typedef struct sl_kreq_header {
    int16_t RequestApiKey, RequestApiVersion;
    int32_t CorrelationId;
    sl_kstr ClientId;          /* a view into the request; len -1 = null */
} sl_kreq_header;

/* Reads key, version, correlation id from a request body (after the 4-byte size); SL_EINVAL if < 8 bytes. */
int sl_kafka_request_header_peek(const uint8_t *p, size_t len, sl_kreq_header *h);
/*
 * Full header decode (v1 or v2 by api key/version flexibility). SL_ERANGE
 * when the api is not served or the version is outside the served range;
 * key, version and correlation id are filled in even then (ClientId null),
 * so the caller can answer ApiVersions with the v0 error body. SL_EINVAL on
 * malformed input. On success r->p is at the start of the body.
 */
int sl_kafka_request_header_decode(sl_kreq_header *h, sl_kreader *r);
/* Encodes a request header (client side: tests, tools); the api must be served. */
int sl_kafka_request_header_encode(sl_kwriter *w, const sl_kreq_header *h);
/* 0 or 1; ApiVersions always 0, and 0 for an api that is not served. */
int sl_kafka_response_header_version(int16_t api_key, int16_t api_version);
int sl_kafka_response_header_encode(sl_kwriter *w, int16_t api_key, int16_t api_version, int32_t correlation_id);
/* Reads a response header (client side); returns SL_EINVAL on malformed input. */
int sl_kafka_response_header_decode(sl_kreader *r, int16_t api_key, int16_t api_version, int32_t *correlation_id);

#endif
