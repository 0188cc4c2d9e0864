/*
 * offsets.c - __consumer_offsets: where groups and committed offsets live.
 *
 * An internal topic of one partition, written through the same log, the
 * same group commit and the same durability as user data, in Kafka's own
 * record formats (so Kafka's tools can read it):
 *
 *   offset commit   key   v1: int16 1, string group, string topic, int32 partition
 *                   value v3: int16 3, int64 offset, int32 leader epoch, string metadata,
 *                             int64 commit timestamp
 *   group metadata  key   v2: int16 2, string group
 *                   value v3: int16 3, string protocol type, int32 generation,
 *                             nullable string protocol, nullable string leader,
 *                             int64 state timestamp, [member id, nullable instance id,
 *                             client id, client host, int32 rebalance timeout,
 *                             int32 session timeout, bytes subscription, bytes assignment]
 *   a null value is a tombstone (the offset, or the group, is deleted)
 *
 * On start the whole log is replayed in order; the last record of a key
 * wins. Older value versions (v0-v2 of both) are read too.
 *
 * Visibility: a commit becomes visible to OffsetFetch when its record is
 * durable (flush `always`), as Kafka applies a commit when the append
 * completes. Until then its offset entry counts the pending append.
 *
 * Compaction, by snapshot: once more than max(offsets_compact_bytes, 2 x
 * the last snapshot) has been appended since the last snapshot, every live
 * group and offset is written again at the end of the log. An offset whose
 * own append is still pending is left out: that record precedes the
 * snapshot and is newer than the value in memory. When the snapshot is
 * durable, every segment that ends before it is deleted: the snapshot and
 * what follows supersede them (a replay of any suffix that starts at or
 * before the snapshot rebuilds the same state).
 */
#include <stdio.h>
#include <string.h>
#include "broker/group_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "storage/batch.h"

#define SL_SNAPSHOT_BATCH_BYTES (1 << 20)

/* ---- committed offsets of a group: a sorted array ---- */

static int lower_bound(const sl_group *g, const char *topic, size_t len, int32_t partition, bool *found)
{
    return sl__tp_lower_bound(g->offsets, g->noffsets, sizeof *g->offsets, offsetof(sl_goffset, topic),
                              offsetof(sl_goffset, partition), topic, len, partition, found);
}

sl_goffset *sl__goffset_find(sl_group *g, const char *topic, size_t topic_len, int32_t partition)
{
    bool found;
    int i = lower_bound(g, topic, topic_len, partition, &found);
    return found ? &g->offsets[i] : NULL;
}

sl_goffset *sl__goffset_get(sl_group *g, const char *topic, size_t topic_len, int32_t partition)
{
    bool found;
    int i = lower_bound(g, topic, topic_len, partition, &found);
    if (found) return &g->offsets[i];
    if (g->noffsets == g->offsets_cap) {
        g->offsets_cap = g->offsets_cap ? g->offsets_cap * 2 : 8;
        g->offsets = sl_realloc(g->offsets, sizeof *g->offsets * (size_t)g->offsets_cap);
    }
    memmove(&g->offsets[i + 1], &g->offsets[i], sizeof *g->offsets * (size_t)(g->noffsets - i));
    g->noffsets++;
    sl_goffset *o = &g->offsets[i];
    memset(o, 0, sizeof *o);
    o->topic = sl_strndup(topic, topic_len);
    o->partition = partition;
    o->offset = -1;
    o->leader_epoch = -1;
    o->committed = false;
    return o;
}

void sl__goffset_remove(sl_group *g, sl_goffset *o)
{
    int i = (int)(o - g->offsets);
    SL_ASSERT(i >= 0 && i < g->noffsets);
    sl_free(o->topic);
    sl_free(o->metadata);
    memmove(&g->offsets[i], &g->offsets[i + 1], sizeof *g->offsets * (size_t)(g->noffsets - i - 1));
    g->noffsets--;
}

