/*
 * h_group.c - JoinGroup 0-5, SyncGroup 0-3, Heartbeat 0-3, LeaveGroup 0-3,
 * DescribeGroups 0-4, ListGroups 0-4 (states filter), DeleteGroups 0-1: decoding, the
 * state machine's answer (group.c), encoding.
 */
#include <string.h>
#include <strings.h>
#include "broker/group_int.h"
#include "common/alloc.h"
#include "common/error.h"
#include "common/log.h"

int sl__handle_join_group(sl_broker *broker, sl_request *req)
{
    sl_JoinGroupRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_JoinGroupResponse resp;
    sl_JoinGroupResponse_init(&resp);
    resp.GenerationId = -1;
    resp.ProtocolName = resp.Leader = resp.MemberId = SL_KSTR_EMPTY;
    /* Shutting down: parked joins were answered NOT_COORDINATOR; do not park new ones. */
    int16_t rc = broker->stopping ? SL_KERR_NOT_COORDINATOR : sl__group_join(broker->coord, req, &m, &resp);
    if (rc == SL_PARKED) return 0;
    resp.ErrorCode = rc;
    if (rc) {
        resp.GenerationId = -1;
        resp.ProtocolName = resp.Leader = SL_KSTR_EMPTY;
        resp.Members.count = 0;
    }
    return sl__request_respond(req, &resp);
}

int sl__handle_sync_group(sl_broker *broker, sl_request *req)
{
    sl_SyncGroupRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_SyncGroupResponse resp;
    sl_SyncGroupResponse_init(&resp);
    resp.Assignment = SL_KBYTES_EMPTY;
    int16_t rc = broker->stopping ? SL_KERR_NOT_COORDINATOR : sl__group_sync(broker->coord, req, &m, &resp);
    if (rc == SL_PARKED) return 0;
    resp.ErrorCode = rc;
    if (rc) resp.Assignment = SL_KBYTES_EMPTY;
    return sl__request_respond(req, &resp);
}

int sl__handle_heartbeat(sl_broker *broker, sl_request *req)
{
    sl_HeartbeatRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_HeartbeatResponse resp;
    sl_HeartbeatResponse_init(&resp);
    resp.ErrorCode = sl__group_heartbeat(broker->coord, &m);
    return sl__request_respond(req, &resp);
}

int sl__handle_leave_group(sl_broker *broker, sl_request *req)
{
    sl_LeaveGroupRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_LeaveGroupResponse resp;
    sl_LeaveGroupResponse_init(&resp);
    sl_coord *c = broker->coord;
    sl_group *g = m.GroupId.len > 0 ? sl__group_find(c, m.GroupId.ptr, (size_t)m.GroupId.len) : NULL;
    if (m.GroupId.len <= 0) {
        resp.ErrorCode = SL_KERR_INVALID_GROUP_ID;
    } else if (req->hdr.RequestApiVersion < 3) {
        resp.ErrorCode = g ? sl__group_leave(c, g, m.MemberId, SL_KSTR_NULL) : SL_KERR_UNKNOWN_MEMBER_ID;
    } else {
        int32_t n = SL_MAX(m.Members.count, 0);
        if (!ARENA_ARRAY(req, resp.Members.items, n)) return SL_ENOMEM;
        resp.Members.count = n;
        for (int32_t i = 0; i < n; i++) {
            const sl_LeaveGroupRequest_MemberIdentity *id = &m.Members.items[i];
            sl_LeaveGroupResponse_MemberResponse *out = &resp.Members.items[i];
            out->MemberId = id->MemberId;
            out->GroupInstanceId = id->GroupInstanceId;
            out->ErrorCode = g ? sl__group_leave(c, g, id->MemberId, id->GroupInstanceId) : SL_KERR_UNKNOWN_MEMBER_ID;
        }
    }
    return sl__request_respond(req, &resp);
}

