/*
 * group_int.h - the group coordinator's structures (private to src/broker).
 *
 * Files:
 *   group.c       the group state machine: members, rebalances, session
 *                 timeouts, static membership (the diagram is at its top)
 *   h_group.c     JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
 *                 DescribeGroups, ListGroups, DeleteGroups
 *   offsets.c     the internal topic __consumer_offsets: record formats,
 *                 appends that wait for durability, replay on start,
 *                 compaction by snapshot
 *   h_offsets.c   OffsetCommit, OffsetFetch
 *
 * Everything runs on the loop thread. A group lives in the coordinator's
 * hash from its first join or commit until it is deleted; a member lives in
 * its group's list. Requests parked by the state machine (JoinGroup and
 * SyncGroup waiting for the rebalance) are pointed to by their member and
 * point back through req->hstate; a closing connection unlinks them
 * (sl__group_release).
 */
#ifndef SL_BROKER_GROUP_INT_H
#define SL_BROKER_GROUP_INT_H

#include "broker/broker_int.h"

#define SL_GROUP_ID_MAX 1024            /* bytes of a group id we accept */
#define SL_GROUP_MEMBERS_MAX 1000       /* members + pending members of one group (group.max.size) */
#define SL_GROUP_METADATA_MAX 4096      /* offset.metadata.max.bytes */
#define SL_GROUP_PROTOCOLS_MAX 64       /* protocols one member may offer */

typedef enum {
    SL_GROUP_EMPTY,
    SL_GROUP_PREPARING_REBALANCE,
    SL_GROUP_COMPLETING_REBALANCE,
    SL_GROUP_STABLE,
    SL_GROUP_DEAD
} sl_group_state;

typedef struct sl_group sl_group;

#define SL_PARKED ((int16_t)-1) /* a handler's answer comes later (or was already given) */

typedef struct sl_gprotocol {
    char *name;
    uint8_t *meta;
    int32_t meta_len;
} sl_gprotocol;

typedef struct sl_member {
    sl_link link;               /* the group's members (or pending members), join order */
    sl_group *group;
    char *id;
    char *instance_id;          /* group.instance.id of a static member, else NULL */
    char *client_id, *client_host;
    int32_t session_timeout_ms, rebalance_timeout_ms;
    char *protocol_type;        /* as the member sent it */
    sl_gprotocol *protocols;
    int nprotocols;
    uint8_t *assignment;        /* from the leader's SyncGroup; NULL = none */
    int32_t assignment_len;
    bool awaiting_join;         /* sent JoinGroup in this rebalance (even if its connection has gone since) */
    bool awaiting_sync;         /* sent SyncGroup, waiting for the leader's assignment to be stored */
    sl_request *join_req;       /* that JoinGroup, parked; NULL once its connection closed */
    sl_request *sync_req;       /* that SyncGroup, parked */
    int64_t deadline_ns;        /* session expiry (last heartbeat + session timeout) */
    bool is_new;                /* joined in the current rebalance */
} sl_member;

/* One committed offset. `pending` counts appends of this key not yet durable (see offsets.c). */
typedef struct sl_goffset {
    char *topic;
    int32_t partition;
    int32_t leader_epoch;
    bool committed;             /* false: nothing committed yet (an entry made by a pending append) */
    int64_t offset;             /* any value a client committed, negative ones included (kafkajs: -2) */
    int64_t commit_ts;
    char *metadata;
    int pending;
} sl_goffset;

struct sl_group {
    char *id;
    sl_group_state state;
    int32_t generation;
    char *protocol_type;        /* NULL for a group that only stores offsets */
    char *protocol_name;        /* selected protocol of the generation, NULL when none */
    struct sl_coord *coord;
    sl_member *leader;
    sl_link members;
    int nmembers;
    sl_link pending;            /* v4+ members given an id by MEMBER_ID_REQUIRED, not yet joined */
    int npending;
    bool initial_delay;         /* PreparingRebalance of an empty group: complete at the deadline only */
    bool new_member_added;      /* a member joined during that initial delay: extend it once more */
    int64_t initial_remaining_ms;
    int64_t rebalance_deadline_ns;
    int64_t state_ts_ms;        /* wall time of the last state change */
    int64_t rebalances;         /* PreparingRebalance entries since start (for metrics) */
    int store_pending;          /* group records appended, not yet durable */
    int txn_pending;            /* offsets committed in open transactions (coord->txn_offsets) */
    int32_t storing_generation; /* generation whose assignment is being stored (-1: none) */
    sl_goffset *offsets;        /* sorted by (topic, partition) */
    int noffsets, offsets_cap;
    sl_timer timer;
    sl_group *hash_next;
};

/* An offset committed in a transaction (TxnOffsetCommit): applied at its COMMIT marker, dropped at ABORT. */
typedef struct sl_txn_offset {
    int64_t pid;
    sl_group *group;
    sl_goffset value;           /* topic, partition, offset, leader epoch, metadata, commit time */
    int64_t log_offset;         /* at or before its record in __consumer_offsets (compaction keeps it) */
} sl_txn_offset;

typedef struct sl_coord {
    sl_broker *broker;
    sl_group **hash;
    int hash_size;
    int ngroups;
    uint64_t id_seed, id_counter;   /* member ids */
    sl_ilog ilog;                   /* __consumer_offsets */
    sl_txn_offset *txn_offsets;     /* of open transactions, in commit order */
    int ntxn_offsets, txn_offsets_cap;
    sl_timer tick;                  /* maintenance, every second */
} sl_coord;