void sl__goffset_set(sl_goffset *o, int64_t offset, int32_t leader_epoch, const char *meta, size_t meta_len,
                     int64_t ts)
{
    o->committed = true;
    o->offset = offset;
    o->leader_epoch = leader_epoch;
    o->commit_ts = ts;
    sl_free(o->metadata);
    o->metadata = sl_strndup(meta ? meta : "", meta ? meta_len : 0);
}

/* ---- record encoding ---- */

static void put_str(sl_kwriter *w, const char *s) { sl_kwrite_str(w, false, s == NULL, sl__kstr(s)); }

static void rec_begin(sl_kwriter *w, sl_buf *kv, sl_irec *rec)
{
    sl_kwriter_init(w, kv, NULL, 0);
    rec->key_at = kv->len;
}

void sl__offsets_commit_record(sl_buf *kv, const char *group, const char *topic, size_t topic_len,
                               int32_t partition, const sl_goffset *value, sl_irec *rec)
{
    sl_kwriter w;
    rec_begin(&w, kv, rec);
    sl_kwrite_int16(&w, 1);
    put_str(&w, group);
    sl_kwrite_str(&w, false, false, (sl_kstr){topic, (int32_t)topic_len});
    sl_kwrite_int32(&w, partition);
    rec->key_len = kv->len - rec->key_at;
    rec->val_at = kv->len;
    rec->val_len = -1;
    if (!value) return;
    sl_kwrite_int16(&w, 3);
    sl_kwrite_int64(&w, value->offset);
    sl_kwrite_int32(&w, value->leader_epoch);
    put_str(&w, value->metadata ? value->metadata : "");
    sl_kwrite_int64(&w, value->commit_ts);
    rec->val_len = (int32_t)(kv->len - rec->val_at);
}

static void member_value(sl_kwriter *w, const sl_group *g, const sl_member *mb)
{
    put_str(w, mb->id);
    put_str(w, mb->instance_id);
    put_str(w, mb->client_id);
    put_str(w, mb->client_host);
    sl_kwrite_int32(w, mb->rebalance_timeout_ms);
    sl_kwrite_int32(w, mb->session_timeout_ms);
    const sl_gprotocol *p = NULL;
    for (int i = 0; g->protocol_name && i < mb->nprotocols; i++)
        if (strcmp(mb->protocols[i].name, g->protocol_name) == 0) p = &mb->protocols[i];
    sl_kwrite_bytes(w, false, false, p ? (sl_kbytes){p->meta, p->meta_len} : SL_KBYTES_EMPTY);
    sl_kwrite_bytes(w, false, false,
                    mb->assignment ? (sl_kbytes){mb->assignment, mb->assignment_len} : SL_KBYTES_EMPTY);
}

void sl__offsets_group_record(sl_buf *kv, const sl_group *g, bool tombstone, sl_irec *rec)
{
    sl_kwriter w;
    rec_begin(&w, kv, rec);
    sl_kwrite_int16(&w, 2);
    put_str(&w, g->id);
    rec->key_len = kv->len - rec->key_at;
    rec->val_at = kv->len;
    rec->val_len = -1;
    if (tombstone) return;
    sl_kwrite_int16(&w, 3);
    put_str(&w, g->protocol_type ? g->protocol_type : "");
    sl_kwrite_int32(&w, g->generation);
    put_str(&w, g->protocol_name);
    put_str(&w, g->leader ? g->leader->id : NULL);
    sl_kwrite_int64(&w, g->state_ts_ms);
    sl_kwrite_int32(&w, g->nmembers);
    for (sl_link *l = g->members.next; l != &g->members; l = l->next)
        member_value(&w, g, SL_CONTAINER(l, sl_member, link));
    rec->val_len = (int32_t)(kv->len - rec->val_at);
}

void sl__offsets_group_tombstones(sl_buf *kv, sl_irec **recs, int *n, int *cap, const sl_group *g)
{
    if (*n + g->noffsets + 1 > *cap) {
        *cap = (*n + g->noffsets + 1) * 2;
        *recs = sl_realloc(*recs, sizeof **recs * (size_t)*cap);
    }
    for (int j = 0; j < g->noffsets; j++)
        sl__offsets_commit_record(kv, g->id, g->offsets[j].topic, strlen(g->offsets[j].topic),
                                  g->offsets[j].partition, NULL, &(*recs)[(*n)++]);
    sl__offsets_group_record(kv, g, true, &(*recs)[(*n)++]);
}

