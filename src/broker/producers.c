/*
 * producers.c - idempotent producers: producer ids, InitProducerId, and per
 * partition the state that turns a retried batch into its first answer.
 *
 * Producer ids come in blocks of SL_PID_BLOCK: DATA/__sluice/producer-ids
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
    int nbatches, head; /* ring of the last batches; head = next slot to write */
    int64_t last_ms;    /* when it last appended (replayed: its batch's MaxTimestamp): for expiry */
    sl_pbatch batches[SL_PRODUCER_BATCHES];
} sl_pentry;

struct sl_pstate {
    sl_pentry *slots;
    int cap, count;
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
        s->count++;
    }
    return e;
}

static int32_t seq_add(int32_t seq, int32_t n) { return (int32_t)(((int64_t)seq + n) % ((int64_t)INT32_MAX + 1)); }

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
}

int16_t sl__producer_check(sl_partition *p, const sl_batch_header *h, int64_t *dup_first, int64_t *dup_last)
{
    *dup_first = *dup_last = -1;
    if (h->Attributes & SL_BATCH_ATTR_TRANSACTIONAL) return SL_KERR_INVALID_TXN_STATE; /* no transactions yet */
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

static void put_entry(sl_buf *b, const sl_pentry *e)
{
    uint8_t x[8 + 2 + 4 + 8 + 1];
    sl_put_be64(x, (uint64_t)e->pid);
    sl_put_be16(x + 8, (uint16_t)e->epoch);
    sl_put_be32(x + 10, (uint32_t)e->last_seq);
    sl_put_be64(x + 14, (uint64_t)e->last_ms);
    x[22] = (uint8_t)e->nbatches;
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

/* Writes {offset, state} to the snapshot file: temp file, fsync, rename, fsync of the directory. With
   keep_prev the one it replaces becomes producer-state.prev: a snapshot taken at a roll may be ahead of
   what a crash leaves durable, and then the one before it is used. */
static int pstate_write(sl_broker *broker, sl_partition *p, int64_t offset, bool keep_prev)
{
    sl_buf b;
    sl_buf_init(&b, SIZE_MAX);
    uint8_t hdr[20];
    sl_put_be32(hdr, SL_PSTATE_MAGIC);
    sl_put_be32(hdr + 4, 1);
    sl_put_be64(hdr + 8, (uint64_t)offset);
    sl_put_be32(hdr + 16, (uint32_t)(p->pstate ? p->pstate->count : 0));
    sl_buf_append(&b, hdr, sizeof hdr);
    for (int i = 0; p->pstate && i < p->pstate->cap; i++)
        if (p->pstate->slots[i].pid >= 0) put_entry(&b, &p->pstate->slots[i]);
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

static int load_entries(sl_pstate *s, const uint8_t *p, const uint8_t *end, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++) {
        if (end - p < 23) return SL_ECORRUPT;
        sl_pentry *e = pinsert(s, (int64_t)sl_be64(p));
        e->epoch = (int16_t)sl_be16(p + 8);
        e->last_seq = (int32_t)sl_be32(p + 10);
        e->last_ms = (int64_t)sl_be64(p + 14);
        int nb = p[22];
        p += 23;
        if (nb > SL_PRODUCER_BATCHES || end - p < 24 * nb) return SL_ECORRUPT;
        for (int j = 0; j < nb; j++, p += 24)
            e->batches[j] = (sl_pbatch){(int32_t)sl_be32(p), (int32_t)sl_be32(p + 4), (int64_t)sl_be64(p + 8),
                                        (int64_t)sl_be64(p + 16)};
        e->nbatches = nb;
        e->head = nb % SL_PRODUCER_BATCHES;
    }
    return p == end ? 0 : SL_ECORRUPT;
}

/* Reads a snapshot: 0 with *offset and the entries, SL_ENOENT without one, SL_ECORRUPT. */
static int pstate_read(sl_broker *broker, sl_partition *p, bool prev, int64_t *offset)
{
    char *path = pstate_path(p, prev);
    uint8_t *data = NULL;
    size_t len = 0;
    int rc = sl_fileio_read_all(broker->cfg.io, path, 16 << 20, &data, &len);
    sl_free(path);
    if (rc) return rc;
    rc = SL_ECORRUPT;
    if (len >= 24 && sl_be32(data) == SL_PSTATE_MAGIC && sl_be32(data + 4) == 1 &&
        sl_crc32c(0, data, len - 4) == sl_be32(data + len - 4)) {
        *offset = (int64_t)sl_be64(data + 8);
        rc = load_entries(p->pstate, data + 20, data + len - 4, sl_be32(data + 16));
    }
    sl_free(data);
    return rc;
}

static int replay_batch(void *arg, const uint8_t *batch, size_t len)
{
    sl_batch_header h;
    sl_batch_header_parse(batch, len, &h);
    if (h.ProducerId >= 0 && !(h.Attributes & SL_BATCH_ATTR_CONTROL)) apply(arg, &h, h.MaxTimestamp);
    return 0;
}

/* ---- the partition's life ---- */

static void pstate_reset(sl_partition *p)
{
    if (!p->pstate) p->pstate = SL_NEW(sl_pstate);
    sl_free(p->pstate->slots);
    p->pstate->slots = NULL;
    p->pstate->cap = p->pstate->count = 0;
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
    if (p->pstate) sl_free(p->pstate->slots);
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

void sl__producer_appended(sl_broker *broker, sl_partition *p, const sl_batch_header *h, int64_t base_offset)
{
    sl_batch_header a = *h;
    a.BaseOffset = base_offset;
    apply(p->pstate, &a, sl_wall_ms(broker->cfg.clock));
    int nsegs = sl_log_segment_count(p->log);
    if (nsegs == p->pstate->nsegs) return;
    /* A roll (or retention): a new snapshot bounds what a start after a crash replays to about a segment. */
    p->pstate->nsegs = nsegs;
    pstate_write(broker, p, sl_log_end_offset(p->log), true);
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
int sl__producers_expire(sl_broker *broker, sl_partition *p)
{
    sl_pstate *s = p->pstate;
    if (!s || !s->count) return 0;
    int64_t cutoff = sl_wall_ms(broker->cfg.clock) - broker->cfg.producer_id_expiration_ms;
    int expired = 0;
    for (int i = 0; i < s->cap; i++) expired += s->slots[i].pid >= 0 && s->slots[i].last_ms < cutoff;
    if (!expired) return 0;
    sl_pentry *old = s->slots;
    int oldcap = s->cap;
    s->slots = NULL;
    s->cap = s->count = 0;
    for (int i = 0; i < oldcap; i++)
        if (old[i].pid >= 0 && old[i].last_ms >= cutoff) *pinsert(s, old[i].pid) = old[i];
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

int sl__handle_init_producer_id(sl_broker *broker, sl_request *req)
{
    sl_InitProducerIdRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_InitProducerIdResponse resp;
    sl_InitProducerIdResponse_init(&resp);
    resp.ProducerId = -1;
    resp.ProducerEpoch = -1;
    if (m.TransactionalId.len >= 0) {
        resp.ErrorCode = SL_KERR_COORDINATOR_NOT_AVAILABLE; /* transactions: not yet */
    } else if (broker->pid_next >= broker->pid_end && reserve_block(broker) != 0) {
        resp.ErrorCode = SL_KERR_KAFKA_STORAGE_ERROR;
    } else {
        /* An idempotent producer (re)initialising gets a new id, epoch 0, as Kafka does (KIP-360 too). */
        resp.ProducerId = broker->pid_next++;
        resp.ProducerEpoch = 0;
    }
    return sl__request_respond(req, &resp);
}
