/*
 * sl_txn: librdkafka (2.0.2) clients for the transaction tests
 * (tests/compat/test_txn_rdkafka.sh, tests/crash/test_txn_ctp.sh). One binary,
 * one subcommand per role. Result lines go to stdout, flushed one by one;
 * diagnostics and librdkafka's warnings to stderr.
 *
 *   sl_txn produce BOOTSTRAP TOPIC TXN_ID NTXN NMSG PATTERN [PREFIX]
 *     A transactional producer: NTXN transactions of NMSG messages (key TXN_ID,
 *     value "<PREFIX><i>-msg<j>", PREFIX "txn" by default, partition j %
 *     partitions), each committed or aborted as PATTERN says, repeating
 *     ("cca": commit, commit, abort, commit, ...). Before an abort the
 *     messages are flushed, so aborted data is in the log. Prints
 *     "txn <i> commit|abort ok <ms>".
 *
 *   sl_txn consume BOOTSTRAP TOPIC read_committed|read_uncommitted
 *     Reads every partition from the beginning (assign, no group join) until
 *     each reports its end for that isolation level (librdkafka's partition
 *     EOF: the high watermark, or the last stable offset for read_committed).
 *     Prints "<partition> <offset> <value>" per message.
 *
 *   sl_txn fill BOOTSTRAP TOPIC N
 *     N messages "in-<seq>" to partition seq % partitions, idempotent,
 *     acks=all; fails unless every one is acknowledged.
 *
 *   sl_txn ctp BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP TXN_ID BATCH IDLE_MS
 *     Exactly-once consume-transform-produce. init_transactions first (which
 *     aborts what a crashed predecessor left open), then a high-level consumer
 *     (group GROUP, static member TXN_ID, read_committed, no auto commit).
 *     Up to BATCH input messages make one transaction: per input one output
 *     "<in partition>:<in offset>:<in value>" to partition in-partition %
 *     out-partitions, send_offsets_to_transaction with the consumer's position
 *     (last processed offset + 1 per partition), commit. An abortable error
 *     aborts and seeks back to the committed offsets. After IDLE_MS without
 *     input it compares the group's committed offsets with the input's end
 *     offsets and exits 0 when they are equal, EXIT_BEHIND otherwise (also after
 *     READ_MS without an assignment).
 *     SL_TXN_CRASH_PCT=P: at each crash point of each transaction, _exit
 *     (EXIT_CRASH) with probability P% (flushing first, so what was produced is
 *     in the log): before-produce, after-produce, after-offsets, after-commit;
 *     SL_TXN_CRASH_POINT=NAME restricts it to one point. SL_TXN_SEED seeds it.
 *     Prints "commit <n>" per committed transaction, "abort <n> <why>",
 *     "crash <point>", and the end check.
 *
 *   sl_txn init BOOTSTRAP TXN_ID TIMEOUT_MS
 *     init_transactions with transaction.timeout.ms TIMEOUT_MS; prints "init ok"
 *     or "init <error name> fatal=F abortable=A retriable=R".
 *
 *   sl_txn fence BOOTSTRAP TOPIC TXN_ID
 *     Zombie fencing: A begins and delivers "fenceA-m<j>"; B (same id) inits and
 *     commits "fenceB-m<j>"; then A's produce of "fenceA-late" and commit must
 *     fail with a fatal fenced error. The readers' side is the script's.
 *
 *   sl_txn timeout BOOTSTRAP TOPIC TXN_ID TIMEOUT_MS
 *     A transaction ("timeout-m<j>") left open: the broker must abort it after
 *     TIMEOUT_MS (seen as the read_committed end reaching the high watermark),
 *     the producer's next commit must fail; then "timeout-after-m<j>" is
 *     committed (same instance after an abort if the error was abortable, else
 *     a new instance).
 *
 *   sl_txn lso BOOTSTRAP TOPIC TXN_ID
 *     The last stable offset, on partition 0: a read_committed reader gets
 *     nothing of or after an open transaction for BLOCK_MS (a plain message is
 *     written after it), continues right after the commit, and after an abort
 *     skips to the plain message behind it; read_uncommitted sees everything.
 *
 *   sl_txn offsets BOOTSTRAP TOPIC GROUP TXN_ID
 *     send_offsets_to_transaction: the offset is invisible to OffsetFetch
 *     (read_uncommitted: the old value; read_committed: never the new one)
 *     while the transaction is open, visible after its commit, and an aborted
 *     one never shows.
 *
 * Exit: 0 ok, 1 a check failed or a client call failed (the line says what was
 * expected and what was seen), 2 usage, EXIT_BEHIND, EXIT_CRASH.
 * SL_TXN_COMPRESSION=CODEC sets every producer's compression.codec.
 * SL_RDKAFKA_DEBUG=eos,msg,... turns on librdkafka's debug log (stderr).
 */
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PARTS_MAX    64
#define VALUE_MAX    256
#define VALS_MAX     16
#define VAL_CHARS    48
#define BATCH_MAX    1000
#define READ_MS      30000 /* bound on reading a topic to its end */
#define STEP_MS      10000 /* bound on one step of a scenario: a message to arrive, a call to answer */
#define RETRY_MS     60000 /* bound on retrying a retriable transactional call */
#define BLOCK_MS     1000  /* how long read_committed must see nothing past an open transaction */
#define SCENARIO_N   6     /* messages per transaction in fence and timeout */
#define EXIT_BEHIND  3
#define EXIT_CRASH   42
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

static const char *cmd = "-";

/* ---- output, time, arguments ---- */

PRINTF(1, 2) _Noreturn static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "sl_txn %s: FAIL: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* One result line on stdout, flushed at once. */
PRINTF(1, 2) static void out(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    if (fflush(stdout) != 0) exit(1);
}

PRINTF(1, 2) static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sl_txn %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A pause between polls of something that has no notification (retry pacing only). */
static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

_Noreturn static void usage(void)
{
    fputs("usage: sl_txn produce BOOTSTRAP TOPIC TXN_ID NTXN NMSG PATTERN [PREFIX]\n"
          "       sl_txn consume BOOTSTRAP TOPIC read_committed|read_uncommitted\n"
          "       sl_txn fill BOOTSTRAP TOPIC N\n"
          "       sl_txn ctp BOOTSTRAP IN_TOPIC OUT_TOPIC GROUP TXN_ID BATCH IDLE_MS\n"
          "       sl_txn init BOOTSTRAP TXN_ID TIMEOUT_MS\n"
          "       sl_txn fence BOOTSTRAP TOPIC TXN_ID\n"
          "       sl_txn timeout BOOTSTRAP TOPIC TXN_ID TIMEOUT_MS\n"
          "       sl_txn lso BOOTSTRAP TOPIC TXN_ID\n"
          "       sl_txn offsets BOOTSTRAP TOPIC GROUP TXN_ID\n"
          "(the file comment of tests/tools/sl_txn.c explains each)\n",
          stderr);
    exit(2);
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "sl_txn %s: bad %s '%s' (%ld..%ld)\n", cmd, what, s, lo, hi);
        exit(2);
    }
    return v;
}

