/*
 * producers.c - idempotent producers: producer ids, and per partition the
 * state that turns a retried batch into its first answer, and the
 * partition's side of transactions.
 *
 * Producer ids (for idempotent and transactional producers alike, h_txn.c)
 * come in blocks of SL_PID_BLOCK: DATA/__sluice/producer-ids
 * holds the first id not yet handed out, advanced (written, fsynced) one
 * block ahead, so an id is never given twice, restarts included.
 *
 * Per partition, per producer id (Kafka's ProducerStateManager, in short):
 *   epoch, the last sequence, and the last SL_PRODUCER_BATCHES batches
 *   (first and last sequence, first and last offset).
 * A batch with a producer id (one batch per partition, as Kafka requires):
 *   epoch older than the known one        INVALID_PRODUCER_EPOCH
 *   epoch newer                           must start at sequence 0 (OUT_OF_ORDER_SEQUENCE_NUMBER)
 *   same sequences as a cached batch      a duplicate: answered with that batch's offsets once they
 *                                         are durable, not appended again
 *   first sequence != last + 1            OUT_OF_ORDER_SEQUENCE_NUMBER
 *   unknown producer, sequence != 0       UNKNOWN_PRODUCER_ID (librdkafka bumps its epoch)
 * The state is updated when the batch is appended; a failed sync rewinds the
 * log, and the state is then rebuilt from the log (sl__producers_rebuild).
 *
 * Durability: <partition dir>/producer-state is a snapshot {offset, state}.
 * It is first written (synced) when a partition gets its first idempotent
 * batch, with that batch's offset, again when the log rolls a segment (the
 * one before kept as producer-state.prev) and at a clean close. On open the
 * snapshot is loaded and every batch from its offset on is replayed, so the
 * state after a crash is the state of the log. A partition without the file
 * never had an idempotent batch and costs nothing at start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broker/broker_int.h"
#include "common/alloc.h"
#include "common/crc32c.h"
#include "common/error.h"
#include "common/log.h"
#include "storage/batch.h"

#define SL_PID_BLOCK 1000
#define SL_PSTATE_FILE "producer-state"
#define SL_PSTATE_MAGIC 0x534c5053u /* "SLPS" */

typedef struct sl_pbatch {
    int32_t first_seq, last_seq;
    int64_t first_offset, last_offset;
} sl_pbatch;

typedef struct sl_pentry {
    int64_t pid; /* -1: empty slot */
    int16_t epoch;
    int32_t last_seq;
    int64_t txn_first;  /* first offset of its open transaction here, -1 when none */
    int nbatches, head; /* ring of the last batches; head = next slot to write */
    int64_t last_ms;    /* when it last appended (replayed: its batch's MaxTimestamp): for expiry */
    sl_pbatch batches[SL_PRODUCER_BATCHES];
} sl_pentry;

/* A transaction on this partition, listed until it is closed and its marker is below HW. */
typedef struct sl_ptxn {
    int64_t pid;
    int64_t first;
    int64_t end; /* its marker's offset; -1 while open */
} sl_ptxn;

struct sl_pstate {
    sl_pentry *slots;
    int cap, count;
    sl_ptxn *txns;          /* by first offset; [txns_head, ntxns) are live */
    int txns_head, ntxns, txns_cap;
    sl_aborted_txn *aborted; /* by marker offset */
    int naborted, aborted_cap;
    bool persisted; /* the snapshot file exists */
    int nsegs;      /* the log's segment count at the last snapshot: a roll writes a new one */
};

/* ---- the table ---- */

static uint32_t pid_hash(int64_t pid) { return (uint32_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ull) >> 32); }

static sl_pentry *pfind(sl_pstate *s, int64_t pid)
{
    if (!s || !s->cap) return NULL;
    for (uint32_t i = pid_hash(pid) & (uint32_t)(s->cap - 1);; i = (i + 1) & (uint32_t)(s->cap - 1)) {
        if (s->slots[i].pid == pid) return &s->slots[i];
        if (s->slots[i].pid < 0) return NULL;
    }
}

static sl_pentry *pinsert(sl_pstate *s, int64_t pid);

