/*
 * conn.c - one client connection: frames in, responses out, in order.
 *
 * Reading. Bytes land in a 64 KiB buffer and complete frames are copied
 * out into their request's own buffer. A frame bigger than what the buffer
 * can still hold (a large Produce) gets its own buffer at once and the
 * rest of it is read straight into it, so big payloads are copied at most
 * once (the prefix), never per byte twice.
 *
 * Ordering. Requests form a FIFO and are handled one at a time, as Kafka
 * does, so each sees the effects of all before it -- with one exception:
 * a Produce may be handled while earlier Produces wait for their fsync
 * (pipelined produces then share one group commit). Responses leave
 * strictly in FIFO order: a finished response waits behind an unfinished
 * earlier one.
 *
 * Back-pressure. With SL_CONN_MAX_REQUESTS unanswered requests or
 * SL_CONN_MAX_OUT_BYTES of unsent output, the connection stops reading
 * until it drains, so one client can never make the broker buffer without
 * bound, and a slow reader stalls only itself.
 *
 * Closing. A closed connection frees everything at once, except requests
 * whose appends wait for a sync: those stay linked to their partitions, so
 * the connection lingers (fd closed) until the last of them resolves.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "broker/broker_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"
#include "kafka/frame.h"

static void conn_on_io(sl_loop *loop, void *arg, unsigned events);
static void conn_read(sl_conn *conn);

int sl__conn_accept(sl_broker *broker, int fd, const char *peer)
{
    sl_conn *conn = SL_NEW(sl_conn);
    conn->broker = broker;
    conn->fd = fd;
    snprintf(conn->peer, sizeof conn->peer, "%s", peer);
    conn->rbuf = sl_malloc(SL_CONN_RBUF);
    sl_outq_init(&conn->outq);
    sl_link_insert_tail(&broker->conns, &conn->link);
    sl_link_init(&conn->mem_link);
    broker->nconns++;
    int rc = sl_io_start(broker->loop, &conn->io, fd, SL_IO_READ, conn_on_io, conn);
    if (rc) {
        sl__conn_close(conn, "cannot watch socket");
        return rc;
    }
    SL_DEBUG("conn", "accepted %s (fd %d, %d connections)", peer, fd, broker->nconns);
    return 0;
}

static void wait_for_memory(sl_conn *conn)
{
    sl_broker *b = conn->broker;
    if (b->mem_waits++ == 0)
        SL_WARN("conn", "received requests hold %lld bytes, the budget (queued_max_bytes %lld): connections "
                "wait before reading more (logged once)", (long long)b->queued_bytes,
                (long long)b->cfg.queued_max_bytes);
    conn->mem_wait = true;
    if (sl_link_empty(&conn->mem_link)) sl_link_insert_tail(&conn->broker->mem_waiters, &conn->mem_link);
}

/* Memory came back: every waiting connection tries again at the end of the turn. */
static void wake_memory_waiters(sl_broker *b)
{
    while (!sl_link_empty(&b->mem_waiters) && b->queued_bytes < b->cfg.queued_max_bytes) {
        sl_conn *conn = SL_CONTAINER(b->mem_waiters.next, sl_conn, mem_link);
        sl_link_remove(&conn->mem_link);
        conn->mem_wait = false;
        sl__conn_pump_later(conn);
    }
}

/*
 * A request with its own frame buffer, charged to the broker-wide budget of
 * received bytes. NULL when the budget is spent (the connection then waits
 * for memory); an empty broker always admits one, so a frame bigger than
 * the rest of the budget cannot wait forever.
 */
static sl_request *request_new(sl_conn *conn, size_t frame_len)
{
    sl_broker *b = conn->broker;
    if (b->queued_bytes > 0 && b->queued_bytes + (int64_t)frame_len > b->cfg.queued_max_bytes) {
        wait_for_memory(conn);
        return NULL;
    }
    b->queued_bytes += (int64_t)frame_len;
    sl_request *req = SL_NEW(sl_request);
    req->conn = conn;
    req->state = SL_REQ_QUEUED;
    req->frame = sl_bufpool_get(&b->frames, frame_len, &req->frame_cap);
    req->frame_len = frame_len;
    sl_arena_init(&req->arena, SL_REQ_ARENA_MAX);
    sl_buf_init(&req->out, SL_RESP_MAX_BYTES);
    return req;
}

static void request_free(sl_request *req)
{
    SL_ASSERT(req->state != SL_REQ_WAITING || req->hstate == NULL || req->conn->closed);
    if (req->out.data) {
        for (int i = 0; i < req->nsplices; i++) sl_log_slice_release(req->splices[i].ref);
        sl_buf_deinit(&req->out);
    }
    sl_arena_deinit(&req->arena);
    sl_broker *b = req->conn->broker;
    sl_bufpool_put(&b->frames, req->frame, req->frame_cap);
    b->queued_bytes -= (int64_t)req->frame_len;
    SL_ASSERT(b->queued_bytes >= 0);
    sl_free(req);
    wake_memory_waiters(b);
}

