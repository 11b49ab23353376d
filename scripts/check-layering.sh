#!/usr/bin/env bash
# Enforce the workspace's layering from `cargo metadata`:
#
#  1. `card-core` (the pure protocol layer) depends on no other workspace package, through any
#     kind of dependency (normal, dev or build), and none of its transitive normal dependencies
#     is one of CORE_FORBIDDEN (I/O, async runtimes, GUI, storage, network).
#  2. No workspace package other than `terminal-app` depends, through its transitive normal
#     dependencies, on a GUI crate (GUI_CRATES).
#
# Prints each violation with the dependency path and exits 1; prints "layering ok" and exits 0
# otherwise; exits 2 if cargo metadata fails. Generic over whatever members the workspace has.
#
# Usage: scripts/check-layering.sh [cargo metadata options, e.g. --locked or --manifest-path P]
#
# The graph is cargo metadata's resolve with --all-features, i.e. with the features of all
# workspace members unified: it can only over-approximate a package's real dependencies (a
# reported path may need a feature another member enables), never miss one.
set -euo pipefail

CORE=card-core
CORE_FORBIDDEN="tokio pcsc pcsc-sys rusqlite egui eframe egui_kittest reqwest axum serialport"
GUI_OWNER=terminal-app
GUI_CRATES="egui eframe egui_kittest"

cd "$(dirname "$0")/.."

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if ! cargo metadata --format-version 1 --no-deps "$@" >"$tmp/members.json" 2>"$tmp/err" ||
    ! cargo metadata --format-version 1 --all-features "$@" >"$tmp/full.json" 2>>"$tmp/err"; then
    cat "$tmp/err" >&2
    echo "check-layering: cargo metadata failed" >&2
    exit 2
fi

