/*
 * sl_limits - measure the physical limits of this machine that a broker
 * chases, so that benchmark figures can be printed as ratios to them.
 *
 *   sl_limits disk --dir DIR [--seconds S] [--json]
 *   sl_limits net [--seconds S] [--json]
 *
 * disk, in a fresh temp file under DIR (deleted afterwards), through the
 * page cache (no O_DIRECT), the way the broker writes:
 *   fsync4k, fsync100  latency of one append (pwrite at the end of the file)
 *                      plus fdatasync, 4 KiB and 100 B. A durable broker
 *                      cannot acknowledge one produce faster than this, so
 *                      fsync4k p50 is its durable latency floor (fsync100 is
 *                      the same at a low rate, when a group is one message).
 *   append_bw          MB/s of G-byte appends each followed by fdatasync, G
 *                      from 4 KiB to 16 MiB. A broker that syncs every group
 *                      of G bytes cannot write faster than append_bw at G:
 *                      its durable bandwidth ceiling.
 *   overwrite_bw       the same over blocks written and synced before, so
 *                      fdatasync has no size or allocation to commit: what
 *                      an appender would get if file metadata were free.
 *   prealloc_bw        the same over a region made with fallocate(2) (what
 *                      a segment preallocated at roll would get); on ext4 or
 *                      xfs the unwritten extents still need a metadata commit.
 * net, over loopback TCP (TCP_NODELAY), one sender and one receiver thread:
 *   tcp_bw             stream MB/s with 1 MiB writes: the ceiling of a
 *                      client and broker on one host.
 *   tcp_rtt            ping-pong of 100-byte messages: the floor of any
 *                      request's latency on loopback.
 *   tcp_small          100-byte messages, one write() each: the syscall limit
 *                      that batching has to amortise.
 *
 * Time is bounded: --seconds (disk default 8, net default 6) is spread over
 * the parts, and every loop checks the clock. Disk loops are also bounded in
 * bytes, and the run refuses to start when DIR has less than twice that free.
 * Output: human lines (on stderr with --json), and with --json one JSON
 * object on stdout at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include "common/hist.h"

#define KIB 1024L
#define MIB (1024L * 1024L)
#define MAX_GROUP (16 * MIB)
#define NGROUPS 7
#define REGION_MAX (256 * MIB)
/* Disk loops stop after this many bytes per second of their time slice, and at most CAP_MAX. */
#define CAP_PER_S (512 * MIB)
#define CAP_MAX (1024 * MIB)
/* Slices of --seconds: fsync4k, fsync100, 6 append, overwrite setup, 6 overwrite, 6 prealloc. */
#define DISK_SLICES 21
#define NET_MSG 100
#define NET_BIG MIB

static const long groups[NGROUPS] = {4 * KIB, 16 * KIB, 64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB};

typedef struct lat_res {
    uint64_t p50, p99, p999, max, count;
    double ops_per_s;
} lat_res;

typedef struct bw_res {
    long group;
    uint64_t ops, p50, p99;
    double secs, mb_per_s;
    int ran;
} bw_res;

typedef struct disk {
    const char *dir;
    const char *fs;
    char fs_hex[32];
    long long free_bytes;
    int fd;
    unsigned char *buf;
    double slice;     /* seconds per part */
    long cap;         /* bytes per part at most */
    long region;      /* the pre-written region of overwrite_bw */
    int falloc_ok, falloc_errno;
    lat_res f4k, f100;
    bw_res app[NGROUPS], ovw[NGROUPS], pre[NGROUPS];
} disk;

typedef struct net_side {
    int fd;
    size_t msg; /* bytes per write() */
    int64_t t0, deadline, t_end;
    uint64_t bytes;
    sl_hist *hist;
    unsigned char *buf;
} net_side;

typedef struct net_res {
    double bw_mb_per_s, small_msgs_per_s;
    lat_res rtt;
} net_res;

static FILE *hout;                /* human lines: stdout, or stderr with --json */
static char g_tmp_path[PATH_MAX]; /* the temp file, unlinked on exit or signal */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cleanup(void)
{
    if (g_tmp_path[0]) unlink(g_tmp_path);
    g_tmp_path[0] = 0;
}

static void on_signal(int sig)
{
    if (g_tmp_path[0]) unlink(g_tmp_path);
    _exit(128 + sig);
}

SL_NORETURN SL_PRINTF(1, 2) static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("sl_limits: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cleanup();
    exit(1);
}

