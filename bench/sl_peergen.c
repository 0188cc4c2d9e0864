/*
 * sl_peergen - a load generator for the peer systems we benchmark Sluice
 * against: Redis Streams and NATS JetStream. The sibling of `sluice bench`.
 *
 *   sl_peergen redis|nats --addr HOST:PORT [--size B] [--count N] [--seconds S]
 *              [--rate MSGS_PER_S] [--window N] [--connections N] [--stream S] [--json]
 *
 * No client library (none is packaged for C), so it speaks RESP2 and the NATS
 * text protocol itself over TCP. Each connection is one thread with its own
 * non-blocking socket and one ppoll() loop that does everything: while fewer
 * than --window messages are unacknowledged (and --rate allows), it appends
 * commands to one large output buffer and hands it to the kernel with one
 * send(); it reads replies with large reads into an input buffer and parses
 * them incrementally: a reply cut by the end of a read stays in the buffer,
 * untouched, until the rest arrives. Copying each command into the buffer
 * (rather than a writev over the payload) keeps partial sends trivial; the
 * copy costs far less than the server spends storing the message.
 *
 * redis: XADD <stream> * v <payload>, pipelined; a connection's replies come
 * in command order, so the n-th reply answers message n. nats: JetStream
 * async publish, PUB peergen _INBOX.<id>.<seq>; the stream acks on that
 * reply subject, which names the message. Either way a message's send time
 * waits in a ring indexed by its sequence number, and latency = ack time -
 * send time (CLOCK_MONOTONIC) in microseconds, in a per-thread sl_hist merged
 * at the end. Throughput = acked / (last ack - first send).
 *
 * Setup and check use a separate short connection: Redis DEL before, XLEN
 * after; NATS deletes and recreates stream PEERGEN before and reads its
 * state.messages after. A stored count that differs from the acked count is
 * reported as a warning (it would mean acks counted for nothing, or lost).
 *
 * Bounds: --count (default 1,000,000; with --seconds alone, the duration
 * rules), --seconds, and 30 s without an ack while messages are outstanding
 * fails. Output is the same as `sluice bench`: one human line, with --json one JSON object.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "common/hist.h"

enum { SYS_REDIS, SYS_NATS };

#define IN_CAP     (256 * 1024)      /* replies are small: this holds thousands of them */
#define OUT_MIN    (4 * 1024 * 1024) /* one send() carries up to this much */
#define RESERVE    64                /* output room kept free for a PONG the server may ask for */
#define STALL_NS   30000000000LL     /* no ack for this long while messages are out: fail */
#define SETUP_NS   10000000000LL     /* setup requests (DEL, stream create, ...) must answer within this */
#define MAX_WINDOW 65536
#define NATS_CONNECT                                                                                                   \
    "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\nPING\r\n"
#define NATS_STREAM                                                                                                    \
    "{\"name\":\"PEERGEN\",\"subjects\":[\"peergen\"],\"storage\":\"file\",\"retention\":\"limits\","                  \
    "\"discard\":\"old\",\"max_msgs\":-1,\"max_bytes\":-1,\"num_replicas\":1}"

typedef struct opts {
    int system;
    const char *addr, *stream;
    long size, count, window, connections;
    double seconds, rate;
    int count_set, json;
} opts;

/* A message in flight: seq 0 marks a free slot. */
typedef struct slot {
    uint64_t seq;
    int64_t t_sent;
} slot;

typedef struct conn {
    const opts *o;
    int id, fd;
    pthread_t thread;
    char *in, *out;
    size_t in_len, out_off, out_len, out_cap, msg_max;
    char *cmd; /* redis: the XADD command, byte-identical for every message */
    size_t cmd_len;
    char inbox[32]; /* nats: _INBOX.<16 hex digits>, this connection's reply subjects */
    size_t inbox_len;
    slot *ring;
    uint64_t mask;
    long quota, sent, acked, failed; /* quota -1: no count, only --seconds */
    int64_t t_start, t_first, t_last, t_progress;
    sl_hist hist;
} conn;

/* A parsed NATS protocol message; pointers into the input buffer. */
enum { N_MSG, N_PING, N_PONG, N_OK, N_ERR, N_INFO, N_OTHER };
typedef struct nmsg {
    int op;
    const char *line, *subject, *hdr, *body;
    size_t line_len, subject_len, hdr_len, body_len;
} nmsg;

static char *payload; /* --size printable bytes, shared read-only by every thread */
static pthread_barrier_t start_line;
static pthread_mutex_t die_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_flag failure_told = ATOMIC_FLAG_INIT;

