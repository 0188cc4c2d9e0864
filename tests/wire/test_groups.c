/*
 * Wire tests of the group coordinator: the JoinGroup/SyncGroup protocol,
 * the error codes Kafka returns where it returns them, static membership,
 * session and rebalance timeouts, committed offsets and their durability
 * across restarts and compaction, DeleteGroups, and a join storm. Requests
 * are encoded with the project's codecs; every answer is decoded and
 * checked field by field.
 */
#include "wire.h"

static _Thread_local sl_arena arena; /* decoded responses; one per thread (the join storm has many) */

#define ID_MAX 256

typedef struct joined {
    int16_t err;
    int32_t generation;
    char member[ID_MAX], leader[ID_MAX], protocol[64];
    int nmembers;
} joined;

static sl_kstr ks(const char *s) { return s ? (sl_kstr){s, (int32_t)strlen(s)} : SL_KSTR_NULL; }

static void copy_kstr(char *dst, sl_kstr s)
{
    size_t n = s.len > 0 ? SL_MIN((size_t)s.len, ID_MAX - 1) : 0;
    memcpy(dst, s.ptr ? s.ptr : "", n);
    dst[n] = 0;
}

static void join_send(int fd, int16_t v, int32_t corr, const char *group, const char *member, const char *instance,
                      int32_t session_ms, const char *meta)
{
    sl_JoinGroupRequest m;
    sl_JoinGroupRequest_init(&m);
    sl_JoinGroupRequest_JoinGroupRequestProtocol p = {ks("range"), {(const uint8_t *)meta, (int32_t)strlen(meta)}};
    m.GroupId = ks(group);
    m.SessionTimeoutMs = session_ms;
    m.RebalanceTimeoutMs = session_ms;
    m.MemberId = ks(member ? member : "");
    m.GroupInstanceId = ks(instance);
    m.ProtocolType = ks("consumer");
    m.Protocols.items = &p;
    m.Protocols.count = 1;
    sl_buf req;
    wrequest(&req, 11, v, corr, (wenc_fn)sl_JoinGroupRequest_encode, &m);
    wsend(fd, req.data, req.len);
    sl_buf_deinit(&req);
}

/* Receives a response frame with the given correlation id; returns its body reader. */
static uint8_t *recv_resp(int fd, int16_t key, int16_t v, int32_t corr, sl_kreader *body, int timeout_ms)
{
    size_t len;
    uint8_t *resp = wrecv_frame(fd, &len, timeout_ms);
    SL_CHECK(resp != NULL);
    SL_CHECK_INT((int32_t)sl_be32(resp), corr);
    size_t hlen = (size_t)(4 + sl_kafka_response_header_version(key, v));
    sl_kreader_init(body, resp + hlen, len - hlen);
    return resp;
}

static joined join_recv(int fd, int16_t v, int32_t corr, int timeout_ms)
{
    sl_kreader r;
    uint8_t *resp = recv_resp(fd, 11, v, corr, &r, timeout_ms);
    sl_JoinGroupResponse jr;
    SL_CHECK_OK(sl_JoinGroupResponse_decode(&jr, &r, v, &arena));
    joined j = {.err = jr.ErrorCode, .generation = jr.GenerationId, .nmembers = jr.Members.count};
    copy_kstr(j.member, jr.MemberId);
    copy_kstr(j.leader, jr.Leader);
    copy_kstr(j.protocol, jr.ProtocolName);
    sl_free(resp);
    return j;
}

/* A v5 join the way librdkafka does it: MEMBER_ID_REQUIRED, then again with the id (unless static). */
static joined join(int fd, const char *group, const char *instance, int32_t session_ms)
{
    join_send(fd, 5, 1, group, "", instance, session_ms, "sub");
    joined j = join_recv(fd, 5, 1, 15000);
    if (j.err != SL_KERR_MEMBER_ID_REQUIRED) return j;
    SL_CHECK(j.member[0] != 0);
    char id[ID_MAX];
    snprintf(id, sizeof id, "%s", j.member);
    join_send(fd, 5, 2, group, id, instance, session_ms, "sub");
    return join_recv(fd, 5, 2, 15000);
}

static void sync_send(int fd, int32_t corr, const char *group, int32_t gen, const char *member, const char *instance,
                      const char **members, const char **assignments, int n)
{
    sl_SyncGroupRequest m;
    sl_SyncGroupRequest_init(&m);
    sl_SyncGroupRequest_SyncGroupRequestAssignment as[16];
    SL_CHECK(n <= 16);
    for (int i = 0; i < n; i++) {
        as[i].MemberId = ks(members[i]);
        as[i].Assignment = (sl_kbytes){(const uint8_t *)assignments[i], (int32_t)strlen(assignments[i])};
    }
    m.GroupId = ks(group);
    m.GenerationId = gen;
    m.MemberId = ks(member);
    m.GroupInstanceId = ks(instance);
    m.Assignments.items = as;
    m.Assignments.count = n;
    sl_buf req;
    wrequest(&req, 14, 3, corr, (wenc_fn)sl_SyncGroupRequest_encode, &m);
    wsend(fd, req.data, req.len);
    sl_buf_deinit(&req);
}

