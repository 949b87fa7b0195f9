#!/usr/bin/env bash
# On the GPU machine: the main job, the peers (shared/anchors/peers.py: torch, torch.compile, and
# liger and quack when their wheels came along) and our benchmark merged with them, in one call.
#
# Here first:  bash scripts/device-build.sh cli     # .device/: the CLI (~31.5 MB xz) + peers.py
#              bash scripts/peers-wheels.sh         # .device-site1/ (48.2 MB), .device-site2/ (22.5 MB)
# Then two device calls, the second while the machine is still warm (~30 s after the first):
#   call 1: carry [".device-site1"]                  command: bash scripts/device-bench.sh site
#           keeps the first part of nvidia-cutlass-dsl-libs-cu13 (quack's big library) on the machine
#   call 2: carry [".device", ".device-site2"]       command: bash scripts/device-bench.sh
#           (timeout_s 600) untars that library (its second part is in .device-site2) and unzips
#           the other wheels into $SITE (/tmp/tritonite-site), runs peers.py with
#           PYTHONPATH=$SITE:$SITE/nvidia_cutlass_dsl/dsl_packages, then
#           `tritonite bench --peers $OUT/peers.json --out $OUT`; the merged table is printed last.
# Back in $OUT: main_job.log, peers.log, peers.json, bench.log, bench.json, bench.md, bench.png.
# Without call 1 (or after the machine went cold) quack is unavailable and the rest still runs;
# without .device-site2 only torch and torch.compile run. Only call 2 with carry [".device"] and
# PEERS=torch,torch.compile is the cheap everyday run.
#
# `bash scripts/device-bench.sh ops` (carry [".device", ".device-site2"], after call 1 for quack):
# LayerNorm, softmax and cross-entropy instead: benches/peers_ops.py, then `tritonite bench --ops
# --peers $OUT/peers_ops.json --out $OUT/ops`.
#
# Environment: PEERS (comma-separated subset of torch,torch.compile,liger,quack; `none` skips peers;
# default all that import), SHAPES (MxN:dtype,... for our bench; peers.py always runs its table),
# PEERS_QUICK=1 (peers.py's first 6 shapes only), PEERS_TIMEOUT (seconds, default 420: peers.py is
# stopped then and the rows it finished are kept), TUNED (autotune export imported before our bench,
# default benches/tuned-h100.json; `none` to bench the heuristics), SITE.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
SITE="${SITE:-/tmp/tritonite-site}"