static void pgrow(sl_pstate *s)
{
    sl_pentry *old = s->slots;
    int oldcap = s->cap;
    s->cap = s->cap ? s->cap * 2 : 16;
    s->slots = sl_malloc(sizeof *s->slots * (size_t)s->cap);
    for (int i = 0; i < s->cap; i++) s->slots[i].pid = -1;
    s->count = 0;
    for (int i = 0; i < oldcap; i++)
        if (old[i].pid >= 0) *pinsert(s, old[i].pid) = old[i];
    sl_free(old);
}

static sl_pentry *pinsert(sl_pstate *s, int64_t pid)
{
    if ((s->count + 1) * 4 > s->cap * 3) pgrow(s);
    uint32_t i = pid_hash(pid) & (uint32_t)(s->cap - 1);
    while (s->slots[i].pid >= 0 && s->slots[i].pid != pid) i = (i + 1) & (uint32_t)(s->cap - 1);
    sl_pentry *e = &s->slots[i];
    if (e->pid < 0) {
        memset(e, 0, sizeof *e);
        e->pid = pid;
        e->epoch = -1;
        e->last_seq = -1;
        e->txn_first = -1;
        s->count++;
    }
    return e;
}

static int32_t seq_add(int32_t seq, int32_t n) { return (int32_t)(((int64_t)seq + n) % ((int64_t)INT32_MAX + 1)); }

/* ---- transactions on the partition ---- */

static void txn_push(sl_pstate *s, int64_t pid, int64_t first, int64_t end)
{
    if (s->txns_head > 0 && s->txns_head == s->ntxns) s->txns_head = s->ntxns = 0;
    if (s->ntxns == s->txns_cap) {
        if (s->txns_head > 0) { /* slide the live part down before growing */
            memmove(s->txns, s->txns + s->txns_head, sizeof *s->txns * (size_t)(s->ntxns - s->txns_head));
            s->ntxns -= s->txns_head;
            s->txns_head = 0;
        }
        if (s->ntxns == s->txns_cap) {
            s->txns_cap = s->txns_cap ? s->txns_cap * 2 : 8;
            s->txns = sl_realloc(s->txns, sizeof *s->txns * (size_t)s->txns_cap);
        }
    }
    s->txns[s->ntxns++] = (sl_ptxn){pid, first, end};
}

static void aborted_push(sl_pstate *s, int64_t pid, int64_t first, int64_t last)
{
    if (s->naborted == s->aborted_cap) {
        s->aborted_cap = s->aborted_cap ? s->aborted_cap * 2 : 8;
        s->aborted = sl_realloc(s->aborted, sizeof *s->aborted * (size_t)s->aborted_cap);
    }
    s->aborted[s->naborted++] = (sl_aborted_txn){pid, first, last};
}

/* A COMMIT or ABORT marker of pid at `offset` (appended, or replayed). */
static void apply_marker(sl_pstate *s, const sl_batch_header *h, bool commit, int64_t offset, int64_t now_ms)
{
    sl_pentry *e = pfind(s, h->ProducerId);
    if (!e) return; /* nothing of this producer here: nothing to close */
    e->last_ms = now_ms;
    if (h->ProducerEpoch > e->epoch) { /* the coordinator bumped the epoch (a fence): sequences restart */
        e->epoch = h->ProducerEpoch;
        e->nbatches = e->head = 0;
        e->last_seq = -1;
    }
    if (e->txn_first < 0) return; /* a marker written again (coordinator restart): already closed */
    for (int i = s->txns_head; i < s->ntxns; i++) {
        if (s->txns[i].pid == e->pid && s->txns[i].end < 0) {
            s->txns[i].end = offset;
            break;
        }
    }
    if (!commit) aborted_push(s, e->pid, e->txn_first, offset);
    e->txn_first = -1;
}

int64_t sl__partition_lso(sl_partition *p)
{
    int64_t hw = sl_log_high_watermark(p->log);
    sl_pstate *s = p->pstate;
    if (!s) return hw;
    while (s->txns_head < s->ntxns && s->txns[s->txns_head].end >= 0 && s->txns[s->txns_head].end < hw)
        s->txns_head++;
    if (s->txns_head == s->ntxns) return hw;
    /* Retention may have deleted an open transaction's first batches: the LSO never falls below the start. */
    return SL_MAX(SL_MIN(s->txns[s->txns_head].first, hw), sl_log_start_offset(p->log));
}

