#!/usr/bin/env bash
# In-doubt transactions: the broker dies after a transaction's end is decided
# and durable (its PrepareCommit/PrepareAbort record in __transaction_state)
# and before any of its markers is written -- the one moment when the outcome
# is known only to the coordinator's log. The restarted broker must complete
# it: every partition gets the marker, read_committed readers see a commit
# and never an abort, and the producer's retried EndTxn gets its answer.
#
# A confluent-kafka (librdkafka) transactional producer writes 4 transactions
# over 3 partitions: T1 commit, T2 commit, T3 abort, T4 commit. The broker
# runs with --fault-exit-before-markers 2, so it exits (code 3) at the
# markers of T2; it is restarted with the same flag, completes T2 while
# starting up (marker round 1) and exits again at T3's abort (round 2); the
# third start has no fault and completes T3. Checks: both faults fired
# (exit codes and log lines), each restart logged the transaction it found
# half-ended, the producer's commit/abort calls all succeeded (retrying
# while librdkafka says the error is retriable), and the data: read_committed
# = T1 + T2 + T4 in order, read_uncommitted = all four, T3 only there.
#
# Env: SLUICE_BIN. Keeps its work dir on failure.
set -uo pipefail

bin=${SLUICE_BIN:?set SLUICE_BIN to the sluice binary}
[ -x "$bin" ] || { echo "FAIL: $bin missing: build first" >&2; exit 1; }
/usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null ||
  { echo "FAIL: python3-confluent-kafka missing: run scripts/deps.sh test" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-txn-doubt.XXXXXX")

/usr/bin/python3 - "$bin" "$work" <<'PY'
import os, socket, subprocess, sys, threading, time
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

BIN, WORK = sys.argv[1], sys.argv[2]
s = socket.socket(); s.bind(('127.0.0.1', 0)); PORT = s.getsockname()[1]; s.close()
B = '127.0.0.1:%d' % PORT
TOPIC, PARTS = 'doubt', 3
PLAN = [['--fault-exit-before-markers', '2'], ['--fault-exit-before-markers', '2'], []]
starts, exits = [], []
lock = threading.Lock()
stop = threading.Event()
broker = None

def fail(msg):
    print('FAIL: ' + msg, file=sys.stderr)
    for name in sorted(os.listdir(WORK)):
        if name.startswith('broker.'):
            print('----- %s (last 15 lines)' % name, file=sys.stderr)
            print(''.join(open(os.path.join(WORK, name)).readlines()[-15:]), file=sys.stderr)
    if broker and broker.poll() is None:
        broker.kill()
    print('in-doubt test: work dir kept: ' + WORK, file=sys.stderr)
    sys.exit(1)

def log_of(i):
    return os.path.join(WORK, 'broker.%d.log' % i)

def start(i):
    out = open(log_of(i), 'w')
    p = subprocess.Popen([BIN, 'broker', '--data', WORK + '/data', '--listen', B, '--default-partitions', str(PARTS)]
                         + PLAN[i], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 10
    while 'listening on' not in open(log_of(i)).read():
        if p.poll() is not None or time.time() > deadline:
            fail('broker start %d did not come up' % i)
        time.sleep(0.02)
    starts.append(time.time())
    return p

def supervise():
    """Restarts the broker each time the fault makes it exit, with the next plan entry."""
    global broker
    while not stop.is_set():
        rc = broker.poll()
        if rc is None:
            time.sleep(0.02)
            continue
        exits.append(rc)
        if len(starts) == len(PLAN):
            return
        with lock:
            broker = start(len(starts))

def retrying(what, fn):
    t0 = time.time()
    while True:
        try:
            fn()
            return time.time() - t0
        except KafkaException as e:
            err = e.args[0]
            if not err.retriable() or time.time() - t0 > 60:
                fail('%s: %s (retriable=%s, fatal=%s)' % (what, err, err.retriable(), err.fatal()))
            print('%s: retriable error %s, retrying' % (what, err.str()))

broker = start(0)
sup = threading.Thread(target=supervise, daemon=True)
sup.start()
p = Producer({'bootstrap.servers': B, 'transactional.id': 'doubt-tx', 'transaction.timeout.ms': 60000,
              'message.timeout.ms': 60000})
p.init_transactions(30)
plan = [('T1', True), ('T2', True), ('T3', False), ('T4', True)]
for name, commit in plan:
    p.begin_transaction()
    for j in range(6):
        p.produce(TOPIC, value=('%s-m%d' % (name, j)).encode(), partition=j % PARTS)
    if p.flush(30) != 0:
        fail('%s: messages still queued after 30 s' % name)
    took = retrying(name, (lambda: p.commit_transaction(60)) if commit else (lambda: p.abort_transaction(60)))
    print('timing: %s %s took %.0f ms' % (name, 'commit' if commit else 'abort', took * 1000))
p.flush(10)
stop.set()
sup.join(5)

if exits[:2] != [3, 3] or len(starts) != 3:
    fail('expected two fault exits (code 3) and three starts, saw exits %s and %d starts' % (exits, len(starts)))
for i in (0, 1):
    if 'fault injection (--fault-exit-before-markers 2)' not in open(log_of(i)).read():
        fail('broker.%d.log has no fault-injection line' % i)
for i in (1, 2):
    if '1 being completed' not in open(log_of(i)).read():
        fail('broker.%d.log does not report the half-ended transaction it found' % i)

def read(iso):
    c = Consumer({'bootstrap.servers': B, 'group.id': 'doubt-' + iso, 'isolation.level': iso,
                  'enable.auto.commit': False})
    c.assign([TopicPartition(TOPIC, k, 0) for k in range(PARTS)])
    got, deadline, idle = [], time.time() + 20, 0
    while time.time() < deadline and idle < 10:
        m = c.poll(0.2)
        if m is None:
            idle += 1 if got else 0
            continue
        if m.error():
            continue
        idle = 0
        got.append((m.partition(), m.offset(), m.value().decode()))
    c.close()
    return got

def by_partition(msgs):
    return {k: [v for (pp, _, v) in sorted(msgs) if pp == k] for k in range(PARTS)}

want = {k: ['%s-m%d' % (n, j) for n, c in plan for j in range(6) if j % PARTS == k and c] for k in range(PARTS)}
want_all = {k: ['%s-m%d' % (n, j) for n, _ in plan for j in range(6) if j % PARTS == k] for k in range(PARTS)}
committed = by_partition(read('read_committed'))
if committed != want:
    fail('read_committed saw %s, expected %s' % (committed, want))
everything = by_partition(read('read_uncommitted'))
if everything != want_all:
    fail('read_uncommitted saw %s, expected %s' % (everything, want_all))
print('in-doubt: T2 completed as COMMIT and T3 as ABORT by the restarted broker; read_committed %d messages, '
      'read_uncommitted %d' % (sum(map(len, committed.values())), sum(map(len, everything.values()))))
broker.terminate()
if broker.wait(10) != 0:
    fail('the last broker did not stop cleanly')
PY
rc=$?
[ $rc -eq 0 ] && rm -rf "$work"
exit $rc
