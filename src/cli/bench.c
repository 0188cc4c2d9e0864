/*
 * bench.c - `sluice bench`: a Kafka load generator on librdkafka, for any
 * Kafka broker (Sluice's own, or any other, to compare).
 *
 *   sluice bench produce|consume --bootstrap HOST:PORT --topic T [options]
 *
 * produce: N producer threads, each its own client, send fixed-size
 * messages round-robin over the partitions (explicitly, so every partition
 * gets load), at full speed or a target rate; latency is delivery report
 * time minus send time, per message, in a log-linear histogram. consume:
 * one client reads every partition from the beginning with explicit
 * assignment until it has the count. Either way it never runs unbounded:
 * --count (default 1,000,000) or --seconds stops it, and a run that stops
 * making progress for 30 s fails.
 *
 * --bootstrap mock produces into librdkafka's in-process mock broker
 * (memory only, over loopback): what the client itself can push, the
 * ceiling every broker figure is compared with.
 *
 * Output: one human line, and with --json one JSON object per run.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli/cli.h"
#include "common/alloc.h"
#include "common/hist.h"

typedef struct opts {
    const char *mode, *bootstrap, *topic, *compression;
    long size, count, producers, partitions, linger_ms, batch_size;
    long txn_ms; /* > 0: each producer is transactional and commits every txn_ms */
    double seconds, rate;
    int acks;
    int json;
    int nprops;
    const char *props[16]; /* --set key=value: any librdkafka property, applied last */
} opts;

typedef struct worker {
    const opts *o;
    int id;
    pthread_t thread;
    sl_hist hist;
    long sent, acked, failed;
    rd_kafka_t *rk;
    _Atomic bool polling; /* paced runs: a poller thread serves delivery reports while this is set */
    int64_t t_first_ns, t_last_ns;
} worker;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "sluice bench: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die("config: %s", err);
}

static void set_props(rd_kafka_conf_t *conf, const opts *o)
{
    for (int i = 0; i < o->nprops; i++) {
        char kv[512];
        snprintf(kv, sizeof kv, "%s", o->props[i]);
        char *eq = strchr(kv, '=');
        if (!eq) die("--set wants key=value, not %s", o->props[i]);
        *eq = 0;
        set(conf, kv, eq + 1);
    }
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    worker *w = opaque;
    (void)rk;
    int64_t t = now_ns();
    if (m->err) {
        w->failed++;
        return;
    }
    w->acked++;
    w->t_last_ns = t;
    sl_hist_record(&w->hist, (uint64_t)(t - (int64_t)(intptr_t)m->_private) / 1000);
}

/* "--bootstrap mock": librdkafka's in-process mock broker (memory only), the client's own ceiling. */
static int is_mock(const opts *o) { return strcmp(o->bootstrap, "mock") == 0; }

static rd_kafka_t *producer_new(worker *w)
{
    const opts *o = w->o;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char v[32];
    if (is_mock(o))
        set(conf, "test.mock.num.brokers", "1");
    else
        set(conf, "bootstrap.servers", o->bootstrap);
    snprintf(v, sizeof v, "%d", o->acks);
    set(conf, "acks", v);
    snprintf(v, sizeof v, "%ld", o->linger_ms);
    set(conf, "linger.ms", v);
    snprintf(v, sizeof v, "%ld", o->batch_size);
    set(conf, "batch.size", v);
    set(conf, "compression.codec", o->compression);
    set(conf, "queue.buffering.max.messages", "2000000");
    set(conf, "queue.buffering.max.kbytes", "2097151");
    if (o->txn_ms > 0) {
        snprintf(v, sizeof v, "sluice-bench-%d-%d", (int)getpid(), w->id);
        set(conf, "transactional.id", v);
    }
    set_props(conf, o);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, w);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("producer: %s", err);
    return rk;
}

/*
 * Paced runs serve delivery reports on their own thread, blocked in
 * rd_kafka_poll until one arrives, so a report is timed the moment it is
 * delivered while the sending thread sleeps between messages. (Spinning
 * on rd_kafka_poll(rk, 0) instead burns a core that librdkafka's own
 * threads and the broker need: on two cores that alone made the tail.)
 */
