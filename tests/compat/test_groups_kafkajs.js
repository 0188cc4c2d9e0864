// sluice-broker-args: --group-initial-rebalance-delay 0 --group-min-session-timeout 1000
//
// kafkajs 2.2.4 consumer groups against a running broker.
//
// Every consumer uses eachMessage with kafkajs's autoCommit (it commits the
// resolved offsets after each batch and before it rejoins), sessionTimeout
// 6000, heartbeatInterval 500 and maxWaitTimeInMs 100 (kafkajs heartbeats
// from its fetch loop, so a long fetch wait would delay rebalances).
// Each consumer has its own clientId; GROUP_JOIN events record every
// assignment with the member id and the leader.
//
// Checks, on a topic with 4 partitions and group "jsg.group":
// - A joins alone and gets all 4 partitions; phase 1 is consumed and the
//   commits land (admin.fetchOffsets = end offsets, metadata null);
// - B joins later: A and B split the partitions (disjoint, union = all, 2 + 2
//   with kafkajs's RoundRobinAssigner); admin.describeGroups: Stable, protocol
//   type "consumer", protocol "RoundRobinAssigner", both members with their
//   member ids, client ids and the decoded assignments (AssignerProtocol)
//   equal to what each member was given; admin.listGroups lists the group;
// - phase 2 is consumed by the owners only; fetchOffsets = end offsets;
// - consumer.commitOffsets with metadata "js-meta" is read back by fetchOffsets;
// - C joins a running group of two: three members, disjoint, union = all;
// - deleteGroups on the running group fails with NON_EMPTY_GROUP (68);
//   admin.setOffsets on it is refused by kafkajs (the described state is not
//   Empty);
// - A disconnects (LeaveGroup): B and C cover all partitions again; the time
//   from A's disconnect to that is printed; then B and C disconnect and the
//   group is Empty with no members; over A, B, C every message was consumed
//   exactly once, in order per partition;
// - admin.resetOffsets(earliest) on the empty group: fetchOffsets gives -2 on
//   every partition (kafkajs commits the "earliest" sentinel -2; Kafka stores
//   and returns it, kafkajs's own resetOffsets test expects '-2'), and consumer
//   D re-reads everything from offset 0 where it would have resumed at the end
//   offsets committed before (kafkajs 2.2.4 treats any negative committed
//   offset as none and falls back to the subscription's fromBeginning, so D
//   subscribes with fromBeginning true, as resetOffsets' callers must);
// - admin.setOffsets to 3 + partition: fetchOffsets shows them; consumer E
//   starts at exactly those offsets and reads to the end; fetchOffsets = end;
// - admin.deleteGroups: errorCode 0; describeGroups then gives state Dead
//   with no members, fetchOffsets -1 everywhere, listGroups no longer lists
//   it, and deleting it again fails with GROUP_ID_NOT_FOUND (69).
// Timings printed: join (run() to GROUP_JOIN and kafkajs's own join duration),
// split, rebalance after disconnect.
'use strict'

const { Kafka, AssignerProtocol, logLevel } = require('kafkajs')

const BOOTSTRAP = process.env.SLUICE_BOOTSTRAP
const TOPIC = 'jsg.split'
const GROUP = 'jsg.group'
const PARTITIONS = 4
const ALL = [0, 1, 2, 3]
const WAIT_MS = 20000
const failures = []
const allMembers = []

function check (cond, msg) {
  if (!cond) {
    failures.push(msg)
    console.error(`FAIL: ${msg}`)
  }
  return cond
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b)
const canon = o => JSON.stringify(Object.keys(o).sort().map(k => [k, o[k]]))
const sorted = xs => [...xs].sort((x, y) => x - y)

async function waitFor (what, cond, timeout = WAIT_MS) {
  const start = Date.now()
  for (;;) {
    if (await cond()) return Date.now() - start
    if (Date.now() - start > timeout) {
      check(false, `timed out after ${timeout} ms waiting for ${what}`)
      return null
    }
    await sleep(20)
  }
}

function kafkaFor (clientId) {
  return new Kafka({ clientId, brokers: [BOOTSTRAP], logLevel: logLevel.NOTHING, retry: { retries: 5 } })
}

