/*
 * broker.h - the Kafka-compatible broker: lifecycle for the `sluice broker`
 * command (src/cli) and for tests that run a broker in-process.
 */
#ifndef SL_BROKER_BROKER_H
#define SL_BROKER_BROKER_H

#include <limits.h>
#include "common/base.h"
#include "common/fileio.h"
#include "common/clock.h"
#include "net/sock.h"

typedef enum { SL_FLUSH_ALWAYS, SL_FLUSH_INTERVAL, SL_FLUSH_OS } sl_flush_mode;

typedef struct sl_broker_config {
    char data_dir[PATH_MAX];
    char listen_host[SL_HOST_MAX];
    int listen_port;                 /* 0 = any free port */
    char advertise_host[SL_HOST_MAX];/* empty = the listen host (127.0.0.1 if that is "any") */
    int advertise_port;              /* 0 = the bound port */
    int32_t default_partitions;      /* num.partitions */
    bool auto_create;                /* auto.create.topics.enable */
    sl_flush_mode flush_mode;
    int64_t flush_interval_ms;       /* for SL_FLUSH_INTERVAL */
    int64_t request_max_bytes;       /* socket.request.max.bytes: larger frames close the connection */
    int32_t message_max_bytes;       /* message.max.bytes: default max.message.bytes of topics */
    int32_t fetch_max_bytes;         /* fetch.max.bytes: caps a Fetch response below the client's MaxBytes */
    int32_t node_id;
    int max_connections;
    int32_t partitions_max;          /* most partitions one topic may have */
    int64_t retention_check_ms;      /* log.retention.check.interval.ms */
    int64_t queued_max_bytes;        /* received request bytes held at once, all connections (queued.max.request.bytes) */
    int32_t group_initial_rebalance_delay_ms; /* group.initial.rebalance.delay.ms (3000) */
    int32_t group_min_session_timeout_ms;     /* group.min.session.timeout.ms (6000) */
    int32_t group_max_session_timeout_ms;     /* group.max.session.timeout.ms (1800000) */
    int64_t offsets_segment_bytes;   /* segment size of __consumer_offsets (16 MiB) */
    int64_t offsets_compact_bytes;   /* appended bytes after which __consumer_offsets is compacted (16 MiB) */
    int64_t offsets_retention_ms;    /* an Empty group's offsets expire after this (offsets.retention.minutes, 7 d) */
    int64_t fault_drop_produce_every;/* tests: drop the connection after every Nth appended produce (0 = off) */
    int64_t fault_exit_before_markers; /* tests: _exit at the Nth round of transaction markers (0 = off) */
    int64_t producer_id_expiration_ms; /* idle idempotent producers are forgotten after this (1 day) */
    int32_t transaction_max_timeout_ms;     /* transaction.max.timeout.ms: largest transaction.timeout.ms (900000) */
    int64_t transactional_id_expiration_ms; /* transactional.id.expiration.ms: idle ids are forgotten (7 d) */
    sl_fileio *io;                   /* file I/O table (tests inject faults) */
    const sl_clock *clock;
    bool handle_signals;             /* stop on SIGTERM/SIGINT (off for in-process tests) */
    int64_t t_exec_ns;               /* when the process started (for the start-up time line) */
} sl_broker_config;

typedef struct sl_broker sl_broker;

void sl_broker_config_default(sl_broker_config *cfg);
/* "always", "os", "interval:MS" -> mode and interval. */
int sl_broker_parse_flush(const char *text, sl_flush_mode *mode, int64_t *interval_ms);
/* Locks the data directory, loads topics and recovers their logs, listens. */
int sl_broker_open(const sl_broker_config *cfg, sl_broker **out);
int sl_broker_port(const sl_broker *broker);
/* Serves until SIGTERM/SIGINT (or sl_broker_shutdown), then drains: stops
   accepting, finishes in-flight requests, syncs. Returns 0 on a clean stop. */
int sl_broker_run(sl_broker *broker);
/* Asks a running broker to stop (thread-safe). */
void sl_broker_shutdown(sl_broker *broker);
void sl_broker_close(sl_broker *broker);

#endif
