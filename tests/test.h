/*
 * test.h - the unit-test harness: a file holds many SL_TEST cases, each run
 * as its own ctest test in its own process (`test_x <case>`), discovered by
 * tests/CMakeLists.txt from the SL_TEST( lines. Checks stop the case at the
 * first failure with file, line and the values involved.
 */
#ifndef SL_TEST_H
#define SL_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <inttypes.h>

typedef void (*sl_test_fn)(void);
void sl_test_register(const char *name, sl_test_fn fn);
/* A fresh empty directory for this case, removed when the case passes. */
const char *sl_test_tmpdir(void);
void sl_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

#define SL_TEST(name)                                                          \
    static void name(void);                                                    \
    __attribute__((constructor)) static void sl_test_reg_##name(void)          \
    {                                                                          \
        sl_test_register(#name, name);                                         \
    }                                                                          \
    static void name(void)

#define SL_CHECK(c)                                                            \
    do {                                                                       \
        if (!(c)) sl_test_fail(__FILE__, __LINE__, "check failed: %s", #c);    \
    } while (0)

#define SL_CHECK_INT(a, b)                                                     \
    do {                                                                       \
        long long sl_a_ = (long long)(a), sl_b_ = (long long)(b);              \
        if (sl_a_ != sl_b_)                                                    \
            sl_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, \
                         sl_a_, sl_b_);                                        \
    } while (0)

#define SL_CHECK_OK(e) SL_CHECK_INT((e), 0)

#define SL_CHECK_MEM(a, b, n)                                                  \
    do {                                                                       \
        if (memcmp((a), (b), (n)) != 0)                                        \
            sl_test_fail(__FILE__, __LINE__, "memory differs: %s vs %s (%zu bytes)", \
                         #a, #b, (size_t)(n));                                 \
    } while (0)

#define SL_CHECK_STR(a, b)                                                     \
    do {                                                                       \
        const char *sl_a_ = (a), *sl_b_ = (b);                                 \
        if (strcmp(sl_a_, sl_b_) != 0)                                         \
            sl_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, \
                         #b, sl_a_, sl_b_);                                    \
    } while (0)

#endif
