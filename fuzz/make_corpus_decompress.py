"""Writes fuzz/corpus/decompress/: valid and damaged inputs for each codec.

Byte 0 picks the codec (1 gzip, 2 snappy, 3 lz4, 4 zstd), the rest is the
compressed payload, as fuzz_decompress.c reads it. Needs python3-snappy,
python3-lz4 and python3-zstandard (scripts/deps.sh test installs them).
"""
import gzip
import os
import struct
import sys

import lz4.frame
import snappy
import zstandard

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus', 'decompress')


def xerial(data, block=64):
    out = b'\x82SNAPPY\x00' + struct.pack('>ii', 1, 1)
    for i in range(0, len(data), block):
        c = snappy.compress(data[i:i + block])
        out += struct.pack('>i', len(c)) + c
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    payloads = [b'', b'a', bytes(range(256)) * 4, b'record ' * 300, os.urandom(0) + b'\x00' * 5000]
    codecs = {
        1: ('gzip', lambda d: gzip.compress(d, mtime=0)),
        2: ('snappy', xerial),
        3: ('lz4', lz4.frame.compress),
        4: ('zstd', lambda d: zstandard.ZstdCompressor().compress(d)),
    }
    n = 0
    for code, (name, fn) in codecs.items():
        for i, p in enumerate(payloads):
            c = fn(p)
            files = {f'{name}_{i}': c, f'{name}_{i}_trunc': c[:len(c) // 2],
                     f'{name}_{i}_flip': c[:len(c) // 3] + bytes([c[len(c) // 3] ^ 0x40]) + c[len(c) // 3 + 1:]
                     if len(c) > 3 else c}
            for fname, body in files.items():
                with open(os.path.join(OUT, fname), 'wb') as fh:
                    fh.write(bytes([code]) + body)
                n += 1
    with open(os.path.join(OUT, 'raw_snappy'), 'wb') as fh:
        fh.write(b'\x02' + snappy.compress(b'raw snappy block ' * 20))
    print(f'make_corpus_decompress: wrote {n + 1} files to {OUT}', file=sys.stderr)


if __name__ == '__main__':
    main()
