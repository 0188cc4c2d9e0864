/*
 * group.c - the consumer group state machine (Kafka's classic protocol).
 *
 *                     a member joins
 *       +-------+ --------------------------> +--------------------+
 *       | Empty |                             | PreparingRebalance | <--------------+
 *       +-------+ <-------------------------- +--------------------+                |
 *        |  |  ^   the rebalance completes          |                               |
 *        |  |  |   with no member left              | every member rejoined (or    |
 *        |  |  |                                    | the rebalance timeout passed)|
 *        |  |  |                                    v                               |
 *        |  |  |                         +---------------------+   a member joins,  |
 *        |  |  |                         | CompletingRebalance | ------------------>|
 *        |  |  |                         +---------------------+   leaves, expires  |
 *        |  |  |                                    | the leader's assignment        |
 *        |  |  |                                    | is stored (SyncGroup)          |
 *        |  |  |   restored with members            v                                |
 *        |  +--|-------------------------------> +--------+  a member joins, leaves, |
 *        |     |                                 | Stable | -------------------------+
 *        |     |                                 +--------+  expires, changes protocols
 *        |  DeleteGroups (only when Empty)
 *        v
 *     +------+
 *     | Dead |  removed from the coordinator at once; any state -> Dead at shutdown
 *     +------+
 *
 * Every change goes through set_state(), which asserts the edge is drawn
 * above. The rules are Kafka's (GroupCoordinator, 2.x), with the error
 * codes it returns where it returns them:
 *   - JoinGroup v4+ from an unknown member gets MEMBER_ID_REQUIRED and an
 *     id; the member is "pending" until it joins again with that id.
 *   - A rebalance completes when every member has rejoined and no pending
 *     member is left, or at the rebalance timeout (the largest of the
 *     members'), when dynamic members that did not rejoin are removed.
 *     The first rebalance of an empty group waits
 *     group.initial.rebalance.delay.ms, extended while members keep coming.
 *   - The leader's SyncGroup carries every assignment; they are stored in
 *     __consumer_offsets and, once durable, handed to the parked SyncGroups.
 *   - Static members (group.instance.id, JoinGroup v5+): a restarted
 *     instance takes over its old member's place and assignment without a
 *     rebalance of the others; the old member id is FENCED_INSTANCE_ID.
 *   - A member that neither heartbeats nor waits in a Join/SyncGroup for
 *     its session timeout is removed.
 */
#include <stdio.h>
#include <string.h>
#include "broker/group_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

typedef struct join_args {
    sl_request *req;
    const sl_JoinGroupRequest *m;
    sl_JoinGroupResponse *resp;
    int32_t rebalance_ms;
    int16_t version;
} join_args;

static void group_arm(sl_group *g);
static void prepare_rebalance(sl_group *g, const char *reason);

static const char *const state_names[] = {"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"};

const char *sl__group_state_name(sl_group_state state) { return state_names[state]; }

bool sl__group_id_valid(sl_kstr id)
{
    return id.len > 0 && id.len <= SL_GROUP_ID_MAX && memchr(id.ptr, 0, (size_t)id.len) == NULL;
}

static int64_t now_ns(const sl_group *g) { return sl_mono_ns(g->coord->broker->cfg.clock); }

static bool kstr_eq(sl_kstr k, const char *s)
{
    return s && k.len >= 0 && strlen(s) == (size_t)k.len && memcmp(k.ptr, s, (size_t)k.len) == 0;
}

/* The one setter of a group's state: every edge of the diagram, nothing else. */
static void set_state(sl_group *g, sl_group_state to, const char *reason)
{
    static const unsigned allowed[] = {
        [SL_GROUP_EMPTY] = 1u << SL_GROUP_PREPARING_REBALANCE | 1u << SL_GROUP_STABLE | 1u << SL_GROUP_DEAD,
        [SL_GROUP_PREPARING_REBALANCE] = 1u << SL_GROUP_COMPLETING_REBALANCE | 1u << SL_GROUP_EMPTY |
                                         1u << SL_GROUP_DEAD,
        [SL_GROUP_COMPLETING_REBALANCE] = 1u << SL_GROUP_PREPARING_REBALANCE | 1u << SL_GROUP_STABLE |
                                          1u << SL_GROUP_DEAD,
        [SL_GROUP_STABLE] = 1u << SL_GROUP_PREPARING_REBALANCE | 1u << SL_GROUP_DEAD,
        [SL_GROUP_DEAD] = 0,
    };
    SL_ASSERT(allowed[g->state] & (1u << to));
    SL_INFO("group", "group %s: %s -> %s (generation %d, %d member%s): %s", g->id, state_names[g->state],
            state_names[to], g->generation, g->nmembers, g->nmembers == 1 ? "" : "s", reason);
    g->state = to;
    g->state_ts_ms = sl_wall_ms(g->coord->broker->cfg.clock);
}

/* ---- the coordinator's hash of groups ---- */

