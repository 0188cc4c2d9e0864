/*
 * groups.c - `sluice groups`: consumer-group administration for a person at
 * a terminal, on librdkafka's Admin API, against any Kafka broker.
 *
 *   sluice groups [options] list
 *   sluice groups [options] describe GROUP
 *   sluice groups [options] delete GROUP
 *   sluice groups [options] reset-offsets GROUP --topic T
 *                 (--to-earliest | --to-latest | --to-offset N) [--partition P] [--dry-run]
 *
 * Every command starts with a connection check: an all-topics Metadata
 * request in 250 ms slices, serving librdkafka's error callbacks between
 * them, so a broker that refuses connections is reported in milliseconds
 * with librdkafka's own reason ("cannot reach the broker at H:P: Connect to
 * ipv4#H:P failed: Connection refused") rather than after --timeout. That
 * metadata is then the list of topics and partitions every other step uses;
 * it asks for all topics and the client has allow.auto.create.topics=false,
 * so looking at a topic never creates it.
 *
 * What librdkafka 2.0.2 (Debian 12) offers, and how each command uses it:
 *   list           ListConsumerGroups (ListGroups on every broker), then
 *                  DescribeConsumerGroups for state and member count: 2.0.2
 *                  asks ListGroups for the state only from v4, which few
 *                  brokers (and not Sluice) serve. ListConsumerGroups keeps
 *                  only groups of protocol type "consumer" or "" (a "simple"
 *                  group: committed offsets, no member ever joined); Connect
 *                  and other protocol types are not listed.
 *   describe       DescribeConsumerGroups (state, assignor, coordinator,
 *                  members and their assignments), ListConsumerGroupOffsets
 *                  (OffsetFetch), and rd_kafka_query_watermark_offsets for
 *                  each row's log end (2.0.2 has no ListOffsets admin call).
 *                  DescribeGroups carries no generation, so none is shown.
 *   delete         DeleteGroups; NON_EMPTY_GROUP is explained with a member
 *                  count from DescribeConsumerGroups.
 *   reset-offsets  DescribeConsumerGroups first (refuses unless the group is
 *                  Empty, Dead or unknown with no members, as
 *                  kafka-consumer-groups does), watermarks for the targets,
 *                  then AlterConsumerGroupOffsets (OffsetCommit with
 *                  generation -1), checking every partition's error.
 *
 * Committed offsets are asked for partition by partition (every partition
 * of every topic in the metadata, or of --topic): librdkafka 2.0.2 encodes
 * "all partitions" as an empty topic array below OffsetFetch v6, which a
 * broker rightly answers with nothing (fixed in librdkafka 2.3.0). Offsets
 * of topics that no longer exist are therefore not shown.
 *
 * Exit status: 0 done, 1 operating error (the broker is unreachable, said
 * no, or the group is active or unknown; the message says which), 2 bad
 * usage. Tables go to stdout, errors to stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli/cli.h"
#include "common/alloc.h"

#define DEFAULT_BOOTSTRAP "127.0.0.1:9092"
#define TABLE_COLS_MAX 8

enum { TO_NONE, TO_EARLIEST, TO_LATEST, TO_OFFSET };

typedef struct gopts {
    const char *bootstrap, *action, *group, *topic;
    long long timeout_ms;
    int32_t partition; /* --partition; -1: every partition of --topic */
    int to;            /* TO_* */
    int nto;           /* how many --to-* were given */
    int64_t to_offset;
    bool dry_run;
    const char *reset_opt; /* a reset-offsets option that was given (for the error with other commands) */
} gopts;

/* One Admin client: its result queue, the metadata from the connection check, the last connection error. */
typedef struct admin {
    const gopts *o;
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    const rd_kafka_metadata_t *md;
    bool down;         /* librdkafka said every broker is down */
    bool no_destroy;   /* see admin_unsupported */
    char reason[512];  /* its last connection error, without the "host:port/id: " prefix */
} admin;

typedef struct gmember {
    char *id, *client_id, *host;
    int nparts;
} gmember;

/* One (topic, partition) row of a group. */
typedef struct gpart {
    char *topic;
    int32_t partition;
    int member;        /* index in gview.members; -1: not assigned */
    int64_t committed; /* -1: none */
    int64_t low, high; /* log start and end; -1: unknown */
    int64_t target;    /* reset-offsets: the new offset */
} gpart;

/* What the broker told about a group. */
typedef struct gview {
    rd_kafka_consumer_group_state_t state;
    bool simple;       /* protocol type "": offsets only, no member ever joined */
    char *assignor;
    char coordinator[320];
    gmember *members;
    int nmembers;
    gpart *parts;
    int nparts, cap;
} gview;

/* A text table: cells are copied; columns are as wide as their widest cell. */
typedef struct table {
    int ncols, nrows, cap;
    char **cells;
} table;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sluice groups: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("sluice groups: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("; see 'sluice groups --help'\n", stderr);
    va_end(ap);
    return 2;
}

static const char *plural(long n) { return n == 1 ? "" : "s"; }

/* "-" for an unknown offset (negative), else the number in buf. */
static const char *fmt_offset(char buf[24], int64_t v)
{
    if (v < 0) return "-";
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

/* ---- tables ---- */

static void table_row(table *t, const char *const *cols)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = sl_realloc(t->cells, (size_t)t->cap * (size_t)t->ncols * sizeof *t->cells);
    }
    for (int c = 0; c < t->ncols; c++) t->cells[t->nrows * t->ncols + c] = sl_strdup(cols[c] ? cols[c] : "-");
    t->nrows++;
}