static int describe_members(sl_request *req, sl_group *g, sl_DescribeGroupsResponse_DescribedGroup *out)
{
    bool stable = g->state == SL_GROUP_STABLE;
    if (!ARENA_ARRAY(req, out->Members.items, g->nmembers)) return SL_ENOMEM;
    out->Members.count = g->nmembers;
    int i = 0;
    for (sl_link *l = g->members.next; l != &g->members; l = l->next, i++) {
        sl_member *mb = SL_CONTAINER(l, sl_member, link);
        sl_DescribeGroupsResponse_DescribedGroupMember *o = &out->Members.items[i];
        o->MemberId = sl__kstr(mb->id);
        o->GroupInstanceId = mb->instance_id ? sl__kstr(mb->instance_id) : SL_KSTR_NULL;
        o->ClientId = sl__kstr(mb->client_id);
        o->ClientHost = sl__kstr(mb->client_host);
        o->MemberMetadata = o->MemberAssignment = SL_KBYTES_EMPTY;
        if (!stable) continue; /* Kafka describes metadata and assignments of a Stable group only */
        for (int j = 0; j < mb->nprotocols; j++)
            if (g->protocol_name && strcmp(mb->protocols[j].name, g->protocol_name) == 0)
                o->MemberMetadata = (sl_kbytes){mb->protocols[j].meta, mb->protocols[j].meta_len};
        if (mb->assignment) o->MemberAssignment = (sl_kbytes){mb->assignment, mb->assignment_len};
    }
    return 0;
}

int sl__handle_describe_groups(sl_broker *broker, sl_request *req)
{
    sl_DescribeGroupsRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_DescribeGroupsResponse resp;
    sl_DescribeGroupsResponse_init(&resp);
    int32_t n = SL_MAX(m.Groups.count, 0);
    if (!ARENA_ARRAY(req, resp.Groups.items, n)) return SL_ENOMEM;
    resp.Groups.count = n;
    for (int32_t i = 0; i < n; i++) {
        sl_kstr id = m.Groups.items[i];
        sl_DescribeGroupsResponse_DescribedGroup *out = &resp.Groups.items[i];
        out->GroupId = id;
        out->ProtocolType = out->ProtocolData = SL_KSTR_EMPTY;
        /* No ACLs: what Kafka reports for a group anyone may use (READ 3, DELETE 6, DESCRIBE 8). */
        out->AuthorizedOperations = m.IncludeAuthorizedOperations ? (1 << 3) | (1 << 6) | (1 << 8) : INT32_MIN;
        sl_group *g = id.len > 0 ? sl__group_find(broker->coord, id.ptr, (size_t)id.len) : NULL;
        if (id.len <= 0) out->ErrorCode = SL_KERR_INVALID_GROUP_ID;
        if (!g) { /* Kafka: an unknown group is described as Dead, without an error */
            out->GroupState = sl__kstr(sl__group_state_name(SL_GROUP_DEAD));
            continue;
        }
        out->GroupState = sl__kstr(sl__group_state_name(g->state));
        if (g->protocol_type) out->ProtocolType = sl__kstr(g->protocol_type);
        if (g->state == SL_GROUP_STABLE && g->protocol_name) out->ProtocolData = sl__kstr(g->protocol_name);
        if (describe_members(req, g, out)) return SL_ENOMEM;
    }
    return sl__request_respond(req, &resp);
}

/* v4 StatesFilter: the states to list (case-insensitive, as Kafka compares them); none = all. */
static bool state_wanted(const sl_ListGroupsRequest *m, sl_group_state state)
{
    if (m->StatesFilter.count <= 0) return true;
    const char *name = sl__group_state_name(state);
    for (int i = 0; i < m->StatesFilter.count; i++) {
        sl_kstr f = m->StatesFilter.items[i];
        if (f.len == (int32_t)strlen(name) && strncasecmp(f.ptr, name, (size_t)f.len) == 0) return true;
    }
    return false;
}

