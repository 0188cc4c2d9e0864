/*
 * Wire tests of the broker's protocol edges: ApiVersions (golden bytes),
 * unsupported versions and keys, bad frames, ordering of pipelined
 * requests. A broker runs in a thread of the test; the test speaks raw
 * bytes to it over TCP.
 */
#include "wire.h"

static const struct {
    int16_t key, min, max;
} served[] = {{0, 0, 7},  {1, 4, 11}, {2, 0, 3},  {3, 0, 6},  {8, 1, 7},  {9, 1, 7},  {10, 0, 2},
               {11, 0, 5}, {12, 0, 3}, {13, 0, 3}, {14, 0, 3}, {15, 0, 4}, {16, 0, 4}, {18, 0, 3},
               {19, 0, 4}, {20, 0, 3}, {22, 0, 4}, {24, 0, 1}, {25, 0, 1}, {26, 0, 1},
               {28, 0, 3}, {32, 0, 2}, {37, 0, 1}, {42, 0, 1}};
#define NSERVED ((int)(sizeof served / sizeof served[0]))

SL_TEST(api_versions_v0_golden)
{
    wbroker w;
    wbroker_config(&w, NULL);
    wbroker_start(&w);
    int fd = wconnect(w.port);
    /* size 10: key 18, version 0, correlation 7, client id null */
    static const uint8_t req[] = {0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff};
    wsend(fd, req, sizeof req);
    size_t len;
    uint8_t *resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    uint8_t want[4 + 2 + 4 + NSERVED * 6];
    size_t n = 0;
    sl_put_be32(want, 7), n = 4;
    sl_put_be16(want + n, 0), n += 2;
    sl_put_be32(want + n, NSERVED), n += 4;
    for (int i = 0; i < NSERVED; i++) {
        sl_put_be16(want + n, (uint16_t)served[i].key);
        sl_put_be16(want + n + 2, (uint16_t)served[i].min);
        sl_put_be16(want + n + 4, (uint16_t)served[i].max);
        n += 6;
    }
    SL_CHECK_INT(len, n);
    SL_CHECK_MEM(resp, want, n);
    sl_free(resp);
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(api_versions_v3_flexible_and_v4_unsupported)
{
    wbroker w;
    wbroker_config(&w, NULL);
    wbroker_start(&w);
    int fd = wconnect(w.port);
    /* v3: header v2 (client id int16 + empty tags), body compact strings "a" "1" + tags */
    static const uint8_t v3[] = {0, 0, 0, 18, 0, 18, 0, 3, 0, 0, 0, 1, 0, 2, 'c', 'l', 0, 2, 'a', 2, '1', 0};
    wsend(fd, v3, sizeof v3);
    size_t len;
    uint8_t *resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    /* header v0 (no tags even for v3), error 0, compact array: count + 1 */
    SL_CHECK_INT((int32_t)sl_be32(resp), 1);
    SL_CHECK_INT(sl_be16(resp + 4), 0);
    SL_CHECK_INT(resp[6], NSERVED + 1);
    sl_free(resp);
    /* v4 is above our max: answered in v0 format with UNSUPPORTED_VERSION and {18, 0, 3} */
    static const uint8_t v4[] = {0, 0, 0, 18, 0, 18, 0, 4, 0, 0, 0, 2, 0, 2, 'c', 'l', 0, 2, 'a', 2, '1', 0};
    wsend(fd, v4, sizeof v4);
    resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    static const uint8_t want[] = {0, 0, 0, 2, 0, 35, 0, 0, 0, 1, 0, 18, 0, 0, 0, 3};
    SL_CHECK_INT(len, sizeof want);
    SL_CHECK_MEM(resp, want, sizeof want);
    sl_free(resp);
    /* bad client software name (KIP-511) -> INVALID_REQUEST, connection stays open */
    static const uint8_t bad[] = {0, 0, 0, 18, 0, 18, 0, 3, 0, 0, 0, 3, 0, 2, 'c', 'l', 0, 2, '-', 2, '1', 0};
    wsend(fd, bad, sizeof bad);
    resp = wrecv_frame(fd, &len, 5000);
    SL_CHECK(resp);
    SL_CHECK_INT(sl_be16(resp + 4), SL_KERR_INVALID_REQUEST);
    sl_free(resp);
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(unknown_api_closes_only_that_connection)
{
    wbroker w;
    wbroker_config(&w, NULL);
    wbroker_start(&w);
    int good = wconnect(w.port), badfd = wconnect(w.port);
    static const uint8_t unknown[] = {0, 0, 0, 10, 0x7f, 0x00, 0, 0, 0, 0, 0, 9, 0xff, 0xff};
    wsend(badfd, unknown, sizeof unknown);
    SL_CHECK(wclosed(badfd, 5000));
    close(badfd);
    /* Metadata v7 is above what we serve: also closed */
    badfd = wconnect(w.port);
    static const uint8_t meta7[] = {0, 0, 0, 10, 0, 3, 0, 7, 0, 0, 0, 9, 0xff, 0xff};
    wsend(badfd, meta7, sizeof meta7);
    SL_CHECK(wclosed(badfd, 5000));
    close(badfd);
    static const uint8_t req[] = {0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff};
    wsend(good, req, sizeof req);
    size_t len;
    uint8_t *resp = wrecv_frame(good, &len, 5000);
    SL_CHECK(resp);
    sl_free(resp);
    close(good);
    wbroker_stop(&w);
}

SL_TEST(bad_frames_close_the_connection)
{
    wbroker w;
    wbroker_config(&w, NULL);
    w.cfg.request_max_bytes = 4096;
    wbroker_start(&w);
    int fd = wconnect(w.port);
    static const uint8_t big[] = {0, 0, 0x20, 0x00}; /* 8192 > max */
    wsend(fd, big, sizeof big);
    SL_CHECK(wclosed(fd, 5000));
    close(fd);
    fd = wconnect(w.port);
    static const uint8_t neg[] = {0xff, 0xff, 0xff, 0xf0};
    wsend(fd, neg, sizeof neg);
    SL_CHECK(wclosed(fd, 5000));
    close(fd);
    fd = wconnect(w.port);
    static const uint8_t tiny[] = {0, 0, 0, 3, 0, 18, 0};
    wsend(fd, tiny, sizeof tiny);
    SL_CHECK(wclosed(fd, 5000));
    close(fd);
    /* A truncated Metadata body: header fine, array count says 5 topics, no bytes follow */
    fd = wconnect(w.port);
    static const uint8_t trunc[] = {0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 9, 0xff, 0xff, 0, 0, 0, 5};
    wsend(fd, trunc, sizeof trunc);
    SL_CHECK(wclosed(fd, 5000));
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(pipelined_requests_answered_in_order)
{
    wbroker w;
    wbroker_config(&w, NULL);
    wbroker_start(&w);
    int fd = wconnect(w.port);
    uint8_t many[14 * 50];
    for (int i = 0; i < 50; i++) {
        static const uint8_t req[] = {0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(many + 14 * i, req, 14);
        sl_put_be32(many + 14 * i + 8, (uint32_t)(1000 + i));
    }
    wsend(fd, many, sizeof many);
    for (int i = 0; i < 50; i++) {
        size_t len;
        uint8_t *resp = wrecv_frame(fd, &len, 5000);
        SL_CHECK(resp);
        SL_CHECK_INT((int32_t)sl_be32(resp), 1000 + i);
        sl_free(resp);
    }
    close(fd);
    wbroker_stop(&w);
}

SL_TEST(data_dir_is_locked)
{
    wbroker w;
    wbroker_config(&w, NULL);
    wbroker_start(&w);
    sl_broker_config cfg = w.cfg;
    sl_broker *second = NULL;
    sl_logger_set_level(SL_LOG_OFF);
    SL_CHECK_INT(sl_broker_open(&cfg, &second), SL_EBUSY);
    sl_logger_set_level(SL_LOG_WARN);
    wbroker_stop(&w);
}