static void table_print(const table *t)
{
    size_t width[TABLE_COLS_MAX] = {0};
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            size_t len = strlen(t->cells[r * t->ncols + c]);
            if (len > width[c]) width[c] = len;
        }
    for (int r = 0; r < t->nrows; r++)
        for (int c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            if (c + 1 < t->ncols) printf("%-*s  ", (int)width[c], cell);
            else printf("%s\n", cell);
        }
}

static void table_free(table *t)
{
    for (int i = 0; i < t->nrows * t->ncols; i++) sl_free(t->cells[i]);
    sl_free(t->cells);
}

/* ---- the Admin client ---- */

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    /* Connection errors arrive through on_error and are reported once, in words; the rest is noise here. */
    (void)rk, (void)level, (void)fac, (void)buf;
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    admin *a = opaque;
    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        a->down = true;
        return;
    }
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__RESOLVE ||
        err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL) {
        const char *text = strstr(reason, ": "); /* drop "127.0.0.1:9092/bootstrap: " */
        snprintf(a->reason, sizeof a->reason, "%s", text ? text + 2 : reason);
    }
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof err) == RD_KAFKA_CONF_OK) return 0;
    return fail("librdkafka refused %s=%s: %s", key, value, err);
}

/*
 * Waits for the first Metadata answer (all topics), in 250 ms slices so
 * that librdkafka's "all brokers down" error, served by rd_kafka_poll in
 * between, ends the wait at once.
 */
static int admin_connect(admin *a)
{
    int64_t deadline = now_ms() + a->o->timeout_ms;
    for (;;) {
        const rd_kafka_metadata_t *md;
        rd_kafka_resp_err_t err = rd_kafka_metadata(a->rk, 1, NULL, &md, 250);
        if (!err) {
            a->md = md;
            return 0;
        }
        rd_kafka_poll(a->rk, 0);
        if (a->down)
            return fail("cannot reach the broker at %s: %s", a->o->bootstrap,
                        a->reason[0] ? a->reason : "every broker is down");
        if (err != RD_KAFKA_RESP_ERR__TIMED_OUT && err != RD_KAFKA_RESP_ERR__TRANSPORT)
            return fail("the broker at %s did not answer a Metadata request: %s", a->o->bootstrap,
                        rd_kafka_err2str(err));
        if (now_ms() >= deadline)
            return fail("cannot reach the broker at %s: no answer within %lld ms%s%s", a->o->bootstrap,
                        a->o->timeout_ms, a->reason[0] ? "; last error: " : "", a->reason);
    }
}

static int admin_open(admin *a, const gopts *o)
{
    memset(a, 0, sizeof *a);
    a->o = o;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (conf_set(conf, "bootstrap.servers", o->bootstrap) || conf_set(conf, "client.id", "sluice-groups") ||
        conf_set(conf, "allow.auto.create.topics", "false") || conf_set(conf, "log.connection.close", "false")) {
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_conf_set_log_cb(conf, on_log);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_opaque(conf, a);
    char err[256];
    a->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!a->rk) {
        rd_kafka_conf_destroy(conf);
        return fail("cannot create a Kafka client: %s", err);
    }
    a->q = rd_kafka_queue_new(a->rk);
    return admin_connect(a);
}

static void admin_close(admin *a)
{
    if (a->md) rd_kafka_metadata_destroy(a->md);
    if (a->no_destroy) return; /* the process exits next: the OS reclaims the client */
    if (a->q) rd_kafka_queue_destroy(a->q);
    if (a->rk) rd_kafka_destroy(a->rk);
}

/*
 * The broker's ApiVersions do not list the API. In librdkafka 2.0.2 a
 * coordinator-bound Admin request (DescribeGroups, DeleteGroups,
 * OffsetFetch, OffsetCommit) that fails this way locally drops one
 * reference too many on its completion object, and rd_kafka_destroy then
 * aborts (rd_kafka_enq_once_del_source_return: eonce->refcnt > 0) or
 * deadlocks; so this client is not destroyed.
 */
static int admin_unsupported(admin *a, const char *what, const char *text)
{
    a->no_destroy = true;
    return fail("the broker at %s does not support %s (%s)", a->o->bootstrap, what, text);
}

/* An error from one group's result: the unsupported case above, or `doing` and the broker's words. */
static int group_error(admin *a, const char *what, const char *doing, const char *group, const rd_kafka_error_t *error)
{
    if (rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
        return admin_unsupported(a, what, rd_kafka_error_string(error));
    return fail("cannot %s group '%s': %s", doing, group, rd_kafka_error_string(error));
}

static rd_kafka_AdminOptions_t *admin_options(admin *a, rd_kafka_admin_op_t op)
{
    char err[256];
    rd_kafka_AdminOptions_t *options = rd_kafka_AdminOptions_new(a->rk, op);
    rd_kafka_AdminOptions_set_request_timeout(options, (int)a->o->timeout_ms, err, sizeof err);
    return options;
}

static void explain_error(admin *a, const char *what, rd_kafka_resp_err_t err, const char *text)
{
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
        fail("%s: no answer from the broker at %s within %lld ms (%s)%s%s", what, a->o->bootstrap, a->o->timeout_ms,
             text, a->reason[0] ? "; last connection error: " : "", a->reason);
    else if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
        admin_unsupported(a, what, text);
    else
        fail("%s failed: %s", what, text);
}

/*
 * The next result on the Admin queue, or NULL after printing why there is
 * none. The request itself times out after --timeout; the extra 2 s only
 * guards against a result that never comes.
 */
static rd_kafka_event_t *admin_wait(admin *a, const char *what)
{
    int64_t deadline = now_ms() + a->o->timeout_ms + 2000;
    for (;;) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(a->q, 100);
        rd_kafka_poll(a->rk, 0);
        if (ev && !rd_kafka_event_error(ev)) return ev;
        if (ev) {
            explain_error(a, what, rd_kafka_event_error(ev), rd_kafka_event_error_string(ev));
            rd_kafka_event_destroy(ev);
            return NULL;
        }
        if (now_ms() > deadline) {
            explain_error(a, what, RD_KAFKA_RESP_ERR__TIMED_OUT, "no result");
            return NULL;
        }
    }
}

