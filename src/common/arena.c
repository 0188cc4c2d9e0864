/*
 * arena.c - bump allocation from a list of chunks; reset keeps the first
 * chunk so steady-state request decoding allocates nothing.
 */
#include <string.h>
#include "common/arena.h"
#include "common/alloc.h"

#define SL_ARENA_CHUNK 16384

struct sl_arena_chunk {
    sl_arena_chunk *next;
    size_t size;
    size_t used;
    max_align_t data[];
};

void sl_arena_init(sl_arena *arena, size_t max)
{
    arena->head = NULL;
    arena->used = 0;
    arena->max = max;
}

static void free_chunks(sl_arena_chunk *c)
{
    while (c) {
        sl_arena_chunk *next = c->next;
        sl_free(c);
        c = next;
    }
}

void sl_arena_deinit(sl_arena *arena)
{
    free_chunks(arena->head);
    arena->head = NULL;
    arena->used = 0;
}

void *sl_arena_alloc(sl_arena *arena, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    if (size > arena->max || arena->used > arena->max - size) return NULL;
    sl_arena_chunk *c = arena->head;
    if (!c || c->size - c->used < size) {
        size_t csize = SL_MAX((size_t)SL_ARENA_CHUNK, size);
        c = sl_malloc(sizeof *c + csize);
        c->size = csize;
        c->used = 0;
        c->next = arena->head;
        arena->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += size;
    arena->used += size;
    SL_ASSERT(c->used <= c->size);
    memset(p, 0, size);
    return p;
}

void sl_arena_reset(sl_arena *arena)
{
    sl_arena_chunk *c = arena->head;
    if (!c) return;
    /* Keep the oldest chunk (the tail of the list): it is the steady-state one. */
    sl_arena_chunk *keep = c;
    while (keep->next) keep = keep->next;
    while (c != keep) {
        sl_arena_chunk *next = c->next;
        sl_free(c);
        c = next;
    }
    keep->used = 0;
    arena->head = keep;
    arena->used = 0;
}