int sl__partition_aborted(sl_partition *p, int64_t from, int64_t to, sl_aborted_txn *out, int max)
{
    sl_pstate *s = p->pstate;
    if (!s || !s->naborted) return 0;
    int lo = 0, hi = s->naborted, n = 0;
    while (lo < hi) { /* the first whose marker is at or after `from` */
        int mid = (lo + hi) / 2;
        if (s->aborted[mid].last < from) lo = mid + 1;
        else hi = mid;
    }
    for (int i = lo; i < s->naborted; i++) {
        if (s->aborted[i].first >= to) continue;
        if (n < max) out[n] = s->aborted[i];
        n++;
    }
    return n;
}

/* Applies an appended batch (also when replaying the log). */
static void apply(sl_pstate *s, const sl_batch_header *h, int64_t now_ms)
{
    sl_pentry *e = pinsert(s, h->ProducerId);
    e->last_ms = now_ms;
    if (e->epoch != h->ProducerEpoch) {
        e->epoch = h->ProducerEpoch;
        e->nbatches = e->head = 0;
    }
    sl_pbatch *b = &e->batches[e->head];
    b->first_seq = h->BaseSequence;
    b->last_seq = seq_add(h->BaseSequence, h->LastOffsetDelta);
    b->first_offset = h->BaseOffset;
    b->last_offset = h->BaseOffset + h->LastOffsetDelta;
    e->head = (e->head + 1) % SL_PRODUCER_BATCHES;
    e->nbatches = SL_MIN(e->nbatches + 1, SL_PRODUCER_BATCHES);
    e->last_seq = b->last_seq;
    if ((h->Attributes & SL_BATCH_ATTR_TRANSACTIONAL) && e->txn_first < 0) {
        e->txn_first = h->BaseOffset;
        txn_push(s, e->pid, h->BaseOffset, -1);
    }
}

int16_t sl__producer_check(sl_partition *p, const sl_batch_header *h, int64_t *dup_first, int64_t *dup_last)
{
    *dup_first = *dup_last = -1;
    if (h->ProducerEpoch < 0 || h->BaseSequence < 0) return SL_KERR_INVALID_RECORD;
    sl_pentry *e = pfind(p->pstate, h->ProducerId);
    if (!e) return h->BaseSequence == 0 ? 0 : SL_KERR_UNKNOWN_PRODUCER_ID;
    if (h->ProducerEpoch < e->epoch) return SL_KERR_INVALID_PRODUCER_EPOCH;
    if (h->ProducerEpoch > e->epoch) return h->BaseSequence == 0 ? 0 : SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
    int32_t last = seq_add(h->BaseSequence, h->LastOffsetDelta);
    for (int i = 0; i < e->nbatches; i++) {
        const sl_pbatch *b = &e->batches[i];
        if (b->first_seq == h->BaseSequence && b->last_seq == last) {
            *dup_first = b->first_offset;
            *dup_last = b->last_offset;
            return 0;
        }
    }
    return h->BaseSequence == seq_add(e->last_seq, 1) ? 0 : SL_KERR_OUT_OF_ORDER_SEQUENCE_NUMBER;
}

/* ---- the snapshot file ---- */

static char *pstate_path(sl_partition *p, bool prev)
{
    return sl_asprintf("%s/%s%s", sl_log_dir(p->log), SL_PSTATE_FILE, prev ? ".prev" : "");
}

/* Snapshot v2 (v1 had no transaction fields):
 *   magic "SLPS", int32 version, int64 offset, int32 count,
 *   count x {int64 pid, int16 epoch, int32 last seq, int64 last ms, int64 txn first (v2),
 *            int8 n, n x {int32 first seq, int32 last seq, int64 first offset, int64 last offset}},
 *   (v2) int32 n, n x {int64 pid, int64 first, int64 end}          the listed transactions
 *   (v2) int32 n, n x {int64 pid, int64 first, int64 last}         the aborted ones
 *   CRC-32C of everything before it. */
#define SL_PSTATE_VERSION 2

static void put_entry(sl_buf *b, const sl_pentry *e)
{
    uint8_t x[8 + 2 + 4 + 8 + 8 + 1];
    sl_put_be64(x, (uint64_t)e->pid);
    sl_put_be16(x + 8, (uint16_t)e->epoch);
    sl_put_be32(x + 10, (uint32_t)e->last_seq);
    sl_put_be64(x + 14, (uint64_t)e->last_ms);
    sl_put_be64(x + 22, (uint64_t)e->txn_first);
    x[30] = (uint8_t)e->nbatches;
    sl_buf_append(b, x, sizeof x);
    for (int i = 0; i < e->nbatches; i++) { /* oldest first */
        const sl_pbatch *pb = &e->batches[(e->head - e->nbatches + i + SL_PRODUCER_BATCHES) % SL_PRODUCER_BATCHES];
        uint8_t y[24];
        sl_put_be32(y, (uint32_t)pb->first_seq);
        sl_put_be32(y + 4, (uint32_t)pb->last_seq);
        sl_put_be64(y + 8, (uint64_t)pb->first_offset);
        sl_put_be64(y + 16, (uint64_t)pb->last_offset);
        sl_buf_append(b, y, sizeof y);
    }
}