static const rd_kafka_metadata_topic_t *find_topic(const admin *a, const char *name)
{
    for (int i = 0; i < a->md->topic_cnt; i++)
        if (strcmp(a->md->topics[i].topic, name) == 0 && !a->md->topics[i].err) return &a->md->topics[i];
    return NULL;
}

/* ---- a group's view: members and (topic, partition) rows ---- */

static gpart *part_get(gview *v, const char *topic, int32_t partition)
{
    for (int i = 0; i < v->nparts; i++)
        if (v->parts[i].partition == partition && strcmp(v->parts[i].topic, topic) == 0) return &v->parts[i];
    if (v->nparts == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 16;
        v->parts = sl_realloc(v->parts, (size_t)v->cap * sizeof *v->parts);
    }
    gpart *p = &v->parts[v->nparts++];
    *p = (gpart){.topic = sl_strdup(topic), .partition = partition, .member = -1, .committed = -1, .low = -1,
                 .high = -1, .target = -1};
    return p;
}

static int part_cmp(const void *x, const void *y)
{
    const gpart *a = x, *b = y;
    int c = strcmp(a->topic, b->topic);
    if (c) return c;
    return (a->partition > b->partition) - (a->partition < b->partition);
}

static void view_free(gview *v)
{
    for (int i = 0; i < v->nmembers; i++) {
        sl_free(v->members[i].id);
        sl_free(v->members[i].client_id);
        sl_free(v->members[i].host);
    }
    for (int i = 0; i < v->nparts; i++) sl_free(v->parts[i].topic);
    sl_free(v->members);
    sl_free(v->parts);
    sl_free(v->assignor);
}

static bool view_exists(const gview *v)
{
    return v->state != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD || v->nmembers > 0;
}

/* Active = anything but Empty, Dead or unknown with no members: committing over it would race its consumers. */
static bool view_active(const gview *v)
{
    return v->nmembers > 0 || (v->state != RD_KAFKA_CONSUMER_GROUP_STATE_EMPTY &&
                               v->state != RD_KAFKA_CONSUMER_GROUP_STATE_DEAD &&
                               v->state != RD_KAFKA_CONSUMER_GROUP_STATE_UNKNOWN);
}

static void view_add_member(gview *v, int i, const rd_kafka_MemberDescription_t *m)
{
    gmember *gm = &v->members[i];
    const char *host = rd_kafka_MemberDescription_host(m);
    gm->id = sl_strdup(rd_kafka_MemberDescription_consumer_id(m));
    gm->client_id = sl_strdup(rd_kafka_MemberDescription_client_id(m));
    gm->host = sl_strdup(host && *host ? host : "-");
    const rd_kafka_topic_partition_list_t *assigned =
        rd_kafka_MemberAssignment_partitions(rd_kafka_MemberDescription_assignment(m));
    for (int k = 0; assigned && k < assigned->cnt; k++) {
        part_get(v, assigned->elems[k].topic, assigned->elems[k].partition)->member = i;
        gm->nparts++;
    }
}

/* Fills v from one DescribeGroups answer. GROUP_ID_NOT_FOUND is an answer too: the group is Dead. */
static int view_fill(admin *a, gview *v, const char *group, const rd_kafka_ConsumerGroupDescription_t *d)
{
    const rd_kafka_error_t *error = rd_kafka_ConsumerGroupDescription_error(d);
    if (error && rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND) {
        v->state = RD_KAFKA_CONSUMER_GROUP_STATE_DEAD;
        return 0;
    }
    if (error) return group_error(a, "DescribeGroups", "describe", group, error);
    v->state = rd_kafka_ConsumerGroupDescription_state(d);
    v->simple = rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(d);
    const char *assignor = rd_kafka_ConsumerGroupDescription_partition_assignor(d);
    v->assignor = sl_strdup(assignor ? assignor : "");
    const rd_kafka_Node_t *node = rd_kafka_ConsumerGroupDescription_coordinator(d);
    if (node)
        snprintf(v->coordinator, sizeof v->coordinator, "%s:%u (broker %d)", rd_kafka_Node_host(node),
                 (unsigned)rd_kafka_Node_port(node), rd_kafka_Node_id(node));
    v->nmembers = (int)rd_kafka_ConsumerGroupDescription_member_count(d);
    v->members = sl_calloc((size_t)v->nmembers + 1, sizeof *v->members);
    for (int i = 0; i < v->nmembers; i++) view_add_member(v, i, rd_kafka_ConsumerGroupDescription_member(d, i));
    return 0;
}