static SL_NORETURN void die(const char *fmt, ...) SL_PRINTF(1, 2);

/* The first thread to fail reports and exits; any other that fails meanwhile waits here for the exit. */
static void die(const char *fmt, ...)
{
    pthread_mutex_lock(&die_lock);
    va_list ap;
    va_start(ap, fmt);
    fputs("sl_peergen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) die("clock_gettime: %s", strerror(errno));
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Failed messages are counted; only the first failure's text is shown, so a broken run does not flood. */
static void tell_failure_once(const char *what, const char *p, size_t n)
{
    if (atomic_flag_test_and_set(&failure_told)) return;
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n')) n--;
    fprintf(stderr, "sl_peergen: %s: %.*s\n", what, (int)SL_MIN(n, 300), p);
}

/* ---- sockets ---------------------------------------------------------------------------------------------- */

static int dial(const char *addr)
{
    char host[256], port[32];
    const char *colon = strrchr(addr, ':'), *h = addr;
    size_t hl = colon ? (size_t)(colon - addr) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') h++, hl -= 2; /* [::1]:4222 */
    if (!colon || !hl || hl >= sizeof host || !colon[1] || strlen(colon + 1) >= sizeof port)
        die("bad --addr %s (want HOST:PORT)", addr);
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) die("resolve %s: %s", addr, gai_strerror(rc));
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
            err = errno;
            (void)close(fd); /* the connect error is the one worth reporting */
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) die("connect %s: %s", addr, strerror(err));
    int one = 1, fl;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY: %s", strerror(errno));
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        die("O_NONBLOCK: %s", strerror(errno));
    return fd;
}

/* Sends as much of the output buffer as the socket takes now; the rest waits for POLLOUT. */
static void flush_out(conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            die("send to %s: %s", c->o->addr, strerror(errno));
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    } else if (c->out_off > c->out_cap / 2) { /* make room at the end again */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
}

static void queue_out(conn *c, const char *p, size_t n)
{
    if (n > c->out_cap - c->out_len) die("internal: output buffer overrun (%zu bytes)", n);
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* One large read; false if there was nothing to read. End of stream and errors are fatal. */
static bool read_some(conn *c)
{
    if (c->in_len == IN_CAP) die("%s: a reply does not fit %d bytes", c->o->addr, IN_CAP);
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return true;
        }
        if (n == 0) die("%s: connection closed by the server", c->o->addr);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        die("read %s: %s", c->o->addr, strerror(errno));
    }
}

static void consume_in(conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Waits for events on the socket until the monotonic time `until`; the revents, 0 on timeout. */
static int wait_fd(conn *c, short events, int64_t until)
{
    struct pollfd p = {.fd = c->fd, .events = events};
    int64_t left = until - now_ns();
    if (left < 0) left = 0;
    struct timespec ts = {.tv_sec = (time_t)(left / 1000000000), .tv_nsec = (long)(left % 1000000000)};
    int n = ppoll(&p, 1, &ts, NULL);
    if (n < 0 && errno != EINTR) die("poll: %s", strerror(errno));
    return n > 0 ? p.revents : 0;
}

/* Setup traffic: send it all now (bounded wait), since nothing else is in flight. */
static void send_all(conn *c, const char *p, size_t n, const char *what)
{
    queue_out(c, p, n);
    int64_t until = now_ns() + SETUP_NS;
    for (flush_out(c); c->out_len; flush_out(c))
        if (!wait_fd(c, POLLOUT, until)) die("%s: %s does not take data", what, c->o->addr);
}

/* Setup traffic: wait (bounded) for more input. */
static void read_more(conn *c, int64_t until, const char *what)
{
    while (!(wait_fd(c, POLLIN, until) && read_some(c)))
        if (now_ns() >= until) die("%s: no answer from %s within %lld s", what, c->o->addr, SETUP_NS / 1000000000);
}

static conn *conn_new(const opts *o, int id)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) die("out of memory");
    c->o = o;
    c->id = id;
    c->fd = -1;
    c->out_cap = SL_MAX((size_t)OUT_MIN, 2 * ((size_t)o->size + 512) + RESERVE);
    c->in = malloc(IN_CAP);
    c->out = malloc(c->out_cap);
    if (!c->in || !c->out) die("out of memory");
    sl_hist_init(&c->hist);
    return c;
}

static void conn_free(conn *c)
{
    if (c->fd >= 0 && close(c->fd) != 0) die("close: %s", strerror(errno));
    free(c->in);
    free(c->out);
    free(c->cmd);
    free(c->ring);
    free(c);
}

