/*
 * alloc.h - the only place that calls malloc(3) and friends.
 *
 * Allocation failure aborts with a message (as Redis and SQLite's default
 * do): memory use is bounded by design (every buffer and queue has a
 * maximum), so running out is a configuration bug, not an operating error
 * to recover from mid-request.
 */
#ifndef SL_COMMON_ALLOC_H
#define SL_COMMON_ALLOC_H

#include <stddef.h>

void *sl_malloc(size_t size);
void *sl_calloc(size_t n, size_t size);
void *sl_realloc(void *ptr, size_t size);
void sl_free(void *ptr);
char *sl_strdup(const char *s);
char *sl_strndup(const char *s, size_t n);
/* Formatted string in freshly allocated memory (caller frees). */
char *sl_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define SL_NEW(type) ((type *)sl_calloc(1, sizeof(type)))

#endif