/* ---- appends ---- */

int16_t sl__offsets_append(sl_coord *c, const sl_buf *kv, const sl_irec *recs, int n, sl_produce_wait *w,
                           bool *waiting)
{
    return sl__ilog_append(&c->ilog, NULL, kv, recs, n, w, waiting, NULL);
}

int16_t sl__offsets_append_for(sl_coord *c, sl_request *req, const sl_buf *kv, const sl_irec *recs, int n,
                               sl_ilog_done_fn done, void *arg)
{
    return sl__ilog_append_for(&c->ilog, req, NULL, kv, recs, n, done, arg);
}

int16_t sl__offsets_store_group(sl_coord *c, sl_group *g)
{
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec rec;
    sl__offsets_group_record(&kv, g, false, &rec);
    bool waiting;
    int16_t err = sl__offsets_append(c, &kv, &rec, 1, NULL, &waiting);
    sl_buf_deinit(&kv);
    return err;
}

/* ---- replay on start ---- */

static char *kdup(sl_kstr s) { return s.len < 0 ? NULL : sl_strndup(s.ptr, (size_t)s.len); }

/* An offset record; txn_pid >= 0: it belongs to that producer's open transaction (held until its marker). */
static void replay_offset(sl_coord *c, sl_kstr group, sl_kstr topic, int32_t partition, const sl_record *r,
                          int64_t txn_pid, int64_t log_offset)
{
    if (!sl__group_id_valid(group) || topic.len <= 0 || topic.len > SL_TOPIC_NAME_MAX ||
        memchr(topic.ptr, 0, (size_t)topic.len))
        return;
    sl_group *g = sl__group_get_or_create(c, group.ptr, (size_t)group.len);
    if (!r->value) {
        sl_goffset *o = sl__goffset_find(g, topic.ptr, (size_t)topic.len, partition);
        if (o) sl__goffset_remove(g, o);
        return;
    }
    sl_kreader vr;
    sl_kreader_init(&vr, r->value, (size_t)r->value_len);
    int16_t v = sl_kread_int16(&vr);
    int64_t offset = sl_kread_int64(&vr);
    int32_t epoch = v >= 3 ? sl_kread_int32(&vr) : -1;
    sl_kstr meta = sl_kread_str(&vr, false, false);
    int64_t ts = sl_kread_int64(&vr);
    if (vr.err || v < 0 || v > 3 || meta.len > SL_GROUP_METADATA_MAX) {
        SL_WARN("group", "%s: skipping an offset record of group %.*s with a value it cannot read (version %d)",
                SL_OFFSETS_TOPIC, (int)group.len, group.ptr, v);
        return;
    }
    if (txn_pid >= 0) {
        char t[SL_TOPIC_NAME_MAX + 1], m[SL_GROUP_METADATA_MAX + 1];
        memcpy(t, topic.ptr, (size_t)topic.len);
        t[topic.len] = 0;
        memcpy(m, meta.ptr, (size_t)SL_MAX(meta.len, 0));
        m[SL_MAX(meta.len, 0)] = 0;
        sl_goffset val = {.topic = t, .partition = partition, .offset = offset, .leader_epoch = epoch, .metadata = m,
                          .commit_ts = ts};
        sl__offsets_txn_add(c, txn_pid, g, &val, log_offset);
        return;
    }
    sl_goffset *o = sl__goffset_get(g, topic.ptr, (size_t)topic.len, partition);
    sl__goffset_set(o, offset, epoch, meta.ptr, (size_t)meta.len, ts);
}

