/*
 * topics.c - the topic registry, its files, and topic configs.
 *
 * On disk (all under the data directory):
 *
 *   <topic>-<partition>/           one storage log per partition (storage/)
 *   __sluice/topics/<topic>.conf   the topic's metadata, text, one key=value a line:
 *                                    partitions=3
 *                                    retention.ms=86400000      (only configs set explicitly)
 *   __sluice/cluster_id            the cluster id, made at first start
 *
 * A .conf file is written to a temporary name, synced, renamed over and its
 * directory synced, so a topic exists whole or not at all: a crash during
 * CreateTopics leaves no half topic, and partition directories without a
 * .conf (a crash during DeleteTopics, which removes the .conf first) are
 * removed at start. Topic names are Kafka's ([a-zA-Z0-9._-]{1,249}, not "."
 * or ".."), so they are safe file names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "broker/broker_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

#define TOPIC_HASH 4096
#define META_DIR "__sluice/topics"

void sl__fetch_waits_detach(sl_partition *partition);
void sl__flusher_forget(sl_flusher *f, sl_partition *partition);

static uint32_t name_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h % TOPIC_HASH;
}

bool sl__topic_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > SL_TOPIC_NAME_MAX) return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.')) return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

sl_topic *sl__topic_find(sl_broker *broker, const char *name, size_t len)
{
    if (!broker->topic_hash || len > SL_TOPIC_NAME_MAX) return NULL;
    for (sl_topic *t = broker->topic_hash[name_hash(name, len)]; t; t = t->hash_next)
        if (strlen(t->name) == len && memcmp(t->name, name, len) == 0) return t;
    return NULL;
}

sl_topic *sl__topic_next(sl_broker *broker, sl_topic *prev)
{
    uint32_t b = 0;
    if (prev) {
        if (prev->hash_next) return prev->hash_next;
        b = name_hash(prev->name, strlen(prev->name)) + 1;
    }
    for (; b < TOPIC_HASH; b++)
        if (broker->topic_hash[b]) return broker->topic_hash[b];
    return NULL;
}

sl_partition *sl__partition_get(sl_topic *topic, int32_t index)
{
    if (index < 0 || index >= topic->npartitions) return NULL;
    return topic->partitions[index];
}

static char *partition_dir(const sl_broker *broker, const char *name, int32_t index)
{
    return sl_asprintf("%s/%s-%d", broker->cfg.data_dir, name, index);
}

static char *meta_path(const sl_broker *broker, const char *name, const char *suffix)
{
    return sl_asprintf("%s/%s/%s%s", broker->cfg.data_dir, META_DIR, name, suffix);
}

/* ---- .conf files ---- */

static int write_conf(sl_broker *broker, const sl_topic *t)
{
    char text[1024];
    sl_tconf_entry entries[32];
    int n = snprintf(text, sizeof text, "partitions=%d\n", t->npartitions);
    int ne = sl__topic_config_describe(broker, &t->config, entries, (int)SL_ARRAY_LEN(entries));
    for (int i = 0; i < ne; i++)
        if (!entries[i].is_default && !entries[i].read_only)
            n += snprintf(text + n, sizeof text - (size_t)n, "%s=%s\n", entries[i].name, entries[i].value);
    SL_ASSERT(n > 0 && (size_t)n < sizeof text);
    char *path = meta_path(broker, t->name, ".conf");
    char *tmp = meta_path(broker, t->name, ".conf.tmp");
    int rc = sl_fileio_write_atomic(broker->cfg.io, path, tmp, text, (size_t)n);
    if (rc) SL_ERROR("topics", "cannot write %s: %s", path, strerror(errno));
    sl_free(path);
    sl_free(tmp);
    return rc;
}

