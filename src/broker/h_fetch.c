/*
 * h_fetch.c - Fetch v4-11: whole batches straight from segment files.
 *
 * Evaluation reads, per partition, a file range of whole batches below the
 * high watermark (storage/log.c) and puts it in the response as a splice:
 * the bytes go from the page cache to the socket with sendfile, never
 * through user space. KIP-74: the first partition with data may return one
 * batch larger than the limits, so consumers always progress; later
 * partitions stop at MaxBytes, or at the broker's fetch_max_bytes if that
 * is smaller (Kafka's broker setting fetch.max.bytes, KIP-541).
 *
 * Long-poll. If fewer than MinBytes are available and MaxWaitMs > 0, the
 * request parks: it is linked into each partition's fetch waits and a timer
 * runs. Any high-watermark advance on one of its partitions queues a
 * re-evaluation (deferred to the end of the loop turn, so a burst of
 * appends costs one re-evaluation); it answers once MinBytes are there, on
 * an error, at the timeout, or when the broker stops.
 *
 *   QUEUED --evaluate--> DONE (enough bytes, error, or no wait)
 *      \--> WAITING --hw advance / timer / stop--> evaluate --> DONE
 *              \--connection closed--> released (no response)
 */
#include <string.h>
#include "broker/broker_int.h"
#include "common/error.h"
#include "common/log.h"

typedef struct sl_fetch_wait {
    sl_link link;
    sl_request *req;
} sl_fetch_wait;

typedef struct sl_fetch_state {
    sl_FetchRequest m;
    /* Response arrays, allocated once: a parked fetch is re-evaluated on every
       high-watermark advance and must not allocate each time. */
    sl_FetchResponse_FetchableTopicResponse *topics;
    int64_t *ends;          /* read_committed: per partition (request order), the offset after what it returns */
    sl_timer timer;
    sl_defer recheck;
    sl_fetch_wait *waits;
    int nwaits;
    bool parked;
} sl_fetch_state;

typedef struct sl_fetch_eval {
    sl_FetchResponse resp;
    int64_t total;
    bool error;
} sl_fetch_eval;

/* read_committed stops at the last stable offset; LastStableOffset is reported either way (Kafka does). */
static void read_partition(sl_broker *broker, sl_request *req, sl_fetch_eval *ev,
                           const sl_FetchRequest_FetchPartition *fp, sl_partition *p,
                           sl_FetchResponse_PartitionData *pd, int64_t *end)
{
    sl_fetch_state *st = req->hstate;
    int64_t start = sl_log_start_offset(p->log), hw = sl_log_high_watermark(p->log);
    int64_t leo = sl_log_end_offset(p->log), lso = sl__partition_lso(p);
    pd->HighWatermark = hw;
    pd->LastStableOffset = lso;
    pd->LogStartOffset = start;
    *end = fp->FetchOffset;
    if (fp->FetchOffset < start || fp->FetchOffset > leo) {
        pd->ErrorCode = SL_KERR_OFFSET_OUT_OF_RANGE;
        ev->error = true;
        return;
    }
    int64_t until = st->m.IsolationLevel == 1 ? lso : hw;
    int32_t max_total = SL_MIN(st->m.MaxBytes, broker->cfg.fetch_max_bytes);
    int64_t limit = SL_MIN((int64_t)fp->PartitionMaxBytes, (int64_t)max_total - ev->total);
    if (fp->FetchOffset >= until || limit <= 0 || fp->PartitionMaxBytes <= 0) return;
    sl_log_slice s;
    int rc = sl_log_read_until(p->log, fp->FetchOffset, limit, until, &s);
    if (rc) {
        pd->ErrorCode = rc == SL_ERANGE ? SL_KERR_OFFSET_OUT_OF_RANGE : SL_KERR_KAFKA_STORAGE_ERROR;
        ev->error = true;
        return;
    }
    if (s.len == 0 || (ev->total > 0 && s.len > limit)) {
        if (s.ref) sl_log_slice_release(s.ref);
        return;
    }
    pd->Records.from_file = true;
    pd->Records.fd = s.fd;
    pd->Records.file_off = s.file_off;
    pd->Records.len = (int32_t)s.len;
    pd->Records.file_ref = s.ref;
    *end = s.end_offset;
    ev->total += s.len;
}

