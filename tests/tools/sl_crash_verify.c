/*
 * sl_crash_verify: checker of the kill -9 crash test. Reads every partition
 * of TOPIC from the beginning up to its high watermark (legacy group-less
 * consumer) and checks it against EXPECTED, the acknowledged-message logs of
 * sl_crash_producer merged and sorted by partition then offset:
 *
 *   "<partition> <offset> <run> <inst> <seq>\n"   (sort -k1,1n -k2,2n)
 *
 * Checks, with both sides streamed in offset order (no table of messages):
 *  - each partition's offsets run 0, 1, 2, ... with no gap up to the high
 *    watermark (a plain topic: no compaction, no transactions);
 *  - every acknowledged (partition, offset) is below the high watermark and
 *    holds exactly the key, value and headers crash_content.h derives from
 *    its (run, inst, seq);
 *  - no (partition, offset) was acknowledged twice (which would mean the
 *    broker lost an acknowledged message and gave its offset to another).
 *
 *  - with SL_VERIFY_EXACTLY_ONCE set: every message in the partition, acknowledged
 *    or not, carries a sequence higher than the last one of its (run, inst) in
 *    that partition: no message was written twice, none out of order
 *    (idempotent producers).
 *
 * Usage: sl_crash_verify HOST:PORT TOPIC PARTITIONS EXPECTED
 * Prints one line per partition; exit 0 only when every check passed.
 */
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_content.h"

#define TIMEOUT_S   120
#define REPORTS_MAX 20

struct expect {
    FILE *f;
    int have; /* a line is loaded in cur */
    long line_no;
    int32_t partition;
    int64_t offset;
    uint32_t run, inst;
    uint64_t seq;
};

static int failures;

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    failures++;
    if (failures > REPORTS_MAX) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void die(const char *msg, const char *detail)
{
    fprintf(stderr, "sl_crash_verify: %s: %s\n", msg, detail);
    exit(2);
}

/* Parses one decimal field; advances *p past it and one separator. */
static int field(char **p, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(*p, &end, 10);
    if (errno || end == *p || (*end != ' ' && *end != '\n' && *end != '\0')) return -1;
    *out = v;
    *p = *end ? end + 1 : end;
    return 0;
}

/* Loads the next line; sets have = 0 at end of file. Malformed is fatal. */
static void expect_next(struct expect *e)
{
    char line[160];
    e->have = 0;
    if (!fgets(line, sizeof(line), e->f)) return;
    e->line_no++;
    int64_t v[5];
    char *p = line;
    for (int i = 0; i < 5; i++)
        if (field(&p, &v[i]) != 0) die("malformed expected line", line);
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0 || v[4] < 0) die("negative field in expected line", line);
    e->partition = (int32_t)v[0];
    e->offset = v[1];
    e->run = (uint32_t)v[2];
    e->inst = (uint32_t)v[3];
    e->seq = (uint64_t)v[4];
    e->have = 1;
}

static int header_eq(rd_kafka_headers_t *h, size_t idx, const char *name, const void *val, size_t len)
{
    const char *n;
    const void *v;
    size_t sz;
    return rd_kafka_header_get_all(h, idx, &n, &v, &sz) == 0 && strcmp(n, name) == 0 && v && sz == len &&
           memcmp(v, val, len) == 0;
}

/* 0 when the message holds what (run, inst, seq) derives; else what differs. */
static const char *content_diff(const rd_kafka_message_t *m, const struct expect *e)
{
    static struct crash_msg want;
    crash_msg_make(e->run, e->inst, e->seq, &want);
    if (!m->key || m->key_len != want.key_len || memcmp(m->key, want.key, want.key_len) != 0) return "key";
    if (!m->payload || m->len != want.value_len || memcmp(m->payload, want.value, m->len) != 0) return "value";
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != 0 || rd_kafka_header_cnt(h) != CRASH_HEADERS) return "header count";
    if (!header_eq(h, 0, "run", want.run_str, strlen(want.run_str)) ||
        !header_eq(h, 1, "seq", want.seq_str, strlen(want.seq_str)) ||
        !header_eq(h, 2, "h", want.h_be, sizeof(want.h_be)))
        return "headers";
    return NULL;
}

