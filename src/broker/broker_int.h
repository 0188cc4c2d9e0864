/*
 * broker_int.h - structures shared by the files of src/broker (private).
 *
 * Threads: everything here lives on the loop thread, except the sync
 * thread of flusher.c, which only ever sees sl_log_sync_job values.
 *
 * Lifetimes: a connection owns its requests; a request owns its frame
 * bytes, its decode arena and its response buffer. A request waiting for a
 * sync (produce) or for data (fetch) is linked into per-partition wait
 * lists; those links are removed before the request is freed, and a closed
 * connection with produce waits outstanding lingers (fd closed) until they
 * resolve.
 */
#ifndef SL_BROKER_INT_H
#define SL_BROKER_INT_H

#include "broker/broker.h"
#include "common/arena.h"
#include "common/buf.h"
#include "common/bufpool.h"
#include "kafka/wire.h"
#include "kafka/header.h"
#include "kafka/api.h"
#include "kafka/gen_messages.h"
#include "kafka/gen_errors.h"
#include "net/loop.h"
#include "net/outq.h"
#include "storage/log.h"

#define SL_TOPIC_NAME_MAX 249
#define SL_CONN_RBUF 65536
#define SL_CONN_MAX_REQUESTS 256            /* pipelined requests per connection before reading pauses */
#define SL_CONN_MAX_OUT_BYTES (64 << 20)    /* queued response bytes before reading pauses */
#define SL_REQ_ARENA_MAX (64 << 20)         /* decode + handler state of one request */
#define SL_RESP_MAX_BYTES ((size_t)1 << 30) /* one response's memory part */
#define SL_PARTITIONS_MAX 100000

typedef struct sl_conn sl_conn;
typedef struct sl_request sl_request;
typedef struct sl_topic sl_topic;
typedef struct sl_partition sl_partition;
typedef struct sl_pstate sl_pstate; /* producers.c */
#define SL_PRODUCER_BATCHES 5       /* batches remembered per producer and partition (Kafka keeps 5) */

/* Doubly linked list node (intrusive), for O(1) unlink of waits. */
typedef struct sl_link {
    struct sl_link *prev, *next;
} sl_link;
static inline void sl_link_init(sl_link *l) { l->prev = l->next = l; }
static inline bool sl_link_empty(const sl_link *l) { return l->next == l; }
static inline void sl_link_insert_tail(sl_link *head, sl_link *l)
{
    l->prev = head->prev;
    l->next = head;
    head->prev->next = l;
    head->prev = l;
}
static inline void sl_link_remove(sl_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}
#define SL_CONTAINER(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Topic-level configs (Kafka names); `set` marks those given explicitly. */
typedef struct sl_topic_config {
    int64_t retention_ms, retention_bytes, segment_bytes, segment_ms;
    int32_t max_message_bytes;
    uint32_t set;  /* bit per sl_tconf_key */
} sl_topic_config;

struct sl_partition {
    sl_topic *topic;
    int32_t index;
    sl_log *log;
    sl_link produce_waits;   /* sl_produce_wait, in offset order */
    sl_link fetch_waits;     /* sl_fetch_wait */
    sl_pstate *pstate;       /* idempotent producers' sequences (producers.c) */
    /* flusher.c, loop thread */
    bool dirty;              /* appended since its last sync job was prepared */
    bool listed;             /* on the flusher's list for start_jobs */
    sl_partition *dirty_next;    /* that list */
    sl_log_sync_job *sync_job;   /* its job out (queued, running or done), or NULL */
    int64_t sync_t0_ns;          /* when that job was prepared */
    /* flusher.c, under its mutex while the job is out */
    sl_partition *sync_next;     /* the sync threads' queue, then the done list */
    int sync_rc;
};

struct sl_topic {
    char name[SL_TOPIC_NAME_MAX + 1];
    int32_t npartitions;
    sl_partition **partitions;
    sl_topic_config config;
    sl_topic *hash_next;
};

typedef enum {
    SL_REQ_QUEUED,       /* parsed, not yet handled */
    SL_REQ_WAITING,      /* handled, response waits for a sync or for data */
    SL_REQ_DONE,         /* response encoded in out */
    SL_REQ_NO_RESPONSE   /* produce with acks=0 */
} sl_req_state;

struct sl_request {
    sl_request *next;
    sl_conn *conn;
    sl_req_state state;
    sl_kreq_header hdr;
    uint8_t *frame;      /* owned: the whole frame including the 4-byte size */
    size_t frame_len;
    size_t frame_cap;    /* its capacity, for broker->frames */
    const uint8_t *body; /* past the header */
    size_t body_len;
    sl_arena arena;
    sl_buf out;          /* response: 4-byte size, header, body */
    sl_kwriter_splice *splices;  /* file ranges of the response (Fetch), splices_max of them */
    int nsplices, splices_max;
    void *hstate;        /* handler state while waiting */
    int64_t t_start_ns;
};

