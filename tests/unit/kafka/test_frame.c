/*
 * test_frame.c - Kafka size-prefixed framing (src/kafka/frame.c): need-more
 * at every split point, exact frame lengths with trailing bytes, the size
 * limits, and the response-side Size patching with spliced file ranges.
 */
#include "test.h"
#include "kafka/frame.h"

/* A 12-byte body: ApiVersions v0 request header with a null client id + 2 bytes. */
static const uint8_t frame12[] = {
    0x00, 0x00, 0x00, 0x0c,
    0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a, 0xff, 0xff, 0xab, 0xcd,
};

SL_TEST(need_more_at_every_split_point)
{
    for (size_t n = 0; n < sizeof frame12; n++) {
        size_t flen = 12345;
        SL_CHECK_INT(sl_kafka_frame(n ? frame12 : NULL, n, 1 << 20, &flen), SL_KFRAME_NEED_MORE);
        SL_CHECK_INT(flen, 12345);
    }
    size_t flen = 0;
    SL_CHECK_INT(sl_kafka_frame(frame12, sizeof frame12, 1 << 20, &flen), SL_KFRAME_OK);
    SL_CHECK_INT(flen, 16);
}

SL_TEST(frame_with_following_bytes)
{
    uint8_t two[2 * sizeof frame12];
    memcpy(two, frame12, sizeof frame12);
    memcpy(two + sizeof frame12, frame12, sizeof frame12);
    for (size_t n = sizeof frame12; n <= sizeof two; n++) {
        size_t flen = 0;
        SL_CHECK_INT(sl_kafka_frame(two, n, 1 << 20, &flen), SL_KFRAME_OK);
        SL_CHECK_INT(flen, sizeof frame12);
    }
}

SL_TEST(too_big)
{
    size_t flen = 0;
    SL_CHECK_INT(sl_kafka_frame(frame12, sizeof frame12, 12, &flen), SL_KFRAME_OK);
    SL_CHECK_INT(sl_kafka_frame(frame12, sizeof frame12, 11, &flen), SL_ETOOBIG);
    /* Decided from the size field alone: no need to wait for the body. */
    static const uint8_t huge[] = {0x7f, 0xff, 0xff, 0xff};
    SL_CHECK_INT(sl_kafka_frame(huge, sizeof huge, 100 << 20, &flen), SL_ETOOBIG);
}

SL_TEST(negative_or_short_size)
{
    size_t flen = 0;
    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t min_neg[] = {0x80, 0x00, 0x00, 0x00};
    static const uint8_t zero[] = {0, 0, 0, 0};
    static const uint8_t seven[] = {0, 0, 0, 7, 1, 2, 3, 4, 5, 6, 7};
    static const uint8_t eight[] = {0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    SL_CHECK_INT(sl_kafka_frame(neg, sizeof neg, 1 << 20, &flen), SL_EINVAL);
    SL_CHECK_INT(sl_kafka_frame(min_neg, sizeof min_neg, SIZE_MAX, &flen), SL_EINVAL);
    SL_CHECK_INT(sl_kafka_frame(zero, sizeof zero, 1 << 20, &flen), SL_EINVAL);
    SL_CHECK_INT(sl_kafka_frame(seven, sizeof seven, 1 << 20, &flen), SL_EINVAL);
    SL_CHECK_INT(sl_kafka_frame(eight, sizeof eight, 1 << 20, &flen), SL_KFRAME_OK);
    SL_CHECK_INT(flen, 12);
}

SL_TEST(response_size_patched_with_splices)
{
    sl_buf buf;
    sl_buf_init(&buf, 1024);
    sl_kwriter_splice splices[1];
    sl_kwriter w;
    sl_kwriter_init(&w, &buf, splices, 1);
    sl_kwrite_int8(&w, 0x55); /* a byte before the frame: offsets are relative */
    sl_kframe_mark mark;
    SL_CHECK_OK(sl_kafka_frame_begin(&w, &mark));
    sl_kwrite_int32(&w, 42);
    sl_krecords rec = SL_KRECORDS_NULL;
    rec.from_file = true;
    rec.fd = 3;
    rec.len = 1000;
    sl_kwrite_records(&w, false, true, &rec);
    sl_kwrite_int16(&w, 0);
    SL_CHECK_OK(sl_kafka_frame_end(&w, &mark));
    /* 4 (corr id) + 4 (records length) + 1000 (spliced) + 2 */
    SL_CHECK_INT(sl_be32(buf.data + 1), 1010);
    SL_CHECK_INT(buf.len, 1 + 4 + 4 + 4 + 2);
    SL_CHECK_INT(w.splices[0].at, 13);
    sl_buf_deinit(&buf);
}
