/*
 * batch.h - Kafka record batches, magic v2: header parsing, validation of a
 * Produce records blob, and bounds-checked iteration over the records of an
 * uncompressed batch.
 *
 * Batch layout (big-endian; offsets from the start of the batch):
 *
 *   off size field                 notes
 *     0   8  BaseOffset            the broker assigns it (sl_log_append patches it)
 *     8   4  BatchLength           bytes after this field: total size = 12 + BatchLength
 *    12   4  PartitionLeaderEpoch  the broker sets it (0 on a single node)
 *    16   1  Magic                 2
 *    17   4  Crc                   CRC-32C of bytes 21 .. end
 *    21   2  Attributes            bits 0-2 compression, 3 timestamp type,
 *                                  4 transactional, 5 control, 6 delete horizon
 *    23   4  LastOffsetDelta
 *    27   8  BaseTimestamp
 *    35   8  MaxTimestamp
 *    43   8  ProducerId
 *    51   2  ProducerEpoch
 *    53   4  BaseSequence
 *    57   4  RecordsCount
 *    61   .. records (one compressed blob when bits 0-2 != 0)
 *
 * Each record: varint length, int8 attributes, varlong timestampDelta,
 * varint offsetDelta, varint keyLength (-1 = null), key, varint valueLength
 * (-1 = null), value, varint headersCount, then per header varint key
 * length, key, varint value length (-1 = null), value. Varints are zig-zag
 * (protobuf sint32/sint64).
 *
 * BaseOffset, BatchLength and PartitionLeaderEpoch are outside the CRC, so
 * the broker patches them without recomputing it.
 */
#ifndef SL_STORAGE_BATCH_H
#define SL_STORAGE_BATCH_H

#include "common/base.h"

#define SL_BATCH_HEADER_SIZE  61
#define SL_BATCH_LOG_OVERHEAD 12 /* BaseOffset + BatchLength */
#define SL_BATCH_CRC_START    21 /* first byte covered by the CRC */
#define SL_BATCH_MAGIC        2

/* Byte offsets of the header fields. */
#define SL_BATCH_OFF_BASE_OFFSET       0
#define SL_BATCH_OFF_LENGTH            8
#define SL_BATCH_OFF_LEADER_EPOCH      12
#define SL_BATCH_OFF_MAGIC             16
#define SL_BATCH_OFF_CRC               17
#define SL_BATCH_OFF_ATTRIBUTES        21
#define SL_BATCH_OFF_LAST_OFFSET_DELTA 23
#define SL_BATCH_OFF_BASE_TIMESTAMP    27
#define SL_BATCH_OFF_MAX_TIMESTAMP     35
#define SL_BATCH_OFF_PRODUCER_ID       43
#define SL_BATCH_OFF_PRODUCER_EPOCH    51
#define SL_BATCH_OFF_BASE_SEQUENCE     53
#define SL_BATCH_OFF_RECORDS_COUNT     57

/* Attributes bits. */
#define SL_BATCH_ATTR_COMPRESSION_MASK 0x07
#define SL_BATCH_ATTR_LOG_APPEND_TIME  0x08
#define SL_BATCH_ATTR_TRANSACTIONAL    0x10
#define SL_BATCH_ATTR_CONTROL          0x20

typedef struct sl_batch_header {
    int64_t BaseOffset;
    int32_t BatchLength;
    int32_t PartitionLeaderEpoch;
    int8_t Magic;
    uint32_t Crc;
    int16_t Attributes;
    int32_t LastOffsetDelta;
    int64_t BaseTimestamp;
    int64_t MaxTimestamp;
    int64_t ProducerId;
    int16_t ProducerEpoch;
    int32_t BaseSequence;
    int32_t RecordsCount;
} sl_batch_header;

/* Decodes the 61-byte header. SL_EINVAL when len < 61; no other checks. */
int sl_batch_header_parse(const uint8_t *p, size_t len, sl_batch_header *h);

/* Total bytes of the batch whose header starts at p (p must hold >= 12 bytes). */
static inline int64_t sl_batch_size(const uint8_t *p)
{
    return SL_BATCH_LOG_OVERHEAD + (int64_t)(int32_t)sl_be32(p + SL_BATCH_OFF_LENGTH);
}

/* CRC-32C of bytes 21..len of a whole batch, as stored in its Crc field. */
uint32_t sl_batch_crc(const uint8_t *batch, size_t len);

