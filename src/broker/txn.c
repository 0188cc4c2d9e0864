/*
 * txn.c - the transaction coordinator: transactional.id -> producer id and
 * epoch, and each transaction's way to its COMMIT or ABORT markers.
 *
 * States (Kafka's TransactionState; every change goes through
 * sl__txn_set_state, which asserts the edge):
 *
 *             InitProducerId (epoch + 1)
 *           +--------------------------+
 *           v                          |
 *        Empty --AddPartitions/--> Ongoing --EndTxn(commit)--> PrepareCommit --markers--> CompleteCommit
 *          ^       AddOffsets        |  \                                                     |
 *          |                         |   +--EndTxn(abort), timeout, fence--> PrepareAbort --markers--> CompleteAbort
 *          |                         |                                                           |
 *          +-------------------------+--- (Complete*: AddPartitions starts the next one) --------+
 *   Empty, Complete* --expiry--> Dead (a tombstone; the id is forgotten)
 *
 * Durability, in Kafka's record formats (an internal topic of one
 * partition, internal.c):
 *   key   v0: int16 0, string transactional id
 *   value v0: int16 0, int64 producer id, int16 epoch, int32 timeout ms,
 *             int8 state, nullable [string topic, [int32 partition]],
 *             int64 last update ms, int64 start ms
 *   a null value is a tombstone.
 * Requests that change a transaction are answered when its record is
 * durable. Ending one is ordered so that no crash can split it: the
 * Prepare record is durable before any marker is written; the markers are
 * durable (in every partition) before EndTxn is answered and the Complete
 * record is written. At start the log is replayed; a transaction found in
 * Prepare* has its markers written again (a second marker for a closed
 * transaction changes nothing), an Ongoing one keeps its timeout.
 *
 * Fencing: a second InitProducerId for an id, or a transaction open past its
 * timeout, aborts the open transaction with the epoch bumped; the markers
 * carry the new epoch, so the old instance's next request (here, or a
 * Produce to one of the partitions) gets INVALID_PRODUCER_EPOCH.
 */
#include <string.h>
#include <unistd.h>
#include "broker/txn_int.h"
#include "broker/group_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "storage/batch.h"

#define SL_TXN_TICK_MS 250
#define SL_TXN_SNAPSHOT_BATCH_BYTES (1 << 20)

const char *sl__txn_state_name(sl_txn_state s)
{
    static const char *const names[] = {"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit",
                                        "CompleteAbort", "Dead"};
    return (unsigned)s < SL_ARRAY_LEN(names) ? names[s] : "?";
}

void sl__txn_set_state(sl_txn *txn, sl_txn_state s)
{
    static const uint8_t from[] = {
        [SL_TXN_EMPTY] = 1u << SL_TXN_EMPTY | 1u << SL_TXN_COMPLETE_COMMIT | 1u << SL_TXN_COMPLETE_ABORT,
        [SL_TXN_ONGOING] = 1u << SL_TXN_EMPTY | 1u << SL_TXN_ONGOING | 1u << SL_TXN_COMPLETE_COMMIT |
                           1u << SL_TXN_COMPLETE_ABORT,
        [SL_TXN_PREPARE_COMMIT] = 1u << SL_TXN_ONGOING,
        [SL_TXN_PREPARE_ABORT] = 1u << SL_TXN_ONGOING,
        [SL_TXN_COMPLETE_COMMIT] = 1u << SL_TXN_PREPARE_COMMIT,
        [SL_TXN_COMPLETE_ABORT] = 1u << SL_TXN_PREPARE_ABORT,
        [SL_TXN_DEAD] = 1u << SL_TXN_EMPTY | 1u << SL_TXN_COMPLETE_COMMIT | 1u << SL_TXN_COMPLETE_ABORT,
    };
    SL_ASSERT((unsigned)s < SL_ARRAY_LEN(from) && (from[s] & (1u << txn->state)));
    txn->state = s;
}

static bool preparing(const sl_txn *txn)
{
    return txn->state == SL_TXN_PREPARE_COMMIT || txn->state == SL_TXN_PREPARE_ABORT;
}

/* ---- the hashes: by transactional id and by producer id ---- */

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

static uint32_t hash_pid(int64_t pid) { return (uint32_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ull) >> 32); }

static sl_txn **id_bucket(sl_tcoord *tc, const char *id, size_t len)
{
    return &tc->hash[hash_bytes(id, len) & (uint32_t)(tc->hash_size - 1)];
}