static uint32_t hash_id(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

sl_group *sl__group_find(sl_coord *c, const char *id, size_t len)
{
    if (!c->hash) return NULL;
    for (sl_group *g = c->hash[hash_id(id, len) & (uint32_t)(c->hash_size - 1)]; g; g = g->hash_next)
        if (strlen(g->id) == len && memcmp(g->id, id, len) == 0) return g;
    return NULL;
}

static void rehash(sl_coord *c)
{
    int size = c->hash_size ? c->hash_size * 2 : 64;
    sl_group **h = sl_calloc((size_t)size, sizeof *h);
    for (int i = 0; i < c->hash_size; i++) {
        for (sl_group *g = c->hash[i], *next; g; g = next) {
            next = g->hash_next;
            uint32_t b = hash_id(g->id, strlen(g->id)) & (uint32_t)(size - 1);
            g->hash_next = h[b];
            h[b] = g;
        }
    }
    sl_free(c->hash);
    c->hash = h;
    c->hash_size = size;
}

static void on_group_timer(sl_loop *loop, sl_timer *timer);

sl_group *sl__group_get_or_create(sl_coord *c, const char *id, size_t len)
{
    sl_group *g = sl__group_find(c, id, len);
    if (g) return g;
    SL_ASSERT(memchr(id, 0, len) == NULL); /* callers check sl__group_id_valid */
    if (c->ngroups + 1 > c->hash_size / 2) rehash(c);
    g = SL_NEW(sl_group);
    g->coord = c;
    g->id = sl_strndup(id, len);
    g->state = SL_GROUP_EMPTY;
    g->storing_generation = -1;
    g->state_ts_ms = sl_wall_ms(c->broker->cfg.clock);
    sl_link_init(&g->members);
    sl_link_init(&g->pending);
    sl_timer_init(&g->timer, on_group_timer, g);
    uint32_t b = hash_id(id, len) & (uint32_t)(c->hash_size - 1);
    g->hash_next = c->hash[b];
    c->hash[b] = g;
    c->ngroups++;
    return g;
}

static void free_protocols(sl_member *m)
{
    for (int i = 0; i < m->nprotocols; i++) {
        sl_free(m->protocols[i].name);
        sl_free(m->protocols[i].meta);
    }
    sl_free(m->protocols);
    m->protocols = NULL;
    m->nprotocols = 0;
}

void sl__member_free(sl_member *m)
{
    free_protocols(m);
    sl_free(m->id);
    sl_free(m->instance_id);
    sl_free(m->client_id);
    sl_free(m->client_host);
    sl_free(m->protocol_type);
    sl_free(m->assignment);
    sl_free(m);
}

static void group_free(sl_group *g)
{
    SL_ASSERT(g->nmembers == 0 && g->npending == 0);
    sl_timer_stop(g->coord->broker->loop, &g->timer);
    for (int i = 0; i < g->noffsets; i++) {
        sl_free(g->offsets[i].topic);
        sl_free(g->offsets[i].metadata);
    }
    sl_free(g->offsets);
    sl_free(g->id);
    sl_free(g->protocol_type);
    sl_free(g->protocol_name);
    sl_free(g);
}

static void unhash(sl_coord *c, sl_group *g)
{
    sl_group **pp = &c->hash[hash_id(g->id, strlen(g->id)) & (uint32_t)(c->hash_size - 1)];
    while (*pp != g) pp = &(*pp)->hash_next;
    *pp = g->hash_next;
    c->ngroups--;
}

void sl__group_maybe_forget(sl_coord *c, sl_group *g)
{
    if (g->state != SL_GROUP_EMPTY || g->nmembers || g->npending || g->noffsets || g->generation ||
        g->store_pending || g->txn_pending)
        return;
    unhash(c, g);
    group_free(g);
}

void sl__group_remove(sl_coord *c, sl_group *g)
{
    SL_ASSERT(g->state == SL_GROUP_EMPTY);
    set_state(g, SL_GROUP_DEAD, "deleted");
    sl__offsets_txn_drop_group(c, g);
    unhash(c, g);
    group_free(g);
}

/* ---- members ---- */

sl_member *sl__group_member(sl_group *g, const char *id, size_t len)
{
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
        sl_member *m = SL_CONTAINER(l, sl_member, link);
        if (strlen(m->id) == len && memcmp(m->id, id, len) == 0) return m;
    }
    return NULL;
}

static sl_member *pending_member(sl_group *g, sl_kstr id)
{
    for (sl_link *l = g->pending.next; l != &g->pending; l = l->next) {
        sl_member *m = SL_CONTAINER(l, sl_member, link);
        if (kstr_eq(id, m->id)) return m;
    }
    return NULL;
}

sl_member *sl__group_static_member(sl_group *g, const char *instance_id, size_t len)
{
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
        sl_member *m = SL_CONTAINER(l, sl_member, link);
        if (m->instance_id && strlen(m->instance_id) == len && memcmp(m->instance_id, instance_id, len) == 0)
            return m;
    }
    return NULL;
}