/* Matches one consumed message against the expected stream of partition p. */
static void check_message(const rd_kafka_message_t *m, struct expect *e, int32_t p, uint64_t *checked)
{
    while (e->have && e->partition == p && e->offset < m->offset) {
        report("[%d]@%" PRId64 " acknowledged (run %u inst %u seq %" PRIu64 ") but not found", p, e->offset, e->run,
               e->inst, e->seq);
        expect_next(e);
    }
    if (!e->have || e->partition != p || e->offset != m->offset) return;
    const char *diff = content_diff(m, e);
    if (diff)
        report("[%d]@%" PRId64 ": %s differs from acknowledged run %u inst %u seq %" PRIu64, p, m->offset, diff, e->run,
               e->inst, e->seq);
    (*checked)++;
    int64_t off = e->offset;
    expect_next(e);
    while (e->have && e->partition == p && e->offset == off) {
        report("[%d]@%" PRId64 " acknowledged twice (again to run %u inst %u seq %" PRIu64 ")", p, off, e->run, e->inst,
               e->seq);
        expect_next(e);
    }
}

/* Exactly-once check: the last sequence seen per (run, inst) in the partition being read. */
struct last_seq {
    uint32_t run, inst;
    uint64_t seq;
};
static struct last_seq lasts[4096];
static int nlasts;

static void check_once(const rd_kafka_message_t *m, int32_t p)
{
    char key[64] = {0}, *end;
    memcpy(key, m->key, m->key_len < sizeof key - 1 ? m->key_len : sizeof key - 1);
    unsigned long run = 0, inst = 0;
    unsigned long long seq = 0;
    bool ok = key[0] == 'r';
    if (ok) {
        run = strtoul(key + 1, &end, 10);
        ok = end != key + 1 && end[0] == '-' && end[1] == 'i';
    }
    if (ok) {
        char *q = end + 2;
        inst = strtoul(q, &end, 10);
        ok = end != q && end[0] == '-' && end[1] == 's';
    }
    if (ok) {
        char *q = end + 2;
        seq = strtoull(q, &end, 10);
        ok = end != q && *end == 0;
    }
    if (!ok) {
        report("[%d]@%" PRId64 ": key '%s' is not a crash-test key", p, m->offset, key);
        return;
    }
    int i = 0;
    while (i < nlasts && (lasts[i].run != run || lasts[i].inst != inst)) i++;
    if (i == nlasts) {
        if (nlasts == (int)(sizeof lasts / sizeof lasts[0])) die("too many producers", "");
        lasts[nlasts++] = (struct last_seq){(uint32_t)run, (uint32_t)inst, seq};
        return;
    }
    if (seq <= lasts[i].seq)
        report("[%d]@%" PRId64 ": run %lu inst %lu seq %llu after seq %llu: %s", p, m->offset, run, inst, seq,
               (unsigned long long)lasts[i].seq, seq == lasts[i].seq ? "written twice" : "out of order or twice");
    else lasts[i].seq = seq;
}

