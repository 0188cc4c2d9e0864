/*
 * sl_group_member: a librdkafka (2.0.2) consumer-group member and its helpers,
 * for the consumer-group scripts (tests/compat/test_groups_rdkafka.sh,
 * tests/crash/test_groups_crash.sh). One binary, five modes:
 *
 *   sl_group_member consume -b HOST:PORT -g GROUP -t TOPIC[,TOPIC...] [-c CLIENT_ID]
 *       [-i GROUP_INSTANCE_ID] [-s SESSION_MS] [-H HEARTBEAT_MS] [-a STRATEGY]
 *       [-C N] [-M sync|async|message] [-I IDLE_MS] [-n MAX_MSGS] [-w WORK_MS]
 *       [-o LOGFILE] [-X KEY=VALUE]...
 *     The high-level consumer (rd_kafka_subscribe) with enable.auto.commit=false
 *     and auto.offset.reset=earliest. Every processed message is logged, then
 *     committed: after every N messages (-C, default 1; 0 = never) the offsets
 *     processed since the last commit (last offset + 1 per partition) are
 *     committed with rd_kafka_commit (-M sync, the default, or async with the
 *     result from the offset-commit callback) or, for N = 1 only, with
 *     rd_kafka_commit_message (-M message, synchronous). Before giving up
 *     partitions in a revocation the pending offsets are committed, unless the
 *     assignment was lost. Stops after IDLE_MS without a message or an
 *     assignment (-I), after MAX_MSGS messages (-n), or on SIGTERM/SIGINT; each
 *     ends with rd_kafka_consumer_close (revocation and LeaveGroup, which a
 *     static member does not send). -w sleeps WORK_MS per message.
 *     -a: range, roundrobin or cooperative-sticky (incremental assignment).
 *
 *   sl_group_member produce -b HOST:PORT -t TOPIC [-p PARTITIONS] [-r RATE] [-n COUNT] [-o ACKLOG]
 *     Keyed messages (key "k<seq>", value "seq=<seq>") to partition seq %
 *     PARTITIONS (default 6), acks=all, RATE messages/s (default 100, 0 = as
 *     fast as possible), until COUNT (default 0 = no limit) or SIGTERM/SIGINT;
 *     then it waits up to 15 s for the outstanding reports. One line per
 *     ACKNOWLEDGED message: "<partition> <offset> <seq>".
 *
 *   sl_group_member committed -b HOST:PORT -g GROUP -t TOPIC [-p PARTITIONS]
 *     Prints the group's committed offsets (OffsetFetch via rd_kafka_committed),
 *     one line "<topic> <partition> <offset>" per partition (-1001: none),
 *     retrying for up to 20 s while the coordinator is not ready. Exit 1 when
 *     it never got an answer.
 *
 *   sl_group_member now
 *     Prints CLOCK_MONOTONIC in ms: the clock of the event logs, for scripts.
 *
 *   sl_group_member mock [-t TOPIC [-p PARTITIONS]]
 *     Starts librdkafka's in-process mock cluster (one broker), prints
 *     "bootstrap <HOST:PORT>" and serves until SIGTERM: to debug this tool and
 *     the scripts without a real broker.
 *
 * The consume event log (stdout, or -o LOGFILE appended to) has one line per
 * event, each starting with the CLOCK_MONOTONIC time in ms (the same clock in
 * every process) and flushed at once, so a SIGKILLed member leaves complete
 * lines only:
 *
 *   <ms> START <client_id> <group> <instance|-> <strategy> <session_ms>
 *   <ms> ASSIGN <gen> <member_id> <count> <topic:partition,...|-> eager|incremental
 *   <ms> REVOKE <gen> <member_id> <count> <topic:partition,...|-> eager|incremental kept|lost
 *   <ms> MSG <gen> <topic> <partition> <offset> <key>
 *   <ms> COMMIT <gen> OK <topic:partition:offset,...>
 *   <ms> COMMIT <gen> ERR <topic:partition:offset,...> <error name>
 *   <ms> ERROR <error name> <message>
 *   <ms> IDLE <idle_ms>
 *   <ms> EXIT <signal|idle|max|fatal> <processed>
 *
 * <gen> is the group generation when the event happened, read with
 * rd_kafka_consumer_group_metadata (librdkafka has no getter for it, so it is
 * taken from the metadata's serialized form, whose "CGMDv2:" layout is
 * checked); for MSG and COMMIT it is the generation of the assignment that
 * delivered the message. <offset> in COMMIT is the committed one (processed + 1).
 * Keys are printed with bytes outside '!'..'~' as '?', a null key as "-".
 *
 * SL_RDKAFKA_DEBUG=cgrp,... turns on librdkafka's debug log (stderr).
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PENDING_MAX  256
#define EXTRA_MAX    16
#define TOPICS_MAX   16
#define LIST_CHARS   8192
#define COMMITTED_MS 20000

struct opts {
    const char *bootstrap, *group, *topics, *client_id, *instance_id, *strategy, *log_path, *commit_mode;
    long session_ms, heartbeat_ms, commit_every, idle_ms, max_msgs, work_ms, partitions, rate, count;
    const char *extra[EXTRA_MAX];
    int n_extra;
};

/* Offsets processed since the last commit: the next offset per partition. */
struct pending {
    char topic[256];
    int32_t partition;
    int64_t next;
};