static int describe_group(admin *a, const char *group, gview *v)
{
    const char *groups[1] = {group};
    rd_kafka_AdminOptions_t *options = admin_options(a, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_DescribeConsumerGroups(a->rk, groups, 1, options, a->q);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_event_t *ev = admin_wait(a, "DescribeGroups");
    if (!ev) return 1;
    size_t n;
    const rd_kafka_ConsumerGroupDescription_t **descs =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &n);
    int rc = n == 1 ? view_fill(a, v, group, descs[0]) : fail("DescribeGroups answered %zu groups, not 1", n);
    rd_kafka_event_destroy(ev);
    return rc;
}

/* The partitions whose committed offsets to ask for: those of `topic` (or every topic but internal ones). */
static rd_kafka_topic_partition_list_t *offsets_wanted(const admin *a, const gview *v, const char *topic,
                                                       int32_t partition)
{
    rd_kafka_topic_partition_list_t *want = rd_kafka_topic_partition_list_new(16);
    for (int i = 0; i < a->md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &a->md->topics[i];
        if (t->err || (topic && strcmp(t->topic, topic)) || (!topic && strncmp(t->topic, "__", 2) == 0)) continue;
        for (int k = 0; k < t->partition_cnt; k++)
            if (partition < 0 || t->partitions[k].id == partition)
                rd_kafka_topic_partition_list_add(want, t->topic, t->partitions[k].id);
    }
    for (int i = 0; i < v->nparts; i++)
        if (!rd_kafka_topic_partition_list_find(want, v->parts[i].topic, v->parts[i].partition))
            rd_kafka_topic_partition_list_add(want, v->parts[i].topic, v->parts[i].partition);
    return want;
}

