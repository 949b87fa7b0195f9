"""Summarizes one ncu run of run.sh: the kernel's duration and DRAM throughput, and its SMs'
active cycles (a warp resident) against the elapsed cycles: the mean over all SMs and the
busiest SM. With P programs on P of the 132 SMs, mean × 132 / P is how busy the used SMs were on
average; well below the busiest one, some finished (or started) early."""
import re
import sys

text = open(sys.argv[1]).read()


def metric(name):
    m = re.search(re.escape(name) + r"\s+\S+\s+([0-9.,]+)", text)
    return float(m.group(1).replace(",", "")) if m else None


duration, dram = metric("gpu__time_duration.sum"), metric("dram__throughput.avg.pct_of_peak_sustained_elapsed")
elapsed, mean, busiest = (metric(f"sm__cycles_{w}") for w in ("elapsed.max", "active.avg", "active.max"))
if None in (duration, dram, elapsed, mean, busiest):
    print("  metrics missing (see the raw file)")
    sys.exit(0)
print(f"  {duration:.2f} us, DRAM {dram:.1f}% of peak")
print(f"  SM active / elapsed: mean over all SMs {mean / elapsed:.3f}, busiest SM {busiest / elapsed:.3f}")
