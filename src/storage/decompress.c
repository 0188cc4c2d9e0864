/*
 * decompress.c - the four codecs of Kafka record batches, decoding only.
 *
 *   gzip    RFC 1952 stream (zlib inflate, gzip wrapper)
 *   snappy  Java clients use xerial's framing: magic 82 'SNAPPY' 00, int32
 *           version, int32 compatible version, then blocks of [int32 BE
 *           length][raw snappy]; librdkafka accepts and sends raw snappy
 *           too, so both are read
 *   lz4     the LZ4 frame format (magic 0x184D2204)
 *   zstd    zstd frames, streamed (frame content size is optional)
 *
 * Every decoder writes into a buffer that grows by doubling up to out_max,
 * so a decompression bomb costs at most out_max bytes and an error.
 */
#include <lz4frame.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include "storage/decompress.h"
#include "storage/batch.h"
#include "common/alloc.h"
#include "common/error.h"

typedef struct outbuf {
    uint8_t *p;
    size_t len, cap, max;
} outbuf;

/* Makes room for at least `want` more bytes (fewer near max); 0 or SL_ETOOBIG. */
static int grow(outbuf *o, size_t want)
{
    if (o->cap - o->len >= want && o->cap > o->len) return 0;
    if (o->cap >= o->max) return SL_ETOOBIG;
    size_t cap = o->cap ? o->cap * 2 : 4096;
    while (cap - o->len < want && cap < o->max) cap *= 2;
    if (cap > o->max) cap = o->max;
    o->p = sl_realloc(o->p, cap);
    o->cap = cap;
    return 0;
}

static int gzip_dec(const uint8_t *in, size_t in_len, outbuf *o)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) return SL_ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    int rc = 0, zr = Z_OK;
    while (zr != Z_STREAM_END) {
        if ((rc = grow(o, in_len * 2 + 64))) break;
        z.next_out = o->p + o->len;
        z.avail_out = (uInt)SL_MIN(o->cap - o->len, (size_t)UINT32_MAX);
        zr = inflate(&z, Z_NO_FLUSH);
        o->len = (size_t)(z.next_out - o->p);
        if (zr == Z_STREAM_END) break;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = SL_ECORRUPT;
            break;
        }
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            rc = SL_ECORRUPT; /* truncated stream */
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

static int snappy_block(const uint8_t *in, size_t in_len, outbuf *o)
{
    size_t n;
    if (snappy_uncompressed_length((const char *)in, in_len, &n) != SNAPPY_OK) return SL_ECORRUPT;
    if (n > o->max - o->len) return SL_ETOOBIG;
    int rc = grow(o, n);
    if (rc) return rc;
    size_t room = o->cap - o->len;
    if (snappy_uncompress((const char *)in, in_len, (char *)o->p + o->len, &room) != SNAPPY_OK) return SL_ECORRUPT;
    o->len += room;
    return 0;
}

static int snappy_dec(const uint8_t *in, size_t in_len, outbuf *o)
{
    static const uint8_t magic[8] = {0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0};
    if (in_len < 16 || memcmp(in, magic, 8) != 0) return snappy_block(in, in_len, o);
    size_t pos = 16; /* magic, version, compatible version */
    while (pos < in_len) {
        if (in_len - pos < 4) return SL_ECORRUPT;
        size_t blen = sl_be32(in + pos);
        pos += 4;
        if (blen > in_len - pos) return SL_ECORRUPT;
        int rc = snappy_block(in + pos, blen, o);
        if (rc) return rc;
        pos += blen;
    }
    return 0;
}

