// sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000
//
// kafkajs 2.2.4 transactions against a running broker.
//
// Producers: kafka.producer({ transactionalId, idempotent: true,
// maxInFlightRequests: 1 }) and producer.transaction(); a plain producer
// (acks -1) writes between transactions. Every record sent is entered in a
// model of the log with the offset derived from send()'s baseOffset, which
// must be the offset the model predicts: one COMMIT/ABORT marker per ended
// transaction in each partition it wrote to, none elsewhere. A read_committed
// reader must get the committed and plain records below the last stable
// offset (LSO), read_uncommitted everything, in offset order, compared by
// offset, key, value and headers.
//
// Checks, on a topic with 3 partitions:
// - four transactions (commit on all partitions with one GZIP batch, abort
//   on two, commit on one with GZIP, abort on one): send() baseOffsets at
//   the predicted offsets; two running consumers, readUncommitted false
//   (kafkajs's default: isolation level READ_COMMITTED) and true, get
//   exactly the committed records, and all of them;
// - an open transaction on partition 0 with plain records after it: the
//   read_uncommitted consumer gets them at once, the read_committed one
//   nothing on partition 0 but the plain records on partition 1;
//   admin.fetchTopicOffsets (ListOffsets, READ_COMMITTED in kafkajs) reports
//   the LSO for partition 0 and the high watermark elsewhere; after commit
//   the read_committed consumer continues through the transaction and the
//   records behind it; a second open transaction is aborted and it gets only
//   the plain records behind it;
// - transaction.sendOffsets({ consumerGroupId, topics }) with records sent
//   in the same transaction: admin.fetchOffsets for the group is unchanged
//   (-1) until commit, then shows the offsets; sendOffsets in a transaction
//   that is aborted leaves them unchanged; a third transaction commits new
//   ones;
// - fencing: a second producer with the same transactionalId begins its
//   first transaction (kafkajs sends the transactional InitProducerId at the
//   first transaction(), connect() only an idempotent one) while the first
//   has an open transaction: that
//   transaction is aborted, the second commits, and what kafkajs reports
//   to the first for its next send and commit is recorded: a
//   KafkaJSProtocolError of type INVALID_PRODUCER_EPOCH (not retriable).
//   The read_committed consumer never gets the fenced records.
// Timings printed: the first and later transaction(), commit and abort,
// visibility after commit and abort, fencing.
'use strict'

let kafkajs
try {
  kafkajs = require('kafkajs')
} catch (e) {
  console.error(`FAIL: kafkajs missing (${e.message}): run scripts/deps.sh test`)
  process.exit(1)
}
const { Kafka, CompressionTypes, logLevel } = kafkajs

const BOOTSTRAP = process.env.SLUICE_BOOTSTRAP
const TOPIC = 'jst.data'
const PARTITIONS = 3
const WAIT_MS = 10000
const failures = []
const consumers = []
const producers = []