/* Adds each committed offset in `got` to v (a row per partition that has one). */
static int offsets_take(admin *a, gview *v, const char *group, const rd_kafka_group_result_t *gr)
{
    const rd_kafka_error_t *error = rd_kafka_group_result_error(gr);
    if (error) return group_error(a, "OffsetFetch", "read the committed offsets of", group, error);
    const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(gr);
    for (int i = 0; got && i < got->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &got->elems[i];
        if (tp->err && tp->err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            fprintf(stderr, "sluice groups: note: committed offset of %s[%" PRId32 "] unknown: %s\n", tp->topic,
                    tp->partition, rd_kafka_err2str(tp->err));
        if (!tp->err && tp->offset >= 0) part_get(v, tp->topic, tp->partition)->committed = tp->offset;
    }
    return 0;
}

static int fetch_committed(admin *a, const char *group, gview *v, const char *topic, int32_t partition)
{
    rd_kafka_topic_partition_list_t *want = offsets_wanted(a, v, topic, partition);
    if (want->cnt == 0) {
        rd_kafka_topic_partition_list_destroy(want);
        return 0;
    }
    rd_kafka_ListConsumerGroupOffsets_t *req = rd_kafka_ListConsumerGroupOffsets_new(group, want);
    rd_kafka_topic_partition_list_destroy(want);
    rd_kafka_AdminOptions_t *options = admin_options(a, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS);
    rd_kafka_ListConsumerGroupOffsets(a->rk, &req, 1, options, a->q);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_ListConsumerGroupOffsets_destroy(req);
    rd_kafka_event_t *ev = admin_wait(a, "OffsetFetch");
    if (!ev) return 1;
    size_t n;
    const rd_kafka_group_result_t **grs =
        rd_kafka_ListConsumerGroupOffsets_result_groups(rd_kafka_event_ListConsumerGroupOffsets_result(ev), &n);
    int rc = n == 1 ? offsets_take(a, v, group, grs[0]) : fail("OffsetFetch answered %zu groups, not 1", n);
    rd_kafka_event_destroy(ev);
    return rc;
}

/* Log start and end of every row. strict: a failure is an error (reset-offsets), else the row shows '-'. */
static int fetch_watermarks(admin *a, gview *v, bool strict)
{
    for (int i = 0; i < v->nparts; i++) {
        gpart *p = &v->parts[i];
        int64_t low, high;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(a->rk, p->topic, p->partition, &low, &high, (int)a->o->timeout_ms);
        if (err && strict)
            return fail("cannot read the log start and end of %s[%" PRId32 "]: %s", p->topic, p->partition,
                        rd_kafka_err2str(err));
        if (err) {
            fprintf(stderr, "sluice groups: note: log end of %s[%" PRId32 "] unknown: %s\n", p->topic, p->partition,
                    rd_kafka_err2str(err));
            continue;
        }
        p->low = low;
        p->high = high;
    }
    return 0;
}

/* ---- list ---- */

typedef struct glisting {
    char *id;
    rd_kafka_consumer_group_state_t state;
    bool simple;
    int members; /* -1: unknown (DescribeGroups failed for it) */
} glisting;

static int listing_cmp(const void *x, const void *y)
{
    return strcmp(((const glisting *)x)->id, ((const glisting *)y)->id);
}

/* State (when ListGroups did not give it) and member count of every listed group, in one DescribeGroups. */
static int list_describe(admin *a, glisting *g, size_t n)
{
    const char **ids = sl_calloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = g[i].id;
    rd_kafka_AdminOptions_t *options = admin_options(a, RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS);
    rd_kafka_DescribeConsumerGroups(a->rk, ids, n, options, a->q);
    rd_kafka_AdminOptions_destroy(options);
    sl_free(ids);
    rd_kafka_event_t *ev = admin_wait(a, "DescribeGroups");
    if (!ev) return 1;
    size_t nd;
    const rd_kafka_ConsumerGroupDescription_t **descs =
        rd_kafka_DescribeConsumerGroups_result_groups(rd_kafka_event_DescribeConsumerGroups_result(ev), &nd);
    int rc = 0;
    for (size_t k = 0; k < nd; k++) {
        const char *id = rd_kafka_ConsumerGroupDescription_group_id(descs[k]);
        const rd_kafka_error_t *error = rd_kafka_ConsumerGroupDescription_error(descs[k]);
        for (size_t i = 0; i < n; i++) {
            if (strcmp(g[i].id, id)) continue;
            if (error) {
                rc = group_error(a, "DescribeGroups", "describe", id, error);
                continue;
            }
            if (g[i].state == RD_KAFKA_CONSUMER_GROUP_STATE_UNKNOWN)
                g[i].state = rd_kafka_ConsumerGroupDescription_state(descs[k]);
            g[i].members = (int)rd_kafka_ConsumerGroupDescription_member_count(descs[k]);
        }
    }
    rd_kafka_event_destroy(ev);
    return rc;
}

/* Reads a ListConsumerGroups result into *out (sorted by id); per-broker errors are printed and make it fail. */
static int list_take(admin *a, const rd_kafka_ListConsumerGroups_result_t *res, glisting **out, size_t *nout)
{
    size_t nerr, n;
    const rd_kafka_error_t **errors = rd_kafka_ListConsumerGroups_result_errors(res, &nerr);
    int rc = 0;
    for (size_t i = 0; i < nerr; i++) {
        if (rd_kafka_error_code(errors[i]) == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
            rc = admin_unsupported(a, "ListGroups", rd_kafka_error_string(errors[i]));
        else
            rc = fail("ListGroups failed: %s", rd_kafka_error_string(errors[i]));
    }
    const rd_kafka_ConsumerGroupListing_t **valid = rd_kafka_ListConsumerGroups_result_valid(res, &n);
    glisting *g = sl_calloc(n + 1, sizeof *g);
    for (size_t i = 0; i < n; i++) {
        g[i].id = sl_strdup(rd_kafka_ConsumerGroupListing_group_id(valid[i]));
        g[i].state = rd_kafka_ConsumerGroupListing_state(valid[i]);
        g[i].simple = rd_kafka_ConsumerGroupListing_is_simple_consumer_group(valid[i]);
        g[i].members = -1;
    }
    qsort(g, n, sizeof *g, listing_cmp);
    *out = g;
    *nout = n;
    return rc;
}

static void list_print(const admin *a, const glisting *g, size_t n)
{
    if (n == 0) {
        printf("no consumer groups on the broker at %s\n", a->o->bootstrap);
        return;
    }
    table t = {.ncols = 4};
    table_row(&t, (const char *[]){"GROUP", "STATE", "PROTOCOL-TYPE", "MEMBERS"});
    for (size_t i = 0; i < n; i++) {
        char members[16];
        snprintf(members, sizeof members, "%d", g[i].members);
        table_row(&t, (const char *[]){g[i].id, rd_kafka_consumer_group_state_name(g[i].state),
                                       g[i].simple ? "-" : "consumer", g[i].members < 0 ? "?" : members});
    }
    table_print(&t);
    table_free(&t);
}

static int cmd_list(admin *a)
{
    rd_kafka_AdminOptions_t *options = admin_options(a, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS);
    rd_kafka_ListConsumerGroups(a->rk, options, a->q);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_event_t *ev = admin_wait(a, "ListGroups");
    if (!ev) return 1;
    glisting *g;
    size_t n;
    int rc = list_take(a, rd_kafka_event_ListConsumerGroups_result(ev), &g, &n);
    rd_kafka_event_destroy(ev);
    if (n > 0 && list_describe(a, g, n)) rc = 1;
    if (n > 0 || !rc) list_print(a, g, n);
    for (size_t i = 0; i < n; i++) sl_free(g[i].id);
    sl_free(g);
    return rc;
}

/* ---- describe ---- */

static void describe_header(const admin *a, const char *group, const gview *v)
{
    printf("group        %s\n", group);
    printf("state        %s\n", rd_kafka_consumer_group_state_name(v->state));
    if (v->simple)
        printf("protocol     - (no protocol type: the group only stores offsets)\n");
    else if (v->assignor && v->assignor[0])
        printf("protocol     consumer, assignor %s\n", v->assignor);
    else
        printf("protocol     consumer\n");
    printf("coordinator  %s\n", v->coordinator[0] ? v->coordinator : a->o->bootstrap);
    printf("members      %d\n", v->nmembers);
    printf("\n");
}

/* The rows table; returns the total lag and counts the rows whose lag is unknown. */
static int64_t describe_rows(const gview *v, int *unknown)
{
    table t = {.ncols = 8};
    table_row(&t, (const char *[]){"TOPIC", "PARTITION", "MEMBER-ID", "CLIENT-ID", "HOST", "COMMITTED", "LOG-END",
                                   "LAG"});
    int64_t total = 0;
    for (int i = 0; i < v->nparts; i++) {
        const gpart *p = &v->parts[i];
        const gmember *m = p->member >= 0 ? &v->members[p->member] : NULL;
        char part[16], committed[24], end[24], lag[24];
        snprintf(part, sizeof part, "%" PRId32, p->partition);
        bool known = p->committed >= 0 && p->high >= 0;
        int64_t l = known ? (p->high > p->committed ? p->high - p->committed : 0) : -1;
        if (known) total += l;
        else (*unknown)++;
        table_row(&t, (const char *[]){p->topic, part, m ? m->id : "-", m ? m->client_id : "-", m ? m->host : "-",
                                       fmt_offset(committed, p->committed), fmt_offset(end, p->high),
                                       fmt_offset(lag, l)});
    }
    for (int i = 0; i < v->nmembers; i++) {
        const gmember *m = &v->members[i];
        if (m->nparts == 0) table_row(&t, (const char *[]){"-", "-", m->id, m->client_id, m->host, "-", "-", "-"});
    }
    if (t.nrows > 1) table_print(&t);
    else printf("(no committed offsets and no members)\n");
    table_free(&t);
    return total;
}

static int cmd_describe(admin *a, const char *group)
{
    gview v = {0};
    int rc = describe_group(a, group, &v);
    if (!rc) rc = fetch_committed(a, group, &v, NULL, -1);
    if (rc) goto out;
    if (!view_exists(&v) && v.nparts == 0) {
        rc = fail("group '%s' does not exist on the broker at %s (no members, no committed offsets)", group,
                  a->o->bootstrap);
        goto out;
    }
    fetch_watermarks(a, &v, false);
    qsort(v.parts, (size_t)v.nparts, sizeof *v.parts, part_cmp);
    describe_header(a, group, &v);
    int unknown = 0;
    int64_t total = describe_rows(&v, &unknown);
    printf("\ntotal lag    %" PRId64, total);
    if (unknown) printf(" (%d partition%s without a committed offset or log end not counted)", unknown, plural(unknown));
    printf("\n");
out:
    view_free(&v);
    return rc;
}

/* ---- delete ---- */

static int delete_refused(admin *a, const char *group)
{
    gview v = {0};
    int rc = describe_group(a, group, &v);
    if (!rc && v.nmembers > 0)
        fail("group '%s' still has %d active member%s; stop them first", group, v.nmembers, plural(v.nmembers));
    else
        fail("group '%s' still has active members; stop them first", group);
    view_free(&v);
    return 1;
}

static int cmd_delete(admin *a, const char *group)
{
    rd_kafka_DeleteGroup_t *dg = rd_kafka_DeleteGroup_new(group);
    rd_kafka_AdminOptions_t *options = admin_options(a, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    rd_kafka_DeleteGroups(a->rk, &dg, 1, options, a->q);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_DeleteGroup_destroy(dg);
    rd_kafka_event_t *ev = admin_wait(a, "DeleteGroups");
    if (!ev) return 1;
    size_t n;
    const rd_kafka_group_result_t **grs =
        rd_kafka_DeleteGroups_result_groups(rd_kafka_event_DeleteGroups_result(ev), &n);
    const rd_kafka_error_t *error = n == 1 ? rd_kafka_group_result_error(grs[0]) : NULL;
    rd_kafka_resp_err_t code = error ? rd_kafka_error_code(error) : RD_KAFKA_RESP_ERR_NO_ERROR;
    int rc = 0;
    if (n != 1) rc = fail("DeleteGroups answered %zu groups, not 1", n);
    else if (code == RD_KAFKA_RESP_ERR_GROUP_ID_NOT_FOUND)
        rc = fail("group '%s' does not exist on the broker at %s", group, a->o->bootstrap);
    else if (code && code != RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP)
        rc = group_error(a, "DeleteGroups", "delete", group, error);
    rd_kafka_event_destroy(ev);
    if (code == RD_KAFKA_RESP_ERR_NON_EMPTY_GROUP) return delete_refused(a, group);
    if (!rc) printf("deleted group '%s' and its committed offsets\n", group);
    return rc;
}

/* ---- reset-offsets ---- */

/* The new offset of each row, from --to-*; --to-offset outside [log start, log end] is clamped with a note. */
static void reset_targets(const gopts *o, gview *v)
{
    for (int i = 0; i < v->nparts; i++) {
        gpart *p = &v->parts[i];
        if (o->to == TO_EARLIEST) p->target = p->low;
        else if (o->to == TO_LATEST) p->target = p->high;
        else if (o->to_offset < p->low) {
            printf("note: %s[%" PRId32 "]: offset %" PRId64 " is before the log start %" PRId64 "; using %" PRId64
                   "\n", p->topic, p->partition, o->to_offset, p->low, p->low);
            p->target = p->low;
        } else if (o->to_offset > p->high) {
            printf("note: %s[%" PRId32 "]: offset %" PRId64 " is past the log end %" PRId64 "; using %" PRId64 "\n",
                   p->topic, p->partition, o->to_offset, p->high, p->high);
            p->target = p->high;
        } else
            p->target = o->to_offset;
    }
}

static void reset_print(const gview *v)
{
    table t = {.ncols = 6};
    table_row(&t, (const char *[]){"TOPIC", "PARTITION", "LOG-START", "LOG-END", "COMMITTED", "NEW"});
    for (int i = 0; i < v->nparts; i++) {
        const gpart *p = &v->parts[i];
        char part[16], low[24], high[24], old[24], target[24];
        snprintf(part, sizeof part, "%" PRId32, p->partition);
        table_row(&t, (const char *[]){p->topic, part, fmt_offset(low, p->low), fmt_offset(high, p->high),
                                       fmt_offset(old, p->committed), fmt_offset(target, p->target)});
    }
    table_print(&t);
    table_free(&t);
}

/* Checks each partition's answer to the commit. */
static int reset_take(admin *a, const char *group, const rd_kafka_group_result_t *gr)
{
    const rd_kafka_error_t *error = rd_kafka_group_result_error(gr);
    if (error) return group_error(a, "OffsetCommit", "commit the offsets of", group, error);
    const rd_kafka_topic_partition_list_t *got = rd_kafka_group_result_partitions(gr);
    int rc = 0;
    for (int i = 0; got && i < got->cnt; i++) {
        rd_kafka_resp_err_t err = got->elems[i].err;
        if (!err) continue;
        if (err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID || err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
            err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS)
            rc = fail("%s[%" PRId32 "] not committed: group '%s' became active meanwhile (%s); stop its consumers "
                      "and run again", got->elems[i].topic, got->elems[i].partition, group, rd_kafka_err2str(err));
        else
            rc = fail("%s[%" PRId32 "] not committed: %s", got->elems[i].topic, got->elems[i].partition,
                      rd_kafka_err2str(err));
    }
    return rc;
}

static int reset_commit(admin *a, const char *group, const gview *v)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(v->nparts);
    for (int i = 0; i < v->nparts; i++)
        rd_kafka_topic_partition_list_add(list, v->parts[i].topic, v->parts[i].partition)->offset = v->parts[i].target;
    rd_kafka_AlterConsumerGroupOffsets_t *req = rd_kafka_AlterConsumerGroupOffsets_new(group, list);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_AdminOptions_t *options = admin_options(a, RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS);
    rd_kafka_AlterConsumerGroupOffsets(a->rk, &req, 1, options, a->q);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_AlterConsumerGroupOffsets_destroy(req);
    rd_kafka_event_t *ev = admin_wait(a, "OffsetCommit");
    if (!ev) return 1;
    size_t n;
    const rd_kafka_group_result_t **grs =
        rd_kafka_AlterConsumerGroupOffsets_result_groups(rd_kafka_event_AlterConsumerGroupOffsets_result(ev), &n);
    int rc = n == 1 ? reset_take(a, group, grs[0]) : fail("OffsetCommit answered %zu groups, not 1", n);
    rd_kafka_event_destroy(ev);
    if (!rc)
        printf("committed: group '%s' resumes %s at the NEW offsets (%d partition%s)\n", group, a->o->topic, v->nparts,
               plural(v->nparts));
    return rc;
}

/* The topic exists and has --partition; every partition to reset gets a row. */
static int reset_rows(admin *a, gview *v)
{
    const gopts *o = a->o;
    const rd_kafka_metadata_topic_t *t = find_topic(a, o->topic);
    if (!t) return fail("topic '%s' does not exist on the broker at %s", o->topic, a->o->bootstrap);
    bool found = o->partition < 0;
    for (int k = 0; k < t->partition_cnt; k++) {
        if (o->partition >= 0 && t->partitions[k].id != o->partition) continue;
        part_get(v, t->topic, t->partitions[k].id);
        found = true;
    }
    if (!found)
        return fail("topic '%s' has no partition %" PRId32 " (it has %d: 0 to %d)", o->topic, o->partition,
                    t->partition_cnt, t->partition_cnt - 1);
    return 0;
}

static int cmd_reset(admin *a, const char *group)
{
    const gopts *o = a->o;
    gview v = {0};
    int rc = describe_group(a, group, &v);
    if (rc) goto out;
    if (view_active(&v)) {
        rc = fail("group '%s' has %d active member%s (state %s); stop its consumers before resetting its offsets",
                  group, v.nmembers, plural(v.nmembers), rd_kafka_consumer_group_state_name(v.state));
        goto out;
    }
    rc = reset_rows(a, &v);
    if (!rc) rc = fetch_committed(a, group, &v, o->topic, o->partition);
    if (!rc) rc = fetch_watermarks(a, &v, true);
    if (rc) goto out;
    qsort(v.parts, (size_t)v.nparts, sizeof *v.parts, part_cmp);
    reset_targets(o, &v);
    reset_print(&v);
    if (o->dry_run) printf("dry run: nothing committed (run again without --dry-run to commit)\n");
    else rc = reset_commit(a, group, &v);
out:
    view_free(&v);
    return rc;
}

/* ---- options ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice groups [options] list\n"
            "       sluice groups [options] describe GROUP\n"
            "       sluice groups [options] delete GROUP\n"
            "       sluice groups [options] reset-offsets GROUP --topic T\n"
            "                     (--to-earliest | --to-latest | --to-offset N) [--partition P] [--dry-run]\n"
            "\n"
            "Administers the consumer groups of a Kafka broker (this one or any other) with\n"
            "librdkafka's Admin API.\n"
            "\n"
            "commands:\n"
            "  list                   every consumer group: id, state, protocol type ('-' for a group\n"
            "                         that only has committed offsets), number of members\n"
            "  describe GROUP         state, protocol and assignor, coordinator, members; then one row\n"
            "                         per partition the group has a committed offset for or is\n"
            "                         assigned: member ('-' if none), client id, host, committed\n"
            "                         offset ('-' if none), log end, lag (log end - committed, when\n"
            "                         both are known); members without partitions get a row each;\n"
            "                         last, the total lag\n"
            "  delete GROUP           delete an inactive group and its committed offsets; refused\n"
            "                         while it has members\n"
            "  reset-offsets GROUP    move the group's committed offsets on a topic: prints each\n"
            "                         partition's log start and end, committed and new offset, then\n"
            "                         commits. Refused while the group has members (state must be\n"
            "                         Empty or Dead): stop its consumers first\n"
            "\n"
            "options:\n"
            "  --bootstrap HOST:PORT  broker to ask (default 127.0.0.1:9092, or $SLUICE_BOOTSTRAP when\n"
            "                         set); a comma-separated list of brokers also works\n"
            "  --timeout MS           how long each request may take, connecting included (default\n"
            "                         10000)\n"
            "  -h, --help             this text\n"
            "\n"
            "reset-offsets options:\n"
            "  --topic T              the topic whose offsets to move (required)\n"
            "  --to-earliest          to the log start: the group re-reads everything still kept\n"
            "  --to-latest            to the log end: the group skips everything written so far\n"
            "  --to-offset N          to offset N; outside [log start, log end] it is clamped to the\n"
            "                         nearer end, with a note\n"
            "  --partition P          only partition P (default: every partition of the topic)\n"
            "  --dry-run              print the new offsets, commit nothing\n"
            "\n"
            "Exit status: 0 done; 1 the broker could not be reached, refused, or the group is\n"
            "unknown or active (the message says which); 2 bad usage.\n");
}

static int parse_num(const char *opt, const char *text, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return usage_error("invalid %s '%s': expected a number from %lld to %lld", opt, text, min, max);
    *out = v;
    return 0;
}

static int parse_opt(int c, const char *arg, gopts *o)
{
    long long v;
    switch (c) {
    case 'b':
        if (!*arg || strpbrk(arg, " \t")) return usage_error("invalid --bootstrap '%s': expected HOST:PORT", arg);
        o->bootstrap = arg;
        return 0;
    case 'T':
        if (parse_num("--timeout", arg, 1, 3600000, &v)) return 2;
        o->timeout_ms = v;
        return 0;
    case 't':
        if (!*arg) return usage_error("invalid --topic '': expected a topic name");
        o->topic = arg;
        o->reset_opt = "--topic";
        return 0;
    case 'p':
        if (parse_num("--partition", arg, 0, INT32_MAX, &v)) return 2;
        o->partition = (int32_t)v;
        o->reset_opt = "--partition";
        return 0;
    case 'O':
        if (parse_num("--to-offset", arg, 0, INT64_MAX, &v)) return 2;
        o->to_offset = v;
        o->to = TO_OFFSET;
        o->nto++;
        o->reset_opt = "--to-offset";
        return 0;
    case 'E':
    case 'L':
        o->to = c == 'E' ? TO_EARLIEST : TO_LATEST;
        o->nto++;
        o->reset_opt = c == 'E' ? "--to-earliest" : "--to-latest";
        return 0;
    case 'n':
        o->dry_run = true;
        o->reset_opt = "--dry-run";
        return 0;
    }
    return 2;
}

/* The command and GROUP after the options, and which options go with which command. */
static int check_args(int nargs, char **args, gopts *o)
{
    static const char *const actions[] = {"list", "describe", "delete", "reset-offsets"};
    o->action = args[0];
    int known = 0;
    for (int i = 0; i < 4; i++) known |= strcmp(o->action, actions[i]) == 0;
    if (!known) return usage_error("unknown command '%s': expected list, describe, delete or reset-offsets", args[0]);
    bool list = strcmp(o->action, "list") == 0, reset = strcmp(o->action, "reset-offsets") == 0;
    if (nargs > (list ? 1 : 2)) return usage_error("unexpected argument '%s'", args[list ? 1 : 2]);
    if (!list && nargs < 2) return usage_error("%s needs a GROUP", o->action);
    o->group = list ? NULL : args[1];
    if (o->group && !*o->group) return usage_error("GROUP must not be empty");
    if (!reset && o->reset_opt) return usage_error("%s only applies to reset-offsets", o->reset_opt);
    if (reset && !o->topic) return usage_error("reset-offsets needs --topic T");
    if (reset && o->nto == 0) return usage_error("reset-offsets needs one of --to-earliest, --to-latest, --to-offset N");
    if (reset && o->nto > 1) return usage_error("give only one of --to-earliest, --to-latest, --to-offset N");
    return 0;
}

/* Returns -1 to go on, else the exit status (0 after --help). */
static int parse(int argc, char **argv, gopts *o)
{
    static const struct option lo[] = {
        {"bootstrap", required_argument, NULL, 'b'}, {"timeout", required_argument, NULL, 'T'},
        {"topic", required_argument, NULL, 't'},     {"partition", required_argument, NULL, 'p'},
        {"to-earliest", no_argument, NULL, 'E'},     {"to-latest", no_argument, NULL, 'L'},
        {"to-offset", required_argument, NULL, 'O'}, {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    const char *env = getenv("SLUICE_BOOTSTRAP");
    *o = (gopts){.bootstrap = env && *env ? env : DEFAULT_BOOTSTRAP, .timeout_ms = 10000, .partition = -1};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (c == ':') return usage_error("option '%s' needs a value", argv[optind - 1]);
        if (c == '?') return usage_error("unknown option '%s'", argv[optind - 1]);
        if (parse_opt(c, optarg, o)) return 2;
    }
    if (optind == argc) {
        usage(stderr);
        return 2;
    }
    int rc = check_args(argc - optind, argv + optind, o);
    return rc ? rc : -1;
}

int sl_cli_groups(int argc, char **argv)
{
    gopts o;
    int rc = parse(argc, argv, &o);
    if (rc >= 0) return rc;
    admin a;
    rc = admin_open(&a, &o);
    if (!rc) {
        if (strcmp(o.action, "list") == 0) rc = cmd_list(&a);
        else if (strcmp(o.action, "describe") == 0) rc = cmd_describe(&a, o.group);
        else if (strcmp(o.action, "delete") == 0) rc = cmd_delete(&a, o.group);
        else rc = cmd_reset(&a, o.group);
    }
    admin_close(&a);
    return rc;
}