struct sl_conn {
    struct sl_broker *broker;
    sl_io io;
    int fd;
    char peer[64];
    uint8_t *rbuf;
    size_t rlen;
    sl_request *partial;  /* a large frame being read straight into its own buffer */
    size_t partial_have;
    sl_request *head, *tail;
    int nreq;
    int nwaiting_durable; /* requests linked into partitions' produce waits (Produce, OffsetCommit...) */
    sl_outq outq;
    bool closed;          /* fd closed; freed when nwaiting_durable reaches 0 */
    bool read_paused;
    bool read_eof;        /* the peer finished sending: handle what arrived, answer, then close */
    bool in_pump, pump_again; /* sl__conn_pump re-entrancy guard */
    sl_defer defer;
    sl_defer pump_defer;  /* sl__conn_pump_later */
    sl_link link;         /* broker's connection list */
    sl_link mem_link;     /* in broker->mem_waiters while mem_wait */
    bool mem_wait;        /* waiting for the broker-wide request budget */
};

typedef struct sl_flusher sl_flusher;

struct sl_broker {
    sl_broker_config cfg;
    sl_loop *loop;
    int lock_fd;
    int listen_fd;
    int port;
    sl_io listen_io;
    sl_io signal_io;
    int signal_fd;
    sl_async *stop_async;
    bool stopping;
    sl_link conns;
    int nconns;
    int64_t queued_bytes;      /* frame bytes of all live requests (bounded by cfg.queued_max_bytes) */
    sl_bufpool frames;         /* freed large frame buffers kept mapped for the next (common/bufpool.h) */
    sl_link mem_waiters;       /* connections that stopped reading until queued_bytes drops */
    int64_t mem_waits;         /* times a connection had to wait for the budget */
    char cluster_id[32];
    /* topics */
    sl_topic **topic_hash;
    int topic_hash_size;
    int ntopics;
    sl_flusher *flusher;
    struct sl_coord *coord;    /* consumer groups (group_int.h) */
    struct sl_tcoord *tcoord;  /* transactions (txn_int.h) */
    int64_t pid_next, pid_end; /* producer ids reserved on disk, not yet handed out (producers.c) */
    int64_t fault_produces;    /* produces counted by the --fault-drop-produce-every hook */
    int64_t idem_retries;      /* idempotent batches answered from producer state instead of appended */
    sl_timer retention_timer;
    sl_timer stop_timer;
    int64_t t_exec_ns;
};

/* ---- conn.c ---- */
int sl__conn_accept(struct sl_broker *broker, int fd, const char *peer);
void sl__conn_close(sl_conn *conn, const char *why);
void sl__conn_stop_reading(sl_conn *conn);
/* Makes progress now: dispatch what may be dispatched, send what is ready. */
void sl__conn_pump(sl_conn *conn);
/* The same at the end of this loop turn. Completions coming from the flusher use it, so no handler
   runs inside a sync round's completion (a handler may delete the partitions the round covers). */
void sl__conn_pump_later(sl_conn *conn);
/* Decodes the request body into msg (the generated struct of the request's api key). */
int sl__request_decode(sl_request *req, void *msg);
/* Encodes header + msg (the response struct of the request's api key) into req->out; marks it DONE. */
int sl__request_respond(sl_request *req, const void *msg);
void sl__request_respond_and_pump(sl_request *req, const void *msg);

/* ---- topics.c ---- */
int sl__topics_load(struct sl_broker *broker);
void sl__topics_close_all(struct sl_broker *broker);
sl_topic *sl__topic_find(struct sl_broker *broker, const char *name, size_t len);
/* Kafka's rules: 1-249 chars of [a-zA-Z0-9._-], not "." or "..". */
bool sl__topic_name_valid(const char *name, size_t len);
int16_t sl__topic_create(struct sl_broker *broker, const char *name, size_t len, int32_t npartitions,
                         const sl_topic_config *config, bool validate_only, char *msg, size_t msg_len);
int16_t sl__topic_delete(struct sl_broker *broker, sl_topic *topic);
int16_t sl__topic_add_partitions(struct sl_broker *broker, sl_topic *topic, int32_t count, bool validate_only,
                                 char *msg, size_t msg_len);