/* ---- group.c ---- */
/* 1-1024 bytes without NUL (ids are kept as C strings). */
bool sl__group_id_valid(sl_kstr id);
const char *sl__group_state_name(sl_group_state state);
sl_group *sl__group_find(sl_coord *c, const char *id, size_t len);
sl_group *sl__group_get_or_create(sl_coord *c, const char *id, size_t len);
/* Frees a group that holds nothing worth keeping (no members, no offsets, generation 0). */
void sl__group_maybe_forget(sl_coord *c, sl_group *g);
/* Removes and frees a group (DeleteGroups; it must be Empty). */
void sl__group_remove(sl_coord *c, sl_group *g);
sl_member *sl__group_member(sl_group *g, const char *id, size_t len);
sl_member *sl__group_static_member(sl_group *g, const char *instance_id, size_t len);
/* A static member's id differs from the one its instance id now maps to. */
bool sl__group_fenced(sl_group *g, sl_kstr member_id, sl_kstr instance_id);
/* Restores a member from __consumer_offsets on start (the group is given its state after load). */
sl_member *sl__group_member_restore(sl_group *g, const char *id, const char *instance_id, const char *client_id,
                                    const char *host, int32_t session_ms, int32_t rebalance_ms,
                                    const uint8_t *sub, int32_t sub_len, const uint8_t *assign, int32_t assign_len);
void sl__group_loaded(sl_coord *c, sl_group *g);
/* Drops members, leader, protocol and generation (a group record is being replayed over it). */
void sl__group_reset(sl_group *g);
void sl__member_free(sl_member *m);

int16_t sl__group_join(sl_coord *c, sl_request *req, const sl_JoinGroupRequest *m, sl_JoinGroupResponse *resp);
int16_t sl__group_sync(sl_coord *c, sl_request *req, const sl_SyncGroupRequest *m, sl_SyncGroupResponse *resp);
int16_t sl__group_heartbeat(sl_coord *c, const sl_HeartbeatRequest *m);
int16_t sl__group_leave(sl_coord *c, sl_group *g, sl_kstr member_id, sl_kstr instance_id);
/* Validates an OffsetCommit's group fields (Kafka's order); 0 = the commit may be stored. */
int16_t sl__group_commit_check(sl_group *g, int32_t generation, sl_kstr member_id, sl_kstr instance_id);

/* ---- offsets.c ---- */

/* Record encoders (Kafka's formats), appending to kv; value/tombstone NULL/true = a tombstone. */
void sl__offsets_commit_record(sl_buf *kv, const char *group, const char *topic, size_t topic_len,
                               int32_t partition, const sl_goffset *value, sl_irec *rec);
void sl__offsets_group_record(sl_buf *kv, const sl_group *g, bool tombstone, sl_irec *rec);
/* Appends one batch to __consumer_offsets. With flush `always` and w != NULL, w is linked to complete
   when the batch is durable and *waiting is set; otherwise it is as durable as it gets now.
   Returns 0 or a Kafka error code (nothing appended). */
int16_t sl__offsets_append(sl_coord *c, const sl_buf *kv, const sl_irec *recs, int n, sl_produce_wait *w,
                           bool *waiting);
/* The same for a request: done(req, arg, error) runs when the records are durable (now, or later with
   the request parked and its connection kept until then). Returns the append's own error: 0 = in the log. */
int16_t sl__offsets_append_for(sl_coord *c, sl_request *req, const sl_buf *kv, const sl_irec *recs, int n,
                               sl_ilog_done_fn done, void *arg);
/* Tombstones for every offset of g and for its group record, appended to kv and *recs (grown as needed). */
void sl__offsets_group_tombstones(sl_buf *kv, sl_irec **recs, int *n, int *cap, const sl_group *g);
/* Appends the group's metadata without waiting (a later snapshot or record supersedes it anyway). */
int16_t sl__offsets_store_group(sl_coord *c, sl_group *g);
/* Offsets of open transactions (a TxnOffsetCommit durable, or replayed): value's strings are copied. */
void sl__offsets_txn_add(sl_coord *c, int64_t pid, sl_group *g, const sl_goffset *value, int64_t log_offset);
/* The transaction of pid ended (its marker is durable): its offsets are applied (commit) or dropped. */
void sl__offsets_txn_complete(sl_coord *c, int64_t pid, bool commit);
/* Whether an open transaction holds an offset for it (OffsetFetch RequireStable). */
bool sl__offsets_txn_pending(sl_coord *c, const sl_group *g, const char *topic, size_t topic_len, int32_t partition);
void sl__offsets_txn_drop_group(sl_coord *c, sl_group *g);
void sl__offsets_txn_drop_topic(sl_coord *c, const char *topic);
/* The lowest log offset a pending transactional batch may sit at (INT64_MAX: none). */
int64_t sl__offsets_txn_first(const sl_coord *c);
void sl__offsets_txn_free(sl_coord *c);
/* Snapshot and drop of old segments, when due (a 1 s tick). */
void sl__offsets_maintain(sl_coord *c);
sl_goffset *sl__goffset_find(sl_group *g, const char *topic, size_t topic_len, int32_t partition);
/* Finds or inserts (offset -1: nothing committed). */
sl_goffset *sl__goffset_get(sl_group *g, const char *topic, size_t topic_len, int32_t partition);
void sl__goffset_remove(sl_group *g, sl_goffset *o);
void sl__goffset_set(sl_goffset *o, int64_t offset, int32_t leader_epoch, const char *meta, size_t meta_len,
                     int64_t ts);

#endif