function check (cond, msg) {
  if (!cond) {
    failures.push(msg)
    console.error(`FAIL: ${msg}`)
  }
  return cond
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
const sum = xs => xs.reduce((a, b) => a + b, 0)

async function waitFor (what, cond, timeout = WAIT_MS) {
  const start = Date.now()
  for (;;) {
    if (await cond()) return Date.now() - start
    if (Date.now() - start > timeout) {
      check(false, `timed out after ${timeout} ms waiting for ${what}`)
      return null
    }
    await sleep(5)
  }
}

function kafkaFor (clientId) {
  return new Kafka({ clientId, brokers: [BOOTSTRAP], logLevel: logLevel.NOTHING, retry: { retries: 5 } })
}

// The model of the topic: per partition the records (offset, key, value,
// headers, transaction) and the next offset.
const model = { next: [0, 0, 0], records: [[], [], []] }

function lso (p) {
  const open = model.records[p].filter(r => r.txn && r.txn.state === 'open').map(r => r.offset)
  return open.length ? Math.min(...open) : model.next[p]
}

function want (p, committed) {
  const l = lso(p)
  return model.records[p]
    .filter(r => !committed || (r.offset < l && (!r.txn || r.txn.state === 'committed')))
    .map(r => [r.offset, r.key, r.value, r.headers])
}

const canonHeaders = h => Object.keys(h || {}).sort().map(k => [k, h[k] === null || h[k] === undefined ? null : h[k].toString()])

// Sends messages (all to one partition each call) and enters them in the model.
async function send (sender, what, txn, partition, messages, compression = CompressionTypes.None) {
  const res = await sender.send({
    topic: TOPIC,
    acks: -1,
    compression,
    messages: messages.map(m => ({ partition, key: m.key, value: m.value, headers: m.headers }))
  })
  const r = res.find(x => x.partition === partition)
  if (!check(r && r.errorCode === 0 && r.baseOffset === String(model.next[partition]),
    `${what}: send to [${partition}] answered ${JSON.stringify(res)}, want baseOffset ${model.next[partition]} ` +
    '(one marker per ended transaction and partition)')) {
    return
  }
  messages.forEach((m, i) => {
    model.records[partition].push({ offset: model.next[partition] + i, key: m.key, value: m.value, headers: canonHeaders(m.headers), txn })
  })
  model.next[partition] += messages.length
  if (txn) txn.partitions.add(partition)
}

function ended (txn, state) {
  txn.state = state
  for (const p of [...txn.partitions].sort()) model.next[p] += 1
}

function msgs (tag, n, withNullKey = true) {
  const out = []
  for (let i = 0; i < n; i++) {
    out.push({
      key: withNullKey && i % 3 === 2 ? null : `${tag}-k${i}`,
      value: `${tag} record ${i} `.repeat(1 + i * 5),
      headers: { tag, i: String(i), empty: '' }
    })
  }
  return out
}

class Reader {
  constructor (committed) {
    this.committed = committed
    this.name = committed ? 'read_committed' : 'read_uncommitted'
    this.records = [[], [], []]
    this.arrivals = []
    this.crashes = []
    const opts = {
      groupId: `jst.reader.${this.name}`,
      sessionTimeout: 6000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
      retry: { retries: 5 }
    }
    // readUncommitted left to kafkajs's default (false) for the committed reader.
    if (!committed) opts.readUncommitted = true
    this.consumer = kafkaFor(`jst-${this.name}`).consumer(opts)
    this.consumer.on(this.consumer.events.CRASH, e => this.crashes.push(String(e.payload.error)))
    consumers.push(this)
  }

  async start () {
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [TOPIC], fromBeginning: true })
    await this.consumer.run({
      eachMessage: async ({ partition, message }) => {
        this.records[partition].push([Number(message.offset), message.key === null ? null : message.key.toString(),
          message.value === null ? null : message.value.toString(), canonHeaders(message.headers)])
        this.arrivals.push(Date.now())
      }
    })
  }

  caughtUp () {
    for (let p = 0; p < PARTITIONS; p++) if (this.records[p].length < want(p, this.committed).length) return false
    return true
  }

  compare (what) {
    for (let p = 0; p < PARTITIONS; p++) {
      const got = this.records[p]
      const w = want(p, this.committed)
      if (!same(got, w)) {
        check(false, `${what}: [${p}] ${this.name} got offsets ${JSON.stringify(got.map(r => r[0]))}, want ` +
          `${JSON.stringify(w.map(r => r[0]))}; first difference: got ${JSON.stringify(got.find((r, i) => !same(r, w[i])))}`)
      }
    }
  }
}

async function settle (readers, what) {
  for (const r of readers) await waitFor(`${r.name}: ${what}`, () => r.caughtUp())
  await sleep(300) // a record that should not be delivered would arrive now
  for (const r of readers) r.compare(what)
}

