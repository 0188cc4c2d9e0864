/*
 * fuzz_broker.c - whole requests through the whole broker.
 *
 * One in-process broker (data in a temp dir, --flush os, topics capped at 8
 * partitions, 1 MiB frames) lives for the whole run. Each input is written
 * into a fresh connection (a socketpair handed to the broker as if
 * accepted) and half-closed; the loop turns until the broker has answered
 * and closed it, then the input side hangs up so parked fetches go too.
 * Inputs may hold several frames: the corpus seeds are sequences of valid
 * requests (create a topic, produce a valid batch, fetch it, list offsets,
 * describe configs, delete it; join, sync, heartbeat, commit, fetch offsets,
 * describe, list, leave and delete groups) for the fuzzer to mutate. Must never crash,
 * hang, leak or read out of bounds: the handlers, not only the codecs, meet
 * hostile values here (negative counts, huge partition numbers, null names).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "broker/broker_int.h"
#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sl_broker *broker;
static char dir[] = "/tmp/sluice-fuzz-broker.XXXXXX";

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    sl_broker_close(broker);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    if (!mkdtemp(dir)) abort();
    atexit(teardown);
    sl_broker_config cfg;
    sl_broker_config_default(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s/data", dir);
    cfg.listen_port = 0;
    cfg.handle_signals = false;
    cfg.flush_mode = SL_FLUSH_OS;
    cfg.partitions_max = 8;
    cfg.request_max_bytes = 1 << 20;
    cfg.group_initial_rebalance_delay_ms = 0; /* rebalances complete within an input */
    sl_logger_set_level(getenv("SL_FUZZ_LOG") ? SL_LOG_DEBUG : SL_LOG_OFF);
    if (sl_broker_open(&cfg, &broker) != 0) abort();
}

static void drain(int fd)
{
    uint8_t buf[65536];
    while (read(fd, buf, sizeof buf) > 0) {
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!broker) setup();
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
    int bufsize = 1 << 21;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsize, sizeof bufsize);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &bufsize, sizeof bufsize);
    if (sl__conn_accept(broker, sv[0], "fuzz") != 0) abort();
    size_t off = 0;
    for (int turn = 0; turn < 200 && broker->nconns > 0; turn++) {
        if (off < size) {
            ssize_t n = write(sv[1], data + off, size - off);
            if (n > 0) off += (size_t)n;
            if (off == size) shutdown(sv[1], SHUT_WR);
        } else if (size == 0 && turn == 0) {
            shutdown(sv[1], SHUT_WR);
        }
        sl_loop_run_once(broker->loop, 0);
        drain(sv[1]);
    }
    close(sv[1]); /* a parked fetch or an unfinished frame: hang up */
    for (int turn = 0; turn < 10 && broker->nconns > 0; turn++) sl_loop_run_once(broker->loop, 1);
    if (broker->nconns != 0) abort(); /* the connection must be gone */
    return 0;
}