/* ---- configuration ---- */

static int debug_wanted;

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level < 7 || debug_wanted)
        fprintf(stderr, "%" PRId64 " %s %%%d|%s|%s\n", now_ms(), rd_kafka_name(rk), level, fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    note("%s: error: %s%s: %s", rd_kafka_name(rk), rd_kafka_err2name(err),
         err == RD_KAFKA_RESP_ERR__FATAL ? " (fatal)" : "", reason);
}

static void conf_put(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        fail("config %s=%s: %s", name, value, err);
}

static void conf_put_long(rd_kafka_conf_t *conf, const char *name, long value)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%ld", value);
    conf_put(conf, name, buf);
}

static rd_kafka_conf_t *conf_new(const char *bootstrap, const char *client_id)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    conf_put(conf, "bootstrap.servers", bootstrap);
    conf_put(conf, "client.id", client_id);
    conf_put(conf, "reconnect.backoff.ms", "50");
    conf_put(conf, "reconnect.backoff.max.ms", "500");
    const char *debug = getenv("SL_RDKAFKA_DEBUG");
    debug_wanted = debug && *debug;
    if (debug_wanted) conf_put(conf, "debug", debug);
    return conf;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk) fail("rd_kafka_new: %s", err);
    return rk;
}

/* ---- producers ---- */

enum mode { MODE_PLAIN, MODE_IDEMPOTENT, MODE_TXN };

struct producer {
    const char *name;
    rd_kafka_t *rk;
    long acked, failed; /* delivery reports since producer_mark() */
    rd_kafka_resp_err_t last_err;
    int64_t first_offset, last_offset; /* of the acknowledged ones; -1: none */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct producer *p = opaque;
    if (m->err) {
        p->failed++;
        p->last_err = m->err;
        return;
    }
    p->acked++;
    if (p->first_offset < 0) p->first_offset = m->offset;
    p->last_offset = m->offset;
}

static void producer_mark(struct producer *p)
{
    p->acked = p->failed = 0;
    p->last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    p->first_offset = p->last_offset = -1;
}

static void producer_new(struct producer *p, const char *name, const char *bootstrap, enum mode mode,
                         const char *txn_id, long txn_timeout_ms)
{
    rd_kafka_conf_t *conf = conf_new(bootstrap, name);
    conf_put(conf, "acks", "all");
    conf_put(conf, "linger.ms", "5");
    const char *codec = getenv("SL_TXN_COMPRESSION");
    if (codec && *codec) conf_put(conf, "compression.codec", codec);
    if (mode == MODE_IDEMPOTENT) conf_put(conf, "enable.idempotence", "true");
    if (mode == MODE_TXN) {
        conf_put(conf, "transactional.id", txn_id);
        conf_put_long(conf, "transaction.timeout.ms", txn_timeout_ms);
    }
    p->name = name;
    producer_mark(p);
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    p->rk = client_new(RD_KAFKA_PRODUCER, conf);
}

/* Enqueues one message (waiting while the local queue is full); returns producev's error. */
static rd_kafka_resp_err_t produce_value(struct producer *p, const char *topic, int32_t partition, const char *key,
                                         const char *value)
{
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, key ? strlen(key) : 0), RD_KAFKA_V_VALUE((char *)value, strlen(value)), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) return err;
        rd_kafka_poll(p->rk, 10);
    }
}

static void produce_must(struct producer *p, const char *topic, int32_t partition, const char *key, const char *value)
{
    rd_kafka_resp_err_t err = produce_value(p, topic, partition, key, value);
    if (err) fail("%s: produce '%s' to %s [%" PRId32 "]: %s", p->name, value, topic, partition, rd_kafka_err2name(err));
}

/* Waits until every enqueued message has its delivery report; all must have succeeded. */
static void flush_must(struct producer *p, const char *what)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(p->rk, STEP_MS);
    if (err) fail("%s: %s: %d still undelivered after %d ms", p->name, what, rd_kafka_outq_len(p->rk), STEP_MS);
    if (p->failed)
        fail("%s: %s: %ld deliveries failed (last %s), want 0", p->name, what, p->failed,
             rd_kafka_err2name(p->last_err));
}

/* ---- transactional calls ---- */

enum txn_op { TXN_INIT, TXN_COMMIT, TXN_ABORT };
static const char *const op_names[] = {"init_transactions", "commit_transaction", "abort_transaction"};

static void error_describe(const rd_kafka_error_t *error, char *buf, size_t size)
{
    snprintf(buf, size, "%s fatal=%d abortable=%d retriable=%d: %s", rd_kafka_error_name(error),
             rd_kafka_error_is_fatal(error), rd_kafka_error_txn_requires_abort(error),
             rd_kafka_error_is_retriable(error), rd_kafka_error_string(error));
}

static rd_kafka_error_t *txn_call(rd_kafka_t *rk, enum txn_op op)
{
    switch (op) {
    case TXN_INIT: return rd_kafka_init_transactions(rk, STEP_MS);
    case TXN_COMMIT: return rd_kafka_commit_transaction(rk, -1);
    case TXN_ABORT: return rd_kafka_abort_transaction(rk, -1);
    }
    return NULL;
}

/* The call, repeated while its error is retriable (up to RETRY_MS): NULL, or the last error (caller destroys). */
static rd_kafka_error_t *txn_retry(struct producer *p, enum txn_op op)
{
    int64_t deadline = now_ms() + RETRY_MS;
    for (;;) {
        rd_kafka_error_t *error = txn_call(p->rk, op);
        if (!error || !rd_kafka_error_is_retriable(error) || now_ms() > deadline) return error;
        char desc[512];
        error_describe(error, desc, sizeof(desc));
        note("%s: %s: %s (retrying)", p->name, op_names[op], desc);
        rd_kafka_error_destroy(error);
    }
}

static void txn_must(struct producer *p, enum txn_op op)
{
    rd_kafka_error_t *error = txn_retry(p, op);
    if (!error) return;
    char desc[512];
    error_describe(error, desc, sizeof(desc));
    fail("%s: %s: %s", p->name, op_names[op], desc);
}