sl_partition *sl__partition_get(sl_topic *topic, int32_t index);
void sl__topic_config_default(const struct sl_broker *broker, sl_topic_config *config);
/* Parses one Kafka topic config into config; Kafka error code + message on failure. */
int16_t sl__topic_config_set(sl_topic_config *config, const char *key, size_t key_len, const char *value,
                             size_t value_len, char *msg, size_t msg_len);
void sl__log_config_of(const struct sl_broker *broker, const sl_topic_config *tc, sl_log_config *lc);
/* Iterates topics in hash order (for Metadata "all topics" and shutdown). */
sl_topic *sl__topic_next(struct sl_broker *broker, sl_topic *prev);

/* Arrays kept sorted by (topic, partition) (a group's offsets, a transaction's partitions): the index of the
   first of the n elements (each `size` bytes, topic a `char *` at topic_off, partition an int32_t at part_off)
   not below the key; *found tells whether it is the key. */
int sl__tp_lower_bound(const void *base, int n, size_t size, size_t topic_off, size_t part_off, const char *topic,
                       size_t len, int32_t partition, bool *found);

/* Describes configs: for DescribeConfigs. */
typedef struct sl_tconf_entry {
    const char *name;
    char value[32];
    bool is_default;
    bool read_only;
} sl_tconf_entry;
int sl__topic_config_describe(const struct sl_broker *broker, const sl_topic_config *config,
                              sl_tconf_entry *out, int max);
int sl__broker_config_describe(const struct sl_broker *broker, sl_tconf_entry *out, int max);

/* ---- flusher.c: group commit and produce waits ---- */
int sl__flusher_new(struct sl_broker *broker, sl_flusher **out);
void sl__flusher_free(sl_flusher *flusher);
/* After an append: marks the partition dirty; its sync job starts at the end of the turn unless one is out. */
void sl__flusher_dirty(sl_flusher *flusher, sl_partition *partition);
/* Blocks (loop thread) until no round is out; used before removing a log. */
void sl__flusher_quiesce(sl_flusher *flusher);
bool sl__flusher_idle(const sl_flusher *flusher);

/* A wait for a partition's durable offset to pass an append (Produce, and the coordinator's appends). */
typedef struct sl_produce_wait sl_produce_wait;
struct sl_produce_wait {
    sl_link link;
    sl_request *req;         /* the request that waits, or NULL */
    int64_t offset_needed;   /* durable offset that acknowledges this append */
    sl_ProduceResponse_PartitionProduceResponse *presp;
    void *arg;
    /* Called once, unlinked: error_code 0 = durable, else the append is lost (storage error, shutdown). */
    void (*complete)(sl_produce_wait *w, int16_t error_code);
};
/* Drops a partition's produce waits with an error (topic deleted, log failed). */
void sl__produce_waits_fail(sl_partition *partition, int16_t error_code);
/* The partition's durable offset moved (or its sync failed: error != 0). */
void sl__produce_waits_advance(sl_partition *partition, int16_t error_code);

/* ---- handlers ---- */
typedef int (*sl_handler_fn)(struct sl_broker *broker, sl_request *req);
int sl__handle_api_versions(struct sl_broker *broker, sl_request *req);
int sl__handle_metadata(struct sl_broker *broker, sl_request *req);
int sl__handle_find_coordinator(struct sl_broker *broker, sl_request *req);
int sl__handle_produce(struct sl_broker *broker, sl_request *req);
int sl__handle_fetch(struct sl_broker *broker, sl_request *req);
int sl__handle_list_offsets(struct sl_broker *broker, sl_request *req);
int sl__handle_create_topics(struct sl_broker *broker, sl_request *req);
int sl__handle_delete_topics(struct sl_broker *broker, sl_request *req);
int sl__handle_create_partitions(struct sl_broker *broker, sl_request *req);
int sl__handle_describe_configs(struct sl_broker *broker, sl_request *req);
int sl__handle_join_group(struct sl_broker *broker, sl_request *req);
int sl__handle_sync_group(struct sl_broker *broker, sl_request *req);
int sl__handle_heartbeat(struct sl_broker *broker, sl_request *req);
int sl__handle_leave_group(struct sl_broker *broker, sl_request *req);
int sl__handle_describe_groups(struct sl_broker *broker, sl_request *req);
int sl__handle_list_groups(struct sl_broker *broker, sl_request *req);
int sl__handle_delete_groups(struct sl_broker *broker, sl_request *req);
int sl__handle_offset_commit(struct sl_broker *broker, sl_request *req);
int sl__handle_offset_fetch(struct sl_broker *broker, sl_request *req);
int sl__handle_txn_offset_commit(struct sl_broker *broker, sl_request *req);
int sl__handle_init_producer_id(struct sl_broker *broker, sl_request *req);
int sl__handle_add_partitions_to_txn(struct sl_broker *broker, sl_request *req);
int sl__handle_add_offsets_to_txn(struct sl_broker *broker, sl_request *req);
int sl__handle_end_txn(struct sl_broker *broker, sl_request *req);