static void enqueue(sl_conn *conn, sl_request *req)
{
    req->t_start_ns = sl_mono_ns(conn->broker->cfg.clock);
    if (conn->tail) conn->tail->next = req;
    else conn->head = req;
    conn->tail = req;
    conn->nreq++;
}

static bool over_limits(const sl_conn *conn)
{
    return conn->nreq >= SL_CONN_MAX_REQUESTS || conn->outq.bytes >= SL_CONN_MAX_OUT_BYTES || conn->mem_wait;
}

static void set_reading(sl_conn *conn, bool on)
{
    if (conn->closed || conn->read_paused == !on) return;
    conn->read_paused = !on;
    unsigned ev = (conn->io.events & SL_IO_WRITE) | (on ? SL_IO_READ : 0);
    sl_io_set(conn->broker->loop, &conn->io, ev);
}

void sl__conn_stop_reading(sl_conn *conn) { set_reading(conn, false); }

/* Moves complete frames out of rbuf into requests. Returns -1 if it closed the connection. */
static int parse_frames(sl_conn *conn)
{
    size_t off = 0;
    int rc = 0;
    while (off < conn->rlen && !over_limits(conn)) {
        size_t flen = 0;
        int fr = sl_kafka_frame(conn->rbuf + off, conn->rlen - off,
                                (size_t)conn->broker->cfg.request_max_bytes, &flen);
        if (fr == SL_KFRAME_NEED_MORE) {
            size_t have = conn->rlen - off;
            if (have >= 4) {
                size_t need = 4 + (size_t)sl_be32(conn->rbuf + off);
                if (need > SL_CONN_RBUF - off || need > SL_CONN_RBUF / 2) {
                    /* Too big to assemble here: read the rest straight into its own buffer. */
                    sl_request *req = request_new(conn, need);
                    if (!req) break;
                    memcpy(req->frame, conn->rbuf + off, have);
                    conn->partial = req;
                    conn->partial_have = have;
                    off = conn->rlen;
                }
            }
            break;
        }
        if (fr != SL_KFRAME_OK) {
            char why[128];
            snprintf(why, sizeof why, "bad frame: %s (size field %u, max %lld)", sl_strerror(fr),
                     conn->rlen - off >= 4 ? sl_be32(conn->rbuf + off) : 0,
                     (long long)conn->broker->cfg.request_max_bytes);
            sl__conn_close(conn, why);
            return -1;
        }
        sl_request *req = request_new(conn, flen);
        if (!req) break;
        memcpy(req->frame, conn->rbuf + off, flen);
        enqueue(conn, req);
        off += flen;
    }
    if (off) {
        memmove(conn->rbuf, conn->rbuf + off, conn->rlen - off);
        conn->rlen -= off;
    }
    return rc;
}

static int read_partial(sl_conn *conn)
{
    sl_request *req = conn->partial;
    ssize_t n = read(conn->fd, req->frame + conn->partial_have, req->frame_len - conn->partial_have);
    if (n <= 0) return (int)(n == 0 ? SL_ECLOSED : (errno == EAGAIN || errno == EINTR) ? SL_EAGAIN : SL_EIO);
    conn->partial_have += (size_t)n;
    if (conn->partial_have == req->frame_len) {
        conn->partial = NULL;
        enqueue(conn, req);
    }
    return 0;
}

static void conn_read(sl_conn *conn)
{
    while (!conn->closed && !conn->read_paused) {
        if (over_limits(conn)) {
            set_reading(conn, false);
            break;
        }
        int rc = 0;
        if (conn->partial) {
            rc = read_partial(conn);
        } else if (conn->rlen < SL_CONN_RBUF) {
            ssize_t n = read(conn->fd, conn->rbuf + conn->rlen, SL_CONN_RBUF - conn->rlen);
            if (n > 0) {
                conn->rlen += (size_t)n;
                if (parse_frames(conn) < 0) return;
            } else {
                rc = n == 0 ? SL_ECLOSED : (errno == EAGAIN || errno == EINTR) ? SL_EAGAIN : SL_EIO;
            }
        } else if (parse_frames(conn) < 0) {
            return;
        }
        if (rc == SL_EAGAIN) break;
        if (rc == SL_ECLOSED) {
            /* A half-close: requests that arrived whole are still handled (an acks=0
               producer may send and close at once), then the connection closes. */
            set_reading(conn, false);
            conn->read_eof = true;
            break;
        }
        if (rc) {
            sl__conn_close(conn, "read error");
            return;
        }
    }
}