static sl_txn **pid_bucket(sl_tcoord *tc, int64_t pid) { return &tc->pids[hash_pid(pid) & (uint32_t)(tc->hash_size - 1)]; }

sl_txn *sl__txn_find(sl_tcoord *tc, const char *id, size_t len)
{
    if (!tc->hash_size) return NULL;
    for (sl_txn *t = *id_bucket(tc, id, len); t; t = t->hash_next)
        if (strlen(t->id) == len && memcmp(t->id, id, len) == 0) return t;
    return NULL;
}

sl_txn *sl__txn_by_pid(sl_tcoord *tc, int64_t pid)
{
    if (!tc->hash_size) return NULL;
    for (sl_txn *t = *pid_bucket(tc, pid); t; t = t->pid_next)
        if (t->pid == pid) return t;
    return NULL;
}

static void link_txn(sl_tcoord *tc, sl_txn *t)
{
    sl_txn **b = id_bucket(tc, t->id, strlen(t->id)), **p = pid_bucket(tc, t->pid);
    t->hash_next = *b;
    *b = t;
    t->pid_next = *p;
    *p = t;
}

static void unlink_pid(sl_tcoord *tc, sl_txn *t)
{
    sl_txn **pp = pid_bucket(tc, t->pid);
    while (*pp != t) pp = &(*pp)->pid_next;
    *pp = t->pid_next;
}

static void rehash(sl_tcoord *tc)
{
    sl_txn **old = tc->hash;
    int oldsize = tc->hash_size;
    tc->hash_size = oldsize ? oldsize * 2 : 64;
    tc->hash = sl_calloc((size_t)tc->hash_size, sizeof *tc->hash);
    sl_free(tc->pids);
    tc->pids = sl_calloc((size_t)tc->hash_size, sizeof *tc->pids);
    for (int i = 0; i < oldsize; i++) {
        for (sl_txn *t = old[i], *next; t; t = next) {
            next = t->hash_next;
            link_txn(tc, t);
        }
    }
    sl_free(old);
}

static sl_txn *txn_new(sl_tcoord *tc, const char *id, size_t len, int64_t pid)
{
    if (tc->ntxns + 1 > tc->hash_size / 2) rehash(tc);
    sl_txn *t = SL_NEW(sl_txn);
    t->id = sl_strndup(id, len);
    t->pid = pid;
    t->epoch = -1;
    t->fenced_epoch = -1;
    t->state = SL_TXN_EMPTY;
    t->stored = true;
    link_txn(tc, t);
    tc->ntxns++;
    return t;
}

static void txn_free(sl_txn *t)
{
    sl__txn_clear_parts(t);
    sl_free(t->parts);
    sl_free(t->id);
    sl_free(t);
}

static void txn_remove(sl_tcoord *tc, sl_txn *t)
{
    SL_ASSERT(!t->writes && !t->markers_out && !t->end_req);
    sl_txn **pp = id_bucket(tc, t->id, strlen(t->id));
    while (*pp != t) pp = &(*pp)->hash_next;
    *pp = t->hash_next;
    unlink_pid(tc, t);
    tc->ntxns--;
    txn_free(t);
}

int sl__txn_new_pid(sl_tcoord *tc, sl_txn *txn)
{
    int64_t pid;
    int rc = sl__producer_id_next(tc->broker, &pid);
    if (rc) return rc;
    unlink_pid(tc, txn);
    txn->pid = pid;
    sl_txn **p = pid_bucket(tc, pid);
    txn->pid_next = *p;
    *p = txn;
    txn->epoch = 0;
    txn->fenced_epoch = -1;
    return 0;
}

sl_txn *sl__txn_create(sl_tcoord *tc, const char *id, size_t len, int32_t timeout_ms)
{
    int64_t pid;
    if (sl__producer_id_next(tc->broker, &pid) != 0) return NULL;
    sl_txn *t = txn_new(tc, id, len, pid);
    t->epoch = 0;
    t->timeout_ms = timeout_ms;
    t->update_ms = sl_wall_ms(tc->broker->cfg.clock);
    t->stored = false;
    return t;
}

/* ---- the partitions of a transaction ---- */