static volatile sig_atomic_t stop_requested;
static FILE *ev;
static int32_t assigned_gen = -1;
static int64_t last_activity_ms;
static struct pending pending[PENDING_MAX];
static int n_pending;
static const struct opts *opt;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sl_group_member: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) die("bad number for %s: '%s' (%ld..%ld)", what, s, lo, hi);
    return v;
}

/* One event line: "<ms> " + the formatted text + "\n", flushed at once. */
static void ev_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(ev, "%" PRId64 " ", now_ms());
    vfprintf(ev, fmt, ap);
    fputc('\n', ev);
    va_end(ap);
    if (fflush(ev) != 0 || ferror(ev)) die("writing the event log: %s", strerror(errno));
}

static void conf_put(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die("config %s=%s: %s", name, value, err);
}

static void conf_put_long(rd_kafka_conf_t *conf, const char *name, long value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", value);
    conf_put(conf, name, buf);
}

static int debug_wanted;

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (level < 7 || debug_wanted) fprintf(stderr, "%" PRId64 " %%%d|%s|%s\n", now_ms(), level, fac, buf);
}

/* bootstrap.servers, the log callback, SL_RDKAFKA_DEBUG and the -X pairs. */
static rd_kafka_conf_t *conf_base(const struct opts *o)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    conf_put(conf, "bootstrap.servers", o->bootstrap);
    conf_put(conf, "reconnect.backoff.ms", "50");
    conf_put(conf, "reconnect.backoff.max.ms", "500");
    const char *debug = getenv("SL_RDKAFKA_DEBUG");
    debug_wanted = debug && *debug;
    if (debug_wanted) conf_put(conf, "debug", debug);
    for (int i = 0; i < o->n_extra; i++) {
        char kv[512];
        snprintf(kv, sizeof(kv), "%s", o->extra[i]);
        char *eq = strchr(kv, '=');
        if (!eq) die("-X wants KEY=VALUE, got '%s'", o->extra[i]);
        *eq = '\0';
        conf_put(conf, kv, eq + 1);
    }
    return conf;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk) die("rd_kafka_new: %s", err);
    return rk;
}

/* ---- consume: generation, member id, partition lists ---- */

/* The generation id from the serialized consumer group metadata: "CGMDv2:"
 * then the int32 generation in host order (librdkafka 2.0.2's layout). */
static int32_t generation_of(rd_kafka_t *rk)
{
    static const char magic[] = "CGMDv2:";
    rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(rk);
    if (!md) return -1;
    void *buf = NULL;
    size_t size = 0;
    rd_kafka_error_t *error = rd_kafka_consumer_group_metadata_write(md, &buf, &size);
    rd_kafka_consumer_group_metadata_destroy(md);
    if (error) die("consumer_group_metadata_write: %s", rd_kafka_error_string(error));
    int32_t gen;
    if (size < sizeof(magic) - 1 + sizeof(gen) || memcmp(buf, magic, sizeof(magic) - 1) != 0)
        die("consumer group metadata: unknown serialized layout (not %s)", magic);
    memcpy(&gen, (const char *)buf + sizeof(magic) - 1, sizeof(gen));
    rd_kafka_mem_free(rk, buf);
    return gen;
}