static int16_t sync_recv(int fd, int32_t corr, char *assignment, int timeout_ms)
{
    sl_kreader r;
    uint8_t *resp = recv_resp(fd, 14, 3, corr, &r, timeout_ms);
    sl_SyncGroupResponse sr;
    SL_CHECK_OK(sl_SyncGroupResponse_decode(&sr, &r, 3, &arena));
    if (assignment) {
        SL_CHECK(sr.Assignment.len >= 0 && sr.Assignment.len < ID_MAX);
        memcpy(assignment, sr.Assignment.ptr ? (const char *)sr.Assignment.ptr : "", (size_t)sr.Assignment.len);
        assignment[sr.Assignment.len] = 0;
    }
    sl_free(resp);
    return sr.ErrorCode;
}

/* Joins as the group's only member and syncs `assignment` to itself: the group is then Stable. */
static joined join_alone(int fd, const char *group, const char *instance, int32_t session_ms, const char *assignment)
{
    joined a = join(fd, group, instance, session_ms);
    SL_CHECK_INT(a.err, 0);
    const char *members[] = {a.member}, *assign[] = {assignment};
    sync_send(fd, 5, group, a.generation, a.member, instance, members, assign, 1);
    SL_CHECK_INT(sync_recv(fd, 5, NULL, 5000), 0);
    return a;
}

static int16_t heartbeat(int fd, const char *group, int32_t gen, const char *member, const char *instance)
{
    sl_HeartbeatRequest m;
    sl_HeartbeatRequest_init(&m);
    m.GroupId = ks(group);
    m.GenerationId = gen;
    m.MemberId = ks(member);
    m.GroupInstanceId = ks(instance);
    sl_kreader r;
    uint8_t *resp = wcall(fd, 12, 3, 30, (wenc_fn)sl_HeartbeatRequest_encode, &m, &r);
    sl_HeartbeatResponse hr;
    SL_CHECK_OK(sl_HeartbeatResponse_decode(&hr, &r, 3, &arena));
    sl_free(resp);
    return hr.ErrorCode;
}

static int16_t leave(int fd, const char *group, const char *member)
{
    sl_LeaveGroupRequest m;
    sl_LeaveGroupRequest_init(&m);
    m.GroupId = ks(group);
    m.MemberId = ks(member);
    sl_kreader r;
    uint8_t *resp = wcall(fd, 13, 1, 31, (wenc_fn)sl_LeaveGroupRequest_encode, &m, &r);
    sl_LeaveGroupResponse lr;
    SL_CHECK_OK(sl_LeaveGroupResponse_decode(&lr, &r, 1, &arena));
    sl_free(resp);
    return lr.ErrorCode;
}

static int16_t commit(int fd, const char *group, int32_t gen, const char *member, const char *topic, int32_t part,
                      int64_t offset, const char *meta)
{
    sl_OffsetCommitRequest m;
    sl_OffsetCommitRequest_init(&m);
    sl_OffsetCommitRequest_OffsetCommitRequestPartition p = {.PartitionIndex = part, .CommittedOffset = offset,
                                                             .CommittedLeaderEpoch = -1, .CommitTimestamp = -1,
                                                             .CommittedMetadata = ks(meta)};
    sl_OffsetCommitRequest_OffsetCommitRequestTopic t = {ks(topic), {&p, 1}};
    m.GroupId = ks(group);
    m.GenerationIdOrMemberEpoch = gen;
    m.MemberId = ks(member);
    m.RetentionTimeMs = -1;
    m.Topics.items = &t;
    m.Topics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 8, 7, 32, (wenc_fn)sl_OffsetCommitRequest_encode, &m, &r);
    sl_OffsetCommitResponse cr;
    SL_CHECK_OK(sl_OffsetCommitResponse_decode(&cr, &r, 7, &arena));
    SL_CHECK_INT(cr.Topics.count, 1);
    SL_CHECK_INT(cr.Topics.items[0].Partitions.count, 1);
    int16_t err = cr.Topics.items[0].Partitions.items[0].ErrorCode;
    sl_free(resp);
    return err;
}

static int64_t committed(int fd, const char *group, const char *topic, int32_t part, char *meta)
{
    sl_OffsetFetchRequest m;
    sl_OffsetFetchRequest_init(&m);
    sl_OffsetFetchRequest_OffsetFetchRequestTopic t = {ks(topic), {&part, 1}};
    m.GroupId = ks(group);
    m.Topics.items = &t;
    m.Topics.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 9, 7, 33, (wenc_fn)sl_OffsetFetchRequest_encode, &m, &r);
    sl_OffsetFetchResponse fr;
    SL_CHECK_OK(sl_OffsetFetchResponse_decode(&fr, &r, 7, &arena));
    SL_CHECK_INT(fr.ErrorCode, 0);
    SL_CHECK_INT(fr.Topics.count, 1);
    SL_CHECK_INT(fr.Topics.items[0].Partitions.count, 1);
    sl_OffsetFetchResponse_OffsetFetchResponsePartition *p = &fr.Topics.items[0].Partitions.items[0];
    SL_CHECK_INT(p->ErrorCode, 0);
    if (meta) copy_kstr(meta, p->Metadata);
    int64_t off = p->CommittedOffset;
    sl_free(resp);
    return off;
}

