/*
 * test_main.c - runs one registered case (argv[1]) or, with no argument,
 * every case in turn; ctest runs one case per process.
 */
#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ftw.h>
#include "test.h"

#define SL_TEST_MAX 512

static struct {
    const char *name;
    sl_test_fn fn;
} tests[SL_TEST_MAX];
static int ntests;
static char tmpdir[256];

void sl_test_register(const char *name, sl_test_fn fn)
{
    if (ntests == SL_TEST_MAX) {
        fprintf(stderr, "too many test cases (max %d)\n", SL_TEST_MAX);
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

const char *sl_test_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/sltest.XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return tmpdir;
}

void sl_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (tmpdir[0]) fprintf(stderr, "(files kept in %s)\n", tmpdir);
    exit(1);
}

static int run(int i)
{
    tests[i].fn();
    if (tmpdir[0]) {
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        tmpdir[0] = 0;
    }
    printf("ok %s\n", tests[i].name);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ntests; i++) printf("%s\n", tests[i].name);
        return 0;
    }
    for (int i = 0; i < ntests; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;
        run(i);
        if (argc > 1) return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "no test case named %s\n", argv[1]);
        return 2;
    }
    return 0;
}
