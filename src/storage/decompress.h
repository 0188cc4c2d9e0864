/*
 * decompress.h - turns a compressed record batch v2 into the same batch
 * uncompressed (header copied, compression bits cleared, records inflated),
 * so sl_batch_iter can walk its records.
 *
 * The broker never decompresses on the produce or fetch path: batches are
 * stored and served as sent. Only the rare reads that must see individual
 * records of a compressed batch use this (ListOffsets by timestamp, which
 * Kafka answers with the exact record's offset).
 */
#ifndef SL_STORAGE_DECOMPRESS_H
#define SL_STORAGE_DECOMPRESS_H

#include "common/base.h"

enum { SL_CODEC_NONE = 0, SL_CODEC_GZIP = 1, SL_CODEC_SNAPPY = 2, SL_CODEC_LZ4 = 3, SL_CODEC_ZSTD = 4 };

/*
 * batch/len: one whole batch. On success *out (sl_malloc'ed, caller frees)
 * holds the uncompressed batch of *out_len bytes, at most out_max. Returns
 * SL_ECORRUPT for data the codec rejects, SL_ETOOBIG past out_max,
 * SL_EINVAL for an unknown codec or a batch that is not compressed.
 */
int sl_batch_decompress(const uint8_t *batch, size_t len, size_t out_max, uint8_t **out, size_t *out_len);

/* The records part alone (after the 61-byte header): in -> sl_buf-like growth up to out_max. */
int sl_decompress(int codec, const uint8_t *in, size_t in_len, size_t out_max, uint8_t **out, size_t *out_len);

#endif