static void put_triple(sl_buf *b, int64_t a, int64_t c, int64_t d)
{
    uint8_t x[24];
    sl_put_be64(x, (uint64_t)a);
    sl_put_be64(x + 8, (uint64_t)c);
    sl_put_be64(x + 16, (uint64_t)d);
    sl_buf_append(b, x, sizeof x);
}

static void put_txns(sl_buf *b, const sl_pstate *s)
{
    uint8_t n[4];
    sl_put_be32(n, (uint32_t)(s ? s->ntxns - s->txns_head : 0));
    sl_buf_append(b, n, 4);
    for (int i = s ? s->txns_head : 0; s && i < s->ntxns; i++) put_triple(b, s->txns[i].pid, s->txns[i].first, s->txns[i].end);
    sl_put_be32(n, (uint32_t)(s ? s->naborted : 0));
    sl_buf_append(b, n, 4);
    for (int i = 0; s && i < s->naborted; i++) put_triple(b, s->aborted[i].pid, s->aborted[i].first, s->aborted[i].last);
}

/* Writes {offset, state} to the snapshot file: temp file, fsync, rename, fsync of the directory. With
   keep_prev the one it replaces becomes producer-state.prev: a snapshot taken at a roll may be ahead of
   what a crash leaves durable, and then the one before it is used. */
static int pstate_write(sl_broker *broker, sl_partition *p, int64_t offset, bool keep_prev)
{
    sl_buf b;
    sl_buf_init(&b, SIZE_MAX);
    uint8_t hdr[20];
    sl_put_be32(hdr, SL_PSTATE_MAGIC);
    sl_put_be32(hdr + 4, SL_PSTATE_VERSION);
    sl_put_be64(hdr + 8, (uint64_t)offset);
    sl_put_be32(hdr + 16, (uint32_t)(p->pstate ? p->pstate->count : 0));
    sl_buf_append(&b, hdr, sizeof hdr);
    for (int i = 0; p->pstate && i < p->pstate->cap; i++)
        if (p->pstate->slots[i].pid >= 0) put_entry(&b, &p->pstate->slots[i]);
    put_txns(&b, p->pstate);
    uint8_t crc[4];
    sl_put_be32(crc, sl_crc32c(0, b.data, b.len));
    sl_buf_append(&b, crc, 4);
    char *path = pstate_path(p, false), *tmp = sl_asprintf("%s.tmp", path), *prev = pstate_path(p, true);
    if (keep_prev) broker->cfg.io->rename(broker->cfg.io, path, prev); /* made durable by the write's dir fsync */
    int rc = sl_fileio_write_atomic(broker->cfg.io, path, tmp, b.data, b.len);
    sl_free(prev);
    if (rc) SL_ERROR("producers", "cannot write %s: %s", path, sl_strerror(rc));
    sl_free(path);
    sl_free(tmp);
    sl_buf_deinit(&b);
    return rc;
}

static const uint8_t *load_entries(sl_pstate *s, const uint8_t *p, const uint8_t *end, uint32_t count, int version)
{
    size_t fixed = version >= 2 ? 31 : 23;
    for (uint32_t i = 0; i < count; i++) {
        if ((size_t)(end - p) < fixed) return NULL;
        sl_pentry *e = pinsert(s, (int64_t)sl_be64(p));
        e->epoch = (int16_t)sl_be16(p + 8);
        e->last_seq = (int32_t)sl_be32(p + 10);
        e->last_ms = (int64_t)sl_be64(p + 14);
        e->txn_first = version >= 2 ? (int64_t)sl_be64(p + 22) : -1;
        int nb = p[fixed - 1];
        p += fixed;
        if (nb > SL_PRODUCER_BATCHES || end - p < 24 * nb) return NULL;
        for (int j = 0; j < nb; j++, p += 24)
            e->batches[j] = (sl_pbatch){(int32_t)sl_be32(p), (int32_t)sl_be32(p + 4), (int64_t)sl_be64(p + 8),
                                        (int64_t)sl_be64(p + 16)};
        e->nbatches = nb;
        e->head = nb % SL_PRODUCER_BATCHES;
    }
    return p;
}