static int open_partition(sl_broker *broker, sl_topic *t, int32_t i)
{
    sl_partition *p = SL_NEW(sl_partition);
    p->topic = t;
    p->index = i;
    sl_link_init(&p->produce_waits);
    sl_link_init(&p->fetch_waits);
    sl_log_config lc;
    sl__log_config_of(broker, &t->config, &lc);
    char *dir = partition_dir(broker, t->name, i);
    int rc = sl_log_open(dir, &lc, broker->cfg.io, broker->cfg.clock, &p->log);
    sl_free(dir);
    if (!rc) rc = sl__producers_open(broker, p);
    if (rc) {
        if (p->log) sl_log_close(p->log);
        sl__producers_close(broker, p, false);
        sl_free(p);
        return rc;
    }
    t->partitions[i] = p;
    return 0;
}

static void close_partition(sl_broker *broker, sl_partition *p, bool remove)
{
    sl__produce_waits_fail(p, SL_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    sl__fetch_waits_detach(p);
    if (broker->flusher) sl__flusher_forget(broker->flusher, p);
    sl__producers_close(broker, p, !remove);
    if (remove) sl_log_remove(p->log);
    else sl_log_close(p->log);
    sl_free(p);
}

static void insert(sl_broker *broker, sl_topic *t)
{
    uint32_t h = name_hash(t->name, strlen(t->name));
    t->hash_next = broker->topic_hash[h];
    broker->topic_hash[h] = t;
    broker->ntopics++;
}

static void unlink_topic(sl_broker *broker, sl_topic *t)
{
    for (sl_topic **pp = &broker->topic_hash[name_hash(t->name, strlen(t->name))]; *pp; pp = &(*pp)->hash_next) {
        if (*pp == t) {
            *pp = t->hash_next;
            broker->ntopics--;
            return;
        }
    }
    SL_UNREACHABLE();
}

static void free_topic(sl_broker *broker, sl_topic *t, bool remove)
{
    for (int32_t i = 0; i < t->npartitions; i++)
        if (t->partitions[i]) close_partition(broker, t->partitions[i], remove);
    sl_free(t->partitions);
    sl_free(t);
}

static sl_topic *topic_new(const char *name, size_t len, int32_t npartitions, const sl_topic_config *config)
{
    sl_topic *t = SL_NEW(sl_topic);
    memcpy(t->name, name, len);
    t->name[len] = 0;
    t->npartitions = npartitions;
    t->partitions = sl_calloc((size_t)npartitions, sizeof *t->partitions);
    t->config = *config;
    return t;
}

static int open_all(sl_broker *broker, sl_topic *t, int32_t from)
{
    for (int32_t i = from; i < t->npartitions; i++) {
        int rc = open_partition(broker, t, i);
        if (rc) {
            SL_ERROR("topics", "cannot open partition %s-%d: %s", t->name, i, sl_strerror(rc));
            return rc;
        }
    }
    return 0;
}

int16_t sl__topic_create(sl_broker *broker, const char *name, size_t len, int32_t npartitions,
                         const sl_topic_config *config, bool validate_only, char *msg, size_t msg_len)
{
    msg[0] = 0;
    if (!sl__topic_name_valid(name, len)) {
        snprintf(msg, msg_len, "topic name must be 1-249 characters of a-z A-Z 0-9 . _ -");
        return SL_KERR_INVALID_TOPIC_EXCEPTION;
    }
    if (sl__topic_find(broker, name, len)) {
        snprintf(msg, msg_len, "topic '%.*s' already exists", (int)len, name);
        return SL_KERR_TOPIC_ALREADY_EXISTS;
    }
    if (npartitions <= 0 || npartitions > broker->cfg.partitions_max) {
        snprintf(msg, msg_len, "number of partitions must be 1-%d", broker->cfg.partitions_max);
        return SL_KERR_INVALID_PARTITIONS;
    }
    if (validate_only) return 0;
    sl_topic *t = topic_new(name, len, npartitions, config);
    if (write_conf(broker, t) != 0 || open_all(broker, t, 0) != 0) {
        char *conf = meta_path(broker, t->name, ".conf");
        broker->cfg.io->unlink(broker->cfg.io, conf);
        sl_free(conf);
        free_topic(broker, t, true);
        snprintf(msg, msg_len, "cannot create the topic's files (see the broker log)");
        return SL_KERR_KAFKA_STORAGE_ERROR;
    }
    insert(broker, t);
    SL_INFO("topics", "created topic %s with %d partition%s", t->name, npartitions, npartitions == 1 ? "" : "s");
    return 0;
}

int16_t sl__topic_delete(sl_broker *broker, sl_topic *topic)
{
    char *conf = meta_path(broker, topic->name, ".conf");
    int rc = broker->cfg.io->unlink(broker->cfg.io, conf);
    sl_free(conf);
    if (rc != 0 && errno != ENOENT) {
        SL_ERROR("topics", "cannot delete topic %s: %s", topic->name, strerror(errno));
        return SL_KERR_KAFKA_STORAGE_ERROR;
    }
    sl__groups_topic_deleted(broker, topic->name);
    unlink_topic(broker, topic);
    /* A sync round may hold jobs of these logs: let it finish first. */
    sl__flusher_quiesce(broker->flusher);
    SL_INFO("topics", "deleted topic %s", topic->name);
    free_topic(broker, topic, true);
    return 0;
}

int16_t sl__topic_add_partitions(sl_broker *broker, sl_topic *topic, int32_t count, bool validate_only,
                                 char *msg, size_t msg_len)
{
    msg[0] = 0;
    if (count <= topic->npartitions || count > broker->cfg.partitions_max) {
        snprintf(msg, msg_len, "topic %s has %d partitions; the new count must be larger (and at most %d)",
                 topic->name, topic->npartitions, broker->cfg.partitions_max);
        return SL_KERR_INVALID_PARTITIONS;
    }
    if (validate_only) return 0;
    int32_t old = topic->npartitions;
    topic->partitions = sl_realloc(topic->partitions, sizeof *topic->partitions * (size_t)count);
    memset(topic->partitions + old, 0, sizeof *topic->partitions * (size_t)(count - old));
    topic->npartitions = count;
    if (open_all(broker, topic, old) != 0 || write_conf(broker, topic) != 0) {
        for (int32_t i = old; i < count; i++)
            if (topic->partitions[i]) close_partition(broker, topic->partitions[i], true);
        topic->npartitions = old;
        snprintf(msg, msg_len, "cannot create the new partitions' files (see the broker log)");
        return SL_KERR_KAFKA_STORAGE_ERROR;
    }
    SL_INFO("topics", "topic %s now has %d partitions", topic->name, count);
    return 0;
}

/* ---- loading at start ---- */

static int parse_conf(sl_broker *broker, const char *name, char *text, sl_topic_config *tc, int32_t *np)
{
    sl__topic_config_default(broker, tc);
    *np = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        char msg[160];
        if (strcmp(line, "partitions") == 0) {
            char *end;
            long v = strtol(eq + 1, &end, 10);
            if (*end || v <= 0 || v > SL_PARTITIONS_MAX) return SL_ECORRUPT;
            *np = (int32_t)v;
        } else if (sl__topic_config_set(tc, line, strlen(line), eq + 1, strlen(eq + 1), msg, sizeof msg)) {
            SL_WARN("topics", "topic %s: ignoring config %s: %s", name, line, msg);
        }
    }
    return *np > 0 ? 0 : SL_ECORRUPT;
}