static int part_lower_bound(const sl_txn *txn, const char *topic, size_t len, int32_t partition, bool *found)
{
    return sl__tp_lower_bound(txn->parts, txn->nparts, sizeof *txn->parts, offsetof(sl_txn_part, topic),
                              offsetof(sl_txn_part, partition), topic, len, partition, found);
}

bool sl__txn_has_part(const sl_txn *txn, const char *topic, size_t len, int32_t partition)
{
    bool found;
    part_lower_bound(txn, topic, len, partition, &found);
    return found;
}

bool sl__txn_add_part(sl_txn *txn, const char *topic, size_t len, int32_t partition)
{
    bool found;
    int i = part_lower_bound(txn, topic, len, partition, &found);
    if (found) return false;
    if (txn->nparts == txn->parts_cap) {
        txn->parts_cap = txn->parts_cap ? txn->parts_cap * 2 : 8;
        txn->parts = sl_realloc(txn->parts, sizeof *txn->parts * (size_t)txn->parts_cap);
    }
    memmove(&txn->parts[i + 1], &txn->parts[i], sizeof *txn->parts * (size_t)(txn->nparts - i));
    txn->parts[i] = (sl_txn_part){sl_strndup(topic, len), partition, false};
    txn->nparts++;
    return true;
}

void sl__txn_clear_parts(sl_txn *txn)
{
    for (int i = 0; i < txn->nparts; i++) sl_free(txn->parts[i].topic);
    txn->nparts = 0;
}

/* ---- records ---- */

static void put_str(sl_kwriter *w, const char *s, size_t len) { sl_kwrite_str(w, false, false, (sl_kstr){s, (int32_t)len}); }

static void encode_parts(sl_kwriter *w, const sl_txn *txn)
{
    int ntopics = 0;
    for (int i = 0; i < txn->nparts; i++) ntopics += i == 0 || strcmp(txn->parts[i].topic, txn->parts[i - 1].topic);
    sl_kwrite_int32(w, ntopics);
    for (int i = 0; i < txn->nparts;) {
        int j = i;
        while (j < txn->nparts && strcmp(txn->parts[j].topic, txn->parts[i].topic) == 0) j++;
        put_str(w, txn->parts[i].topic, strlen(txn->parts[i].topic));
        sl_kwrite_int32(w, j - i);
        for (int k = i; k < j; k++) sl_kwrite_int32(w, txn->parts[k].partition);
        i = j;
    }
}

/* Appends txn's record (a tombstone when `dead`) to kv. */
static void encode_record(sl_buf *kv, const sl_txn *txn, bool dead, sl_irec *rec)
{
    sl_kwriter w;
    sl_kwriter_init(&w, kv, NULL, 0);
    rec->key_at = kv->len;
    sl_kwrite_int16(&w, 0);
    put_str(&w, txn->id, strlen(txn->id));
    rec->key_len = kv->len - rec->key_at;
    rec->val_at = kv->len;
    rec->val_len = -1;
    if (dead) return;
    sl_kwrite_int16(&w, 0);
    sl_kwrite_int64(&w, txn->pid);
    sl_kwrite_int16(&w, txn->epoch);
    sl_kwrite_int32(&w, txn->timeout_ms);
    sl_kwrite_int8(&w, (int8_t)txn->state);
    encode_parts(&w, txn);
    sl_kwrite_int64(&w, txn->update_ms);
    sl_kwrite_int64(&w, txn->start_ms);
    rec->val_len = (int32_t)(kv->len - rec->val_at);
}

/* ---- the coordinator's own waits: a record, or a partition's marker ---- */

typedef struct twait {
    sl_produce_wait w;
    sl_link tlink;  /* tc->waits */
    sl_tcoord *tc;
    sl_txn *txn;
    int part;       /* index in txn->parts of a marker; -1 = the transaction's record */
    bool commit;
} twait;

static void drive(sl_tcoord *tc, sl_txn *txn);

static twait *twait_new(sl_tcoord *tc, sl_txn *txn, int part)
{
    twait *t = SL_NEW(twait);
    sl_link_init(&t->w.link);
    t->tc = tc;
    t->txn = txn;
    t->part = part;
    t->commit = txn->state == SL_TXN_PREPARE_COMMIT;
    sl_link_insert_tail(&tc->waits, &t->tlink);
    return t;
}

static void twait_free(twait *t)
{
    sl_link_remove(&t->tlink);
    sl_free(t);
}

