/*
 * sl_compat_rdkafka: drives a running broker with librdkafka (2.0.2 here) and
 * checks every answer. Usage: sl_compat_rdkafka HOST:PORT. Exit 0 when every
 * check passed; each failed check prints a "FAIL:" line.
 *
 * What it checks, in order:
 *  1. Admin CreateTopics of a 4-partition data topic; errors for an existing
 *     topic (TOPIC_ALREADY_EXISTS) and an invalid name (INVALID_TOPIC_EXCEPTION).
 *  2. Produce, acks=all, one producer per compression codec (none, gzip,
 *     snappy, lz4, zstd), keys/values/headers derived from (codec, seq) incl.
 *     null keys, null values and null header values, spread over the 4
 *     partitions: every delivery report without error, offsets consecutive
 *     per partition in produce order.
 *  3. Consume every partition from the beginning with the legacy (group-less)
 *     consumer and compare each message with what the report said is there.
 *  4. Watermarks (low 0, high = count) and offsetsForTimes on topics whose
 *     records carry explicit timestamps, uncompressed and gzip (the answer may
 *     lie inside a batch), plus the timestamps read back.
 *  5. Admin on a topic created with configs: DescribeConfigs values, sources
 *     and default flags; a message over its max.message.bytes
 *     (MSG_SIZE_TOO_LARGE); CreatePartitions (grow, then an invalid shrink);
 *     DeleteTopics (then gone, and a second delete fails).
 *  6. Producing to an invalid topic name fails; a message over the broker's
 *     default message.max.bytes fails with MSG_SIZE_TOO_LARGE.
 *
 * The program is a test: it exits on setup errors and counts check failures.
 * All tables are fixed-size; the sizes below bound what it produces.
 */
#include <librdkafka/rdkafka.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DATA_TOPIC      "rk.data"
#define DATA_PARTITIONS 4
#define CODECS          5
#define MSGS_PER_CODEC  400
#define MSGS_TOTAL      (CODECS * MSGS_PER_CODEC)
#define VALUE_BYTES_MAX 600
#define TIMED_MSGS      10
#define TIMEOUT_MS      15000

static const char *const codec_names[CODECS] = {"none", "gzip", "snappy", "lz4", "zstd"};

static const char *bootstrap;
static int failures;

/* librdkafka 2.0.2 decides per batch whether the broker "supports" the codec
 * (from its ApiVersions) and, if not, logs "Broker does not support
 * compression type X: not compressing batch" at debug level (facility msg)
 * and sends it uncompressed; a codec test that did not notice would test
 * nothing. So every client runs with debug=msg, and the log callback (called
 * from librdkafka's threads) counts those lines and prints only non-debug ones
 * unless SL_RDKAFKA_DEBUG is set. */
static atomic_int compression_refusals;

/* Delivery result per produced message, indexed codec * MSGS_PER_CODEC + seq. */
struct delivery {
    int done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
};
static struct delivery deliveries[MSGS_TOTAL];

/* Which (codec, seq) the reports placed at [partition][offset]; -1 = none. */
static int placed[DATA_PARTITIONS][MSGS_TOTAL];

static void check_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FATAL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- message content, a pure function of (codec, seq) ---- */

struct content {
    char key[32];
    int key_null;
    unsigned char value[VALUE_BYTES_MAX];
    size_t value_len;
    int value_null;
    char seq_str[16];
    unsigned char bin[4];
    int has_null_header;
};

static void content_make(int codec, int seq, struct content *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->key, sizeof(c->key), "k-%s-%d", codec_names[codec], seq);
    c->key_null = seq % 50 == 7;
    c->value_null = seq % 50 == 13;
    c->value_len = c->value_null ? 0 : (size_t)((seq * 37 + codec * 11) % VALUE_BYTES_MAX);
    for (size_t j = 0; j < c->value_len; j++)
        c->value[j] = (unsigned char)((size_t)seq * 131u + j * 7u + (size_t)codec);
    snprintf(c->seq_str, sizeof(c->seq_str), "%d", seq);
    c->bin[0] = 0;
    c->bin[1] = 0xff;
    c->bin[2] = (unsigned char)seq;
    c->bin[3] = (unsigned char)codec;
    c->has_null_header = seq % 3 == 0;
}