static int lz4_dec(const uint8_t *in, size_t in_len, outbuf *o)
{
    LZ4F_dctx *ctx;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&ctx, LZ4F_VERSION))) return SL_ENOMEM;
    size_t pos = 0, hint = 1;
    int rc = 0;
    while (hint != 0) {
        if ((rc = grow(o, 65536))) break;
        size_t dst = o->cap - o->len, src = in_len - pos;
        hint = LZ4F_decompress(ctx, o->p + o->len, &dst, in + pos, &src, NULL);
        if (LZ4F_isError(hint)) {
            rc = SL_ECORRUPT;
            break;
        }
        o->len += dst;
        pos += src;
        if (hint != 0 && pos == in_len && dst == 0) {
            rc = SL_ECORRUPT; /* truncated frame */
            break;
        }
    }
    LZ4F_freeDecompressionContext(ctx);
    return rc;
}

static int zstd_dec(const uint8_t *in, size_t in_len, outbuf *o)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds) return SL_ENOMEM;
    ZSTD_inBuffer ib = {in, in_len, 0};
    size_t r = 1;
    int rc = 0;
    while (ib.pos < ib.size || r != 0) {
        if ((rc = grow(o, 65536))) break;
        ZSTD_outBuffer ob = {o->p + o->len, o->cap - o->len, 0};
        size_t before = ib.pos;
        r = ZSTD_decompressStream(ds, &ob, &ib);
        if (ZSTD_isError(r)) {
            rc = SL_ECORRUPT;
            break;
        }
        o->len += ob.pos;
        if (r != 0 && ib.pos == ib.size && ob.pos == 0 && before == ib.pos) {
            rc = SL_ECORRUPT; /* truncated frame */
            break;
        }
    }
    ZSTD_freeDStream(ds);
    return rc;
}

int sl_decompress(int codec, const uint8_t *in, size_t in_len, size_t out_max, uint8_t **out, size_t *out_len)
{
    outbuf o = {NULL, 0, 0, out_max};
    int rc;
    switch (codec) {
    case SL_CODEC_GZIP: rc = gzip_dec(in, in_len, &o); break;
    case SL_CODEC_SNAPPY: rc = snappy_dec(in, in_len, &o); break;
    case SL_CODEC_LZ4: rc = lz4_dec(in, in_len, &o); break;
    case SL_CODEC_ZSTD: rc = zstd_dec(in, in_len, &o); break;
    default: rc = SL_EINVAL;
    }
    if (rc) {
        sl_free(o.p);
        return rc;
    }
    SL_ASSERT(o.len <= out_max);
    *out = o.p;
    *out_len = o.len;
    return 0;
}

int sl_batch_decompress(const uint8_t *batch, size_t len, size_t out_max, uint8_t **out, size_t *out_len)
{
    if (len < SL_BATCH_HEADER_SIZE || out_max < SL_BATCH_HEADER_SIZE) return SL_EINVAL;
    int codec = sl_be16(batch + SL_BATCH_OFF_ATTRIBUTES) & SL_BATCH_ATTR_COMPRESSION_MASK;
    if (codec == SL_CODEC_NONE) return SL_EINVAL;
    uint8_t *records;
    size_t rlen;
    int rc = sl_decompress(codec, batch + SL_BATCH_HEADER_SIZE, len - SL_BATCH_HEADER_SIZE,
                           out_max - SL_BATCH_HEADER_SIZE, &records, &rlen);
    if (rc) return rc;
    uint8_t *b = sl_malloc(SL_BATCH_HEADER_SIZE + rlen);
    memcpy(b, batch, SL_BATCH_HEADER_SIZE);
    if (rlen) memcpy(b + SL_BATCH_HEADER_SIZE, records, rlen);
    sl_free(records);
    uint16_t attrs = sl_be16(b + SL_BATCH_OFF_ATTRIBUTES) & (uint16_t)~SL_BATCH_ATTR_COMPRESSION_MASK;
    sl_put_be16(b + SL_BATCH_OFF_ATTRIBUTES, attrs);
    sl_put_be32(b + SL_BATCH_OFF_LENGTH, (uint32_t)(SL_BATCH_HEADER_SIZE + rlen - SL_BATCH_LOG_OVERHEAD));
    *out = b;
    *out_len = SL_BATCH_HEADER_SIZE + rlen;
    return 0;
}