bool sl__group_fenced(sl_group *g, sl_kstr member_id, sl_kstr instance_id)
{
    if (instance_id.len <= 0) return false;
    sl_member *m = sl__group_static_member(g, instance_id.ptr, (size_t)instance_id.len);
    return m && !kstr_eq(member_id, m->id);
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Kafka's shape: "<client id>-<uuid>". */
static char *new_member_id(sl_coord *c, sl_kstr client_id)
{
    uint64_t a = mix64(c->id_seed + ++c->id_counter), b = mix64(a ^ c->id_seed);
    int n = client_id.len > 0 ? SL_MIN(client_id.len, 255) : 0;
    return sl_asprintf("%.*s-%08x-%04x-%04x-%04x-%012llx", n, n ? client_id.ptr : "", (unsigned)(a >> 32),
                       (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xffff, (unsigned)(b >> 48),
                       (unsigned long long)(b & 0xffffffffffffull));
}

static void set_protocols(sl_member *mb, const join_args *a)
{
    free_protocols(mb);
    int n = a->m->Protocols.count;
    mb->protocols = sl_calloc((size_t)n, sizeof *mb->protocols);
    mb->nprotocols = n;
    for (int i = 0; i < n; i++) {
        const sl_JoinGroupRequest_JoinGroupRequestProtocol *p = &a->m->Protocols.items[i];
        mb->protocols[i].name = sl_strndup(p->Name.ptr ? p->Name.ptr : "", (size_t)SL_MAX(p->Name.len, 0));
        int32_t len = SL_MAX(p->Metadata.len, 0);
        mb->protocols[i].meta = sl_malloc((size_t)len + 1);
        if (len) memcpy(mb->protocols[i].meta, p->Metadata.ptr, (size_t)len);
        mb->protocols[i].meta_len = len;
    }
    sl_free(mb->protocol_type);
    mb->protocol_type = sl_strndup(a->m->ProtocolType.ptr, (size_t)a->m->ProtocolType.len);
    mb->session_timeout_ms = a->m->SessionTimeoutMs;
    mb->rebalance_timeout_ms = a->rebalance_ms;
    sl_free(mb->client_id);
    sl_free(mb->client_host);
    sl_kstr cid = a->req->hdr.ClientId;
    mb->client_id = sl_strndup(cid.len > 0 ? cid.ptr : "", (size_t)SL_MAX(cid.len, 0));
    const char *peer = a->req->conn->peer, *colon = strrchr(peer, ':'); /* Kafka: "/<address>", no port */
    mb->client_host = sl_asprintf("/%.*s", colon ? (int)(colon - peer) : (int)strlen(peer), peer);
}

static bool protocols_equal(const sl_member *mb, const sl_JoinGroupRequest *m)
{
    if (mb->nprotocols != m->Protocols.count) return false;
    for (int i = 0; i < mb->nprotocols; i++) {
        const sl_JoinGroupRequest_JoinGroupRequestProtocol *p = &m->Protocols.items[i];
        int32_t len = SL_MAX(p->Metadata.len, 0);
        if (!kstr_eq(p->Name, mb->protocols[i].name) || len != mb->protocols[i].meta_len ||
            (len && memcmp(p->Metadata.ptr, mb->protocols[i].meta, (size_t)len) != 0))
            return false;
    }
    return true;
}

static const sl_gprotocol *member_protocol(const sl_member *mb, const char *name)
{
    for (int i = 0; name && i < mb->nprotocols; i++)
        if (strcmp(mb->protocols[i].name, name) == 0) return &mb->protocols[i];
    return NULL;
}

static bool all_support(sl_group *g, const char *name)
{
    for (sl_link *l = g->members.next; l != &g->members; l = l->next)
        if (!member_protocol(SL_CONTAINER(l, sl_member, link), name)) return false;
    return true;
}

/* Kafka's supportsProtocols: an empty group takes any non-empty offer; else same type and a common protocol. */
static bool supports(sl_group *g, const sl_JoinGroupRequest *m)
{
    if (g->nmembers == 0) return true;
    if (!g->protocol_type || !kstr_eq(m->ProtocolType, g->protocol_type)) return false;
    for (int i = 0; i < m->Protocols.count; i++) {
        char name[256];
        sl_kstr n = m->Protocols.items[i].Name;
        if (n.len < 0 || n.len >= (int32_t)sizeof name) continue;
        memcpy(name, n.ptr, (size_t)n.len);
        name[n.len] = 0;
        if (all_support(g, name)) return true;
    }
    return false;
}

/* The protocol every member supports that most members prefer (ties: the first member's order). */
static const char *select_protocol(sl_group *g)
{
    SL_ASSERT(g->nmembers > 0);
    sl_member *first = SL_CONTAINER(g->members.next, sl_member, link);
    const char *best = NULL;
    int best_votes = -1;
    for (int i = 0; i < first->nprotocols; i++) {
        const char *cand = first->protocols[i].name;
        if (!all_support(g, cand)) continue;
        int votes = 0;
        for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
            sl_member *mb = SL_CONTAINER(l, sl_member, link);
            for (int j = 0; j < mb->nprotocols; j++) {
                if (!all_support(g, mb->protocols[j].name)) continue;
                votes += strcmp(mb->protocols[j].name, cand) == 0;
                break;
            }
        }
        if (votes > best_votes) {
            best = cand;
            best_votes = votes;
        }
    }
    SL_ASSERT(best != NULL); /* supports() admitted every member */
    return best;
}

static void refresh(sl_member *mb) { mb->deadline_ns = now_ns(mb->group) + (int64_t)mb->session_timeout_ms * 1000000; }

/* ---- answering parked requests ---- */

static void respond_parked(sl_request *req, const void *msg)
{
    if (sl__request_respond(req, msg) != 0) {
        sl__conn_close(req->conn, "cannot encode a group response");
        return;
    }
    sl__conn_pump_later(req->conn);
}

static int fill_join(sl_request *req, sl_group *g, sl_member *mb, const char *leader_id, bool with_members,
                     sl_JoinGroupResponse *r)
{
    r->GenerationId = g->generation;
    r->ProtocolName = sl__kstr(g->protocol_name ? g->protocol_name : "");
    r->Leader = sl__kstr(leader_id ? leader_id : "");
    r->MemberId = sl__kstr(mb->id);
    if (!with_members) return 0;
    if (!ARENA_ARRAY(req, r->Members.items, g->nmembers)) return SL_ENOMEM;
    int i = 0;
    for (sl_link *l = g->members.next; l != &g->members; l = l->next, i++) {
        sl_member *o = SL_CONTAINER(l, sl_member, link);
        const sl_gprotocol *p = member_protocol(o, g->protocol_name);
        sl_JoinGroupResponse_JoinGroupResponseMember *out = &r->Members.items[i];
        out->MemberId = sl__kstr(o->id);
        out->GroupInstanceId = o->instance_id ? sl__kstr(o->instance_id) : SL_KSTR_NULL;
        out->Metadata = p ? (sl_kbytes){p->meta, p->meta_len} : SL_KBYTES_EMPTY;
    }
    r->Members.count = g->nmembers;
    return 0;
}

static void answer_join(sl_group *g, sl_member *mb, int16_t err)
{
    sl_request *req = mb->join_req;
    mb->join_req = NULL;
    mb->awaiting_join = false;
    if (!req) return;
    req->hstate = NULL;
    sl_JoinGroupResponse r;
    sl_JoinGroupResponse_init(&r);
    r.ErrorCode = err;
    r.GenerationId = -1;
    r.ProtocolName = r.Leader = SL_KSTR_EMPTY;
    r.MemberId = sl__kstr(mb->id);
    if (!err && fill_join(req, g, mb, g->leader ? g->leader->id : NULL, mb == g->leader, &r) != 0) {
        sl__conn_close(req->conn, "out of request memory for a JoinGroup response");
        return;
    }
    respond_parked(req, &r);
}

static void answer_sync(sl_member *mb, int16_t err)
{
    sl_request *req = mb->sync_req;
    mb->sync_req = NULL;
    mb->awaiting_sync = false;
    if (!req) return;
    req->hstate = NULL;
    sl_SyncGroupResponse r;
    sl_SyncGroupResponse_init(&r);
    r.ErrorCode = err;
    r.Assignment = !err && mb->assignment ? (sl_kbytes){mb->assignment, mb->assignment_len} : SL_KBYTES_EMPTY;
    respond_parked(req, &r);
}

static void park_join(sl_member *mb, sl_request *req)
{
    if (mb->join_req) answer_join(mb->group, mb, SL_KERR_REBALANCE_IN_PROGRESS); /* superseded */
    mb->join_req = req;
    mb->awaiting_join = true;
    req->state = SL_REQ_WAITING;
    req->hstate = mb;
}

static void park_sync(sl_member *mb, sl_request *req)
{
    if (mb->sync_req) answer_sync(mb, SL_KERR_REBALANCE_IN_PROGRESS);
    mb->sync_req = req;
    mb->awaiting_sync = true;
    req->state = SL_REQ_WAITING;
    req->hstate = mb;
}

void sl__group_release(sl_request *req)
{
    sl_member *mb = req->hstate;
    if (!mb) return;
    if (mb->join_req == req) mb->join_req = NULL;
    if (mb->sync_req == req) mb->sync_req = NULL;
    req->hstate = NULL;
}

/* ---- membership changes ---- */

static void clear_assignments(sl_group *g)
{
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
        sl_member *mb = SL_CONTAINER(l, sl_member, link);
        sl_free(mb->assignment);
        mb->assignment = NULL;
        mb->assignment_len = 0;
    }
}