/* ---- client construction ---- */

static int debug_wanted;

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    if (strstr(buf, "not compressing batch")) atomic_fetch_add(&compression_refusals, 1);
    if (level < 7 || debug_wanted) fprintf(stderr, "%%%d|%s|%s\n", level, fac, buf);
}

static rd_kafka_conf_t *conf_base(void)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, on_log);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die("bootstrap.servers: %s", err);
    /* SL_RDKAFKA_DEBUG=fetch,protocol,... shows librdkafka's debug log too. */
    const char *extra = getenv("SL_RDKAFKA_DEBUG");
    char debug[128];
    debug_wanted = extra && *extra;
    snprintf(debug, sizeof(debug), "msg%s%s", debug_wanted ? "," : "", debug_wanted ? extra : "");
    if (rd_kafka_conf_set(conf, "debug", debug, err, sizeof(err)) != RD_KAFKA_CONF_OK) die("debug: %s", err);
    return conf;
}

static void conf_put(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        die("config %s=%s: %s", name, value, err);
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[256];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (!rk) die("rd_kafka_new: %s", err);
    return rk;
}

/* ---- produce ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    struct delivery *d = m->_private;
    if (!d) return;
    d->done = 1;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
}

static rd_kafka_headers_t *headers_make(int codec, const struct content *c)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    rd_kafka_header_add(h, "codec", -1, codec_names[codec], -1);
    rd_kafka_header_add(h, "seq", -1, c->seq_str, -1);
    rd_kafka_header_add(h, "bin", -1, c->bin, sizeof(c->bin));
    if (c->has_null_header) rd_kafka_header_add(h, "nullh", -1, NULL, 0);
    return h;
}

/* Fails when librdkafka refused to compress since `before` was sampled. */
static void check_compressed(const char *codec, int before)
{
    if (atomic_load(&compression_refusals) != before)
        check_fail("%s: librdkafka sent the batches UNCOMPRESSED ('Broker does not support "
                   "compression type'): the broker's ApiVersions fail librdkafka's codec gate",
                   codec);
}

static void produce_codec(int codec)
{
    int refusals = atomic_load(&compression_refusals);
    rd_kafka_conf_t *conf = conf_base();
    conf_put(conf, "acks", "all");
    conf_put(conf, "linger.ms", "5");
    conf_put(conf, "compression.codec", codec_names[codec]);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
    for (int seq = 0; seq < MSGS_PER_CODEC; seq++) {
        struct content c;
        content_make(codec, seq, &c);
        struct delivery *d = &deliveries[codec * MSGS_PER_CODEC + seq];
        const void *key = c.key_null ? NULL : c.key;
        void *value = c.value_null ? NULL : c.value;
        rd_kafka_resp_err_t err =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(DATA_TOPIC), RD_KAFKA_V_PARTITION(seq % DATA_PARTITIONS),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key ? strlen(c.key) : 0),
                              RD_KAFKA_V_VALUE(value, c.value_len), RD_KAFKA_V_HEADERS(headers_make(codec, &c)),
                              RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (err) die("producev %s seq %d: %s", codec_names[codec], seq, rd_kafka_err2str(err));
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, TIMEOUT_MS))
        check_fail("%s: %d messages not delivered within %d ms", codec_names[codec], rd_kafka_outq_len(rk), TIMEOUT_MS);
    rd_kafka_destroy(rk);
    check_compressed(codec_names[codec], refusals);
}

/* Every report ok, and per partition the offsets continue 0, 1, 2, ... in
 * produce order (producers ran one after another). */