/* DescribeGroups of one group: its state into `state`, returns its member count. */
static int describe(int fd, const char *group, char *state)
{
    sl_DescribeGroupsRequest m;
    sl_DescribeGroupsRequest_init(&m);
    sl_kstr g = ks(group);
    m.Groups.items = &g;
    m.Groups.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 15, 2, 34, (wenc_fn)sl_DescribeGroupsRequest_encode, &m, &r);
    sl_DescribeGroupsResponse dr;
    SL_CHECK_OK(sl_DescribeGroupsResponse_decode(&dr, &r, 2, &arena));
    SL_CHECK_INT(dr.Groups.count, 1);
    SL_CHECK_INT(dr.Groups.items[0].ErrorCode, 0);
    copy_kstr(state, dr.Groups.items[0].GroupState);
    int n = dr.Groups.items[0].Members.count;
    sl_free(resp);
    return n;
}

static int16_t delete_group(int fd, const char *group)
{
    sl_DeleteGroupsRequest m;
    sl_DeleteGroupsRequest_init(&m);
    sl_kstr g = ks(group);
    m.GroupsNames.items = &g;
    m.GroupsNames.count = 1;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 42, 1, 35, (wenc_fn)sl_DeleteGroupsRequest_encode, &m, &r);
    sl_DeleteGroupsResponse dr;
    SL_CHECK_OK(sl_DeleteGroupsResponse_decode(&dr, &r, 1, &arena));
    SL_CHECK_INT(dr.Results.count, 1);
    int16_t err = dr.Results.items[0].ErrorCode;
    sl_free(resp);
    return err;
}

static bool listed(int fd, const char *group)
{
    sl_ListGroupsRequest m;
    sl_ListGroupsRequest_init(&m);
    sl_kreader r;
    uint8_t *resp = wcall(fd, 16, 2, 36, (wenc_fn)sl_ListGroupsRequest_encode, &m, &r);
    sl_ListGroupsResponse lr;
    SL_CHECK_OK(sl_ListGroupsResponse_decode(&lr, &r, 2, &arena));
    SL_CHECK_INT(lr.ErrorCode, 0);
    bool found = false;
    for (int i = 0; i < lr.Groups.count; i++) found |= lr.Groups.items[i].GroupId.len == (int32_t)strlen(group) &&
                                                      memcmp(lr.Groups.items[i].GroupId.ptr, group, strlen(group)) == 0;
    sl_free(resp);
    return found;
}

static int start(wbroker *w, const char *subdir)
{
    sl_arena_init(&arena, 64 << 20);
    wbroker_config(w, subdir);
    w->cfg.group_initial_rebalance_delay_ms = 0;
    w->cfg.group_min_session_timeout_ms = 100;
    wbroker_start(w);
    int fd = wconnect(w->port);
    wtopic(fd, "t");
    return fd;
}

static void finish(wbroker *w, int fd)
{
    close(fd);
    wbroker_stop(w);
    sl_arena_deinit(&arena);
}

SL_TEST(member_id_required_then_one_member_generation)
{
    wbroker w;
    int fd = start(&w, NULL);
    join_send(fd, 4, 1, "g", "", NULL, 10000, "sub");
    joined j = join_recv(fd, 4, 1, 5000);
    SL_CHECK_INT(j.err, SL_KERR_MEMBER_ID_REQUIRED);
    SL_CHECK(strncmp(j.member, "test-", 5) == 0); /* Kafka's shape: client id, '-', uuid */
    SL_CHECK_INT(j.generation, -1);
    char id[ID_MAX];
    snprintf(id, sizeof id, "%s", j.member);
    join_send(fd, 4, 2, "g", id, NULL, 10000, "sub");
    j = join_recv(fd, 4, 2, 5000);
    SL_CHECK_INT(j.err, 0);
    SL_CHECK_INT(j.generation, 1);
    SL_CHECK_STR(j.member, id);
    SL_CHECK_STR(j.leader, id);
    SL_CHECK_STR(j.protocol, "range");
    SL_CHECK_INT(j.nmembers, 1);
    char state[64];
    SL_CHECK_INT(describe(fd, "g", state), 1);
    SL_CHECK_STR(state, "CompletingRebalance");
    /* v3 and below: no MEMBER_ID_REQUIRED step */
    int fd2 = wconnect(w.port);
    join_send(fd2, 3, 3, "g3", "", NULL, 10000, "sub");
    j = join_recv(fd2, 3, 3, 5000);
    SL_CHECK_INT(j.err, 0);
    SL_CHECK_INT(j.generation, 1);
    close(fd2);
    finish(&w, fd);
}

