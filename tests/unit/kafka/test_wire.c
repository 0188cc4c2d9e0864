/*
 * test_wire.c - the Kafka wire primitives (src/kafka/wire.c, wire.h):
 * fixed-width and varint encodings against hand-computed bytes, the sticky
 * reader error, null and length rules, the hostile-array-count check, the
 * bounded writer, record splicing and tagged-field size insertion.
 */
#include "test.h"
#include "kafka/wire.h"

static sl_buf buf;
static sl_kwriter w;

static void writer_setup(size_t max, sl_kwriter_splice *splices, int nsplices)
{
    sl_buf_init(&buf, max);
    sl_kwriter_init(&w, &buf, splices, nsplices);
}

SL_TEST(fixed_width_round_trip)
{
    writer_setup(1024, NULL, 0);
    sl_kwrite_int8(&w, -2);
    sl_kwrite_int16(&w, -300);
    sl_kwrite_uint16(&w, 65000);
    sl_kwrite_int32(&w, -70000);
    sl_kwrite_int64(&w, INT64_MIN + 5);
    sl_kwrite_bool(&w, true);
    sl_kwrite_float64(&w, -1.5);
    static const uint8_t uuid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    sl_kwrite_uuid(&w, uuid);
    SL_CHECK_OK(w.err);
    static const uint8_t want_head[] = {0xfe, 0xfe, 0xd4, 0xfd, 0xe8, 0xff, 0xfe, 0xee, 0x90};
    SL_CHECK_MEM(buf.data, want_head, sizeof want_head);

    sl_kreader r;
    sl_kreader_init(&r, buf.data, buf.len);
    SL_CHECK_INT(sl_kread_int8(&r), -2);
    SL_CHECK_INT(sl_kread_int16(&r), -300);
    SL_CHECK_INT(sl_kread_uint16(&r), 65000);
    SL_CHECK_INT(sl_kread_int32(&r), -70000);
    SL_CHECK(sl_kread_int64(&r) == INT64_MIN + 5);
    SL_CHECK(sl_kread_bool(&r));
    SL_CHECK(sl_kread_float64(&r) == -1.5);
    uint8_t got[16];
    sl_kread_uuid(&r, got);
    SL_CHECK_MEM(got, uuid, 16);
    SL_CHECK_OK(r.err);
    SL_CHECK_INT(sl_kread_left(&r), 0);
    sl_buf_deinit(&buf);
}

SL_TEST(bool_reads_any_nonzero_as_true)
{
    static const uint8_t in[] = {0x00, 0x02, 0xff};
    sl_kreader r;
    sl_kreader_init(&r, in, sizeof in);
    SL_CHECK(!sl_kread_bool(&r));
    SL_CHECK(sl_kread_bool(&r));
    SL_CHECK(sl_kread_bool(&r));
    SL_CHECK_OK(r.err);
}

SL_TEST(uvarint_known_encodings)
{
    static const struct { uint32_t v; uint8_t bytes[5]; size_t n; } cases[] = {
        {0, {0x00}, 1},
        {1, {0x01}, 1},
        {127, {0x7f}, 1},
        {128, {0x80, 0x01}, 2},
        {300, {0xac, 0x02}, 2},
        {16384, {0x80, 0x80, 0x01}, 3},
        {UINT32_MAX, {0xff, 0xff, 0xff, 0xff, 0x0f}, 5},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        writer_setup(64, NULL, 0);
        sl_kwrite_uvarint(&w, cases[i].v);
        SL_CHECK_INT(buf.len, cases[i].n);
        SL_CHECK_MEM(buf.data, cases[i].bytes, cases[i].n);
        sl_kreader r;
        sl_kreader_init(&r, buf.data, buf.len);
        SL_CHECK_INT(sl_kread_uvarint(&r), cases[i].v);
        SL_CHECK_OK(r.err);
        SL_CHECK_INT(sl_kread_left(&r), 0);
        sl_buf_deinit(&buf);
    }
}

SL_TEST(uvarint_rejects_overlong_and_truncated)
{
    static const uint8_t six[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t big5[] = {0xff, 0xff, 0xff, 0xff, 0x10};
    static const uint8_t cut[] = {0x80, 0x80};
    const struct { const uint8_t *p; size_t n; } bad[] = {{six, sizeof six}, {big5, sizeof big5}, {cut, sizeof cut}};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        sl_kreader r;
        sl_kreader_init(&r, bad[i].p, bad[i].n);
        SL_CHECK_INT(sl_kread_uvarint(&r), 0);
        SL_CHECK_INT(r.err, SL_EINVAL);
    }
}