static void check_deliveries(int64_t counts[DATA_PARTITIONS])
{
    for (int p = 0; p < DATA_PARTITIONS; p++)
        for (int o = 0; o < MSGS_TOTAL; o++) placed[p][o] = -1;
    for (int i = 0; i < MSGS_TOTAL; i++) {
        const struct delivery *d = &deliveries[i];
        int want_p = (i % MSGS_PER_CODEC) % DATA_PARTITIONS;
        if (!d->done || d->err) {
            check_fail("message %d (%s seq %d): delivery %s", i, codec_names[i / MSGS_PER_CODEC], i % MSGS_PER_CODEC,
                       d->done ? rd_kafka_err2str(d->err) : "never reported");
            continue;
        }
        if (d->partition != want_p || d->offset != counts[want_p]) {
            check_fail("message %d: reported at [%" PRId32 "]@%" PRId64 ", want [%d]@%" PRId64, i, d->partition,
                       d->offset, want_p, counts[want_p]);
            continue;
        }
        placed[want_p][d->offset] = i;
        counts[want_p]++;
    }
    printf("produce: %d messages, 5 codecs, partition counts %" PRId64 "/%" PRId64 "/%" PRId64 "/%" PRId64 "\n",
           MSGS_TOTAL, counts[0], counts[1], counts[2], counts[3]);
}

/* ---- consume (legacy group-less API) and compare ---- */

static int header_is(const rd_kafka_headers_t *h, size_t idx, const char *name, const void *val, size_t len)
{
    const char *n;
    const void *v;
    size_t sz;
    if (rd_kafka_header_get_all(h, idx, &n, &v, &sz)) return 0;
    if (strcmp(n, name) != 0) return 0;
    if (!val) return v == NULL;
    return v && sz == len && memcmp(v, val, len) == 0;
}

static int message_matches(const rd_kafka_message_t *m, int idx, char *why, size_t why_size)
{
    struct content c;
    int codec = idx / MSGS_PER_CODEC;
    content_make(codec, idx % MSGS_PER_CODEC, &c);
    size_t klen = c.key_null ? 0 : strlen(c.key);
    if (c.key_null ? m->key != NULL : (!m->key || m->key_len != klen || memcmp(m->key, c.key, klen)))
        return snprintf(why, why_size, "key"), 0;
    if (c.value_null ? m->payload != NULL
                     : (!m->payload || m->len != c.value_len || memcmp(m->payload, c.value, c.value_len)))
        return snprintf(why, why_size, "value (len %zu, want %zu)", m->len, c.value_len), 0;
    rd_kafka_headers_t *h = NULL;
    size_t want_n = c.has_null_header ? 4 : 3;
    if (rd_kafka_message_headers(m, &h) || rd_kafka_header_cnt(h) != want_n)
        return snprintf(why, why_size, "header count (want %zu)", want_n), 0;
    int ok = header_is(h, 0, "codec", codec_names[codec], strlen(codec_names[codec])) &&
             header_is(h, 1, "seq", c.seq_str, strlen(c.seq_str)) && header_is(h, 2, "bin", c.bin, sizeof(c.bin)) &&
             (!c.has_null_header || header_is(h, 3, "nullh", NULL, 0));
    if (!ok) return snprintf(why, why_size, "headers"), 0;
    return 1;
}

static rd_kafka_t *legacy_consumer_new(void)
{
    rd_kafka_conf_t *conf = conf_base();
    conf_put(conf, "enable.partition.eof", "true");
    return client_new(RD_KAFKA_CONSUMER, conf);
}

/* Reads partition p from the beginning until `want` messages or EOF. Each
 * message goes to `visit`, which returns 0 to count a failure. Returns count. */
typedef int (*visit_fn)(const rd_kafka_message_t *m, void *arg);

