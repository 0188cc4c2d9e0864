#!/usr/bin/python3
"""Write the seed corpus of fuzz/fuzz_request.c to fuzz/corpus/request/.

Usage: fuzz/make_corpus_request.py

Each file is one size-prefixed Kafka request frame. The valid ones are
encoded here in Python straight from the project's schema files
(src/kafka/schema, parsed with scripts/gen_codecs.py's reader), so they are
an independent check of the C codecs: every api at its highest served
version and, where the layout differs, its lowest, with deterministic
pseudo-random field values, nulls where nullable, some tagged fields
(including unknown ones) in flexible versions, and a real v2 record batch
in Produce. A dozen mutations follow (truncations, a bad size, hostile
counts, nulls where forbidden, unknown api keys and versions, overlong
varints). Output is deterministic; rerun after schema changes.
"""

import os
import random
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
import gen_codecs  # noqa: E402  (the schema reader)

OUT = os.path.join(ROOT, "fuzz", "corpus", "request")
FIXED = {"bool": ">?", "int8": ">b", "int16": ">h", "uint16": ">H", "int32": ">i",
         "uint32": ">I", "int64": ">q", "float64": ">d"}
# Apis whose lowest served version is laid out differently enough to seed too.
LOW_TOO = {"Produce", "Fetch", "Metadata", "ApiVersions", "OffsetFetch", "OffsetCommit",
           "JoinGroup", "InitProducerId", "TxnOffsetCommit", "ListOffsets", "CreateTopics",
           "DescribeConfigs", "Heartbeat", "SyncGroup"}
WORDS = ["orders", "payments", "sluice", "g1", "rdkafka", "consumer-1", "", "t"]


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def varint(v):
    return uvarint((v << 1) ^ (v >> 63) if v < 0 else v << 1)


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record_batch(rnd, count):
    """A magic-2 batch of `count` small uncompressed records."""
    records = b""
    for i in range(count):
        key = rnd.choice([None, b"k%d" % i])
        value = b"value-%d" % rnd.randrange(1000)
        body = b"\x00" + varint(i * 3) + varint(i)
        body += varint(-1) if key is None else varint(len(key)) + key
        body += varint(len(value)) + value + varint(1)
        body += varint(2) + b"id" + varint(1) + b"x"
        records += varint(len(body)) + body
    after_crc = struct.pack(">hiqqqhii", 0, count - 1, 1700000000000, 1700000000000 + 3 * count,
                            -1, -1, -1, count) + records
    head = struct.pack(">qiib", 0, 4 + 1 + 4 + len(after_crc), -1, 2)
    return head + struct.pack(">I", crc32c(after_crc)) + after_crc


class Encoder:
    def __init__(self, api, version, rnd):
        self.api, self.v, self.rnd = api, version, rnd
        self.flex = api.is_flex(version)

    def length(self, n, wide):
        if self.flex:
            return uvarint(n + 1)
        return struct.pack(">i" if wide else ">h", n)

    def nullable(self, f):
        return f.nullable is not None and f.nullable[0] <= self.v <= f.nullable[1]

    def scalar(self, f, t, allow_null):
        rnd = self.rnd
        if allow_null and rnd.random() < 0.2:
            return self.length(-1, t != "string")
        if t == "string":
            s = rnd.choice(WORDS).encode()
            return self.length(len(s), False) + s
        if t == "bytes":
            b = bytes(rnd.randrange(256) for _ in range(rnd.randrange(12)))
            return self.length(len(b), True) + b
        if t == "records":
            b = record_batch(rnd, rnd.randrange(1, 4))
            return self.length(len(b), True) + b
        if t == "uuid":
            return bytes(rnd.randrange(256) for _ in range(16))
        if t == "bool":
            return struct.pack(">?", rnd.random() < 0.5)
        if t == "float64":
            return struct.pack(">d", rnd.randrange(-1000, 1000) / 4)
        bits = struct.calcsize(FIXED[t]) * 8
        lo = 0 if t.startswith("u") else -(1 << (bits - 1))
        v = rnd.choice([0, 1, -1 if lo else 2, rnd.randrange(lo, lo + (1 << bits))])
        return struct.pack(FIXED[t], v)

    def field(self, f, depth):
        if not f.is_array:
            if f.is_struct:
                return self.struct(f.struct, depth + 1)
            return self.scalar(f, f.type, self.nullable(f))
        if self.nullable(f) and self.rnd.random() < 0.2:
            return self.length(-1, True)
        n = self.rnd.randrange(1, 4) if depth < 3 else self.rnd.randrange(2)
        out = self.length(n, True)
        for _ in range(n):
            out += self.struct(f.struct, depth + 1) if f.is_struct else self.scalar(f, f.elem, False)
        return out

    def struct(self, s, depth=0):
        out = b""
        for f in s.regular():
            if f.rng[0] <= self.v <= f.rng[1]:
                out += self.field(f, depth)
        if self.flex:
            tags = [(f.tag, self.field(f, depth)) for f in s.tagged()
                    if f.rng[0] <= self.v <= f.rng[1] and self.rnd.random() < 0.5]
            if self.rnd.random() < 0.2:
                tags.append((90 + self.rnd.randrange(10), b"\x01\x02\x03"))
            out += uvarint(len(tags))
            for tag, value in sorted(tags):
                out += uvarint(tag) + uvarint(len(value)) + value
        return out


