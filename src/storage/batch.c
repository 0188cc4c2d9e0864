/*
 * batch.c - record batch v2 parsing, validation and record iteration.
 *
 * Everything here reads untrusted bytes (a Produce request, a segment file
 * after a crash), so every read is bounded by the length the caller gave:
 * lengths are compared against what is left before anything is touched,
 * and varints are decoded with their own end pointer. The layout is in
 * batch.h. Validation does per-batch work only (header checks and one
 * CRC-32C pass); records are never decoded on the produce path.
 */
#include <string.h>
#include "storage/batch.h"
#include "common/crc32c.h"
#include "common/error.h"

/* BatchLength covers the header after BatchLength itself: 61 - 12 = 49. */
#define BATCH_LENGTH_MIN (SL_BATCH_HEADER_SIZE - SL_BATCH_LOG_OVERHEAD)

int sl_batch_header_parse(const uint8_t *p, size_t len, sl_batch_header *h)
{
    SL_ASSERT(h != NULL && (p != NULL || len == 0));
    if (len < SL_BATCH_HEADER_SIZE) return SL_EINVAL;
    h->BaseOffset = (int64_t)sl_be64(p + SL_BATCH_OFF_BASE_OFFSET);
    h->BatchLength = (int32_t)sl_be32(p + SL_BATCH_OFF_LENGTH);
    h->PartitionLeaderEpoch = (int32_t)sl_be32(p + SL_BATCH_OFF_LEADER_EPOCH);
    h->Magic = (int8_t)p[SL_BATCH_OFF_MAGIC];
    h->Crc = sl_be32(p + SL_BATCH_OFF_CRC);
    h->Attributes = (int16_t)sl_be16(p + SL_BATCH_OFF_ATTRIBUTES);
    h->LastOffsetDelta = (int32_t)sl_be32(p + SL_BATCH_OFF_LAST_OFFSET_DELTA);
    h->BaseTimestamp = (int64_t)sl_be64(p + SL_BATCH_OFF_BASE_TIMESTAMP);
    h->MaxTimestamp = (int64_t)sl_be64(p + SL_BATCH_OFF_MAX_TIMESTAMP);
    h->ProducerId = (int64_t)sl_be64(p + SL_BATCH_OFF_PRODUCER_ID);
    h->ProducerEpoch = (int16_t)sl_be16(p + SL_BATCH_OFF_PRODUCER_EPOCH);
    h->BaseSequence = (int32_t)sl_be32(p + SL_BATCH_OFF_BASE_SEQUENCE);
    h->RecordsCount = (int32_t)sl_be32(p + SL_BATCH_OFF_RECORDS_COUNT);
    return 0;
}

uint32_t sl_batch_crc(const uint8_t *batch, size_t len)
{
    SL_ASSERT(len >= SL_BATCH_HEADER_SIZE);
    return sl_crc32c(0, batch + SL_BATCH_CRC_START, len - SL_BATCH_CRC_START);
}

/* Checks one batch at p with `left` bytes available; sets *size on OK. */
static sl_batch_verdict validate_one(const uint8_t *p, size_t left, int32_t max_batch_bytes, int64_t *size)
{
    if (left <= SL_BATCH_OFF_MAGIC) return SL_BATCH_CORRUPT;
    if (p[SL_BATCH_OFF_MAGIC] != SL_BATCH_MAGIC) return SL_BATCH_INVALID;
    int32_t blen = (int32_t)sl_be32(p + SL_BATCH_OFF_LENGTH);
    if (blen < BATCH_LENGTH_MIN) return SL_BATCH_CORRUPT;
    int64_t total = SL_BATCH_LOG_OVERHEAD + (int64_t)blen;
    if (total > (int64_t)left) return SL_BATCH_CORRUPT;
    if (total > (int64_t)max_batch_bytes) return SL_BATCH_TOO_LARGE;
    if (sl_batch_crc(p, (size_t)total) != sl_be32(p + SL_BATCH_OFF_CRC)) return SL_BATCH_CORRUPT;
    int32_t lod = (int32_t)sl_be32(p + SL_BATCH_OFF_LAST_OFFSET_DELTA);
    int32_t count = (int32_t)sl_be32(p + SL_BATCH_OFF_RECORDS_COUNT);
    if (lod < 0 || count < 1 || (int64_t)count != (int64_t)lod + 1) return SL_BATCH_INVALID;
    *size = total;
    return SL_BATCH_OK;
}

