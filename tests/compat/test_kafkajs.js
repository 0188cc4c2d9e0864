// kafkajs 2.2.4 (pure JavaScript client) against a running broker.
//
// Checks: admin createTopics (new -> true, existing -> false, invalid name
// rejected), fetchTopicMetadata (partitions, leader, replicas, isr),
// producer.send with acks -1, keys, headers, explicit partitions, uncompressed
// and GZIP (the codec kafkajs has built in), each reply's baseOffset;
// fetchTopicOffsets (low/high), fetchTopicOffsetsByTimestamp (inside a GZIP
// batch, and past the end -> high watermark), describeConfigs (values, default
// flags, sources), createPartitions, deleteTopics, listTopics.
// kafkajs can only consume through a consumer group, which the broker does not
// have yet, so the produced content is read back with kcat (child_process) and
// compared exactly: key, value, headers, offset, in order.
'use strict'

const { execFileSync } = require('child_process')
const { Kafka, CompressionTypes, ConfigResourceTypes, logLevel } = require('kafkajs')

const BOOTSTRAP = process.env.SLUICE_BOOTSTRAP
const TOPIC = 'js.data'
const PARTITIONS = 3
const failures = []

function check (cond, msg) {
  if (!cond) {
    failures.push(msg)
    console.error(`FAIL: ${msg}`)
  }
  return cond
}

async function expectReject (what, promise) {
  try {
    await promise
    check(false, `${what}: succeeded, want an error`)
  } catch (e) {
    console.log(`ok: ${what} rejected (${e.type || e.name})`)
  }
}

function content (codec, seq) {
  return {
    key: `k-${codec}-${seq}`,
    value: `v-${codec}-${seq}-${'x'.repeat(seq * 3)}`,
    headers: { codec, seq: String(seq) }
  }
}

async function checkCreate (admin) {
  const topics = [{ topic: TOPIC, numPartitions: PARTITIONS, replicationFactor: 1 }]
  check(await admin.createTopics({ topics, waitForLeaders: true }) === true, `createTopics ${TOPIC} did not return true`)
  check(await admin.createTopics({ topics }) === false, `createTopics existing ${TOPIC} did not return false`)
  await expectReject('createTopics "bad topic!"',
    admin.createTopics({ topics: [{ topic: 'bad topic!', numPartitions: 1 }] }))
  const md = await admin.fetchTopicMetadata({ topics: [TOPIC] })
  const parts = md.topics[0].partitions.sort((a, b) => a.partitionId - b.partitionId)
  check(parts.length === PARTITIONS, `metadata: ${parts.length} partitions`)
  for (const p of parts) {
    check(p.partitionErrorCode === 0 && p.leader >= 0 && p.replicas.length === 1 &&
      p.replicas[0] === p.leader && p.isr.length === 1 && p.isr[0] === p.leader,
    `metadata partition ${JSON.stringify(p)}`)
  }
  console.log('checked: createTopics, fetchTopicMetadata')
}

// Sends 3 rounds per codec; returns the expected kcat lines per partition.
async function produceAll (producer) {
  const want = [[], [], []]
  for (const [codec, compression] of [['none', CompressionTypes.None], ['gzip', CompressionTypes.GZIP]]) {
    for (let round = 0; round < 3; round++) {
      const messages = []
      for (let i = 0; i < 12; i++) {
        const seq = round * 12 + i
        messages.push({ ...content(codec, seq), partition: seq % PARTITIONS })
      }
      const res = await producer.send({ topic: TOPIC, acks: -1, compression, messages })
      for (const r of res) {
        const p = r.partition
        check(r.errorCode === 0 && r.baseOffset === String(want[p].length),
          `send ${codec} round ${round}: partition ${p} baseOffset ${r.baseOffset} error ${r.errorCode}, want ${want[p].length}`)
      }
      for (const m of messages) {
        const p = m.partition
        want[p].push(`${m.key}|${m.value}|codec=${m.headers.codec},seq=${m.headers.seq}|${want[p].length}`)
      }
    }
  }
  console.log('checked: producer.send none and gzip, baseOffsets')
  return want
}

function checkContent (want) {
  for (let p = 0; p < PARTITIONS; p++) {
    let out
    try {
      out = execFileSync('kcat', ['-b', BOOTSTRAP, '-C', '-t', TOPIC, '-p', String(p), '-o', 'beginning',
        '-e', '-q', '-f', '%k|%s|%h|%o\\n'], { encoding: 'utf8', timeout: 30000 })
    } catch (e) {
      check(false, `kcat read-back of partition ${p} failed (kcat missing? run scripts/deps.sh test): ${e.message}`)
      continue
    }
    const got = out.split('\n').filter(l => l.length > 0)
    check(JSON.stringify(got) === JSON.stringify(want[p]),
      `partition ${p} read back by kcat differs:\n got  ${got.slice(0, 3).join('\n      ')}\n want ${want[p].slice(0, 3).join('\n      ')}`)
  }
  console.log('checked: content read back with kcat')
}