static int64_t consume_partition(rd_kafka_t *rk, const char *topic, int32_t p, int64_t want, visit_fn visit, void *arg)
{
    rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
    char err[256];
    if (rd_kafka_topic_conf_set(tconf, "auto.commit.enable", "false", err, sizeof(err)))
        die("auto.commit.enable: %s", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, tconf);
    if (rd_kafka_consume_start(rkt, p, RD_KAFKA_OFFSET_BEGINNING) == -1)
        die("consume_start %s [%d]: %s", topic, p, rd_kafka_err2str(rd_kafka_last_error()));
    int64_t got = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        rd_kafka_message_t *msgs[256];
        ssize_t n = rd_kafka_consume_batch(rkt, p, 500, msgs, 256);
        int eof = 0;
        for (ssize_t i = 0; i < n; i++) {
            if (msgs[i]->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
                eof = 1;
            else if (msgs[i]->err)
                check_fail("consume %s [%d]: %s", topic, p, rd_kafka_message_errstr(msgs[i]));
            else if (visit(msgs[i], arg))
                got++;
            rd_kafka_message_destroy(msgs[i]);
        }
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((eof && got >= want) || t1.tv_sec - t0.tv_sec > TIMEOUT_MS / 1000) break;
    }
    rd_kafka_consume_stop(rkt, p);
    rd_kafka_topic_destroy(rkt);
    return got;
}

struct data_visit {
    int32_t partition;
    int64_t next_offset;
};

static int visit_data(const rd_kafka_message_t *m, void *arg)
{
    struct data_visit *v = arg;
    char why[96];
    if (m->offset != v->next_offset) {
        check_fail("[%d] offset %" PRId64 " follows %" PRId64, v->partition, m->offset, v->next_offset - 1);
        v->next_offset = m->offset;
    }
    v->next_offset++;
    int idx = m->offset >= 0 && m->offset < MSGS_TOTAL ? placed[v->partition][m->offset] : -1;
    if (idx < 0) {
        check_fail("[%d]@%" PRId64 ": no acknowledged message there", v->partition, m->offset);
        return 0;
    }
    if (!message_matches(m, idx, why, sizeof(why))) {
        check_fail("[%d]@%" PRId64 " (%s seq %d): %s differs", v->partition, m->offset,
                   codec_names[idx / MSGS_PER_CODEC], idx % MSGS_PER_CODEC, why);
        return 0;
    }
    return 1;
}

static void check_consume(const int64_t counts[DATA_PARTITIONS])
{
    rd_kafka_t *rk = legacy_consumer_new();
    for (int32_t p = 0; p < DATA_PARTITIONS; p++) {
        struct data_visit v = {p, 0};
        int64_t got = consume_partition(rk, DATA_TOPIC, p, counts[p], visit_data, &v);
        if (got != counts[p] || v.next_offset != counts[p])
            check_fail("[%d]: %" PRId64 " matching messages up to offset %" PRId64 ", want %" PRId64, p, got,
                       v.next_offset, counts[p]);
    }
    printf("consume: all partitions read back and compared\n");
    rd_kafka_destroy(rk);
}

static void check_watermarks(const int64_t counts[DATA_PARTITIONS])
{
    rd_kafka_t *rk = legacy_consumer_new();
    for (int32_t p = 0; p < DATA_PARTITIONS; p++) {
        int64_t lo = -9, hi = -9;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, DATA_TOPIC, p, &lo, &hi, TIMEOUT_MS);
        if (err || lo != 0 || hi != counts[p])
            check_fail("watermarks [%d]: %s low %" PRId64 " high %" PRId64 ", want 0 %" PRId64, p,
                       rd_kafka_err2str(err), lo, hi, counts[p]);
    }
    printf("watermarks: checked\n");
    rd_kafka_destroy(rk);
}

/* ---- timestamps ---- */