static int alloc_response(sl_request *req, sl_fetch_state *st)
{
    int32_t nt = SL_MAX(st->m.Topics.count, 0);
    int n = 0;
    for (int32_t i = 0; i < nt; i++) n += SL_MAX(st->m.Topics.items[i].Partitions.count, 0);
    st->topics = sl_arena_alloc(&req->arena, sizeof *st->topics * (size_t)(nt + 1));
    st->ends = sl_arena_alloc(&req->arena, sizeof *st->ends * (size_t)(n + 1));
    if (!st->topics || !st->ends) return SL_ENOMEM;
    for (int32_t i = 0; i < nt; i++) {
        int32_t np = SL_MAX(st->m.Topics.items[i].Partitions.count, 0);
        st->topics[i].Partitions.items = sl_arena_alloc(&req->arena, sizeof *st->topics[i].Partitions.items * (size_t)(np + 1));
        if (!st->topics[i].Partitions.items) return SL_ENOMEM;
        st->topics[i].Partitions.count = np;
    }
    return 0;
}

static int evaluate(sl_broker *broker, sl_request *req, sl_fetch_eval *ev)
{
    sl_fetch_state *st = req->hstate;
    const sl_FetchRequest *m = &st->m;
    memset(ev, 0, sizeof *ev);
    sl_FetchResponse_init(&ev->resp);
    int32_t nt = SL_MAX(m->Topics.count, 0);
    if (!st->topics && alloc_response(req, st) != 0) return SL_ENOMEM;
    ev->resp.Responses.items = st->topics;
    ev->resp.Responses.count = nt;
    int k = 0;
    for (int32_t i = 0; i < nt; i++) {
        const sl_FetchRequest_FetchTopic *ft = &m->Topics.items[i];
        sl_FetchResponse_FetchableTopicResponse *tr = &ev->resp.Responses.items[i];
        int32_t np = SL_MAX(ft->Partitions.count, 0);
        tr->Topic = ft->Topic;
        SL_ASSERT(tr->Partitions.count == np);
        sl_topic *topic = sl__topic_find(broker, ft->Topic.ptr, (size_t)SL_MAX(ft->Topic.len, 0));
        for (int32_t j = 0; j < np; j++) {
            sl_FetchResponse_PartitionData *pd = &tr->Partitions.items[j];
            memset(pd, 0, sizeof *pd);
            pd->PartitionIndex = ft->Partitions.items[j].Partition;
            pd->HighWatermark = -1;
            pd->LastStableOffset = -1;
            pd->LogStartOffset = -1;
            pd->PreferredReadReplica = -1;
            pd->AbortedTransactions.count = m->IsolationLevel == 1 ? 0 : -1;
            pd->Records.len = 0;
            sl_partition *p = topic ? sl__partition_get(topic, pd->PartitionIndex) : NULL;
            int64_t *end = &st->ends[k++];
            *end = -1;
            if (!p) {
                pd->ErrorCode = SL_KERR_UNKNOWN_TOPIC_OR_PARTITION;
                ev->error = true;
                continue;
            }
            read_partition(broker, req, ev, &ft->Partitions.items[j], p, pd, end);
        }
    }
    return 0;
}

static void release_slices(sl_fetch_eval *ev)
{
    for (int32_t i = 0; i < ev->resp.Responses.count; i++) {
        sl_FetchResponse_FetchableTopicResponse *tr = &ev->resp.Responses.items[i];
        for (int32_t j = 0; j < tr->Partitions.count; j++) {
            sl_krecords *r = &tr->Partitions.items[j].Records;
            if (r->from_file && r->file_ref) sl_log_slice_release(r->file_ref);
            r->from_file = false;
        }
    }
}