static const uint8_t *load_txns(sl_pstate *s, const uint8_t *p, const uint8_t *end, bool aborted)
{
    if (end - p < 4) return NULL;
    uint32_t n = sl_be32(p);
    p += 4;
    if ((uint64_t)(end - p) < (uint64_t)n * 24) return NULL;
    for (uint32_t i = 0; i < n; i++, p += 24) {
        int64_t a = (int64_t)sl_be64(p), b = (int64_t)sl_be64(p + 8), c = (int64_t)sl_be64(p + 16);
        if (aborted) aborted_push(s, a, b, c);
        else txn_push(s, a, b, c);
    }
    return p;
}

/* Reads a snapshot: 0 with *offset and the entries, SL_ENOENT without one, SL_ECORRUPT. */
static int pstate_read(sl_broker *broker, sl_partition *p, bool prev, int64_t *offset)
{
    char *path = pstate_path(p, prev);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sl_fileio_read_all(broker->cfg.io, path, 64 << 20, &data, &len);
    sl_free(path);
    if (rc) return rc;
    rc = SL_ECORRUPT;
    int version = len >= 24 ? (int)sl_be32(data + 4) : 0;
    if (len >= 24 && sl_be32(data) == SL_PSTATE_MAGIC && version >= 1 && version <= SL_PSTATE_VERSION &&
        sl_crc32c(0, data, len - 4) == sl_be32(data + len - 4)) {
        *offset = (int64_t)sl_be64(data + 8);
        const uint8_t *end = data + len - 4;
        const uint8_t *q = load_entries(p->pstate, data + 20, end, sl_be32(data + 16), version);
        if (q && version >= 2) q = load_txns(p->pstate, q, end, false);
        if (q && version >= 2) q = load_txns(p->pstate, q, end, true);
        if (q == end) rc = 0;
    }
    sl_free(data);
    return rc;
}

int sl__marker_type(const uint8_t *batch, size_t len)
{
    sl_batch_header h;
    if (sl_batch_header_parse(batch, len, &h) != 0 || !(h.Attributes & SL_BATCH_ATTR_CONTROL)) return -1;
    sl_batch_iter it;
    sl_record r;
    if (sl_batch_iter_init(&it, batch, len) != 0 || sl_batch_iter_next(&it, &r) != 1 || r.key_len < 4) return -1;
    int16_t type = (int16_t)sl_be16(r.key + 2); /* key: int16 version, int16 type */
    return type == SL_MARKER_ABORT || type == SL_MARKER_COMMIT ? type : -1;
}

static int replay_batch(void *arg, const uint8_t *batch, size_t len)
{
    sl_batch_header h;
    sl_batch_header_parse(batch, len, &h);
    if (h.ProducerId < 0) return 0;
    if (!(h.Attributes & SL_BATCH_ATTR_CONTROL)) {
        apply(arg, &h, h.MaxTimestamp);
        return 0;
    }
    int type = sl__marker_type(batch, len);
    if (type >= 0) apply_marker(arg, &h, type == SL_MARKER_COMMIT, h.BaseOffset, h.MaxTimestamp);
    return 0;
}

/* ---- the partition's life ---- */

static void pstate_free_lists(sl_pstate *s)
{
    sl_free(s->slots);
    sl_free(s->txns);
    sl_free(s->aborted);
}

static void pstate_reset(sl_partition *p)
{
    if (!p->pstate) p->pstate = SL_NEW(sl_pstate);
    pstate_free_lists(p->pstate);
    int nsegs = p->pstate->nsegs;
    bool persisted = p->pstate->persisted;
    memset(p->pstate, 0, sizeof *p->pstate);
    p->pstate->nsegs = nsegs;
    p->pstate->persisted = persisted;
}

