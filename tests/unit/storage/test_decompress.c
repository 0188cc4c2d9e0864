/*
 * Tests for src/storage/decompress.c: each codec's output, produced here by
 * the codec libraries the way Kafka clients frame it, decompresses back to
 * the exact records; truncated or corrupt input and bombs fail cleanly.
 */
#include <lz4frame.h>
#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>
#include "test.h"
#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/error.h"
#include "storage/batch.h"
#include "storage/decompress.h"

enum { NREC = 50 };

/* An uncompressed batch of NREC records, timestamps 1000 + 10 * i. */
static size_t plain_batch(uint8_t *out, size_t cap)
{
    static char keys[NREC][16], vals[NREC][64];
    sl_record_in recs[NREC];
    for (int i = 0; i < NREC; i++) {
        int kl = snprintf(keys[i], sizeof keys[i], "key-%d", i);
        int vl = snprintf(vals[i], sizeof vals[i], "value %d, repeated repeated repeated", i);
        recs[i] = (sl_record_in){.timestamp = 1000 + 10 * i, .key = keys[i], .key_len = kl, .value = vals[i],
                                 .value_len = vl};
    }
    sl_batch_header h = {.BaseOffset = 40, .PartitionLeaderEpoch = 0, .Magic = 2, .ProducerId = -1,
                         .ProducerEpoch = -1, .BaseSequence = -1};
    size_t n = sl_batch_encode(out, cap, &h, recs, NREC);
    SL_CHECK(n > SL_BATCH_HEADER_SIZE);
    return n;
}

static size_t compress_records(int codec, const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    switch (codec) {
    case SL_CODEC_GZIP: {
        z_stream z;
        memset(&z, 0, sizeof z);
        SL_CHECK(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
        z.next_in = (Bytef *)in;
        z.avail_in = (uInt)n;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        SL_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
        size_t len = z.total_out;
        deflateEnd(&z);
        return len;
    }
    case SL_CODEC_SNAPPY: { /* xerial framing, two blocks */
        static const uint8_t hdr[16] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1};
        memcpy(out, hdr, 16);
        size_t pos = 16, half = n / 2;
        for (int b = 0; b < 2; b++) {
            size_t len = cap - pos - 4;
            SL_CHECK(snappy_compress((const char *)in + (b ? half : 0), b ? n - half : half, (char *)out + pos + 4,
                                     &len) == SNAPPY_OK);
            sl_put_be32(out + pos, (uint32_t)len);
            pos += 4 + len;
        }
        return pos;
    }
    case SL_CODEC_LZ4: {
        size_t len = LZ4F_compressFrame(out, cap, in, n, NULL);
        SL_CHECK(!LZ4F_isError(len));
        return len;
    }
    case SL_CODEC_ZSTD: {
        size_t len = ZSTD_compress(out, cap, in, n, 3);
        SL_CHECK(!ZSTD_isError(len));
        return len;
    }
    }
    SL_CHECK(!"codec");
    return 0;
}

/* The compressed form of the plain batch, as a client would send it. */
static size_t compressed_batch(int codec, const uint8_t *plain, size_t plain_len, uint8_t *out, size_t cap)
{
    memcpy(out, plain, SL_BATCH_HEADER_SIZE);
    size_t clen = compress_records(codec, plain + SL_BATCH_HEADER_SIZE, plain_len - SL_BATCH_HEADER_SIZE,
                                   out + SL_BATCH_HEADER_SIZE, cap - SL_BATCH_HEADER_SIZE);
    size_t len = SL_BATCH_HEADER_SIZE + clen;
    sl_put_be16(out + SL_BATCH_OFF_ATTRIBUTES, (uint16_t)codec);
    sl_put_be32(out + SL_BATCH_OFF_LENGTH, (uint32_t)(len - SL_BATCH_LOG_OVERHEAD));
    sl_put_be32(out + SL_BATCH_OFF_CRC, sl_crc32c(0, out + SL_BATCH_CRC_START, len - SL_BATCH_CRC_START));
    return len;
}