static void begin_must(struct producer *p)
{
    rd_kafka_error_t *error = rd_kafka_begin_transaction(p->rk);
    if (!error) return;
    char desc[512];
    error_describe(error, desc, sizeof(desc));
    fail("%s: begin_transaction: %s", p->name, desc);
}

/* ---- metadata, readers, messages ---- */

/* The topic's partition count (a producer's request auto-creates it). */
static int32_t partitions_of(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int64_t deadline = now_ms() + STEP_MS;
    for (;;) {
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
        int32_t n = 0;
        if (!err) {
            if (md->topic_cnt == 1 && !md->topics[0].err) n = md->topics[0].partition_cnt;
            if (md->topic_cnt == 1) err = md->topics[0].err;
            rd_kafka_metadata_destroy(md);
        }
        if (n > PARTS_MAX) fail("%s has %" PRId32 " partitions, at most %d supported", topic, n, PARTS_MAX);
        if (n > 0) {
            rd_kafka_topic_destroy(rkt);
            return n;
        }
        if (now_ms() > deadline)
            fail("metadata of %s: no partitions after %d ms (%s)", topic, STEP_MS, rd_kafka_err2name(err));
        sleep_ms(100);
    }
}

/* A consumer for assign(): group.id is required by librdkafka's consumer API but never joined. */
static rd_kafka_t *reader_new(const char *bootstrap, const char *isolation, const char *group, int eof)
{
    char client_id[64];
    snprintf(client_id, sizeof(client_id), "reader-%s", isolation);
    rd_kafka_conf_t *conf = conf_new(bootstrap, client_id);
    conf_put(conf, "group.id", group ? group : "sl_txn.reader");
    conf_put(conf, "isolation.level", isolation);
    conf_put(conf, "enable.auto.commit", "false");
    conf_put(conf, "auto.offset.reset", "earliest");
    conf_put(conf, "enable.partition.eof", eof ? "true" : "false");
    conf_put(conf, "fetch.wait.max.ms", "100");
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void assign_range(rd_kafka_t *rk, const char *topic, int32_t first, int32_t n, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int32_t p = first; p < first + n; p++) rd_kafka_topic_partition_list_add(l, topic, p)->offset = offset;
    rd_kafka_resp_err_t err = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) fail("assign %s: %s", topic, rd_kafka_err2name(err));
}

/* The message's value with bytes outside '!'..'~' as '?' ("-" for null), cut to size - 1. */
static void value_of(const rd_kafka_message_t *m, char *buf, size_t size)
{
    if (!m->payload) {
        snprintf(buf, size, "-");
        return;
    }
    size_t n = m->len < size - 1 ? m->len : size - 1;
    const unsigned char *v = m->payload;
    for (size_t i = 0; i < n; i++) buf[i] = v[i] > ' ' && v[i] < 127 ? (char)v[i] : '?';
    buf[n] = '\0';
}

/* The next data message within timeout_ms, or NULL; EOFs and transient errors are skipped. */
static rd_kafka_message_t *next_message(rd_kafka_t *rk, int64_t timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0) return NULL;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, (int)(left < 100 ? left : 100));
        if (!m) continue;
        if (!m->err) return m;
        if (m->err == RD_KAFKA_RESP_ERR__FATAL) fail("consumer: fatal error: %s", rd_kafka_message_errstr(m));
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            note("consumer: %s: %s", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
    }
}

static void watermarks(rd_kafka_t *rk, const char *topic, int32_t partition, int64_t *lo, int64_t *hi)
{
    rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, partition, lo, hi, STEP_MS);
    if (err) fail("watermarks of %s [%" PRId32 "]: %s", topic, partition, rd_kafka_err2name(err));
}

/* ---- value lists for the scenarios ---- */

struct vals {
    int n;
    char v[VALS_MAX][VAL_CHARS];
};

PRINTF(2, 3) static void vals_add(struct vals *vs, const char *fmt, ...)
{
    if (vs->n == VALS_MAX) fail("more than %d expected values", VALS_MAX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vs->v[vs->n++], VAL_CHARS, fmt, ap);
    va_end(ap);
}

static struct vals vals_txn(const char *name, int n)
{
    struct vals vs = {0};
    for (int j = 0; j < n; j++) vals_add(&vs, "%s-m%d", name, j);
    return vs;
}

static struct vals vals_join(const struct vals *a, const struct vals *b)
{
    struct vals vs = *a;
    for (int i = 0; i < b->n; i++) vals_add(&vs, "%s", b->v[i]);
    return vs;
}

/* The next want->n messages must be want's values, in order, each within STEP_MS. */
static void expect_values(rd_kafka_t *rk, const char *what, const struct vals *want)
{
    for (int i = 0; i < want->n; i++) {
        rd_kafka_message_t *m = next_message(rk, STEP_MS);
        if (!m)
            fail("%s: expected '%s' (message %d of %d), got nothing in %d ms", what, want->v[i], i + 1, want->n,
                 STEP_MS);
        char got[VALUE_MAX];
        value_of(m, got, sizeof(got));
        int64_t offset = m->offset;
        rd_kafka_message_destroy(m);
        if (strcmp(got, want->v[i]) != 0)
            fail("%s: expected '%s' (message %d of %d), got '%s' at offset %" PRId64, what, want->v[i], i + 1, want->n,
                 got, offset);
    }
}

static void expect_nothing(rd_kafka_t *rk, const char *what, int64_t ms)
{
    int64_t t0 = now_ms();
    rd_kafka_message_t *m = next_message(rk, ms);
    if (!m) return;
    char got[VALUE_MAX];
    value_of(m, got, sizeof(got));
    fail("%s: expected no message for %" PRId64 " ms, got '%s' at offset %" PRId64 " after %" PRId64 " ms", what, ms,
         got, m->offset, now_ms() - t0);
}

/* ---- produce, consume, fill, init ---- */