async function latestOffsets (admin) {
  const res = await admin.fetchTopicOffsets(TOPIC)
  const out = []
  for (const { partition, high } of res) out[partition] = Number(high)
  return out
}

async function txnProducer (id, clientId) {
  const p = kafkaFor(clientId).producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 30000 })
  producers.push(p)
  await p.connect()
  return p
}

const beginMs = [] // how long each producer.transaction() took

async function begin (producer) {
  const start = Date.now()
  const t = await producer.transaction()
  beginMs.push(Date.now() - start)
  return t
}

async function inTxn (producer, name, body, commit) {
  const txn = { name, state: 'open', partitions: new Set() }
  const t = await begin(producer)
  await body(t, txn)
  const start = Date.now()
  if (commit) await t.commit()
  else await t.abort()
  const took = Date.now() - start
  ended(txn, commit ? 'committed' : 'aborted')
  return took
}

async function content (producer, readers) {
  const took = { commit: [], abort: [] }
  const plan = [
    ['t1', true, async (t, txn) => {
      for (let p = 0; p < PARTITIONS; p++) await send(t, 't1', txn, p, msgs(`t1-p${p}`, 4))
      await send(t, 't1 gzip', txn, 0, msgs('t1-gz', 5), CompressionTypes.GZIP)
    }],
    ['t2', false, async (t, txn) => {
      await send(t, 't2', txn, 0, msgs('t2-p0', 3))
      await send(t, 't2', txn, 1, msgs('t2-p1', 3))
    }],
    ['t3', true, async (t, txn) => { await send(t, 't3', txn, 2, msgs('t3-p2', 6), CompressionTypes.GZIP) }],
    ['t4', false, async (t, txn) => { await send(t, 't4', txn, 0, msgs('t4-p0', 2, false)) }]
  ]
  for (const [name, commit, body] of plan) took[commit ? 'commit' : 'abort'].push(await inTxn(producer, name, body, commit))
  console.log(`timing: commit ${JSON.stringify(took.commit)} ms, abort ${JSON.stringify(took.abort)} ms (EndTxn, answered once the markers are durable)`)
  for (const r of readers) await r.start()
  await settle(readers, 'content')
  const all = [0, 1, 2].map(p => model.records[p].length)
  const committed = [0, 1, 2].map(p => want(p, true).length)
  console.log(`checked: 4 transactions (2 committed, 2 aborted, GZIP in two): offsets as predicted, high watermarks ` +
    `${JSON.stringify(model.next)}; read_committed got ${sum(committed)} records ${JSON.stringify(committed)}, ` +
    `read_uncommitted ${sum(all)} ${JSON.stringify(all)}`)
}