SL_TEST(varint_and_varlong_zigzag)
{
    writer_setup(64, NULL, 0);
    sl_kwrite_varint(&w, 0);
    sl_kwrite_varint(&w, -1);
    sl_kwrite_varint(&w, 1);
    sl_kwrite_varint(&w, -64);
    sl_kwrite_varint(&w, INT32_MIN);
    sl_kwrite_varlong(&w, INT64_MAX);
    sl_kwrite_varlong(&w, -300);
    static const uint8_t want[] = {0x00, 0x01, 0x02, 0x7f, 0xff, 0xff, 0xff, 0xff, 0x0f};
    SL_CHECK_MEM(buf.data, want, sizeof want);
    sl_kreader r;
    sl_kreader_init(&r, buf.data, buf.len);
    SL_CHECK_INT(sl_kread_varint(&r), 0);
    SL_CHECK_INT(sl_kread_varint(&r), -1);
    SL_CHECK_INT(sl_kread_varint(&r), 1);
    SL_CHECK_INT(sl_kread_varint(&r), -64);
    SL_CHECK_INT(sl_kread_varint(&r), INT32_MIN);
    SL_CHECK(sl_kread_varlong(&r) == INT64_MAX);
    SL_CHECK_INT(sl_kread_varlong(&r), -300);
    SL_CHECK_OK(r.err);
    SL_CHECK_INT(sl_kread_left(&r), 0);
    sl_buf_deinit(&buf);
}

SL_TEST(overrun_sets_sticky_error)
{
    static const uint8_t in[] = {0x00, 0x01, 0x02};
    sl_kreader r;
    sl_kreader_init(&r, in, sizeof in);
    SL_CHECK_INT(sl_kread_int32(&r), 0);
    SL_CHECK_INT(r.err, SL_EINVAL);
    /* Sticky: even a read that would fit the original input now fails. */
    SL_CHECK_INT(sl_kread_int8(&r), 0);
    SL_CHECK_INT(r.err, SL_EINVAL);
    SL_CHECK_INT(sl_kread_left(&r), 0);
}

SL_TEST(classic_and_compact_strings)
{
    writer_setup(256, NULL, 0);
    sl_kwrite_str(&w, false, false, SL_KSTR_LIT("abc"));
    sl_kwrite_str(&w, true, false, SL_KSTR_LIT("abc"));
    sl_kwrite_str(&w, false, true, SL_KSTR_NULL);
    sl_kwrite_str(&w, true, true, SL_KSTR_NULL);
    sl_kwrite_str(&w, true, false, SL_KSTR_EMPTY);
    SL_CHECK_OK(w.err);
    static const uint8_t want[] = {0x00, 0x03, 'a', 'b', 'c', 0x04, 'a', 'b', 'c', 0xff, 0xff, 0x00, 0x01};
    SL_CHECK_INT(buf.len, sizeof want);
    SL_CHECK_MEM(buf.data, want, sizeof want);

    sl_kreader r;
    sl_kreader_init(&r, buf.data, buf.len);
    sl_kstr s = sl_kread_str(&r, false, false);
    SL_CHECK(sl_kstr_eq(s, SL_KSTR_LIT("abc")));
    SL_CHECK(s.ptr == (const char *)buf.data + 2); /* a view, not a copy */
    SL_CHECK(sl_kstr_eq(sl_kread_str(&r, true, false), SL_KSTR_LIT("abc")));
    SL_CHECK_INT(sl_kread_str(&r, false, true).len, -1);
    SL_CHECK_INT(sl_kread_str(&r, true, true).len, -1);
    SL_CHECK_INT(sl_kread_str(&r, true, false).len, 0);
    SL_CHECK_OK(r.err);
    sl_buf_deinit(&buf);
}

SL_TEST(null_where_not_nullable_is_rejected)
{
    static const uint8_t classic_null[] = {0xff, 0xff};
    static const uint8_t compact_null[] = {0x00};
    static const uint8_t minus_two[] = {0xff, 0xfe};
    sl_kreader r;
    sl_kreader_init(&r, classic_null, sizeof classic_null);
    (void)sl_kread_str(&r, false, false);
    SL_CHECK_INT(r.err, SL_EINVAL);
    sl_kreader_init(&r, compact_null, sizeof compact_null);
    (void)sl_kread_bytes(&r, true, false);
    SL_CHECK_INT(r.err, SL_EINVAL);
    sl_kreader_init(&r, minus_two, sizeof minus_two);
    (void)sl_kread_str(&r, false, true);
    SL_CHECK_INT(r.err, SL_EINVAL);

    writer_setup(64, NULL, 0);
    sl_kwrite_str(&w, false, false, SL_KSTR_NULL);
    SL_CHECK_INT(w.err, SL_EINVAL);
    sl_buf_deinit(&buf);
}

