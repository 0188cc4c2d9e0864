"""Measures `sluice broker` start-up: from exec to the first accepted TCP connection.

    /usr/bin/python3 bench/startup.py BUILD/sluice [RUNS] [TOPICS]

Starts the broker RUNS times on a fresh data directory (and, with TOPICS > 0,
on one holding that many one-partition topics with a little data each) and
reports the median and max time until a connect() to it succeeds, polling
every 50 microseconds. The broker's own 'ready in' log line is printed too.
"""
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_once(binary, data):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, 'broker', '--data', data, '--listen', f'127.0.0.1:{port}'],
                            stderr=subprocess.PIPE, text=True)
    while True:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f'broker exited: {proc.stderr.read()}')
            time.sleep(0.00005)
    elapsed = (time.perf_counter() - t0) * 1000
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    if proc.returncode != 0:
        raise SystemExit(f'broker exit code {proc.returncode}: {err}')
    ready = [line.split('broker: ')[1] for line in err.splitlines() if 'ready in' in line]
    return elapsed, ready[0] if ready else '?'


def populate(binary, data, topics):
    port = free_port()
    proc = subprocess.Popen([binary, 'broker', '--data', data, '--listen', f'127.0.0.1:{port}'],
                            stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    from confluent_kafka import Producer
    p = Producer({'bootstrap.servers': f'127.0.0.1:{port}', 'linger.ms': 5})
    for i in range(topics):
        for j in range(100):
            p.produce(f'startup-{i}', value=b'x' * 100)
    p.flush(60)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    topics = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    base = tempfile.mkdtemp(prefix='sluice-startup.')
    try:
        data = os.path.join(base, 'data')
        if topics:
            populate(binary, data, topics)
        times, ready = [], ''
        for _ in range(runs):
            if not topics:
                shutil.rmtree(data, ignore_errors=True)
            ms, ready = start_once(binary, data)
            times.append(ms)
        print(f'start-up, exec to first accepted connection, {runs} runs, {topics} topics: '
              f'median {statistics.median(times):.1f} ms, max {max(times):.1f} ms '
              f'(broker log: {ready})')
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == '__main__':
    main()