/* ---- Redis (RESP2) --------------------------------------------------------------------------------------- */

/* A decimal integer that fills [p, end) exactly. */
static bool parse_i64(const char *p, const char *end, int64_t *out)
{
    bool neg = p < end && *p == '-';
    if (neg) p++;
    if (p == end || end - p > 18) return false;
    int64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return false;
        v = v * 10 + (*p - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* The length of the complete reply at p[0..n), 0 if it is not all there yet, -1 if it is not RESP2. */
static long resp_len(const char *p, size_t n, int depth)
{
    const char *cr = n ? memchr(p, '\r', n) : NULL;
    if (!cr || cr + 1 == p + n) return 0;
    if (cr[1] != '\n' || depth > 8) return -1;
    size_t head = (size_t)(cr - p) + 2, off = head;
    int64_t v;
    switch (p[0]) {
    case '+':
    case '-':
    case ':': return (long)head;
    case '$':
        if (!parse_i64(p + 1, cr, &v) || v > (512 << 20)) return -1;
        if (v < 0) return (long)head; /* null bulk string */
        if (n < head + (size_t)v + 2) return 0;
        off = head + (size_t)v;
        return p[off] == '\r' && p[off + 1] == '\n' ? (long)(off + 2) : -1;
    case '*':
        if (!parse_i64(p + 1, cr, &v) || v > 1000000) return -1;
        for (int64_t i = 0; i < v; i++) {
            long k = resp_len(p + off, n - off, depth + 1);
            if (k <= 0) return k;
            off += (size_t)k;
        }
        return (long)off;
    default: return -1;
    }
}

/* One RESP command array into buf; its length, or 0 if it does not fit cap. */
static size_t resp_cmd(char *buf, size_t cap, int argc, const char *const *argv, const size_t *lens)
{
    int k = snprintf(buf, cap, "*%d\r\n", argc);
    if (k < 0 || (size_t)k >= cap) return 0;
    size_t n = (size_t)k;
    for (int i = 0; i < argc; i++) {
        k = snprintf(buf + n, cap - n, "$%zu\r\n", lens[i]);
        if (k < 0 || (size_t)k >= cap - n || cap - n - (size_t)k < lens[i] + 2) return 0;
        n += (size_t)k;
        memcpy(buf + n, argv[i], lens[i]);
        n += lens[i];
        memcpy(buf + n, "\r\n", 2);
        n += 2;
    }
    return n;
}

/* A setup command: sends it, waits for its reply and returns the reply's first line, NUL-terminated. */
static void redis_call(conn *c, int argc, const char *const *argv, char *line, size_t cap)
{
    char cmd[1024];
    size_t lens[8];
    for (int i = 0; i < argc && i < 8; i++) lens[i] = strlen(argv[i]);
    size_t n = argc <= 8 ? resp_cmd(cmd, sizeof cmd, argc, argv, lens) : 0;
    if (!n) die("%s: command too long", argv[0]);
    send_all(c, cmd, n, argv[0]);
    int64_t until = now_ns() + SETUP_NS;
    long r;
    while ((r = resp_len(c->in, c->in_len, 0)) == 0) read_more(c, until, argv[0]);
    if (r < 0) die("%s: %s does not answer in RESP (is it a Redis server?)", argv[0], c->o->addr);
    const char *cr = memchr(c->in, '\r', (size_t)r);
    size_t l = SL_MIN((size_t)(cr - c->in), cap - 1);
    memcpy(line, c->in, l);
    line[l] = '\0';
    consume_in(c, (size_t)r);
}

/* The XADD command every message repeats, built once per connection. */
static void redis_open(conn *c)
{
    const opts *o = c->o;
    const char *argv[] = {"XADD", o->stream, "*", "v", payload};
    size_t lens[] = {4, strlen(o->stream), 1, 1, (size_t)o->size};
    size_t cap = (size_t)o->size + lens[1] + 128;
    if (!(c->cmd = malloc(cap))) die("out of memory");
    c->cmd_len = c->msg_max = resp_cmd(c->cmd, cap, 5, argv, lens);
    if (!c->cmd_len) die("internal: XADD command does not fit");
}

static void redis_prepare(const opts *o)
{
    conn *c = conn_new(o, -1);
    c->fd = dial(o->addr);
    char line[512];
    redis_call(c, 2, (const char *const[]){"DEL", o->stream}, line, sizeof line);
    if (line[0] != ':') die("DEL %s: %s", o->stream, line);
    conn_free(c);
}

static long redis_stored(const opts *o)
{
    conn *c = conn_new(o, -1);
    c->fd = dial(o->addr);
    char line[512];
    int64_t n;
    redis_call(c, 2, (const char *const[]){"XLEN", o->stream}, line, sizeof line);
    if (line[0] != ':' || !parse_i64(line + 1, line + strlen(line), &n)) die("XLEN %s: %s", o->stream, line);
    conn_free(c);
    return (long)n;
}

/* ---- NATS ------------------------------------------------------------------------------------------------ */

/* Splits p[0..n) at blanks into at most max tokens; max + 1 if there are more. */
static size_t tokens(const char *p, size_t n, const char **tok, size_t *len, size_t max)
{
    size_t k = 0, i = 0;
    for (;;) {
        while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
        if (i == n) return k;
        if (k == max) return max + 1;
        size_t s = i;
        while (i < n && p[i] != ' ' && p[i] != '\t') i++;
        tok[k] = p + s;
        len[k++] = i - s;
    }
}

/* MSG <subject> <sid> [reply-to] <#bytes> or HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>. */
static long nats_msg(const char *p, size_t n, size_t ll, size_t argoff, bool hmsg, nmsg *m)
{
    const char *tok[5];
    size_t len[5], want = hmsg ? 4 : 3;
    size_t k = tokens(p + argoff, ll - argoff, tok, len, 5);
    int64_t hdr = 0, total;
    if (k != want && k != want + 1) return -1;
    if (!parse_i64(tok[k - 1], tok[k - 1] + len[k - 1], &total) || total < 0 || total > (64 << 20)) return -1;
    if (hmsg && (!parse_i64(tok[k - 2], tok[k - 2] + len[k - 2], &hdr) || hdr < 0 || hdr > total)) return -1;
    size_t need = ll + 2 + (size_t)total + 2;
    if (n < need) return 0; /* the payload is still on its way */
    if (p[need - 2] != '\r' || p[need - 1] != '\n') return -1;
    m->op = N_MSG;
    m->subject = tok[0];
    m->subject_len = len[0];
    m->hdr = p + ll + 2;
    m->hdr_len = (size_t)hdr;
    m->body = m->hdr + hdr;
    m->body_len = (size_t)(total - hdr);
    return (long)need;
}

static bool is_op(const char *p, size_t n, const char *word)
{
    size_t w = strlen(word);
    return n >= w && strncasecmp(p, word, w) == 0;
}

/* The length of the complete protocol message at p[0..n), 0 if it is not all there yet, -1 if malformed. */
static long nats_parse(const char *p, size_t n, nmsg *m)
{
    const char *cr = memmem(p, n, "\r\n", 2);
    if (!cr) return 0;
    size_t ll = (size_t)(cr - p);
    memset(m, 0, sizeof *m);
    m->line = p;
    m->line_len = ll;
    if (is_op(p, ll, "MSG ")) return nats_msg(p, n, ll, 4, false, m);
    if (is_op(p, ll, "HMSG ")) return nats_msg(p, n, ll, 5, true, m);
    m->op = is_op(p, ll, "PING")   ? N_PING
            : is_op(p, ll, "PONG") ? N_PONG
            : is_op(p, ll, "+OK")  ? N_OK
            : is_op(p, ll, "-ERR") ? N_ERR
            : is_op(p, ll, "INFO") ? N_INFO
                                   : N_OTHER;
    return (long)(ll + 2);
}

/* The status code of an HMSG ("NATS/1.0 503" -> 503); 0 when there is none. */
static int nats_status(const nmsg *m)
{
    const char *eol = m->hdr_len ? memmem(m->hdr, m->hdr_len, "\r\n", 2) : NULL;
    if (!eol || eol - m->hdr < 12 || memcmp(m->hdr, "NATS/1.0 ", 9) != 0) return 0;
    int64_t code;
    return parse_i64(m->hdr + 9, m->hdr + 12, &code) ? (int)code : 0;
}

/* Setup traffic: the next message that is not a PING (answered here) or -ERR (fatal); its length. */
static long nats_next(conn *c, const char *what, nmsg *m)
{
    int64_t until = now_ns() + SETUP_NS;
    for (;;) {
        long n = nats_parse(c->in, c->in_len, m);
        if (n < 0 || (n > 0 && m->op == N_OTHER))
            die("%s: %s does not speak the NATS protocol (got \"%.*s\")", what, c->o->addr,
                (int)SL_MIN(m->line_len, 80), m->line);
        if (n > 0 && m->op == N_ERR) die("%s: %s: %.*s", what, c->o->addr, (int)m->line_len, m->line);
        if (n > 0 && m->op != N_PING) return n;
        if (n > 0) {
            consume_in(c, (size_t)n);
            send_all(c, "PONG\r\n", 6, what);
        } else {
            read_more(c, until, what);
        }
    }
}

/* INFO, CONNECT, PING/PONG, then a subscription to this connection's reply inbox. */
static void nats_open(conn *c)
{
    nmsg m;
    long n = nats_next(c, "handshake (is it a NATS server?)", &m);
    if (m.op != N_INFO) die("handshake: %s sent no INFO (is it a NATS server?)", c->o->addr);
    const char *mp = memmem(m.line, m.line_len, "\"max_payload\":", 14);
    long max_payload = mp ? strtol(mp + 14, NULL, 10) : 1 << 20; /* the line ends in \r: strtol stops there */
    bool headers = memmem(m.line, m.line_len, "\"headers\":true", 14) != NULL;
    consume_in(c, (size_t)n);
    if (!headers) die("%s: the server does not support headers (NATS 2.2 or later needed)", c->o->addr);
    if (c->o->size > max_payload) die("--size %ld exceeds the server's max_payload %ld", c->o->size, max_payload);
    send_all(c, NATS_CONNECT, sizeof NATS_CONNECT - 1, "connect");
    do {
        n = nats_next(c, "connect", &m);
        consume_in(c, (size_t)n);
    } while (m.op != N_PONG);
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) die("getrandom: %s", strerror(errno));
    int k = snprintf(c->inbox, sizeof c->inbox, "_INBOX.%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
                     rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    if (k < 0 || (size_t)k >= sizeof c->inbox) die("internal: inbox name");
    c->inbox_len = (size_t)k;
    char sub[64];
    k = snprintf(sub, sizeof sub, "SUB %s.* 1\r\n", c->inbox);
    if (k < 0 || (size_t)k >= sizeof sub) die("internal: SUB line");
    send_all(c, sub, (size_t)k, "subscribe");
    c->msg_max = (size_t)c->o->size + 128; /* PUB line: verb, subject, inbox, seq, size */
}

/* A setup request: publishes body to subject with reply-to <inbox>.r; the reply's body, NUL-terminated. */
static void nats_request(conn *c, const char *subject, const char *body, char *resp, size_t cap)
{
    char head[256];
    size_t bl = strlen(body);
    int k = snprintf(head, sizeof head, "PUB %s %s.r %zu\r\n", subject, c->inbox, bl);
    if (k < 0 || (size_t)k >= sizeof head) die("internal: request line");
    send_all(c, head, (size_t)k, subject);
    send_all(c, body, bl, subject);
    send_all(c, "\r\n", 2, subject);
    for (;;) {
        nmsg m;
        long n = nats_next(c, subject, &m);
        if (m.op == N_MSG && m.subject_len == c->inbox_len + 2 && memcmp(m.subject, c->inbox, c->inbox_len) == 0 &&
            memcmp(m.subject + c->inbox_len, ".r", 2) == 0) {
            if (nats_status(&m) == 503)
                die("%s: no responders on %s (is JetStream on? nats-server -js)", subject, c->o->addr);
            size_t l = SL_MIN(m.body_len, cap - 1);
            memcpy(resp, m.body, l);
            resp[l] = '\0';
            consume_in(c, (size_t)n);
            return;
        }
        consume_in(c, (size_t)n);
    }
}

static void nats_prepare(const opts *o)
{
    conn *c = conn_new(o, -1);
    c->fd = dial(o->addr);
    nats_open(c);
    char resp[4096];
    nats_request(c, "$JS.API.STREAM.DELETE.PEERGEN", "", resp, sizeof resp); /* not found is fine */
    nats_request(c, "$JS.API.STREAM.CREATE.PEERGEN", NATS_STREAM, resp, sizeof resp);
    if (strstr(resp, "\"error\"")) die("create stream PEERGEN: %s", resp);
    conn_free(c);
}

static long nats_stored(const opts *o)
{
    conn *c = conn_new(o, -1);
    c->fd = dial(o->addr);
    nats_open(c);
    char resp[16384];
    nats_request(c, "$JS.API.STREAM.INFO.PEERGEN", "", resp, sizeof resp);
    conn_free(c);
    const char *st = strstr(resp, "\"state\":"), *m = st ? strstr(st, "\"messages\":") : NULL;
    if (strstr(resp, "\"error\"") || !m) {
        fprintf(stderr, "sl_peergen: warning: STREAM.INFO PEERGEN: %.300s\n", resp);
        return -1;
    }
    return strtol(m + 11, NULL, 10);
}

/* ---- the load ---------------------------------------------------------------------------------------------- */

static size_t put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10));
    for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
    return n;
}