/* Unlinks and frees a member, answering what it has parked; the leader passes to the next member. */
static void remove_member(sl_group *g, sl_member *mb, int16_t err)
{
    if (mb->awaiting_join) answer_join(g, mb, err);
    if (mb->awaiting_sync) answer_sync(mb, err);
    sl_link_remove(&mb->link);
    g->nmembers--;
    if (g->leader == mb)
        g->leader = g->nmembers ? SL_CONTAINER(g->members.next, sl_member, link) : NULL;
    sl__member_free(mb);
}

static int32_t max_rebalance_ms(sl_group *g)
{
    int32_t t = 0;
    for (sl_link *l = g->members.next; l != &g->members; l = l->next)
        t = SL_MAX(t, SL_CONTAINER(l, sl_member, link)->rebalance_timeout_ms);
    return t;
}

/* Kafka's onCompleteJoin: the next generation, answered to every member that rejoined. */
static void complete_join(sl_group *g)
{
    SL_ASSERT(g->state == SL_GROUP_PREPARING_REBALANCE);
    g->initial_delay = false;
    for (sl_link *l = g->members.next; l != &g->members;) {
        sl_member *mb = SL_CONTAINER(l, sl_member, link);
        l = l->next;
        if (!mb->awaiting_join && !mb->instance_id) {
            SL_INFO("group", "group %s: member %s did not rejoin within the rebalance timeout: removed", g->id,
                    mb->id);
            remove_member(g, mb, SL_KERR_UNKNOWN_MEMBER_ID);
        }
    }
    if (g->nmembers > 0 && (!g->leader || !g->leader->awaiting_join)) {
        g->leader = NULL;
        for (sl_link *l = g->members.next; l != &g->members && !g->leader; l = l->next)
            if (SL_CONTAINER(l, sl_member, link)->awaiting_join) g->leader = SL_CONTAINER(l, sl_member, link);
        if (!g->leader) { /* only static members that have not rejoined: wait for them or their expiry */
            g->leader = SL_CONTAINER(g->members.next, sl_member, link);
            g->rebalance_deadline_ns = now_ns(g) + (int64_t)max_rebalance_ms(g) * 1000000;
            return;
        }
    }
    g->generation++;
    sl_free(g->protocol_name);
    g->protocol_name = NULL;
    if (g->nmembers == 0) { /* the protocol type stays, as in Kafka (ListGroups shows it) */
        set_state(g, SL_GROUP_EMPTY, "no members left");
        sl__offsets_store_group(g->coord, g);
        return;
    }
    g->protocol_name = sl_strdup(select_protocol(g));
    set_state(g, SL_GROUP_COMPLETING_REBALANCE, "every member rejoined");
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
        sl_member *mb = SL_CONTAINER(l, sl_member, link);
        if (!mb->awaiting_join) continue;
        answer_join(g, mb, 0);
        mb->is_new = false;
        refresh(mb);
    }
}

static void try_complete_join(sl_group *g)
{
    if (g->state != SL_GROUP_PREPARING_REBALANCE || g->initial_delay || g->npending > 0) return;
    for (sl_link *l = g->members.next; l != &g->members; l = l->next)
        if (!SL_CONTAINER(l, sl_member, link)->awaiting_join) return;
    complete_join(g);
}

static void prepare_rebalance(sl_group *g, const char *reason)
{
    if (g->state == SL_GROUP_COMPLETING_REBALANCE) {
        clear_assignments(g);
        for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
            sl_member *mb = SL_CONTAINER(l, sl_member, link);
            if (mb->awaiting_sync) answer_sync(mb, SL_KERR_REBALANCE_IN_PROGRESS);
        }
    }
    int64_t rebalance_ms = max_rebalance_ms(g);
    int64_t delay = g->coord->broker->cfg.group_initial_rebalance_delay_ms;
    if (g->state == SL_GROUP_EMPTY && delay > 0) {
        g->initial_delay = true;
        g->new_member_added = false;
        delay = SL_MIN(delay, rebalance_ms);
        g->initial_remaining_ms = SL_MAX(rebalance_ms - delay, 0);
        g->rebalance_deadline_ns = now_ns(g) + delay * 1000000;
    } else {
        g->initial_delay = false;
        g->rebalance_deadline_ns = now_ns(g) + rebalance_ms * 1000000;
    }
    set_state(g, SL_GROUP_PREPARING_REBALANCE, reason);
    g->rebalances++;
    try_complete_join(g);
}

