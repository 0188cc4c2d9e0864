/*
 * sl_crash_producer: load generator of the kill -9 crash test
 * (tests/crash/test_crash_short.sh). Produces as fast as it can, acks=all, to
 * explicit partitions (seq % PARTITIONS) of TOPIC, content from
 * crash_content.h, and appends one line per ACKNOWLEDGED message to LOGFILE:
 *
 *   "<partition> <offset> <run> <inst> <seq>\n"
 *
 * The log is flushed after every poll that served delivery reports, so when
 * this process is killed (-9) only the last, partial line can be missing; the
 * script drops a last line without its newline. Failed deliveries are counted,
 * never logged: only what the broker acknowledged is checked.
 *
 * Usage: sl_crash_producer HOST:PORT TOPIC PARTITIONS RUN INST LOGFILE CODEC [SECONDS [RATE]]
 * Stops by itself after SECONDS (default 60) or on SIGTERM/SIGINT. RATE caps
 * messages per second (default 0: as fast as the broker acknowledges), which
 * bounds how much data a crash run piles up for verification.
 * With SL_CRASH_IDEMPOTENT set in the environment it is an idempotent producer
 * (enable.idempotence, 5 in flight), for tests/crash/test_idempotent.sh.
 */
#include <librdkafka/rdkafka.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_content.h"

#define SEQ_MAX 50000000ull

static volatile sig_atomic_t stop_requested;
static FILE *ack_log;
static uint32_t run_no, inst_no;
static uint64_t acked, failed;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void die(const char *msg, const char *detail)
{
    fprintf(stderr, "sl_crash_producer: %s: %s\n", msg, detail);
    exit(2);
}

static long parse_long(const char *s, const char *what, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) die("bad number for", what);
    return v;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err) {
        failed++;
        return;
    }
    uint64_t seq = (uint64_t)(uintptr_t)m->_private;
    fprintf(ack_log, "%" PRId32 " %" PRId64 " %" PRIu32 " %" PRIu32 " %" PRIu64 "\n", m->partition, m->offset, run_no,
            inst_no, seq);
    acked++;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) die(name, err);
}

static rd_kafka_t *producer_new(const char *bootstrap, const char *codec)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "acks", "all");
    set(conf, "linger.ms", "2");
    set(conf, "compression.codec", codec);
    set(conf, "queue.buffering.max.messages", "50000");
    set(conf, "message.timeout.ms", "60000");
    set(conf, "reconnect.backoff.ms", "50");
    set(conf, "reconnect.backoff.max.ms", "200");
    if (getenv("SL_CRASH_IDEMPOTENT")) { /* the exactly-once test: retries must not duplicate */
        set(conf, "enable.idempotence", "true");
        set(conf, "max.in.flight.requests.per.connection", "5");
        set(conf, "message.timeout.ms", "300000");
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk) die("rd_kafka_new", err);
    return rk;
}

/* Enqueues message `seq`; returns 0, or -1 when the local queue is full. */
static int produce_seq(rd_kafka_t *rk, const char *topic, int32_t partitions, uint64_t seq)
{
    static struct crash_msg m;
    crash_msg_make(run_no, inst_no, seq, &m);
    rd_kafka_headers_t *h = rd_kafka_headers_new(CRASH_HEADERS);
    rd_kafka_header_add(h, "run", -1, m.run_str, -1);
    rd_kafka_header_add(h, "seq", -1, m.seq_str, -1);
    rd_kafka_header_add(h, "h", -1, m.h_be, sizeof(m.h_be));
    rd_kafka_resp_err_t err =
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION((int32_t)(seq % (uint64_t)partitions)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(m.key, m.key_len),
                          RD_KAFKA_V_VALUE(m.value, m.value_len), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE((void *)(uintptr_t)seq), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_headers_destroy(h);
        return -1;
    }
    if (err) die("producev", rd_kafka_err2str(err));
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void serve(rd_kafka_t *rk, int timeout_ms)
{
    if (rd_kafka_poll(rk, timeout_ms) > 0 && fflush(ack_log) != 0) die("writing the ack log", strerror(errno));
}

int main(int argc, char **argv)
{
    if (argc < 8 || argc > 10) {
        fprintf(stderr, "usage: %s HOST:PORT TOPIC PARTITIONS RUN INST LOGFILE CODEC [SECONDS [RATE]]\n", argv[0]);
        return 2;
    }
    int32_t partitions = (int32_t)parse_long(argv[3], "PARTITIONS", 1, 1024);
    run_no = (uint32_t)parse_long(argv[4], "RUN", 0, 1000000);
    inst_no = (uint32_t)parse_long(argv[5], "INST", 0, 1000);
    long seconds = argc >= 9 ? parse_long(argv[8], "SECONDS", 1, 3600) : 60;
    long rate = argc == 10 ? parse_long(argv[9], "RATE", 0, 100000000) : 0;
    ack_log = fopen(argv[6], "a");
    if (!ack_log) die(argv[6], strerror(errno));
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    rd_kafka_t *rk = producer_new(argv[1], argv[7]);
    double start = now_s();
    uint64_t seq = 0;
    while (!stop_requested && seq < SEQ_MAX && now_s() - start < (double)seconds) {
        if (rate > 0 && (double)seq >= (now_s() - start) * (double)rate)
            serve(rk, 1);
        else if (produce_seq(rk, argv[2], partitions, seq) == 0)
            seq++;
        else
            serve(rk, 5);
        if (seq % 64 == 0) serve(rk, 0);
    }
    rd_kafka_flush(rk, 2000);
    serve(rk, 0);
    fprintf(stderr,
            "sl_crash_producer: run %" PRIu32 " inst %" PRIu32 ": produced %" PRIu64 ", acked %" PRIu64
            ", failed %" PRIu64 "\n",
            run_no, inst_no, seq, acked, failed);
    fclose(ack_log);
    rd_kafka_destroy(rk);
    return 0;
}
