/*
 * test_log_model.c - the log against an in-memory model. Random operations
 * (append, failing append, sync, failing sync, read, time lookup,
 * retention, clean reopen, crash + reopen) run on both; every read and
 * lookup is compared. The model is a list of the batches appended, their
 * bytes, and the start/durable/HW offsets the log must report.
 */
#include "log_test_util.h"
#include "storage/log_int.h"
#include "common/alloc.h"

#define MAX_BATCHES 4096

typedef struct mbatch {
    int64_t base;
    int nrec;
    int64_t ts0; /* record i has timestamp ts0 + i */
    size_t len;
    uint8_t *bytes;
} mbatch;

typedef struct model {
    mbatch b[MAX_BATCHES];
    int n;           /* batches in the log */
    int64_t durable; /* offset: everything below was synced */
    bool hw_on_append;
    int64_t hw;
    unsigned rng;
    sl_clock clock;
    sl_fileio *io;
    sl_log_config cfg;
    sl_log *log;
    const char *dir;
} model;

static unsigned rnd(model *m, unsigned n)
{
    m->rng = m->rng * 1103515245u + 12345u;
    return (m->rng >> 8) % n;
}

static int64_t m_end(const model *m)
{
    return m->n ? m->b[m->n - 1].base + m->b[m->n - 1].nrec : m->durable;
}

static int m_find(const model *m, int64_t offset)
{
    for (int i = 0; i < m->n; i++)
        if (offset >= m->b[i].base && offset < m->b[i].base + m->b[i].nrec) return i;
    return -1;
}

static void m_truncate(model *m, int64_t end)
{
    while (m->n > 0 && m->b[m->n - 1].base >= end) sl_free(m->b[--m->n].bytes);
    SL_CHECK_INT(m_end(m), end);
}

static void check_offsets(model *m)
{
    SL_CHECK_INT(sl_log_end_offset(m->log), m_end(m));
    SL_CHECK_INT(sl_log_durable_offset(m->log) >= m->durable || sl_log_start_offset(m->log) > m->durable, 1);
    SL_CHECK_INT(sl_log_high_watermark(m->log), m->hw);
    SL_CHECK(sl_log_start_offset(m->log) <= m->hw);
}

static void op_append(model *m, bool fail)
{
    uint8_t blob[3 * TU_BATCH_MAX];
    size_t len = 0;
    int nb = 1 + (int)rnd(m, 3);
    int first = m->n;
    int64_t base = m_end(m), now = sl_wall_ms(&m->clock);
    SL_CHECK(m->n + nb < MAX_BATCHES);
    for (int i = 0; i < nb; i++) {
        mbatch *b = &m->b[m->n + i];
        b->nrec = 1 + (int)rnd(m, 5);
        b->ts0 = now - (rnd(m, 4) == 0 ? (int64_t)rnd(m, 5000) : 0);
        b->len = tu_batch(blob + len, sizeof blob - len, b->nrec, (int)rnd(m, 300), b->ts0, (uint8_t)rnd(m, 256));
        b->base = base;
        base += b->nrec;
        len += b->len;
    }
    sl_batches_info info;
    SL_CHECK_INT(sl_batches_validate(blob, len, 1 << 20, &info), SL_BATCH_OK);
    if (fail) {
        sl_fileio_fault_cfg fc = {
            .enospc_after = -1, .record_unsynced = true, .fail_write_nth = sl_fileio_fault_writes(m->io) + 1};
        sl_fileio_fault_set(m->io, &fc);
    }
    int64_t got = -1;
    int rc = sl_log_append(m->log, blob, len, &info, &got);
    if (fail) {
        sl_fileio_fault_cfg fc = {.enospc_after = -1, .record_unsynced = true};
        sl_fileio_fault_set(m->io, &fc);
        /* The injected failure may have hit a roll's or pre-allocation's write instead. */
        if (rc == 0)
            fail = false;
        else
            SL_CHECK_INT(rc, SL_EIO);
    }
    if (fail) return;
    SL_CHECK_OK(rc);
    SL_CHECK_INT(got, m->b[first].base);
    for (size_t p = 0; first < m->n + nb; first++) {
        mbatch *b = &m->b[first];
        b->bytes = sl_malloc(b->len);
        memcpy(b->bytes, blob + p, b->len); /* patched in place by the append */
        p += b->len;
    }
    m->n += nb;
    if (m->hw_on_append) m->hw = m_end(m);
}

static void op_sync(model *m, bool fail)
{
    sl_log_sync_job *job = sl_log_sync_prepare(m->log);
    if (!job) {
        SL_CHECK_INT(m->durable, m_end(m));
        return;
    }
    SL_CHECK_INT(sl_log_sync_job_end_offset(job), m_end(m));
    int rc = fail ? SL_EIO : sl_log_sync_run(job);
    SL_CHECK_OK(fail ? 0 : rc);
    sl_log_sync_finish(m->log, job, rc);
    if (rc == 0) {
        m->durable = m_end(m);
        if (!m->hw_on_append) m->hw = m->durable;
        return;
    }
    int64_t keep = SL_MAX(m->durable, sl_log_start_offset(m->log));
    m_truncate(m, keep);
    m->durable = keep;
    m->hw = m->hw_on_append ? keep : SL_MIN(m->hw, keep);
}

static bool segment_starts_at(model *m, int64_t base)
{
    return tu_file_size(tu_seg_path(m->dir, base, ".log")) >= 0;
}