static int load_one(sl_broker *broker, const char *file)
{
    size_t len = strlen(file);
    if (len < 6 || strcmp(file + len - 5, ".conf") != 0) return 0;
    char name[SL_TOPIC_NAME_MAX + 1];
    if (len - 5 > SL_TOPIC_NAME_MAX || !sl__topic_name_valid(file, len - 5)) return 0;
    memcpy(name, file, len - 5);
    name[len - 5] = 0;
    char *path = meta_path(broker, name, ".conf");
    char text[4096] = {0};
    sl_fileio *io = broker->cfg.io;
    int fd = io->open(io, path, O_RDONLY | O_CLOEXEC, 0);
    ssize_t n = fd >= 0 ? io->pread(io, fd, text, sizeof text - 1, 0) : -1;
    if (fd >= 0) io->close(io, fd);
    sl_free(path);
    sl_topic_config tc;
    int32_t np;
    if (n < 0 || parse_conf(broker, name, text, &tc, &np) != 0) {
        SL_ERROR("topics", "cannot read the metadata of topic %s (%s/%s/%s); fix or remove it", name,
                 broker->cfg.data_dir, META_DIR, file);
        return SL_ECORRUPT;
    }
    sl_topic *t = topic_new(name, strlen(name), np, &tc);
    int rc = open_all(broker, t, 0);
    if (rc) {
        free_topic(broker, t, false);
        return rc;
    }
    insert(broker, t);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

/* Partition directories whose topic has no .conf are leftovers of an interrupted delete. */
static void remove_orphans(sl_broker *broker)
{
    DIR *d = opendir(broker->cfg.data_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t nlen = strlen(e->d_name);
        bool deleted = nlen > 8 && strcmp(e->d_name + nlen - 8, ".deleted") == 0;
        char *dash = strrchr(e->d_name, '-');
        if (deleted) {
            char *path = sl_asprintf("%s/%s", broker->cfg.data_dir, e->d_name);
            SL_WARN("topics", "removing %s, left by an interrupted topic deletion", path);
            nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
            sl_free(path);
            continue;
        }
        if (e->d_name[0] == '.' || !dash || dash == e->d_name || strncmp(e->d_name, "__sluice", 9) == 0) continue;
        char *end;
        long idx = strtol(dash + 1, &end, 10);
        if (*end || idx < 0) continue;
        sl_topic *t = sl__topic_find(broker, e->d_name, (size_t)(dash - e->d_name));
        if (t && idx < t->npartitions) continue;
        char *path = sl_asprintf("%s/%s", broker->cfg.data_dir, e->d_name);
        SL_WARN("topics", "removing %s: no topic owns it (left by an interrupted topic deletion)", path);
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        sl_free(path);
    }
    if (d) closedir(d);
}

int sl__topics_load(sl_broker *broker)
{
    broker->topic_hash = sl_calloc(TOPIC_HASH, sizeof *broker->topic_hash);
    broker->topic_hash_size = TOPIC_HASH;
    char *dir = sl_asprintf("%s/%s", broker->cfg.data_dir, META_DIR);
    char *parent = sl_asprintf("%s/__sluice", broker->cfg.data_dir);
    broker->cfg.io->mkdir(broker->cfg.io, parent, 0755);
    broker->cfg.io->mkdir(broker->cfg.io, dir, 0755);
    sl_free(parent);
    DIR *d = opendir(dir);
    if (!d) {
        SL_ERROR("topics", "cannot open %s: %s", dir, strerror(errno));
        sl_free(dir);
        return SL_EIO;
    }
    sl_free(dir);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) rc = load_one(broker, e->d_name);
    closedir(d);
    if (rc == 0) remove_orphans(broker);
    return rc;
}

