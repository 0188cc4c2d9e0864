/*
 * test_batch.c - record batch v2: header parsing, validation verdicts,
 * record iteration, varints and the encoder (checked against bytes made by
 * an independent encoder, fuzz/make_corpus_batch.py).
 */
#include "test.h"
#include "storage/batch.h"
#include "common/error.h"

/* Three records (key-0/value-0; null key/value-1 at +5 ms; key-2/null value
 * with header h=x at +9 ms), base timestamp 1700000000000, not idempotent,
 * from make_corpus_batch.batch(). */
static const uint8_t reference[] = "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x62\xff\xff\xff\xff"
                                   "\x02\xe9\xe0\x4b\xe4\x00\x00\x00\x00\x00\x02\x00\x00\x01\x8b\xcf"
                                   "\xe5\x68\x00\x00\x00\x01\x8b\xcf\xe5\x68\x09\xff\xff\xff\xff\xff"
                                   "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x03\x24\x00\x00"
                                   "\x00\x0a\x6b\x65\x79\x2d\x30\x0e\x76\x61\x6c\x75\x65\x2d\x30\x00"
                                   "\x1a\x00\x0a\x02\x01\x0e\x76\x61\x6c\x75\x65\x2d\x31\x00\x1e\x00"
                                   "\x12\x04\x0a\x6b\x65\x79\x2d\x32\x01\x02\x02\x68\x02\x78";
#define REF_LEN 110
#define TS0     1700000000000LL

static size_t encode_reference(uint8_t *out, size_t cap)
{
    static const uint8_t hdr[] = {0x02, 'h', 0x02, 'x'};
    sl_record_in recs[3] = {
        {TS0, "key-0", 5, "value-0", 7, 0, NULL, 0},
        {TS0 + 5, NULL, 0, "value-1", 7, 0, NULL, 0},
        {TS0 + 9, "key-2", 5, NULL, 0, 1, hdr, sizeof hdr},
    };
    sl_batch_header h = {
        .BaseOffset = 0, .PartitionLeaderEpoch = -1, .ProducerId = -1, .ProducerEpoch = -1, .BaseSequence = -1};
    return sl_batch_encode(out, cap, &h, recs, 3);
}

/* A batch of n records with values of vlen bytes. */
static size_t make_batch(uint8_t *out, size_t cap, int n, int vlen, int64_t ts)
{
    static uint8_t value[4096];
    sl_record_in recs[64];
    SL_CHECK(n <= 64 && vlen <= (int)sizeof value);
    for (int i = 0; i < n; i++) recs[i] = (sl_record_in){ts + i, "k", 1, value, vlen, 0, NULL, 0};
    sl_batch_header h = {.PartitionLeaderEpoch = -1, .ProducerId = 99, .ProducerEpoch = 2, .BaseSequence = 5};
    size_t len = sl_batch_encode(out, cap, &h, recs, n);
    SL_CHECK(len > 0);
    return len;
}

static void recrc(uint8_t *b, size_t len)
{
    sl_put_be32(b + SL_BATCH_OFF_CRC, sl_batch_crc(b, len));
}

SL_TEST(batch_encode_matches_reference)
{
    uint8_t buf[256];
    size_t len = encode_reference(buf, sizeof buf);
    SL_CHECK_INT(len, REF_LEN);
    SL_CHECK_MEM(buf, reference, REF_LEN);
    SL_CHECK_INT(encode_reference(buf, 100), 0); /* too small */
}

SL_TEST(batch_header_parse_fields)
{
    sl_batch_header h;
    SL_CHECK_INT(sl_batch_header_parse(reference, 60, &h), SL_EINVAL);
    SL_CHECK_OK(sl_batch_header_parse(reference, REF_LEN, &h));
    SL_CHECK_INT(h.BaseOffset, 0);
    SL_CHECK_INT(h.BatchLength, REF_LEN - 12);
    SL_CHECK_INT(h.PartitionLeaderEpoch, -1);
    SL_CHECK_INT(h.Magic, 2);
    SL_CHECK_INT(h.Crc, 0xe9e04be4u);
    SL_CHECK_INT(h.Attributes, 0);
    SL_CHECK_INT(h.LastOffsetDelta, 2);
    SL_CHECK_INT(h.BaseTimestamp, TS0);
    SL_CHECK_INT(h.MaxTimestamp, TS0 + 9);
    SL_CHECK_INT(h.ProducerId, -1);
    SL_CHECK_INT(h.ProducerEpoch, -1);
    SL_CHECK_INT(h.BaseSequence, -1);
    SL_CHECK_INT(h.RecordsCount, 3);
}