/* "topic:partition,..." (with ":offset" when with_offsets), or "-". */
static void format_list(const rd_kafka_topic_partition_list_t *l, int with_offsets, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; l && i < l->cnt && used < size; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        int n = with_offsets ? snprintf(out + used, size - used, "%s%s:%" PRId32 ":%" PRId64, i ? "," : "",
                                        tp->topic, tp->partition, tp->offset)
                             : snprintf(out + used, size - used, "%s%s:%" PRId32, i ? "," : "", tp->topic,
                                        tp->partition);
        if (n < 0 || (size_t)n >= size - used) die("partition list longer than %zu characters", size);
        used += (size_t)n;
    }
    if (used == 0) snprintf(out, size, "-");
}

static void log_assignment(rd_kafka_t *rk, const char *what, const rd_kafka_topic_partition_list_t *parts,
                           const char *suffix)
{
    char list[LIST_CHARS];
    format_list(parts, 0, list, sizeof(list));
    char *member = rd_kafka_memberid(rk);
    int incremental = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    ev_line("%s %" PRId32 " %s %d %s %s%s", what, generation_of(rk), member && *member ? member : "-",
            parts ? parts->cnt : 0, list, incremental ? "incremental" : "eager", suffix);
    if (member) rd_kafka_mem_free(rk, member);
}

/* ---- consume: commits ---- */

static void log_commit(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t *offsets)
{
    char list[LIST_CHARS];
    format_list(offsets, 1, list, sizeof(list));
    if (err)
        ev_line("COMMIT %" PRId32 " ERR %s %s", assigned_gen, list, rd_kafka_err2name(err));
    else
        ev_line("COMMIT %" PRId32 " OK %s", assigned_gen, list);
}

/* Async commits: the result of each, per partition (served by consumer_poll). */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *offsets,
                      void *opaque)
{
    (void)rk;
    (void)opaque;
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET) return;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_t *tp = &offsets->elems[i];
        rd_kafka_topic_partition_list_add(one, tp->topic, tp->partition)->offset = tp->offset;
        log_commit(err ? err : tp->err, one);
        rd_kafka_topic_partition_list_destroy(one);
    }
}