class Member {
  constructor (name) {
    this.name = name
    this.clientId = `jsg-${name}`
    this.joins = [] // { t, memberId, leaderId, isLeader, protocol, partitions, duration }
    this.records = [] // [partition, offset, value]
    this.crashes = []
    allMembers.push(this)
    this.consumer = kafkaFor(this.clientId).consumer({
      groupId: GROUP,
      sessionTimeout: 6000,
      rebalanceTimeout: 10000,
      heartbeatInterval: 500,
      maxWaitTimeInMs: 100,
      retry: { retries: 5 }
    })
    const ev = this.consumer.events
    this.consumer.on(ev.GROUP_JOIN, e => {
      const p = e.payload
      this.joins.push({
        t: Date.now(),
        memberId: p.memberId,
        leaderId: p.leaderId,
        isLeader: p.isLeader,
        protocol: p.groupProtocol,
        partitions: sorted(p.memberAssignment[TOPIC] || []),
        duration: p.duration
      })
    })
    this.consumer.on(ev.CRASH, e => this.crashes.push(String(e.payload.error)))
  }

  async start (fromBeginning = true) {
    this.started = Date.now()
    await this.consumer.connect()
    await this.consumer.subscribe({ topics: [TOPIC], fromBeginning })
    await this.consumer.run({
      eachMessage: async ({ partition, message }) => {
        this.records.push([partition, Number(message.offset), message.value.toString()])
      }
    })
  }

  latest () { return this.joins.length ? this.joins[this.joins.length - 1] : null }

  async stop () {
    const t = Date.now()
    await this.consumer.disconnect()
    this.stoppedAt = Date.now()
    this.stopMs = this.stoppedAt - t
  }
}

const valueOf = (p, off) => `js-p${p}-o${off}`

async function produce (producer, perPartition, end) {
  const messages = []
  for (let i = 0; i < perPartition; i++) {
    for (let p = 0; p < PARTITIONS; p++) messages.push({ partition: p, value: valueOf(p, end[p] + i) })
  }
  const res = await producer.send({ topic: TOPIC, acks: -1, messages })
  for (const r of res) {
    check(r.errorCode === 0 && r.baseOffset === String(end[r.partition]),
      `produce: [${r.partition}] baseOffset ${r.baseOffset} error ${r.errorCode}, want ${end[r.partition]}`)
  }
  for (let p = 0; p < PARTITIONS; p++) end[p] += perPartition
}

async function committed (admin) {
  const res = await admin.fetchOffsets({ groupId: GROUP, topics: [TOPIC] })
  check(res.length === 1 && res[0].topic === TOPIC, `fetchOffsets returned ${JSON.stringify(res)}`)
  const out = {}
  for (const { partition, offset, metadata } of res[0].partitions) out[partition] = [offset, metadata]
  return out
}

function wantOffsets (end, meta = {}) {
  const out = {}
  for (let p = 0; p < PARTITIONS; p++) out[p] = [String(end[p]), meta[p] === undefined ? null : meta[p]]
  return out
}

async function waitCommitted (admin, end, what) {
  const want = wantOffsets(end)
  let got
  const ms = await waitFor(`${what}: fetchOffsets to reach the end offsets`, async () => {
    got = await committed(admin)
    return same(got, want)
  })
  if (ms === null) check(false, `${what}: fetchOffsets ${JSON.stringify(got)}, want ${JSON.stringify(want)}`)
}

async function describe (admin) {
  const { groups } = await admin.describeGroups([GROUP])
  check(groups.length === 1 && groups[0].groupId === GROUP && groups[0].errorCode === 0,
    `describeGroups: ${JSON.stringify(groups.map(g => [g.groupId, g.errorCode]))}`)
  return groups[0]
}

function describedMembers (g) {
  const out = {}
  for (const m of g.members) {
    const a = m.memberAssignment && m.memberAssignment.length ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment) : null
    out[m.memberId] = { clientId: m.clientId, partitions: a ? sorted(a.assignment[TOPIC] || []) : [] }
    check(m.clientHost, `describeGroups: member ${m.memberId} has no clientHost`)
  }
  return out
}

function covers (members, since) {
  const parts = []
  for (const m of members) {
    const j = m.latest()
    if (!j || j.t < since) return false
    parts.push(...j.partitions)
  }
  return same(sorted(parts), ALL)
}