static int cmd_produce(int argc, char **argv)
{
    if (argc != 8 && argc != 9) usage();
    const char *bootstrap = argv[2], *topic = argv[3], *txn_id = argv[4], *pattern = argv[7];
    const char *prefix = argc == 9 ? argv[8] : "txn";
    long ntxn = parse_long(argv[5], "NTXN", 1, 100000), nmsg = parse_long(argv[6], "NMSG", 1, 100000);
    size_t plen = strlen(pattern);
    if (plen == 0 || strspn(pattern, "ca") != plen) {
        fprintf(stderr, "sl_txn produce: PATTERN is made of 'c' (commit) and 'a' (abort), not '%s'\n", pattern);
        exit(2);
    }
    struct producer p;
    producer_new(&p, "produce", bootstrap, MODE_TXN, txn_id, 60000);
    int32_t parts = partitions_of(p.rk, topic);
    txn_must(&p, TXN_INIT);
    for (long i = 0; i < ntxn; i++) {
        int commit = pattern[(size_t)i % plen] == 'c';
        int64_t t0 = now_ms();
        begin_must(&p);
        producer_mark(&p);
        for (long j = 0; j < nmsg; j++) {
            char value[64];
            snprintf(value, sizeof(value), "%.20s%ld-msg%ld", prefix, i, j);
            produce_must(&p, topic, (int32_t)(j % parts), txn_id, value);
        }
        if (!commit) flush_must(&p, "the messages of a transaction to abort");
        txn_must(&p, commit ? TXN_COMMIT : TXN_ABORT);
        if (commit && p.acked != nmsg)
            fail("txn %ld: commit_transaction ok but %ld of %ld messages acknowledged", i, p.acked, nmsg);
        out("txn %ld %s ok %" PRId64 " ms", i, commit ? "commit" : "abort", now_ms() - t0);
    }
    rd_kafka_destroy(p.rk);
    return 0;
}

/* Handles one consume event; returns 1 when it was a partition's first EOF. */
static int consume_event(rd_kafka_message_t *m, char *at_end)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->partition < 0 || m->partition >= PARTS_MAX || at_end[m->partition]) return 0;
        at_end[m->partition] = 1;
        return 1;
    }
    if (m->err == RD_KAFKA_RESP_ERR__FATAL) fail("fatal consumer error: %s", rd_kafka_message_errstr(m));
    if (m->err) {
        note("%s: %s", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        return 0;
    }
    char value[VALUE_MAX];
    value_of(m, value, sizeof(value));
    out("%" PRId32 " %" PRId64 " %s", m->partition, m->offset, value);
    return 0;
}