static void produce_timed(const char *topic, const char *codec, int64_t base_ms)
{
    int refusals = atomic_load(&compression_refusals);
    rd_kafka_conf_t *conf = conf_base();
    conf_put(conf, "acks", "all");
    conf_put(conf, "linger.ms", "200");
    conf_put(conf, "compression.codec", codec);
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
    for (int i = 0; i < TIMED_MSGS; i++) {
        /* Compressible, so librdkafka really compresses the batch (it sends a
         * batch uncompressed when compression would not make it smaller). */
        char v[256];
        int n = snprintf(v, sizeof(v), "t%d ", i);
        memset(v + n, 'a', sizeof(v) - 1 - (size_t)n);
        v[sizeof(v) - 1] = '\0';
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE(v, strlen(v)),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(base_ms + i * 1000), RD_KAFKA_V_END);
        if (err) die("producev %s: %s", topic, rd_kafka_err2str(err));
    }
    if (rd_kafka_flush(rk, TIMEOUT_MS)) check_fail("%s: timed messages not delivered", topic);
    rd_kafka_destroy(rk);
    check_compressed(codec, refusals);
}

struct timed_visit {
    int64_t base_ms;
    int n;
};

static int visit_timed(const rd_kafka_message_t *m, void *arg)
{
    struct timed_visit *v = arg;
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(m, &type);
    int64_t want = v->base_ms + m->offset * 1000;
    v->n++;
    if (ts != want || type != RD_KAFKA_TIMESTAMP_CREATE_TIME) {
        check_fail("timestamp @%" PRId64 ": %" PRId64 " (type %d), want %" PRId64 " CreateTime", m->offset, ts,
                   (int)type, want);
        return 0;
    }
    return 1;
}

static void check_offsets_for_times(rd_kafka_t *rk, const char *topic, int64_t base_ms)
{
    static const struct {
        int64_t delta_ms;
        int64_t want;
    } cases[] = {{-5000, 0}, {0, 0}, {1, 1}, {3500, 4}, {9000, 9}, {9001, -1}};
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, 0)->offset = base_ms + cases[i].delta_ms;
        rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, TIMEOUT_MS);
        const rd_kafka_topic_partition_t *r = &l->elems[0];
        if (err || r->err || r->offset != cases[i].want)
            check_fail("offsets_for_times %s base%+" PRId64 ": %s/%s offset %" PRId64 ", want %" PRId64, topic,
                       cases[i].delta_ms, rd_kafka_err2str(err), rd_kafka_err2str(r->err), r->offset, cases[i].want);
        rd_kafka_topic_partition_list_destroy(l);
    }
}

static void check_timestamps(void)
{
    /* A fixed hour in the past, so no clock-based default can match by luck. */
    int64_t base_ms = ((int64_t)time(NULL) - 3600) * 1000;
    const char *topics[2] = {"rk.times.none", "rk.times.gzip"};
    const char *codecs[2] = {"none", "gzip"};
    rd_kafka_t *rk = legacy_consumer_new();
    for (int i = 0; i < 2; i++) {
        produce_timed(topics[i], codecs[i], base_ms);
        check_offsets_for_times(rk, topics[i], base_ms);
        struct timed_visit v = {base_ms, 0};
        int64_t got = consume_partition(rk, topics[i], 0, TIMED_MSGS, visit_timed, &v);
        if (got != TIMED_MSGS || v.n != TIMED_MSGS)
            check_fail("%s: %" PRId64 " of %d timestamps right", topics[i], got, TIMED_MSGS);
    }
    printf("timestamps: offsetsForTimes and CreateTime read-back checked\n");
    rd_kafka_destroy(rk);
}

/* ---- admin ---- */

/* Runs one admin call's result out of `q`: returns the event (caller destroys). */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q, rd_kafka_event_type_t type)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TIMEOUT_MS + 5000);
    if (!ev) die("admin: no result (event %d) within timeout", (int)type);
    if (rd_kafka_event_type(ev) != type) die("admin: got event %s, want type %d", rd_kafka_event_name(ev), (int)type);
    return ev;
}