SL_TEST(leader_sync_hands_out_opaque_assignments)
{
    wbroker w;
    int fd = start(&w, NULL);
    int fd2 = wconnect(w.port);
    joined a = join(fd, "g", NULL, 10000);
    SL_CHECK_INT(a.generation, 1);
    /* b joins: a learns of the rebalance by heartbeat and rejoins; both get generation 2 */
    join_send(fd2, 5, 1, "g", "", NULL, 10000, "sub-b");
    joined bj = join_recv(fd2, 5, 1, 5000);
    SL_CHECK_INT(bj.err, SL_KERR_MEMBER_ID_REQUIRED);
    char b_id[ID_MAX];
    snprintf(b_id, sizeof b_id, "%s", bj.member);
    join_send(fd2, 5, 2, "g", b_id, NULL, 10000, "sub-b");
    SL_CHECK_INT(heartbeat(fd, "g", 1, a.member, NULL), SL_KERR_REBALANCE_IN_PROGRESS);
    join_send(fd, 5, 3, "g", a.member, NULL, 10000, "sub");
    joined a2 = join_recv(fd, 5, 3, 5000), b2 = join_recv(fd2, 5, 2, 5000);
    SL_CHECK_INT(a2.err, 0);
    SL_CHECK_INT(b2.err, 0);
    SL_CHECK_INT(a2.generation, 2);
    SL_CHECK_INT(b2.generation, 2);
    SL_CHECK_STR(a2.leader, a.member);
    SL_CHECK_INT(a2.nmembers, 2); /* only the leader gets the members */
    SL_CHECK_INT(b2.nmembers, 0);
    /* the follower's SyncGroup waits for the leader's */
    sync_send(fd2, 4, "g", 2, b_id, NULL, NULL, NULL, 0);
    SL_CHECK(!wclosed(fd2, 100));
    const char *members[] = {a.member, b_id}, *assign[] = {"\x01\x02 for a", "\0for b"};
    sync_send(fd, 5, "g", 2, a.member, NULL, members, assign, 2);
    char got[ID_MAX];
    SL_CHECK_INT(sync_recv(fd, 5, got, 5000), 0);
    SL_CHECK_STR(got, "\x01\x02 for a");
    SL_CHECK_INT(sync_recv(fd2, 4, got, 5000), 0);
    SL_CHECK_INT(got[0], 0); /* bytes passed through as they came, an empty-looking one included */
    char state[64];
    SL_CHECK_INT(describe(fd, "g", state), 2);
    SL_CHECK_STR(state, "Stable");
    SL_CHECK_INT(heartbeat(fd, "g", 2, a.member, NULL), 0);
    SL_CHECK_INT(heartbeat(fd, "g", 1, a.member, NULL), SL_KERR_ILLEGAL_GENERATION);
    SL_CHECK_INT(heartbeat(fd, "g", 2, "nobody", NULL), SL_KERR_UNKNOWN_MEMBER_ID);
    SL_CHECK_INT(heartbeat(fd, "nogroup", 2, a.member, NULL), SL_KERR_UNKNOWN_MEMBER_ID);
    /* a graceful leave rebalances at once: b's heartbeat says so */
    SL_CHECK_INT(leave(fd, "g", a.member), 0);
    SL_CHECK_INT(heartbeat(fd2, "g", 2, b_id, NULL), SL_KERR_REBALANCE_IN_PROGRESS);
    SL_CHECK_INT(leave(fd, "g", a.member), SL_KERR_UNKNOWN_MEMBER_ID);
    close(fd2);
    finish(&w, fd);
}