sl_batch_verdict sl_batches_validate(const uint8_t *p, size_t len, int32_t max_batch_bytes, sl_batches_info *info)
{
    SL_ASSERT(p != NULL || len == 0);
    sl_batches_info acc = {0, 0, 0, INT64_MIN, 0, -1, 0};
    if (len == 0) return SL_BATCH_CORRUPT;
    size_t pos = 0;
    while (pos < len) {
        int64_t size = 0;
        sl_batch_verdict v = validate_one(p + pos, len - pos, max_batch_bytes, &size);
        if (v != SL_BATCH_OK) return v;
        const uint8_t *b = p + pos;
        if (acc.nbatches == 0) {
            acc.first_attributes = (int16_t)sl_be16(b + SL_BATCH_OFF_ATTRIBUTES);
            acc.first_producer_id = (int64_t)sl_be64(b + SL_BATCH_OFF_PRODUCER_ID);
        }
        acc.any_attributes |= sl_be16(b + SL_BATCH_OFF_ATTRIBUTES);
        acc.nbatches++;
        acc.nrecords += (int32_t)sl_be32(b + SL_BATCH_OFF_RECORDS_COUNT);
        acc.total_offsets += (int64_t)(int32_t)sl_be32(b + SL_BATCH_OFF_LAST_OFFSET_DELTA) + 1;
        acc.max_timestamp = SL_MAX(acc.max_timestamp, (int64_t)sl_be64(b + SL_BATCH_OFF_MAX_TIMESTAMP));
        pos += (size_t)size;
    }
    SL_ASSERT(pos == len && acc.nbatches > 0);
    if (info) *info = acc;
    return SL_BATCH_OK;
}

/* Unsigned LEB128 of at most max_bytes bytes; the last byte may use only
 * `last_bits` bits so the value fits its type. */
static int uvarint_read(const uint8_t **pp, const uint8_t *end, int max_bytes, int last_bits, uint64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        if (p >= end) return SL_ECORRUPT;
        uint8_t b = *p++;
        if (i == max_bytes - 1 && (b >> last_bits) != 0) return SL_ECORRUPT;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *pp = p;
            *out = v;
            return 0;
        }
    }
    return SL_ECORRUPT;
}

int sl_varint_read(const uint8_t **p, const uint8_t *end, int32_t *out)
{
    uint64_t u;
    int rc = uvarint_read(p, end, 5, 4, &u);
    if (rc) return rc;
    uint32_t z = (uint32_t)u;
    *out = (int32_t)((z >> 1) ^ (0u - (z & 1)));
    return 0;
}

int sl_varlong_read(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    uint64_t z;
    int rc = uvarint_read(p, end, 10, 1, &z);
    if (rc) return rc;
    *out = (int64_t)((z >> 1) ^ (0u - (z & 1)));
    return 0;
}

int sl_batch_iter_init(sl_batch_iter *it, const uint8_t *batch, size_t len)
{
    SL_ASSERT(it != NULL);
    memset(it, 0, sizeof *it);
    if (len < SL_BATCH_HEADER_SIZE) return SL_ECORRUPT;
    if (batch[SL_BATCH_OFF_MAGIC] != SL_BATCH_MAGIC) return SL_EINVAL;
    int64_t size = sl_batch_size(batch);
    if (size < SL_BATCH_HEADER_SIZE || size > (int64_t)len) return SL_ECORRUPT;
    if (sl_be16(batch + SL_BATCH_OFF_ATTRIBUTES) & SL_BATCH_ATTR_COMPRESSION_MASK) return SL_EINVAL;
    int32_t count = (int32_t)sl_be32(batch + SL_BATCH_OFF_RECORDS_COUNT);
    if (count < 0) return SL_ECORRUPT;
    it->p = batch + SL_BATCH_HEADER_SIZE;
    it->end = batch + size;
    it->left = count;
    SL_ASSERT(it->p <= it->end);
    return 0;
}

