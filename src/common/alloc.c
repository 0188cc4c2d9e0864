/*
 * alloc.c - the allocator wrapper: the only calls to malloc(3) in Sluice.
 * Failure aborts (see alloc.h for why).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"
#include "common/base.h"

static void *check(void *p, size_t size)
{
    if (SL_UNLIKELY(!p && size))
        sl_panic(__FILE__, __LINE__, "out of memory allocating %zu bytes", size);
    return p;
}

void *sl_malloc(size_t size) { return check(malloc(size ? size : 1), size); }
void *sl_calloc(size_t n, size_t size) { return check(calloc(n ? n : 1, size ? size : 1), n * size); }
void *sl_realloc(void *ptr, size_t size) { return check(realloc(ptr, size ? size : 1), size); }
void sl_free(void *ptr) { free(ptr); }

char *sl_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = sl_malloc(len + 1);
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

char *sl_strdup(const char *s) { return sl_strndup(s, strlen(s)); }

char *sl_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SL_ASSERT(n >= 0);
    char *s = sl_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}