static void pending_note(const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    for (int i = 0; i < n_pending; i++) {
        if (pending[i].partition == m->partition && strcmp(pending[i].topic, topic) == 0) {
            pending[i].next = m->offset + 1;
            return;
        }
    }
    if (n_pending == PENDING_MAX) die("more than %d partitions pending a commit", PENDING_MAX);
    struct pending *p = &pending[n_pending++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->partition = m->partition;
    p->next = m->offset + 1;
}

/* Commits what was processed since the last commit (sync or async, per -M). */
static void pending_commit(rd_kafka_t *rk)
{
    if (n_pending == 0) return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n_pending);
    for (int i = 0; i < n_pending; i++)
        rd_kafka_topic_partition_list_add(l, pending[i].topic, pending[i].partition)->offset = pending[i].next;
    n_pending = 0;
    int async = strcmp(opt->commit_mode, "async") == 0;
    rd_kafka_resp_err_t err = rd_kafka_commit(rk, l, async);
    if (!async || err) log_commit(err, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* ---- consume: rebalances and messages ---- */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque)
{
    (void)opaque;
    int incremental = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
    last_activity_ms = now_ms();
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assigned_gen = generation_of(rk);
        log_assignment(rk, "ASSIGN", parts, "");
        if (incremental)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        int lost = rd_kafka_assignment_lost(rk);
        if (lost)
            n_pending = 0;
        else
            pending_commit(rk);
        log_assignment(rk, "REVOKE", parts, lost ? " lost" : " kept");
        if (incremental)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
    } else {
        ev_line("ERROR %s rebalance", rd_kafka_err2name(err));
        aerr = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        ev_line("ERROR %s assign: %s", rd_kafka_err2name(rd_kafka_error_code(error)), rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    if (aerr) ev_line("ERROR %s assign", rd_kafka_err2name(aerr));
}

static void print_key(const rd_kafka_message_t *m, char *out, size_t size)
{
    if (!m->key) {
        snprintf(out, size, "-");
        return;
    }
    size_t n = m->key_len < size - 1 ? m->key_len : size - 1;
    const unsigned char *k = m->key;
    for (size_t i = 0; i < n; i++) out[i] = k[i] > ' ' && k[i] < 127 ? (char)k[i] : '?';
    out[n] = '\0';
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_requested) {}
}

/* Logs the message, "works" -w ms, then commits per -C/-M. */
static void process(rd_kafka_t *rk, const rd_kafka_message_t *m, long processed)
{
    char key[128];
    print_key(m, key, sizeof(key));
    ev_line("MSG %" PRId32 " %s %" PRId32 " %" PRId64 " %s", assigned_gen, rd_kafka_topic_name(m->rkt), m->partition,
            m->offset, key);
    last_activity_ms = now_ms();
    if (opt->work_ms > 0) sleep_ms(opt->work_ms);
    if (opt->commit_every == 0 || processed % opt->commit_every != 0) {
        if (opt->commit_every > 0) pending_note(m);
        return;
    }
    if (strcmp(opt->commit_mode, "message") == 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit_message(rk, m, 0);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset + 1;
        log_commit(err, l);
        rd_kafka_topic_partition_list_destroy(l);
        return;
    }
    pending_note(m);
    pending_commit(rk);
}

/* ---- consume: setup and loop ---- */

static rd_kafka_t *consumer_new(const struct opts *o)
{
    rd_kafka_conf_t *conf = conf_base(o);
    conf_put(conf, "group.id", o->group);
    conf_put(conf, "client.id", o->client_id);
    if (o->instance_id) conf_put(conf, "group.instance.id", o->instance_id);
    conf_put_long(conf, "session.timeout.ms", o->session_ms);
    conf_put_long(conf, "heartbeat.interval.ms", o->heartbeat_ms);
    conf_put(conf, "partition.assignment.strategy", o->strategy);
    conf_put(conf, "enable.auto.commit", "false");
    conf_put(conf, "enable.auto.offset.store", "false");
    conf_put(conf, "auto.offset.reset", "earliest");
    conf_put(conf, "enable.partition.eof", "false");
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    /* Set for async only: librdkafka also calls it for sync commits. */
    if (strcmp(o->commit_mode, "async") == 0) rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void subscribe(rd_kafka_t *rk, const char *topics)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", topics);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(TOPICS_MAX);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        rd_kafka_topic_partition_list_add(l, t, RD_KAFKA_PARTITION_UA);
    if (l->cnt == 0) die("no topic to subscribe to");
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, l);
    if (err) die("subscribe: %s", rd_kafka_err2str(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Returns why it stopped: "signal", "idle", "max" or "fatal". */
static const char *consume_loop(rd_kafka_t *rk, long *processed)
{
    while (!stop_requested) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            int64_t idle = now_ms() - last_activity_ms;
            if (opt->idle_ms > 0 && idle >= opt->idle_ms) {
                ev_line("IDLE %" PRId64, idle);
                return "idle";
            }
            continue;
        }
        if (m->err) {
            int fatal = m->err == RD_KAFKA_RESP_ERR__FATAL;
            ev_line("ERROR %s %s", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            if (fatal) return "fatal";
            continue;
        }
        (*processed)++;
        process(rk, m, *processed);
        rd_kafka_message_destroy(m);
        if (opt->max_msgs > 0 && *processed >= opt->max_msgs) return "max";
    }
    return "signal";
}

static int run_consume(const struct opts *o)
{
    if (!o->group || !o->topics) die("consume needs -g GROUP and -t TOPIC");
    if (strcmp(o->commit_mode, "sync") && strcmp(o->commit_mode, "async") && strcmp(o->commit_mode, "message"))
        die("-M wants sync, async or message, not '%s'", o->commit_mode);
    if (strcmp(o->commit_mode, "message") == 0 && o->commit_every != 1) die("-M message needs -C 1");
    rd_kafka_t *rk = consumer_new(o);
    last_activity_ms = now_ms();
    ev_line("START %s %s %s %s %ld", o->client_id, o->group, o->instance_id ? o->instance_id : "-", o->strategy,
            o->session_ms);
    subscribe(rk, o->topics);
    long processed = 0;
    const char *why = consume_loop(rk, &processed);
    rd_kafka_resp_err_t err = rd_kafka_consumer_close(rk);
    if (err) ev_line("ERROR %s consumer_close", rd_kafka_err2name(err));
    ev_line("EXIT %s %ld", why, processed);
    rd_kafka_destroy(rk);
    return strcmp(why, "fatal") == 0 ? 1 : 0;
}

/* ---- produce ---- */

static FILE *ack_log;
static long acked, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        failed++;
        return;
    }
    fprintf(ack_log, "%" PRId32 " %" PRId64 " %lu\n", m->partition, m->offset, (unsigned long)(uintptr_t)m->_private);
    acked++;
}