static void maybe_prepare_rebalance(sl_group *g, const char *reason)
{
    if (g->state == SL_GROUP_PREPARING_REBALANCE) try_complete_join(g);
    else if (g->state != SL_GROUP_DEAD) prepare_rebalance(g, reason);
}

static void remove_member_and_update(sl_group *g, sl_member *mb, const char *reason)
{
    char why[300];
    snprintf(why, sizeof why, "member %.200s %s", mb->id, reason);
    remove_member(g, mb, SL_KERR_UNKNOWN_MEMBER_ID);
    if (g->state == SL_GROUP_STABLE || g->state == SL_GROUP_COMPLETING_REBALANCE) prepare_rebalance(g, why);
    else if (g->state == SL_GROUP_PREPARING_REBALANCE) try_complete_join(g);
}

static int16_t add_and_rebalance(sl_group *g, char *id, const join_args *a)
{
    sl_member *mb = SL_NEW(sl_member);
    mb->group = g;
    mb->id = id;
    sl_kstr inst = a->m->GroupInstanceId;
    if (a->version >= 5 && inst.len > 0) mb->instance_id = sl_strndup(inst.ptr, (size_t)inst.len);
    set_protocols(mb, a);
    if (g->nmembers == 0) {
        sl_free(g->protocol_type);
        g->protocol_type = sl_strdup(mb->protocol_type);
    }
    sl_link_insert_tail(&g->members, &mb->link);
    g->nmembers++;
    if (!g->leader) g->leader = mb;
    mb->is_new = true;
    refresh(mb);
    if (g->state == SL_GROUP_PREPARING_REBALANCE && g->initial_delay) g->new_member_added = true;
    park_join(mb, a->req);
    maybe_prepare_rebalance(g, "a member joined");
    return SL_PARKED;
}

static int16_t update_and_rebalance(sl_group *g, sl_member *mb, const join_args *a, const char *reason)
{
    set_protocols(mb, a);
    refresh(mb);
    park_join(mb, a->req);
    maybe_prepare_rebalance(g, reason);
    return SL_PARKED;
}

/* Kafka's updateStaticMemberAndRebalance: a restarted static instance takes its old member's place. */
static int16_t replace_static(sl_group *g, sl_member *old, char *new_id, const join_args *a)
{
    if (old->awaiting_join) answer_join(g, old, SL_KERR_FENCED_INSTANCE_ID);
    if (old->awaiting_sync) answer_sync(old, SL_KERR_FENCED_INSTANCE_ID);
    char *old_id = old->id;
    bool was_leader = g->leader == old;
    SL_INFO("group", "group %s: static member %s rejoined as %s (was %s)", g->id, old->instance_id, new_id, old_id);
    old->id = new_id;
    set_protocols(old, a);
    refresh(old);
    int16_t rc = SL_PARKED;
    if (g->state == SL_GROUP_STABLE && g->protocol_name && strcmp(select_protocol(g), g->protocol_name) == 0) {
        /* Nothing changes for the others: no rebalance. The old leader id is returned so that a restarted
           leader does not compute an assignment a Stable group would never hand out. */
        sl__offsets_store_group(g->coord, g);
        rc = fill_join(a->req, g, old, was_leader ? sl__arena_cstr(&a->req->arena, sl__kstr(old_id)) : g->leader->id,
                       false, a->resp) ? SL_KERR_UNKNOWN_SERVER_ERROR : 0;
    } else {
        park_join(old, a->req);
        maybe_prepare_rebalance(g, "a static member rejoined with other protocols");
    }
    sl_free(old_id);
    return rc;
}

static bool full(const sl_group *g) { return g->nmembers + g->npending >= SL_GROUP_MEMBERS_MAX; }

static int16_t join_new(sl_coord *c, sl_group *g, const join_args *a)
{
    sl_kstr inst = a->m->GroupInstanceId;
    bool is_static = a->version >= 5 && inst.len > 0;
    sl_member *old = is_static ? sl__group_static_member(g, inst.ptr, (size_t)inst.len) : NULL;
    if (!old && full(g)) return SL_KERR_GROUP_MAX_SIZE_REACHED;
    char *id = new_member_id(c, a->req->hdr.ClientId);
    if (old) return replace_static(g, old, id, a);
    if (is_static || a->version < 4) return add_and_rebalance(g, id, a);
    sl_member *p = SL_NEW(sl_member);
    p->group = g;
    p->id = id;
    p->session_timeout_ms = a->m->SessionTimeoutMs;
    refresh(p);
    sl_link_insert_tail(&g->pending, &p->link);
    g->npending++;
    a->resp->MemberId = sl__kstr(p->id);
    return SL_KERR_MEMBER_ID_REQUIRED;
}

static int16_t join_known(sl_group *g, const join_args *a)
{
    const sl_JoinGroupRequest *m = a->m;
    if (sl__group_fenced(g, m->MemberId, a->version >= 5 ? m->GroupInstanceId : SL_KSTR_NULL))
        return SL_KERR_FENCED_INSTANCE_ID;
    sl_member *p = pending_member(g, m->MemberId);
    if (p) {
        sl_link_remove(&p->link);
        g->npending--;
        char *id = p->id;
        p->id = NULL;
        sl__member_free(p);
        return add_and_rebalance(g, id, a);
    }
    sl_member *mb = sl__group_member(g, m->MemberId.ptr, (size_t)m->MemberId.len);
    if (!mb) return SL_KERR_UNKNOWN_MEMBER_ID;
    switch (g->state) {
    case SL_GROUP_PREPARING_REBALANCE:
        return update_and_rebalance(g, mb, a, "a member rejoined");
    case SL_GROUP_COMPLETING_REBALANCE:
        if (!protocols_equal(mb, m)) return update_and_rebalance(g, mb, a, "a member changed its protocols");
        refresh(mb);
        return fill_join(a->req, g, mb, g->leader->id, mb == g->leader, a->resp) ? SL_KERR_UNKNOWN_SERVER_ERROR : 0;
    case SL_GROUP_STABLE:
        if (mb == g->leader || !protocols_equal(mb, m))
            return update_and_rebalance(g, mb, a, mb == g->leader ? "the leader rejoined" : "a member changed its protocols");
        refresh(mb);
        return fill_join(a->req, g, mb, g->leader->id, false, a->resp) ? SL_KERR_UNKNOWN_SERVER_ERROR : 0;
    case SL_GROUP_EMPTY:
    case SL_GROUP_DEAD:
        break;
    }
    return SL_KERR_UNKNOWN_MEMBER_ID;
}

