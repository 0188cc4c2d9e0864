/*
 * txn_int.h - the transaction coordinator's structures (private to src/broker).
 *
 * Files:
 *   txn.c     transactional.id -> producer id and epoch, the state machine
 *             (drawn at its top), the internal topic __transaction_state,
 *             markers, timeouts, recovery at start
 *   h_txn.c   InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn
 *
 * Everything runs on the loop thread. A transaction lives in the
 * coordinator's hashes (by transactional id and by producer id) from its
 * first InitProducerId until it expires.
 */
#ifndef SL_BROKER_TXN_INT_H
#define SL_BROKER_TXN_INT_H

#include "broker/broker_int.h"

#define SL_TXN_ID_MAX 32767 /* a Kafka string */

/* Kafka's TransactionState, numbered as its TransactionStatus field in __transaction_state. */
typedef enum {
    SL_TXN_EMPTY = 0,
    SL_TXN_ONGOING = 1,
    SL_TXN_PREPARE_COMMIT = 2,
    SL_TXN_PREPARE_ABORT = 3,
    SL_TXN_COMPLETE_COMMIT = 4,
    SL_TXN_COMPLETE_ABORT = 5,
    SL_TXN_DEAD = 6
} sl_txn_state;

typedef struct sl_txn_part {
    char *topic;
    int32_t partition;
    bool done; /* its marker is durable (while the transaction completes) */
} sl_txn_part;

typedef struct sl_txn {
    char *id;
    int64_t pid;
    int16_t epoch;
    int16_t fenced_epoch;   /* the epoch a timeout abort fenced (KIP-360 re-init from it is accepted), -1 */
    int32_t timeout_ms;
    sl_txn_state state;
    sl_txn_part *parts;     /* sorted by (topic, partition) */
    int nparts, parts_cap;
    int64_t start_ms, update_ms;
    bool stored;            /* the last record written holds the state in memory (false after a failed write) */
    int writes;             /* its records appended, not yet durable */
    int markers_out;        /* its markers appended, not yet durable */
    bool retry;             /* a write failed: the tick drives it again */
    bool markers_started;   /* its markers have been written once (this process) */
    sl_request *end_req;    /* the EndTxn waiting for the markers */
    struct sl_txn *hash_next, *pid_next;
} sl_txn;

typedef struct sl_tcoord {
    sl_broker *broker;
    sl_ilog ilog;           /* __transaction_state */
    sl_txn **hash, **pids;  /* by id, by producer id; hash_size buckets each */
    int hash_size;
    int ntxns;
    sl_link waits;          /* the coordinator's own produce waits (records and markers) */
    sl_timer tick;
    bool closing;
    int64_t timed_out, fenced, committed, aborted;
    int64_t marker_rounds;  /* transactions whose markers were started (--fault-exit-before-markers) */
} sl_tcoord;

/* ---- txn.c ---- */
const char *sl__txn_state_name(sl_txn_state s);
sl_txn *sl__txn_find(sl_tcoord *tc, const char *id, size_t len);
sl_txn *sl__txn_by_pid(sl_tcoord *tc, int64_t pid);
/* A new transactional id with a fresh producer id (epoch 0, Empty). NULL: no producer id could be reserved. */
sl_txn *sl__txn_create(sl_tcoord *tc, const char *id, size_t len, int32_t timeout_ms);
/* A fresh producer id for txn (its epoch ran out). */
int sl__txn_new_pid(sl_tcoord *tc, sl_txn *txn);
void sl__txn_set_state(sl_txn *txn, sl_txn_state s);
/* Adds a partition (kept sorted; no duplicates); returns whether it was new. */
bool sl__txn_add_part(sl_txn *txn, const char *topic, size_t len, int32_t partition);
bool sl__txn_has_part(const sl_txn *txn, const char *topic, size_t len, int32_t partition);
void sl__txn_clear_parts(sl_txn *txn);
/* Writes txn's record for a request: done(req, arg, err) when durable. */
int16_t sl__txn_store_for(sl_tcoord *tc, sl_txn *txn, sl_request *req, sl_ilog_done_fn done, void *arg);
/* Ends an Ongoing transaction: PrepareCommit/PrepareAbort, then markers, then Complete. end_req (may be NULL)
   is answered when the markers are durable. */
void sl__txn_end(sl_tcoord *tc, sl_txn *txn, bool commit, sl_request *end_req);
/* Aborts an Ongoing transaction with the epoch bumped, so its producer is fenced. */
typedef enum { SL_FENCE_NEW_INSTANCE, SL_FENCE_TIMEOUT, SL_FENCE_OWNER_BUMP } sl_txn_fence;
void sl__txn_fence_abort(sl_tcoord *tc, sl_txn *txn, sl_txn_fence why);

#endif
