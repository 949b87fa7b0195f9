xz -dk .device/tritonite.xz && chmod +x .device/tritonite
export TRITONITE_CACHE_DIR=/tmp/tune-cache
SH="16384x32768:bf16,4096x65536:bf16,1024x262144:bf16"
timeout 420 .device/tritonite autotune --kernel all --shapes "$SH" > $OUT/autotune.md 2> /tmp/progress.txt; echo autotune rc $?
cat $OUT/autotune.md
python3 - <<'PY' > $OUT/candidates.txt
import re
t=open('/tmp/progress.txt',errors='replace').read()
rows=[]
for part in re.split(r'[\r\n]', t):
    part=re.sub(r'\x1b\[2K','',part)
    m=re.match(r'(\S+ \S+ \S+).*?\] (\d+)/(\d+) (sweep|final) (.*) -> (.*)$', part)
    if m: rows.append((m.group(1), m.group(4), m.group(5), m.group(6)))
seen=set(); out={}
for r in rows:
    if r in seen: continue
    seen.add(r); out.setdefault(r[0],[]).append(r)
for k,v in out.items():
    def us(x):
        try: return float(x[3].split()[0])
        except: return 1e9
    v=sorted(v,key=us)
    print('##',k,len(v))
    for r in v[:10]: print('  ',r[1],r[2],r[3])
    cl=[r for r in v if 'CLUSTER=1 ' not in r[2]][:6]
    print('  cluster best:'); [print('    ',r[1],r[2],r[3]) for r in cl]
PY
head -c 6000 $OUT/candidates.txt
.device/tritonite cache export $OUT/tuned.json >/dev/null
timeout 120 .device/tritonite bench --shapes "$SH" > $OUT/bench.log 2>&1; grep -E "fwd .* us" $OUT/bench.log