/* PUB peergen _INBOX.<id>.<seq> <size>\r\n<payload>\r\n; at most msg_max bytes. */
static size_t nats_pub(const conn *c, char *p, uint64_t seq)
{
    size_t n = 12, size = (size_t)c->o->size;
    memcpy(p, "PUB peergen ", 12);
    memcpy(p + n, c->inbox, c->inbox_len);
    n += c->inbox_len;
    p[n++] = '.';
    n += put_u64(p + n, seq);
    p[n++] = ' ';
    n += put_u64(p + n, size);
    p[n++] = '\r';
    p[n++] = '\n';
    memcpy(p + n, payload, size);
    n += size;
    p[n++] = '\r';
    p[n++] = '\n';
    return n;
}

/* Appends every message that is due and fits the window; the time the next one is due under --rate. */
static int64_t fill(conn *c, int64_t now)
{
    const opts *o = c->o;
    double per_ns = o->rate > 0 ? o->rate / (double)o->connections / 1e9 : 0;
    while (c->sent - c->acked - c->failed < o->window && (c->quota < 0 || c->sent < c->quota) &&
           c->out_cap - c->out_len >= c->msg_max + RESERVE) {
        int64_t due = now;
        if (per_ns > 0) { /* by the clock, so a late loop catches up, but never past the window */
            due = c->t_start + (int64_t)((double)c->sent / per_ns);
            if (due > now) return due;
        }
        uint64_t seq = (uint64_t)c->sent + 1;
        slot *s = &c->ring[seq & c->mask];
        if (s->seq) break; /* nats: an old ack is still missing for this slot; wait */
        s->seq = seq;
        /* Paced runs time a message from when it was due, not when the window let it go: a server stall
           that holds the window full delays the messages behind it too, and they must count it (no
           coordinated omission; `sluice bench` does the same for Kafka). */
        s->t_sent = due;
        if (o->system == SYS_NATS) {
            c->out_len += nats_pub(c, c->out + c->out_len, seq);
        } else {
            memcpy(c->out + c->out_len, c->cmd, c->cmd_len);
            c->out_len += c->cmd_len;
        }
        if (!c->sent) c->t_first = now;
        c->sent++;
    }
    return INT64_MAX;
}