/* "sl_limits: OP WHAT: strerror(errno)" and exit 1. */
SL_NORETURN static void die_sys(const char *op, const char *what)
{
    int e = errno;
    die("%s %s: %s", op, what, strerror(e));
}

static void *alloc_aligned(size_t n)
{
    void *p = NULL;
    int rc = posix_memalign(&p, 4096, n);
    if (rc) die("posix_memalign of %zu bytes: %s", n, strerror(rc));
    return p;
}

/* Pseudo-random bytes, so a compressing or deduplicating filesystem cannot cheat. */
static void fill_random(unsigned char *p, size_t n)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL ^ (uint64_t)now_ns();
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

static lat_res lat_of(const sl_hist *h, double secs)
{
    lat_res r = {.p50 = sl_hist_percentile(h, 50), .p99 = sl_hist_percentile(h, 99),
                 .p999 = sl_hist_percentile(h, 99.9), .max = h->max, .count = h->total};
    r.ops_per_s = secs > 0 ? (double)h->total / secs : 0;
    return r;
}

static void print_lat(const char *what, const lat_res *r, const char *unit)
{
    fprintf(hout,
            "%s: p50 %" PRIu64 " us, p99 %" PRIu64 " us, p99.9 %" PRIu64 " us, max %" PRIu64 " us, %.0f %s (%" PRIu64
            ")\n",
            what, r->p50, r->p99, r->p999, r->max, r->ops_per_s, unit, r->count);
}

/* ---- disk ---- */

static void pwrite_full(disk *d, const unsigned char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(d->fd, p, n, off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) die_sys("pwrite", g_tmp_path);
        if (w == 0) die("pwrite %s: wrote 0 bytes of %zu", g_tmp_path, n);
        p += w;
        n -= (size_t)w;
        off += w;
    }
}

static void dsync(disk *d)
{
    if (fdatasync(d->fd) != 0) die_sys("fdatasync", g_tmp_path);
}

/* Empties the file and makes that durable, so each part starts from nothing. */
static void reset_file(disk *d)
{
    if (ftruncate(d->fd, 0) != 0) die_sys("ftruncate", g_tmp_path);
    dsync(d);
}

static int64_t slice_ns(const disk *d) { return (int64_t)(d->slice * 1e9); }

/* fsync4k / fsync100: append `size` bytes, fdatasync, one latency each. */
static void run_sync_lat(disk *d, lat_res *r, size_t size, const char *name)
{
    static sl_hist h;
    sl_hist_init(&h);
    reset_file(d);
    off_t off = 0;
    int64_t t0 = now_ns(), deadline = t0 + slice_ns(d);
    while (now_ns() < deadline && off + (off_t)size <= d->cap) {
        int64_t a = now_ns();
        pwrite_full(d, d->buf, size, off);
        dsync(d);
        sl_hist_record(&h, (uint64_t)(now_ns() - a) / 1000);
        off += (off_t)size;
    }
    *r = lat_of(&h, (double)(now_ns() - t0) / 1e9);
    char what[64];
    snprintf(what, sizeof what, "disk %s", name);
    print_lat(what, r, "ops/s");
}

/*
 * One bandwidth point: pwrite G bytes at `off`, fdatasync, advance, for one
 * slice. Past `limit` it wraps to 0 (overwrite) or stops (append, prealloc).
 */