SL_TEST(string_length_past_input_fails)
{
    static const uint8_t in[] = {0x00, 0x05, 'a', 'b'};
    sl_kreader r;
    sl_kreader_init(&r, in, sizeof in);
    sl_kstr s = sl_kread_str(&r, false, false);
    SL_CHECK_INT(s.len, -1);
    SL_CHECK_INT(r.err, SL_EINVAL);
}

SL_TEST(bytes_and_records)
{
    writer_setup(256, NULL, 0);
    static const uint8_t data[] = {9, 8, 7};
    sl_kwrite_bytes(&w, false, false, (sl_kbytes){data, 3});
    sl_kwrite_bytes(&w, true, true, SL_KBYTES_NULL);
    sl_krecords rec = SL_KRECORDS_NULL;
    rec.ptr = data;
    rec.len = 3;
    sl_kwrite_records(&w, true, true, &rec);
    static const uint8_t want[] = {0, 0, 0, 3, 9, 8, 7, 0x00, 0x04, 9, 8, 7};
    SL_CHECK_INT(buf.len, sizeof want);
    SL_CHECK_MEM(buf.data, want, sizeof want);
    sl_kreader r;
    sl_kreader_init(&r, buf.data, buf.len);
    sl_kbytes b = sl_kread_bytes(&r, false, false);
    SL_CHECK_INT(b.len, 3);
    SL_CHECK_INT(sl_kread_bytes(&r, true, true).len, -1);
    sl_krecords got;
    sl_kread_records(&r, true, true, &got);
    SL_CHECK_INT(got.len, 3);
    SL_CHECK(!got.from_file);
    SL_CHECK_MEM(got.ptr, data, 3);
    SL_CHECK_OK(r.err);
    sl_buf_deinit(&buf);
}

