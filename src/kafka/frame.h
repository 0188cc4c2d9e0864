/*
 * frame.h - Kafka's TCP framing: every request and response is
 *
 *     int32 Size (big-endian, bytes that follow) | Size bytes (header + body)
 *
 * sl_kafka_frame is the resumable parser: a pure function of the bytes
 * received so far, so the connection keeps no parser state and simply calls
 * it again when more bytes arrive. A request is at least 8 bytes (api key,
 * api version, correlation id), so a smaller or negative Size is malformed.
 *
 * For responses, sl_kafka_frame_begin/_end reserve the Size field and patch
 * it once the header and body are written; spliced file ranges (kafka/wire.h)
 * count toward Size although they are not in the buffer.
 */
#ifndef SL_KAFKA_FRAME_H
#define SL_KAFKA_FRAME_H

#include "kafka/wire.h"

enum { SL_KFRAME_OK = 0, SL_KFRAME_NEED_MORE = 1 };
#define SL_KFRAME_SIZE_MIN 8

/*
 * SL_KFRAME_OK (*frame_len = 4 + Size), SL_KFRAME_NEED_MORE (the Size field
 * or part of the frame is missing; *frame_len untouched), SL_ETOOBIG
 * (Size > frame_max) or SL_EINVAL (Size < 8 or negative).
 */
int sl_kafka_frame(const uint8_t *data, size_t len, size_t frame_max, size_t *frame_len);

typedef struct sl_kframe_mark {
    size_t at;                 /* offset of the Size field in the buffer */
    int64_t spliced_len;       /* w->spliced_len when the frame began */
} sl_kframe_mark;

/* Writes a placeholder Size; returns the writer's error. */
int sl_kafka_frame_begin(sl_kwriter *w, sl_kframe_mark *mark);
/* Patches Size = bytes written + bytes spliced since _begin; SL_ETOOBIG past INT32_MAX. */
int sl_kafka_frame_end(sl_kwriter *w, const sl_kframe_mark *mark);

#endif