static void op_read(model *m)
{
    int64_t start = sl_log_start_offset(m->log);
    int64_t offset = start - 2 + (int64_t)rnd(m, (unsigned)(m->hw - start + 5));
    int64_t max_bytes = (int64_t)rnd(m, 4000) - 10;
    static uint8_t buf[1 << 20];
    int64_t n = tu_read(m->log, offset, max_bytes, buf, sizeof buf);
    if (offset < start || offset > m->hw) {
        SL_CHECK_INT(n, SL_ERANGE);
        return;
    }
    if (offset == m->hw) {
        SL_CHECK_INT(n, 0);
        return;
    }
    int i = m_find(m, offset);
    SL_CHECK(i >= 0 && n > 0);
    int64_t pos = 0;
    for (; pos < n; i++) {
        SL_CHECK(i < m->n && m->b[i].base + m->b[i].nrec <= m->hw);
        SL_CHECK_MEM(buf + pos, m->b[i].bytes, m->b[i].len);
        pos += (int64_t)m->b[i].len;
    }
    SL_CHECK_INT(pos, n);
    /* Why it stopped: HW, max_bytes (after the first batch), or a segment end. */
    bool at_hw = i == m->n || m->b[i].base >= m->hw;
    bool full = !at_hw && n + (int64_t)m->b[i].len > max_bytes;
    SL_CHECK(at_hw || full || segment_starts_at(m, m->b[i].base));
    SL_CHECK(n <= max_bytes || n == (int64_t)m->b[m_find(m, offset)].len);
}

static void op_time(model *m)
{
    int64_t now = sl_wall_ms(&m->clock);
    int64_t ts = now - (int64_t)rnd(m, 20000);
    int64_t off, got_ts, want = -1, want_ts = -1;
    SL_CHECK_OK(sl_log_offset_for_time(m->log, ts, &off, &got_ts));
    int64_t start = sl_log_start_offset(m->log);
    for (int i = 0; i < m->n; i++) {
        const mbatch *b = &m->b[i];
        if (b->base < start || b->ts0 + b->nrec - 1 < ts) continue;
        if (b->base + b->nrec <= m->hw) {
            int64_t k = ts > b->ts0 ? ts - b->ts0 : 0;
            want = b->base + k;
            want_ts = b->ts0 + k;
        }
        break;
    }
    SL_CHECK_INT(off, want);
    SL_CHECK_INT(got_ts, want_ts);
}

static void op_retention(model *m)
{
    int64_t before = sl_log_start_offset(m->log);
    SL_CHECK(sl_log_enforce_retention(m->log) >= 0);
    int64_t start = sl_log_start_offset(m->log);
    SL_CHECK(start >= before && start <= m->hw);
    SL_CHECK(start == m_end(m) || m->b[m_find(m, start)].base == start);
    if (m->durable < start) m->durable = start;
}

static void reopen(model *m, bool crash)
{
    if (crash) {
        sl_fileio_fault_crash(m->io, 0);
        sl__log_free_abandoned(m->log);
        m_truncate(m, SL_MAX(m->durable, m->n ? m->b[0].base : m->durable));
    } else {
        sl_log_close(m->log);
    }
    int64_t start = SL_MIN(m_end(m), m->n ? m->b[0].base : m_end(m));
    SL_CHECK_OK(sl_log_open(m->dir, &m->cfg, m->io, &m->clock, &m->log));
    m->durable = m->hw = m_end(m);
    SL_CHECK(sl_log_start_offset(m->log) >= start);
}

static void run_model(unsigned seed)
{
    static model mm;
    model *m = &mm;
    memset(m, 0, sizeof *m);
    m->rng = seed;
    sl_clock_sim_init(&m->clock, 1700000000000);
    sl_fileio_fault_cfg fc = {.enospc_after = -1, .record_unsynced = true};
    m->io = sl_fileio_fault_new(&fc);
    m->cfg = tu_config();
    m->cfg.hw_on_append = rnd(m, 2);
    m->cfg.segment_bytes = 600 + rnd(m, 3000);
    m->cfg.index_interval_bytes = (int32_t)rnd(m, 600);
    m->cfg.preallocate_bytes = rnd(m, 2) ? 2048 : 0;
    m->cfg.retention_bytes = rnd(m, 2) ? 8000 : -1;
    m->cfg.retention_ms = rnd(m, 2) ? 60000 : -1;
    m->hw_on_append = m->cfg.hw_on_append;
    char name[32];
    snprintf(name, sizeof name, "m-%u", seed);
    m->dir = tu_path(name);
    SL_CHECK_OK(sl_log_open(m->dir, &m->cfg, m->io, &m->clock, &m->log));
    for (int step = 0; step < 400; step++) {
        sl_clock_sim_advance(&m->clock, (int64_t)rnd(m, 2000) * 1000000);
        unsigned r = rnd(m, 100);
        if (r < 35)
            op_append(m, false);
        else if (r < 37)
            op_append(m, true);
        else if (r < 50)
            op_sync(m, false);
        else if (r < 52)
            op_sync(m, true);
        else if (r < 80)
            op_read(m);
        else if (r < 88)
            op_time(m);
        else if (r < 95)
            op_retention(m);
        else if (r < 97)
            reopen(m, false);
        else
            reopen(m, true);
        check_offsets(m);
    }
    sl_log_close(m->log);
    while (m->n > 0) sl_free(m->b[--m->n].bytes);
    sl_fileio_fault_free(m->io);
}

SL_TEST(model_random_ops)
{
    for (unsigned seed = 1; seed <= 12; seed++) run_model(seed);
}