def header(api, version, corr, client=b"fuzz-client"):
    out = struct.pack(">hhih", api.key, version, corr, len(client)) + client
    if api.is_flex(version):
        out += b"\x00"
    return out


def frame(payload):
    return struct.pack(">i", len(payload)) + payload


def valid_requests(apis):
    rnd = random.Random(20261122)
    out = []
    for api in apis:
        versions = [api.hi]
        if api.name in LOW_TOO:
            versions.append(api.lo)
        for v in versions:
            body = Encoder(api, v, rnd).struct(api.request.root)
            out.append(("%s_v%d" % (api.name.lower(), v), header(api, v, rnd.randrange(1 << 31)) + body))
    return out


def mutations(apis, valid):
    by_name = dict(valid)
    api = {a.name: a for a in apis}
    fetch = by_name["fetch_v11"]
    produce = by_name["produce_v7"]
    meta1 = header(api["Metadata"], 1, 5)
    ivs = header(api["InitProducerId"], 4, 6)
    return [
        ("mut_truncated_fetch_v11", frame(fetch)[: len(fetch) // 2]),
        ("mut_size_short_produce_v7", struct.pack(">i", len(produce) - 7) + produce),
        ("mut_size_negative", b"\xff\xff\xff\xf0" + produce[:16]),
        ("mut_metadata_v1_hostile_count", frame(meta1 + b"\x7f\xff\xff\xff\x00\x01a")),
        ("mut_metadata_v0_null_topics", frame(header(api["Metadata"], 0, 5) + b"\xff\xff\xff\xff")),
        ("mut_produce_v3_null_topic_name", frame(header(api["Produce"], 3, 9)
                                                + b"\xff\xff\x00\x01\x00\x00\x03\xe8\x00\x00\x00\x01\xff\xff")),
        ("mut_unknown_api_key", frame(struct.pack(">hhih", 4, 0, 1, -1) + b"\x00" * 8)),
        ("mut_apiversions_v4", frame(struct.pack(">hhih", 18, 4, 1, 2) + b"ok\x00\x02a\x02b\x00")),
        ("mut_produce_v8", frame(struct.pack(">hhih", 0, 8, 1, -1) + produce[-40:])),
        ("mut_initproducerid_v4_overlong_varint", frame(ivs + b"\x80\x80\x80\x80\x80\x01" + b"\x00" * 16)),
        ("mut_initproducerid_v4_tag_past_end", frame(ivs + b"\x00\x00\x00\x00\x01" + b"\x00" * 10 + b"\x01\x05\x40\x00")),
        ("mut_header_client_id_past_end", frame(struct.pack(">hhih", 3, 1, 1, 300) + b"abc")),
        ("mut_trailing_garbage_heartbeat_v3", frame(by_name["heartbeat_v3"] + b"\xde\xad\xbe\xef")),
    ]


def main():
    apis, errors = [], []
    schema = os.path.join(ROOT, "src", "kafka", "schema")
    for name in sorted(os.listdir(schema)):
        if name.endswith(".sch"):
            gen_codecs.parse_file(os.path.join(schema, name), apis, errors)
    gen_codecs.resolve(apis)
    valid = valid_requests(apis)
    files = [(name, frame(payload)) for name, payload in valid] + mutations(apis, valid)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    for name, data in files:
        if len(data) >= 64 * 1024:
            raise SystemExit("%s is too large (%d bytes)" % (name, len(data)))
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)
    print("make_corpus_request: wrote %d files to %s" % (len(files), os.path.relpath(OUT, ROOT)))


if __name__ == "__main__":
    main()
