/*
 * internal.c - the internal topics' logs: __consumer_offsets (offsets.c) and
 * __transaction_state (txn.c).
 *
 * Both keep a coordinator's state as records in one partition, written
 * through the same log, group commit and fsync as user data, and rebuilt on
 * start by replaying the partition. This file has what they share:
 *   - the topic, created at first start with infinite retention;
 *   - appends of a batch of records (key/value pairs in an encoding buffer)
 *     that may wait for durability on the partition's produce waits;
 *   - compaction by snapshot: once more than max(compact_bytes, 2 x the last
 *     snapshot) has been appended since the last snapshot, the owner writes
 *     every live record again at the end of the log; when that is durable,
 *     every segment that ends before the snapshot's start (or before any
 *     append still waiting for its sync, or the owner's own bound) is
 *     deleted. A replay of any suffix that starts at or before the snapshot
 *     rebuilds the same state.
 */
#include <stdio.h>
#include <string.h>
#include "broker/broker_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "storage/batch.h"

bool sl__topic_internal(const sl_topic *topic)
{
    return strcmp(topic->name, SL_OFFSETS_TOPIC) == 0 || strcmp(topic->name, SL_TXN_TOPIC) == 0;
}

static int internal_topic(sl_broker *b, const char *name, sl_topic **out)
{
    *out = sl__topic_find(b, name, strlen(name));
    if (*out) return 0;
    sl_topic_config tc;
    sl__topic_config_default(b, &tc);
    char seg[32], msg[256];
    snprintf(seg, sizeof seg, "%lld", (long long)b->cfg.offsets_segment_bytes);
    const char *kv[][2] = {{"retention.ms", "-1"}, {"retention.bytes", "-1"}, {"segment.bytes", seg}};
    for (size_t i = 0; i < SL_ARRAY_LEN(kv); i++) {
        int16_t e = sl__topic_config_set(&tc, kv[i][0], strlen(kv[i][0]), kv[i][1], strlen(kv[i][1]), msg, sizeof msg);
        SL_ASSERT(e == 0);
    }
    int16_t err = sl__topic_create(b, name, strlen(name), 1, &tc, false, msg, sizeof msg);
    if (err) {
        SL_ERROR("broker", "cannot create %s: %s", name, msg);
        return SL_EIO;
    }
    *out = sl__topic_find(b, name, strlen(name));
    return 0;
}

int sl__ilog_open(sl_broker *b, const char *name, sl_ilog *l)
{
    memset(l, 0, sizeof *l);
    l->broker = b;
    l->name = name;
    l->snapshot_end = -1;
    sl_buf_init(&l->scratch, SL_LOG_APPEND_BYTES_MAX);
    sl_topic *t;
    int rc = internal_topic(b, name, &t);
    if (rc) return rc;
    l->p = t->partitions[0];
    l->bytes_since_snapshot = sl_log_size_bytes(l->p->log);
    return 0;
}

void sl__ilog_close(sl_ilog *l) { sl_buf_deinit(&l->scratch); }

static bool wait_for_sync(const sl_ilog *l) { return l->broker->cfg.flush_mode == SL_FLUSH_ALWAYS; }

/* Encodes the records as one uncompressed batch in l->scratch: its length, 0 if it cannot. */
static size_t encode(sl_ilog *l, const sl_batch_header *h, const sl_buf *kv, const sl_irec *recs, int n)
{
    sl_record_in *ins = sl_calloc((size_t)n, sizeof *ins);
    size_t cap = SL_BATCH_HEADER_SIZE;
    int64_t now = sl_wall_ms(l->broker->cfg.clock);
    for (int i = 0; i < n; i++) {
        ins[i].timestamp = now;
        ins[i].key = kv->data + recs[i].key_at;
        ins[i].key_len = (int32_t)recs[i].key_len;
        ins[i].value = recs[i].val_len >= 0 ? kv->data + recs[i].val_at : NULL;
        ins[i].value_len = recs[i].val_len;
        cap += 40 + recs[i].key_len + (size_t)SL_MAX(recs[i].val_len, 0);
    }
    sl_buf_reset(&l->scratch);
    size_t len = sl_buf_reserve(&l->scratch, cap) == 0 ? sl_batch_encode(l->scratch.data, cap, h, ins, n) : 0;
    sl_free(ins);
    return len;
}

int16_t sl__ilog_append(sl_ilog *l, const sl_batch_header *h, const sl_buf *kv, const sl_irec *recs, int n,
                        sl_produce_wait *w, bool *waiting, int64_t *base)
{
    SL_ASSERT(n > 0);
    *waiting = false;
    sl_batch_header plain = {.ProducerId = -1, .ProducerEpoch = -1, .BaseSequence = -1};
    size_t len = encode(l, h ? h : &plain, kv, recs, n);
    if (len == 0) return SL_KERR_MESSAGE_TOO_LARGE;
    sl_batches_info info;
    if (sl_batches_validate(l->scratch.data, len, INT32_MAX, &info) != SL_BATCH_OK) return SL_KERR_CORRUPT_MESSAGE;
    int64_t at;
    if (sl_log_append(l->p->log, l->scratch.data, len, &info, &at) != 0) {
        SL_WARN("broker", "append to %s failed; answering COORDINATOR_NOT_AVAILABLE", l->name);
        return SL_KERR_COORDINATOR_NOT_AVAILABLE;
    }
    if (base) *base = at;
    l->bytes_since_snapshot += (int64_t)len;
    sl__flusher_dirty(l->broker->flusher, l->p);
    if (!wait_for_sync(l)) {
        sl__partition_hw_advanced(l->p);
    } else if (w) {
        w->offset_needed = sl_log_end_offset(l->p->log);
        sl_link_insert_tail(&l->p->produce_waits, &w->link);
        *waiting = true;
    }
    return 0;
}