/* A length-prefixed byte field: -1 = null when nullable. */
static int bytes_read(const uint8_t **p, const uint8_t *end, bool nullable, const uint8_t **data, int32_t *len)
{
    int rc = sl_varint_read(p, end, len);
    if (rc) return rc;
    if (*len == -1 && nullable) {
        *data = NULL;
        return 0;
    }
    if (*len < 0 || *len > end - *p) return SL_ECORRUPT;
    *data = *p;
    *p += *len;
    return 0;
}

/* Walks `count` headers in [p, end) to find where they stop. */
static int headers_skip(const uint8_t **p, const uint8_t *end, int32_t count)
{
    for (int32_t i = 0; i < count; i++) {
        const uint8_t *d;
        int32_t n;
        if (bytes_read(p, end, false, &d, &n) || bytes_read(p, end, true, &d, &n)) return SL_ECORRUPT;
    }
    return 0;
}

static int record_parse(const uint8_t *p, const uint8_t *end, sl_record *rec)
{
    SL_ASSERT(p <= end && rec != NULL);
    int8_t attributes;
    if (p >= end) return SL_ECORRUPT;
    attributes = (int8_t)*p++;
    (void)attributes;
    if (sl_varlong_read(&p, end, &rec->timestamp_delta)) return SL_ECORRUPT;
    if (sl_varint_read(&p, end, &rec->offset_delta)) return SL_ECORRUPT;
    if (bytes_read(&p, end, true, &rec->key, &rec->key_len)) return SL_ECORRUPT;
    if (bytes_read(&p, end, true, &rec->value, &rec->value_len)) return SL_ECORRUPT;
    if (sl_varint_read(&p, end, &rec->headers_count)) return SL_ECORRUPT;
    /* Each header takes at least two bytes: bound the count before looping. */
    if (rec->headers_count < 0 || rec->headers_count > (end - p) / 2) return SL_ECORRUPT;
    rec->headers = p;
    if (headers_skip(&p, end, rec->headers_count)) return SL_ECORRUPT;
    rec->headers_len = (size_t)(p - rec->headers);
    /* The record's length must be used exactly, as Kafka requires. */
    return p == end ? 0 : SL_ECORRUPT;
}

int sl_batch_iter_next(sl_batch_iter *it, sl_record *rec)
{
    SL_ASSERT(it != NULL && rec != NULL);
    if (it->left < 0) return SL_ECORRUPT;
    if (it->left == 0) {
        if (it->p == it->end) return 0;
        it->left = -1; /* bytes after the last record */
        return SL_ECORRUPT;
    }
    int32_t rlen;
    const uint8_t *p = it->p;
    if (sl_varint_read(&p, it->end, &rlen) || rlen < 0 || rlen > it->end - p || record_parse(p, p + rlen, rec)) {
        it->left = -1;
        return SL_ECORRUPT;
    }
    it->p = p + rlen;
    it->left--;
    SL_ASSERT(it->p <= it->end);
    return 1;
}

int sl_record_header_next(const sl_record *rec, size_t *pos, sl_record_header *hdr)
{
    SL_ASSERT(*pos <= rec->headers_len);
    if (*pos == rec->headers_len) return 0;
    const uint8_t *p = rec->headers + *pos, *end = rec->headers + rec->headers_len;
    if (bytes_read(&p, end, false, &hdr->key, &hdr->key_len)) return SL_ECORRUPT;
    if (bytes_read(&p, end, true, &hdr->value, &hdr->value_len)) return SL_ECORRUPT;
    *pos = (size_t)(p - rec->headers);
    return 1;
}