static void record_done(sl_produce_wait *w, int16_t err)
{
    twait *t = SL_CONTAINER(w, twait, w);
    sl_tcoord *tc = t->tc;
    sl_txn *txn = t->txn;
    twait_free(t);
    txn->writes--;
    if (err) {
        txn->stored = false;
        txn->retry = true;
        return;
    }
    drive(tc, txn);
}

/* Writes txn's record; with `then_drive` the transaction goes on when it is durable. */
static int16_t store(sl_tcoord *tc, sl_txn *txn, bool then_drive)
{
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec rec;
    encode_record(&kv, txn, false, &rec);
    twait *t = then_drive ? twait_new(tc, txn, -1) : NULL;
    if (t) t->w.complete = record_done;
    bool waiting;
    int16_t err = sl__ilog_append(&tc->ilog, NULL, &kv, &rec, 1, t ? &t->w : NULL, &waiting, NULL);
    sl_buf_deinit(&kv);
    txn->stored = err == 0;
    if (waiting) {
        txn->writes++;
        return 0;
    }
    if (t) twait_free(t);
    if (err) txn->retry = true;
    else if (then_drive) drive(tc, txn);
    return err;
}

/* ---- markers ---- */

static void marker_done(sl_produce_wait *w, int16_t err)
{
    twait *t = SL_CONTAINER(w, twait, w);
    sl_tcoord *tc = t->tc;
    sl_txn *txn = t->txn;
    const sl_txn_part *part = &txn->parts[t->part];
    bool commit = t->commit;
    txn->markers_out--;
    if (err) {
        txn->retry = true;
    } else {
        txn->parts[t->part].done = true;
        if (strcmp(part->topic, SL_OFFSETS_TOPIC) == 0) sl__offsets_txn_complete(tc->broker->coord, txn->pid, commit);
    }
    twait_free(t);
    if (txn->markers_out == 0 && !txn->retry) drive(tc, txn);
}

/* Writes the marker of part i; it is done at once when nothing needs to wait (or the partition is gone). */
static void write_marker(sl_tcoord *tc, sl_txn *txn, int i, bool commit)
{
    sl_txn_part *part = &txn->parts[i];
    sl_topic *topic = sl__topic_find(tc->broker, part->topic, strlen(part->topic));
    sl_partition *p = topic ? sl__partition_get(topic, part->partition) : NULL;
    if (!p) {
        part->done = true; /* deleted: nothing left to close */
        return;
    }
    bool offsets = p == tc->broker->coord->ilog.p, waiting = false;
    twait *t = twait_new(tc, txn, i);
    t->w.complete = marker_done;
    int16_t err;
    if (offsets) {
        err = sl__ilog_marker(&tc->broker->coord->ilog, txn->pid, txn->epoch, commit, &t->w, &waiting);
    } else {
        int64_t at;
        err = sl__partition_write_marker(tc->broker, p, txn->pid, txn->epoch, commit, &at);
        if (!err && tc->broker->cfg.flush_mode == SL_FLUSH_ALWAYS) {
            t->w.offset_needed = at + 1;
            sl_link_insert_tail(&p->produce_waits, &t->w.link);
            waiting = true;
        }
    }
    if (waiting) {
        txn->markers_out++;
        return;
    }
    twait_free(t);
    if (err) {
        txn->retry = true;
        return;
    }
    part->done = true;
    if (offsets) sl__offsets_txn_complete(tc->broker->coord, txn->pid, commit);
}

static void respond_end(sl_txn *txn, int16_t err)
{
    sl_request *req = txn->end_req;
    if (!req) return;
    txn->end_req = NULL;
    sl_EndTxnResponse resp;
    sl_EndTxnResponse_init(&resp);
    resp.ErrorCode = err;
    if (sl__request_respond(req, &resp) != 0) req->state = SL_REQ_NO_RESPONSE;
    req->conn->nwaiting_durable--;
    sl__conn_pump_later(req->conn);
}

static void complete(sl_tcoord *tc, sl_txn *txn)
{
    bool commit = txn->state == SL_TXN_PREPARE_COMMIT;
    sl__txn_set_state(txn, commit ? SL_TXN_COMPLETE_COMMIT : SL_TXN_COMPLETE_ABORT);
    if (commit) tc->committed++;
    else tc->aborted++;
    txn->update_ms = sl_wall_ms(tc->broker->cfg.clock);
    sl__txn_clear_parts(txn);
    /* Not waited for: lost, the start finds Prepare* and writes the markers again, which changes nothing. */
    store(tc, txn, false);
    respond_end(txn, 0);
}