static void serve(rd_kafka_t *rk, int timeout_ms)
{
    if (rd_kafka_poll(rk, timeout_ms) > 0 && fflush(ack_log) != 0) die("writing the ack log: %s", strerror(errno));
}

/* Enqueues message `seq`; 0, or -1 when the local queue is full. */
static int produce_one(rd_kafka_t *rk, const struct opts *o, unsigned long seq)
{
    char key[32], value[32];
    int klen = snprintf(key, sizeof(key), "k%lu", seq);
    int vlen = snprintf(value, sizeof(value), "seq=%lu", seq);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(o->topics), RD_KAFKA_V_PARTITION((int32_t)(seq % (unsigned long)o->partitions)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, (size_t)klen),
        RD_KAFKA_V_VALUE(value, (size_t)vlen), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)seq), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return -1;
    if (err) die("producev: %s", rd_kafka_err2str(err));
    return 0;
}

static int run_produce(const struct opts *o)
{
    if (!o->topics) die("produce needs -t TOPIC");
    ack_log = o->log_path ? fopen(o->log_path, "a") : stdout;
    if (!ack_log) die("%s: %s", o->log_path, strerror(errno));
    rd_kafka_conf_t *conf = conf_base(o);
    conf_put(conf, "acks", "all");
    conf_put(conf, "linger.ms", "5");
    conf_put(conf, "message.timeout.ms", "60000");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
    int64_t start = now_ms();
    unsigned long seq = 0;
    while (!stop_requested && (o->count == 0 || seq < (unsigned long)o->count)) {
        if (o->rate > 0 && (double)seq >= (double)(now_ms() - start) * (double)o->rate / 1000.0)
            serve(rk, 1);
        else if (produce_one(rk, o, seq) == 0)
            seq++;
        else
            serve(rk, 5);
        serve(rk, 0);
    }
    int64_t deadline = now_ms() + 15000;
    while (rd_kafka_outq_len(rk) > 0 && now_ms() < deadline) serve(rk, 50);
    serve(rk, 0);
    fprintf(stderr, "sl_group_member produce: produced %lu, acked %ld, failed %ld, unreported %d\n", seq, acked, failed,
            rd_kafka_outq_len(rk));
    if (ack_log != stdout) fclose(ack_log);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- committed ---- */

/* 0 when every partition got an answer (printed), -1 to retry. */
static int try_committed(rd_kafka_t *rk, const struct opts *o)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)o->partitions);
    for (int32_t p = 0; p < (int32_t)o->partitions; p++) rd_kafka_topic_partition_list_add(l, o->topics, p);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, 5000);
    for (int i = 0; !err && i < l->cnt; i++) err = l->elems[i].err;
    if (err) {
        fprintf(stderr, "sl_group_member committed: %s (retrying)\n", rd_kafka_err2name(err));
    } else {
        for (int i = 0; i < l->cnt; i++)
            printf("%s %" PRId32 " %" PRId64 "\n", l->elems[i].topic, l->elems[i].partition, l->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(l);
    return err ? -1 : 0;
}

static int run_committed(const struct opts *o)
{
    if (!o->group || !o->topics) die("committed needs -g GROUP and -t TOPIC");
    rd_kafka_conf_t *conf = conf_base(o);
    conf_put(conf, "group.id", o->group);
    conf_put(conf, "enable.auto.commit", "false");
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
    int64_t deadline = now_ms() + COMMITTED_MS;
    int rc = -1;
    while (rc != 0 && now_ms() < deadline && !stop_requested) {
        rc = try_committed(rk, o);
        if (rc != 0) sleep_ms(200);
    }
    rd_kafka_destroy(rk);
    if (rc != 0) fprintf(stderr, "sl_group_member committed: no answer within %d ms\n", COMMITTED_MS);
    return rc == 0 ? 0 : 1;
}

/* ---- mock ---- */

static int run_mock(const struct opts *o)
{
    rd_kafka_conf_t *conf = conf_base(&(struct opts){.bootstrap = "", .n_extra = 0});
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
    if (!mc) die("rd_kafka_mock_cluster_new failed");
    if (o->topics) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mc, o->topics, (int)o->partitions, 1);
        if (err) die("mock topic %s: %s", o->topics, rd_kafka_err2str(err));
    }
    printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    while (!stop_requested) sleep_ms(100);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}