function consumedByOffset (members) {
  const seen = {}
  for (let p = 0; p < PARTITIONS; p++) seen[p] = []
  for (const m of members) {
    for (let p = 0; p < PARTITIONS; p++) {
      const offs = m.records.filter(r => r[0] === p).map(r => r[1])
      check(same(offs, sorted(offs)), `member ${m.name} consumed [${p}] out of order`)
      seen[p].push(...offs)
    }
    for (const [p, off, v] of m.records) check(v === valueOf(p, off), `member ${m.name} [${p}]@${off}: value ${v}`)
  }
  return seen
}

async function expectDeleteError (admin, code, what) {
  try {
    const res = await admin.deleteGroups([GROUP])
    check(false, `${what}: deleteGroups succeeded (${JSON.stringify(res)}), want error ${code}`)
  } catch (e) {
    const codes = (e.groups || []).map(g => g.errorCode)
    check(same(codes, [code]), `${what}: deleteGroups failed with ${e.name} ${e.message} codes ${JSON.stringify(codes)}, want [${code}]`)
  }
}

async function run (admin, producer) {
  await admin.createTopics({ topics: [{ topic: TOPIC, numPartitions: PARTITIONS }], waitForLeaders: true })
  const end = [0, 0, 0, 0]
  await produce(producer, 10, end)

  const a = new Member('a')
  await a.start()
  if (await waitFor("A's first GROUP_JOIN", () => a.joins.length > 0) === null) return
  console.log(`timing: kafkajs join, run() to GROUP_JOIN: ${a.joins[0].t - a.started} ms (kafkajs join+sync duration ${a.joins[0].duration} ms)`)
  check(same(a.latest().partitions, ALL) && a.latest().isLeader, `A alone: ${JSON.stringify(a.latest())}`)
  await waitFor('A to consume phase 1', () => a.records.length >= 40)
  await waitCommitted(admin, end, 'phase 1')

  const b = new Member('b')
  await b.start()
  if (await waitFor('A and B to split the partitions', () => covers([a, b], b.started)) === null) {
    check(false, `joins: A ${JSON.stringify(a.joins)} B ${JSON.stringify(b.joins)}`)
    return
  }
  const splitMs = Math.max(a.latest().t, b.latest().t) - b.started
  console.log(`timing: second member's run() to both rejoined with their share: ${splitMs} ms`)
  const [ja, jb] = [a.latest(), b.latest()]
  check(ja.partitions.length === 2 && jb.partitions.length === 2, `split ${ja.partitions} / ${jb.partitions}, want 2 + 2`)
  check(ja.leaderId === jb.leaderId && [ja.memberId, jb.memberId].includes(ja.leaderId) && ja.isLeader !== jb.isLeader,
    `leaders: A ${ja.leaderId} (isLeader ${ja.isLeader}), B ${jb.leaderId} (isLeader ${jb.isLeader})`)
  console.log(`checked: split A=${ja.partitions} B=${jb.partitions}`)

  let g = await describe(admin)
  check(g.state === 'Stable' && g.protocolType === 'consumer' && g.protocol === 'RoundRobinAssigner',
    `describeGroups: ${g.state}/${g.protocolType}/${g.protocol}, want Stable/consumer/RoundRobinAssigner`)
  const wantMembers = {
    [ja.memberId]: { clientId: 'jsg-a', partitions: ja.partitions },
    [jb.memberId]: { clientId: 'jsg-b', partitions: jb.partitions }
  }
  const gotMembers = describedMembers(g)
  check(canon(gotMembers) === canon(wantMembers),
    `describeGroups members ${JSON.stringify(gotMembers)}, want ${JSON.stringify(wantMembers)}`)
  const { groups } = await admin.listGroups()
  check(groups.some(x => x.groupId === GROUP && x.protocolType === 'consumer'),
    `listGroups ${JSON.stringify(groups)} lacks ${GROUP}/consumer`)
  console.log('checked: describeGroups (Stable, RoundRobinAssigner, members, assignments), listGroups')

  const before = [a.records.length, b.records.length]
  await produce(producer, 20, end)
  await waitFor('A and B to consume phase 2', () => a.records.length + b.records.length >= 120)
  await waitCommitted(admin, end, 'phase 2')
  check(a.records.length + b.records.length === 120, `A+B consumed ${a.records.length + b.records.length}, want 120`)
  for (const [m, n] of [[a, before[0]], [b, before[1]]]) {
    const parts = new Set(m.records.slice(n).map(r => r[0]))
    check([...parts].every(p => m.latest().partitions.includes(p)),
      `member ${m.name} consumed partitions ${[...parts]}, owns ${m.latest().partitions}`)
  }
  console.log('checked: phase 2 consumed by the owners, commits = end offsets')

  const mp = ja.partitions[0]
  await a.consumer.commitOffsets([{ topic: TOPIC, partition: mp, offset: String(end[mp]), metadata: 'js-meta' }])
  let got = await committed(admin)
  check(same(got, wantOffsets(end, { [mp]: 'js-meta' })),
    `after commitOffsets with metadata: ${JSON.stringify(got)}, want 'js-meta' on [${mp}]`)
  console.log(`checked: metadata 'js-meta' round trip on [${mp}]`)

  const c = new Member('c')
  await c.start()
  if (await waitFor('A, B and C to share the partitions', () => covers([a, b, c], c.started)) !== null) {
    console.log(`timing: third member's run() to all three rejoined: ${Math.max(a.latest().t, b.latest().t, c.latest().t) - c.started} ms`)
    g = await describe(admin)
    check(g.state === 'Stable' && g.members.length === 3, `with 3 members: ${g.state}, ${g.members.length} members`)
    const dm = describedMembers(g)
    for (const m of [a, b, c]) {
      check(dm[m.latest().memberId] && same(dm[m.latest().memberId].partitions, m.latest().partitions),
        `describeGroups for ${m.name}: ${JSON.stringify(dm[m.latest().memberId])}, member holds ${m.latest().partitions}`)
    }
    console.log(`checked: C joined later: A=${a.latest().partitions} B=${b.latest().partitions} C=${c.latest().partitions}`)
  }

  await expectDeleteError(admin, 68, 'running group')
  try {
    await admin.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: [{ partition: 0, offset: '0' }] })
    check(false, 'setOffsets on a running group succeeded')
  } catch (e) {
    check(/must have no running instances/.test(e.message), `setOffsets on a running group: ${e.message}`)
  }
  console.log('checked: deleteGroups -> NON_EMPTY_GROUP and setOffsets refused while the group runs')

  // A leaves: B and C take over its partitions at once.
  await a.stop()
  const left = a.stoppedAt
  if (await waitFor('B and C to cover everything after A left', () => covers([b, c], left), 15000) !== null) {
    const ms = Math.max(b.latest().t, c.latest().t) - left
    console.log(`timing: kafkajs rebalance after disconnect (took ${a.stopMs} ms): B and C rejoined ${ms} ms after it returned`)
    check(ms < 3000, `B and C rejoined ${ms} ms after A's disconnect: LeaveGroup did not trigger the rebalance`)
  }
  await b.stop()
  await c.stop()
  g = await describe(admin)
  // Kafka keeps the protocol type of a group whose members all left.
  check(g.state === 'Empty' && g.protocolType === 'consumer' && g.protocol === '' && g.members.length === 0,
    `after all left: ${g.state}/${g.protocolType}/${g.protocol} with ${g.members.length} members, want Empty/consumer//0`)
  const seen = consumedByOffset([a, b, c])
  for (let p = 0; p < PARTITIONS; p++) {
    check(same(sorted(seen[p]), [...Array(end[p]).keys()]), `[${p}]: consumed offsets ${sorted(seen[p])}, want 0..${end[p] - 1} once each`)
  }
  console.log(`checked: ${end.reduce((x, y) => x + y)} messages consumed exactly once (A=${a.records.length} B=${b.records.length} C=${c.records.length}); group Empty`)

  // resetOffsets to earliest on the empty group (the committed offsets were
  // the end offsets), then D re-reads everything.
  await admin.resetOffsets({ groupId: GROUP, topic: TOPIC, earliest: true })
  got = await committed(admin)
  const minus2 = {}
  for (let p = 0; p < PARTITIONS; p++) minus2[p] = ['-2', null]
  check(same(got, minus2), `after resetOffsets earliest: fetchOffsets ${JSON.stringify(got)}, want -2 everywhere ` +
    '(kafkajs commits offset -2; Kafka stores it and OffsetFetch returns it)')
  const d = new Member('d')
  await d.start()
  const total = end.reduce((x, y) => x + y)
  if (await waitFor('D to re-read everything after resetOffsets earliest', () => d.records.length >= total, 10000) !== null) {
    await waitCommitted(admin, end, 'after resetOffsets')
  }
  await d.stop()
  for (let p = 0; p < PARTITIONS; p++) {
    const offs = d.records.filter(r => r[0] === p).map(r => r[1])
    check(same(offs, [...Array(end[p]).keys()]), `D after resetOffsets read [${p}] ${offs}, want 0..${end[p] - 1}`)
  }
  console.log('checked: resetOffsets(earliest) -> -2 committed, consumption restarts at 0')

  // setOffsets to 3 + partition, then E starts exactly there.
  const setTo = ALL.map(p => 3 + p)
  await admin.setOffsets({ groupId: GROUP, topic: TOPIC, partitions: ALL.map(p => ({ partition: p, offset: String(setTo[p]) })) })
  got = await committed(admin)
  check(same(got, wantOffsets(setTo)), `after setOffsets: fetchOffsets ${JSON.stringify(got)}, want ${JSON.stringify(wantOffsets(setTo))}`)
  const e = new Member('e')
  await e.start()
  const wantE = ALL.reduce((s, p) => s + end[p] - setTo[p], 0)
  await waitFor('E to read from the set offsets', () => e.records.length >= wantE)
  await waitCommitted(admin, end, 'after setOffsets')
  await e.stop()
  for (let p = 0; p < PARTITIONS; p++) {
    const offs = e.records.filter(r => r[0] === p).map(r => r[1])
    const want = [...Array(end[p] - setTo[p]).keys()].map(i => i + setTo[p])
    check(same(offs, want), `E after setOffsets read [${p}] ${offs}, want ${setTo[p]}..${end[p] - 1}`)
  }
  console.log('checked: setOffsets, consumption resumes at the set offsets')

  const del = await admin.deleteGroups([GROUP])
  check(same(del.map(r => [r.groupId, r.errorCode]), [[GROUP, 0]]), `deleteGroups: ${JSON.stringify(del)}`)
  g = await describe(admin)
  check(g.state === 'Dead' && g.members.length === 0, `after deleteGroups: ${g.state}, ${g.members.length} members`)
  got = await committed(admin)
  const none = {}
  for (let p = 0; p < PARTITIONS; p++) none[p] = ['-1', null]
  check(same(got, none), `after deleteGroups: fetchOffsets ${JSON.stringify(got)}, want -1 everywhere`)
  const after = await admin.listGroups()
  check(!after.groups.some(x => x.groupId === GROUP), `listGroups still lists ${GROUP}: ${JSON.stringify(after.groups)}`)
  await expectDeleteError(admin, 69, 'deleted group')
  console.log('checked: deleteGroups; then Dead, no offsets, not listed; deleting again -> GROUP_ID_NOT_FOUND')
}

async function main () {
  if (!BOOTSTRAP) throw new Error('SLUICE_BOOTSTRAP unset: run through tests/compat/run.sh')
  const kafka = kafkaFor('jsg-admin')
  const admin = kafka.admin()
  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await admin.connect()
  await producer.connect()
  const started = Date.now()
  try {
    await run(admin, producer)
  } catch (e) {
    check(false, `${e.name}: ${e.message}`)
  } finally {
    for (const m of allMembers) {
      check(m.crashes.length === 0, `member ${m.name} crashed: ${m.crashes}`)
      if (m.stoppedAt === undefined) await m.consumer.disconnect().catch(() => {})
    }
    await producer.disconnect()
    await admin.disconnect()
  }
  console.log(`total ${((Date.now() - started) / 1000).toFixed(1)} s`)
  if (failures.length) {
    console.error(`test_groups_kafkajs: ${failures.length} check(s) failed`)
    process.exit(1)
  }
  console.log('test_groups_kafkajs: all checks passed')
}

main().catch(e => {
  console.error(`FAIL: ${e.stack || e}`)
  process.exit(1)
})