typedef enum { SL_BATCH_OK = 0, SL_BATCH_CORRUPT, SL_BATCH_TOO_LARGE, SL_BATCH_INVALID } sl_batch_verdict;

typedef struct sl_batches_info {
    int nbatches;
    int64_t nrecords;
    int64_t total_offsets; /* sum of LastOffsetDelta + 1 */
    int64_t max_timestamp;
    int16_t first_attributes;
    int64_t first_producer_id;
    uint16_t any_attributes; /* the OR of every batch's attributes */
} sl_batches_info;

/*
 * Checks a Produce partition's records blob: one or more whole batches
 * exactly filling len. Per batch, in this order (Kafka's order, so the size
 * check comes before the CRC of a huge batch is computed):
 *   fewer than 17 bytes left, so no magic to read  -> CORRUPT
 *   Magic != 2                                     -> INVALID
 *   BatchLength < 49 or past the end of the blob   -> CORRUPT
 *   12 + BatchLength > max_batch_bytes             -> TOO_LARGE
 *   CRC mismatch                                   -> CORRUPT
 *   LastOffsetDelta < 0, RecordsCount < 1 or
 *   RecordsCount != LastOffsetDelta + 1            -> INVALID
 * An empty blob is CORRUPT. info (may be NULL) is filled on OK.
 */
sl_batch_verdict sl_batches_validate(const uint8_t *p, size_t len, int32_t max_batch_bytes, sl_batches_info *info);

/* One record, pointing into the batch (valid while the batch bytes are). */
typedef struct sl_record {
    int64_t timestamp_delta;
    int32_t offset_delta;
    const uint8_t *key; /* NULL when key_len == -1 */
    int32_t key_len;
    const uint8_t *value; /* NULL when value_len == -1 */
    int32_t value_len;
    int32_t headers_count;
    const uint8_t *headers; /* the raw header entries (after the count) */
    size_t headers_len;
} sl_record;

typedef struct sl_batch_iter {
    const uint8_t *p;   /* next record */
    const uint8_t *end; /* end of the records area */
    int32_t left;       /* records still to return */
} sl_batch_iter;

/*
 * Starts iterating the records of one whole batch (len >= its size).
 * SL_EINVAL for a compressed batch ("compressed": the caller decompresses)
 * or a bad magic; SL_ECORRUPT when the header does not fit len.
 */
int sl_batch_iter_init(sl_batch_iter *it, const uint8_t *batch, size_t len);
/* 1 = got a record, 0 = end, SL_ECORRUPT = malformed (and stays so). */
int sl_batch_iter_next(sl_batch_iter *it, sl_record *rec);

/* Header iteration of one record's headers region (from sl_record). */
typedef struct sl_record_header {
    const uint8_t *key;
    int32_t key_len;
    const uint8_t *value; /* NULL when value_len == -1 */
    int32_t value_len;
} sl_record_header;
/* Reads header number i in turn: *pos starts at 0. 1 = got one, 0 = end, <0 malformed. */
int sl_record_header_next(const sl_record *rec, size_t *pos, sl_record_header *hdr);

/* Zig-zag varint decoders used by the iterator (exposed for tests and the broker). */
int sl_varint_read(const uint8_t **p, const uint8_t *end, int32_t *out);
int sl_varlong_read(const uint8_t **p, const uint8_t *end, int64_t *out);
/* Encoders: bytes written (at most 5 / 10), 0 when cap is too small. */
size_t sl_varint_write(uint8_t *p, size_t cap, int32_t v);
size_t sl_varlong_write(uint8_t *p, size_t cap, int64_t v);

/* One record to encode; key/value NULL = null; headers are raw encoded entries. */
typedef struct sl_record_in {
    int64_t timestamp;
    const void *key;
    int32_t key_len;
    const void *value;
    int32_t value_len;
    int32_t headers_count;
    const uint8_t *headers;
    size_t headers_len;
} sl_record_in;

/*
 * Encodes an uncompressed batch of n >= 1 records (offset deltas 0..n-1).
 * From h it takes BaseOffset, PartitionLeaderEpoch, Attributes (compression
 * bits must be 0), ProducerId, ProducerEpoch, BaseSequence; it computes
 * the rest (BaseTimestamp = first record's, MaxTimestamp, LastOffsetDelta,
 * RecordsCount, BatchLength, Crc). Returns the batch size, 0 if cap is too
 * small. Used for control batches (transaction markers) and by tests.
 */
size_t sl_batch_encode(uint8_t *out, size_t cap, const sl_batch_header *h, const sl_record_in *recs, int n);

#endif