/* Test hook (--fault-exit-before-markers N): the process dies at the Nth transaction whose Prepare record is
   durable and whose markers are not written yet -- the in-doubt state a restart must complete. */
static void fault_exit(sl_tcoord *tc, const sl_txn *txn)
{
    int64_t n = tc->broker->cfg.fault_exit_before_markers;
    if (n <= 0 || ++tc->marker_rounds != n) return;
    SL_ERROR("txn", "fault injection (--fault-exit-before-markers %lld): exiting before the %s markers of "
             "transaction %s", (long long)n, txn->state == SL_TXN_PREPARE_COMMIT ? "COMMIT" : "ABORT", txn->id);
    _exit(3);
}

/* Moves a transaction in Prepare* on as far as it can: its record durable, then every marker, then
   Complete*. Called again by each completion, and by the tick after a failed write. */
static void drive(sl_tcoord *tc, sl_txn *txn)
{
    if (tc->closing || !preparing(txn) || txn->writes > 0 || txn->markers_out > 0) return;
    if (!txn->stored) {
        store(tc, txn, true);
        return;
    }
    bool commit = txn->state == SL_TXN_PREPARE_COMMIT;
    if (!txn->markers_started) {
        txn->markers_started = true;
        fault_exit(tc, txn);
    }
    for (int i = 0; i < txn->nparts; i++)
        if (!txn->parts[i].done) write_marker(tc, txn, i, commit);
    if (txn->markers_out > 0 || txn->retry) return;
    complete(tc, txn);
}

/* A request's record: done when durable, and the transaction goes on if a fence or timeout came meanwhile. */
typedef struct store_req {
    sl_tcoord *tc;
    sl_txn *txn;
    sl_ilog_done_fn done;
    void *arg;
} store_req;

static void store_req_done(sl_request *req, void *arg, int16_t err)
{
    store_req *s = arg;
    s->txn->writes--;
    if (err) s->txn->stored = false;
    s->done(req, s->arg, err);
    drive(s->tc, s->txn);
}

int16_t sl__txn_store_for(sl_tcoord *tc, sl_txn *txn, sl_request *req, sl_ilog_done_fn done, void *arg)
{
    store_req *s = sl_arena_alloc(&req->arena, sizeof *s);
    if (!s) {
        done(req, arg, SL_KERR_COORDINATOR_NOT_AVAILABLE);
        return SL_KERR_COORDINATOR_NOT_AVAILABLE;
    }
    *s = (store_req){tc, txn, done, arg};
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec rec;
    encode_record(&kv, txn, false, &rec);
    txn->stored = true;
    txn->writes++;
    int16_t err = sl__ilog_append_for(&tc->ilog, req, NULL, &kv, &rec, 1, store_req_done, s);
    sl_buf_deinit(&kv);
    return err;
}

void sl__txn_end(sl_tcoord *tc, sl_txn *txn, bool commit, sl_request *end_req)
{
    SL_ASSERT(txn->state == SL_TXN_ONGOING && !txn->end_req);
    sl__txn_set_state(txn, commit ? SL_TXN_PREPARE_COMMIT : SL_TXN_PREPARE_ABORT);
    txn->update_ms = sl_wall_ms(tc->broker->cfg.clock);
    for (int i = 0; i < txn->nparts; i++) txn->parts[i].done = false;
    txn->stored = false;
    txn->markers_started = false;
    if (end_req) {
        txn->end_req = end_req;
        end_req->state = SL_REQ_WAITING;
        end_req->hstate = NULL;
        end_req->conn->nwaiting_durable++;
    }
    drive(tc, txn);
}

void sl__txn_fence_abort(sl_tcoord *tc, sl_txn *txn, sl_txn_fence why)
{
    static const char *const reasons[] = {"a new instance initialised the id", "open longer than its timeout",
                                          "its producer asked for a new epoch"};
    SL_ASSERT(txn->state == SL_TXN_ONGOING);
    int16_t old = txn->epoch;
    if (txn->epoch < INT16_MAX - 1) txn->epoch++;
    /* The owner may come back from the epoch it had (KIP-360); a zombie of a replaced instance may not. */
    txn->fenced_epoch = why == SL_FENCE_NEW_INSTANCE ? -1 : old;
    if (why == SL_FENCE_TIMEOUT) tc->timed_out++;
    else if (why == SL_FENCE_NEW_INSTANCE) tc->fenced++;
    SL_INFO("txn", "transaction %s (producer %lld): %s; aborting it, epoch %d -> %d", txn->id, (long long)txn->pid,
            reasons[why], old, txn->epoch);
    sl__txn_end(tc, txn, false, NULL);
}

