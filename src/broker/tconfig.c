/*
 * tconfig.c - topic configs: Kafka's names, defaults, validation, and the
 * listing DescribeConfigs returns.
 *
 * Settable per topic (CreateTopics): retention.ms, retention.bytes,
 * segment.bytes, segment.ms, max.message.bytes. Listed read-only, because
 * they describe what this broker does and cannot be changed yet:
 * cleanup.policy=delete, compression.type=producer,
 * message.timestamp.type=CreateTime, min.insync.replicas=1,
 * index.interval.bytes=4096, preallocate=true, segment.jitter.ms=0,
 * message.downconversion.enable=false, unclean.leader.election.enable=false,
 * remote.storage.enable=false, and the flush settings implied by --flush. Setting one of those to its only value is
 * accepted; any other value or unknown key is INVALID_CONFIG with a message
 * naming the key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "broker/broker_int.h"

enum { K_RETENTION_MS, K_RETENTION_BYTES, K_SEGMENT_BYTES, K_SEGMENT_MS, K_MAX_MESSAGE_BYTES, K_COUNT };

static const struct {
    const char *name;
    int64_t min, max;
} keys[K_COUNT] = {
    [K_RETENTION_MS] = {"retention.ms", -1, INT64_MAX},
    [K_RETENTION_BYTES] = {"retention.bytes", -1, INT64_MAX},
    [K_SEGMENT_BYTES] = {"segment.bytes", 14, INT32_MAX},
    [K_SEGMENT_MS] = {"segment.ms", 1, INT64_MAX},
    [K_MAX_MESSAGE_BYTES] = {"max.message.bytes", 0, INT32_MAX},
};

static const struct {
    const char *name;
    const char *value;
} fixed[] = {
    {"cleanup.policy", "delete"},
    {"compression.type", "producer"},
    {"message.timestamp.type", "CreateTime"},
    {"min.insync.replicas", "1"},
    {"index.interval.bytes", "4096"},
    {"preallocate", "true"},
    {"segment.jitter.ms", "0"},
    {"message.downconversion.enable", "false"},
    {"unclean.leader.election.enable", "false"},
    {"remote.storage.enable", "false"},
};

void sl__topic_config_default(const sl_broker *broker, sl_topic_config *c)
{
    memset(c, 0, sizeof *c);
    c->retention_ms = 7LL * 24 * 3600 * 1000;
    c->retention_bytes = -1;
    c->segment_bytes = 1LL << 30;
    c->segment_ms = 7LL * 24 * 3600 * 1000;
    c->max_message_bytes = broker->cfg.message_max_bytes;
}

static int64_t *field(sl_topic_config *c, int k)
{
    switch (k) {
    case K_RETENTION_MS: return &c->retention_ms;
    case K_RETENTION_BYTES: return &c->retention_bytes;
    case K_SEGMENT_BYTES: return &c->segment_bytes;
    case K_SEGMENT_MS: return &c->segment_ms;
    default: return NULL;
    }
}

static int64_t get(const sl_topic_config *c, int k)
{
    if (k == K_MAX_MESSAGE_BYTES) return c->max_message_bytes;
    return *field((sl_topic_config *)c, k);
}

int16_t sl__topic_config_set(sl_topic_config *c, const char *key, size_t key_len, const char *value,
                             size_t value_len, char *msg, size_t msg_len)
{
    char v[64];
    if (value_len >= sizeof v) value_len = sizeof v - 1;
    memcpy(v, value ? value : "", value ? value_len : 0);
    v[value ? value_len : 0] = 0;
    for (size_t i = 0; i < SL_ARRAY_LEN(fixed); i++) {
        if (strlen(fixed[i].name) != key_len || memcmp(fixed[i].name, key, key_len) != 0) continue;
        if (strcmp(v, fixed[i].value) == 0) return 0;
        snprintf(msg, msg_len, "%s=%s is not supported by this broker (only %s)", fixed[i].name, v, fixed[i].value);
        return SL_KERR_INVALID_CONFIG;
    }
    for (int k = 0; k < K_COUNT; k++) {
        if (strlen(keys[k].name) != key_len || memcmp(keys[k].name, key, key_len) != 0) continue;
        char *end;
        errno = 0;
        long long n = strtoll(v, &end, 10);
        if (errno || end == v || *end || n < keys[k].min || n > keys[k].max) {
            snprintf(msg, msg_len, "%s must be an integer from %lld to %lld, not '%s'", keys[k].name,
                     (long long)keys[k].min, (long long)keys[k].max, v);
            return SL_KERR_INVALID_CONFIG;
        }
        if (k == K_MAX_MESSAGE_BYTES) c->max_message_bytes = (int32_t)n;
        else *field(c, k) = n;
        c->set |= 1u << k;
        return 0;
    }
    snprintf(msg, msg_len, "unknown or unsupported topic config '%.*s'", (int)SL_MIN(key_len, 100), key);
    return SL_KERR_INVALID_CONFIG;
}

void sl__log_config_of(const sl_broker *broker, const sl_topic_config *tc, sl_log_config *lc)
{
    sl_log_config_default(lc);
    lc->retention_ms = tc->retention_ms;
    lc->retention_bytes = tc->retention_bytes;
    lc->segment_bytes = tc->segment_bytes;
    lc->segment_ms = tc->segment_ms;
    lc->hw_on_append = broker->cfg.flush_mode != SL_FLUSH_ALWAYS;
    /* Zero-filled space ahead of the writes: an fdatasync of overwritten blocks is ~1.7x faster
       than of appended ones (docs/internals/storage.md); storage grows it in <= 1 MiB steps, and
       only while the partition appends < 4 MiB/s (above, the zeros cost more than they save). */
    lc->preallocate_bytes = SL_MIN(8LL << 20, tc->segment_bytes);
    lc->preallocate_rate_max = 4LL << 20;
}