static void complete(conn *c, slot *s, int64_t t, bool ok)
{
    if (ok) {
        c->acked++;
        c->t_last = t;
        sl_hist_record(&c->hist, (uint64_t)(t - s->t_sent) / 1000);
    } else {
        c->failed++;
    }
    s->seq = 0;
    c->t_progress = t;
}

/* Redis answers in command order: each complete reply settles the oldest message out. */
static void redis_acks(conn *c, int64_t t)
{
    size_t off = 0;
    long n;
    while ((n = resp_len(c->in + off, c->in_len - off, 0)) > 0) {
        if (c->acked + c->failed == c->sent) die("%s: a reply to no command", c->o->addr);
        uint64_t seq = (uint64_t)(c->acked + c->failed) + 1;
        const char *r = c->in + off;
        bool ok = r[0] == '$' && r[1] != '-'; /* the entry id; anything else (-ERR, null) failed */
        if (!ok) tell_failure_once("XADD failed", r, (size_t)n);
        complete(c, &c->ring[seq & c->mask], t, ok);
        off += (size_t)n;
    }
    if (n < 0) die("%s: malformed RESP reply", c->o->addr);
    consume_in(c, off);
}

/* A JetStream ack on <inbox>.<seq>: {"stream":"PEERGEN","seq":N}, or an error body or status. */
static void nats_ack(conn *c, const nmsg *m, int64_t t)
{
    size_t il = c->inbox_len;
    int64_t seq;
    if (m->subject_len <= il + 1 || memcmp(m->subject, c->inbox, il) != 0 || m->subject[il] != '.' ||
        !parse_i64(m->subject + il + 1, m->subject + m->subject_len, &seq) || seq <= 0)
        return; /* not an ack of ours */
    slot *s = &c->ring[(uint64_t)seq & c->mask];
    if (s->seq != (uint64_t)seq) return; /* a duplicate */
    int status = nats_status(m);
    bool ok = status < 300 && !memmem(m->body, m->body_len, "\"error\"", 7);
    if (!ok) tell_failure_once("publish failed", status ? m->hdr : m->body, status ? m->hdr_len : m->body_len);
    complete(c, s, t, ok);
}