static void *poll_main(void *arg)
{
    worker *w = arg;
    while (atomic_load(&w->polling)) rd_kafka_poll(w->rk, 10);
    return NULL;
}

static void sleep_until(int64_t due_ns)
{
    struct timespec ts = {.tv_sec = due_ns / 1000000000, .tv_nsec = due_ns % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void txn_check(rd_kafka_error_t *e, const char *what)
{
    if (!e) return;
    fprintf(stderr, "sluice bench: %s: %s\n", what, rd_kafka_error_string(e));
    exit(1);
}

/* --transaction-ms: commits the open transaction once it is that old (commit flushes it first), opens the next. */
static void txn_maybe_commit(rd_kafka_t *rk, const opts *o, int64_t *t_begin, bool last)
{
    if (o->txn_ms <= 0 || (!last && now_ns() - *t_begin < o->txn_ms * 1000000)) return;
    txn_check(rd_kafka_commit_transaction(rk, 60000), "commit_transaction");
    if (last) return;
    txn_check(rd_kafka_begin_transaction(rk), "begin_transaction");
    *t_begin = now_ns();
}

static void *produce_main(void *arg)
{
    worker *w = arg;
    const opts *o = w->o;
    rd_kafka_t *rk = producer_new(w);
    if (is_mock(o) &&
        rd_kafka_mock_topic_create(rd_kafka_handle_mock_cluster(rk), o->topic, (int)o->partitions, 1) != 0)
        die("%s", "mock topic creation failed");
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    int64_t t_txn = 0;
    if (o->txn_ms > 0) {
        txn_check(rd_kafka_init_transactions(rk, 30000), "init_transactions");
        txn_check(rd_kafka_begin_transaction(rk), "begin_transaction");
        t_txn = now_ns();
    }
    static char payload[1 << 20];
    long quota = o->count / o->producers + (w->id < o->count % o->producers);
    double rate = o->rate > 0 ? o->rate / (double)o->producers : 0;
    int64_t start = now_ns(), deadline = o->seconds > 0 ? start + (int64_t)(o->seconds * 1e9) : INT64_MAX;
    w->t_first_ns = start;
    w->rk = rk;
    pthread_t poller;
    if (rate > 0) {
        atomic_store(&w->polling, true);
        if (pthread_create(&poller, NULL, poll_main, w) != 0) die("%s", "cannot start the poller thread");
    }
    for (long i = 0; (o->seconds > 0 || i < quota) && now_ns() < deadline; i++) {
        int64_t due = 0;
        if (rate > 0) sleep_until(due = start + (int64_t)((double)i * 1e9 / rate));
        int32_t part = (int32_t)((i * o->producers + w->id) % o->partitions);
        /* Paced: timed from when the message was due, so a stall that blocks sending counts for every
           message held behind it (no coordinated omission). */
        int64_t t_send = rate > 0 ? due : now_ns();
        while (rd_kafka_produce(rkt, part, 0, payload, (size_t)o->size, NULL, 0, (void *)(intptr_t)t_send) == -1) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            if (rate > 0) sleep_until(now_ns() + 1000000);
            else rd_kafka_poll(rk, 1);
        }
        w->sent++;
        if (rate <= 0) rd_kafka_poll(rk, 0);
        txn_maybe_commit(rk, o, &t_txn, false);
    }
    txn_maybe_commit(rk, o, &t_txn, true);
    if (rate > 0) {
        atomic_store(&w->polling, false);
        pthread_join(poller, NULL);
    }
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) fprintf(stderr, "sluice bench: flush timed out\n");
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return NULL;
}