/* The newest snapshot not ahead of the log: the latest, else the one before it. */
static int pstate_load(sl_broker *broker, sl_partition *p, int64_t *from)
{
    int rc = pstate_read(broker, p, false, from);
    if (rc == 0 && *from <= sl_log_end_offset(p->log)) return 0;
    pstate_reset(p);
    int rc2 = pstate_read(broker, p, true, from);
    if (rc2 == 0 && *from <= sl_log_end_offset(p->log)) return 0;
    return rc == SL_ENOENT && rc2 == SL_ENOENT ? SL_ENOENT : rc ? rc : rc2 ? rc2 : SL_ERANGE;
}

int sl__producers_open(sl_broker *broker, sl_partition *p)
{
    int64_t from = 0;
    pstate_reset(p);
    int rc = pstate_load(broker, p, &from);
    if (rc == SL_ENOENT) return 0; /* never an idempotent batch */
    p->pstate->nsegs = sl_log_segment_count(p->log);
    if (rc) {
        SL_WARN("producers", "%s-%d: no usable producer state snapshot (%s); rebuilding it from the whole log",
                p->topic->name, p->index, rc == SL_ERANGE ? "ahead of the recovered log" : sl_strerror(rc));
        pstate_reset(p);
        from = 0;
    }
    p->pstate->persisted = true;
    rc = sl_log_scan(p->log, from, replay_batch, p->pstate);
    if (rc) SL_ERROR("producers", "%s-%d: cannot read the log to rebuild producer state: %s", p->topic->name,
                     p->index, sl_strerror(rc));
    return rc;
}

void sl__producers_close(sl_broker *broker, sl_partition *p, bool clean)
{
    if (clean && p->pstate && p->pstate->persisted) pstate_write(broker, p, sl_log_end_offset(p->log), false);
    if (p->pstate) pstate_free_lists(p->pstate);
    sl_free(p->pstate);
    p->pstate = NULL;
}

int16_t sl__producer_before_append(sl_broker *broker, sl_partition *p)
{
    if (!p->pstate) p->pstate = SL_NEW(sl_pstate);
    if (p->pstate->persisted) return 0;
    /* The first idempotent batch here: from now on the start-up replays the log from this offset. */
    if (pstate_write(broker, p, sl_log_end_offset(p->log), false) != 0) return SL_KERR_KAFKA_STORAGE_ERROR;
    p->pstate->persisted = true;
    p->pstate->nsegs = sl_log_segment_count(p->log);
    return 0;
}

/* After an append to a partition with producer state: a roll (or retention) writes a new snapshot, which
   bounds what a start after a crash replays to about a segment. */
static void snapshot_on_roll(sl_broker *broker, sl_partition *p)
{
    int nsegs = sl_log_segment_count(p->log);
    if (nsegs == p->pstate->nsegs) return;
    p->pstate->nsegs = nsegs;
    pstate_write(broker, p, sl_log_end_offset(p->log), true);
}

void sl__producer_appended(sl_broker *broker, sl_partition *p, const sl_batch_header *h, int64_t base_offset)
{
    sl_batch_header a = *h;
    a.BaseOffset = base_offset;
    apply(p->pstate, &a, sl_wall_ms(broker->cfg.clock));
    snapshot_on_roll(broker, p);
}

int16_t sl__partition_write_marker(sl_broker *broker, sl_partition *p, int64_t pid, int16_t epoch, bool commit,
                                   int64_t *offset)
{
    uint8_t key[4], value[6], batch[SL_BATCH_HEADER_SIZE + 64];
    sl_put_be16(key, 0); /* ControlRecordKey: version 0, type */
    sl_put_be16(key + 2, commit ? SL_MARKER_COMMIT : SL_MARKER_ABORT);
    sl_put_be16(value, 0); /* EndTransactionMarker: version 0, coordinator epoch (one coordinator: 0) */
    sl_put_be32(value + 2, 0);
    int64_t now = sl_wall_ms(broker->cfg.clock);
    sl_record_in r = {.timestamp = now, .key = key, .key_len = 4, .value = value, .value_len = 6};
    sl_batch_header h = {.Attributes = SL_BATCH_ATTR_TRANSACTIONAL | SL_BATCH_ATTR_CONTROL, .ProducerId = pid,
                         .ProducerEpoch = epoch, .BaseSequence = -1};
    size_t n = sl_batch_encode(batch, sizeof batch, &h, &r, 1);
    sl_batches_info info;
    SL_ASSERT(n > 0 && sl_batches_validate(batch, n, INT32_MAX, &info) == SL_BATCH_OK);
    int rc = sl_log_append(p->log, batch, n, &info, offset);
    if (rc) {
        SL_WARN("producers", "%s-%d: cannot append the %s marker of producer %lld: %s", p->topic->name, p->index,
                commit ? "COMMIT" : "ABORT", (long long)pid, sl_strerror(rc));
        return SL_KERR_KAFKA_STORAGE_ERROR;
    }
    if (p->pstate && p->pstate->persisted) {
        h.BaseOffset = *offset;
        apply_marker(p->pstate, &h, commit, *offset, now);
        snapshot_on_roll(broker, p);
    }
    sl__flusher_dirty(broker->flusher, p);
    if (broker->cfg.flush_mode != SL_FLUSH_ALWAYS) sl__partition_hw_advanced(p);
    return 0;
}