static int cmd_consume(int argc, char **argv)
{
    if (argc != 5) usage();
    const char *bootstrap = argv[2], *topic = argv[3], *isolation = argv[4];
    if (strcmp(isolation, "read_committed") != 0 && strcmp(isolation, "read_uncommitted") != 0) usage();
    rd_kafka_t *rk = reader_new(bootstrap, isolation, NULL, 1);
    int32_t parts = partitions_of(rk, topic);
    assign_range(rk, topic, 0, parts, RD_KAFKA_OFFSET_BEGINNING);
    char at_end[PARTS_MAX] = {0};
    int32_t n_end = 0;
    int64_t deadline = now_ms() + READ_MS;
    while (n_end < parts) {
        if (now_ms() > deadline)
            fail("%s %s: only %" PRId32 " of %" PRId32 " partitions reached their end in %d ms", topic, isolation,
                 n_end, parts, READ_MS);
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        n_end += consume_event(m, at_end);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

static int cmd_fill(int argc, char **argv)
{
    if (argc != 5) usage();
    const char *bootstrap = argv[2], *topic = argv[3];
    long n = parse_long(argv[4], "N", 1, 10000000);
    struct producer p;
    producer_new(&p, "fill", bootstrap, MODE_IDEMPOTENT, NULL, 0);
    int32_t parts = partitions_of(p.rk, topic);
    for (long seq = 0; seq < n; seq++) {
        char value[32];
        snprintf(value, sizeof(value), "in-%ld", seq);
        produce_must(&p, topic, (int32_t)(seq % parts), NULL, value);
        if (seq % 256 == 0) rd_kafka_poll(p.rk, 0);
    }
    flush_must(&p, "fill");
    if (p.acked != n) fail("%ld of %ld messages acknowledged", p.acked, n);
    out("fill: %ld messages acknowledged in %" PRId32 " partitions of %s", n, parts, topic);
    rd_kafka_destroy(p.rk);
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    if (argc != 5) usage();
    long timeout_ms = parse_long(argv[4], "TIMEOUT_MS", 1000, 2147483647L);
    struct producer p;
    producer_new(&p, "init", argv[2], MODE_TXN, argv[3], timeout_ms);
    rd_kafka_error_t *error = rd_kafka_init_transactions(p.rk, STEP_MS);
    if (!error) {
        out("init ok");
    } else {
        out("init %s fatal=%d abortable=%d retriable=%d", rd_kafka_error_name(error), rd_kafka_error_is_fatal(error),
            rd_kafka_error_txn_requires_abort(error), rd_kafka_error_is_retriable(error));
        note("init_transactions: %s", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    rd_kafka_destroy(p.rk);
    return 0;
}

/* ---- fence ---- */

/* Begins a transaction and delivers name-m<j> over the partitions. */
static void txn_open_with(struct producer *p, const char *topic, int32_t parts, const char *key, const struct vals *vs)
{
    begin_must(p);
    producer_mark(p);
    for (int j = 0; j < vs->n; j++) produce_must(p, topic, j % parts, key, vs->v[j]);
    flush_must(p, "the transaction's messages");
}

/* A's commit after B's init must fail with a fatal fenced error. */
static void fence_check(struct producer *a, rd_kafka_error_t *error)
{
    if (!error) fail("A: commit_transaction succeeded after B's init_transactions: the zombie committed");
    char desc[512], reason[512];
    error_describe(error, desc, sizeof(desc));
    out("fence: A commit_transaction -> %s", desc);
    rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(a->rk, reason, sizeof(reason));
    out("fence: A rd_kafka_fatal_error -> %s: %s", rd_kafka_err2name(fatal), fatal ? reason : "-");
    out("fence: A delivery reports after B's init: %ld ok, %ld failed (last %s)", a->acked, a->failed,
        rd_kafka_err2name(a->last_err));
    if (!rd_kafka_error_is_fatal(error)) fail("A: commit error %s is not fatal; want a fatal fenced error", desc);
    if (fatal != RD_KAFKA_RESP_ERR__FENCED && fatal != RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH &&
        fatal != RD_KAFKA_RESP_ERR_PRODUCER_FENCED)
        fail("A: fatal error %s; want _FENCED (from INVALID_PRODUCER_EPOCH or PRODUCER_FENCED)",
             rd_kafka_err2name(fatal));
    if (a->acked != 0) fail("A: %ld messages acknowledged after it was fenced; want 0", a->acked);
    rd_kafka_error_destroy(error);
}

static int cmd_fence(int argc, char **argv)
{
    if (argc != 5) usage();
    const char *bootstrap = argv[2], *topic = argv[3], *txn_id = argv[4];
    struct producer a, b;
    producer_new(&a, "A", bootstrap, MODE_TXN, txn_id, 60000);
    int32_t parts = partitions_of(a.rk, topic);
    txn_must(&a, TXN_INIT);
    struct vals va = vals_txn("fenceA", SCENARIO_N), vb = vals_txn("fenceB", SCENARIO_N);
    txn_open_with(&a, topic, parts, txn_id, &va);
    out("fence: A delivered %ld messages in its open transaction", a.acked);
    producer_new(&b, "B", bootstrap, MODE_TXN, txn_id, 60000);
    int64_t t0 = now_ms();
    txn_must(&b, TXN_INIT);
    out("fence: B init_transactions ok in %" PRId64 " ms", now_ms() - t0);
    txn_open_with(&b, topic, parts, txn_id, &vb);
    txn_must(&b, TXN_COMMIT);
    out("fence: B committed %ld messages", b.acked);
    producer_mark(&a);
    rd_kafka_resp_err_t err = produce_value(&a, topic, 0, txn_id, "fenceA-late");
    out("fence: A produce of fenceA-late -> %s", err ? rd_kafka_err2name(err) : "queued");
    fence_check(&a, rd_kafka_commit_transaction(a.rk, STEP_MS));
    rd_kafka_destroy(a.rk);
    rd_kafka_destroy(b.rk);
    return 0;
}

/* ---- timeout ---- */

/* Partitions whose read_committed end (the LSO) is below the high watermark. */
static int32_t unstable_partitions(rd_kafka_t *rc, rd_kafka_t *ru, const char *topic, int32_t parts, int64_t *lso,
                                   int64_t *hw)
{
    int32_t n = 0;
    for (int32_t p = 0; p < parts; p++) {
        int64_t lo, l, h;
        watermarks(rc, topic, p, &lo, &l);
        watermarks(ru, topic, p, &lo, &h);
        if (l != h) {
            n++;
            *lso = l;
            *hw = h;
        }
    }
    return n;
}

/* Polls the LSO (every 50 ms) until no partition has an open transaction; returns ms since t0. */
static int64_t wait_stable(rd_kafka_t *rc, rd_kafka_t *ru, const char *topic, int32_t parts, int64_t t0,
                           long timeout_ms)
{
    for (;;) {
        int64_t lso = -1, hw = -1;
        int32_t n = unstable_partitions(rc, ru, topic, parts, &lso, &hw);
        int64_t took = now_ms() - t0;
        if (n == 0) return took;
        if (took > timeout_ms + STEP_MS)
            fail("the transaction was still open after %" PRId64 " ms (transaction.timeout.ms %ld): %" PRId32
                 " partitions with LSO < HW, e.g. %" PRId64 " < %" PRId64,
                 took, timeout_ms, n, lso, hw);
        sleep_ms(50);
    }
}

/* After the timeout abort: commit "timeout-after-m<j>", on this instance if it can go on, else a new one. */
static void timeout_recover(struct producer *p, rd_kafka_error_t *error, const char *bootstrap, const char *topic,
                            int32_t parts, const char *txn_id, long timeout_ms)
{
    struct producer fresh;
    struct vals after = vals_txn("timeout-after", SCENARIO_N);
    if (rd_kafka_error_txn_requires_abort(error)) {
        txn_must(p, TXN_ABORT);
        out("timeout: abort_transaction ok; the same instance goes on");
    } else {
        producer_new(&fresh, "T2", bootstrap, MODE_TXN, txn_id, timeout_ms);
        txn_must(&fresh, TXN_INIT);
        out("timeout: the error is not abortable; a new instance's init_transactions ok");
        p = &fresh;
    }
    txn_open_with(p, topic, parts, txn_id, &after);
    txn_must(p, TXN_COMMIT);
    out("timeout: committed %ld messages after the timeout", p->acked);
    if (p == &fresh) rd_kafka_destroy(fresh.rk);
}

static int cmd_timeout(int argc, char **argv)
{
    if (argc != 6) usage();
    const char *bootstrap = argv[2], *topic = argv[3], *txn_id = argv[4];
    long timeout_ms = parse_long(argv[5], "TIMEOUT_MS", 1000, 900000);
    struct producer p;
    producer_new(&p, "T", bootstrap, MODE_TXN, txn_id, timeout_ms);
    int32_t parts = partitions_of(p.rk, topic);
    txn_must(&p, TXN_INIT);
    rd_kafka_t *rc = reader_new(bootstrap, "read_committed", NULL, 0);
    rd_kafka_t *ru = reader_new(bootstrap, "read_uncommitted", NULL, 0);
    struct vals vs = vals_txn("timeout", SCENARIO_N);
    int64_t t0 = now_ms();
    txn_open_with(&p, topic, parts, txn_id, &vs);
    int64_t lso = -1, hw = -1;
    int32_t open = unstable_partitions(rc, ru, topic, parts, &lso, &hw);
    out("timeout: %ld messages delivered; %" PRId32 " partitions with LSO < HW", p.acked, open);
    if (open == 0) fail("the open transaction left every partition's LSO at its HW; want LSO < HW");
    int64_t took = wait_stable(rc, ru, topic, parts, t0, timeout_ms);
    out("timeout: the broker aborted it %" PRId64 " ms after it began (transaction.timeout.ms %ld)", took, timeout_ms);
    if (took < timeout_ms - 50)
        fail("aborted after %" PRId64 " ms, before transaction.timeout.ms %ld", took, timeout_ms);
    rd_kafka_error_t *error = txn_retry(&p, TXN_COMMIT);
    if (!error) fail("commit_transaction succeeded after the broker aborted the transaction on its timeout");
    char desc[512];
    error_describe(error, desc, sizeof(desc));
    out("timeout: commit_transaction after the abort -> %s", desc);
    timeout_recover(&p, error, bootstrap, topic, parts, txn_id, timeout_ms);
    rd_kafka_error_destroy(error);
    rd_kafka_destroy(rc);
    rd_kafka_destroy(ru);
    rd_kafka_destroy(p.rk);
    return 0;
}

/* ---- lso ---- */

struct lso_run {
    struct producer txn, plain;
    rd_kafka_t *rc, *ru;
    const char *topic, *txn_id;
};

/* Opens a transaction with vs on partition 0, then writes a plain message behind it; checks LSO and HW. */
static void lso_open(struct lso_run *r, const struct vals *vs, const char *plain_value)
{
    begin_must(&r->txn);
    producer_mark(&r->txn);
    for (int j = 0; j < vs->n; j++) produce_must(&r->txn, r->topic, 0, r->txn_id, vs->v[j]);
    flush_must(&r->txn, "the open transaction's messages");
    producer_mark(&r->plain);
    produce_must(&r->plain, r->topic, 0, NULL, plain_value);
    flush_must(&r->plain, "the plain message");
    int64_t lo, lso, hw;
    watermarks(r->rc, r->topic, 0, &lo, &lso);
    watermarks(r->ru, r->topic, 0, &lo, &hw);
    out("lso: transaction open at offsets %" PRId64 "..%" PRId64 ", %s at %" PRId64 ": LSO %" PRId64 ", HW %" PRId64,
        r->txn.first_offset, r->txn.last_offset, plain_value, r->plain.last_offset, lso, hw);
    if (lso != r->txn.first_offset)
        fail("LSO %" PRId64 ", want the open transaction's first offset %" PRId64, lso, r->txn.first_offset);
    if (hw != r->plain.last_offset + 1) fail("HW %" PRId64 ", want %" PRId64, hw, r->plain.last_offset + 1);
}

/* Ends the open transaction; read_committed must then deliver want, in order. */
static void lso_end(struct lso_run *r, int commit, const struct vals *want)
{
    txn_must(&r->txn, commit ? TXN_COMMIT : TXN_ABORT);
    int64_t t0 = now_ms();
    expect_values(r->rc, commit ? "read_committed after the commit" : "read_committed after the abort", want);
    out("lso: read_committed got %d messages (%s .. %s) %" PRId64 " ms after %s returned", want->n, want->v[0],
        want->v[want->n - 1], now_ms() - t0, commit ? "commit_transaction" : "abort_transaction");
}

static void lso_blocked(struct lso_run *r, const char *what)
{
    expect_nothing(r->rc, what, BLOCK_MS);
    out("lso: read_committed got nothing for %d ms %s", BLOCK_MS, what);
}

static int cmd_lso(int argc, char **argv)
{
    if (argc != 5) usage();
    struct lso_run r = {.topic = argv[3], .txn_id = argv[4]};
    producer_new(&r.txn, "txn", argv[2], MODE_TXN, r.txn_id, 60000);
    producer_new(&r.plain, "plain", argv[2], MODE_PLAIN, NULL, 0);
    partitions_of(r.txn.rk, r.topic);
    txn_must(&r.txn, TXN_INIT);
    r.rc = reader_new(argv[2], "read_committed", NULL, 0);
    r.ru = reader_new(argv[2], "read_uncommitted", NULL, 0);
    assign_range(r.rc, r.topic, 0, 1, RD_KAFKA_OFFSET_BEGINNING);
    assign_range(r.ru, r.topic, 0, 1, RD_KAFKA_OFFSET_BEGINNING);
    struct vals t0 = vals_txn("lso-T0", 3), t1 = vals_txn("lso-T1", 3), t2 = vals_txn("lso-T2", 3);
    struct vals p1 = {0}, p2 = {0};
    vals_add(&p1, "lso-plain-1");
    vals_add(&p2, "lso-plain-2");
    txn_open_with(&r.txn, r.topic, 1, r.txn_id, &t0);
    txn_must(&r.txn, TXN_COMMIT);
    expect_values(r.rc, "read_committed of a committed transaction", &t0);
    lso_open(&r, &t1, p1.v[0]);
    lso_blocked(&r, "while T1 is open");
    struct vals all1 = vals_join(&t0, &t1);
    all1 = vals_join(&all1, &p1);
    expect_values(r.ru, "read_uncommitted while T1 is open", &all1);
    struct vals after1 = vals_join(&t1, &p1);
    lso_end(&r, 1, &after1);
    lso_open(&r, &t2, p2.v[0]);
    lso_blocked(&r, "while T2 is open");
    struct vals all2 = vals_join(&t2, &p2);
    expect_values(r.ru, "read_uncommitted while T2 is open", &all2);
    lso_end(&r, 0, &p2);
    lso_blocked(&r, "after T2's abort (its messages must never come)");
    out("lso: ok");
    rd_kafka_destroy(r.rc);
    rd_kafka_destroy(r.ru);
    rd_kafka_destroy(r.txn.rk);
    rd_kafka_destroy(r.plain.rk);
    return 0;
}

/* ---- offsets ---- */

/* OffsetFetch of one partition for rk's group: the offset, or sets *err. */
static int64_t committed_of(rd_kafka_t *rk, const char *topic, int timeout_ms, rd_kafka_resp_err_t *err)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0);
    *err = rd_kafka_committed(rk, l, timeout_ms);
    if (!*err) *err = l->elems[0].err;
    int64_t offset = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return offset;
}

static void expect_committed(rd_kafka_t *rk, const char *topic, const char *what, int64_t want)
{
    rd_kafka_resp_err_t err;
    int64_t got = committed_of(rk, topic, STEP_MS, &err);
    if (err) fail("%s: committed() -> %s; want offset %" PRId64, what, rd_kafka_err2name(err), want);
    if (got != want) fail("%s: committed offset %" PRId64 ", want %" PRId64, what, got, want);
    out("offsets: %s: %" PRId64, what, got);
}

/* A read_committed (RequireStable) OffsetFetch during the transaction may fail or show the old value, never new. */
static void expect_not_yet(rd_kafka_t *rc, const char *topic, int64_t pending)
{
    rd_kafka_resp_err_t err;
    int64_t got = committed_of(rc, topic, 2000, &err);
    if (err)
        out("offsets: read_committed during the transaction -> %s", rd_kafka_err2name(err));
    else
        out("offsets: read_committed during the transaction -> %" PRId64, got);
    if (!err && got == pending) fail("read_committed saw the pending offset %" PRId64 " before the commit", pending);
}

static void send_offset(struct producer *p, const char *topic, const char *group, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = offset;
    rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata_new(group);
    rd_kafka_error_t *error = rd_kafka_send_offsets_to_transaction(p->rk, l, md, STEP_MS);
    rd_kafka_consumer_group_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(l);
    if (!error) return;
    char desc[512];
    error_describe(error, desc, sizeof(desc));
    fail("send_offsets_to_transaction(%s [0] = %" PRId64 "): %s", topic, offset, desc);
}

static int cmd_offsets(int argc, char **argv)
{
    if (argc != 6) usage();
    const char *bootstrap = argv[2], *topic = argv[3], *group = argv[4], *txn_id = argv[5];
    struct producer p;
    producer_new(&p, "offsets", bootstrap, MODE_TXN, txn_id, 60000);
    partitions_of(p.rk, topic);
    txn_must(&p, TXN_INIT);
    rd_kafka_t *ru = reader_new(bootstrap, "read_uncommitted", group, 0);
    rd_kafka_t *rc = reader_new(bootstrap, "read_committed", group, 0);
    expect_committed(ru, topic, "before any transaction", RD_KAFKA_OFFSET_INVALID);
    begin_must(&p);
    produce_must(&p, topic, 0, txn_id, "offsets-T1");
    send_offset(&p, topic, group, 5);
    expect_committed(ru, topic, "read_uncommitted while offset 5 is pending", RD_KAFKA_OFFSET_INVALID);
    expect_not_yet(rc, topic, 5);
    txn_must(&p, TXN_COMMIT);
    expect_committed(ru, topic, "read_uncommitted after the commit", 5);
    expect_committed(rc, topic, "read_committed after the commit", 5);
    begin_must(&p);
    send_offset(&p, topic, group, 9);
    expect_committed(ru, topic, "read_uncommitted while offset 9 is pending", 5);
    expect_not_yet(rc, topic, 9);
    txn_must(&p, TXN_ABORT);
    expect_committed(ru, topic, "read_uncommitted after the abort", 5);
    expect_committed(rc, topic, "read_committed after the abort", 5);
    out("offsets: ok");
    rd_kafka_destroy(rc);
    rd_kafka_destroy(ru);
    rd_kafka_destroy(p.rk);
    return 0;
}

/* ---- ctp: consume-transform-produce ---- */

struct item {
    int32_t partition;
    int64_t offset;
    char value[VALUE_MAX];
};

struct ctp {
    const char *in_topic, *out_topic;
    int32_t out_parts;
    long batch_max, idle_ms;
    struct producer p;
    rd_kafka_t *consumer;
    struct item batch[BATCH_MAX];
    long batch_n;
    int64_t last_activity_ms;
    long committed_txns, committed_msgs, aborted_txns;
    int assigned; /* partitions currently assigned */
    int crash_pct;
    const char *crash_point;
    unsigned seed;
};

static struct ctp ctp; /* one per process: the rebalance callback reaches it */

/* An injected crash: with probability crash_pct%, flush (so produced data is in the log) and _exit. */
static void ctp_maybe_crash(const char *point)
{
    if (ctp.crash_pct <= 0 || (ctp.crash_point && strcmp(ctp.crash_point, point) != 0)) return;
    if ((unsigned)rand_r(&ctp.seed) % 100u >= (unsigned)ctp.crash_pct) return;
    rd_kafka_flush(ctp.p.rk, STEP_MS);
    out("crash %s", point);
    _exit(EXIT_CRASH);
}

static void ctp_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    (void)opaque;
    ctp.last_activity_ms = now_ms();
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        out("assigned %d partitions", parts->cnt);
        ctp.assigned = parts->cnt;
        rd_kafka_assign(rk, parts);
        return;
    }
    /* Revoked (or a rebalance error): what was collected but not committed is read again from the committed offsets. */
    out("revoked %d partitions (%s); %ld uncommitted messages dropped", parts ? parts->cnt : 0, rd_kafka_err2name(err),
        ctp.batch_n);
    ctp.batch_n = 0;
    ctp.assigned = 0;
    rd_kafka_assign(rk, NULL);
}