static rd_kafka_AdminOptions_t *admin_options(rd_kafka_t *rk)
{
    char err[256];
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
    if (rd_kafka_AdminOptions_set_request_timeout(o, TIMEOUT_MS, err, sizeof(err)) ||
        rd_kafka_AdminOptions_set_operation_timeout(o, TIMEOUT_MS, err, sizeof(err)))
        die("admin options: %s", err);
    return o;
}

/* Checks one topic result: `want` error code; returns the actual one. */
static rd_kafka_resp_err_t topic_result_check(const char *what, const rd_kafka_topic_result_t *r,
                                              rd_kafka_resp_err_t want)
{
    rd_kafka_resp_err_t got = rd_kafka_topic_result_error(r);
    if (got != want)
        check_fail("%s '%s': %s (%s), want %s", what, rd_kafka_topic_result_name(r), rd_kafka_err2name(got),
                   rd_kafka_topic_result_error_string(r) ? rd_kafka_topic_result_error_string(r) : "",
                   rd_kafka_err2name(want));
    return got;
}

static void create_topic(rd_kafka_t *rk, const char *name, int partitions, const char *const *configs,
                         rd_kafka_resp_err_t want)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, partitions, 1, err, sizeof(err));
    if (!nt) die("NewTopic %s: %s", name, err);
    for (size_t i = 0; configs && configs[i]; i += 2)
        if (rd_kafka_NewTopic_set_config(nt, configs[i], configs[i + 1])) die("NewTopic_set_config %s", configs[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_options(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_CREATETOPICS_RESULT);
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    if (rd_kafka_event_error(ev) || n != 1)
        check_fail("CreateTopics %s: %s, %zu results", name, rd_kafka_event_error_string(ev), n);
    else
        topic_result_check("CreateTopics", res[0], want);
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
}

static void create_partitions(rd_kafka_t *rk, const char *name, int total, rd_kafka_resp_err_t want)
{
    char err[256];
    rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(name, (size_t)total, err, sizeof(err));
    if (!np) die("NewPartitions %s: %s", name, err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_options(rk);
    rd_kafka_CreatePartitions(rk, &np, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_CREATEPARTITIONS_RESULT);
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
    if (rd_kafka_event_error(ev) || n != 1)
        check_fail("CreatePartitions %s: %s, %zu results", name, rd_kafka_event_error_string(ev), n);
    else
        topic_result_check("CreatePartitions", res[0], want);
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewPartitions_destroy(np);
    rd_kafka_queue_destroy(q);
}

static void delete_topic(rd_kafka_t *rk, const char *name, rd_kafka_resp_err_t want)
{
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_options(rk);
    rd_kafka_DeleteTopics(rk, &dt, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DELETETOPICS_RESULT);
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    if (rd_kafka_event_error(ev) || n != 1)
        check_fail("DeleteTopics %s: %s, %zu results", name, rd_kafka_event_error_string(ev), n);
    else
        topic_result_check("DeleteTopics", res[0], want);
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
}

/* Partition count of `name` in an all-topics Metadata (no auto-create);
 * -1 when the topic is not listed. */
static int metadata_partitions(rd_kafka_t *rk, const char *name)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, TIMEOUT_MS);
    if (err) die("metadata: %s", rd_kafka_err2str(err));
    int n = -1;
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0) n = md->topics[i].err ? -2 : md->topics[i].partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

struct config_want {
    const char *name;
    const char *value; /* NULL: any value */
    int is_default;
    rd_kafka_ConfigSource_t source;
};