static int replay_member(sl_group *g, sl_kreader *r, int16_t v)
{
    char *id = kdup(sl_kread_str(r, false, false));
    char *inst = v >= 3 ? kdup(sl_kread_str(r, false, true)) : NULL;
    char *client = kdup(sl_kread_str(r, false, false));
    char *host = kdup(sl_kread_str(r, false, false));
    int32_t rebalance_ms = v >= 1 ? sl_kread_int32(r) : -1;
    int32_t session_ms = sl_kread_int32(r);
    sl_kbytes sub = sl_kread_bytes(r, false, false);
    sl_kbytes assign = sl_kread_bytes(r, false, false);
    int rc = r->err ? SL_EINVAL : 0;
    if (!rc)
        sl__group_member_restore(g, id, inst, client, host, session_ms, rebalance_ms > 0 ? rebalance_ms : session_ms,
                                 sub.ptr, sub.len, assign.ptr, assign.len);
    sl_free(id);
    sl_free(inst);
    sl_free(client);
    sl_free(host);
    return rc;
}

static void replay_group(sl_coord *c, sl_kstr group, const sl_record *r)
{
    if (!sl__group_id_valid(group)) return;
    sl_group *g = sl__group_get_or_create(c, group.ptr, (size_t)group.len);
    sl__group_reset(g);
    if (!r->value) {
        sl__group_maybe_forget(c, g);
        return;
    }
    sl_kreader vr;
    sl_kreader_init(&vr, r->value, (size_t)r->value_len);
    int16_t v = sl_kread_int16(&vr);
    sl_kstr type = sl_kread_str(&vr, false, false);
    g->generation = sl_kread_int32(&vr);
    sl_kstr proto = sl_kread_str(&vr, false, true), leader = sl_kread_str(&vr, false, true);
    if (v >= 2) g->state_ts_ms = sl_kread_int64(&vr);
    int32_t n = sl_kread_int32(&vr);
    g->protocol_type = type.len > 0 ? kdup(type) : NULL;
    g->protocol_name = kdup(proto);
    for (int32_t i = 0; i < n && !vr.err && v >= 0 && v <= 3; i++) replay_member(g, &vr, v);
    if (vr.err || v < 0 || v > 3) {
        SL_WARN("group", "%s: group %.*s has a metadata record it cannot read (version %d); its members "
                "will rejoin", SL_OFFSETS_TOPIC, (int)group.len, group.ptr, v);
        sl__group_reset(g);
        return;
    }
    g->leader = leader.len > 0 ? sl__group_member(g, leader.ptr, (size_t)leader.len) : NULL;
}

static void replay_record(sl_coord *c, const sl_record *r, int64_t txn_pid, int64_t log_offset, int64_t *nbad)
{
    sl_kreader kr;
    sl_kreader_init(&kr, r->key ? r->key : (const uint8_t *)"", (size_t)SL_MAX(r->key_len, 0));
    int16_t kv = sl_kread_int16(&kr);
    sl_kstr group = sl_kread_str(&kr, false, false);
    if (!kr.err && (kv == 0 || kv == 1)) {
        sl_kstr topic = sl_kread_str(&kr, false, false);
        int32_t partition = sl_kread_int32(&kr);
        if (!kr.err) replay_offset(c, group, topic, partition, r, txn_pid, log_offset);
    } else if (!kr.err && kv == 2 && txn_pid < 0) {
        replay_group(c, group, r);
    }
    if (kr.err || kv < 0 || kv > 2) (*nbad)++;
}

typedef struct replay_state {
    sl_coord *c;
    int64_t nrec, nbad;
} replay_state;

static int replay_batch(void *arg, const uint8_t *p, size_t size)
{
    replay_state *st = arg;
    sl_batch_header h;
    sl_batch_header_parse(p, size, &h);
    if (h.Attributes & SL_BATCH_ATTR_CONTROL) { /* a transaction's end: its held offsets apply, or go */
        int type = sl__marker_type(p, size);
        if (type >= 0) sl__offsets_txn_complete(st->c, h.ProducerId, type == SL_MARKER_COMMIT);
        return 0;
    }
    int64_t txn_pid = (h.Attributes & SL_BATCH_ATTR_TRANSACTIONAL) ? h.ProducerId : -1;
    sl_batch_iter it;
    if (sl_batch_iter_init(&it, p, size) != 0) { /* compressed: we never write those */
        st->nbad++;
        return 0;
    }
    sl_record r;
    int rc;
    while ((rc = sl_batch_iter_next(&it, &r)) == 1) {
        replay_record(st->c, &r, txn_pid, h.BaseOffset, &st->nbad);
        st->nrec++;
    }
    if (rc < 0) st->nbad++;
    return 0;
}

