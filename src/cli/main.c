/*
 * main.c - the `sluice` command.
 *
 *   sluice broker [options]           run the Kafka-compatible broker
 *   sluice bench produce|consume ...  measure any Kafka broker (bench.c)
 *   sluice groups list|describe|...   administer consumer groups (groups.c)
 *   sluice --help | --version
 *
 * Later subcommands (up, demo) join here; each parses its own options and
 * says what every one of them does under --help.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "broker/broker.h"
#include "cli/cli.h"
#include "common/error.h"
#include "common/log.h"
#include "sluice/sluice.h"

static void usage_main(FILE *out)
{
    fprintf(out,
            "usage: sluice <command> [options]\n"
            "\n"
            "Sluice %s: a Kafka-compatible, durable-by-default event log and the patterns of\n"
            "reliable asynchronous services, in one binary.\n"
            "\n"
            "commands:\n"
            "  broker     run the broker (Kafka wire protocol; every Kafka client works)\n"
            "  bench      measure a Kafka broker (this one or any other): throughput, latency\n"
            "  groups     list, describe, delete consumer groups and reset their offsets (any broker)\n"
            "\n"
            "  sluice <command> --help   explains a command's options\n"
            "  sluice --version          prints the version\n",
            SLUICE_VERSION_STRING);
}

static void usage_broker(FILE *out)
{
    fprintf(out,
            "usage: sluice broker [options]\n"
            "\n"
            "Runs a single-node Kafka-compatible broker. Stop it with SIGTERM or Ctrl-C: it stops\n"
            "accepting, finishes in-flight requests, syncs the logs and exits 0.\n"
            "\n"
            "options:\n"
            "  --data DIR               data directory: one folder per partition, topic metadata\n"
            "                           under DIR/__sluice (default ./data). Only one broker may\n"
            "                           use a directory at a time.\n"
            "  --listen HOST:PORT       address to listen on (default 127.0.0.1:9092; port 0 picks\n"
            "                           a free port, printed in the 'listening on' line)\n"
            "  --advertise HOST:PORT    address clients are told to connect to (default: the\n"
            "                           listen address, 127.0.0.1 when listening on all addresses)\n"
            "  --default-partitions N   partitions of auto-created topics and of CreateTopics\n"
            "                           requests that ask for the default (default 1)\n"
            "  --auto-create on|off     create a topic when a client asks for its metadata, as\n"
            "                           Kafka does (default on)\n"
            "  --flush MODE             when appended data is made durable (default always):\n"
            "                             always       a produce with acks=1/all is answered only\n"
            "                                          after its bytes are fdatasync'ed (group commit:\n"
            "                                          one sync covers every batch appended meanwhile);\n"
            "                                          consumers see only durable data\n"
            "                             interval:MS  sync every MS milliseconds; acks do not wait\n"
            "                             os           never sync explicitly; the kernel writes back\n"
            "  --max-request-bytes N    largest request frame accepted (default 104857600); larger\n"
            "                           ones close the connection\n"
            "  --message-max-bytes N    default max.message.bytes of topics (default 1048588)\n"
            "  --fetch-max-bytes N      largest Fetch response, whatever the client asks for (default\n"
            "                           8388608; a first batch larger than it is still sent whole)\n"
            "  --group-initial-rebalance-delay MS\n"
            "                           how long the first rebalance of an empty consumer group waits\n"
            "                           for more members, extended while they keep joining (default\n"
            "                           3000, Kafka's group.initial.rebalance.delay.ms; 0 = none)\n"
            "  --group-min-session-timeout MS, --group-max-session-timeout MS\n"
            "                           session timeouts consumers may ask for (default 6000 and\n"
            "                           1800000); others get INVALID_SESSION_TIMEOUT\n"
            "  --transaction-max-timeout MS\n"
            "                           largest transaction.timeout.ms a producer may ask for (default\n"
            "                           900000, Kafka's transaction.max.timeout.ms); larger ones get\n"
            "                           INVALID_TRANSACTION_TIMEOUT\n"
            "  --fault-drop-produce-every N\n"
            "                           for tests of clients' retries: drop the connection of every\n"
            "                           Nth produce after its append, before its answer (default 0: off)\n"
            "  --fault-exit-before-markers N\n"
            "                           for crash tests: the process exits at the Nth transaction\n"
            "                           whose end is decided and durable, before its markers\n"
            "                           (default 0: off)\n"
            "  --log-level LEVEL        debug, info, warn or error (default info)\n"
            "  -h, --help               this text\n");
}

static int parse_long(const char *text, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) return SL_EINVAL;
    *out = v;
    return 0;
}

static int bad(const char *opt, const char *value, const char *expect)
{
    fprintf(stderr, "sluice broker: invalid %s '%s': expected %s\n", opt, value, expect);
    return 2;
}

/* The coordinators' options and the test hooks. */
static int parse_coordinator_opt(int c, const char *arg, sl_broker_config *cfg)
{
    long long v;
    switch (c) {
    case 'G':
        if (parse_long(arg, 0, 300000, &v)) return bad("--group-initial-rebalance-delay", arg, "0 to 300000 ms");
        cfg->group_initial_rebalance_delay_ms = (int32_t)v;
        return 0;
    case 's':
        if (parse_long(arg, 1, INT32_MAX, &v)) return bad("--group-min-session-timeout", arg, "1 to 2147483647 ms");
        cfg->group_min_session_timeout_ms = (int32_t)v;
        return 0;
    case 'S':
        if (parse_long(arg, 1, INT32_MAX, &v)) return bad("--group-max-session-timeout", arg, "1 to 2147483647 ms");
        cfg->group_max_session_timeout_ms = (int32_t)v;
        return 0;
    case 'Y':
        if (parse_long(arg, 0, INT32_MAX, &v)) return bad("--fault-exit-before-markers", arg, "a count (0 = off)");
        cfg->fault_exit_before_markers = v;
        return 0;
    case 'T':
        if (parse_long(arg, 1, INT32_MAX, &v)) return bad("--transaction-max-timeout", arg, "1 to 2147483647 ms");
        cfg->transaction_max_timeout_ms = (int32_t)v;
        return 0;
    case 'X':
        if (parse_long(arg, 0, INT32_MAX, &v)) return bad("--fault-drop-produce-every", arg, "a count (0 = off)");
        cfg->fault_drop_produce_every = v;
        return 0;
    }
    return 2;
}