static void check_config_entry(const rd_kafka_ConfigEntry_t **entries, size_t n, const struct config_want *w)
{
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_ConfigEntry_t *e = entries[i];
        if (strcmp(rd_kafka_ConfigEntry_name(e), w->name) != 0) continue;
        const char *v = rd_kafka_ConfigEntry_value(e);
        if ((w->value && (!v || strcmp(v, w->value) != 0)) || (!w->value && (!v || !*v)) ||
            rd_kafka_ConfigEntry_is_default(e) != w->is_default || rd_kafka_ConfigEntry_source(e) != w->source)
            check_fail("DescribeConfigs %s = '%s' default=%d source=%s, want '%s' default=%d source=%s", w->name,
                       v ? v : "(null)", rd_kafka_ConfigEntry_is_default(e),
                       rd_kafka_ConfigSource_name(rd_kafka_ConfigEntry_source(e)), w->value ? w->value : "(any)",
                       w->is_default, rd_kafka_ConfigSource_name(w->source));
        return;
    }
    check_fail("DescribeConfigs: %s not listed (%zu entries)", w->name, n);
}

static void describe_configs(rd_kafka_t *rk, const char *name)
{
    static const struct config_want wants[] = {
        {"retention.ms", "86400000", 0, RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG},
        {"max.message.bytes", "4096", 0, RD_KAFKA_CONFIG_SOURCE_DYNAMIC_TOPIC_CONFIG},
        {"cleanup.policy", "delete", 1, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG},
        {"retention.bytes", "-1", 1, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG},
        {"segment.bytes", NULL, 1, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG},
        {"message.timestamp.type", "CreateTime", 1, RD_KAFKA_CONFIG_SOURCE_DEFAULT_CONFIG},
    };
    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, name);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = admin_options(rk);
    rd_kafka_DescribeConfigs(rk, &cr, 1, o, q);
    rd_kafka_event_t *ev = admin_wait(q, RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT);
    size_t n = 0;
    const rd_kafka_ConfigResource_t **res =
        rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &n);
    if (rd_kafka_event_error(ev) || n != 1 || rd_kafka_ConfigResource_error(res[0])) {
        check_fail("DescribeConfigs %s: %s, %zu resources, %s", name, rd_kafka_event_error_string(ev), n,
                   n ? rd_kafka_err2name(rd_kafka_ConfigResource_error(res[0])) : "-");
    } else {
        size_t cnt = 0;
        const rd_kafka_ConfigEntry_t **entries = rd_kafka_ConfigResource_configs(res[0], &cnt);
        for (size_t i = 0; i < sizeof(wants) / sizeof(wants[0]); i++) check_config_entry(entries, cnt, &wants[i]);
        printf("admin: DescribeConfigs listed %zu entries\n", cnt);
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ConfigResource_destroy(cr);
    rd_kafka_queue_destroy(q);
}

/* Produces one message (value of `size` bytes) and returns its delivery error;
 * *offset gets the reported offset. `client_max` raises message.max.bytes. */
static rd_kafka_resp_err_t produce_one(const char *topic, int32_t partition, size_t size, const char *client_max,
                                       int64_t *offset)
{
    static unsigned char value[2 * 1024 * 1024 + 64];
    if (size > sizeof(value)) die("produce_one: %zu bytes is over the tool's buffer", size);
    memset(value, 'v', size);
    struct delivery d = {0, RD_KAFKA_RESP_ERR_NO_ERROR, -1, -1};
    rd_kafka_conf_t *conf = conf_base();
    conf_put(conf, "acks", "all");
    conf_put(conf, "message.timeout.ms", "10000");
    if (client_max) conf_put(conf, "message.max.bytes", client_max);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
    rd_kafka_resp_err_t err =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_VALUE(value, size),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(&d), RD_KAFKA_V_END);
    if (!err) {
        rd_kafka_flush(rk, TIMEOUT_MS);
        err = d.done ? d.err : RD_KAFKA_RESP_ERR__TIMED_OUT;
    }
    *offset = d.offset;
    rd_kafka_destroy(rk);
    return err;
}