/* ---- checks for the other coordinators' requests ---- */

int16_t sl__txn_check_produce(sl_broker *broker, const sl_batch_header *h, const sl_partition *p)
{
    sl_txn *txn = broker->tcoord ? sl__txn_by_pid(broker->tcoord, h->ProducerId) : NULL;
    if (!txn) return SL_KERR_INVALID_PRODUCER_ID_MAPPING;
    if (h->ProducerEpoch != txn->epoch) return SL_KERR_INVALID_PRODUCER_EPOCH;
    /* KIP-890's rule, which one coordinator can keep cheaply: a transactional batch only to a partition the
       transaction added, while it is open (else a late batch would open a transaction nobody ends). */
    if (txn->state != SL_TXN_ONGOING || !sl__txn_has_part(txn, p->topic->name, strlen(p->topic->name), p->index))
        return SL_KERR_INVALID_TXN_STATE;
    return 0;
}

int16_t sl__txn_check_offsets(sl_broker *broker, sl_kstr id, int64_t pid, int16_t epoch)
{
    sl_txn *txn = broker->tcoord && id.len > 0 ? sl__txn_find(broker->tcoord, id.ptr, (size_t)id.len) : NULL;
    if (!txn || txn->pid != pid) return SL_KERR_INVALID_PRODUCER_ID_MAPPING;
    if (epoch != txn->epoch) return SL_KERR_INVALID_PRODUCER_EPOCH;
    if (txn->state != SL_TXN_ONGOING || !sl__txn_has_part(txn, SL_OFFSETS_TOPIC, strlen(SL_OFFSETS_TOPIC), 0))
        return SL_KERR_INVALID_TXN_STATE;
    return 0;
}

/* ---- the tick: retries, timeouts, expiry, compaction ---- */

static int16_t write_snapshot(void *arg, int64_t *bytes, int64_t *count)
{
    sl_tcoord *tc = arg;
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec *recs = sl_calloc((size_t)SL_MAX(tc->ntxns, 1), sizeof *recs);
    int n = 0;
    int16_t err = 0;
    for (int i = 0; i < tc->hash_size && !err; i++) {
        for (sl_txn *t = tc->hash[i]; t && !err; t = t->hash_next) {
            encode_record(&kv, t, false, &recs[n++]);
            (*count)++;
            if (kv.len < SL_TXN_SNAPSHOT_BATCH_BYTES) continue;
            bool waiting;
            err = sl__ilog_append(&tc->ilog, NULL, &kv, recs, n, NULL, &waiting, NULL);
            *bytes += (int64_t)kv.len;
            sl_buf_reset(&kv);
            n = 0;
        }
    }
    bool waiting;
    if (!err && n) err = sl__ilog_append(&tc->ilog, NULL, &kv, recs, n, NULL, &waiting, NULL);
    *bytes += (int64_t)kv.len;
    sl_free(recs);
    sl_buf_deinit(&kv);
    return err;
}

static bool expired(const sl_txn *t, int64_t cutoff)
{
    bool idle = t->state == SL_TXN_EMPTY || t->state == SL_TXN_COMPLETE_COMMIT || t->state == SL_TXN_COMPLETE_ABORT;
    return idle && !t->writes && !t->markers_out && t->update_ms < cutoff;
}

/* Kafka's transactional.id.expiration.ms (7 days): an id idle that long is forgotten, with a tombstone. */
static void expire_ids(sl_tcoord *tc)
{
    int64_t cutoff = sl_wall_ms(tc->broker->cfg.clock) - tc->broker->cfg.transactional_id_expiration_ms;
    sl_txn **gone = NULL;
    int n = 0;
    for (int i = 0; i < tc->hash_size; i++) {
        for (sl_txn *t = tc->hash[i]; t; t = t->hash_next) {
            if (!expired(t, cutoff)) continue;
            gone = sl_realloc(gone, sizeof *gone * (size_t)(n + 1));
            gone[n++] = t;
        }
    }
    if (!n) return;
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec *recs = sl_calloc((size_t)n, sizeof *recs);
    for (int i = 0; i < n; i++) encode_record(&kv, gone[i], true, &recs[i]);
    bool waiting;
    int16_t err = sl__ilog_append(&tc->ilog, NULL, &kv, recs, n, NULL, &waiting, NULL);
    for (int i = 0; !err && i < n; i++) {
        SL_INFO("txn", "transactional id %s: idle for over %lld ms, forgotten", gone[i]->id,
                (long long)tc->broker->cfg.transactional_id_expiration_ms);
        sl__txn_set_state(gone[i], SL_TXN_DEAD);
        txn_remove(tc, gone[i]);
    }
    sl_free(recs);
    sl_free(gone);
    sl_buf_deinit(&kv);
}

