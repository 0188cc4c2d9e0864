#!/usr/bin/python3
"""Writes the seed corpus of fuzz_batch into fuzz/corpus/batch/.

Each file is the input of fuzz/fuzz_batch.c: one control byte (bit 0: fix up
the CRC of every batch before validating, so mutations reach the record
parser; bits 1-7: the max batch size knob) followed by a records blob of
Kafka v2 record batches. The encoder here is written independently of
src/storage/batch.c (own CRC-32C, own varints), so the corpus also
cross-checks the C code. Run: /usr/bin/python3 fuzz/make_corpus_batch.py
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "batch")


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v):  # zig-zag, 64-bit
    return uvarint((v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1)


def nbytes(b):
    return varint(-1) if b is None else varint(len(b)) + b


def record(i, ts_delta, key, value, headers=()):
    body = bytes([0]) + varint(ts_delta) + varint(i) + nbytes(key) + nbytes(value)
    body += varint(len(headers))
    for hk, hv in headers:
        body += varint(len(hk)) + hk + nbytes(hv)
    return varint(len(body)) + body


def batch(records, base_offset=0, attributes=0, base_ts=1700000000000, max_ts=None, producer_id=-1,
          producer_epoch=-1, base_seq=-1, magic=2, count=None, lod=None, body=None, leader_epoch=-1):
    """records: list of (ts_delta, key, value, headers)."""
    if body is None:
        body = b"".join(record(i, r[0], r[1], r[2], r[3] if len(r) > 3 else ()) for i, r in enumerate(records))
    n = len(records)
    if max_ts is None:
        max_ts = base_ts + max([r[0] for r in records] or [0])
    after_crc = struct.pack(">hiqqqhii", attributes, (n - 1) if lod is None else lod, base_ts, max_ts,
                            producer_id, producer_epoch, base_seq, n if count is None else count) + body
    crc = crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, crc, rest
    return struct.pack(">qiibI", base_offset, length, leader_epoch, magic, crc) + after_crc


def write(name, ctl, blob):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([ctl]) + blob)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.unlink(os.path.join(OUT, f))
    one = batch([(0, b"k", b"v")])
    three = batch([(0, b"key-0", b"value-0"), (5, None, b"value-1"), (9, b"key-2", None)])
    hdrs = batch([(0, b"k", b"v", [(b"traceparent", b"00-abc-def-01"), (b"n", None)]),
                  (1, b"", b"", [(b"", b"")])])
    idem = batch([(0, b"a", b"1"), (1, b"b", b"2")], producer_id=4242, producer_epoch=3, base_seq=17)
    txn = batch([(0, b"a", b"1")], attributes=0x10, producer_id=7, producer_epoch=0, base_seq=0)
    ctrl = batch([(0, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x05")], attributes=0x30, producer_id=7,
                 producer_epoch=0)
    lat = batch([(0, b"k", b"v"), (0, b"k2", b"v2")], attributes=0x08)
    big = batch([(i, b"key-%d" % i, bytes([i % 251]) * 300) for i in range(150)])
    write("one", 0xFF, one)
    write("three", 0xFF, three)
    write("headers", 0xFF, hdrs)
    write("idempotent", 0xFF, idem)
    write("transactional", 0xFF, txn)
    write("control", 0xFF, ctrl)
    write("log_append_time", 0xFF, lat)
    write("big", 0xFF, big)
    write("multi", 0xFF, one + three + hdrs)
    write("multi_fixcrc", 0x01, one + three)
    write("small_limit", 0x02, three + big)
    write("bad_crc", 0xFE, three[:-1] + bytes([three[-1] ^ 0x55]))
    write("truncated", 0xFF, three[:-7])
    write("truncated_header", 0xFF, three[:40])
    write("magic1", 0xFF, three[:16] + b"\x01" + three[17:])
    write("magic0", 0xFF, one[:16] + b"\x00" + one[17:])
    write("length_small", 0xFF, one[:8] + struct.pack(">i", 10) + one[12:])
    write("length_negative", 0xFF, one[:8] + struct.pack(">i", -5) + one[12:])
    write("length_huge", 0xFF, one[:8] + struct.pack(">i", 0x7FFFFFFF) + one[12:])
    write("count_mismatch", 0xFF, batch([(0, b"k", b"v")], count=2))
    write("lod_negative", 0xFF, batch([(0, b"k", b"v")], lod=-1, count=0))
    write("count_zero_body", 0xFF, batch([(0, b"k", b"v")], count=0, lod=0))
    write("compressed_gzip", 0xFF, batch([(0, b"k", b"v")], attributes=1, body=b"\x1f\x8b\x08\x00garbage"))
    write("compressed_zstd", 0xFF, batch([(0, b"k", b"v")], attributes=4, body=b"\x28\xb5\x2f\xfd"))
    # Record-level damage behind a valid CRC (the harness fixes CRCs when bit 0 is set).
    write("rec_len_huge", 0x01, batch([(0, b"k", b"v")], body=varint(1 << 30) + b"\x00\x00\x00"))
    write("rec_len_negative", 0x01, batch([(0, b"k", b"v")], body=varint(-3) + b"\x00"))
    write("rec_varint_overlong", 0x01, batch([(0, b"k", b"v")], body=b"\xff\xff\xff\xff\xff\xff" + b"\x00"))
    write("rec_key_past_end", 0x01, batch([(0, b"k", b"v")],
                                         body=varint(6) + b"\x00\x00\x00" + varint(100) + b"ab"))
    write("rec_trailing", 0x01, batch([(0, b"k", b"v")], body=record(0, 0, b"k", b"v") + b"\x00\x00"))
    write("rec_missing", 0x01, batch([(0, b"k", b"v"), (0, b"k", b"v")], body=record(0, 0, b"k", b"v")))
    write("rec_headers_count_huge", 0x01, batch([(0, b"k", b"v")],
                                               body=varint(6) + b"\x00\x00\x00" + varint(-1) + varint(-1) +
                                               varint(1 << 28)))
    write("rec_header_value_null", 0x01, batch([(0, b"k", b"v", [(b"h", None)])]))
    write("rec_ts_extreme", 0x01, batch([(-(1 << 62), b"k", b"v"), ((1 << 62), b"k", b"v")]))
    write("empty", 0xFF, b"")
    write("tiny", 0xFF, b"\x00" * 5)
    write("zeros", 0xFF, b"\x00" * 200)
    write("garbage_after", 0xFF, three + b"\x01\x02\x03")
    write("two_with_bad_second", 0xFF, one + three[:-1] + bytes([three[-1] ^ 1]))
    write("offsets_nonzero", 0xFF, batch([(0, b"k", b"v")], base_offset=123456789, leader_epoch=5))
    count = len(os.listdir(OUT))
    print("wrote %d files to %s" % (count, OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