# The check exists twice, in jq (used when installed) and in python3 (always on Debian); both
# print the same sorted, de-duplicated violation lines. CHECK_LAYERING_IMPL=jq|python forces one.
check_with_jq() {
    jq -r -n \
        --slurpfile members "$tmp/members.json" \
        --slurpfile full "$tmp/full.json" \
        --arg core "$CORE" \
        --arg core_forbidden "$CORE_FORBIDDEN" \
        --arg gui_owner "$GUI_OWNER" \
        --arg gui "$GUI_CRATES" '
        ($members[0]) as $m
        | ($full[0]) as $f
        | ($m.packages | map(select(.id as $id | $m.workspace_members | index($id)))) as $ws
        | ($ws | map(.name)) as $ws_names
        | ($ws | map(.manifest_path | sub("/Cargo.toml$"; ""))) as $ws_dirs
        | ($f.packages | map({key: .id, value: .name}) | from_entries) as $name
        | ($f.resolve.nodes | map({key: .id, value: .deps}) | from_entries) as $deps
        | ($core_forbidden | split(" ")) as $core_bad
        | ($gui | split(" ")) as $gui_bad
        | def normal_deps($id):
              [($deps[$id] // [])[] | select(any(.dep_kinds[]; .kind == null)) | .pkg];
          # Breadth-first over normal edges; returns {id: parent id or null}.
          def reach($start):
              {seen: {($start): null}, queue: [$start]}
              | until(.queue | length == 0;
                    .queue[0] as $cur
                    | .queue |= .[1:]
                    | reduce normal_deps($cur)[] as $d (.;
                        if .seen | has($d) then . else .seen[$d] = $cur | .queue += [$d] end))
              | .seen;
          def path($seen; $id):
              if $seen[$id] == null then [$name[$id]]
              else path($seen; $seen[$id]) + [$name[$id]] end;
          def offenders($pkg; $bad):
              (reach($pkg.id)) as $seen
              | $seen | keys[]
              | select(. != $pkg.id and ($name[.] as $n | $bad | index($n)))
              | "\($pkg.name) depends on \($name[.]): \(path($seen; .) | join(" -> "))";
          [
            # Rule 1a: direct dependencies of card-core (any kind) on workspace packages.
            ($ws[] | select(.name == $core) | .dependencies[]
             | select((.path != null and (.path as $p | $ws_dirs | index($p)))
                      or (.path != null and (.name as $n | $ws_names | index($n))))
             | "\($core) must not depend on workspace package \(.name) (\(.kind // "normal") dependency)"),
            # Rule 1b: indirect normal dependencies of card-core on workspace packages (the
            # direct ones are reported by 1a).
            ($ws[] | select(.name == $core) as $pkg
             | (reach($pkg.id)) as $seen
             | $seen | keys[]
             | select(. as $id | . != $pkg.id and $seen[$id] != $pkg.id
                      and ($m.workspace_members | index($id)))
             | "\($core) must not depend on workspace package \($name[.]): \(path($seen; .) | join(" -> "))"),
            ($ws[] | select(.name == $core) | offenders(.; $core_bad) | "forbidden in \($core): " + .),
            # Rule 2: GUI crates only in terminal-app.
            ($ws[] | select(.name != $gui_owner) | offenders(.; $gui_bad)
             | "GUI crate outside \($gui_owner): " + .)
          ] | unique[]
        '
}

check_with_python() {
    python3 - "$tmp/members.json" "$tmp/full.json" "$CORE" "$CORE_FORBIDDEN" "$GUI_OWNER" "$GUI_CRATES" <<'PY'
import json
import os
import sys
from collections import deque

members_path, full_path, core, core_forbidden, gui_owner, gui = sys.argv[1:7]
with open(members_path) as fh:
    m = json.load(fh)
with open(full_path) as fh:
    f = json.load(fh)
core_bad = set(core_forbidden.split())
gui_bad = set(gui.split())

ws_ids = set(m["workspace_members"])
ws = [p for p in m["packages"] if p["id"] in ws_ids]
ws_names = {p["name"] for p in ws}
ws_dirs = {os.path.dirname(p["manifest_path"]) for p in ws}
name = {p["id"]: p["name"] for p in f["packages"]}
deps = {n["id"]: n["deps"] for n in f["resolve"]["nodes"]}


def normal_deps(pkg_id):
    return [d["pkg"] for d in deps.get(pkg_id, [])
            if any(k["kind"] is None for k in d["dep_kinds"])]


def reach(start):
    seen = {start: None}
    queue = deque([start])
    while queue:
        cur = queue.popleft()
        for d in normal_deps(cur):
            if d not in seen:
                seen[d] = cur
                queue.append(d)
    return seen


def path(seen, pkg_id):
    out = []
    while pkg_id is not None:
        out.append(name[pkg_id])
        pkg_id = seen[pkg_id]
    return " -> ".join(reversed(out))


def offenders(pkg, bad):
    seen = reach(pkg["id"])
    for pkg_id in seen:
        if pkg_id != pkg["id"] and name[pkg_id] in bad:
            yield f"{pkg['name']} depends on {name[pkg_id]}: {path(seen, pkg_id)}"


out = set()
for pkg in ws:
    if pkg["name"] != core:
        continue
    for d in pkg["dependencies"]:
        if d.get("path") is not None and (d["path"] in ws_dirs or d["name"] in ws_names):
            out.add(f"{core} must not depend on workspace package {d['name']} "
                    f"({d['kind'] or 'normal'} dependency)")
    seen = reach(pkg["id"])
    for pkg_id in seen:
        if pkg_id != pkg["id"] and seen[pkg_id] != pkg["id"] and pkg_id in ws_ids:
            out.add(f"{core} must not depend on workspace package {name[pkg_id]}: "
                    f"{path(seen, pkg_id)}")
    out.update(f"forbidden in {core}: {v}" for v in offenders(pkg, core_bad))
for pkg in ws:
    if pkg["name"] != gui_owner:
        out.update(f"GUI crate outside {gui_owner}: {v}" for v in offenders(pkg, gui_bad))
for line in sorted(out):
    print(line)
PY
}

impl="${CHECK_LAYERING_IMPL:-}"
if [ -z "$impl" ]; then
    if command -v jq >/dev/null 2>&1; then impl=jq; else impl=python; fi
fi
case "$impl" in
jq) violations="$(check_with_jq)" ;;
python) violations="$(check_with_python)" ;;
*)
    echo "check-layering: CHECK_LAYERING_IMPL must be jq or python" >&2
    exit 2
    ;;
esac

if ! python3 -c 'import json, sys
sys.exit(not any(p["name"] == sys.argv[2] for p in json.load(open(sys.argv[1]))["packages"]))' \
    "$tmp/members.json" "$CORE"; then
    echo "check-layering: warning: the workspace has no package named $CORE" >&2
fi

if [ -n "$violations" ]; then
    echo "layering violations:"
    printf '%s\n' "$violations" | sed 's/^/  /'
    exit 1
fi
echo "layering ok"