static void on_tick(sl_loop *loop, sl_timer *timer)
{
    sl_tcoord *tc = timer->arg;
    int64_t now = sl_wall_ms(tc->broker->cfg.clock);
    for (int i = 0; i < tc->hash_size; i++) {
        for (sl_txn *t = tc->hash[i]; t; t = t->hash_next) {
            if (t->retry) {
                t->retry = false;
                drive(tc, t);
            } else if (t->state == SL_TXN_ONGOING && now - t->start_ms > t->timeout_ms) {
                sl__txn_fence_abort(tc, t, SL_FENCE_TIMEOUT);
            }
        }
    }
    if (sl__ilog_expiry_due(&tc->ilog, tc->broker->cfg.transactional_id_expiration_ms)) expire_ids(tc);
    sl__ilog_maintain(&tc->ilog, INT64_MAX, write_snapshot, tc);
    sl_timer_start(loop, timer, SL_TXN_TICK_MS);
}

/* ---- replay on start ---- */

static void replay_parts(sl_txn *t, sl_kreader *r)
{
    sl__txn_clear_parts(t);
    int32_t ntopics = sl_kread_int32(r);
    for (int32_t i = 0; i < ntopics && !r->err; i++) {
        sl_kstr topic = sl_kread_str(r, false, false);
        int32_t np = sl_kread_int32(r);
        for (int32_t j = 0; j < np && !r->err; j++) {
            int32_t partition = sl_kread_int32(r);
            if (!r->err && topic.len > 0) sl__txn_add_part(t, topic.ptr, (size_t)topic.len, partition);
        }
    }
}

static void replay_value(sl_tcoord *tc, sl_kstr id, const sl_record *r, int64_t *nbad)
{
    sl_kreader vr;
    sl_kreader_init(&vr, r->value, (size_t)r->value_len);
    int16_t v = sl_kread_int16(&vr);
    int64_t pid = sl_kread_int64(&vr);
    int16_t epoch = sl_kread_int16(&vr);
    int32_t timeout = sl_kread_int32(&vr);
    int8_t state = sl_kread_int8(&vr);
    if (vr.err || v != 0 || pid < 0 || state < SL_TXN_EMPTY || state > SL_TXN_DEAD) {
        (*nbad)++;
        return;
    }
    sl_txn *t = sl__txn_find(tc, id.ptr, (size_t)id.len);
    if (state == SL_TXN_DEAD) {
        if (t) txn_remove(tc, t);
        return;
    }
    if (!t) t = txn_new(tc, id.ptr, (size_t)id.len, pid);
    if (t->pid != pid) {
        unlink_pid(tc, t);
        t->pid = pid;
        sl_txn **p = pid_bucket(tc, pid);
        t->pid_next = *p;
        *p = t;
    }
    t->epoch = epoch;
    t->timeout_ms = timeout;
    t->state = (sl_txn_state)state; /* the log's word, not a transition */
    replay_parts(t, &vr);
    t->update_ms = sl_kread_int64(&vr);
    t->start_ms = sl_kread_int64(&vr);
    if (vr.err) (*nbad)++;
}

typedef struct replay_state {
    sl_tcoord *tc;
    int64_t nrec, nbad;
} replay_state;