/* read_committed: each partition's aborted transactions overlapping what it returns (Kafka: marker at or
   after the fetch offset, first offset before the end of the data), for the client to drop. Done once, when
   the answer is final. */
static int add_aborted(sl_broker *broker, sl_request *req, sl_fetch_eval *ev)
{
    sl_fetch_state *st = req->hstate;
    if (st->m.IsolationLevel != 1) return 0;
    int k = 0;
    for (int32_t i = 0; i < ev->resp.Responses.count; i++) {
        sl_FetchResponse_FetchableTopicResponse *tr = &ev->resp.Responses.items[i];
        const sl_FetchRequest_FetchTopic *ft = &st->m.Topics.items[i];
        sl_topic *topic = sl__topic_find(broker, ft->Topic.ptr, (size_t)SL_MAX(ft->Topic.len, 0));
        for (int32_t j = 0; j < tr->Partitions.count; j++, k++) {
            sl_FetchResponse_PartitionData *pd = &tr->Partitions.items[j];
            sl_partition *p = topic ? sl__partition_get(topic, pd->PartitionIndex) : NULL;
            int64_t from = ft->Partitions.items[j].FetchOffset, to = st->ends[k];
            if (!p || !pd->Records.from_file || to <= from) continue;
            int n = sl__partition_aborted(p, from, to, NULL, 0);
            if (n == 0) continue;
            sl_aborted_txn *a = sl_arena_alloc(&req->arena, sizeof *a * (size_t)n);
            if (!ARENA_ARRAY(req, pd->AbortedTransactions.items, n) || !a) return SL_ENOMEM;
            sl__partition_aborted(p, from, to, a, n);
            for (int x = 0; x < n; x++)
                pd->AbortedTransactions.items[x] = (sl_FetchResponse_AbortedTransaction){a[x].pid, a[x].first};
            pd->AbortedTransactions.count = n;
        }
    }
    return 0;
}

static void unpark(sl_broker *broker, sl_request *req)
{
    sl_fetch_state *st = req->hstate;
    if (!st || !st->parked) return;
    for (int i = 0; i < st->nwaits; i++) sl_link_remove(&st->waits[i].link);
    sl_timer_stop(broker->loop, &st->timer);
    sl_loop_undefer(broker->loop, &st->recheck);
    st->parked = false;
}

/* Evaluates and answers if done (or `final`). Returns 1 if answered, 0 if it should wait. */
static int try_answer(sl_broker *broker, sl_request *req, bool final)
{
    sl_fetch_state *st = req->hstate;
    sl_fetch_eval ev;
    int rc = evaluate(broker, req, &ev);
    if (rc) {
        release_slices(&ev);
        return rc;
    }
    bool enough = ev.total >= SL_MIN(st->m.MinBytes, broker->cfg.fetch_max_bytes) || st->m.MaxWaitMs <= 0 || ev.error || broker->stopping;
    if (!enough && !final) {
        release_slices(&ev);
        return 0;
    }
    rc = add_aborted(broker, req, &ev);
    if (rc) {
        release_slices(&ev);
        return rc;
    }
    unpark(broker, req);
    req->hstate = NULL;
    rc = sl__request_respond(req, &ev.resp);
    if (rc) {
        release_slices(&ev);
        return rc;
    }
    return 1;
}

static void answer_now(sl_broker *broker, sl_request *req, bool final)
{
    int rc = try_answer(broker, req, final);
    if (rc < 0) {
        sl__conn_close(req->conn, "cannot build a fetch response");
        return;
    }
    if (rc == 1) sl__conn_pump(req->conn);
}

static void on_timeout(sl_loop *loop, sl_timer *timer)
{
    sl_request *req = timer->arg;
    (void)loop;
    answer_now(req->conn->broker, req, true);
}