SL_TEST(commits_are_checked_against_member_and_generation)
{
    wbroker w;
    int fd = start(&w, NULL);
    /* a group that only stores offsets: generation -1, no member */
    SL_CHECK_INT(commit(fd, "simple", -1, "", "t", 0, 42, "meta-42"), 0);
    char meta[ID_MAX];
    SL_CHECK_INT(committed(fd, "simple", "t", 0, meta), 42);
    SL_CHECK_STR(meta, "meta-42");
    SL_CHECK_INT(committed(fd, "simple", "t", 9, NULL), -1); /* nothing committed: -1 */
    SL_CHECK_INT(commit(fd, "simple2", -1, "", "t", 0, -2, "to-earliest"), 0); /* kafkajs resetOffsets */
    SL_CHECK_INT(committed(fd, "simple2", "t", 0, meta), -2);                 /* any value is stored */
    SL_CHECK_STR(meta, "to-earliest");
    SL_CHECK_INT(committed(fd, "nogroup", "t", 0, meta), -1);
    SL_CHECK_STR(meta, "");
    SL_CHECK_INT(commit(fd, "simple", -1, "", "no-such-topic", 0, 1, ""), SL_KERR_UNKNOWN_TOPIC_OR_PARTITION);
    char big[5000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = 0;
    SL_CHECK_INT(commit(fd, "simple", -1, "", "t", 0, 43, big), SL_KERR_OFFSET_METADATA_TOO_LARGE);
    SL_CHECK_INT(commit(fd, "never-seen", 3, "x", "t", 0, 1, ""), SL_KERR_ILLEGAL_GENERATION);
    SL_CHECK_INT(commit(fd, "", -1, "", "t", 0, 1, ""), SL_KERR_INVALID_GROUP_ID);
    {   /* ids are C strings inside: one with a NUL is refused (found by fuzz_broker) */
        sl_OffsetCommitRequest m;
        sl_OffsetCommitRequest_init(&m);
        sl_OffsetCommitRequest_OffsetCommitRequestPartition p = {.CommittedOffset = 1, .CommittedMetadata = ks("")};
        sl_OffsetCommitRequest_OffsetCommitRequestTopic t = {ks("t"), {&p, 1}};
        m.GroupId = (sl_kstr){"pay\0ment", 8};
        m.GenerationIdOrMemberEpoch = -1;
        m.MemberId = ks("");
        m.Topics.items = &t;
        m.Topics.count = 1;
        sl_kreader r;
        uint8_t *resp = wcall(fd, 8, 2, 40, (wenc_fn)sl_OffsetCommitRequest_encode, &m, &r);
        sl_OffsetCommitResponse cr;
        SL_CHECK_OK(sl_OffsetCommitResponse_decode(&cr, &r, 2, &arena));
        SL_CHECK_INT(cr.Topics.items[0].Partitions.items[0].ErrorCode, SL_KERR_INVALID_GROUP_ID);
        sl_free(resp);
        SL_CHECK(!listed(fd, "pay"));
    }
    joined a = join_alone(fd, "g", NULL, 10000, "all");
    SL_CHECK_INT(commit(fd, "g", a.generation, a.member, "t", 0, 10, "m10"), 0);
    SL_CHECK_INT(commit(fd, "g", a.generation, "intruder", "t", 0, 99, ""), SL_KERR_UNKNOWN_MEMBER_ID);
    SL_CHECK_INT(commit(fd, "g", a.generation - 1, a.member, "t", 0, 98, ""), SL_KERR_ILLEGAL_GENERATION);
    SL_CHECK_INT(commit(fd, "g", -1, "", "t", 0, 97, ""), SL_KERR_UNKNOWN_MEMBER_ID); /* not while it has members */
    SL_CHECK_INT(committed(fd, "g", "t", 0, meta), 10); /* the rejected commits changed nothing */
    SL_CHECK_STR(meta, "m10");
    /* during a rebalance the current generation may still commit (what it processed before revoking) */
    int fd2 = wconnect(w.port);
    join_send(fd2, 3, 1, "g", "", NULL, 10000, "sub");
    SL_CHECK(!wclosed(fd2, 50));
    SL_CHECK_INT(commit(fd, "g", a.generation, a.member, "t", 0, 11, ""), 0);
    join_send(fd, 5, 3, "g", a.member, NULL, 10000, "sub");
    joined a2 = join_recv(fd, 5, 3, 5000);
    SL_CHECK_INT(a2.err, 0);
    joined b = join_recv(fd2, 3, 1, 5000);
    SL_CHECK_INT(b.err, 0);
    /* CompletingRebalance: REBALANCE_IN_PROGRESS, as Kafka answers */
    SL_CHECK_INT(commit(fd, "g", a2.generation, a.member, "t", 0, 12, ""), SL_KERR_REBALANCE_IN_PROGRESS);
    SL_CHECK_INT(committed(fd, "g", "t", 0, NULL), 11);
    close(fd2);
    finish(&w, fd);
}

SL_TEST(join_rejects_bad_input_with_kafkas_codes)
{
    wbroker w;
    int fd = start(&w, NULL);
    join_send(fd, 5, 1, "", "", NULL, 10000, "sub");
    SL_CHECK_INT(join_recv(fd, 5, 1, 5000).err, SL_KERR_INVALID_GROUP_ID);
    join_send(fd, 5, 2, "g", "", NULL, 50, "sub"); /* below group.min.session.timeout.ms (100 here) */
    SL_CHECK_INT(join_recv(fd, 5, 2, 5000).err, SL_KERR_INVALID_SESSION_TIMEOUT);
    join_send(fd, 5, 3, "g", "made-up-id", NULL, 10000, "sub");
    SL_CHECK_INT(join_recv(fd, 5, 3, 5000).err, SL_KERR_UNKNOWN_MEMBER_ID);
    joined a = join(fd, "g", NULL, 10000);
    SL_CHECK_INT(a.err, 0);
    /* a member of another protocol type cannot join */
    sl_JoinGroupRequest m;
    sl_JoinGroupRequest_init(&m);
    sl_JoinGroupRequest_JoinGroupRequestProtocol p = {ks("range"), {(const uint8_t *)"x", 1}};
    m.GroupId = ks("g");
    m.SessionTimeoutMs = m.RebalanceTimeoutMs = 10000;
    m.MemberId = ks("");
    m.ProtocolType = ks("connect");
    m.Protocols.items = &p;
    m.Protocols.count = 1;
    int fd2 = wconnect(w.port);
    sl_kreader r;
    uint8_t *resp = wcall(fd2, 11, 3, 9, (wenc_fn)sl_JoinGroupRequest_encode, &m, &r);
    sl_JoinGroupResponse jr;
    SL_CHECK_OK(sl_JoinGroupResponse_decode(&jr, &r, 3, &arena));
    SL_CHECK_INT(jr.ErrorCode, SL_KERR_INCONSISTENT_GROUP_PROTOCOL);
    sl_free(resp);
    /* the group is untouched: its member's generation is still good */
    SL_CHECK_INT(heartbeat(fd, "g", a.generation, a.member, NULL), 0);
    close(fd2);
    finish(&w, fd);
}

SL_TEST(static_member_restart_keeps_assignment_without_rebalance)
{
    wbroker w;
    int fd = start(&w, NULL);
    joined a = join_alone(fd, "g", "instance-a", 10000, "a's partitions"); /* static: no MEMBER_ID_REQUIRED */
    /* the process restarts: a new connection, no member id, the same instance id */
    int fd2 = wconnect(w.port);
    joined a2 = join(fd2, "g", "instance-a", 10000);
    SL_CHECK_INT(a2.err, 0);
    SL_CHECK(strcmp(a2.member, a.member) != 0);
    SL_CHECK_INT(a2.generation, a.generation); /* no rebalance */
    SL_CHECK_STR(a2.leader, a.member);         /* the old leader id: it must not reassign */
    char state[64], got[ID_MAX];
    describe(fd2, "g", state);
    SL_CHECK_STR(state, "Stable");
    sync_send(fd2, 6, "g", a2.generation, a2.member, "instance-a", NULL, NULL, 0);
    SL_CHECK_INT(sync_recv(fd2, 6, got, 5000), 0);
    SL_CHECK_STR(got, "a's partitions");
    /* the old member id is fenced everywhere */
    SL_CHECK_INT(heartbeat(fd, "g", a.generation, a.member, "instance-a"), SL_KERR_FENCED_INSTANCE_ID);
    SL_CHECK_INT(commit(fd, "g", a.generation, a.member, "t", 0, 5, ""), SL_KERR_UNKNOWN_MEMBER_ID);
    SL_CHECK_INT(heartbeat(fd2, "g", a2.generation, a2.member, "instance-a"), 0);
    close(fd2);
    finish(&w, fd);
}

SL_TEST(session_timeout_expires_a_silent_member)
{
    wbroker w;
    int fd = start(&w, NULL);
    joined a = join_alone(fd, "g", NULL, 300, "x");
    char state[64];
    for (int i = 0; i < 4; i++) { /* heartbeats keep it */
        usleep(150 * 1000);
        SL_CHECK_INT(heartbeat(fd, "g", a.generation, a.member, NULL), 0);
    }
    usleep(600 * 1000);
    SL_CHECK_INT(describe(fd, "g", state), 0);
    SL_CHECK_STR(state, "Empty");
    SL_CHECK_INT(heartbeat(fd, "g", a.generation, a.member, NULL), SL_KERR_UNKNOWN_MEMBER_ID);
    finish(&w, fd);
}

SL_TEST(rebalance_timeout_removes_members_that_do_not_rejoin)
{
    wbroker w;
    int fd = start(&w, NULL);
    joined a = join_alone(fd, "g", NULL, 400, "x");
    /* b joins and waits; a never rejoins: after the rebalance timeout b is alone in generation 2 */
    int fd2 = wconnect(w.port);
    join_send(fd2, 3, 1, "g", "", NULL, 10000, "sub");
    joined b = join_recv(fd2, 3, 1, 5000);
    SL_CHECK_INT(b.err, 0);
    SL_CHECK_INT(b.generation, a.generation + 1);
    SL_CHECK_STR(b.leader, b.member);
    SL_CHECK_INT(b.nmembers, 1);
    close(fd2);
    finish(&w, fd);
}

SL_TEST(delete_groups_only_when_empty)
{
    wbroker w;
    int fd = start(&w, NULL);
    SL_CHECK_INT(delete_group(fd, "nope"), SL_KERR_GROUP_ID_NOT_FOUND);
    SL_CHECK_INT(delete_group(fd, ""), SL_KERR_INVALID_GROUP_ID);
    joined a = join(fd, "g", NULL, 10000);
    SL_CHECK_INT(commit(fd, "g", -1, "", "t", 0, 1, ""), SL_KERR_REBALANCE_IN_PROGRESS); /* CompletingRebalance */
    const char *members[] = {a.member}, *assign[] = {"x"};
    sync_send(fd, 5, "g", a.generation, a.member, NULL, members, assign, 1);
    SL_CHECK_INT(sync_recv(fd, 5, NULL, 5000), 0);
    SL_CHECK_INT(commit(fd, "g", -1, "", "t", 0, 1, ""), SL_KERR_UNKNOWN_MEMBER_ID);
    SL_CHECK_INT(delete_group(fd, "g"), SL_KERR_NON_EMPTY_GROUP);
    SL_CHECK_INT(leave(fd, "g", a.member), 0);
    SL_CHECK_INT(commit(fd, "g", -1, "", "t", 0, 7, ""), 0);
    SL_CHECK(listed(fd, "g"));
    SL_CHECK_INT(delete_group(fd, "g"), 0);
    SL_CHECK(!listed(fd, "g"));
    SL_CHECK_INT(committed(fd, "g", "t", 0, NULL), -1);
    char state[64];
    SL_CHECK_INT(describe(fd, "g", state), 0);
    SL_CHECK_STR(state, "Dead");
    /* deleted for good: not back after a restart */
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK(!listed(fd, "g"));
    SL_CHECK_INT(committed(fd, "g", "t", 0, NULL), -1);
    finish(&w, fd);
}

SL_TEST(offsets_and_members_survive_a_restart)
{
    wbroker w;
    int fd = start(&w, NULL);
    joined a = join_alone(fd, "g", NULL, 30000, "mine");
    for (int i = 1; i <= 50; i++) SL_CHECK_INT(commit(fd, "g", a.generation, a.member, "t", 0, i, "m"), 0);
    SL_CHECK_INT(commit(fd, "other", -1, "", "t", 0, 5, "o"), 0);
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    char meta[ID_MAX], state[64];
    SL_CHECK_INT(committed(fd, "g", "t", 0, meta), 50);
    SL_CHECK_STR(meta, "m");
    SL_CHECK_INT(committed(fd, "other", "t", 0, meta), 5);
    /* the member carries on where it was: no rejoin needed */
    SL_CHECK_INT(describe(fd, "g", state), 1);
    SL_CHECK_STR(state, "Stable");
    SL_CHECK_INT(heartbeat(fd, "g", a.generation, a.member, NULL), 0);
    sync_send(fd, 8, "g", a.generation, a.member, NULL, NULL, NULL, 0);
    char got[ID_MAX];
    SL_CHECK_INT(sync_recv(fd, 8, got, 5000), 0);
    SL_CHECK_STR(got, "mine");
    finish(&w, fd);
}

SL_TEST(compaction_keeps_the_latest_offsets_and_drops_old_segments)
{
    wbroker w;
    sl_arena_init(&arena, 64 << 20);
    wbroker_config(&w, NULL);
    w.cfg.offsets_segment_bytes = 16 << 10;
    w.cfg.offsets_compact_bytes = 32 << 10;
    wbroker_start(&w);
    int fd = wconnect(w.port);
    wtopic(fd, "t");
    char group[32];
    for (int round = 0; round < 40; round++) {
        for (int g = 0; g < 10; g++) {
            snprintf(group, sizeof group, "g%d", g);
            SL_CHECK_INT(commit(fd, group, -1, "", "t", 0, round * 100 + g, "meta"), 0);
        }
    }
    /* ~44 KB appended, over the 32 KiB threshold: the next maintenance tick (each second) writes a snapshot,
       a later one deletes the segments before it */
    int64_t start = 0;
    for (int i = 0; i < 40 && start == 0; i++) {
        usleep(100 * 1000);
        start = wlist_offset(fd, "__consumer_offsets", 0, -2, &arena);
    }
    SL_CHECK(start > 0);
    close(fd);
    wbroker_stop(&w);
    wbroker_start(&w);
    fd = wconnect(w.port);
    for (int g = 0; g < 10; g++) {
        snprintf(group, sizeof group, "g%d", g);
        SL_CHECK_INT(committed(fd, group, "t", 0, NULL), 39 * 100 + g);
    }
    finish(&w, fd);
}

SL_TEST(internal_topic_refuses_produce_and_delete)
{
    wbroker w;
    int fd = start(&w, NULL);
    sl_DeleteTopicsRequest m;
    sl_DeleteTopicsRequest_init(&m);
    sl_kstr name = ks("__consumer_offsets");
    m.TopicNames.items = &name;
    m.TopicNames.count = 1;
    m.TimeoutMs = 1000;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 20, 3, 39, (wenc_fn)sl_DeleteTopicsRequest_encode, &m, &r);
    sl_DeleteTopicsResponse dr;
    SL_CHECK_OK(sl_DeleteTopicsResponse_decode(&dr, &r, 3, &arena));
    SL_CHECK_INT(dr.Responses.items[0].ErrorCode, SL_KERR_INVALID_TOPIC_EXCEPTION);
    sl_free(resp);
    finish(&w, fd);
}