/* Returns a Kafka error for resp, 0 with resp filled, or SL_PARKED (answered later, maybe already). */
int16_t sl__group_join(sl_coord *c, sl_request *req, const sl_JoinGroupRequest *m, sl_JoinGroupResponse *resp)
{
    const sl_broker_config *cfg = &c->broker->cfg;
    join_args a = {req, m, resp, m->RebalanceTimeoutMs, req->hdr.RequestApiVersion};
    if (a.version == 0) a.rebalance_ms = m->SessionTimeoutMs;
    resp->MemberId = m->MemberId.len >= 0 ? m->MemberId : SL_KSTR_EMPTY;
    if (!sl__group_id_valid(m->GroupId)) return SL_KERR_INVALID_GROUP_ID;
    if (a.version >= 5 && m->GroupInstanceId.len > 0 && memchr(m->GroupInstanceId.ptr, 0, (size_t)m->GroupInstanceId.len))
        return SL_KERR_INVALID_REQUEST;
    if (m->SessionTimeoutMs < cfg->group_min_session_timeout_ms ||
        m->SessionTimeoutMs > cfg->group_max_session_timeout_ms)
        return SL_KERR_INVALID_SESSION_TIMEOUT;
    if (m->ProtocolType.len <= 0 || m->Protocols.count <= 0 || m->Protocols.count > SL_GROUP_PROTOCOLS_MAX ||
        a.rebalance_ms <= 0)
        return SL_KERR_INCONSISTENT_GROUP_PROTOCOL;
    bool unknown = m->MemberId.len <= 0;
    sl_group *g = sl__group_find(c, m->GroupId.ptr, (size_t)m->GroupId.len);
    if (!g && !unknown) return SL_KERR_UNKNOWN_MEMBER_ID;
    if (!g) g = sl__group_get_or_create(c, m->GroupId.ptr, (size_t)m->GroupId.len);
    int16_t rc = !supports(g, m) ? SL_KERR_INCONSISTENT_GROUP_PROTOCOL : unknown ? join_new(c, g, &a) : join_known(g, &a);
    group_arm(g);
    if (rc > 0 && rc != SL_KERR_MEMBER_ID_REQUIRED) sl__group_maybe_forget(c, g);
    return rc;
}

/* ---- SyncGroup, Heartbeat, LeaveGroup, OffsetCommit's checks ---- */

typedef struct store_wait {
    sl_produce_wait w;
    sl_coord *coord;
    char *group_id;
    int32_t generation;
} store_wait;

static void store_done(sl_produce_wait *w, int16_t err)
{
    store_wait *sw = (store_wait *)w;
    sl_group *g = sl__group_find(sw->coord, sw->group_id, strlen(sw->group_id));
    if (g && g->store_pending > 0) g->store_pending--; /* (a group deleted and made again meanwhile: 0) */
    if (g && g->state == SL_GROUP_COMPLETING_REBALANCE && g->generation == sw->generation) {
        if (err) {
            SL_ERROR("group", "group %s: cannot store generation %d's assignment (error %d); rebalancing", g->id,
                     g->generation, err);
            for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
                sl_member *mb = SL_CONTAINER(l, sl_member, link);
                if (mb->awaiting_sync) answer_sync(mb, SL_KERR_COORDINATOR_NOT_AVAILABLE);
            }
            prepare_rebalance(g, "storing the assignment failed");
        } else {
            set_state(g, SL_GROUP_STABLE, "the leader's assignment is stored");
            for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
                sl_member *mb = SL_CONTAINER(l, sl_member, link);
                if (mb->awaiting_sync) answer_sync(mb, 0);
            }
        }
        group_arm(g);
    }
    sl_free(sw->group_id);
    sl_free(sw);
}

static void set_assignments(sl_group *g, const sl_SyncGroupRequest *m)
{
    clear_assignments(g);
    for (int i = 0; i < m->Assignments.count; i++) {
        const sl_SyncGroupRequest_SyncGroupRequestAssignment *as = &m->Assignments.items[i];
        sl_member *mb = sl__group_member(g, as->MemberId.ptr, (size_t)SL_MAX(as->MemberId.len, 0));
        if (!mb || mb->assignment) continue;
        int32_t len = SL_MAX(as->Assignment.len, 0);
        mb->assignment = sl_malloc((size_t)len + 1);
        if (len) memcpy(mb->assignment, as->Assignment.ptr, (size_t)len);
        mb->assignment_len = len;
    }
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
        sl_member *mb = SL_CONTAINER(l, sl_member, link);
        if (!mb->assignment) mb->assignment = sl_calloc(1, 1); /* an empty assignment, not none */
    }
}

static void store_assignment(sl_coord *c, sl_group *g)
{
    store_wait *sw = SL_NEW(store_wait);
    sw->coord = c;
    sw->group_id = sl_strdup(g->id);
    sw->generation = g->generation;
    sw->w.complete = store_done;
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec rec;
    sl__offsets_group_record(&kv, g, false, &rec);
    bool waiting = false;
    g->store_pending++;
    int16_t err = sl__offsets_append(c, &kv, &rec, 1, &sw->w, &waiting);
    sl_buf_deinit(&kv);
    if (!waiting) store_done(&sw->w, err);
}

