#!/usr/bin/env bash
# Regenerates tenant-server/link/hot-symbols.txt: the functions of the
# release `taskharbor` binary that run at start-up, while idle, and on the
# agent hot path (auth, create, claim-next, heartbeat, comment, move,
# allowed, metrics). build.rs hands the list to the linker
# (`--symbol-ordering-file`), which lays these functions out next to each
# other at the start of .text. Why: the kernel maps code in 64 KiB
# "fault-around" chunks, so start-up code spread over the whole binary made
# ~80 % of .text resident in an idle server; packed together it is a few
# MiB (BENCHMARKS.md, "Idle RSS").
#
# Recorded with valgrind's callgrind, which sees every function executed
# (sampling would miss the many that run once). Names are mangled, as the
# linker matches them. Rerun after large changes to start-up or the hot
# path, or after a dependency or toolchain update; a stale list only costs
# memory (the queue bench reports how many listed names the binary still
# has), never correctness.
#
# Usage: tenant-server/link/generate.sh   (needs valgrind, curl, python3)
#        TASKHARBOR_BIN=path/to/taskharbor tenant-server/link/generate.sh
# The names are the same whether or not the build used the old list
# (ordering moves functions, it does not rename them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
command -v valgrind >/dev/null || { echo "generate.sh: valgrind not found (apt-get install valgrind)" >&2; exit 1; }
if [ -n "${TASKHARBOR_BIN:-}" ]; then
  bin=$TASKHARBOR_BIN # a release binary built elsewhere
else
  target=$(cd "$root" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  (cd "$root" && cargo build --release --locked -p tenant-server --bin taskharbor)
  bin=$target/release/taskharbor
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/th-hot.XXXXXX")
trap 'rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port

api() { # METHOD PATH [BODY]
  curl -sf -X "$1" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    ${3:+-d "$3"} "$base$2"
}

for round in first-start restart; do
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.$round" \
    "$bin" --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/log.$round" 2>&1 &
  pid=$!
  for _ in $(seq 1 300); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.5; done
  token=$(grep -o 'th_[A-Za-z0-9_-]*' "$work/log.first-start" | head -1)
  [ "$round" = first-start ] && api POST /api/boards '{"key":"HOT","name":"Hot path"}' >/dev/null
  for n in 1 2 3; do api POST /api/boards/1/items '{"title":"item '$n'","agent_ready":true}' >/dev/null; done
  for _ in 1 2; do
    id=$(api POST /api/claim-next '{"board_id":1}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
    api POST "/api/items/$id/heartbeat" '{}' >/dev/null
    api POST "/api/items/$id/comments" '{"body":"progress"}' >/dev/null
    api POST "/api/items/$id/move" '{"status":"done"}' >/dev/null
    api GET "/api/items/$id" >/dev/null
  done
  api GET /api/allowed >/dev/null
  curl -sf "$base/metrics" >/dev/null
  sleep 20 # the background workers' idle ticks
  kill -TERM "$pid"
  wait "$pid" || true
done

python3 - "$bin" "$work"/cg.* >"$here/hot-symbols.txt" <<'EOF'
# Functions of BIN in the callgrind files, most self cost first.
import re, sys
binary, files = sys.argv[1], sys.argv[2:]
cost = {}
for path in files:
    objs, fns = {}, {}
    ob = cob = fn = None
    skip = False
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        m = re.match(r"^(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line)
        if m:
            kind, key, name = m.groups()
            table = objs if kind.endswith("ob") else fns
            if name:
                table[key] = name
            if kind == "ob":
                ob = cob = objs.get(key)
            elif kind == "cob":
                cob = objs.get(key)
            elif kind == "fn":
                fn = fns.get(key) if ob == binary else None
                if fn:
                    cost.setdefault(fn, 0)
            else:  # cfn: a callee, executed too
                name = fns.get(key)
                if cob == binary and name:
                    cost.setdefault(name, 0)
                cob = ob
            continue
        if line.startswith("calls="):
            skip = True  # the next cost line is the call's inclusive cost
            continue
        if fn and line[:1].isdigit() or (fn and line[:1] in "+-*"):
            if skip:
                skip = False
                continue
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                cost[fn] += int(parts[1])
names = [n.split("'")[0] for n in sorted(cost, key=lambda n: -cost[n])]
seen = set()
for n in names:
    if n not in seen and not n.startswith("0x") and not n.startswith("("):
        seen.add(n)
        print(n)
EOF
echo "generate.sh: $(wc -l <"$here/hot-symbols.txt") functions in $here/hot-symbols.txt" >&2