/* The offsets to commit: last processed offset + 1 for each partition in the batch. */
static rd_kafka_topic_partition_list_t *ctp_offsets(void)
{
    int64_t next[PARTS_MAX];
    for (int i = 0; i < PARTS_MAX; i++) next[i] = -1;
    for (long i = 0; i < ctp.batch_n; i++) next[ctp.batch[i].partition] = ctp.batch[i].offset + 1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTS_MAX);
    for (int32_t p = 0; p < PARTS_MAX; p++)
        if (next[p] >= 0) rd_kafka_topic_partition_list_add(l, ctp.in_topic, p)->offset = next[p];
    return l;
}

/* Seeks every assigned partition back to its committed offset (the beginning if none). */
static void ctp_rewind(void)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(ctp.consumer, &l);
    if (!err) err = rd_kafka_committed(ctp.consumer, l, STEP_MS);
    if (err) fail("rewinding to the committed offsets: %s", rd_kafka_err2name(err));
    for (int i = 0; i < l->cnt; i++) {
        if (l->elems[i].err)
            fail("committed offset of partition %d: %s", l->elems[i].partition, rd_kafka_err2name(l->elems[i].err));
        if (l->elems[i].offset < 0) l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    rd_kafka_error_t *error = rd_kafka_seek_partitions(ctp.consumer, l, STEP_MS);
    if (error) fail("seek to the committed offsets: %s", rd_kafka_error_string(error));
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err) fail("seek partition %d: %s", l->elems[i].partition, rd_kafka_err2name(l->elems[i].err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* A failed transaction step: abort and rewind when that is allowed, else exit 1 (fatal, or no flag to go on). */
static int ctp_abort(const char *what, const char *desc, int abortable)
{
    if (!abortable) fail("%s: %s", what, desc);
    out("abort %ld %s: %s", ctp.batch_n, what, desc);
    txn_must(&ctp.p, TXN_ABORT);
    ctp.aborted_txns++;
    ctp.batch_n = 0;
    ctp_rewind();
    return -1;
}

static int ctp_abort_error(const char *what, rd_kafka_error_t *error)
{
    char desc[512];
    error_describe(error, desc, sizeof(desc));
    int abortable = rd_kafka_error_txn_requires_abort(error);
    rd_kafka_error_destroy(error);
    return ctp_abort(what, desc, abortable);
}

/* Enqueues the batch's outputs; a producev error other than a fatal one (e.g. the transaction failed) aborts. */
static int ctp_produce_batch(void)
{
    for (long i = 0; i < ctp.batch_n; i++) {
        const struct item *it = &ctp.batch[i];
        char value[VALUE_MAX + 48];
        snprintf(value, sizeof(value), "%" PRId32 ":%" PRId64 ":%s", it->partition, it->offset, it->value);
        rd_kafka_resp_err_t err = produce_value(&ctp.p, ctp.out_topic, it->partition % ctp.out_parts, NULL, value);
        rd_kafka_resp_err_t fatal = rd_kafka_fatal_error(ctp.p.rk, NULL, 0);
        if (fatal) fail("produce: fatal error %s", rd_kafka_err2name(fatal));
        if (err) return ctp_abort("produce", rd_kafka_err2name(err), 1);
    }
    return 0;
}

/* One transaction for the collected batch; returns 0 committed, -1 aborted (and rewound). */
static int ctp_transaction(void)
{
    begin_must(&ctp.p);
    ctp_maybe_crash("before-produce");
    if (ctp_produce_batch() != 0) return -1;
    ctp_maybe_crash("after-produce");
    rd_kafka_topic_partition_list_t *offsets = ctp_offsets();
    rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(ctp.consumer);
    rd_kafka_error_t *error = rd_kafka_send_offsets_to_transaction(ctp.p.rk, offsets, md, STEP_MS);
    for (int tries = 0; error && rd_kafka_error_is_retriable(error) && tries < 5; tries++) {
        rd_kafka_error_destroy(error);
        error = rd_kafka_send_offsets_to_transaction(ctp.p.rk, offsets, md, STEP_MS);
    }
    rd_kafka_consumer_group_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(offsets);
    if (error) return ctp_abort_error("send_offsets_to_transaction", error);
    ctp_maybe_crash("after-offsets");
    error = txn_retry(&ctp.p, TXN_COMMIT);
    if (error) return ctp_abort_error("commit_transaction", error);
    out("commit %ld", ctp.batch_n);
    ctp.committed_txns++;
    ctp.committed_msgs += ctp.batch_n;
    ctp_maybe_crash("after-commit");
    return 0;
}

/* Takes up to batch_max messages: waits up to 100 ms for the first, then only what is already there. */
static void ctp_collect(void)
{
    ctp.batch_n = 0;
    while (ctp.batch_n < ctp.batch_max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ctp.consumer, ctp.batch_n ? 0 : 100);
        if (!m) return;
        if (m->err == RD_KAFKA_RESP_ERR__FATAL) fail("consumer: fatal: %s", rd_kafka_message_errstr(m));
        if (m->err) {
            note("consumer: %s: %s", rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        } else if (m->partition < 0 || m->partition >= PARTS_MAX) {
            fail("input partition %" PRId32 " beyond %d", m->partition, PARTS_MAX);
        } else {
            struct item *it = &ctp.batch[ctp.batch_n++];
            it->partition = m->partition;
            it->offset = m->offset;
            value_of(m, it->value, sizeof(it->value));
            ctp.last_activity_ms = now_ms();
        }
        rd_kafka_message_destroy(m);
    }
}

/* Idle: the group's committed offsets must equal the input's end offsets. */
static int ctp_finish(void)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(ctp.consumer, &l);
    if (!err) err = rd_kafka_committed(ctp.consumer, l, STEP_MS);
    if (err) fail("idle: committed(): %s", rd_kafka_err2name(err));
    int behind = l->cnt == 0;
    if (l->cnt == 0) out("idle: no partition assigned");
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo, hi;
        watermarks(ctp.consumer, ctp.in_topic, l->elems[i].partition, &lo, &hi);
        if (l->elems[i].offset == hi) continue;
        behind = 1;
        out("idle: partition %d committed %" PRId64 ", end %" PRId64, l->elems[i].partition, l->elems[i].offset, hi);
    }
    if (!behind) out("idle: committed == end in all %d partitions", l->cnt);
    rd_kafka_topic_partition_list_destroy(l);
    return behind ? EXIT_BEHIND : 0;
}