static void move_response(sl_conn *conn, sl_request *req)
{
    sl_buf *out = &req->out;
    SL_ASSERT(out->len >= 8);
    int64_t size = (int64_t)out->len - 4;
    for (int i = 0; i < req->nsplices; i++) size += req->splices[i].len;
    SL_ASSERT(size <= INT32_MAX);
    sl_put_be32(out->data, (uint32_t)size);
    size_t prev = 0;
    for (int i = 0; i < req->nsplices; i++) {
        sl_kwriter_splice *s = &req->splices[i];
        sl_outq_push_mem(&conn->outq, out->data + prev, s->at - prev, NULL);
        sl_outq_push_file(&conn->outq, s->fd, s->off, s->len, s->ref, sl_log_slice_release);
        prev = s->at;
    }
    sl_outq_push_mem(&conn->outq, out->data + prev, out->len - prev, out->data);
    out->data = NULL; /* owned by the queue now, splice refs too */
    req->nsplices = 0;
}

static void pop_head(sl_conn *conn)
{
    sl_request *req = conn->head;
    conn->head = req->next;
    if (!conn->head) conn->tail = NULL;
    conn->nreq--;
    request_free(req);
}

static void conn_free(sl_loop *loop, void *arg)
{
    sl_conn *conn = arg;
    (void)loop;
    SL_ASSERT(conn->closed && conn->nwaiting_durable == 0);
    sl_loop_undefer(conn->broker->loop, &conn->pump_defer);
    sl_link_remove(&conn->mem_link);
    while (conn->head) pop_head(conn);
    if (conn->partial) request_free(conn->partial);
    sl_outq_clear(&conn->outq);
    sl_free(conn->rbuf);
    sl_free(conn);
}

/* A closed connection keeps only produce waits; drops what resolved, frees itself when none is left. */
static void closed_cleanup(sl_conn *conn)
{
    sl_request **pp = &conn->head;
    conn->tail = NULL;
    while (*pp) {
        sl_request *req = *pp;
        if (req->state == SL_REQ_WAITING) {
            conn->tail = req;
            pp = &req->next;
            continue;
        }
        *pp = req->next;
        conn->nreq--;
        request_free(req);
    }
    if (conn->nwaiting_durable == 0) sl_loop_defer(conn->broker->loop, &conn->defer, conn_free, conn);
}

static int16_t frame_api_key(const sl_request *req)
{
    SL_ASSERT(req->frame_len >= 12);
    return (int16_t)sl_be16(req->frame + 4);
}

/*
 * Handles queued requests in order, Kafka's way (one at a time per
 * connection) with one exception: a Produce may be handled while earlier
 * Produces wait for their sync, which is what lets a pipelining producer's
 * requests share one fdatasync. Anything else waits until every earlier
 * request has finished, so it sees their effects.
 */
static void dispatch_queued(sl_conn *conn)
{
    bool produce_waiting = false;
    for (sl_request *req = conn->head; req && !conn->closed; req = req->next) {
        if (req->state == SL_REQ_WAITING) {
            if (req->hdr.RequestApiKey != 0) return;
            produce_waiting = true;
            continue;
        }
        if (req->state != SL_REQ_QUEUED) continue;
        if (produce_waiting && frame_api_key(req) != 0) return;
        int rc = sl__dispatch(conn->broker, req);
        if (rc) {
            sl__conn_close(conn, rc == SL_ECLOSED ? "a produce with acks=0 failed (Kafka closes the connection "
                                                    "to tell the producer)" : "protocol error");
            return;
        }
        if (req->state == SL_REQ_WAITING && req->hdr.RequestApiKey != 0) return;
        produce_waiting |= req->state == SL_REQ_WAITING;
    }
}

/* Sends finished responses from the head of the FIFO; resumes reading when under the limits. */
static void send_ready(sl_conn *conn)
{
    while (conn->head && (conn->head->state == SL_REQ_DONE || conn->head->state == SL_REQ_NO_RESPONSE)) {
        if (conn->head->state == SL_REQ_DONE) move_response(conn, conn->head);
        pop_head(conn);
    }
    int rc = sl_outq_flush(&conn->outq, conn->fd);
    if (rc && rc != SL_EAGAIN) {
        sl__conn_close(conn, rc == SL_ECLOSED ? NULL : "write error");
        return;
    }
    unsigned ev = (conn->read_paused ? 0 : SL_IO_READ) | (rc == SL_EAGAIN ? SL_IO_WRITE : 0);
    sl_io_set(conn->broker->loop, &conn->io, ev);
    if (conn->read_paused && !conn->read_eof && !over_limits(conn) && !conn->broker->stopping) {
        int before = conn->nreq;
        set_reading(conn, true);
        if (parse_frames(conn) < 0) return;
        conn_read(conn);
        if (conn->nreq != before) conn->pump_again = true;
    }
}

