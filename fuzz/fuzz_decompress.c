/*
 * fuzz_decompress.c - the four batch codecs on arbitrary bytes: the first
 * byte picks the codec, the rest is the compressed input; output is capped
 * at 1 MiB. Must never crash, leak or read out of bounds; a successful
 * decode must respect the cap.
 */
#include <stdint.h>
#include <stddef.h>
#include "common/alloc.h"
#include "storage/decompress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int codec = 1 + data[0] % 4;
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (sl_decompress(codec, data + 1, size - 1, 1 << 20, &out, &out_len) == 0) {
        if (out_len > (1 << 20)) __builtin_trap();
        sl_free(out);
    }
    return 0;
}