void sl__producers_rebuild(sl_broker *broker, sl_partition *p)
{
    if (!p->pstate || !p->pstate->persisted) return;
    SL_WARN("producers", "%s-%d: the log was rewound; rebuilding producer state from it", p->topic->name, p->index);
    sl__producers_close(broker, p, false);
    sl__producers_open(broker, p);
}

/* Forgets producers that have not appended here for producer_id_expiration_ms (Kafka's
   producer.id.expiration.ms, 1 day): the table is rebuilt without them. A forgotten producer's next batch
   with a sequence other than 0 gets UNKNOWN_PRODUCER_ID, which librdkafka handles by bumping its epoch. */
/* Aborted transactions whose marker retention has deleted are of no use to any fetch. */
static void prune_aborted(sl_pstate *s, int64_t log_start)
{
    int k = 0;
    while (k < s->naborted && s->aborted[k].last < log_start) k++;
    if (!k) return;
    memmove(s->aborted, s->aborted + k, sizeof *s->aborted * (size_t)(s->naborted - k));
    s->naborted -= k;
}

static bool idle(const sl_pentry *e, int64_t cutoff) { return e->pid >= 0 && e->last_ms < cutoff && e->txn_first < 0; }

int sl__producers_expire(sl_broker *broker, sl_partition *p)
{
    sl_pstate *s = p->pstate;
    if (!s) return 0;
    prune_aborted(s, sl_log_start_offset(p->log));
    if (!s->count) return 0;
    int64_t cutoff = sl_wall_ms(broker->cfg.clock) - broker->cfg.producer_id_expiration_ms;
    int expired = 0;
    for (int i = 0; i < s->cap; i++) expired += idle(&s->slots[i], cutoff);
    if (!expired) return 0;
    sl_pentry *old = s->slots;
    int oldcap = s->cap;
    s->slots = NULL;
    s->cap = s->count = 0;
    for (int i = 0; i < oldcap; i++)
        if (old[i].pid >= 0 && !idle(&old[i], cutoff)) *pinsert(s, old[i].pid) = old[i];
    sl_free(old);
    return expired;
}

/* ---- producer ids and InitProducerId ---- */

static int reserve_block(sl_broker *b)
{
    char *path = sl_asprintf("%s/__sluice/producer-ids", b->cfg.data_dir), *tmp = sl_asprintf("%s.tmp", path);
    uint8_t *data = NULL;
    size_t len = 0;
    int64_t next = 0;
    int rc = sl_fileio_read_all(b->cfg.io, path, 64, &data, &len);
    if (rc == 0) {
        char text[64] = {0}, *end;
        memcpy(text, data, SL_MIN(len, sizeof text - 1));
        errno = 0;
        next = strtoll(text, &end, 10);
        if (errno || end == text || (*end && *end != '\n') || next < 0) rc = SL_ECORRUPT;
    } else if (rc == SL_ENOENT) {
        rc = 0;
    }
    sl_free(data);
    char text[32];
    int n = snprintf(text, sizeof text, "%lld\n", (long long)(next + SL_PID_BLOCK));
    if (!rc) rc = sl_fileio_write_atomic(b->cfg.io, path, tmp, text, (size_t)n);
    if (rc) SL_ERROR("producers", "cannot reserve producer ids in %s: %s", path, sl_strerror(rc));
    else b->pid_next = next, b->pid_end = next + SL_PID_BLOCK;
    sl_free(path);
    sl_free(tmp);
    return rc;
}

int sl__producer_id_next(sl_broker *broker, int64_t *pid)
{
    if (broker->pid_next >= broker->pid_end && reserve_block(broker) != 0) return SL_EIO;
    *pid = broker->pid_next++;
    return 0;
}