static rd_kafka_t *ctp_consumer_new(const char *bootstrap, const char *group, const char *txn_id)
{
    rd_kafka_conf_t *conf = conf_new(bootstrap, "ctp-consumer");
    conf_put(conf, "group.id", group);
    conf_put(conf, "group.instance.id", txn_id); /* a restart replaces the crashed member at once */
    conf_put(conf, "isolation.level", "read_committed");
    conf_put(conf, "enable.auto.commit", "false");
    conf_put(conf, "auto.offset.reset", "earliest");
    conf_put(conf, "session.timeout.ms", "6000");
    conf_put(conf, "fetch.wait.max.ms", "100");
    rd_kafka_conf_set_rebalance_cb(conf, ctp_rebalance);
    rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, ctp.in_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (err) fail("subscribe %s: %s", ctp.in_topic, rd_kafka_err2name(err));
    return rk;
}

static void ctp_crash_setup(void)
{
    const char *pct = getenv("SL_TXN_CRASH_PCT"), *seed = getenv("SL_TXN_SEED");
    ctp.crash_pct = pct && *pct ? (int)parse_long(pct, "SL_TXN_CRASH_PCT", 0, 100) : 0;
    ctp.crash_point = getenv("SL_TXN_CRASH_POINT");
    if (ctp.crash_point && !*ctp.crash_point) ctp.crash_point = NULL;
    ctp.seed = seed && *seed ? (unsigned)parse_long(seed, "SL_TXN_SEED", 0, 2147483647L)
                             : (unsigned)now_ms() ^ (unsigned)getpid();
    out("start crash_pct=%d point=%s seed=%u", ctp.crash_pct, ctp.crash_point ? ctp.crash_point : "any", ctp.seed);
}