static void nats_acks(conn *c, int64_t t)
{
    size_t off = 0;
    long n;
    nmsg m;
    while ((n = nats_parse(c->in + off, c->in_len - off, &m)) > 0) {
        if (m.op == N_PING)
            queue_out(c, "PONG\r\n", 6); /* RESERVE keeps room for it */
        else if (m.op == N_ERR)
            die("%s: %.*s", c->o->addr, (int)m.line_len, m.line);
        else if (m.op == N_OTHER)
            die("%s: unexpected \"%.*s\"", c->o->addr, (int)SL_MIN(m.line_len, 80), m.line);
        else if (m.op == N_MSG)
            nats_ack(c, &m, t);
        off += (size_t)n;
    }
    if (n < 0) die("%s: malformed NATS protocol message", c->o->addr);
    consume_in(c, off);
}

/* The connection's whole run: send while the window, --rate and the count allow; then drain. */
static void pump(conn *c)
{
    const opts *o = c->o;
    int64_t deadline = o->seconds > 0 ? c->t_start + (int64_t)(o->seconds * 1e9) : INT64_MAX;
    c->t_progress = c->t_start;
    for (;;) {
        int64_t now = now_ns();
        bool sending = now < deadline && (c->quota < 0 || c->sent < c->quota);
        int64_t due = sending ? fill(c, now) : INT64_MAX;
        flush_out(c);
        long open = c->sent - c->acked - c->failed;
        if (!sending && !open && !c->out_len) return;
        if (!open)
            c->t_progress = now; /* waiting on --rate is not a stall */
        else if (now - c->t_progress > STALL_NS)
            die("no progress for 30 s: %ld messages unacknowledged on connection %d to %s", open, c->id, o->addr);
        int64_t until = SL_MIN(SL_MIN(due, sending ? deadline : INT64_MAX), now + 1000000000LL);
        int rev = wait_fd(c, (short)(POLLIN | (c->out_len ? POLLOUT : 0)), until);
        if ((rev & (POLLIN | POLLERR | POLLHUP)) && read_some(c)) {
            int64_t t = now_ns(); /* one clock read per read(): its replies all arrived together */
            if (o->system == SYS_NATS)
                nats_acks(c, t);
            else
                redis_acks(c, t);
        }
    }
}