static size_t uvarint_write(uint8_t *p, size_t cap, uint64_t v)
{
    size_t n = 0;
    do {
        if (n == cap) return 0;
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

size_t sl_varint_write(uint8_t *p, size_t cap, int32_t v)
{
    return uvarint_write(p, cap, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
}

size_t sl_varlong_write(uint8_t *p, size_t cap, int64_t v)
{
    return uvarint_write(p, cap, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

/* Appends `len` bytes or fails; *at moves on. */
static bool put_bytes(uint8_t *out, size_t cap, size_t *at, const void *p, size_t len)
{
    if (len > cap - *at) return false;
    if (len) memcpy(out + *at, p, len);
    *at += len;
    return true;
}

static bool put_varint(uint8_t *out, size_t cap, size_t *at, int64_t v, bool is_long)
{
    size_t n = is_long ? sl_varlong_write(out + *at, cap - *at, v) : sl_varint_write(out + *at, cap - *at, (int32_t)v);
    *at += n;
    return n > 0;
}

/* The body of record i (everything after its length varint). */
static size_t record_body(uint8_t *out, size_t cap, const sl_record_in *r, int64_t base_ts, int32_t i)
{
    size_t at = 0;
    uint8_t attributes = 0;
    bool ok = put_bytes(out, cap, &at, &attributes, 1) && put_varint(out, cap, &at, r->timestamp - base_ts, true) &&
              put_varint(out, cap, &at, i, false) && put_varint(out, cap, &at, r->key ? r->key_len : -1, false) &&
              (!r->key || put_bytes(out, cap, &at, r->key, (size_t)r->key_len)) &&
              put_varint(out, cap, &at, r->value ? r->value_len : -1, false) &&
              (!r->value || put_bytes(out, cap, &at, r->value, (size_t)r->value_len)) &&
              put_varint(out, cap, &at, r->headers_count, false) &&
              put_bytes(out, cap, &at, r->headers, r->headers_len);
    return ok ? at : 0;
}

size_t sl_batch_encode(uint8_t *out, size_t cap, const sl_batch_header *h, const sl_record_in *recs, int n)
{
    SL_ASSERT(n >= 1 && !(h->Attributes & SL_BATCH_ATTR_COMPRESSION_MASK));
    if (cap < SL_BATCH_HEADER_SIZE) return 0;
    size_t at = SL_BATCH_HEADER_SIZE;
    int64_t base_ts = recs[0].timestamp, max_ts = recs[0].timestamp;
    uint8_t body[16];
    for (int i = 0; i < n; i++) {
        max_ts = SL_MAX(max_ts, recs[i].timestamp);
        /* Encode the body after room for the longest length varint, then slide it. */
        if (cap - at < 5) return 0;
        size_t blen = record_body(out + at + 5, cap - at - 5, &recs[i], base_ts, i);
        if (blen == 0) return 0;
        size_t vlen = sl_varint_write(body, sizeof body, (int32_t)blen);
        memmove(out + at + vlen, out + at + 5, blen);
        memcpy(out + at, body, vlen);
        at += vlen + blen;
    }
    sl_put_be64(out + SL_BATCH_OFF_BASE_OFFSET, (uint64_t)h->BaseOffset);
    sl_put_be32(out + SL_BATCH_OFF_LENGTH, (uint32_t)(at - SL_BATCH_LOG_OVERHEAD));
    sl_put_be32(out + SL_BATCH_OFF_LEADER_EPOCH, (uint32_t)h->PartitionLeaderEpoch);
    out[SL_BATCH_OFF_MAGIC] = SL_BATCH_MAGIC;
    sl_put_be16(out + SL_BATCH_OFF_ATTRIBUTES, (uint16_t)h->Attributes);
    sl_put_be32(out + SL_BATCH_OFF_LAST_OFFSET_DELTA, (uint32_t)(n - 1));
    sl_put_be64(out + SL_BATCH_OFF_BASE_TIMESTAMP, (uint64_t)base_ts);
    sl_put_be64(out + SL_BATCH_OFF_MAX_TIMESTAMP, (uint64_t)max_ts);
    sl_put_be64(out + SL_BATCH_OFF_PRODUCER_ID, (uint64_t)h->ProducerId);
    sl_put_be16(out + SL_BATCH_OFF_PRODUCER_EPOCH, (uint16_t)h->ProducerEpoch);
    sl_put_be32(out + SL_BATCH_OFF_BASE_SEQUENCE, (uint32_t)h->BaseSequence);
    sl_put_be32(out + SL_BATCH_OFF_RECORDS_COUNT, (uint32_t)n);
    sl_put_be32(out + SL_BATCH_OFF_CRC, sl_batch_crc(out, at));
    SL_ASSERT(sl_batch_size(out) == (int64_t)at);
    return at;
}