static int cmd_ctp(int argc, char **argv)
{
    if (argc != 9) usage();
    const char *bootstrap = argv[2], *group = argv[5], *txn_id = argv[6];
    ctp.in_topic = argv[3];
    ctp.out_topic = argv[4];
    ctp.batch_max = parse_long(argv[7], "BATCH", 1, BATCH_MAX);
    ctp.idle_ms = parse_long(argv[8], "IDLE_MS", 100, 600000);
    ctp_crash_setup();
    producer_new(&ctp.p, "ctp", bootstrap, MODE_TXN, txn_id, 10000);
    ctp.out_parts = partitions_of(ctp.p.rk, ctp.out_topic);
    int64_t t0 = now_ms();
    txn_must(&ctp.p, TXN_INIT); /* first: aborts what a crashed predecessor left open */
    out("init_transactions ok in %" PRId64 " ms", now_ms() - t0);
    ctp.consumer = ctp_consumer_new(bootstrap, group, txn_id);
    ctp.last_activity_ms = now_ms();
    int rc = 0;
    for (;;) {
        ctp_collect();
        if (ctp.batch_n > 0) {
            ctp_transaction();
        } else if (now_ms() - ctp.last_activity_ms >= (ctp.assigned ? ctp.idle_ms : READ_MS)) {
            rc = ctp_finish();
            break;
        }
    }
    out("exit %d: %ld transactions committed (%ld messages), %ld aborted", rc, ctp.committed_txns, ctp.committed_msgs,
        ctp.aborted_txns);
    rd_kafka_consumer_close(ctp.consumer);
    rd_kafka_destroy(ctp.consumer);
    rd_kafka_destroy(ctp.p.rk);
    return rc;
}

/* ---- main ---- */

static const struct {
    const char *name;
    int (*fn)(int, char **);
} commands[] = {
    {"produce", cmd_produce}, {"consume", cmd_consume}, {"fill", cmd_fill},
    {"ctp", cmd_ctp},         {"init", cmd_init},       {"fence", cmd_fence},
    {"timeout", cmd_timeout}, {"lso", cmd_lso},         {"offsets", cmd_offsets},
};

int main(int argc, char **argv)
{
    if (argc < 2) usage();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[1], commands[i].name) != 0) continue;
        cmd = commands[i].name;
        return commands[i].fn(argc, argv);
    }
    usage();
}