static void *worker_main(void *arg)
{
    conn *c = arg;
    const opts *o = c->o;
    c->fd = dial(o->addr);
    if (o->system == SYS_NATS)
        nats_open(c);
    else
        redis_open(c);
    uint64_t ring = 1;
    while (ring < 2 * (uint64_t)o->window) ring <<= 1; /* twice the window: a late NATS ack rarely blocks a slot */
    if (!(c->ring = calloc(ring, sizeof *c->ring))) die("out of memory");
    c->mask = ring - 1;
    int rc = pthread_barrier_wait(&start_line); /* every connection is up: start together */
    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) die("pthread_barrier_wait: %s", strerror(rc));
    c->t_start = now_ns();
    pump(c);
    return NULL;
}

static void report(const opts *o, long msgs, double secs, const sl_hist *h, long failed)
{
    double mps = secs > 0 ? (double)msgs / secs : 0, mbps = mps * (double)o->size / 1e6;
    printf("produce: %ld msgs of %ld B in %.2f s: %.0f msgs/s, %.1f MB/s", msgs, o->size, secs, mps, mbps);
    if (h->total)
        printf("; latency us p50 %" PRIu64 " p99 %" PRIu64 " p99.9 %" PRIu64 " max %" PRIu64, sl_hist_percentile(h, 50),
               sl_hist_percentile(h, 99), sl_hist_percentile(h, 99.9), h->max);
    if (failed) printf("; %ld FAILED", failed);
    printf("\n");
    if (o->json) {
        printf("{\"mode\":\"produce\",\"system\":\"%s\",\"size\":%ld,\"msgs\":%ld,\"seconds\":%.3f,\"msgs_per_s\":%.0f,"
               "\"mb_per_s\":%.2f,\"window\":%ld,\"connections\":%ld,\"failed\":%ld",
               o->system == SYS_NATS ? "nats" : "redis", o->size, msgs, secs, mps, mbps, o->window, o->connections,
               failed);
        if (h->total)
            printf(",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64 ",\"p999_us\":%" PRIu64 ",\"max_us\":%" PRIu64,
                   sl_hist_percentile(h, 50), sl_hist_percentile(h, 99), sl_hist_percentile(h, 99.9), h->max);
        printf("}\n");
    }
    if (fflush(stdout) != 0) die("stdout: %s", strerror(errno));
}