async function openTransaction (producer, plain, admin, readers) {
  const [rc, ru] = readers
  for (const [round, commit] of [[1, true], [2, false]]) {
    const txn = { name: `open${round}`, state: 'open', partitions: new Set() }
    const t = await begin(producer)
    await send(t, `open${round}`, txn, 0, msgs(`open${round}`, 3, false))
    await send(plain, `plain${round}`, null, 0, msgs(`plain${round}-p0`, 2, false))
    await send(plain, `plain${round}`, null, 1, msgs(`plain${round}-p1`, 2, false))
    const l0 = lso(0)
    check(l0 < model.next[0], `round ${round}: model LSO ${l0}, HW ${model.next[0]}`)
    await settle(readers, `round ${round}, transaction open`)
    const rc0 = rc.records[0].length
    const latest = await latestOffsets(admin)
    check(same(latest, [l0, model.next[1], model.next[2]]), `round ${round}: admin.fetchTopicOffsets high ${JSON.stringify(latest)}, ` +
      `want the LSO ${l0} for [0] and the high watermarks ${JSON.stringify(model.next.slice(1))} (kafkajs lists READ_COMMITTED)`)
    console.log(`checked: round ${round}: transaction open at [0]@${l0}: read_committed waits there ` +
      `(${rc0} records on [0], read_uncommitted ${ru.records[0].length}), got the plain records on [1]; ` +
      `fetchTopicOffsets gives the LSO ${JSON.stringify(latest)}`)
    const before = rc.arrivals.length
    const start = Date.now()
    if (commit) await t.commit()
    else await t.abort()
    const endedAt = Date.now()
    ended(txn, commit ? 'committed' : 'aborted')
    await settle(readers, `round ${round}, after ${commit ? 'commit' : 'abort'}`)
    if (rc.arrivals.length > before) {
      console.log(`timing: the read_committed consumer got the ${rc.arrivals.length - before} records behind the LSO ` +
        `${rc.arrivals[before] - endedAt} ms after ${commit ? 'commit' : 'abort'}() returned (which took ${endedAt - start} ms)` +
        (rc.arrivals[before] < endedAt ? '; negative: its parked fetch was answered before the EndTxn answer reached the producer' : ''))
    }
    check(same(await latestOffsets(admin), model.next), `round ${round}: fetchTopicOffsets after the end ` +
      `${JSON.stringify(await latestOffsets(admin))}, want ${JSON.stringify(model.next)}`)
    const leaked = rc.records[0].filter(r => r[1] && r[1].startsWith('open2'))
    check(leaked.length === 0, `read_committed delivered aborted records ${JSON.stringify(leaked.slice(0, 2))}`)
    console.log(`checked: round ${round}: after ${commit ? 'commit' : 'abort'}() the read_committed consumer continued ` +
      `${commit ? 'with' : 'without'} the transaction's records: [0] ${rc0} -> ${rc.records[0].length}`)
  }
}

async function groupOffsets (admin, group) {
  const res = await admin.fetchOffsets({ groupId: group, topics: [TOPIC] })
  const out = []
  for (const { partition, offset } of res[0].partitions) out[partition] = offset
  return out
}

async function offsetsInTransactions (producer, admin) {
  const group = 'jst.ctp'
  const none = ['-1', '-1', '-1']
  const rounds = [[[3, 0, 5], true], [[9, 9, 9], false], [[4, 2, 6], true]]
  let committed = none
  for (const [offs, commit] of rounds) {
    const txn = { name: `offsets ${offs}`, state: 'open', partitions: new Set() }
    const t = await begin(producer)
    await send(t, `offsets ${offs}`, txn, 1, msgs(`out-${offs.join('.')}`, 2, false))
    await t.sendOffsets({
      consumerGroupId: group,
      topics: [{ topic: TOPIC, partitions: offs.map((offset, partition) => ({ partition, offset: String(offset) })) }]
    })
    const pending = await groupOffsets(admin, group)
    check(same(pending, committed), `sendOffsets ${offs} pending: fetchOffsets ${JSON.stringify(pending)}, want the previous ` +
      `${JSON.stringify(committed)} until the transaction ends`)
    const start = Date.now()
    if (commit) await t.commit()
    else await t.abort()
    const took = Date.now() - start
    ended(txn, commit ? 'committed' : 'aborted')
    if (commit) committed = offs.map(String)
    const after = await groupOffsets(admin, group)
    check(same(after, committed), `sendOffsets ${offs} then ${commit ? 'commit' : 'abort'}: fetchOffsets ${JSON.stringify(after)}, ` +
      `want ${JSON.stringify(committed)}`)
    console.log(`checked: sendOffsets ${JSON.stringify(offs)}: fetchOffsets ${JSON.stringify(pending)} while pending, ` +
      `${JSON.stringify(after)} after ${commit ? 'commit' : 'abort'} (which took ${took} ms)`)
  }
}

function describeError (e) {
  return { name: e.name, type: e.type, code: e.code, retriable: e.retriable, message: e.message }
}

