/*
 * arena.h - a bump allocator with a maximum, freed all at once.
 *
 * Decoding one request allocates its arrays here; the arena is reset when
 * the response is built, so a request never leaks and a hostile array count
 * cannot allocate more than the arena's maximum (sl_arena_alloc -> NULL).
 */
#ifndef SL_COMMON_ARENA_H
#define SL_COMMON_ARENA_H

#include "common/base.h"

typedef struct sl_arena_chunk sl_arena_chunk;
typedef struct sl_arena {
    sl_arena_chunk *head;
    size_t used;  /* bytes handed out since the last reset */
    size_t max;   /* bound on `used` */
} sl_arena;

void sl_arena_init(sl_arena *arena, size_t max);
void sl_arena_deinit(sl_arena *arena);
/* Zeroed, 8-byte aligned memory; NULL when the maximum would be passed. */
void *sl_arena_alloc(sl_arena *arena, size_t size);
void sl_arena_reset(sl_arena *arena);

#endif
