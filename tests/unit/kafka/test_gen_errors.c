/*
 * test_gen_errors.c - the generated Kafka error table (gen_errors.c):
 * numbers, names and retriability that clients branch on.
 */
#include "test.h"
#include "kafka/gen_errors.h"

SL_TEST(codes_match_kafka)
{
    SL_CHECK_INT(SL_KERR_UNKNOWN_SERVER_ERROR, -1);
    SL_CHECK_INT(SL_KERR_NONE, 0);
    SL_CHECK_INT(SL_KERR_OFFSET_OUT_OF_RANGE, 1);
    SL_CHECK_INT(SL_KERR_CORRUPT_MESSAGE, 2);
    SL_CHECK_INT(SL_KERR_UNKNOWN_TOPIC_OR_PARTITION, 3);
    SL_CHECK_INT(SL_KERR_NOT_COORDINATOR, 16);
    SL_CHECK_INT(SL_KERR_UNSUPPORTED_VERSION, 35);
    SL_CHECK_INT(SL_KERR_INVALID_REQUEST, 42);
    SL_CHECK_INT(SL_KERR_MEMBER_ID_REQUIRED, 79);
    SL_CHECK_INT(SL_KERR_PRODUCER_FENCED, 90);
    SL_CHECK_INT(SL_KERR_CODE_MIN, -1);
    SL_CHECK(SL_KERR_CODE_MAX >= 128);
}

SL_TEST(names)
{
    SL_CHECK_STR(sl_kafka_error_name(-1), "UNKNOWN_SERVER_ERROR");
    SL_CHECK_STR(sl_kafka_error_name(0), "NONE");
    SL_CHECK_STR(sl_kafka_error_name(6), "NOT_LEADER_OR_FOLLOWER");
    SL_CHECK_STR(sl_kafka_error_name(-2), "UNKNOWN_ERROR_CODE");
    SL_CHECK_STR(sl_kafka_error_name(INT16_MAX), "UNKNOWN_ERROR_CODE");
    for (int c = SL_KERR_CODE_MIN; c <= SL_KERR_CODE_MAX; c++) SL_CHECK(sl_kafka_error_name((int16_t)c) != NULL);
}

SL_TEST(retriable)
{
    SL_CHECK(sl_kafka_error_retriable(SL_KERR_UNKNOWN_TOPIC_OR_PARTITION));
    SL_CHECK(sl_kafka_error_retriable(SL_KERR_NOT_LEADER_OR_FOLLOWER));
    SL_CHECK(sl_kafka_error_retriable(SL_KERR_COORDINATOR_LOAD_IN_PROGRESS));
    SL_CHECK(sl_kafka_error_retriable(SL_KERR_NOT_COORDINATOR));
    SL_CHECK(!sl_kafka_error_retriable(SL_KERR_NONE));
    SL_CHECK(!sl_kafka_error_retriable(SL_KERR_INVALID_TOPIC_EXCEPTION));
    SL_CHECK(!sl_kafka_error_retriable(SL_KERR_TOPIC_AUTHORIZATION_FAILED));
    SL_CHECK(!sl_kafka_error_retriable(SL_KERR_UNKNOWN_SERVER_ERROR));
    SL_CHECK(!sl_kafka_error_retriable(-50));
}