SL_TEST(batch_validate_good)
{
    uint8_t buf[8192];
    size_t a = make_batch(buf, sizeof buf, 5, 100, 1000);
    sl_batches_info info;
    SL_CHECK_INT(sl_batches_validate(buf, a, 1 << 20, &info), SL_BATCH_OK);
    SL_CHECK_INT(info.nbatches, 1);
    SL_CHECK_INT(info.nrecords, 5);
    SL_CHECK_INT(info.total_offsets, 5);
    SL_CHECK_INT(info.max_timestamp, 1004);
    SL_CHECK_INT(info.first_attributes, 0);
    SL_CHECK_INT(info.first_producer_id, 99);
    size_t b = make_batch(buf + a, sizeof buf - a, 2, 10, 5000);
    SL_CHECK_INT(sl_batches_validate(buf, a + b, 1 << 20, &info), SL_BATCH_OK);
    SL_CHECK_INT(info.nbatches, 2);
    SL_CHECK_INT(info.total_offsets, 7);
    SL_CHECK_INT(info.max_timestamp, 5001);
    SL_CHECK_INT(sl_batches_validate(buf, a + b, 1 << 20, NULL), SL_BATCH_OK);
}

SL_TEST(batch_validate_bad_crc)
{
    uint8_t buf[REF_LEN];
    memcpy(buf, reference, REF_LEN);
    buf[REF_LEN - 1] ^= 1;
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_CORRUPT);
    /* Fields outside the CRC may change freely. */
    memcpy(buf, reference, REF_LEN);
    sl_put_be64(buf, 123456);
    sl_put_be32(buf + SL_BATCH_OFF_LEADER_EPOCH, 7);
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_OK);
}

SL_TEST(batch_validate_truncated)
{
    SL_CHECK_INT(sl_batches_validate(reference, 0, 1 << 20, NULL), SL_BATCH_CORRUPT);
    SL_CHECK_INT(sl_batches_validate(reference, 10, 1 << 20, NULL), SL_BATCH_CORRUPT);
    SL_CHECK_INT(sl_batches_validate(reference, 40, 1 << 20, NULL), SL_BATCH_CORRUPT);
    SL_CHECK_INT(sl_batches_validate(reference, REF_LEN - 1, 1 << 20, NULL), SL_BATCH_CORRUPT);
    uint8_t two[2 * REF_LEN];
    memcpy(two, reference, REF_LEN);
    memcpy(two + REF_LEN, reference, REF_LEN);
    SL_CHECK_INT(sl_batches_validate(two, 2 * REF_LEN - 3, 1 << 20, NULL), SL_BATCH_CORRUPT);
    SL_CHECK_INT(sl_batches_validate(two, REF_LEN + 5, 1 << 20, NULL), SL_BATCH_CORRUPT);
}

SL_TEST(batch_validate_magic)
{
    uint8_t buf[REF_LEN];
    memcpy(buf, reference, REF_LEN);
    buf[SL_BATCH_OFF_MAGIC] = 1;
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_INVALID);
    buf[SL_BATCH_OFF_MAGIC] = 0;
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_INVALID);
}

SL_TEST(batch_validate_length)
{
    uint8_t buf[REF_LEN];
    memcpy(buf, reference, REF_LEN);
    sl_put_be32(buf + SL_BATCH_OFF_LENGTH, 48);
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_CORRUPT);
    sl_put_be32(buf + SL_BATCH_OFF_LENGTH, 0xFFFFFFF0u);
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_CORRUPT);
    sl_put_be32(buf + SL_BATCH_OFF_LENGTH, REF_LEN);
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_CORRUPT);
}

SL_TEST(batch_validate_too_large)
{
    SL_CHECK_INT(sl_batches_validate(reference, REF_LEN, REF_LEN, NULL), SL_BATCH_OK);
    SL_CHECK_INT(sl_batches_validate(reference, REF_LEN, REF_LEN - 1, NULL), SL_BATCH_TOO_LARGE);
}

SL_TEST(batch_validate_counts)
{
    uint8_t buf[REF_LEN];
    memcpy(buf, reference, REF_LEN);
    sl_put_be32(buf + SL_BATCH_OFF_RECORDS_COUNT, 2);
    recrc(buf, REF_LEN);
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_INVALID);
    sl_put_be32(buf + SL_BATCH_OFF_RECORDS_COUNT, 0);
    sl_put_be32(buf + SL_BATCH_OFF_LAST_OFFSET_DELTA, 0xFFFFFFFFu);
    recrc(buf, REF_LEN);
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_INVALID);
    sl_put_be32(buf + SL_BATCH_OFF_RECORDS_COUNT, 0xFFFFFFFFu);
    recrc(buf, REF_LEN);
    SL_CHECK_INT(sl_batches_validate(buf, REF_LEN, 1 << 20, NULL), SL_BATCH_INVALID);
}

SL_TEST(batch_iter_records)
{
    sl_batch_iter it;
    sl_record r;
    SL_CHECK_OK(sl_batch_iter_init(&it, reference, REF_LEN));
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), 1);
    SL_CHECK_INT(r.offset_delta, 0);
    SL_CHECK_INT(r.timestamp_delta, 0);
    SL_CHECK_INT(r.key_len, 5);
    SL_CHECK_MEM(r.key, "key-0", 5);
    SL_CHECK_INT(r.value_len, 7);
    SL_CHECK_MEM(r.value, "value-0", 7);
    SL_CHECK_INT(r.headers_count, 0);
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), 1);
    SL_CHECK_INT(r.offset_delta, 1);
    SL_CHECK_INT(r.timestamp_delta, 5);
    SL_CHECK_INT(r.key_len, -1);
    SL_CHECK(r.key == NULL);
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), 1);
    SL_CHECK_INT(r.offset_delta, 2);
    SL_CHECK_INT(r.value_len, -1);
    SL_CHECK(r.value == NULL);
    SL_CHECK_INT(r.headers_count, 1);
    size_t pos = 0;
    sl_record_header h;
    SL_CHECK_INT(sl_record_header_next(&r, &pos, &h), 1);
    SL_CHECK_INT(h.key_len, 1);
    SL_CHECK_MEM(h.key, "h", 1);
    SL_CHECK_INT(h.value_len, 1);
    SL_CHECK_MEM(h.value, "x", 1);
    SL_CHECK_INT(sl_record_header_next(&r, &pos, &h), 0);
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), 0);
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), 0);
}