async function fencing (admin, readers) {
  const old = await txnProducer('jst-fence', 'jst-old')
  const txnOld = { name: 'zombie', state: 'open', partitions: new Set() }
  const t = await begin(old)
  await send(t, 'zombie', txnOld, 2, msgs('zombie', 2, false))
  const fresh = await txnProducer('jst-fence', 'jst-new')
  // kafkajs sends the transactional InitProducerId at the first transaction(),
  // not at connect(): that fences the old instance and aborts its transaction.
  const txnNew = { name: 'new', state: 'open', partitions: new Set() }
  const start = Date.now()
  const t2 = await fresh.transaction()
  const took = Date.now() - start
  ended(txnOld, 'aborted')
  console.log(`timing: the second instance's first transaction() (InitProducerId: CONCURRENT_TRANSACTIONS while the broker ` +
    `aborts the first's transaction, then retried by kafkajs) took ${took} ms`)
  await send(t2, 'new', txnNew, 2, msgs('new', 2, false))
  await t2.commit()
  ended(txnNew, 'committed')
  const reported = {}
  for (const [what, fn] of [['send', () => t.send({ topic: TOPIC, acks: -1, messages: [{ partition: 2, value: 'zombie-late' }] })],
    ['commit', () => t.commit()]]) {
    try {
      await fn()
      check(false, `the fenced producer's ${what} succeeded`)
    } catch (e) {
      reported[what] = describeError(e)
      check(e.name === 'KafkaJSProtocolError' && e.type === 'INVALID_PRODUCER_EPOCH' && e.retriable === false,
        `the fenced producer's ${what}: ${JSON.stringify(reported[what])}, want a KafkaJSProtocolError INVALID_PRODUCER_EPOCH, not retriable`)
    }
  }
  console.log(`checked: fencing: kafkajs reports to the fenced producer: ${JSON.stringify(reported)}`)
  await settle(readers, 'fencing')
  const zombies = readers[0].records[2].filter(r => r[1] && r[1].startsWith('zombie'))
  check(zombies.length === 0, `read_committed delivered the fenced producer's records ${JSON.stringify(zombies)}`)
  console.log(`checked: fencing: read_committed got the new instance's records and none of the old one's; ` +
    `read_uncommitted got ${readers[1].records[2].filter(r => r[1] && r[1].startsWith('zombie')).length} of the old one's (aborted)`)
}

async function main () {
  if (!BOOTSTRAP) throw new Error('SLUICE_BOOTSTRAP unset: run through tests/compat/run.sh')
  const kafka = kafkaFor('jst-admin')
  const admin = kafka.admin()
  const plain = kafka.producer({ allowAutoTopicCreation: false })
  producers.push(plain)
  await admin.connect()
  await plain.connect()
  const started = Date.now()
  try {
    await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true })
    const producer = await txnProducer('jst-tx', 'jst-tx')
    const readers = [new Reader(true), new Reader(false)]
    await content(producer, readers)
    console.log(`timing: the first transaction() (FindCoordinator + transactional InitProducerId) took ${beginMs[0]} ms, ` +
      `the next ones ${JSON.stringify(beginMs.slice(1))} ms`)
    await openTransaction(producer, plain, admin, readers)
    await offsetsInTransactions(producer, admin)
    await settle(readers, 'after the offsets transactions')
    await fencing(admin, readers)
  } catch (e) {
    check(false, `${e.name}: ${e.message}`)
  } finally {
    for (const r of consumers) {
      check(r.crashes.length === 0, `${r.name} consumer crashed: ${r.crashes}`)
      await r.consumer.disconnect().catch(() => {})
    }
    for (const p of producers) await p.disconnect().catch(() => {})
    await admin.disconnect()
  }
  console.log(`total ${((Date.now() - started) / 1000).toFixed(1)} s`)
  if (failures.length) {
    console.error(`test_txn_kafkajs: ${failures.length} check(s) failed`)
    process.exit(1)
  }
  console.log('test_txn_kafkajs: all checks passed')
}

main().catch(e => {
  console.error(`FAIL: ${e.stack || e}`)
  process.exit(1)
})