SL_TEST(array_count_checked_before_allocation)
{
    sl_arena arena;
    sl_arena_init(&arena, 1 << 20);
    /* 2^31-1 elements claimed, 4 bytes present. */
    static const uint8_t hostile[] = {0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    sl_kreader r;
    sl_kreader_init(&r, hostile, sizeof hostile);
    void *items = (void *)1;
    int32_t count = 7;
    SL_CHECK_INT(sl_kread_array(&r, false, false, 4, 4, &arena, &items, &count), SL_EINVAL);
    SL_CHECK(items == NULL);
    SL_CHECK_INT(arena.used, 0);
    /* One 4-byte element fits exactly. */
    static const uint8_t one[] = {0, 0, 0, 1, 0, 0, 0, 42};
    sl_kreader_init(&r, one, sizeof one);
    SL_CHECK_OK(sl_kread_array(&r, false, false, 4, 4, &arena, &items, &count));
    SL_CHECK_INT(count, 1);
    SL_CHECK(items != NULL);
    sl_arena_deinit(&arena);
}

SL_TEST(array_null_and_arena_limit)
{
    sl_arena arena;
    sl_arena_init(&arena, 64);
    static const uint8_t null_classic[] = {0xff, 0xff, 0xff, 0xff};
    sl_kreader r;
    void *items;
    int32_t count;
    sl_kreader_init(&r, null_classic, sizeof null_classic);
    SL_CHECK_OK(sl_kread_array(&r, false, true, 1, 8, &arena, &items, &count));
    SL_CHECK_INT(count, -1);
    sl_kreader_init(&r, null_classic, sizeof null_classic);
    SL_CHECK_INT(sl_kread_array(&r, false, false, 1, 8, &arena, &items, &count), SL_EINVAL);
    /* 20 one-byte elements pass the input check but need 20 * 8 > 64 arena bytes. */
    uint8_t big[24] = {0, 0, 0, 20};
    sl_kreader_init(&r, big, sizeof big);
    SL_CHECK_INT(sl_kread_array(&r, false, false, 1, 8, &arena, &items, &count), SL_ENOMEM);
    sl_arena_deinit(&arena);
}

SL_TEST(writer_respects_buffer_max)
{
    writer_setup(6, NULL, 0);
    sl_kwrite_int32(&w, 1);
    SL_CHECK_OK(w.err);
    sl_kwrite_int32(&w, 2);
    SL_CHECK_INT(w.err, SL_ETOOBIG);
    SL_CHECK_INT(buf.len, 4);
    sl_kwrite_int8(&w, 3); /* sticky: nothing more is written */
    SL_CHECK_INT(buf.len, 4);
    sl_buf_deinit(&buf);
}

SL_TEST(records_from_file_are_spliced)
{
    sl_kwriter_splice splices[2];
    writer_setup(256, splices, 2);
    int ref_a, ref_b;
    sl_krecords rec = SL_KRECORDS_NULL;
    rec.from_file = true;
    rec.fd = 5;
    rec.file_off = 1000;
    rec.len = 300;
    rec.file_ref = &ref_a;
    sl_kwrite_int16(&w, 7);
    sl_kwrite_records(&w, false, true, &rec);
    sl_kwrite_int16(&w, 8);
    rec.file_ref = &ref_b;
    rec.file_off = 5000;
    rec.len = 200;
    sl_kwrite_records(&w, true, true, &rec);
    SL_CHECK_OK(w.err);
    static const uint8_t want[] = {0, 7, 0, 0, 0x01, 0x2c, 0, 8, 0xc9, 0x01};
    SL_CHECK_INT(buf.len, sizeof want);
    SL_CHECK_MEM(buf.data, want, sizeof want);
    SL_CHECK_INT(w.nsplices, 2);
    SL_CHECK_INT(w.splices[0].at, 6);
    SL_CHECK_INT(w.splices[0].off, 1000);
    SL_CHECK_INT(w.splices[0].len, 300);
    SL_CHECK(w.splices[0].ref == &ref_a);
    SL_CHECK_INT(w.splices[1].at, 10);
    SL_CHECK_INT(w.splices[1].fd, 5);
    SL_CHECK(w.splices[1].ref == &ref_b);
    SL_CHECK_INT(w.spliced_len, 500);
    /* A third splice exceeds the caller's array. */
    sl_kwrite_records(&w, false, true, &rec);
    SL_CHECK_INT(w.err, SL_ETOOBIG);
    sl_buf_deinit(&buf);
}

SL_TEST(tagged_value_size_inserted_before_value)
{
    writer_setup(1024, NULL, 0);
    size_t at = sl_kwrite_tag_begin(&w, 3);
    sl_kwrite_int64(&w, 1);
    sl_kwrite_tag_end(&w, at);
    static const uint8_t want[] = {0x03, 0x08, 0, 0, 0, 0, 0, 0, 0, 1};
    SL_CHECK_INT(buf.len, sizeof want);
    SL_CHECK_MEM(buf.data, want, sizeof want);
    /* A 200-byte value needs a two-byte size. */
    sl_buf_reset(&buf);
    at = sl_kwrite_tag_begin(&w, 0);
    uint8_t big[200];
    memset(big, 0xab, sizeof big);
    sl_kwrite_raw(&w, big, sizeof big);
    sl_kwrite_tag_end(&w, at);
    SL_CHECK_INT(buf.len, 203);
    SL_CHECK_INT(buf.data[1], 0xc8);
    SL_CHECK_INT(buf.data[2], 0x01);
    SL_CHECK_MEM(buf.data + 3, big, sizeof big);
    sl_buf_deinit(&buf);
}

SL_TEST(tagged_section_skip_and_sub_reader)
{
    static const uint8_t in[] = {0x02, 0x00, 0x02, 0xaa, 0xbb, 0x05, 0x00, 0x77};
    sl_kreader r;
    sl_kreader_init(&r, in, sizeof in);
    sl_kread_tagged_skip(&r);
    SL_CHECK_OK(r.err);
    SL_CHECK_INT(sl_kread_int8(&r), 0x77);
    /* A size past the input fails the section. */
    static const uint8_t bad[] = {0x01, 0x00, 0x09, 0xaa};
    sl_kreader_init(&r, bad, sizeof bad);
    sl_kread_tagged_skip(&r);
    SL_CHECK_INT(r.err, SL_EINVAL);
    sl_kreader sub;
    sl_kreader_init(&r, in, sizeof in);
    sl_kread_sub(&r, 3, &sub);
    SL_CHECK_INT(sl_kread_left(&sub), 3);
    SL_CHECK_INT(sl_kread_left(&r), 5);
    SL_CHECK_INT(sl_kread_int32(&sub), 0);
    SL_CHECK_INT(sub.err, SL_EINVAL);
    SL_CHECK_OK(r.err);
}