/* ---- idempotent producers (producers.c) ---- */
/* The next producer id (reserving a block on disk when needed): 0, or SL_EIO (logged). */
int sl__producer_id_next(struct sl_broker *broker, int64_t *pid);
/* After the partition's log opened: loads its producer state (snapshot + the log after it). */
int sl__producers_open(struct sl_broker *broker, sl_partition *p);
/* clean: write the snapshot (shutdown). */
void sl__producers_close(struct sl_broker *broker, sl_partition *p, bool clean);
/* A batch with a producer id, before its append: 0 = append it (or, *dup_first >= 0, it is a retry of the
   batch at [*dup_first, *dup_last]: answer that), else the Kafka error. */
int16_t sl__producer_check(sl_partition *p, const sl_batch_header *h, int64_t *dup_first, int64_t *dup_last);
/* Makes the partition's producer state durable before its first idempotent batch. */
int16_t sl__producer_before_append(struct sl_broker *broker, sl_partition *p);
void sl__producer_appended(struct sl_broker *broker, sl_partition *p, const sl_batch_header *h, int64_t base_offset);
/* Forgets producers idle for producer_id_expiration_ms; returns how many (the retention tick calls it). */
int sl__producers_expire(struct sl_broker *broker, sl_partition *p);
/* The log was rewound (a failed sync): the state follows it. */
void sl__producers_rebuild(struct sl_broker *broker, sl_partition *p);

/* ---- transactions on a partition (producers.c) ---- */
#define SL_MARKER_ABORT 0  /* ControlRecordType */
#define SL_MARKER_COMMIT 1
typedef struct sl_aborted_txn {
    int64_t pid, first, last; /* last: the ABORT marker's offset */
} sl_aborted_txn;
/* The last stable offset: the first offset of the oldest transaction not both ended and below HW, else HW. */
int64_t sl__partition_lso(sl_partition *p);
/* The aborted transactions overlapping [from, to) (marker >= from, first < to): up to max go to out;
   returns how many there are. */
int sl__partition_aborted(sl_partition *p, int64_t from, int64_t to, sl_aborted_txn *out, int max);
/* Appends a COMMIT/ABORT control batch for pid (Kafka's 6-byte marker value): 0 with *offset, else a Kafka
   error. The caller waits for it to be durable. */
int16_t sl__partition_write_marker(struct sl_broker *broker, sl_partition *p, int64_t pid, int16_t epoch,
                                   bool commit, int64_t *offset);
/* SL_MARKER_COMMIT/SL_MARKER_ABORT for a whole control batch, else -1. */
int sl__marker_type(const uint8_t *batch, size_t len);

/* ---- internal topics (internal.c) ---- */
#define SL_OFFSETS_TOPIC "__consumer_offsets"
#define SL_TXN_TOPIC "__transaction_state"
/* Where one record's key and value sit in an encoding buffer (val_len -1: a tombstone). */
typedef struct sl_irec {
    size_t key_at, key_len, val_at;
    int32_t val_len;
} sl_irec;
/* One internal topic's single partition, with its compaction bookkeeping. */
typedef struct sl_ilog {
    struct sl_broker *broker;
    const char *name;
    sl_partition *p;
    sl_buf scratch;                 /* batch encoding */
    int64_t bytes_since_snapshot;   /* appended since the last snapshot */
    int64_t snapshot_bytes;         /* size of the last snapshot */
    int64_t snapshot_drop_before;   /* segments wholly below this go once the snapshot is durable */
    int64_t snapshot_end;           /* the snapshot's end offset (-1: no snapshot waiting to drop segments) */
    int64_t expired_ns;             /* when the owner's expiry last ran */
} sl_ilog;
bool sl__topic_internal(const sl_topic *topic);
/* Opens (creating the topic at first start) the internal topic `name`. */
int sl__ilog_open(struct sl_broker *broker, const char *name, sl_ilog *l);
void sl__ilog_close(sl_ilog *l);
/* Appends one batch (header h: producer fields and attributes, NULL = a plain batch). With flush `always`
   and w != NULL, w is linked to complete when the batch is durable and *waiting is set; otherwise it is as
   durable as it gets now. *base (may be NULL) = its offset. 0 or a Kafka error code (nothing appended). */
