"""One ncu report's raw page (`ncu --import R --page raw --csv`) in a few lines: time, DRAM,
grid and occupancy, instructions by kind, and the warp stall reasons (cycles per issued
instruction), largest first. Usage: summary.py RAW_CSV"""
import csv, sys

KEEP = ["gpu__time_duration.sum", "dram__throughput.avg.pct_of_peak_sustained_elapsed", "dram__bytes_read.sum",
        "dram__bytes_write.sum", "launch__grid_size", "launch__block_size", "launch__registers_per_thread",
        "launch__shared_mem_per_block_dynamic", "launch__occupancy_limit_registers",
        "launch__occupancy_limit_shared_mem", "sm__ctas_launched.min", "sm__ctas_launched.max",
        "sm__cycles_active.avg", "sm__cycles_active.max", "sm__warps_active.avg.pct_of_peak_sustained_active",
        "smsp__issue_active.avg.pct_of_peak_sustained_active", "smsp__inst_executed.sum",
        "smsp__inst_executed_op_global_ld.sum", "smsp__inst_executed_op_shared_ld.sum",
        "smsp__inst_executed_op_ldgsts.sum", "l1tex__data_pipe_lsu_wavefronts_mem_shared.sum"]
rows = [r for r in csv.reader(open(sys.argv[1])) if r]
i = next((i for i, r in enumerate(rows) if r[0] == "ID"), None)
if i is None:
    sys.exit("no metrics")
h, u, v = rows[i], rows[i + 1], rows[i + 2]
got = {name: (val, unit) for name, unit, val in zip(h, u, v)}
for k in KEEP:
    if k in got:
        print(f"  {k} = {got[k][0]} {got[k][1]}")
stalls = []
for name, (val, _) in got.items():
    if name.startswith("smsp__average_warps_issue_stalled_") and name.endswith("_per_issue_active.ratio"):
        try:
            stalls.append((float(val.replace(",", "")), name[len("smsp__average_warps_issue_stalled_"):-len("_per_issue_active.ratio")]))
        except ValueError:
            pass
stalls.sort(reverse=True)
print("  stalls (warp cycles per issued instruction): " + ", ".join(f"{n} {s:.2f}" for s, n in stalls if s >= 0.05))