/* ---- join storm: members are threads that behave like a consumer's group loop ---- */

typedef struct storm_member {
    int port, index;
    int32_t session_ms;
    volatile bool stop;     /* leave gracefully */
    volatile int32_t synced; /* generation of its last successful SyncGroup */
    pthread_t thread;
} storm_member;

/* One pass of the loop: join (or rejoin), sync, then heartbeat until told to rejoin. */
static void storm_round(storm_member *m, int fd, char *id)
{
    join_send(fd, 3, 1, "storm", id, NULL, m->session_ms, "sub");
    joined j = join_recv(fd, 3, 1, 20000);
    if (j.err == SL_KERR_UNKNOWN_MEMBER_ID) {
        id[0] = 0;
        return;
    }
    SL_CHECK_INT(j.err, 0);
    snprintf(id, ID_MAX, "%s", j.member);
    sync_send(fd, 2, "storm", j.generation, id, NULL, NULL, NULL, 0);
    int16_t err = sync_recv(fd, 2, NULL, 20000);
    if (err) return; /* REBALANCE_IN_PROGRESS / UNKNOWN_MEMBER_ID: join again */
    m->synced = j.generation;
    while (!m->stop) {
        usleep(30 * 1000);
        err = heartbeat(fd, "storm", j.generation, id, NULL);
        if (err == SL_KERR_UNKNOWN_MEMBER_ID) id[0] = 0;
        if (err) return;
    }
}