int16_t sl__group_sync(sl_coord *c, sl_request *req, const sl_SyncGroupRequest *m, sl_SyncGroupResponse *resp)
{
    (void)resp;
    sl_group *g = sl__group_find(c, m->GroupId.ptr, (size_t)SL_MAX(m->GroupId.len, 0));
    if (!g) return SL_KERR_UNKNOWN_MEMBER_ID;
    if (sl__group_fenced(g, m->MemberId, m->GroupInstanceId)) return SL_KERR_FENCED_INSTANCE_ID;
    sl_member *mb = sl__group_member(g, m->MemberId.ptr, (size_t)SL_MAX(m->MemberId.len, 0));
    if (!mb) return SL_KERR_UNKNOWN_MEMBER_ID;
    if (m->GenerationId != g->generation) return SL_KERR_ILLEGAL_GENERATION;
    refresh(mb);
    switch (g->state) {
    case SL_GROUP_PREPARING_REBALANCE:
        return SL_KERR_REBALANCE_IN_PROGRESS;
    case SL_GROUP_COMPLETING_REBALANCE:
        park_sync(mb, req);
        if (mb == g->leader && g->storing_generation != g->generation) {
            g->storing_generation = g->generation;
            set_assignments(g, m);
            store_assignment(c, g);
        }
        return SL_PARKED;
    case SL_GROUP_STABLE:
        resp->Assignment = mb->assignment ? (sl_kbytes){mb->assignment, mb->assignment_len} : SL_KBYTES_EMPTY;
        return 0;
    case SL_GROUP_EMPTY:
    case SL_GROUP_DEAD:
        break;
    }
    return SL_KERR_UNKNOWN_MEMBER_ID;
}

int16_t sl__group_heartbeat(sl_coord *c, const sl_HeartbeatRequest *m)
{
    sl_group *g = sl__group_find(c, m->GroupId.ptr, (size_t)SL_MAX(m->GroupId.len, 0));
    if (!g) return SL_KERR_UNKNOWN_MEMBER_ID;
    if (sl__group_fenced(g, m->MemberId, m->GroupInstanceId)) return SL_KERR_FENCED_INSTANCE_ID;
    sl_member *mb = sl__group_member(g, m->MemberId.ptr, (size_t)SL_MAX(m->MemberId.len, 0));
    if (!mb) return SL_KERR_UNKNOWN_MEMBER_ID;
    if (m->GenerationId != g->generation) return SL_KERR_ILLEGAL_GENERATION;
    refresh(mb);
    return g->state == SL_GROUP_PREPARING_REBALANCE ? SL_KERR_REBALANCE_IN_PROGRESS : 0;
}

int16_t sl__group_leave(sl_coord *c, sl_group *g, sl_kstr member_id, sl_kstr instance_id)
{
    (void)c;
    sl_member *mb;
    if (instance_id.len > 0) {
        mb = sl__group_static_member(g, instance_id.ptr, (size_t)instance_id.len);
        if (!mb) return SL_KERR_UNKNOWN_MEMBER_ID;
        if (member_id.len > 0 && !kstr_eq(member_id, mb->id)) return SL_KERR_FENCED_INSTANCE_ID;
    } else {
        sl_member *p = pending_member(g, member_id);
        if (p) {
            sl_link_remove(&p->link);
            g->npending--;
            sl__member_free(p);
            try_complete_join(g);
            group_arm(g);
            return 0;
        }
        mb = sl__group_member(g, member_id.ptr, (size_t)SL_MAX(member_id.len, 0));
        if (!mb) return SL_KERR_UNKNOWN_MEMBER_ID;
    }
    remove_member_and_update(g, mb, "left the group");
    group_arm(g);
    return 0;
}

int16_t sl__group_commit_check(sl_group *g, int32_t generation, sl_kstr member_id, sl_kstr instance_id)
{
    if (sl__group_fenced(g, member_id, instance_id)) return SL_KERR_FENCED_INSTANCE_ID;
    if (generation < 0 && g->state == SL_GROUP_EMPTY) return 0; /* a group that only stores offsets */
    if (g->state == SL_GROUP_COMPLETING_REBALANCE) return SL_KERR_REBALANCE_IN_PROGRESS;
    sl_member *mb = sl__group_member(g, member_id.ptr, (size_t)SL_MAX(member_id.len, 0));
    if (!mb) return SL_KERR_UNKNOWN_MEMBER_ID;
    if (generation != g->generation) return SL_KERR_ILLEGAL_GENERATION;
    refresh(mb);
    return 0;
}

/* ---- timeouts ---- */

/* Arms the group's timer for its earliest deadline: a session, a pending member, the rebalance. */
static void group_arm(sl_group *g)
{
    int64_t t = INT64_MAX;
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
        sl_member *mb = SL_CONTAINER(l, sl_member, link);
        if (!mb->awaiting_join && !mb->awaiting_sync) t = SL_MIN(t, mb->deadline_ns);
    }
    for (sl_link *l = g->pending.next; l != &g->pending; l = l->next)
        t = SL_MIN(t, SL_CONTAINER(l, sl_member, link)->deadline_ns);
    if (g->state == SL_GROUP_PREPARING_REBALANCE) t = SL_MIN(t, g->rebalance_deadline_ns);
    sl_loop *loop = g->coord->broker->loop;
    if (t == INT64_MAX) {
        sl_timer_stop(loop, &g->timer);
        return;
    }
    int64_t now = now_ns(g);
    sl_timer_start(loop, &g->timer, t <= now ? 0 : (t - now + 999999) / 1000000);
}

