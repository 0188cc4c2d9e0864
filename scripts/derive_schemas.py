#!/usr/bin/python3
"""Derive Sluice's own protocol schema files from Kafka's message JSON.

Usage: scripts/derive_schemas.py [KAFKA_PROTOCOL_DIR]
       (default: ../shared/kafka-protocol relative to the repository root)

Reads messages/<Api>Request.json, messages/<Api>Response.json and
error-codes.tsv and writes src/kafka/schema/<Api>.sch plus
src/kafka/schema/errors.sch. Only the versions Sluice serves (SERVED below,
from COMPATIBILITY.md a.3) are kept: every version range is clipped to the
served range, fields that exist in no served version are dropped, and the
Kafka `about` text and comments are not copied. The format is described in
docs/internals/protocol.md and at the top of each written file; the
generator scripts/gen_codecs.py reads it.

Anything this script does not know how to express (nullable structs,
per-field flexibleVersions overrides inside a message, tagged fields whose
tagged range differs from their range) stops it with an error rather than
producing a schema that silently means something else.
"""

import json
import os
import re
import sys

# The served ranges: (api name, min version, max version).
SERVED = [
    ("Produce", 0, 7), ("Fetch", 4, 11), ("ListOffsets", 0, 3),
    ("Metadata", 0, 6), ("OffsetCommit", 1, 7), ("OffsetFetch", 1, 7),
    ("FindCoordinator", 0, 2), ("JoinGroup", 0, 5), ("Heartbeat", 0, 3),
    ("LeaveGroup", 0, 3), ("SyncGroup", 0, 3), ("DescribeGroups", 0, 4),
    ("ListGroups", 0, 4), ("SaslHandshake", 0, 1), ("ApiVersions", 0, 3),
    ("CreateTopics", 0, 4), ("DeleteTopics", 0, 3), ("InitProducerId", 0, 4),
    ("AddPartitionsToTxn", 0, 1), ("AddOffsetsToTxn", 0, 1), ("EndTxn", 0, 1),
    ("TxnOffsetCommit", 0, 3), ("DescribeConfigs", 0, 2),
    ("SaslAuthenticate", 0, 1), ("CreatePartitions", 0, 1),
    ("DeleteGroups", 0, 1),
]

PRIMITIVES = {"bool", "int8", "int16", "uint16", "int32", "uint32", "int64",
              "float64", "string", "uuid", "bytes", "records"}
INT_TYPES = {"int8", "int16", "uint16", "int32", "uint32", "int64"}


class SchemaError(Exception):
    pass


def strip_comments(text):
    """Removes // comments outside JSON strings."""
    out = []
    i, n, in_str = 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.loads(strip_comments(f.read()))


def parse_range(spec):
    """Kafka version spec ("3+", "0-2", "5", "none") -> (lo, hi) or None."""
    spec = spec.strip()
    if spec == "none":
        return None
    if spec.endswith("+"):
        return (int(spec[:-1]), 1 << 15)
    if "-" in spec:
        lo, hi = spec.split("-")
        return (int(lo), int(hi))
    return (int(spec), int(spec))


def clip(rng, lo, hi):
    if rng is None:
        return None
    a, b = max(rng[0], lo), min(rng[1], hi)
    return (a, b) if a <= b else None


def fmt_range(rng):
    if rng is None:
        return "none"
    return "%d" % rng[0] if rng[0] == rng[1] else "%d-%d" % rng


def norm_default(ftype, value, nullable_all):
    """Returns the schema text of a default, or None when it is the implicit one."""
    text = str(value).strip()
    if ftype in INT_TYPES:
        num = int(text, 0) if not re.match(r"^-?0[0-7]+$", text) else int(text, 8)
        return None if num == 0 else str(num)
    if ftype == "bool":
        b = text.lower()
        if b not in ("true", "false"):
            raise SchemaError("bad bool default %r" % value)
        return None if b == "false" else "true"
    if ftype == "float64":
        num = float(text)
        return None if num == 0.0 else repr(num)
    if ftype == "string":
        if text == "null":
            if not nullable_all:
                raise SchemaError("null default on a field that is not always nullable")
            return "null"
        if text == "":
            return None
        if re.search(r"\s", text):
            raise SchemaError("string default with whitespace: %r" % value)
        return json.dumps(text)
    raise SchemaError("default on unsupported type %s" % ftype)