static void *storm_main(void *arg)
{
    storm_member *m = arg;
    sl_arena_init(&arena, 1 << 20);
    int fd = wconnect(m->port);
    char id[ID_MAX] = "";
    while (!m->stop) storm_round(m, fd, id);
    if (id[0]) SL_CHECK_INT(leave(fd, "storm", id), 0);
    close(fd);
    sl_arena_deinit(&arena);
    return NULL;
}

/* Many members join at once, then half leave, others join and vanish without a word: the group ends
   Stable with exactly the members that stayed, all synced in the same generation. */
SL_TEST(join_storm_ends_in_one_stable_generation)
{
    enum { N = 24, GHOSTS = 8 };
    wbroker w;
    sl_arena_init(&arena, 64 << 20);
    wbroker_config(&w, NULL);
    w.cfg.group_initial_rebalance_delay_ms = 200;
    w.cfg.group_min_session_timeout_ms = 100;
    wbroker_start(&w);
    int fd = wconnect(w.port);
    static storm_member ms[N];
    for (int i = 0; i < N; i++) {
        ms[i] = (storm_member){.port = w.port, .index = i, .session_ms = 2000};
        SL_CHECK(pthread_create(&ms[i].thread, NULL, storm_main, &ms[i]) == 0);
    }
    usleep(500 * 1000);
    for (int i = 1; i < N; i += 2) ms[i].stop = true;
    for (int i = 0; i < GHOSTS; i++) { /* join and disappear: their sessions (300 ms) expire */
        int g = wconnect(w.port);
        join_send(g, 3, 1, "storm", "", NULL, 300, "sub");
        close(g);
    }
    for (int i = 1; i < N; i += 2) pthread_join(ms[i].thread, NULL);
    /* settled: Stable, N/2 members, every remaining member synced into the same generation, for 1 s */
    char state[64];
    int settled_for = 0;
    for (int t = 0; t < 300 && settled_for < 10; t++) {
        usleep(100 * 1000);
        int n = describe(fd, "storm", state);
        bool same = true;
        for (int i = 2; i < N; i += 2) same &= ms[i].synced == ms[0].synced && ms[0].synced > 0;
        settled_for = n == N / 2 && strcmp(state, "Stable") == 0 && same ? settled_for + 1 : 0;
    }
    SL_CHECK_INT(settled_for, 10);
    SL_CHECK(ms[0].synced >= 2); /* the storm did rebalance it */
    for (int i = 0; i < N; i += 2) ms[i].stop = true;
    for (int i = 0; i < N; i += 2) pthread_join(ms[i].thread, NULL);
    SL_CHECK_INT(describe(fd, "storm", state), 0);
    SL_CHECK_STR(state, "Empty");
    finish(&w, fd);
}