static int replay_batch(void *arg, const uint8_t *p, size_t size)
{
    replay_state *st = arg;
    sl_batch_header h;
    sl_batch_header_parse(p, size, &h);
    sl_batch_iter it;
    if (h.Attributes & SL_BATCH_ATTR_CONTROL) return 0;
    if (sl_batch_iter_init(&it, p, size) != 0) { /* compressed: we never write those */
        st->nbad++;
        return 0;
    }
    sl_record r;
    int rc;
    while ((rc = sl_batch_iter_next(&it, &r)) == 1) {
        sl_kreader kr;
        sl_kreader_init(&kr, r.key ? r.key : (const uint8_t *)"", (size_t)SL_MAX(r.key_len, 0));
        int16_t kv = sl_kread_int16(&kr);
        sl_kstr id = sl_kread_str(&kr, false, false);
        st->nrec++;
        if (kr.err || kv != 0 || id.len <= 0 || memchr(id.ptr, 0, (size_t)id.len)) {
            st->nbad++;
        } else if (!r.value) {
            sl_txn *t = sl__txn_find(st->tc, id.ptr, (size_t)id.len);
            if (t) txn_remove(st->tc, t);
        } else {
            replay_value(st->tc, id, &r, &st->nbad);
        }
    }
    if (rc < 0) st->nbad++;
    return 0;
}

/* ---- lifecycle ---- */

int sl__txn_open(sl_broker *b)
{
    sl_tcoord *tc = SL_NEW(sl_tcoord);
    tc->broker = b;
    sl_link_init(&tc->waits);
    sl_timer_init(&tc->tick, on_tick, tc);
    b->tcoord = tc;
    int rc = sl__ilog_open(b, SL_TXN_TOPIC, &tc->ilog);
    if (rc) return rc;
    int64_t t0 = sl_mono_ns(b->cfg.clock);
    replay_state st = {.tc = tc};
    rc = sl_log_scan(tc->ilog.p->log, 0, replay_batch, &st);
    if (rc) {
        SL_ERROR("txn", "cannot read %s: %s", SL_TXN_TOPIC, sl_strerror(rc));
        return rc;
    }
    if (st.nbad) SL_WARN("txn", "%s: skipped %lld record(s) it could not read", SL_TXN_TOPIC, (long long)st.nbad);
    int in_doubt = 0, open = 0;
    for (int i = 0; i < tc->hash_size; i++) {
        for (sl_txn *t = tc->hash[i]; t; t = t->hash_next) {
            open += t->state == SL_TXN_ONGOING;
            if (!preparing(t)) continue;
            in_doubt++;
            SL_INFO("txn", "transaction %s (producer %lld, epoch %d) was in %s at the last stop: writing its markers",
                    t->id, (long long)t->pid, t->epoch, sl__txn_state_name(t->state));
            drive(tc, t); /* Prepare*: the markers again */
        }
    }
    SL_INFO("txn", "loaded %d transactional id(s) from %s in %.1f ms: %d open, %d being completed", tc->ntxns,
            SL_TXN_TOPIC, (double)(sl_mono_ns(b->cfg.clock) - t0) / 1e6, open, in_doubt);
    sl_timer_start(b->loop, &tc->tick, SL_TXN_TICK_MS);
    return 0;
}

void sl__txn_detach(sl_broker *b)
{
    sl_tcoord *tc = b->tcoord;
    if (!tc) return;
    tc->closing = true;
    while (!sl_link_empty(&tc->waits)) {
        twait *t = SL_CONTAINER(tc->waits.next, twait, tlink);
        sl_link_remove(&t->w.link);
        if (t->part < 0) t->txn->writes--;
        else t->txn->markers_out--;
        twait_free(t);
    }
    for (int i = 0; i < tc->hash_size; i++)
        for (sl_txn *t = tc->hash[i]; t; t = t->hash_next) respond_end(t, SL_KERR_NOT_COORDINATOR);
    if (b->loop) sl_timer_stop(b->loop, &tc->tick);
}

void sl__txn_close(sl_broker *b)
{
    sl_tcoord *tc = b->tcoord;
    if (!tc) return;
    sl__txn_detach(b);
    if (tc->committed || tc->aborted)
        SL_INFO("txn", "transactions: %lld committed, %lld aborted (%lld timed out, %lld fenced)",
                (long long)tc->committed, (long long)tc->aborted, (long long)tc->timed_out, (long long)tc->fenced);
    for (int i = 0; i < tc->hash_size; i++) {
        for (sl_txn *t = tc->hash[i], *next; t; t = next) {
            next = t->hash_next;
            txn_free(t);
        }
    }
    sl_free(tc->hash);
    sl_free(tc->pids);
    sl__ilog_close(&tc->ilog);
    sl_free(tc);
    b->tcoord = NULL;
}