static int replay(sl_coord *c)
{
    sl_log *log = c->ilog.p->log;
    replay_state st = {.c = c};
    int rc = sl_log_scan(log, 0, replay_batch, &st);
    if (rc) {
        SL_ERROR("group", "cannot read %s: %s", SL_OFFSETS_TOPIC, sl_strerror(rc));
        return rc;
    }
    if (st.nbad) SL_WARN("group", "%s: skipped %lld record(s) it could not read", SL_OFFSETS_TOPIC, (long long)st.nbad);
    return 0;
}

/* ---- compaction by snapshot (internal.c) ---- */

typedef struct snap {
    sl_coord *c;
    sl_buf kv;
    sl_irec *recs;
    int n, cap;
    int64_t bytes;
    int16_t err;
} snap;

static sl_irec *snap_rec(snap *s)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->recs = sl_realloc(s->recs, sizeof *s->recs * (size_t)s->cap);
    }
    return &s->recs[s->n++];
}

static void snap_flush(snap *s)
{
    if (s->n == 0 || s->err) return;
    bool waiting;
    s->err = sl__offsets_append(s->c, &s->kv, s->recs, s->n, NULL, &waiting);
    s->bytes += (int64_t)s->kv.len;
    s->n = 0;
    sl_buf_reset(&s->kv);
}

static void snap_group(snap *s, sl_group *g)
{
    if (g->generation > 0 || g->nmembers > 0) sl__offsets_group_record(&s->kv, g, false, snap_rec(s));
    for (int i = 0; i < g->noffsets; i++) {
        const sl_goffset *o = &g->offsets[i];
        if (o->pending || !o->committed) continue; /* a pending append before the snapshot is newer */
        sl__offsets_commit_record(&s->kv, g->id, o->topic, strlen(o->topic), o->partition, o, snap_rec(s));
        if (s->kv.len >= SL_SNAPSHOT_BATCH_BYTES) snap_flush(s);
    }
    if (s->kv.len >= SL_SNAPSHOT_BATCH_BYTES) snap_flush(s);
}

static int16_t write_snapshot(void *arg, int64_t *bytes, int64_t *count)
{
    sl_coord *c = arg;
    snap s = {.c = c};
    sl_buf_init(&s.kv, SIZE_MAX);
    for (int i = 0; i < c->hash_size && !s.err; i++)
        for (sl_group *g = c->hash[i]; g && !s.err; g = g->hash_next, (*count)++) snap_group(&s, g);
    snap_flush(&s);
    sl_buf_deinit(&s.kv);
    sl_free(s.recs);
    *bytes += s.bytes;
    return s.err;
}

/* Segments holding offsets of open transactions are kept: the snapshot leaves those out, their marker is ahead. */
void sl__offsets_maintain(sl_coord *c) { sl__ilog_maintain(&c->ilog, sl__offsets_txn_first(c), write_snapshot, c); }

/* An Empty group whose last state change and last commit are both older than offsets_retention_ms. */
static bool expired(const sl_group *g, int64_t cutoff)
{
    if (g->state != SL_GROUP_EMPTY || g->npending || g->store_pending || g->txn_pending || g->state_ts_ms >= cutoff)
        return false;
    for (int i = 0; i < g->noffsets; i++)
        if (g->offsets[i].pending || (g->offsets[i].committed && g->offsets[i].commit_ts >= cutoff)) return false;
    return true;
}