/*
 * Makes progress after anything changed (bytes arrived, a wait resolved, the
 * socket drained): dispatch what may be dispatched, send what is ready.
 * Re-entrant calls (a handler resolving waits of its own connection) only
 * ask the outer call to go around once more.
 */
void sl__conn_pump(sl_conn *conn)
{
    if (conn->in_pump) {
        conn->pump_again = true;
        return;
    }
    conn->in_pump = true;
    do {
        conn->pump_again = false;
        if (conn->closed) {
            closed_cleanup(conn);
            break;
        }
        dispatch_queued(conn);
        if (!conn->closed) send_ready(conn);
        if (!conn->closed && conn->read_eof && !conn->head && sl_outq_empty(&conn->outq))
            sl__conn_close(conn, NULL);
    } while (conn->pump_again);
    conn->in_pump = false;
}

static void deferred_pump(sl_loop *loop, void *arg)
{
    (void)loop;
    sl__conn_pump(arg);
}

void sl__conn_pump_later(sl_conn *conn)
{
    sl_loop_defer(conn->broker->loop, &conn->pump_defer, deferred_pump, conn);
}

static void conn_on_io(sl_loop *loop, void *arg, unsigned events)
{
    sl_conn *conn = arg;
    (void)loop;
    if ((events & SL_IO_READ) && conn->read_eof) {
        /* Not watching reads any more, so this is a hang-up or error: the peer is gone. */
        sl__conn_close(conn, NULL);
        return;
    }
    if (events & SL_IO_READ) conn_read(conn);
    sl__conn_pump(conn);
}

void sl__conn_close(sl_conn *conn, const char *why)
{
    if (conn->closed) return;
    if (why) SL_WARN("conn", "closing connection from %s: %s", conn->peer, why);
    else SL_DEBUG("conn", "connection from %s closed by peer", conn->peer);
    conn->closed = true;
    sl_io_stop(conn->broker->loop, &conn->io);
    close(conn->fd);
    conn->fd = -1;
    sl_link_remove(&conn->link);
    sl_link_remove(&conn->mem_link);
    conn->mem_wait = false;
    conn->broker->nconns--;
    sl_outq_clear(&conn->outq);
    for (sl_request *req = conn->head; req; req = req->next)
        if (req->state == SL_REQ_WAITING && req->hdr.RequestApiKey == 1) sl__fetch_release(req);
        else if (req->state == SL_REQ_WAITING && (req->hdr.RequestApiKey == 11 || req->hdr.RequestApiKey == 14))
            sl__group_release(req);
    sl__conn_pump(conn);
}

int sl__request_decode(sl_request *req, void *msg)
{
    const sl_kafka_api_info *api = sl_kafka_api_find(req->hdr.RequestApiKey);
    SL_ASSERT(api && req->hdr.RequestApiVersion >= api->min && req->hdr.RequestApiVersion <= api->max);
    sl_kreader r;
    sl_kreader_init(&r, req->body, req->body_len);
    int rc = api->request->decode(msg, &r, req->hdr.RequestApiVersion, &req->arena);
    return rc ? rc : r.err ? r.err : 0;
}

int sl__request_respond(sl_request *req, const void *msg)
{
    int16_t key = req->hdr.RequestApiKey, version = req->hdr.RequestApiVersion;
    const sl_kafka_api_info *api = sl_kafka_api_find(key);
    SL_ASSERT(api != NULL);
    sl_kwriter w;
    sl_buf_reset(&req->out);
    sl_kwriter_init(&w, &req->out, req->splices, req->splices ? req->splices_max : 0);
    uint8_t zero[4] = {0};
    sl_buf_append(&req->out, zero, 4);
    sl_kafka_response_header_encode(&w, key, version, req->hdr.CorrelationId);
    int rc = api->response->encode(msg, &w, version);
    if (rc == 0) rc = w.err;
    if (rc) {
        SL_ERROR("broker", "cannot encode response to api %d v%d: %s", key, version, sl_strerror(rc));
        for (int i = 0; i < w.nsplices; i++) sl_log_slice_release(w.splices[i].ref);
        req->nsplices = 0;
        return rc;
    }
    req->nsplices = w.nsplices;
    req->state = SL_REQ_DONE;
    return 0;
}

void sl__request_respond_and_pump(sl_request *req, const void *msg)
{
    if (sl__request_respond(req, msg) != 0) {
        sl__conn_close(req->conn, "response too large to encode");
        return;
    }
    sl__conn_pump(req->conn);
}

char *sl__arena_cstr(sl_arena *arena, sl_kstr s)
{
    size_t len = s.len < 0 ? 0 : (size_t)s.len;
    char *c = sl_arena_alloc(arena, len + 1);
    if (c && len) memcpy(c, s.ptr, len);
    return c;
}

sl_kstr sl__kstr(const char *s)
{
    sl_kstr k = {s, s ? (int32_t)strlen(s) : -1};
    return k;
}