int16_t sl__ilog_append(sl_ilog *l, const sl_batch_header *h, const sl_buf *kv, const sl_irec *recs, int n,
                        sl_produce_wait *w, bool *waiting, int64_t *base);
/* The same for a request: done(req, arg, error) runs when the records are durable (now, or later with
   the request parked and its connection kept until then). Returns the append's own error: 0 = in the log. */
typedef void (*sl_ilog_done_fn)(sl_request *req, void *arg, int16_t error_code);
int16_t sl__ilog_append_for(sl_ilog *l, sl_request *req, const sl_batch_header *h, const sl_buf *kv,
                            const sl_irec *recs, int n, sl_ilog_done_fn done, void *arg);
/* Appends a transaction marker, waiting like sl__ilog_append. */
int16_t sl__ilog_marker(sl_ilog *l, int64_t pid, int16_t epoch, bool commit, sl_produce_wait *w, bool *waiting);
/* Whether the owner's expiry (of what has been idle retention_ms) should run now: each minute, or a quarter
   of the retention when that is shorter. */
bool sl__ilog_expiry_due(sl_ilog *l, int64_t retention_ms);
/* The offset below which appends are durable (flush `os`: the high watermark). */
int64_t sl__ilog_durable_end(const sl_ilog *l);
/* Writes every live record again (sl__ilog_append); adds the bytes and items written. */
typedef int16_t (*sl_ilog_snapshot_fn)(void *arg, int64_t *bytes, int64_t *count);
/* Compaction, when due (each second): drops segments below the last durable snapshot, or writes a new
   snapshot; keep_from: the first offset the owner's snapshot does not supersede (INT64_MAX: none). */
void sl__ilog_maintain(sl_ilog *l, int64_t keep_from, sl_ilog_snapshot_fn snapshot, void *arg);

/* ---- the transaction coordinator (txn.c, h_txn.c) ---- */
/* Opens __transaction_state, rebuilds the transactions and completes those found half-ended. */
int sl__txn_open(struct sl_broker *broker);
/* Shutdown, before the logs close: drops the coordinator's waits, answers a parked EndTxn (NOT_COORDINATOR). */
void sl__txn_detach(struct sl_broker *broker);
void sl__txn_close(struct sl_broker *broker);
/* A transactional batch to p: its producer's transaction is open with this epoch and has added p. */
int16_t sl__txn_check_produce(struct sl_broker *broker, const sl_batch_header *h, const sl_partition *p);
/* A TxnOffsetCommit: the transaction is open with this producer and epoch and has added the group's offsets. */
int16_t sl__txn_check_offsets(struct sl_broker *broker, sl_kstr txn_id, int64_t pid, int16_t epoch);

/* ---- the group coordinator (group.c, offsets.c) ---- */
/* Opens __consumer_offsets and rebuilds groups and committed offsets from it. */
int sl__coord_open(struct sl_broker *broker);
void sl__coord_close(struct sl_broker *broker);
/* A parked JoinGroup/SyncGroup's connection is closing: unlink it from its member. */
void sl__group_release(sl_request *req);
/* Shutdown: answers every parked JoinGroup/SyncGroup (NOT_COORDINATOR: clients find us again after restart). */
void sl__groups_cancel_all(struct sl_broker *broker);
/* A topic is being deleted: its committed offsets go too. */
void sl__groups_topic_deleted(struct sl_broker *broker, const char *topic);

/* The served API table (dispatch.c): only these are advertised. */
typedef struct sl_api_entry {
    int16_t key;
    int16_t min, max;
    sl_handler_fn handler;
} sl_api_entry;
const sl_api_entry *sl__api_entry(int16_t key);
int sl__api_count(void);
const sl_api_entry *sl__api_at(int i);
int sl__dispatch(struct sl_broker *broker, sl_request *req);

/* Fetch waits (h_fetch.c): a partition's high watermark moved. */
void sl__fetch_waits_notify(sl_partition *partition);
/* A parked fetch on a closing connection or a shutting-down broker answers now. */
void sl__fetch_cancel(sl_request *req);
void sl__fetch_release(sl_request *req);

/* Called whenever a partition's high watermark may have advanced. */
static inline void sl__partition_hw_advanced(sl_partition *partition) { sl__fetch_waits_notify(partition); }

#define ARENA_ARRAY(req, ptr, n) ((ptr) = sl_arena_alloc(&(req)->arena, sizeof *(ptr) * (size_t)((n) > 0 ? (n) : 1)))

/* An sl_kstr as a NUL-terminated copy in the request arena (NULL if no memory). */
char *sl__arena_cstr(sl_arena *arena, sl_kstr s);
sl_kstr sl__kstr(const char *s);

#endif