static void expect_produce(const char *what, const char *topic, int32_t partition, size_t size, const char *client_max,
                           rd_kafka_resp_err_t want, int64_t want_offset)
{
    int64_t off = -1;
    rd_kafka_resp_err_t err = produce_one(topic, partition, size, client_max, &off);
    if (err != want || (!want && off != want_offset))
        check_fail("%s: produce %zu bytes to %s [%d]: %s @%" PRId64 ", want %s @%" PRId64, what, size, topic, partition,
                   rd_kafka_err2name(err), off, rd_kafka_err2name(want), want_offset);
}

static void check_admin(void)
{
    static const char *const configs[] = {"retention.ms", "86400000", "max.message.bytes", "4096", NULL};
    const char *t = "rk.admin";
    rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf_base());
    create_topic(rk, t, 3, configs, RD_KAFKA_RESP_ERR_NO_ERROR);
    create_topic(rk, t, 3, NULL, RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS);
    create_topic(rk, "bad topic!", 1, NULL, RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION);
    if (metadata_partitions(rk, t) != 3)
        check_fail("metadata: %s has %d partitions, want 3", t, metadata_partitions(rk, t));
    describe_configs(rk, t);
    expect_produce("topic max.message.bytes=4096", t, 1, 8000, NULL, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, -1);
    expect_produce("small message", t, 2, 100, NULL, RD_KAFKA_RESP_ERR_NO_ERROR, 0);
    create_partitions(rk, t, 5, RD_KAFKA_RESP_ERR_NO_ERROR);
    if (metadata_partitions(rk, t) != 5)
        check_fail("metadata after CreatePartitions: %s has %d partitions, want 5", t, metadata_partitions(rk, t));
    expect_produce("new partition", t, 4, 100, NULL, RD_KAFKA_RESP_ERR_NO_ERROR, 0);
    create_partitions(rk, t, 2, RD_KAFKA_RESP_ERR_INVALID_PARTITIONS);
    create_partitions(rk, "rk.no-such-topic", 2, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    delete_topic(rk, t, RD_KAFKA_RESP_ERR_NO_ERROR);
    if (metadata_partitions(rk, t) != -1) check_fail("metadata after DeleteTopics: %s still listed", t);
    delete_topic(rk, t, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    if (metadata_partitions(rk, "bad topic!") != -1) check_fail("metadata lists the invalid topic 'bad topic!'");
    printf("admin: create/describe/partitions/delete checked\n");
    rd_kafka_destroy(rk);
}

static void check_produce_errors(void)
{
    int64_t off = -1;
    rd_kafka_resp_err_t err = produce_one("bad topic!", RD_KAFKA_PARTITION_UA, 10, NULL, &off);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        check_fail("produce to invalid topic 'bad topic!' succeeded at offset %" PRId64, off);
    else
        printf("errors: produce to 'bad topic!' failed with %s\n", rd_kafka_err2name(err));
    expect_produce("over broker default message.max.bytes", DATA_TOPIC, 0, 2 * 1024 * 1024, "4000000",
                   RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, -1);
}

int main(int argc, char **argv)
{
    if (argc != 2) die("usage: %s HOST:PORT", argv[0]);
    bootstrap = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    rd_kafka_t *admin = client_new(RD_KAFKA_PRODUCER, conf_base());
    create_topic(admin, DATA_TOPIC, DATA_PARTITIONS, NULL, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(admin);
    for (int codec = 0; codec < CODECS; codec++) produce_codec(codec);
    int64_t counts[DATA_PARTITIONS] = {0};
    check_deliveries(counts);
    check_consume(counts);
    check_watermarks(counts);
    check_timestamps();
    check_admin();
    check_produce_errors();
    if (failures) {
        fprintf(stderr, "sl_compat_rdkafka: %d check(s) failed\n", failures);
        return 1;
    }
    printf("sl_compat_rdkafka: all checks passed\n");
    return 0;
}