SL_TEST(every_codec_round_trips_to_the_same_records)
{
    static uint8_t plain[16384], comp[32768];
    size_t plain_len = plain_batch(plain, sizeof plain);
    for (int codec = SL_CODEC_GZIP; codec <= SL_CODEC_ZSTD; codec++) {
        size_t clen = compressed_batch(codec, plain, plain_len, comp, sizeof comp);
        sl_batches_info info;
        SL_CHECK_INT(sl_batches_validate(comp, clen, 1 << 20, &info), SL_BATCH_OK);
        uint8_t *out;
        size_t out_len;
        SL_CHECK_OK(sl_batch_decompress(comp, clen, 1 << 20, &out, &out_len));
        SL_CHECK_INT(out_len, plain_len);
        /* Same records; header equal except CRC (covers the compressed bytes). */
        SL_CHECK_MEM(out + SL_BATCH_HEADER_SIZE, plain + SL_BATCH_HEADER_SIZE, plain_len - SL_BATCH_HEADER_SIZE);
        SL_CHECK_MEM(out, plain, SL_BATCH_OFF_CRC);
        sl_batch_iter it;
        sl_record rec;
        SL_CHECK_OK(sl_batch_iter_init(&it, out, out_len));
        int n = 0;
        while (sl_batch_iter_next(&it, &rec) == 1) {
            SL_CHECK_INT(rec.offset_delta, n);
            SL_CHECK_INT(rec.timestamp_delta, 10 * n);
            n++;
        }
        SL_CHECK_INT(n, NREC);
        sl_free(out);
    }
}

SL_TEST(raw_snappy_without_framing_is_accepted)
{
    static uint8_t plain[16384], comp[32768];
    size_t plain_len = plain_batch(plain, sizeof plain);
    size_t len = sizeof comp;
    SL_CHECK(snappy_compress((const char *)plain + 61, plain_len - 61, (char *)comp, &len) == SNAPPY_OK);
    uint8_t *out;
    size_t out_len;
    SL_CHECK_OK(sl_decompress(SL_CODEC_SNAPPY, comp, len, 1 << 20, &out, &out_len));
    SL_CHECK_INT(out_len, plain_len - 61);
    SL_CHECK_MEM(out, plain + 61, out_len);
    sl_free(out);
}

SL_TEST(truncated_corrupt_and_oversized_fail_cleanly)
{
    static uint8_t plain[16384], comp[32768];
    size_t plain_len = plain_batch(plain, sizeof plain);
    for (int codec = SL_CODEC_GZIP; codec <= SL_CODEC_ZSTD; codec++) {
        size_t clen = compressed_batch(codec, plain, plain_len, comp, sizeof comp);
        uint8_t *out = NULL;
        size_t out_len;
        /* Every strict prefix of the compressed records fails (never crashes). */
        for (size_t cut = SL_BATCH_HEADER_SIZE; cut < clen; cut += 7) {
            uint8_t *copy = sl_malloc(cut);
            memcpy(copy, comp, cut);
            int rc = sl_decompress(codec, copy + 61, cut - 61, 1 << 20, &out, &out_len);
            if (rc == 0) {
                SL_CHECK(out_len < plain_len - 61); /* lz4/snappy blocks may decode a prefix */
                sl_free(out);
            }
            sl_free(copy);
        }
        /* An output limit below the real size is SL_ETOOBIG. */
        SL_CHECK_INT(sl_decompress(codec, comp + 61, clen - 61, 100, &out, &out_len), SL_ETOOBIG);
        /* Garbage. */
        memset(comp + 61, 0xA5, clen - 61);
        SL_CHECK(sl_decompress(codec, comp + 61, clen - 61, 1 << 20, &out, &out_len) != 0);
    }
    SL_CHECK_INT(sl_decompress(7, comp, 10, 100, &(uint8_t *){NULL}, &(size_t){0}), SL_EINVAL);
}

SL_TEST(bomb_is_bounded)
{
    /* 64 MiB of zeros compress to ~64 KiB; a 1 MiB limit stops it. */
    size_t n = 64 << 20;
    uint8_t *zeros = sl_calloc(1, n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *comp = sl_malloc(cap);
    size_t clen = ZSTD_compress(comp, cap, zeros, n, 1);
    SL_CHECK(!ZSTD_isError(clen) && clen < n / 100);
    uint8_t *out;
    size_t out_len;
    SL_CHECK_INT(sl_decompress(SL_CODEC_ZSTD, comp, clen, 1 << 20, &out, &out_len), SL_ETOOBIG);
    sl_free(comp);
    sl_free(zeros);
}