static bool expire_one(sl_group *g, int64_t now)
{
    for (sl_link *l = g->pending.next; l != &g->pending; l = l->next) {
        sl_member *p = SL_CONTAINER(l, sl_member, link);
        if (p->deadline_ns > now) continue;
        sl_link_remove(&p->link);
        g->npending--;
        sl__member_free(p);
        try_complete_join(g);
        return true;
    }
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
        sl_member *mb = SL_CONTAINER(l, sl_member, link);
        if (mb->awaiting_join || mb->awaiting_sync || mb->deadline_ns > now) continue;
        SL_INFO("group", "group %s: member %s missed its session timeout (%d ms)", g->id, mb->id,
                mb->session_timeout_ms);
        remove_member_and_update(g, mb, "session timeout expired");
        return true;
    }
    return false;
}

static void on_group_timer(sl_loop *loop, sl_timer *timer)
{
    (void)loop;
    sl_group *g = timer->arg;
    int64_t now = now_ns(g);
    while (expire_one(g, now)) {
    }
    if (g->state == SL_GROUP_PREPARING_REBALANCE && now >= g->rebalance_deadline_ns) {
        if (g->initial_delay && g->new_member_added && g->initial_remaining_ms > 0) {
            int64_t d = SL_MIN((int64_t)g->coord->broker->cfg.group_initial_rebalance_delay_ms,
                               g->initial_remaining_ms);
            g->initial_remaining_ms -= d;
            g->new_member_added = false;
            g->rebalance_deadline_ns = now + d * 1000000;
        } else {
            complete_join(g);
        }
    }
    group_arm(g);
}

/* ---- start-up and shutdown ---- */

sl_member *sl__group_member_restore(sl_group *g, const char *id, const char *instance_id, const char *client_id,
                                    const char *host, int32_t session_ms, int32_t rebalance_ms,
                                    const uint8_t *sub, int32_t sub_len, const uint8_t *assign, int32_t assign_len)
{
    sl_member *mb = SL_NEW(sl_member);
    mb->group = g;
    mb->id = sl_strdup(id);
    mb->instance_id = instance_id ? sl_strdup(instance_id) : NULL;
    mb->client_id = sl_strdup(client_id);
    mb->client_host = sl_strdup(host);
    mb->session_timeout_ms = session_ms;
    mb->rebalance_timeout_ms = rebalance_ms;
    mb->protocol_type = sl_strdup(g->protocol_type ? g->protocol_type : "");
    mb->nprotocols = 1;
    mb->protocols = sl_calloc(1, sizeof *mb->protocols);
    mb->protocols[0].name = sl_strdup(g->protocol_name ? g->protocol_name : "");
    mb->protocols[0].meta = sl_malloc((size_t)SL_MAX(sub_len, 0) + 1);
    if (sub_len > 0) memcpy(mb->protocols[0].meta, sub, (size_t)sub_len);
    mb->protocols[0].meta_len = SL_MAX(sub_len, 0);
    mb->assignment = sl_malloc((size_t)SL_MAX(assign_len, 0) + 1);
    if (assign_len > 0) memcpy(mb->assignment, assign, (size_t)assign_len);
    mb->assignment_len = SL_MAX(assign_len, 0);
    sl_link_insert_tail(&g->members, &mb->link);
    g->nmembers++;
    return mb;
}

/* After replaying __consumer_offsets: a group with members carries on Stable; their sessions restart now. */
void sl__group_loaded(sl_coord *c, sl_group *g)
{
    (void)c;
    if (g->nmembers == 0) return;
    if (!g->protocol_name) { /* cannot be Stable without a protocol: drop the members, they rejoin */
        while (g->nmembers) remove_member(g, SL_CONTAINER(g->members.next, sl_member, link), 0);
        return;
    }
    for (sl_link *l = g->members.next; l != &g->members; l = l->next) refresh(SL_CONTAINER(l, sl_member, link));
    set_state(g, SL_GROUP_STABLE, "restored from " SL_OFFSETS_TOPIC);
    group_arm(g);
}

static void drop_members(sl_group *g)
{
    while (!sl_link_empty(&g->members)) {
        sl_member *mb = SL_CONTAINER(g->members.next, sl_member, link);
        mb->join_req = mb->sync_req = NULL; /* their connections are gone */
        mb->awaiting_join = mb->awaiting_sync = false;
        remove_member(g, mb, 0);
    }
    while (!sl_link_empty(&g->pending)) {
        sl_member *p = SL_CONTAINER(g->pending.next, sl_member, link);
        sl_link_remove(&p->link);
        g->npending--;
        sl__member_free(p);
    }
}

void sl__group_reset(sl_group *g)
{
    drop_members(g);
    g->leader = NULL;
    g->generation = 0;
    sl_free(g->protocol_type);
    sl_free(g->protocol_name);
    g->protocol_type = g->protocol_name = NULL;
}

void sl__groups_cancel_all(sl_broker *broker)
{
    sl_coord *c = broker->coord;
    for (int i = 0; c && i < c->hash_size; i++) {
        for (sl_group *g = c->hash[i]; g; g = g->hash_next) {
            for (sl_link *l = g->members.next; l != &g->members; l = l->next) {
                sl_member *mb = SL_CONTAINER(l, sl_member, link);
                if (mb->join_req) answer_join(g, mb, SL_KERR_NOT_COORDINATOR);
                if (mb->sync_req) answer_sync(mb, SL_KERR_NOT_COORDINATOR);
            }
            sl_timer_stop(broker->loop, &g->timer);
        }
    }
}

void sl__coord_close(sl_broker *broker)
{
    sl_coord *c = broker->coord;
    if (!c) return;
    for (int i = 0; i < c->hash_size; i++) {
        for (sl_group *g = c->hash[i], *next; g; g = next) {
            next = g->hash_next;
            drop_members(g);
            group_free(g);
        }
    }
    sl__offsets_txn_free(c);
    sl_timer_stop(broker->loop, &c->tick);
    sl_free(c->hash);
    sl__ilog_close(&c->ilog);
    sl_free(c);
    broker->coord = NULL;
}