SL_TEST(batch_iter_compressed_and_magic)
{
    uint8_t buf[REF_LEN];
    sl_batch_iter it;
    memcpy(buf, reference, REF_LEN);
    buf[SL_BATCH_OFF_ATTRIBUTES + 1] = 3; /* lz4 */
    SL_CHECK_INT(sl_batch_iter_init(&it, buf, REF_LEN), SL_EINVAL);
    memcpy(buf, reference, REF_LEN);
    buf[SL_BATCH_OFF_MAGIC] = 1;
    SL_CHECK_INT(sl_batch_iter_init(&it, buf, REF_LEN), SL_EINVAL);
    SL_CHECK_INT(sl_batch_iter_init(&it, reference, REF_LEN - 1), SL_ECORRUPT);
    SL_CHECK_INT(sl_batch_iter_init(&it, reference, 30), SL_ECORRUPT);
}

SL_TEST(batch_iter_malformed)
{
    uint8_t buf[REF_LEN + 8];
    sl_batch_iter it;
    sl_record r;
    /* Fewer records than RecordsCount. */
    memcpy(buf, reference, REF_LEN);
    sl_put_be32(buf + SL_BATCH_OFF_RECORDS_COUNT, 4);
    SL_CHECK_OK(sl_batch_iter_init(&it, buf, REF_LEN));
    for (int i = 0; i < 3; i++) SL_CHECK_INT(sl_batch_iter_next(&it, &r), 1);
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), SL_ECORRUPT);
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), SL_ECORRUPT);
    /* More bytes than RecordsCount uses. */
    sl_put_be32(buf + SL_BATCH_OFF_RECORDS_COUNT, 2);
    SL_CHECK_OK(sl_batch_iter_init(&it, buf, REF_LEN));
    for (int i = 0; i < 2; i++) SL_CHECK_INT(sl_batch_iter_next(&it, &r), 1);
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), SL_ECORRUPT);
    /* A record length past the batch end. */
    memcpy(buf, reference, REF_LEN);
    buf[SL_BATCH_HEADER_SIZE] = 0x7e;
    SL_CHECK_OK(sl_batch_iter_init(&it, buf, REF_LEN));
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), SL_ECORRUPT);
    /* A key length past the record end. */
    memcpy(buf, reference, REF_LEN);
    buf[SL_BATCH_HEADER_SIZE + 4] = 0x40;
    SL_CHECK_OK(sl_batch_iter_init(&it, buf, REF_LEN));
    SL_CHECK_INT(sl_batch_iter_next(&it, &r), SL_ECORRUPT);
}

SL_TEST(batch_varints)
{
    static const int32_t v32[] = {0, 1, -1, 63, -64, 64, 300, -300, INT32_MAX, INT32_MIN};
    static const int64_t v64[] = {0, -1, 1, INT64_MAX, INT64_MIN, 1LL << 40, -(1LL << 40)};
    uint8_t buf[16];
    for (size_t i = 0; i < sizeof v32 / sizeof v32[0]; i++) {
        size_t n = sl_varint_write(buf, sizeof buf, v32[i]);
        SL_CHECK(n >= 1 && n <= 5);
        const uint8_t *p = buf;
        int32_t out;
        SL_CHECK_OK(sl_varint_read(&p, buf + n, &out));
        SL_CHECK_INT(out, v32[i]);
        SL_CHECK(p == buf + n);
        p = buf;
        SL_CHECK_INT(sl_varint_read(&p, buf + n - 1, &out), SL_ECORRUPT);
    }
    for (size_t i = 0; i < sizeof v64 / sizeof v64[0]; i++) {
        size_t n = sl_varlong_write(buf, sizeof buf, v64[i]);
        SL_CHECK(n >= 1 && n <= 10);
        const uint8_t *p = buf;
        int64_t out;
        SL_CHECK_OK(sl_varlong_read(&p, buf + n, &out));
        SL_CHECK_INT(out, v64[i]);
    }
    /* Over-long encodings are rejected. */
    static const uint8_t overlong[] = {0xff, 0xff, 0xff, 0xff, 0x7f};
    const uint8_t *p = overlong;
    int32_t out;
    SL_CHECK_INT(sl_varint_read(&p, overlong + 5, &out), SL_ECORRUPT);
    SL_CHECK_INT(sl_varint_write(buf, 2, INT32_MAX), 0);
}