static void run_group(disk *d, bw_res *r, long g, off_t limit, int wrap)
{
    static sl_hist h;
    sl_hist_init(&h);
    off_t off = 0;
    uint64_t bytes = 0;
    int64_t t0 = now_ns(), deadline = t0 + slice_ns(d);
    while (now_ns() < deadline) {
        if (off + g > limit) {
            if (!wrap || limit < g) break;
            off = 0;
        }
        int64_t a = now_ns();
        pwrite_full(d, d->buf, (size_t)g, off);
        dsync(d);
        sl_hist_record(&h, (uint64_t)(now_ns() - a) / 1000);
        off += g;
        bytes += (uint64_t)g;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    *r = (bw_res){.group = g, .ops = h.total, .p50 = sl_hist_percentile(&h, 50), .p99 = sl_hist_percentile(&h, 99),
                  .secs = secs, .mb_per_s = secs > 0 ? (double)bytes / 1e6 / secs : 0, .ran = 1};
}

static void print_bw(const char *name, const bw_res *r)
{
    char g[32];
    if (r->group >= MIB) snprintf(g, sizeof g, "%ld MiB", r->group / MIB);
    else snprintf(g, sizeof g, "%ld KiB", r->group / KIB);
    fprintf(hout, "disk %s %s: %.1f MB/s, sync p50 %" PRIu64 " us, p99 %" PRIu64 " us (%" PRIu64 " syncs in %.2f s)\n",
            name, g, r->mb_per_s, r->p50, r->p99, r->ops, r->secs);
}

static void run_append(disk *d)
{
    for (int i = 0; i < NGROUPS; i++) {
        reset_file(d);
        run_group(d, &d->app[i], groups[i], d->cap, 0);
        print_bw("append_bw", &d->app[i]);
    }
}

/*
 * Writes and syncs the region that overwrite_bw rewrites: up to 256 MiB,
 * less when the part's byte cap is smaller or its slice runs out (at least
 * one largest group). Synced every 16 MiB so the clock check means something.
 */
static long prepare_region(disk *d)
{
    reset_file(d);
    long target = SL_MIN(REGION_MAX, d->cap), off = 0;
    int64_t t0 = now_ns(), deadline = t0 + slice_ns(d);
    while (off < target && (off < MAX_GROUP || now_ns() < deadline)) {
        pwrite_full(d, d->buf, MAX_GROUP, off);
        off += MAX_GROUP;
        if (off % (16 * MIB) == 0) dsync(d);
    }
    dsync(d);
    fprintf(hout, "disk overwrite_bw: wrote and synced a %ld MiB region in %.2f s\n", off / MIB,
            (double)(now_ns() - t0) / 1e9);
    return off;
}

static void run_overwrite(disk *d)
{
    d->region = prepare_region(d);
    for (int i = 0; i < NGROUPS; i++) {
        run_group(d, &d->ovw[i], groups[i], d->region, 1);
        print_bw("overwrite_bw", &d->ovw[i]);
    }
}

/* Each group size gets a fresh fallocated region (synced), written once in order. */
static void run_prealloc(disk *d)
{
    d->falloc_ok = 1;
    for (int i = 0; i < NGROUPS; i++) {
        reset_file(d);
        if (fallocate(d->fd, 0, 0, d->cap) != 0) {
            if (errno != EOPNOTSUPP && errno != ENOSYS) die_sys("fallocate", g_tmp_path);
            d->falloc_ok = 0;
            d->falloc_errno = errno;
            fprintf(hout, "disk prealloc_bw: fallocate is not supported here (errno %d, %s); skipped\n", errno,
                    strerror(errno));
            return;
        }
        dsync(d);
        run_group(d, &d->pre[i], groups[i], d->cap, 0);
        print_bw("prealloc_bw", &d->pre[i]);
    }
    fprintf(hout, "disk fallocate: supported\n");
}

static const char *fs_name(unsigned long t)
{
    switch (t) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlay";
    case 0x2FC12FC1: return "zfs";
    case 0xF2F52010: return "f2fs";
    case 0x6969: return "nfs";
    case 0x65735546: return "fuse";
    default: return NULL;
    }
}

/* Bytes the disk parts write at most (each loop is capped at d->cap bytes). */
static long long disk_plan_bytes(const disk *d)
{
    return (long long)d->cap * (2 + NGROUPS + NGROUPS) + SL_MIN(REGION_MAX, d->cap);
}