static int parse_broker_opt(int c, const char *arg, sl_broker_config *cfg)
{
    long long v;
    switch (c) {
    case 'd':
        if (strlen(arg) >= sizeof cfg->data_dir) return bad("--data", arg, "a shorter path");
        snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", arg);
        return 0;
    case 'l':
        if (sl_sock_parse_addr(arg, cfg->listen_host, &cfg->listen_port)) return bad("--listen", arg, "HOST:PORT");
        return 0;
    case 'a':
        if (sl_sock_parse_addr(arg, cfg->advertise_host, &cfg->advertise_port) || !cfg->advertise_host[0])
            return bad("--advertise", arg, "HOST:PORT");
        return 0;
    case 'p':
        if (parse_long(arg, 1, 100000, &v)) return bad("--default-partitions", arg, "a number from 1 to 100000");
        cfg->default_partitions = (int32_t)v;
        return 0;
    case 'c':
        if (strcmp(arg, "on") && strcmp(arg, "off")) return bad("--auto-create", arg, "on or off");
        cfg->auto_create = strcmp(arg, "on") == 0;
        return 0;
    case 'f':
        if (sl_broker_parse_flush(arg, &cfg->flush_mode, &cfg->flush_interval_ms))
            return bad("--flush", arg, "always, os or interval:MS");
        return 0;
    case 'r':
        if (parse_long(arg, 1024, 1LL << 30, &v)) return bad("--max-request-bytes", arg, "1024 to 1073741824");
        cfg->request_max_bytes = v;
        return 0;
    case 'm':
        if (parse_long(arg, 1, INT32_MAX, &v)) return bad("--message-max-bytes", arg, "1 to 2147483647");
        cfg->message_max_bytes = (int32_t)v;
        return 0;
    case 'F':
        if (parse_long(arg, 1024, INT32_MAX, &v)) return bad("--fetch-max-bytes", arg, "1024 to 2147483647");
        cfg->fetch_max_bytes = (int32_t)v;
        return 0;
    case 'L': {
        static const char *const names[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (strcmp(arg, names[i]) == 0) {
                sl_logger_set_level((sl_log_level)i);
                return 0;
            }
        return bad("--log-level", arg, "debug, info, warn or error");
    }
    }
    return parse_coordinator_opt(c, arg, cfg);
}

static int cmd_broker(int argc, char **argv, int64_t t_exec_ns)
{
    static const struct option opts[] = {
        {"data", required_argument, NULL, 'd'},          {"listen", required_argument, NULL, 'l'},
        {"advertise", required_argument, NULL, 'a'},     {"default-partitions", required_argument, NULL, 'p'},
        {"auto-create", required_argument, NULL, 'c'},   {"flush", required_argument, NULL, 'f'},
        {"max-request-bytes", required_argument, NULL, 'r'}, {"message-max-bytes", required_argument, NULL, 'm'},
        {"fetch-max-bytes", required_argument, NULL, 'F'}, {"log-level", required_argument, NULL, 'L'},
        {"group-initial-rebalance-delay", required_argument, NULL, 'G'},
        {"group-min-session-timeout", required_argument, NULL, 's'},
        {"group-max-session-timeout", required_argument, NULL, 'S'},
        {"fault-drop-produce-every", required_argument, NULL, 'X'},
        {"transaction-max-timeout", required_argument, NULL, 'T'},
        {"fault-exit-before-markers", required_argument, NULL, 'Y'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    sl_broker_config cfg;
    sl_broker_config_default(&cfg);
    cfg.t_exec_ns = t_exec_ns;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage_broker(stdout);
            return 0;
        }
        if (c == '?') {
            fprintf(stderr, "see 'sluice broker --help'\n");
            return 2;
        }
        int rc = parse_broker_opt(c, optarg, &cfg);
        if (rc) return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "sluice broker: unexpected argument '%s'; see 'sluice broker --help'\n", argv[optind]);
        return 2;
    }
    if (cfg.group_min_session_timeout_ms > cfg.group_max_session_timeout_ms) {
        fprintf(stderr, "sluice broker: --group-min-session-timeout (%d) is above --group-max-session-timeout (%d)\n",
                cfg.group_min_session_timeout_ms, cfg.group_max_session_timeout_ms);
        return 2;
    }
    sl_broker *broker;
    int rc = sl_broker_open(&cfg, &broker);
    if (rc) {
        fprintf(stderr, "sluice broker: could not start (%s); see the log lines above\n", sl_strerror(rc));
        return 1;
    }
    rc = sl_broker_run(broker);
    sl_broker_close(broker);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t t_exec_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage_main(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("sluice %s\n", SLUICE_VERSION_STRING);
        return 0;
    }
    if (strcmp(argv[1], "broker") == 0) return cmd_broker(argc - 1, argv + 1, t_exec_ns);
    if (strcmp(argv[1], "bench") == 0) return sl_cli_bench(argc - 1, argv + 1);
    if (strcmp(argv[1], "groups") == 0) return sl_cli_groups(argc - 1, argv + 1);
    fprintf(stderr, "sluice: unknown command '%s'; see 'sluice --help'\n", argv[1]);
    return 2;
}