typedef struct req_wait {
    sl_produce_wait w;
    sl_ilog_done_fn done;
    void *arg;
} req_wait;

static void req_wait_complete(sl_produce_wait *w, int16_t err)
{
    req_wait *rw = (req_wait *)w;
    sl_request *req = w->req;
    rw->done(req, rw->arg, err ? SL_KERR_COORDINATOR_NOT_AVAILABLE : 0);
    req->conn->nwaiting_durable--;
    sl__conn_pump_later(req->conn);
}

int16_t sl__ilog_append_for(sl_ilog *l, sl_request *req, const sl_batch_header *h, const sl_buf *kv,
                            const sl_irec *recs, int n, sl_ilog_done_fn done, void *arg)
{
    req_wait *rw = sl_arena_alloc(&req->arena, sizeof *rw);
    if (!rw) {
        done(req, arg, SL_KERR_COORDINATOR_NOT_AVAILABLE);
        return SL_KERR_COORDINATOR_NOT_AVAILABLE;
    }
    rw->w.req = req;
    rw->w.complete = req_wait_complete;
    rw->done = done;
    rw->arg = arg;
    bool waiting;
    int16_t err = sl__ilog_append(l, h, kv, recs, n, &rw->w, &waiting, NULL);
    if (!waiting) {
        done(req, arg, err);
        return err;
    }
    req->state = SL_REQ_WAITING;
    req->hstate = NULL;
    req->conn->nwaiting_durable++;
    return 0;
}

int16_t sl__ilog_marker(sl_ilog *l, int64_t pid, int16_t epoch, bool commit, sl_produce_wait *w, bool *waiting)
{
    *waiting = false;
    int64_t at;
    int16_t err = sl__partition_write_marker(l->broker, l->p, pid, epoch, commit, &at);
    if (err) return err;
    l->bytes_since_snapshot += SL_BATCH_HEADER_SIZE + 16;
    if (wait_for_sync(l) && w) {
        w->offset_needed = at + 1;
        sl_link_insert_tail(&l->p->produce_waits, &w->link);
        *waiting = true;
    }
    return 0;
}

bool sl__ilog_expiry_due(sl_ilog *l, int64_t retention_ms)
{
    int64_t now = sl_mono_ns(l->broker->cfg.clock);
    int64_t every_ns = SL_MIN((int64_t)60000, retention_ms / 4) * 1000000;
    if (now - l->expired_ns < every_ns) return false;
    l->expired_ns = now;
    return true;
}

int64_t sl__ilog_durable_end(const sl_ilog *l)
{
    sl_log *log = l->p->log;
    return wait_for_sync(l) ? sl_log_durable_offset(log) : sl_log_high_watermark(log);
}

void sl__ilog_maintain(sl_ilog *l, int64_t keep_from, sl_ilog_snapshot_fn snapshot, void *arg)
{
    if (l->snapshot_end >= 0 && sl__ilog_durable_end(l) >= l->snapshot_end) {
        int n = sl_log_delete_before(l->p->log, SL_MIN(l->snapshot_drop_before, keep_from));
        if (n >= 0) l->snapshot_end = -1;
    }
    int64_t due = SL_MAX(l->broker->cfg.offsets_compact_bytes, 2 * l->snapshot_bytes);
    if (l->snapshot_end >= 0 || l->bytes_since_snapshot <= due) return;
    sl_log *log = l->p->log;
    int64_t start = sl_log_end_offset(log), bytes = 0, count = 0;
    /* Appends still waiting for their sync lie at or after the durable point; keep them. So is what the
       owner says the snapshot does not cover (offsets of open transactions, which their marker settles
       after it): fixed now, since that marker comes after the snapshot. */
    int64_t drop_before = SL_MIN(SL_MIN(start, sl__ilog_durable_end(l)), keep_from);
    int16_t err = snapshot(arg, &bytes, &count);
    if (err) {
        SL_WARN("broker", "%s: snapshot failed (error %d); will retry", l->name, err);
        return;
    }
    l->snapshot_drop_before = drop_before;
    l->snapshot_end = sl_log_end_offset(log);
    l->snapshot_bytes = bytes;
    l->bytes_since_snapshot = 0;
    SL_INFO("broker", "%s: snapshot of %lld item(s), %lld bytes at offsets %lld-%lld", l->name, (long long)count,
            (long long)bytes, (long long)start, (long long)l->snapshot_end);
}