# The cutlass-dsl libraries come in two parts (scripts/peers-wheels.sh): call 1 keeps the first
# in $SITE.parts, call 2 brings the second in .device-site2 and unpacks both.
unpack_site1() {
  local p1 p2
  [ -e "$SITE/.site1-done" ] && return 0
  p1=$(ls .device-site1/*.part1 2>/dev/null | head -1)
  if [ -n "$p1" ]; then
    mkdir -p "$SITE.parts" && cp "$p1" "$SITE.parts/" && echo "site: kept $(basename "$p1") for call 2"
  fi
  p1=$(ls "$SITE.parts"/*.part1 2>/dev/null | head -1)
  p2=$(ls .device-site2/*.part2 2>/dev/null | head -1)
  [ -n "$p1" ] && [ -n "$p2" ] || return 1
  mkdir -p "$SITE" && cat "$p1" "$p2" | xz -dc | tar -C "$SITE" -xf - && touch "$SITE/.site1-done" \
    && echo "site: unpacked $(basename "${p1%.part1}") into $SITE"
}

if [ "${1:-}" = site ]; then
  unpack_site1 || true
  ls "$SITE.parts"/*.part1 >/dev/null 2>&1 || { echo "site: no .device-site1/*.part1 here (carry .device-site1)" >&2; exit 1; }
  exit 0
fi
unpack_site1 || true
if ls .device-site2/*.whl >/dev/null 2>&1; then
  mkdir -p "$SITE"
  for w in .device-site2/*.whl; do python3 -m zipfile -e "$w" "$SITE" || echo "site: could not unzip $w"; done
  echo "site: unzipped $(ls .device-site2/*.whl | wc -l) wheels into $SITE"
fi
[ -e "$SITE/.site1-done" ] || echo "site: no cutlass-dsl cu13 libraries in $SITE (call 1 not made here): quack will be unavailable"

xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
T=.device/tritonite

if [ "${1:-}" = ops ]; then
  pypath="${PYTHONPATH:-}"
  [ -d "$SITE" ] && pypath="$SITE:$SITE/nvidia_cutlass_dsl/dsl_packages${pypath:+:$pypath}"
  rm -f "$OUT/peers_ops.json"
  OUT="$OUT" PYTHONPATH="$pypath" PYTHONUNBUFFERED=1 timeout "${PEERS_TIMEOUT:-420}" \
    python3 benches/peers_ops.py > "$OUT/peers_ops.log" 2>&1
  echo "peers_ops exit $?"; grep -E "unavailable|^device" "$OUT/peers_ops.log"
  peers_arg=(); [ -s "$OUT/peers_ops.json" ] && peers_arg=(--peers "$OUT/peers_ops.json")
  $T bench --ops ${SHAPES:+--shapes "$SHAPES"} ${peers_arg[@]+"${peers_arg[@]}"} --out "$OUT/ops" 2>&1 | tee "$OUT/bench_ops.log"
  echo "bench exit ${PIPESTATUS[0]}"
  exit 0
fi
$T > "$OUT/main_job.log" 2>&1; echo "main job exit $?"; tail -6 "$OUT/main_job.log"

# The peers, first: their rows go to $OUT/peers.json.
rm -f "$OUT/peers.json"
if [ "${PEERS:-}" != none ]; then
  pypath="${PYTHONPATH:-}"
  [ -d "$SITE" ] && pypath="$SITE:$SITE/nvidia_cutlass_dsl/dsl_packages${pypath:+:$pypath}"
  peers_py=.device/peers.py; [ -f "$peers_py" ] || peers_py=../shared/anchors/peers.py
  OUT="$OUT" PYTHONPATH="$pypath" PYTHONUNBUFFERED=1 \
    timeout "${PEERS_TIMEOUT:-420}" python3 "$peers_py" ${PEERS_QUICK:+quick} > "$OUT/peers.log" 2>&1
  rc=$?; echo "peers exit $rc$( [ $rc = 124 ] && echo ' (stopped at PEERS_TIMEOUT)')"
  grep -E "unavailable|^device" "$OUT/peers.log"
  if [ ! -s "$OUT/peers.json" ]; then
    # Stopped or failed part-way: keep the rows it printed (one JSON object per line).
    python3 - "$OUT/peers.log" "$OUT/peers.json" <<'EOF'
import json, re, sys
rows, device, copy = [], "", None
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"device (.*?)  copy (\d+) GB/s", line)
    if m:
        device, copy = m.group(1), float(m.group(2))
    elif line.startswith('{"peer"'):
        rows.append(json.loads(line))
if rows:
    json.dump({"device": device, "copy_GBs": copy, "rows": rows}, open(sys.argv[2], "w"), indent=1)
    print(f"peers: kept {len(rows)} rows from the log")
EOF
  fi
  [ -s "$OUT/peers.json" ] || { echo "peers: FAILED, no rows (see peers.log); our bench runs alone"; tail -5 "$OUT/peers.log"; }
fi

# Ours, with the tuned configs when their export is here, merged with the peers.
export TRITONITE_CACHE_DIR="${TRITONITE_CACHE_DIR:-/tmp/tritonite-cache}"
tuned="${TUNED:-benches/tuned-h100.json}"
[ "$tuned" != none ] && [ -f "$tuned" ] && { $T cache import "$tuned" || echo "could not import $tuned: heuristic configs"; }
peers_arg=(); [ -s "$OUT/peers.json" ] && peers_arg=(--peers "$OUT/peers.json")
$T bench ${SHAPES:+--shapes "$SHAPES"} ${peers_arg[@]+"${peers_arg[@]}"} --out "$OUT" 2>&1 | tee "$OUT/bench.log"
echo "bench exit ${PIPESTATUS[0]}"