SL_TEST(offsets_of_groups_empty_too_long_expire)
{
    wbroker w;
    sl_arena_init(&arena, 64 << 20);
    wbroker_config(&w, NULL);
    w.cfg.offsets_retention_ms = 1500;
    w.cfg.group_initial_rebalance_delay_ms = 0;
    wbroker_start(&w);
    int fd = wconnect(w.port);
    wtopic(fd, "t");
    SL_CHECK_INT(commit(fd, "old", -1, "", "t", 0, 5, ""), 0);
    joined a = join_alone(fd, "live", NULL, 30000, "x"); /* a member keeps its group's offsets however old */
    SL_CHECK_INT(commit(fd, "live", a.generation, a.member, "t", 0, 6, ""), 0);
    for (int i = 0; i < 6; i++) { /* "fresh" commits again and again: never expires */
        SL_CHECK_INT(commit(fd, "fresh", -1, "", "t", 0, 10 + i, ""), 0);
        usleep(500 * 1000);
    }
    SL_CHECK(!listed(fd, "old"));
    SL_CHECK_INT(committed(fd, "old", "t", 0, NULL), -1);
    SL_CHECK_INT(committed(fd, "fresh", "t", 0, NULL), 15);
    SL_CHECK_INT(committed(fd, "live", "t", 0, NULL), 6);
    close(fd);
    wbroker_stop(&w);
    w.cfg.offsets_retention_ms = 7LL * 24 * 3600 * 1000;
    wbroker_start(&w);
    fd = wconnect(w.port);
    SL_CHECK(!listed(fd, "old")); /* gone for good: tombstones */
    SL_CHECK_INT(committed(fd, "fresh", "t", 0, NULL), 15);
    finish(&w, fd);
}

/* ListGroups v4 with a states filter; returns how many groups came back, the state of `group` in state. */
static int list_v4(int fd, const char *filter, const char *group, char *state)
{
    sl_ListGroupsRequest m;
    sl_ListGroupsRequest_init(&m);
    sl_kstr f = ks(filter);
    m.StatesFilter.items = filter ? &f : NULL;
    m.StatesFilter.count = filter ? 1 : 0;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 16, 4, 41, (wenc_fn)sl_ListGroupsRequest_encode, &m, &r);
    sl_ListGroupsResponse lr;
    SL_CHECK_OK(sl_ListGroupsResponse_decode(&lr, &r, 4, &arena));
    state[0] = 0;
    for (int i = 0; i < lr.Groups.count; i++)
        if (lr.Groups.items[i].GroupId.len == (int32_t)strlen(group) &&
            memcmp(lr.Groups.items[i].GroupId.ptr, group, strlen(group)) == 0)
            copy_kstr(state, lr.Groups.items[i].GroupState);
    int n = lr.Groups.count;
    sl_free(resp);
    return n;
}

SL_TEST(list_groups_v4_filters_by_state_and_describe_v4_names_static_members)
{
    wbroker w;
    int fd = start(&w, NULL);
    join_alone(fd, "g", "inst-1", 10000, "x");
    SL_CHECK_INT(commit(fd, "idle", -1, "", "t", 0, 1, ""), 0);
    char state[64];
    SL_CHECK_INT(list_v4(fd, NULL, "g", state), 2);
    SL_CHECK_STR(state, "Stable");
    SL_CHECK_INT(list_v4(fd, "stable", "g", state), 1); /* Kafka compares states without case */
    SL_CHECK_STR(state, "Stable");
    SL_CHECK_INT(list_v4(fd, "Empty", "idle", state), 1);
    SL_CHECK_STR(state, "Empty");
    SL_CHECK_INT(list_v4(fd, "Dead", "g", state), 0);
    sl_DescribeGroupsRequest m;
    sl_DescribeGroupsRequest_init(&m);
    sl_kstr g = ks("g");
    m.Groups.items = &g;
    m.Groups.count = 1;
    m.IncludeAuthorizedOperations = true;
    sl_kreader r;
    uint8_t *resp = wcall(fd, 15, 4, 42, (wenc_fn)sl_DescribeGroupsRequest_encode, &m, &r);
    sl_DescribeGroupsResponse dr;
    SL_CHECK_OK(sl_DescribeGroupsResponse_decode(&dr, &r, 4, &arena));
    SL_CHECK_INT(dr.Groups.items[0].Members.count, 1);
    char inst[ID_MAX];
    copy_kstr(inst, dr.Groups.items[0].Members.items[0].GroupInstanceId);
    SL_CHECK_STR(inst, "inst-1");
    SL_CHECK_INT(dr.Groups.items[0].AuthorizedOperations, (1 << 3) | (1 << 6) | (1 << 8));
    sl_free(resp);
    finish(&w, fd);
}