static int run(const opts *o)
{
    if (o->system == SYS_NATS)
        nats_prepare(o);
    else
        redis_prepare(o);
    int nc = (int)o->connections, rc;
    conn **cs = calloc((size_t)nc, sizeof *cs);
    if (!cs) die("out of memory");
    if ((rc = pthread_barrier_init(&start_line, NULL, (unsigned)nc)) != 0)
        die("pthread_barrier_init: %s", strerror(rc));
    for (int i = 0; i < nc; i++) {
        cs[i] = conn_new(o, i);
        bool bounded = o->count_set || o->seconds <= 0;
        cs[i]->quota = bounded ? o->count / nc + (i < o->count % nc) : -1;
        if ((rc = pthread_create(&cs[i]->thread, NULL, worker_main, cs[i])) != 0)
            die("pthread_create: %s", strerror(rc));
    }
    static sl_hist all;
    sl_hist_init(&all);
    long acked = 0, failed = 0;
    int64_t first = INT64_MAX, last = 0;
    for (int i = 0; i < nc; i++) {
        if ((rc = pthread_join(cs[i]->thread, NULL)) != 0) die("pthread_join: %s", strerror(rc));
        sl_hist_merge(&all, &cs[i]->hist);
        acked += cs[i]->acked;
        failed += cs[i]->failed;
        if (cs[i]->sent && cs[i]->t_first < first) first = cs[i]->t_first;
        if (cs[i]->t_last > last) last = cs[i]->t_last;
        conn_free(cs[i]);
    }
    free(cs);
    report(o, acked, last > first ? (double)(last - first) / 1e9 : 0, &all, failed);
    long stored = o->system == SYS_NATS ? nats_stored(o) : redis_stored(o);
    if (stored >= 0 && stored != acked)
        fprintf(stderr, "sl_peergen: warning: stream %s holds %ld messages but %ld were acknowledged\n",
                o->system == SYS_NATS ? "PEERGEN" : o->stream, stored, acked);
    return failed ? 1 : 0;
}

static long num(const char *opt, const char *v, long min, long max)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) die("bad value for %s (%ld..%ld)", opt, min, max);
    return n;
}

int main(int argc, char **argv)
{
    opts o = {.size = 100, .count = 1000000, .window = 256, .connections = 1, .stream = "peergen"};
    static const struct option lo[] = {
        {"addr", 1, 0, 'a'}, {"size", 1, 0, 's'},   {"count", 1, 0, 'n'},       {"seconds", 1, 0, 'd'},
        {"rate", 1, 0, 'r'}, {"window", 1, 0, 'w'}, {"connections", 1, 0, 'c'}, {"stream", 1, 0, 'S'},
        {"json", 0, 0, 'j'}, {0, 0, 0, 0}};
    if (argc < 2 || (strcmp(argv[1], "redis") && strcmp(argv[1], "nats"))) {
        fprintf(stderr, "usage: sl_peergen redis|nats [--addr H:P] [--size B] [--count N] [--seconds S]\n"
                        "       [--rate MSGS_PER_S] [--window N] [--connections N] [--stream NAME (redis)] [--json]\n");
        return 2;
    }
    o.system = strcmp(argv[1], "nats") == 0 ? SYS_NATS : SYS_REDIS;
    o.addr = o.system == SYS_NATS ? "127.0.0.1:4222" : "127.0.0.1:6379";
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'a': o.addr = optarg; break;
        case 's': o.size = num("--size", optarg, 0, 1 << 20); break;
        case 'n': o.count = num("--count", optarg, 1, 1000000000), o.count_set = 1; break;
        case 'd': o.seconds = (double)num("--seconds", optarg, 1, 3600); break;
        case 'r': o.rate = (double)num("--rate", optarg, 1, 100000000); break;
        case 'w': o.window = num("--window", optarg, 1, MAX_WINDOW); break;
        case 'c': o.connections = num("--connections", optarg, 1, 256); break;
        case 'S': o.stream = optarg; break;
        case 'j': o.json = 1; break;
        default: return 2;
        }
    }
    if (optind != argc) die("unexpected argument %s", argv[optind]);
    if (!*o.stream || strlen(o.stream) > 200) die("bad --stream (1..200 bytes)");
    if (!(payload = malloc((size_t)o.size + 1))) die("out of memory");
    for (long i = 0; i < o.size; i++) payload[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i % 36]; /* printable */
    return run(&o);
}
