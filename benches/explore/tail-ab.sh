#!/usr/bin/env bash
# On the GPU machine (carry .device, the `cli` payload): the backward of one shape benched with
# each of several configs in turn, ROUNDS rounds, alternating. Each config replaces the tuned
# backward's winner for that shape in a copy of benches/tuned-h100.json (re-keyed to this
# checkout's kernels.rs), imported into a cache of its own.
#   bash benches/explore/tail-ab.sh SHAPE 'CONFIG' 'CONFIG' ...
#   SHAPE: MxN:dtype (1024x262144:bf16); CONFIG: NAME=VALUE ... ('tuned' keeps the winner),
#   optionally after 'VAR=VALUE ... |': environment variables for that config's runs.
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/tritonite-out}"; mkdir -p "$OUT"
xz -d -k -f .device/tritonite.xz && chmod +x .device/tritonite
T=.device/tritonite
shape="$1"; shift
ROUNDS="${ROUNDS:-2}"
n=0
for cfg in "$@"; do
  n=$((n + 1))
  python3 - "$shape" "${cfg#*|}" "/tmp/tail-ab-$n.json" <<'PY'
import json, sys
shape, cfg, out = sys.argv[1:]
dims, dtype = shape.split(':')
m, n = (int(v) for v in dims.split('x'))
h = 0xcbf29ce484222325
for b in open('kernels/src/rmsnorm/kernels.rs', 'rb').read():
    h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
d = json.load(open('benches/tuned-h100.json'))
entries = d['entries'] if isinstance(d, dict) else d
for e in entries:
    k = e['key']
    if k['kernel'].startswith('rmsnorm'):
        k['kernel_hash'] = h
    if cfg.strip() != 'tuned' and k['kernel'] == 'rmsnorm-bwd' and k['shape'] == {'M': m, 'N': n} \
            and k['features']['x'] == dtype:
        e['winner'] = {kv.split('=')[0]: int(kv.split('=')[1]) for kv in cfg.split()}
json.dump(d, open(out, 'w'))
PY
  rm -rf "/tmp/tail-ab-cache-$n"
  TRITONITE_CACHE_DIR="/tmp/tail-ab-cache-$n" $T cache import "/tmp/tail-ab-$n.json" > /dev/null
done
for r in $(seq "$ROUNDS"); do
  n=0
  for cfg in "$@"; do
    n=$((n + 1))
    log="$OUT/tail-ab-$n-$r.log"
    vars=""; case "$cfg" in *"|"*) vars="${cfg%%|*}" ;; esac
    env $vars TRITONITE_CACHE_DIR="/tmp/tail-ab-cache-$n" $T bench --shapes "$shape" > "$log" 2>&1
    echo "== round $r config $n ($cfg): $(grep -E "^\| [0-9]" "$log" | head -1 | awk -F'|' '{print $8}')"
  done
done
