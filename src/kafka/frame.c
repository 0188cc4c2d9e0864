/*
 * frame.c - size-prefixed framing of Kafka requests and responses (frame.h).
 */
#include "kafka/frame.h"

int sl_kafka_frame(const uint8_t *data, size_t len, size_t frame_max, size_t *frame_len)
{
    SL_ASSERT(data != NULL || len == 0);
    SL_ASSERT(frame_len != NULL);
    if (len < 4) return SL_KFRAME_NEED_MORE;
    int32_t size = (int32_t)sl_be32(data);
    if (size < SL_KFRAME_SIZE_MIN) return SL_EINVAL;
    if ((uint64_t)size > frame_max) return SL_ETOOBIG;
    if (len - 4 < (size_t)size) return SL_KFRAME_NEED_MORE;
    *frame_len = 4 + (size_t)size;
    return SL_KFRAME_OK;
}

int sl_kafka_frame_begin(sl_kwriter *w, sl_kframe_mark *mark)
{
    SL_ASSERT(w != NULL && mark != NULL);
    mark->at = w->buf->len;
    mark->spliced_len = w->spliced_len;
    sl_kwrite_int32(w, 0);
    SL_ASSERT(w->err || w->buf->len == mark->at + 4);
    return w->err;
}

int sl_kafka_frame_end(sl_kwriter *w, const sl_kframe_mark *mark)
{
    SL_ASSERT(w != NULL && mark != NULL);
    if (w->err) return w->err;
    SL_ASSERT(w->buf->len >= mark->at + 4 && w->spliced_len >= mark->spliced_len);
    int64_t size = (int64_t)(w->buf->len - mark->at - 4) + (w->spliced_len - mark->spliced_len);
    if (size > INT32_MAX) {
        w->err = SL_ETOOBIG;
        return w->err;
    }
    sl_put_be32(w->buf->data + mark->at, (uint32_t)size);
    return 0;
}