static void disk_check_fs(disk *d)
{
    struct stat st;
    if (stat(d->dir, &st) != 0) die_sys("stat", d->dir);
    if (!S_ISDIR(st.st_mode)) die("%s is not a directory", d->dir);
    struct statfs sf;
    if (statfs(d->dir, &sf) != 0) die_sys("statfs", d->dir);
    unsigned long type = (uint32_t)sf.f_type; /* magics are 32-bit; no sign extension */
    d->fs = fs_name(type);
    snprintf(d->fs_hex, sizeof d->fs_hex, "0x%lx", type);
    if (!d->fs) d->fs = d->fs_hex;
    long long unit = sf.f_frsize ? (long long)sf.f_frsize : (long long)sf.f_bsize;
    d->free_bytes = (long long)sf.f_bavail * unit;
    long long need = 2 * disk_plan_bytes(d);
    fprintf(hout, "disk dir: %s on %s, %.1f GB free (this run writes up to %.2f GB)\n", d->dir, d->fs,
            (double)d->free_bytes / 1e9, (double)disk_plan_bytes(d) / 1e9);
    if (d->free_bytes < need)
        die("%s has %.2f GB free but this run needs %.2f GB (twice what it writes); free some space or use a "
            "smaller --seconds", d->dir, (double)d->free_bytes / 1e9, (double)need / 1e9);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void json_lat(const char *key, const lat_res *r, const char *rate_key)
{
    printf("\"%s\":{\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64
           ",\"count\":%" PRIu64 ",\"%s\":%.0f}",
           key, r->p50, r->p99, r->p999, r->max, r->count, rate_key, r->ops_per_s);
}

static void json_bw(const char *key, const bw_res *rs)
{
    printf(",\"%s\":[", key);
    int first = 1;
    for (int i = 0; i < NGROUPS; i++) {
        const bw_res *r = &rs[i];
        if (!r->ran) continue;
        printf("%s{\"group_bytes\":%ld,\"mb_per_s\":%.2f,\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
               ",\"syncs\":%" PRIu64 ",\"seconds\":%.3f}",
               first ? "" : ",", r->group, r->mb_per_s, r->p50, r->p99, r->ops, r->secs);
        first = 0;
    }
    printf("]");
}

static void disk_json(const disk *d)
{
    printf("{\"kind\":\"disk\",\"dir\":");
    json_str(d->dir);
    printf(",\"fs\":");
    json_str(d->fs);
    printf(",\"fs_magic\":\"%s\",\"free_bytes\":%lld,\"seconds_per_part\":%.3f,\"overwrite_region_bytes\":%ld,",
           d->fs_hex, d->free_bytes, d->slice, d->region);
    json_lat("fsync4k", &d->f4k, "ops_per_s");
    printf(",");
    json_lat("fsync100", &d->f100, "ops_per_s");
    json_bw("append_bw", d->app);
    json_bw("overwrite_bw", d->ovw);
    json_bw("prealloc_bw", d->pre);
    printf(",\"fallocate\":%s", d->falloc_ok ? "true" : "false");
    if (!d->falloc_ok)
        printf(",\"fallocate_errno\":%d,\"fallocate_error\":\"%s\"", d->falloc_errno, strerror(d->falloc_errno));
    printf("}\n");
}

/* Creates the temp file (O_RDWR|O_CREAT|O_EXCL via mkstemp) and arms its removal on SIGINT/TERM/HUP/PIPE. */
static void disk_open(disk *d)
{
    char tmpl[PATH_MAX];
    int n = snprintf(tmpl, sizeof tmpl, "%s/sl_limits.XXXXXX", d->dir);
    if (n < 0 || (size_t)n >= sizeof tmpl) die("directory name too long: %s", d->dir);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE}; /* SIGPIPE: stdout piped into `head` */
    for (size_t i = 0; i < SL_ARRAY_LEN(sigs); i++)
        if (sigaction(sigs[i], &sa, NULL) != 0) die_sys("sigaction", "for cleanup");
    sigset_t block, old;
    sigemptyset(&block);
    for (size_t i = 0; i < SL_ARRAY_LEN(sigs); i++) sigaddset(&block, sigs[i]);
    /* No signal between creating the file and knowing its name. */
    if (sigprocmask(SIG_BLOCK, &block, &old) != 0) die_sys("sigprocmask", "block");
    d->fd = mkstemp(tmpl);
    if (d->fd < 0) die_sys("create temp file", tmpl);
    memcpy(g_tmp_path, tmpl, (size_t)n + 1);
    if (sigprocmask(SIG_SETMASK, &old, NULL) != 0) die_sys("sigprocmask", "restore");
}

static int run_disk(const char *dir, double seconds, int json)
{
    static disk d;
    static char real[PATH_MAX];
    d.dir = realpath(dir, real) ? real : dir; /* absolute in the report; a bad dir fails in disk_check_fs */
    d.slice = seconds / DISK_SLICES;
    long cap = (long)(SL_MIN(d.slice * (double)CAP_PER_S, (double)CAP_MAX)) / MAX_GROUP * MAX_GROUP;
    d.cap = SL_MAX(cap, 4 * MAX_GROUP);
    disk_check_fs(&d);
    disk_open(&d);
    d.buf = alloc_aligned(MAX_GROUP);
    fill_random(d.buf, MAX_GROUP);
    int64_t t0 = now_ns();
    run_sync_lat(&d, &d.f4k, 4096, "fsync4k");
    run_sync_lat(&d, &d.f100, 100, "fsync100");
    run_append(&d);
    run_overwrite(&d);
    run_prealloc(&d);
    if (close(d.fd) != 0) die_sys("close", g_tmp_path);
    if (unlink(g_tmp_path) != 0) die_sys("unlink", g_tmp_path);
    g_tmp_path[0] = 0;
    fprintf(hout, "disk total: %.1f s\n", (double)(now_ns() - t0) / 1e9);
    if (json) disk_json(&d);
    free(d.buf);
    return 0;
}