class Deriver:
    def __init__(self, api, lo, hi):
        self.api, self.lo, self.hi = api, lo, hi
        self.lines = []
        self.structs = []       # (name, fields, range) to emit after the message
        self.seen = {}          # struct name -> field list (duplicate check)
        self.common = {}

    def field_line(self, f, parent_rng, flexible):
        """One `field` line; its range is clipped to the enclosing struct's
        and written only when narrower."""
        name, ftype = f["name"], f["type"]
        rng = clip(parse_range(f["versions"]), *parent_rng)
        if rng is None:
            return None
        attrs = []
        if rng != parent_rng:
            attrs.append("versions=" + fmt_range(rng))
        nul = clip(parse_range(f.get("nullableVersions", "none")), *rng)
        if nul == rng:
            attrs.append("nullable")
        elif nul is not None:
            attrs.append("nullable=" + fmt_range(nul))
        if "flexibleVersions" in f:
            fx = clip(parse_range(f["flexibleVersions"]), *rng)
            if fx != clip(flexible, *rng):
                raise SchemaError("%s: per-field flexibleVersions not supported" % name)
        if "tag" in f:
            tagged = clip(parse_range(f.get("taggedVersions", "none")), *rng)
            if tagged != rng:
                raise SchemaError("%s: taggedVersions differs from versions" % name)
            attrs.append("tag=%d" % int(f["tag"]))
        elem = ftype[2:] if ftype.startswith("[]") else ftype
        if "default" in f:
            if ftype.startswith("[]") or elem not in PRIMITIVES:
                raise SchemaError("%s: default on array/struct" % name)
            d = norm_default(ftype, f["default"], nul == rng)
            if d is not None:
                attrs.append("default=" + d)
        if elem not in PRIMITIVES:
            if not ftype.startswith("[]") and nul is not None:
                raise SchemaError("%s: nullable struct fields not supported" % name)
            fields = f.get("fields")
            if fields is None:
                if elem not in self.common:
                    raise SchemaError("%s: unknown struct type %s" % (name, elem))
                fields = self.common[elem]
            self.add_struct(elem, fields, rng, flexible)
        elif "fields" in f:
            raise SchemaError("%s: primitive type with fields" % name)
        return "  field %s %s%s" % (name, ftype, "".join(" " + a for a in attrs))

    def add_struct(self, name, fields, rng, flexible):
        """Queues `struct` blocks parent first; a struct used twice (Kafka's
        commonStructs) must come out identical both times."""
        head = "struct %s" % name
        if rng != (self.lo, self.hi):
            head += " versions=" + fmt_range(rng)
        if name in self.seen:
            slot = self.seen[name]
        else:
            slot = [head, None]
            self.seen[name] = slot
            self.structs.append(slot)
        body = [self.field_line(f, rng, flexible) for f in fields]
        body = [b for b in body if b is not None]
        if slot[1] is not None and (slot[0], slot[1]) != (head, body):
            raise SchemaError("struct %s used twice with different shapes" % name)
        slot[1] = body

    def message(self, spec, flexible):
        self.structs, self.seen = [], {}
        self.common = {c["name"]: c["fields"] for c in spec.get("commonStructs", [])}
        out = ["message %s" % spec["name"]]
        for f in spec["fields"]:
            line = self.field_line(f, (self.lo, self.hi), flexible)
            if line is not None:
                out.append(line)
        for head, body in self.structs:
            out.append("")
            out.append(head)
            out.extend(body)
        return out


def derive_api(src, api, lo, hi):
    req = load_json(os.path.join(src, "messages", api + "Request.json"))
    resp = load_json(os.path.join(src, "messages", api + "Response.json"))
    key = req["apiKey"]
    if resp["apiKey"] != key:
        raise SchemaError("%s: request/response api keys differ" % api)
    for spec in (req, resp):
        valid = parse_range(spec["validVersions"])
        if valid[0] > lo or valid[1] < hi:
            raise SchemaError("%s: served %d-%d outside valid %s" % (
                spec["name"], lo, hi, spec["validVersions"]))
    flex = clip(parse_range(req["flexibleVersions"]), lo, hi)
    if flex != clip(parse_range(resp["flexibleVersions"]), lo, hi):
        raise SchemaError("%s: request/response flexible versions differ" % api)
    if flex is not None and flex[1] != hi:
        raise SchemaError("%s: flexible versions must run to the top" % api)
    d = Deriver(api, lo, hi)
    lines = [
        "# %s: Kafka api key %d, versions %d-%d as served by Sluice." % (api, key, lo, hi),
        "# Derived from Kafka's message specs by scripts/derive_schemas.py; see",
        "# docs/internals/protocol.md for the format.",
        "",
        "api %s key=%d versions=%d-%d flexible=%s" % (api, key, lo, hi, fmt_range(flex)),
        "",
    ]
    lines += d.message(req, flex)
    lines.append("")
    lines += d.message(resp, flex)
    return "\n".join(lines) + "\n"


def derive_errors(src):
    out = [
        "# Kafka protocol error codes: code, name, and `retriable` when clients",
        "# may retry the request. Derived from error-codes.tsv by",
        "# scripts/derive_schemas.py.",
        "",
    ]
    with open(os.path.join(src, "error-codes.tsv"), encoding="utf-8") as f:
        rows = f.read().splitlines()
    seen = set()
    for row in rows[1:]:
        if not row.strip():
            continue
        cols = row.split("\t")
        code, name, retriable = int(cols[0]), cols[1], cols[2]
        if not re.match(r"^[A-Z][A-Z0-9_]*$", name) or code in seen:
            raise SchemaError("bad error row %r" % row)
        seen.add(code)
        out.append("error %d %s%s" % (code, name, " retriable" if retriable == "yes" else ""))
    return "\n".join(out) + "\n"


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = argv[1] if len(argv) > 1 else os.path.join(root, "..", "shared", "kafka-protocol")
    dst = os.path.join(root, "src", "kafka", "schema")
    os.makedirs(dst, exist_ok=True)
    try:
        files = {api + ".sch": derive_api(src, api, lo, hi) for api, lo, hi in SERVED}
        files["errors.sch"] = derive_errors(src)
    except (SchemaError, OSError, ValueError, KeyError) as e:
        print("derive_schemas: %s" % e, file=sys.stderr)
        return 1
    for name in sorted(files):
        with open(os.path.join(dst, name), "w", encoding="utf-8") as f:
            f.write(files[name])
    print("derive_schemas: wrote %d files to %s" % (len(files), os.path.relpath(dst, root)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
