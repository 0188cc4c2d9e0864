"""Writes fuzz/corpus/broker/: sequences of whole requests for fuzz_broker.c.

Each file is one connection's bytes: valid request frames back to back (a
topic is created, a valid record batch produced, fetched, its offsets
listed, its configs described, partitions added, the topic deleted), plus
each single valid frame of fuzz/corpus/request/. Record batches get a real
CRC-32C (from make_corpus_batch.py) so the fuzzer starts past the checks.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_corpus_batch as mb  # noqa: E402

OUT = os.path.join(HERE, 'corpus', 'broker')


def s16(s):
    b = s.encode()
    return struct.pack('>h', len(b)) + b


def frame(key, version, corr, body):
    hdr = struct.pack('>hhi', key, version, corr) + s16('fuzz')
    return struct.pack('>i', len(hdr) + len(body)) + hdr + body


def metadata_v4(topic):
    return frame(3, 4, 1, struct.pack('>i', 1) + s16(topic) + b'\x01')


def create_topics_v1(topic, parts):
    t = s16(topic) + struct.pack('>ih', parts, 1) + struct.pack('>i', 0) + struct.pack('>i', 1) + \
        s16('retention.ms') + s16('60000')
    return frame(19, 1, 2, struct.pack('>i', 1) + t + struct.pack('>i', 5000) + b'\x00')


def produce_v3(topic, part, records, acks=-1):
    body = struct.pack('>h', -1) + struct.pack('>hi', acks, 5000) + struct.pack('>i', 1) + s16(topic) + \
        struct.pack('>i', 1) + struct.pack('>i', part) + struct.pack('>i', len(records)) + records
    return frame(0, 3, 3, body)


def fetch_v4(topic, part, offset, max_wait=0, min_bytes=1):
    body = struct.pack('>iiiib', -1, max_wait, min_bytes, 1 << 20, 0) + struct.pack('>i', 1) + s16(topic) + \
        struct.pack('>i', 1) + struct.pack('>iqi', part, offset, 1 << 20)
    return frame(1, 4, 4, body)


def list_offsets_v1(topic, part, ts):
    body = struct.pack('>i', -1) + struct.pack('>i', 1) + s16(topic) + struct.pack('>i', 1) + \
        struct.pack('>iq', part, ts)
    return frame(2, 1, 5, body)


def describe_configs_v1(topic):
    body = struct.pack('>i', 1) + struct.pack('>b', 2) + s16(topic) + struct.pack('>i', -1) + b'\x01'
    return frame(32, 1, 6, body)


def create_partitions_v0(topic, count):
    body = struct.pack('>i', 1) + s16(topic) + struct.pack('>i', count) + struct.pack('>i', -1) + \
        struct.pack('>i', 5000) + b'\x00'
    return frame(37, 0, 7, body)


def delete_topics_v1(topic):
    return frame(20, 1, 8, struct.pack('>i', 1) + s16(topic) + struct.pack('>i', 5000))


def ns16(s):
    return struct.pack('>h', -1) if s is None else s16(s)


def join_v(version, group, member, instance, session=10000):
    body = s16(group) + struct.pack('>i', session) + (struct.pack('>i', session) if version >= 1 else b'') + \
        s16(member) + (ns16(instance) if version >= 5 else b'') + s16('consumer') + struct.pack('>i', 1) + \
        s16('range') + struct.pack('>i', 4) + b'subs'
    return frame(11, version, 10, body)


def sync_v3(group, gen, member, instance):
    body = s16(group) + struct.pack('>i', gen) + s16(member) + ns16(instance) + struct.pack('>i', 1) + \
        s16(member) + struct.pack('>i', 3) + b'asg'
    return frame(14, 3, 11, body)


def heartbeat_v3(group, gen, member, instance):
    return frame(12, 3, 12, s16(group) + struct.pack('>i', gen) + s16(member) + ns16(instance))


def commit_v7(group, gen, member, topic, part, offset, meta):
    body = s16(group) + struct.pack('>i', gen) + s16(member) + ns16(None) + struct.pack('>i', 1) + s16(topic) + \
        struct.pack('>i', 1) + struct.pack('>iqi', part, offset, -1) + ns16(meta)
    return frame(8, 7, 13, body)


def offset_fetch_v5(group, topic):
    topics = struct.pack('>i', -1) if topic is None else \
        struct.pack('>i', 1) + s16(topic) + struct.pack('>i', 2) + struct.pack('>ii', 0, 1)
    return frame(9, 5, 14, s16(group) + topics)


def init_pid(version):
    body = ns16(None) + struct.pack('>i', 60000) + (struct.pack('>qh', -1, -1) if version >= 3 else b'')
    if version >= 2:  # flexible from v2: compact nullable string, tags
        body = b'\x00' + struct.pack('>i', 60000) + (struct.pack('>qh', -1, -1) if version >= 3 else b'') + b'\x00'
        hdr = struct.pack('>hhi', 22, version, 20) + s16('fuzz') + b'\x00'
        return struct.pack('>i', len(hdr) + len(body)) + hdr + body
    return frame(22, version, 20, body)


def idem(epoch, seq, n):
    # producer id 0: the first id a fresh broker hands out
    return mb.batch([(i, b'k%d' % i, b'v%d' % i) for i in range(n)], producer_id=0, producer_epoch=epoch, base_seq=seq)


def init_txn_v1(txn, timeout):
    return frame(22, 1, 21, s16(txn) + struct.pack('>i', timeout))


def add_parts_v1(txn, pid, epoch, topic, parts):
    body = s16(txn) + struct.pack('>qh', pid, epoch) + struct.pack('>i', 1) + s16(topic) + \
        struct.pack('>i', len(parts)) + b''.join(struct.pack('>i', p) for p in parts)
    return frame(24, 1, 22, body)


def add_offsets_v1(txn, pid, epoch, group):
    return frame(25, 1, 23, s16(txn) + struct.pack('>qh', pid, epoch) + s16(group))


def end_txn_v1(txn, pid, epoch, commit):
    return frame(26, 1, 24, s16(txn) + struct.pack('>qhb', pid, epoch, 1 if commit else 0))


def txn_commit_v2(txn, group, pid, epoch, topic, part, offset):
    body = s16(txn) + s16(group) + struct.pack('>qh', pid, epoch) + struct.pack('>i', 1) + s16(topic) + \
        struct.pack('>i', 1) + struct.pack('>iqi', part, offset, -1) + s16('m')
    return frame(28, 2, 25, body)


def find_txn_coordinator_v1(txn):
    return frame(10, 1, 26, s16(txn) + struct.pack('>b', 1))


def fetch_v4_committed(topic, part, offset):
    body = struct.pack('>iiiib', -1, 0, 1, 1 << 20, 1) + struct.pack('>i', 1) + s16(topic) + \
        struct.pack('>i', 1) + struct.pack('>iqi', part, offset, 1 << 20)
    return frame(1, 4, 27, body)


def list_offsets_v2_committed(topic, part):
    body = struct.pack('>ib', -1, 1) + struct.pack('>i', 1) + s16(topic) + struct.pack('>i', 1) + \
        struct.pack('>iq', part, -1)
    return frame(2, 2, 28, body)


def txn(pid, epoch, seq, n, control=False):
    attrs = 0x10 | (0x20 if control else 0)
    return mb.batch([(i, b'k%d' % i, b'v%d' % i) for i in range(n)], attributes=attrs, producer_id=pid,
                    producer_epoch=epoch, base_seq=seq)


def transactions_frames():
    """A whole transaction's requests. The producer id a fresh broker hands "fz" depends on the inputs run
    before, so pid 0 is a guess the fuzzer mutates from; the error paths are covered either way."""
    return (metadata_v4('tx') + find_txn_coordinator_v1('fz') + init_txn_v1('fz', 60000) + init_txn_v1('fz', 0)
            + add_parts_v1('fz', 0, 0, 'tx', [0, 5]) + add_parts_v1('fz', 0, 0, 'tx', [0])
            + produce_v3('tx', 0, txn(0, 0, 0, 2)) + produce_v3('tx', 0, txn(0, 0, 2, 1, control=True))
            + fetch_v4_committed('tx', 0, 0) + list_offsets_v2_committed('tx', 0)
            + add_offsets_v1('fz', 0, 0, 'gfz') + txn_commit_v2('fz', 'gfz', 0, 0, 'tx', 0, 2)
            + offset_fetch_v5('gfz', 'tx') + end_txn_v1('fz', 0, 0, True) + end_txn_v1('fz', 0, 0, False)
            + init_txn_v1('fz', 60000) + fetch_v4_committed('tx', 0, 1))


def groups_frames(group):
    describe = frame(15, 2, 15, struct.pack('>i', 2) + s16(group) + s16('nope'))
    listg = frame(16, 2, 16, b'')
    leave = frame(13, 3, 17, s16(group) + struct.pack('>i', 2) + s16('x') + ns16(None) + s16('') + ns16('inst'))
    delete = frame(42, 1, 18, struct.pack('>i', 2) + s16(group) + s16(''))
    return describe + listg + leave + delete


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if not f.startswith('found-'):  # what the fuzzer found stays
            os.remove(os.path.join(OUT, f))
    recs = [(i * 10, b'k%d' % i, b'value-%d' % i, [(b'h', b'%d' % i)]) for i in range(3)]
    batch = mb.batch(recs)
    seqs = {
        'lifecycle': create_topics_v1('fz', 2) + produce_v3('fz', 0, batch) + produce_v3('fz', 1, batch + batch)
        + fetch_v4('fz', 0, 0) + fetch_v4('fz', 1, 4) + list_offsets_v1('fz', 0, 1700000000000)
        + list_offsets_v1('fz', 1, -2) + describe_configs_v1('fz') + create_partitions_v0('fz', 4)
        + delete_topics_v1('fz'),
        'autocreate_produce_fetch': metadata_v4('auto') + produce_v3('auto', 0, batch, acks=1)
        + fetch_v4('auto', 0, 1) + fetch_v4('auto', 0, 99),
        'acks0_then_fetch': metadata_v4('a0') + produce_v3('a0', 0, batch, acks=0) + fetch_v4('a0', 0, 0),
        'parked_fetch': metadata_v4('pk') + fetch_v4('pk', 0, 0, max_wait=60000, min_bytes=1000),
        'bad_partition': metadata_v4('bp') + produce_v3('bp', 99, batch) + fetch_v4('bp', -1, 0),
        'group_dynamic': metadata_v4('gt') + join_v(3, 'gd', '', None) + join_v(5, 'gd', '', None)
        + sync_v3('gd', 1, '', None) + heartbeat_v3('gd', 1, 'm', None) + commit_v7('gd', 1, 'm', 'gt', 0, 5, 'x')
        + groups_frames('gd'),
        'group_static': metadata_v4('gt') + join_v(5, 'gs', '', 'inst') + join_v(5, 'gs', '', 'inst')
        + heartbeat_v3('gs', 1, 'old', 'inst') + sync_v3('gs', 1, 'old', 'inst') + groups_frames('gs'),
        'group_offsets': metadata_v4('gt') + commit_v7('go', -1, '', 'gt', 0, 42, 'meta')
        + commit_v7('go', -1, '', 'gt', 7, 1, None) + offset_fetch_v5('go', 'gt') + offset_fetch_v5('go', None)
        + groups_frames('go') + offset_fetch_v5('go', None),
        'group_v0': join_v(0, 'g0', '', None, session=6000) + join_v(1, 'g0', 'bad', None),
        'idempotent': metadata_v4('ip') + init_pid(0) + init_pid(4)
        + produce_v3('ip', 0, idem(0, 0, 3)) + produce_v3('ip', 0, idem(0, 0, 3)) + produce_v3('ip', 0, idem(0, 3, 1))
        + produce_v3('ip', 0, idem(0, 9, 1)) + produce_v3('ip', 0, idem(1, 0, 1)) + produce_v3('ip', 0, idem(0, 4, 1))
        + produce_v3('ip', 0, idem(5, 2, 1)) + produce_v3('ip', 0, idem(0, 1, 1) + idem(0, 2, 1)),
        'transactions': transactions_frames(),
    }
    for name, blob in seqs.items():
        with open(os.path.join(OUT, name), 'wb') as fh:
            fh.write(blob)
    n = len(seqs)
    req_dir = os.path.join(HERE, 'corpus', 'request')
    for f in sorted(os.listdir(req_dir)):
        if not f.startswith('mut_'):
            with open(os.path.join(req_dir, f), 'rb') as src, open(os.path.join(OUT, 'one_' + f), 'wb') as dst:
                dst.write(src.read())
            n += 1
    print(f'make_corpus_broker: wrote {n} files to {OUT}', file=sys.stderr)


if __name__ == '__main__':
    main()
