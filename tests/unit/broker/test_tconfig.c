/* Tests for src/broker/tconfig.c and the name rules of topics.c. */
#include "test.h"
#include "broker/broker_int.h"

static sl_broker fake;

static int16_t set(sl_topic_config *c, const char *k, const char *v)
{
    char msg[200];
    return sl__topic_config_set(c, k, strlen(k), v, v ? strlen(v) : 0, msg, sizeof msg);
}

SL_TEST(topic_names_follow_kafka)
{
    SL_CHECK(sl__topic_name_valid("orders", 6));
    SL_CHECK(sl__topic_name_valid("a.b_c-D9", 8));
    SL_CHECK(!sl__topic_name_valid("", 0));
    SL_CHECK(!sl__topic_name_valid(".", 1));
    SL_CHECK(!sl__topic_name_valid("..", 2));
    SL_CHECK(!sl__topic_name_valid("a/b", 3));
    SL_CHECK(!sl__topic_name_valid("a b", 3));
    char long_name[251];
    memset(long_name, 'x', sizeof long_name);
    SL_CHECK(sl__topic_name_valid(long_name, 249));
    SL_CHECK(!sl__topic_name_valid(long_name, 250));
}

SL_TEST(configs_parse_validate_and_describe)
{
    sl_broker_config_default(&fake.cfg);
    sl_topic_config c;
    sl__topic_config_default(&fake, &c);
    SL_CHECK_INT(c.max_message_bytes, 1048588);
    SL_CHECK_INT(set(&c, "retention.ms", "86400000"), 0);
    SL_CHECK_INT(c.retention_ms, 86400000);
    SL_CHECK_INT(set(&c, "segment.bytes", "1048576"), 0);
    SL_CHECK_INT(set(&c, "retention.ms", "soon"), SL_KERR_INVALID_CONFIG);
    SL_CHECK_INT(set(&c, "retention.ms", "-2"), SL_KERR_INVALID_CONFIG);
    SL_CHECK_INT(set(&c, "segment.bytes", "99999999999"), SL_KERR_INVALID_CONFIG);
    SL_CHECK_INT(set(&c, "cleanup.policy", "delete"), 0);
    SL_CHECK_INT(set(&c, "cleanup.policy", "compact"), SL_KERR_INVALID_CONFIG);
    SL_CHECK_INT(set(&c, "no.such.config", "1"), SL_KERR_INVALID_CONFIG);
    SL_CHECK_INT(c.retention_ms, 86400000); /* failed sets change nothing */
    sl_tconf_entry e[32];
    int n = sl__topic_config_describe(&fake, &c, e, 32);
    SL_CHECK(n >= 9);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(e[i].name, "retention.ms") == 0) {
            SL_CHECK_STR(e[i].value, "86400000");
            SL_CHECK(!e[i].is_default);
            seen++;
        }
        if (strcmp(e[i].name, "retention.bytes") == 0) {
            SL_CHECK_STR(e[i].value, "-1");
            SL_CHECK(e[i].is_default);
            seen++;
        }
    }
    SL_CHECK_INT(seen, 2);
}

SL_TEST(flush_modes_parse)
{
    sl_flush_mode m;
    int64_t ms = 0;
    SL_CHECK_OK(sl_broker_parse_flush("always", &m, &ms));
    SL_CHECK_INT(m, SL_FLUSH_ALWAYS);
    SL_CHECK_OK(sl_broker_parse_flush("os", &m, &ms));
    SL_CHECK_INT(m, SL_FLUSH_OS);
    SL_CHECK_OK(sl_broker_parse_flush("interval:250", &m, &ms));
    SL_CHECK_INT(m, SL_FLUSH_INTERVAL);
    SL_CHECK_INT(ms, 250);
    SL_CHECK(sl_broker_parse_flush("interval:", &m, &ms) != 0);
    SL_CHECK(sl_broker_parse_flush("interval:0", &m, &ms) != 0);
    SL_CHECK(sl_broker_parse_flush("sometimes", &m, &ms) != 0);
}