static void put(sl_tconf_entry *e, const char *name, const char *value, bool is_default, bool read_only)
{
    e->name = name;
    snprintf(e->value, sizeof e->value, "%s", value);
    e->is_default = is_default;
    e->read_only = read_only;
}

static int flush_entries(const sl_broker *broker, sl_tconf_entry *out)
{
    char ms[32];
    const char *msgs = broker->cfg.flush_mode == SL_FLUSH_ALWAYS ? "1" : "9223372036854775807";
    if (broker->cfg.flush_mode == SL_FLUSH_INTERVAL) snprintf(ms, sizeof ms, "%lld", (long long)broker->cfg.flush_interval_ms);
    else snprintf(ms, sizeof ms, "%s", broker->cfg.flush_mode == SL_FLUSH_ALWAYS ? "0" : "9223372036854775807");
    put(&out[0], "flush.messages", msgs, true, true);
    put(&out[1], "flush.ms", ms, true, true);
    return 2;
}

int sl__topic_config_describe(const sl_broker *broker, const sl_topic_config *c, sl_tconf_entry *out, int max)
{
    SL_ASSERT(max >= K_COUNT + (int)SL_ARRAY_LEN(fixed) + 2);
    int n = 0;
    for (int k = 0; k < K_COUNT; k++) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)get(c, k));
        put(&out[n++], keys[k].name, v, !(c->set & (1u << k)), false);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(fixed); i++) put(&out[n++], fixed[i].name, fixed[i].value, true, true);
    n += flush_entries(broker, &out[n]);
    return n;
}

int sl__broker_config_describe(const sl_broker *broker, sl_tconf_entry *out, int max)
{
    SL_ASSERT(max >= 8);
    char v[32];
    int n = 0;
    snprintf(v, sizeof v, "%d", broker->cfg.default_partitions);
    put(&out[n++], "num.partitions", v, false, true);
    put(&out[n++], "auto.create.topics.enable", broker->cfg.auto_create ? "true" : "false", false, true);
    snprintf(v, sizeof v, "%d", broker->cfg.message_max_bytes);
    put(&out[n++], "message.max.bytes", v, false, true);
    snprintf(v, sizeof v, "%lld", (long long)broker->cfg.request_max_bytes);
    put(&out[n++], "socket.request.max.bytes", v, false, true);
    snprintf(v, sizeof v, "%d", broker->cfg.node_id);
    put(&out[n++], "broker.id", v, false, true);
    n += flush_entries(broker, &out[n]);
    return n;
}