/* Consumes partition p from 0 up to hi, checking as it goes. Returns checked. */
static uint64_t verify_partition(rd_kafka_topic_t *rkt, int32_t p, int64_t hi, struct expect *e)
{
    uint64_t checked = 0;
    int64_t next = 0;
    bool once = getenv("SL_VERIFY_EXACTLY_ONCE") != NULL;
    nlasts = 0;
    time_t deadline = time(NULL) + TIMEOUT_S;
    if (hi > 0 && rd_kafka_consume_start(rkt, p, RD_KAFKA_OFFSET_BEGINNING) == -1)
        die("consume_start", rd_kafka_err2str(rd_kafka_last_error()));
    while (next < hi && time(NULL) < deadline) {
        rd_kafka_message_t *msgs[1024];
        ssize_t n = rd_kafka_consume_batch(rkt, p, 500, msgs, 1024);
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                report("[%d] consume error: %s", p, rd_kafka_message_errstr(m));
            if (!m->err && m->offset < hi) {
                if (m->offset != next)
                    report("[%d] offset %" PRId64 " read where %" PRId64 " was due", p, m->offset, next);
                next = m->offset + 1;
                check_message(m, e, p, &checked);
                if (once) check_once(m, p);
            }
            rd_kafka_message_destroy(m);
        }
    }
    if (hi > 0) rd_kafka_consume_stop(rkt, p);
    if (next < hi)
        report("[%d] read only up to offset %" PRId64 " of high watermark %" PRId64 " in %d s", p, next, hi, TIMEOUT_S);
    return checked;
}

static rd_kafka_t *consumer_new(const char *bootstrap)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "fetch.message.max.bytes", "4194304", err, sizeof(err)) ||
        rd_kafka_conf_set(conf, "socket.timeout.ms", "15000", err, sizeof(err)))
        die("config", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) die("rd_kafka_new", err);
    return rk;
}

/* One partition with its own client: this tool checks durability, so it
 * keeps clear of request pipelining behind a long-polling Fetch (which
 * test_rdkafka covers). */
static uint64_t verify_one(const char *bootstrap, const char *topic, int32_t p, struct expect *e)
{
    rd_kafka_t *rk = consumer_new(bootstrap);
    rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
    char err[256];
    if (rd_kafka_topic_conf_set(tconf, "auto.commit.enable", "false", err, sizeof(err))) die("auto.commit.enable", err);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, tconf);
    int64_t lo = -1, hi = -1;
    uint64_t checked = 0;
    rd_kafka_resp_err_t qerr = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 30000);
    if (qerr) {
        report("[%d] watermarks: %s", p, rd_kafka_err2str(qerr));
        hi = 0;
    } else {
        if (lo != 0) report("[%d] log start offset %" PRId64 ", want 0", p, lo);
        checked = verify_partition(rkt, p, hi, e);
    }
    while (e->have && e->partition == p) {
        report("[%d]@%" PRId64 " acknowledged (run %u inst %u seq %" PRIu64 ") but high watermark is %" PRId64, p,
               e->offset, e->run, e->inst, e->seq, hi);
        expect_next(e);
    }
    printf("verify: [%d] high watermark %" PRId64 ", %" PRIu64 " acknowledged messages checked\n", p, hi, checked);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return checked;
}

static uint64_t verify_all(const char *bootstrap, const char *topic, int32_t partitions, struct expect *e)
{
    uint64_t total = 0;
    for (int32_t p = 0; p < partitions; p++) total += verify_one(bootstrap, topic, p, e);
    if (e->have)
        report("expected line %ld names partition %d of a %d-partition topic", e->line_no, e->partition, partitions);
    return total;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST:PORT TOPIC PARTITIONS EXPECTED\n", argv[0]);
        return 2;
    }
    char *end = NULL;
    long partitions = strtol(argv[3], &end, 10);
    if (!end || *end || partitions < 1 || partitions > 1024) die("bad PARTITIONS", argv[3]);
    struct expect e = {0};
    e.f = fopen(argv[4], "r");
    if (!e.f) die(argv[4], strerror(errno));
    setvbuf(stdout, NULL, _IOLBF, 0);
    expect_next(&e);
    uint64_t total = verify_all(argv[1], argv[2], (int32_t)partitions, &e);
    fclose(e.f);
    if (failures) {
        fprintf(stderr, "sl_crash_verify: %d failure(s)%s\n", failures,
                failures > REPORTS_MAX ? " (first 20 shown)" : "");
        return 1;
    }
    printf("verify: all %" PRIu64 " acknowledged messages present and intact\n", total);
    return 0;
}