/* ---- net ---- */

static void write_full(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) die_sys("write", "to loopback socket");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads exactly n bytes; returns 0 on a clean EOF before the first byte, else n. */
static size_t read_full(int fd, unsigned char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die_sys("read", "from loopback socket");
        if (r == 0) {
            if (got == 0) return 0;
            die("read from loopback socket: EOF after %zu of %zu bytes", got, n);
        }
        got += (size_t)r;
    }
    return n;
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die_sys("setsockopt", "TCP_NODELAY");
}

/* A connected TCP pair on 127.0.0.1 (kernel-chosen port), both TCP_NODELAY. */
static void tcp_pair(int *snd, int *rcv)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) die_sys("socket", "AF_INET");
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) != 0) die_sys("bind", "127.0.0.1:0");
    if (listen(ls, 1) != 0) die_sys("listen", "127.0.0.1");
    if (getsockname(ls, (struct sockaddr *)&a, &len) != 0) die_sys("getsockname", "listener");
    *snd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*snd < 0) die_sys("socket", "AF_INET");
    if (connect(*snd, (struct sockaddr *)&a, sizeof a) != 0) die_sys("connect", "127.0.0.1");
    *rcv = accept(ls, NULL, NULL);
    if (*rcv < 0) die_sys("accept", "127.0.0.1");
    if (close(ls) != 0) die_sys("close", "listener");
    set_nodelay(*snd);
    set_nodelay(*rcv);
}

static void end_stream(net_side *s)
{
    if (shutdown(s->fd, SHUT_WR) != 0) die_sys("shutdown", "loopback socket");
}

/* Sender of tcp_bw and tcp_small: writes of `msg` bytes until the deadline, one write() each. */
static void *stream_send(void *arg)
{
    net_side *s = arg;
    size_t msg = s->msg;
    int batch = msg < 64 * KIB ? 64 : 1; /* small writes: one clock read per 64 */
    while (now_ns() < s->deadline) {
        for (int i = 0; i < batch; i++) write_full(s->fd, s->buf, msg);
        s->bytes += (uint64_t)batch * msg;
    }
    end_stream(s);
    return NULL;
}

/* Receiver of tcp_bw and tcp_small: counts bytes until EOF. */
static void *stream_recv(void *arg)
{
    net_side *r = arg;
    for (;;) {
        ssize_t n = read(r->fd, r->buf, NET_BIG);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die_sys("read", "from loopback socket");
        if (n == 0) break;
        r->bytes += (uint64_t)n;
    }
    r->t_end = now_ns();
    return NULL;
}

/* Sender of tcp_rtt: send 100 bytes, wait for the 100-byte echo, record the round trip. */
static void *ping_send(void *arg)
{
    net_side *s = arg;
    while (now_ns() < s->deadline) {
        int64_t a = now_ns();
        write_full(s->fd, s->buf, NET_MSG);
        if (read_full(s->fd, s->buf, NET_MSG) == 0) die("read from loopback socket: unexpected EOF");
        sl_hist_record(s->hist, (uint64_t)(now_ns() - a) / 1000);
    }
    s->t_end = now_ns();
    end_stream(s);
    return NULL;
}

static void *ping_echo(void *arg)
{
    net_side *r = arg;
    while (read_full(r->fd, r->buf, NET_MSG) == NET_MSG) write_full(r->fd, r->buf, NET_MSG);
    return NULL;
}

/*
 * Runs one loopback test: a fresh connection, `send` in one thread and `recv`
 * in another for `secs`, then joins both and closes the connection.
 */
