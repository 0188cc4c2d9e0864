/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of Kafka record batches v2.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (checked once at
 * first use), else a slicing-by-8 table. See docs/DEPENDENCIES.md for why
 * this is ours.
 */
#ifndef SL_COMMON_CRC32C_H
#define SL_COMMON_CRC32C_H

#include "common/base.h"

/* crc of data, continuing from a previous crc (start with 0). */
uint32_t sl_crc32c(uint32_t crc, const void *data, size_t len);

#endif
