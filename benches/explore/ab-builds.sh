#!/usr/bin/env bash
# On the GPU machine: two or more builds of the CLI side by side in one call (carry .device holding
# ab.tar.xz: `bash benches/explore/ab-pack.sh OLD.xz NEW.xz` here packs two `device-build.sh cli`
# payloads into one xz stream whose dictionary spans both, ~35 MB, where two payloads would not
# fit the 64 MiB carry beside the tree), each benched with the tuned configs of $TUNED (default
# benches/tuned-h100.json; builds whose kernels.rs differ need a file with the entries of each
# kernel_hash) over SHAPES (default: the peer table),
# alternating a, b for ROUNDS rounds (default 2). Logs in $OUT (a-1.log, b-1.log, ...); prints
# each round's median µs a shape, forward and backward.
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
shapes=()
[ -n "${SHAPES:-}" ] && shapes=(--shapes "$SHAPES")
builds=$(xz -dc .device/ab.tar.xz | tar -tf - | tr '\n' ' ')
xz -dc .device/ab.tar.xz | tar -xf - -C .device
for b in $builds; do
  chmod +x ".device/$b"
  export TRITONITE_CACHE_DIR=/tmp/cache-ab-$b
  rm -rf "$TRITONITE_CACHE_DIR"
  ".device/$b" cache import "${TUNED:-benches/tuned-h100.json}" > /dev/null
done
for r in $(seq "${ROUNDS:-2}"); do
  for b in $builds; do
    TRITONITE_CACHE_DIR=/tmp/cache-ab-$b ".device/$b" bench "${shapes[@]}" > "$OUT/$b-$r.log" 2>&1
  done
done
python3 - "$OUT" "${ROUNDS:-2}" $builds <<'PY'
import re, sys
out, rounds, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def table(path):
    rows = {}
    for line in open(path):
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and re.match(r"\d+x\d+", cells[1]):
            rows[(cells[1], cells[2])] = line.strip()
    return rows
for r in range(1, rounds + 1):
    tables = {b: table(f"{out}/{b}-{r}.log") for b in builds}
    print(f"round {r}")
    for key in tables[builds[0]]:
        for b in builds:
            print(" ", b, tables[b].get(key, "-"))
PY