static void run_pair(void *(*send)(void *), void *(*recv)(void *), net_side *s, net_side *r, size_t msg,
                     double secs)
{
    tcp_pair(&s->fd, &r->fd);
    s->msg = r->msg = msg;
    s->t0 = r->t0 = now_ns();
    s->deadline = r->deadline = s->t0 + (int64_t)(secs * 1e9);
    s->bytes = r->bytes = 0;
    pthread_t ts, tr;
    int rc = pthread_create(&tr, NULL, recv, r);
    if (rc) die("pthread_create: %s", strerror(rc));
    rc = pthread_create(&ts, NULL, send, s);
    if (rc) die("pthread_create: %s", strerror(rc));
    if ((rc = pthread_join(ts, NULL)) != 0) die("pthread_join: %s", strerror(rc));
    if ((rc = pthread_join(tr, NULL)) != 0) die("pthread_join: %s", strerror(rc));
    if (close(s->fd) != 0) die_sys("close", "loopback socket");
    if (close(r->fd) != 0) die_sys("close", "loopback socket");
}

static void net_json(const net_res *n)
{
    printf("{\"kind\":\"net\",\"tcp_bw\":{\"mb_per_s\":%.1f,\"gb_per_s\":%.3f},", n->bw_mb_per_s,
           n->bw_mb_per_s / 1000);
    json_lat("tcp_rtt", &n->rtt, "rtt_per_s");
    printf(",\"tcp_small\":{\"msgs_per_s\":%.0f,\"mb_per_s\":%.1f}}\n", n->small_msgs_per_s,
           n->small_msgs_per_s * NET_MSG / 1e6);
}

static int run_net(double seconds, int json)
{
    static sl_hist h;
    net_side s = {0}, r = {0};
    net_res n = {0};
    double part = seconds / 3;
    s.buf = alloc_aligned(NET_BIG);
    r.buf = alloc_aligned(NET_BIG);
    fill_random(s.buf, NET_BIG);
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) die_sys("signal", "SIGPIPE");

    run_pair(stream_send, stream_recv, &s, &r, NET_BIG, part);
    double secs = (double)(r.t_end - r.t0) / 1e9;
    n.bw_mb_per_s = secs > 0 ? (double)r.bytes / 1e6 / secs : 0;
    fprintf(hout, "net tcp_bw: %.0f MB/s (%.2f GB/s), 1 MiB writes, %.2f s\n", n.bw_mb_per_s, n.bw_mb_per_s / 1000,
            secs);

    sl_hist_init(&h);
    s.hist = &h;
    run_pair(ping_send, ping_echo, &s, &r, NET_MSG, part);
    n.rtt = lat_of(&h, (double)(s.t_end - s.t0) / 1e9);
    print_lat("net tcp_rtt", &n.rtt, "round trips/s");

    run_pair(stream_send, stream_recv, &s, &r, NET_MSG, part);
    secs = (double)(r.t_end - r.t0) / 1e9;
    n.small_msgs_per_s = secs > 0 ? (double)(r.bytes / NET_MSG) / secs : 0;
    fprintf(hout, "net tcp_small: %.0f msgs/s (%.1f MB/s), one write() per 100 B message, %.2f s\n",
            n.small_msgs_per_s, n.small_msgs_per_s * NET_MSG / 1e6, secs);
    if (r.bytes != s.bytes) die("tcp_small: sent %" PRIu64 " bytes but received %" PRIu64, s.bytes, r.bytes);
    if (json) net_json(&n);
    free(s.buf);
    free(r.buf);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: sl_limits disk --dir DIR [--seconds S] [--json]   (default 8 s)\n"
                    "       sl_limits net [--seconds S] [--json]              (default 6 s)\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"dir", 1, 0, 'D'}, {"seconds", 1, 0, 's'}, {"json", 0, 0, 'j'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    if (argc < 2 || (strcmp(argv[1], "disk") && strcmp(argv[1], "net"))) {
        usage();
        return 2;
    }
    int is_disk = strcmp(argv[1], "disk") == 0, json = 0, c;
    const char *dir = NULL;
    double seconds = is_disk ? 8 : 6;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'D': dir = optarg; break;
        case 's':
            errno = 0;
            seconds = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(seconds >= 0.1 && seconds <= 3600))
                die("bad --seconds '%s' (want 0.1 to 3600)", optarg);
            break;
        case 'j': json = 1; break;
        default: usage(); return 2;
        }
    }
    if (optind < argc) die("unexpected argument '%s'", argv[optind]);
    if (is_disk && !dir) die("disk needs --dir DIR (a directory on the filesystem to measure)");
    if (!is_disk && dir) die("--dir is for disk only");
    hout = json ? stderr : stdout;
    if (setvbuf(stdout, NULL, _IOLBF, 0) != 0) die("setvbuf: cannot line-buffer stdout");
    return is_disk ? run_disk(dir, seconds, json) : run_net(seconds, json);
}
