/*
 * log_test_util.h - helpers shared by the storage log tests: build batches,
 * append them, read slices back into memory, poke at segment files.
 * Header-only (static functions) because each test file is its own program.
 */
#ifndef SL_LOG_TEST_UTIL_H
#define SL_LOG_TEST_UTIL_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test.h"
#include "storage/log.h"
#include "common/error.h"

#define TU_BATCH_MAX 65536

/* A batch of nrec records, value bytes = tag, record timestamps ts, ts+1, ... */
static SL_UNUSED size_t tu_batch(uint8_t *out, size_t cap, int nrec, int vlen, int64_t ts, uint8_t tag)
{
    static uint8_t value[8192];
    sl_record_in recs[256];
    SL_CHECK(nrec >= 1 && nrec <= 256 && vlen >= 0 && vlen <= (int)sizeof value);
    memset(value, tag, (size_t)vlen);
    for (int i = 0; i < nrec; i++) recs[i] = (sl_record_in){ts + i, "key", 3, value, vlen, 0, NULL, 0};
    sl_batch_header h = {.PartitionLeaderEpoch = -1, .ProducerId = -1, .ProducerEpoch = -1, .BaseSequence = -1};
    size_t n = sl_batch_encode(out, cap, &h, recs, nrec);
    SL_CHECK(n > 0);
    return n;
}

/* Appends one batch; returns its base offset, or the SL_E code. The batch
 * bytes as written (patched) are copied to `copy` when not NULL. */
static SL_UNUSED int64_t tu_append_rc(sl_log *log, int nrec, int vlen, int64_t ts, uint8_t tag, uint8_t *copy,
                                      size_t *len_out)
{
    uint8_t buf[TU_BATCH_MAX];
    size_t n = tu_batch(buf, sizeof buf, nrec, vlen, ts, tag);
    sl_batches_info info;
    SL_CHECK_INT(sl_batches_validate(buf, n, 1 << 20, &info), SL_BATCH_OK);
    int64_t base = -1;
    int rc = sl_log_append(log, buf, n, &info, &base);
    if (copy) memcpy(copy, buf, n);
    if (len_out) *len_out = n;
    return rc ? rc : base;
}

static SL_UNUSED int64_t tu_append(sl_log *log, int nrec, int vlen, int64_t ts)
{
    int64_t base = tu_append_rc(log, nrec, vlen, ts, (uint8_t)nrec, NULL, NULL);
    SL_CHECK(base >= 0);
    return base;
}

/* Reads a slice into buf (cap bytes); returns its length or the SL_E code. */
static SL_UNUSED int64_t tu_read(sl_log *log, int64_t offset, int64_t max_bytes, uint8_t *buf, size_t cap)
{
    sl_log_slice s;
    int rc = sl_log_read(log, offset, max_bytes, &s);
    if (rc) return rc;
    if (s.len == 0) return 0;
    SL_CHECK(s.len <= (int64_t)cap);
    SL_CHECK_INT(pread(s.fd, buf, (size_t)s.len, s.file_off), s.len);
    sl_log_slice_release(s.ref);
    return s.len;
}

/* Reads [start, HW) slice by slice into buf; returns the byte count. */
static SL_UNUSED int64_t tu_read_all(sl_log *log, uint8_t *buf, size_t cap)
{
    int64_t off = sl_log_start_offset(log), total = 0;
    while (off < sl_log_high_watermark(log)) {
        int64_t n = tu_read(log, off, 1 << 20, buf + total, cap - (size_t)total);
        SL_CHECK(n > 0);
        size_t p = 0;
        sl_batch_header h = {0};
        while (p < (size_t)n) {
            SL_CHECK_OK(sl_batch_header_parse(buf + total + p, (size_t)n - p, &h));
            p += (size_t)sl_batch_size(buf + total + p);
        }
        SL_CHECK_INT(p, n);
        off = h.BaseOffset + h.LastOffsetDelta + 1;
        total += n;
    }
    return total;
}

/* Sync job done in place; returns finish's rc argument. */
static SL_UNUSED int tu_sync(sl_log *log)
{
    sl_log_sync_job *job = sl_log_sync_prepare(log);
    if (!job) return 0;
    int rc = sl_log_sync_run(job);
    sl_log_sync_finish(log, job, rc);
    return rc;
}

/* <tmpdir>/<name> */
static SL_UNUSED const char *tu_path(const char *name)
{
    static char buf[4][512];
    static int which;
    which = (which + 1) % 4;
    snprintf(buf[which], sizeof buf[which], "%s/%s", sl_test_tmpdir(), name);
    return buf[which];
}

static SL_UNUSED const char *tu_seg_path(const char *dir, int64_t base, const char *ext)
{
    static char buf[2][512];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s/%020lld%s", dir, (long long)base, ext);
    return buf[which];
}

static SL_UNUSED int64_t tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Counts "<20 digits><ext>" files in dir. */
static SL_UNUSED int tu_count_files(const char *dir, const char *ext)
{
    DIR *d = opendir(dir);
    SL_CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    size_t elen = strlen(ext);
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len == 20 + elen && strcmp(e->d_name + 20, ext) == 0) n++;
    }
    closedir(d);
    return n;
}

/* XORs one byte of a file at off. */
static SL_UNUSED void tu_flip(const char *path, int64_t off)
{
    int fd = open(path, O_RDWR);
    SL_CHECK(fd >= 0);
    uint8_t b;
    SL_CHECK_INT(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    SL_CHECK_INT(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static SL_UNUSED void tu_truncate(const char *path, int64_t len)
{
    SL_CHECK_OK(truncate(path, len));
}

static SL_UNUSED void tu_append_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    SL_CHECK(fd >= 0);
    SL_CHECK_INT(write(fd, p, n), n);
    close(fd);
}

static SL_UNUSED sl_log_config tu_config(void)
{
    sl_log_config cfg;
    sl_log_config_default(&cfg);
    cfg.hw_on_append = true;
    return cfg;
}

#endif