/* Kafka's offsets.retention.minutes (7 days): an Empty group's offsets, and the group, go after that long. */
static void expire_groups(sl_coord *c)
{
    int64_t cutoff = sl_wall_ms(c->broker->cfg.clock) - c->broker->cfg.offsets_retention_ms;
    sl_group **gone = NULL;
    int ngone = 0, nrec = 0, cap = 0;
    sl_irec *recs = NULL;
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    for (int i = 0; i < c->hash_size; i++) {
        for (sl_group *g = c->hash[i]; g; g = g->hash_next) {
            if (!expired(g, cutoff)) continue;
            gone = sl_realloc(gone, sizeof *gone * (size_t)(ngone + 1));
            gone[ngone++] = g;
            sl__offsets_group_tombstones(&kv, &recs, &nrec, &cap, g);
        }
    }
    bool waiting;
    int16_t err = nrec ? sl__offsets_append(c, &kv, recs, nrec, NULL, &waiting) : 0;
    for (int i = 0; !err && i < ngone; i++) {
        SL_INFO("group", "group %s: Empty for over %lld ms, its %d committed offset(s) expired: deleted", gone[i]->id,
                (long long)c->broker->cfg.offsets_retention_ms, gone[i]->noffsets);
        sl__group_remove(c, gone[i]);
    }
    sl_free(gone);
    sl_free(recs);
    sl_buf_deinit(&kv);
}

static void on_coord_tick(sl_loop *loop, sl_timer *timer)
{
    sl_coord *c = timer->arg;
    if (sl__ilog_expiry_due(&c->ilog, c->broker->cfg.offsets_retention_ms)) expire_groups(c);
    sl__offsets_maintain(c);
    sl_timer_start(loop, timer, 1000);
}

/* ---- topics and lifecycle ---- */

void sl__groups_topic_deleted(sl_broker *broker, const char *topic)
{
    sl_coord *c = broker->coord;
    if (!c) return;
    sl__offsets_txn_drop_topic(c, topic);
    size_t tlen = strlen(topic);
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    for (int i = 0; i < c->hash_size; i++) {
        for (sl_group *g = c->hash[i]; g; g = g->hash_next) {
            int n = 0;
            sl_irec recs[64];
            for (int j = 0; j < g->noffsets;) {
                sl_goffset *o = &g->offsets[j];
                if (strcmp(o->topic, topic) != 0) {
                    j++;
                    continue;
                }
                sl__offsets_commit_record(&kv, g->id, topic, tlen, o->partition, NULL, &recs[n++]);
                sl__goffset_remove(g, o);
                if (n == (int)SL_ARRAY_LEN(recs)) {
                    bool waiting;
                    sl__offsets_append(c, &kv, recs, n, NULL, &waiting);
                    sl_buf_reset(&kv);
                    n = 0;
                }
            }
            if (n) {
                bool waiting;
                sl__offsets_append(c, &kv, recs, n, NULL, &waiting);
                sl_buf_reset(&kv);
            }
        }
    }
    sl_buf_deinit(&kv);
}

int sl__coord_open(sl_broker *b)
{
    sl_coord *c = SL_NEW(sl_coord);
    c->broker = b;
    c->id_seed = (uint64_t)sl_wall_ms(b->cfg.clock) * 0x9e3779b97f4a7c15ull ^ (uint64_t)sl_mono_ns(b->cfg.clock);
    sl_timer_init(&c->tick, on_coord_tick, c);
    b->coord = c;
    int rc = sl__ilog_open(b, SL_OFFSETS_TOPIC, &c->ilog);
    if (rc) return rc;
    int64_t t0 = sl_mono_ns(b->cfg.clock);
    rc = replay(c);
    if (rc) return rc;
    int64_t members = 0;
    for (int i = 0; i < c->hash_size; i++) {
        for (sl_group *g = c->hash[i]; g; g = g->hash_next) {
            sl__group_loaded(c, g);
            members += g->nmembers;
        }
    }
    SL_INFO("group", "loaded %d group(s) with %lld member(s) from %s (%lld bytes) in %.1f ms", c->ngroups,
            (long long)members, SL_OFFSETS_TOPIC, (long long)sl_log_size_bytes(c->ilog.p->log),
            (double)(sl_mono_ns(b->cfg.clock) - t0) / 1e6);
    sl_timer_start(b->loop, &c->tick, 1000);
    return 0;
}