int sl__handle_list_groups(sl_broker *broker, sl_request *req)
{
    sl_ListGroupsRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_ListGroupsResponse resp;
    sl_ListGroupsResponse_init(&resp);
    sl_coord *c = broker->coord;
    if (!ARENA_ARRAY(req, resp.Groups.items, c->ngroups)) return SL_ENOMEM;
    for (int i = 0; i < c->hash_size; i++) {
        for (sl_group *g = c->hash[i]; g; g = g->hash_next) {
            if (!state_wanted(&m, g->state)) continue;
            sl_ListGroupsResponse_ListedGroup *o = &resp.Groups.items[resp.Groups.count++];
            o->GroupId = sl__kstr(g->id);
            o->ProtocolType = sl__kstr(g->protocol_type ? g->protocol_type : "");
            o->GroupState = sl__kstr(sl__group_state_name(g->state));
        }
    }
    return sl__request_respond(req, &resp);
}

static void delete_done(sl_request *req, void *arg, int16_t err)
{
    sl_DeleteGroupsResponse *resp = arg;
    for (int32_t i = 0; err && i < resp->Results.count; i++)
        if (resp->Results.items[i].ErrorCode == 0) resp->Results.items[i].ErrorCode = err;
    if (sl__request_respond(req, resp) != 0) sl__conn_close(req->conn, "cannot encode a DeleteGroups response");
}

static int16_t delete_check(sl_coord *c, sl_kstr id, sl_group **out)
{
    *out = NULL;
    if (id.len <= 0) return SL_KERR_INVALID_GROUP_ID;
    sl_group *g = sl__group_find(c, id.ptr, (size_t)id.len);
    if (!g) return SL_KERR_GROUP_ID_NOT_FOUND;
    if (g->state != SL_GROUP_EMPTY || g->npending) return SL_KERR_NON_EMPTY_GROUP;
    *out = g;
    return 0;
}

/* Tombstones for every offset and the group record of each deletable group, in one batch; the groups go
   from memory once that batch is in the log, and the answer waits until it is durable. */
int sl__handle_delete_groups(sl_broker *broker, sl_request *req)
{
    sl_DeleteGroupsRequest m;
    if (sl__request_decode(req, &m)) return SL_EINVAL;
    sl_DeleteGroupsResponse *resp = sl_arena_alloc(&req->arena, sizeof *resp);
    sl_group **gone;
    int32_t n = SL_MAX(m.GroupsNames.count, 0), ngone = 0;
    if (!resp || !ARENA_ARRAY(req, gone, n)) return SL_ENOMEM;
    sl_DeleteGroupsResponse_init(resp);
    sl_coord *c = broker->coord;
    if (!ARENA_ARRAY(req, resp->Results.items, n)) return SL_ENOMEM;
    resp->Results.count = n;
    sl_buf kv;
    sl_buf_init(&kv, SIZE_MAX);
    sl_irec *recs = NULL;
    int nrec = 0, cap = 0;
    for (int32_t i = 0; i < n; i++) {
        sl_group *g;
        resp->Results.items[i].GroupId = m.GroupsNames.items[i];
        resp->Results.items[i].ErrorCode = delete_check(c, m.GroupsNames.items[i], &g);
        for (int32_t j = 0; g && j < ngone; j++)
            if (gone[j] == g) g = NULL; /* named twice */
        if (!g) continue;
        gone[ngone++] = g;
        sl__offsets_group_tombstones(&kv, &recs, &nrec, &cap, g);
    }
    int16_t err = nrec ? sl__offsets_append_for(c, req, &kv, recs, nrec, delete_done, resp) : 0;
    if (!nrec) delete_done(req, resp, 0);
    for (int32_t j = 0; !err && j < ngone; j++) {
        SL_INFO("group", "group %s deleted with %d committed offset%s", gone[j]->id, gone[j]->noffsets,
                gone[j]->noffsets == 1 ? "" : "s");
        sl__group_remove(c, gone[j]);
    }
    sl_buf_deinit(&kv);
    sl_free(recs);
    return 0;
}