static void on_recheck(sl_loop *loop, void *arg)
{
    sl_request *req = arg;
    (void)loop;
    answer_now(req->conn->broker, req, false);
}

static int park(sl_broker *broker, sl_request *req)
{
    sl_fetch_state *st = req->hstate;
    if (!st->waits) {
        int n = 0;
        for (int32_t i = 0; i < st->m.Topics.count; i++) n += SL_MAX(st->m.Topics.items[i].Partitions.count, 0);
        st->waits = sl_arena_alloc(&req->arena, sizeof *st->waits * (size_t)(n + 1));
        if (!st->waits) return SL_ENOMEM;
    }
    st->nwaits = 0;
    for (int32_t i = 0; i < st->m.Topics.count; i++) {
        const sl_FetchRequest_FetchTopic *ft = &st->m.Topics.items[i];
        sl_topic *topic = sl__topic_find(broker, ft->Topic.ptr, (size_t)SL_MAX(ft->Topic.len, 0));
        for (int32_t j = 0; topic && j < ft->Partitions.count; j++) {
            sl_partition *p = sl__partition_get(topic, ft->Partitions.items[j].Partition);
            if (!p) continue;
            sl_fetch_wait *w = &st->waits[st->nwaits++];
            w->req = req;
            sl_link_insert_tail(&p->fetch_waits, &w->link);
        }
    }
    sl_timer_init(&st->timer, on_timeout, req);
    sl_timer_start(broker->loop, &st->timer, st->m.MaxWaitMs);
    st->parked = true;
    req->state = SL_REQ_WAITING;
    return 0;
}

int sl__handle_fetch(sl_broker *broker, sl_request *req)
{
    sl_fetch_state *st = sl_arena_alloc(&req->arena, sizeof *st);
    if (!st) return SL_ENOMEM;
    if (sl__request_decode(req, &st->m)) return SL_EINVAL;
    int n = 0;
    for (int32_t i = 0; i < st->m.Topics.count; i++) n += SL_MAX(st->m.Topics.items[i].Partitions.count, 0);
    req->splices = sl_arena_alloc(&req->arena, sizeof *req->splices * (size_t)(n + 1));
    if (!req->splices) return SL_ENOMEM;
    req->splices_max = n + 1;
    req->hstate = st;
    int rc = try_answer(broker, req, false);
    if (rc < 0) return rc;
    if (rc == 1) return 0;
    return park(broker, req);
}

void sl__fetch_waits_notify(sl_partition *partition)
{
    for (sl_link *l = partition->fetch_waits.next; l != &partition->fetch_waits; l = l->next) {
        sl_fetch_wait *w = SL_CONTAINER(l, sl_fetch_wait, link);
        sl_fetch_state *st = w->req->hstate;
        sl_loop_defer(w->req->conn->broker->loop, &st->recheck, on_recheck, w->req);
    }
}

/* A partition is going away: its waits are dropped and their fetches re-evaluated. */
void sl__fetch_waits_detach(sl_partition *partition);
void sl__fetch_waits_detach(sl_partition *partition)
{
    while (!sl_link_empty(&partition->fetch_waits)) {
        sl_fetch_wait *w = SL_CONTAINER(partition->fetch_waits.next, sl_fetch_wait, link);
        sl_link_remove(&w->link);
        sl_fetch_state *st = w->req->hstate;
        sl_loop_defer(w->req->conn->broker->loop, &st->recheck, on_recheck, w->req);
    }
}

void sl__fetch_cancel(sl_request *req)
{
    if (req->state == SL_REQ_WAITING && req->hstate) answer_now(req->conn->broker, req, true);
}

void sl__fetch_release(sl_request *req)
{
    unpark(req->conn->broker, req);
    req->hstate = NULL;
    req->state = SL_REQ_NO_RESPONSE;
}