async function checkOffsets (admin, producer, want) {
  const offs = (await admin.fetchTopicOffsets(TOPIC)).sort((a, b) => a.partition - b.partition)
  for (const o of offs) {
    const n = String(want[o.partition].length)
    check(o.low === '0' && o.high === n && o.offset === n, `fetchTopicOffsets ${JSON.stringify(o)}, want high ${n}`)
  }
  const t = 'js.times'
  await admin.createTopics({ topics: [{ topic: t, numPartitions: 1 }], waitForLeaders: true })
  const base = (Math.floor(Date.now() / 1000) - 3600) * 1000
  const messages = []
  for (let i = 0; i < 10; i++) messages.push({ value: `t${i}`, timestamp: String(base + i * 1000) })
  await producer.send({ topic: t, acks: -1, compression: CompressionTypes.GZIP, messages })
  for (const [delta, wantOff] of [[-5000, '0'], [0, '0'], [1, '1'], [3500, '4'], [9000, '9'], [9001, '10']]) {
    const r = await admin.fetchTopicOffsetsByTimestamp(t, base + delta)
    check(r.length === 1 && r[0].offset === wantOff, `fetchTopicOffsetsByTimestamp base+${delta}: ${JSON.stringify(r)}, want ${wantOff}`)
  }
  console.log('checked: fetchTopicOffsets, fetchTopicOffsetsByTimestamp')
}

async function checkAdmin (admin) {
  const t = 'js.admin'
  await admin.createTopics({
    topics: [{ topic: t, numPartitions: 2, configEntries: [{ name: 'retention.ms', value: '86400000' }] }],
    waitForLeaders: true
  })
  const dc = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: t, configNames: ['retention.ms', 'cleanup.policy'] }],
    includeSynonyms: false
  })
  const res = dc.resources[0]
  check(res.errorCode === 0, `describeConfigs error ${res.errorCode}`)
  const byName = Object.fromEntries(res.configEntries.map(e => [e.configName, e]))
  const r = byName['retention.ms']
  check(r && r.configValue === '86400000' && r.isDefault === false && r.configSource === 1,
    `retention.ms ${JSON.stringify(r)}: want 86400000, not default, source 1`)
  const c = byName['cleanup.policy']
  check(c && c.configValue === 'delete' && c.isDefault === true && c.configSource === 5,
    `cleanup.policy ${JSON.stringify(c)}: want delete, default, source 5`)
  check(res.configEntries.length === 2, `describeConfigs with 2 names returned ${res.configEntries.length} entries`)
  await admin.createPartitions({ topicPartitions: [{ topic: t, count: 4 }] })
  const md = await admin.fetchTopicMetadata({ topics: [t] })
  check(md.topics[0].partitions.length === 4, `after createPartitions: ${md.topics[0].partitions.length} partitions`)
  await expectReject('createPartitions shrink', admin.createPartitions({ topicPartitions: [{ topic: t, count: 1 }] }))
  await admin.deleteTopics({ topics: [t] })
  check(!(await admin.listTopics()).includes(t), `${t} still listed after deleteTopics`)
  console.log('checked: describeConfigs, createPartitions, deleteTopics, listTopics')
}

async function main () {
  if (!BOOTSTRAP) throw new Error('SLUICE_BOOTSTRAP unset: run through tests/compat/run.sh')
  const kafka = new Kafka({
    clientId: 'sluice-compat',
    brokers: [BOOTSTRAP],
    logLevel: logLevel.ERROR,
    retry: { retries: 3 }
  })
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await admin.connect()
  await producer.connect()
  try {
    let want = [[], [], []]
    const steps = [
      ['create', () => checkCreate(admin)],
      ['produce', async () => { want = await produceAll(producer); checkContent(want) }],
      ['offsets', () => checkOffsets(admin, producer, want)],
      ['admin', () => checkAdmin(admin)]
    ]
    for (const [name, fn] of steps) {
      try {
        await fn()
      } catch (e) {
        check(false, `${name}: ${e.name}: ${e.message}`)
      }
    }
  } finally {
    await producer.disconnect()
    await admin.disconnect()
  }
  if (failures.length) {
    console.error(`test_kafkajs: ${failures.length} check(s) failed`)
    process.exit(1)
  }
  console.log('test_kafkajs: all checks passed')
}

main().catch(e => {
  console.error(`FAIL: ${e.stack || e}`)
  process.exit(1)
})