void sl__topics_close_all(sl_broker *broker)
{
    if (!broker->topic_hash) return;
    for (int b = 0; b < TOPIC_HASH; b++) {
        while (broker->topic_hash[b]) {
            sl_topic *t = broker->topic_hash[b];
            broker->topic_hash[b] = t->hash_next;
            free_topic(broker, t, false);
        }
    }
    broker->ntopics = 0;
    sl_free(broker->topic_hash);
    broker->topic_hash = NULL;
}

/* The element at e against the key. */
static int tp_cmp(const char *e, size_t topic_off, size_t part_off, const char *topic, size_t len, int32_t partition)
{
    const char *t;
    int32_t p;
    memcpy(&t, e + topic_off, sizeof t);
    memcpy(&p, e + part_off, sizeof p);
    size_t tlen = strlen(t);
    int c = memcmp(t, topic, SL_MIN(tlen, len));
    if (c) return c;
    if (tlen != len) return tlen < len ? -1 : 1;
    return p < partition ? -1 : p > partition;
}

int sl__tp_lower_bound(const void *base, int n, size_t size, size_t topic_off, size_t part_off, const char *topic,
                       size_t len, int32_t partition, bool *found)
{
    const char *b = base;
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (tp_cmp(b + (size_t)mid * size, topic_off, part_off, topic, len, partition) < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = lo < n && tp_cmp(b + (size_t)lo * size, topic_off, part_off, topic, len, partition) == 0;
    return lo;
}
