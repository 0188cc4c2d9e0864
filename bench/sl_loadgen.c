/*
 * sl_loadgen - a Kafka load generator on librdkafka, for any Kafka broker.
 *
 *   sl_loadgen produce|consume --bootstrap HOST:PORT --topic T [options]
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
 * Output: one human line, and with --json one JSON object per run.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/hist.h"

typedef struct opts {
    const char *mode, *bootstrap, *topic, *compression;
    long size, count, producers, partitions, linger_ms, batch_size;
    double seconds, rate;
    int acks;
    int json;
} opts;

typedef struct worker {
    const opts *o;
    int id;
    pthread_t thread;
    sl_hist hist;
    long sent, acked, failed;
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
    fprintf(stderr, "sl_loadgen: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(1);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die("config: %s", err);
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

static rd_kafka_t *producer_new(worker *w)
{
    const opts *o = w->o;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char v[32];
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
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, w);
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die("producer: %s", err);
    return rk;
}

static void *produce_main(void *arg)
{
    worker *w = arg;
    const opts *o = w->o;
    rd_kafka_t *rk = producer_new(w);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
    static char payload[1 << 20];
    long quota = o->count / o->producers + (w->id < o->count % o->producers);
    double rate = o->rate > 0 ? o->rate / (double)o->producers : 0;
    int64_t start = now_ns(), deadline = o->seconds > 0 ? start + (int64_t)(o->seconds * 1e9) : INT64_MAX;
    w->t_first_ns = start;
    for (long i = 0; (o->seconds > 0 || i < quota) && now_ns() < deadline; i++) {
        if (rate > 0) {
            int64_t due = start + (int64_t)((double)i * 1e9 / rate);
            while (now_ns() < due) rd_kafka_poll(rk, 0);
        }
        int32_t part = (int32_t)((i * o->producers + w->id) % o->partitions);
        while (rd_kafka_produce(rkt, part, 0, payload, (size_t)o->size, NULL, 0, (void *)(intptr_t)now_ns()) == -1) {
            if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                die("produce: %s", rd_kafka_err2str(rd_kafka_last_error()));
            rd_kafka_poll(rk, 1);
        }
        w->sent++;
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 60000) != RD_KAFKA_RESP_ERR_NO_ERROR) fprintf(stderr, "sl_loadgen: flush timed out\n");
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
    create_topic(o);
    worker *ws = calloc((size_t)o->producers, sizeof *ws);
    if (!ws) die("%s", "out of memory");
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
    free(ws);
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

static long num(const char *opt, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) die("bad value for %s", opt);
    return n;
}

int main(int argc, char **argv)
{
    opts o = {.bootstrap = "127.0.0.1:9092", .topic = "loadgen", .compression = "none", .size = 100,
              .count = 1000000, .producers = 1, .partitions = 1, .linger_ms = 5, .batch_size = 1000000, .acks = -1};
    static const struct option lo[] = {
        {"bootstrap", 1, 0, 'b'}, {"topic", 1, 0, 't'},   {"size", 1, 0, 's'},      {"count", 1, 0, 'n'},
        {"seconds", 1, 0, 'd'},   {"rate", 1, 0, 'r'},    {"acks", 1, 0, 'a'},      {"linger-ms", 1, 0, 'l'},
        {"batch-size", 1, 0, 'B'}, {"partitions", 1, 0, 'p'}, {"compression", 1, 0, 'z'}, {"producers", 1, 0, 'P'},
        {"json", 0, 0, 'j'},      {0, 0, 0, 0}};
    if (argc < 2 || (strcmp(argv[1], "produce") && strcmp(argv[1], "consume"))) {
        fprintf(stderr, "usage: sl_loadgen produce|consume [--bootstrap H:P] [--topic T] [--size B] [--count N]\n"
                        "       [--seconds S] [--rate MSGS_PER_S] [--acks -1|0|1] [--linger-ms MS] [--batch-size B]\n"
                        "       [--partitions N] [--compression none|gzip|snappy|lz4|zstd] [--producers N] [--json]\n");
        return 2;
    }
    o.mode = argv[1];
    int c;
    optind = 2;
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
        default: return 2;
        }
    }
    return strcmp(o.mode, "produce") == 0 ? run_produce(&o) : run_consume(&o);
}