/* ---- command line ---- */

static void usage(void)
{
    fputs("usage: sl_group_member consume -b HOST:PORT -g GROUP -t TOPIC[,TOPIC...] [-c CLIENT_ID]\n"
          "           [-i GROUP_INSTANCE_ID] [-s SESSION_MS] [-H HEARTBEAT_MS] [-a STRATEGY] [-C N]\n"
          "           [-M sync|async|message] [-I IDLE_MS] [-n MAX_MSGS] [-w WORK_MS] [-o LOGFILE] [-X K=V]...\n"
          "       sl_group_member produce -b HOST:PORT -t TOPIC [-p PARTITIONS] [-r RATE] [-n COUNT] [-o ACKLOG]\n"
          "       sl_group_member committed -b HOST:PORT -g GROUP -t TOPIC [-p PARTITIONS]\n"
          "       sl_group_member now\n"
          "       sl_group_member mock [-t TOPIC [-p PARTITIONS]]\n",
          stderr);
    exit(2);
}

static void parse_opt(struct opts *o, int c, const char *arg)
{
    switch (c) {
    case 'b': o->bootstrap = arg; break;
    case 'g': o->group = arg; break;
    case 't': o->topics = arg; break;
    case 'c': o->client_id = arg; break;
    case 'i': o->instance_id = arg; break;
    case 'a': o->strategy = arg; break;
    case 'o': o->log_path = arg; break;
    case 'M': o->commit_mode = arg; break;
    case 's': o->session_ms = parse_long(arg, "-s", 1, 3600000); break;
    case 'H': o->heartbeat_ms = parse_long(arg, "-H", 1, 3600000); break;
    case 'C': o->commit_every = parse_long(arg, "-C", 0, 1000000); break;
    case 'I': o->idle_ms = parse_long(arg, "-I", 0, 3600000); break;
    case 'n': o->max_msgs = o->count = parse_long(arg, "-n", 0, 1000000000); break;
    case 'w': o->work_ms = parse_long(arg, "-w", 0, 60000); break;
    case 'p': o->partitions = parse_long(arg, "-p", 1, 100000); break;
    case 'r': o->rate = parse_long(arg, "-r", 0, 10000000); break;
    case 'X':
        if (o->n_extra == EXTRA_MAX) die("more than %d -X options", EXTRA_MAX);
        o->extra[o->n_extra++] = arg;
        break;
    default: usage();
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    struct opts o = {.client_id = "sl_group_member", .strategy = "range", .commit_mode = "sync",
                     .session_ms = 6000, .heartbeat_ms = 1000, .commit_every = 1, .partitions = 6, .rate = 100};
    const char *mode = argv[1];
    int c;
    while ((c = getopt(argc - 1, argv + 1, "b:g:t:c:i:a:o:M:s:H:C:I:n:w:p:r:X:")) != -1) parse_opt(&o, c, optarg);
    if (optind != argc - 1) usage();
    opt = &o;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (strcmp(mode, "now") == 0) {
        printf("%" PRId64 "\n", now_ms());
        return 0;
    }
    if (strcmp(mode, "mock") == 0) return run_mock(&o);
    if (!o.bootstrap) die("-b HOST:PORT is required");
    if (strcmp(mode, "produce") == 0) return run_produce(&o);
    if (strcmp(mode, "committed") == 0) return run_committed(&o);
    if (strcmp(mode, "consume") != 0) usage();
    ev = o.log_path ? fopen(o.log_path, "a") : stdout;
    if (!ev) die("%s: %s", o.log_path, strerror(errno));
    return run_consume(&o);
}