static void create_topic(const opts *o)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o->bootstrap);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("admin: %s", err);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(o->topic, (int)o->partitions, 1, err, sizeof err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
    if (!ev) die("CreateTopics of %s timed out", o->topic);
    size_t n;
    const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    if (n == 1 && rd_kafka_topic_result_error(res[0]) &&
        rd_kafka_topic_result_error(res[0]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        die("CreateTopics: %s", rd_kafka_topic_result_error_string(res[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

static void report(const opts *o, const char *what, long msgs, double secs, const sl_hist *h, long failed)
{
    double mps = secs > 0 ? (double)msgs / secs : 0, mbps = mps * (double)o->size / 1e6;
    printf("%s: %ld msgs of %ld B in %.2f s: %.0f msgs/s, %.1f MB/s", what, msgs, o->size, secs, mps, mbps);
    if (h && h->total)
        printf("; latency us p50 %" PRIu64 " p99 %" PRIu64 " p99.9 %" PRIu64 " max %" PRIu64, sl_hist_percentile(h, 50),
               sl_hist_percentile(h, 99), sl_hist_percentile(h, 99.9), h->max);
    if (failed) printf("; %ld FAILED", failed);
    printf("\n");
    if (o->json) {
        printf("{\"mode\":\"%s\",\"size\":%ld,\"msgs\":%ld,\"seconds\":%.3f,\"msgs_per_s\":%.0f,\"mb_per_s\":%.2f,"
               "\"acks\":%d,\"partitions\":%ld,\"producers\":%ld,\"compression\":\"%s\",\"failed\":%ld",
               what, o->size, msgs, secs, mps, mbps, o->acks, o->partitions, o->producers, o->compression, failed);
        if (h && h->total)
            printf(",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64,
                   sl_hist_percentile(h, 50), sl_hist_percentile(h, 99), sl_hist_percentile(h, 99.9), h->max);
        printf("}\n");
    }
}

static int run_produce(const opts *o)
{
    if (!is_mock(o)) create_topic(o);
    worker *ws = sl_calloc((size_t)o->producers, sizeof *ws);
    for (int i = 0; i < o->producers; i++) {
        ws[i].o = o;
        ws[i].id = i;
        sl_hist_init(&ws[i].hist);
        pthread_create(&ws[i].thread, NULL, produce_main, &ws[i]);
    }
    static sl_hist all;
    sl_hist_init(&all);
    long acked = 0, failed = 0;
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < o->producers; i++) {
        pthread_join(ws[i].thread, NULL);
        sl_hist_merge(&all, &ws[i].hist);
        acked += ws[i].acked;
        failed += ws[i].failed;
        if (ws[i].t_first_ns < first) first = ws[i].t_first_ns;
        if (ws[i].t_last_ns > last) last = ws[i].t_last_ns;
    }
    sl_free(ws);
    report(o, "produce", acked, last > first ? (double)(last - first) / 1e9 : 0, &all, failed);
    return failed ? 1 : 0;
}

/* Reads every partition from the beginning into one queue, in batches (no group, no per-message poll). */
static int run_consume(const opts *o)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", o->bootstrap);
    set(conf, "fetch.message.max.bytes", "4194304");
    set(conf, "queued.max.messages.kbytes", "1048576");
    set_props(conf, o);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("consumer: %s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    for (int32_t i = 0; i < o->partitions; i++)
        if (rd_kafka_consume_start_queue(rkt, i, RD_KAFKA_OFFSET_BEGINNING, q) == -1)
            die("consume_start: %s", rd_kafka_err2str(rd_kafka_last_error()));
    static rd_kafka_message_t *batch[10000];
    long got = 0;
    int64_t start = 0, last = 0, idle_since = now_ns();
    while (got < o->count) {
        ssize_t n = rd_kafka_consume_batch_queue(q, 100, batch, 10000);
        if (n <= 0 && now_ns() - idle_since > 30000000000LL) die("%s", "no progress for 30 s");
        for (ssize_t i = 0; i < n; i++) {
            if (!batch[i]->err) {
                if (!start) start = now_ns();
                got++;
            }
            rd_kafka_message_destroy(batch[i]);
        }
        if (n > 0) last = idle_since = now_ns();
    }
    for (int32_t i = 0; i < o->partitions; i++) rd_kafka_consume_stop(rkt, i);
    rd_kafka_queue_destroy(q);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    report(o, "consume", got, last > start ? (double)(last - start) / 1e9 : 0, NULL, 0);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice bench produce|consume [options]\n"
            "\n"
            "Measures any Kafka broker with librdkafka: messages/s, MB/s and, for produce, the\n"
            "latency from send to delivery report (p50, p99, p99.9, max). Never runs unbounded:\n"
            "--count or --seconds ends it, and 30 s without progress fails it.\n"
            "\n"
            "options:\n"
            "  --bootstrap HOST:PORT  broker to measure (default 127.0.0.1:9092); 'mock' produces\n"
            "                         into librdkafka's in-process mock broker: the client's ceiling\n"
            "  --topic T              topic (default loadgen; created with --partitions if missing)\n"
            "  --size B               message value size in bytes (default 100)\n"
            "  --count N              messages to produce or consume (default 1000000)\n"
            "  --seconds S            stop producing after S seconds\n"
            "  --rate R               produce at R messages/s in total instead of at full speed\n"
            "  --acks -1|0|1          producer acks (default -1 = all)\n"
            "  --linger-ms MS         producer linger.ms (default 5)\n"
            "  --batch-size B         producer batch.size (default 1000000)\n"
            "  --partitions N         spread messages round-robin over N partitions (default 1)\n"
            "  --compression C        none, gzip, snappy, lz4 or zstd (default none)\n"
            "  --producers N          N producer clients, each on its own thread (default 1)\n"
            "  --transaction-ms MS    transactional producers (transactional.id per producer) that\n"
            "                         commit every MS ms: the cost of exactly-once\n"
            "  --set KEY=VALUE        any librdkafka property, applied last (repeatable, 16 at most)\n"
            "  --json                 also print one JSON object with every figure\n");
}

static long num(const char *opt, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) die("bad value for %s", opt);
    return n;
}

int sl_cli_bench(int argc, char **argv)
{
    opts o = {.bootstrap = "127.0.0.1:9092", .topic = "loadgen", .compression = "none", .size = 100,
              .count = 1000000, .producers = 1, .partitions = 1, .linger_ms = 5, .batch_size = 1000000, .acks = -1};
    static const struct option lo[] = {
        {"bootstrap", 1, 0, 'b'}, {"topic", 1, 0, 't'},   {"size", 1, 0, 's'},      {"count", 1, 0, 'n'},
        {"seconds", 1, 0, 'd'},   {"rate", 1, 0, 'r'},    {"acks", 1, 0, 'a'},      {"linger-ms", 1, 0, 'l'},
        {"batch-size", 1, 0, 'B'}, {"partitions", 1, 0, 'p'}, {"compression", 1, 0, 'z'}, {"producers", 1, 0, 'P'},
        {"json", 0, 0, 'j'},      {"set", 1, 0, 'X'},     {"transaction-ms", 1, 0, 'T'}, {0, 0, 0, 0}};
    if (argc < 2 || (strcmp(argv[1], "produce") && strcmp(argv[1], "consume"))) {
        bool help = argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0);
        usage(help ? stdout : stderr);
        return help ? 0 : 2;
    }
    o.mode = argv[1];
    int c;
    optind = 2; /* argv[0] is "bench", argv[1] the mode */
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'b': o.bootstrap = optarg; break;
        case 't': o.topic = optarg; break;
        case 's': o.size = num("--size", optarg, 0, 1 << 20); break;
        case 'n': o.count = num("--count", optarg, 1, 1000000000); break;
        case 'd': o.seconds = (double)num("--seconds", optarg, 1, 3600); break;
        case 'r': o.rate = (double)num("--rate", optarg, 1, 100000000); break;
        case 'a': o.acks = (int)num("--acks", optarg, -1, 1); break;
        case 'l': o.linger_ms = num("--linger-ms", optarg, 0, 10000); break;
        case 'B': o.batch_size = num("--batch-size", optarg, 1, 2147483647); break;
        case 'p': o.partitions = num("--partitions", optarg, 1, 10000); break;
        case 'z': o.compression = optarg; break;
        case 'P': o.producers = num("--producers", optarg, 1, 64); break;
        case 'j': o.json = 1; break;
        case 'T': o.txn_ms = num("--transaction-ms", optarg, 1, 900000); break;
        case 'X':
            if (o.nprops == 16) die("%s", "at most 16 --set options");
            o.props[o.nprops++] = optarg;
            break;
        default: return 2;
        }
    }
    if (is_mock(&o) && strcmp(o.mode, "produce") != 0) die("%s", "--bootstrap mock only measures produce");
    if (o.txn_ms > 0 && o.rate > 0) die("%s", "--transaction-ms measures full-speed runs only (no --rate)");
    return strcmp(o.mode, "produce") == 0 ? run_produce(&o) : run_consume(&o);
}
