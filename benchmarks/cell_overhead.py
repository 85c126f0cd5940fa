"""What nbcost adds to every cell, against a bare shell and ipython-autotime, in one run.

    python benchmarks/cell_overhead.py [--cells 2000] [--rounds 7] [--load N] [--json FILE]

Long-lived subprocesses (bare; three empty cell hooks, the floor of any extension that hooks
cells; autotime; nbcost; and bare and nbcost in ipykernel's shell in process, where nbcost's
display channel to the lab extension is open and each cell sends its final message), each with
its own shell, take turns running ``--cells`` trivial cells, round after round, so that all see
the same machine load; each keeps its fastest round. The figure is wall time on the cell's thread: what a
user waits. ``--load N`` keeps N busy-loop processes running meanwhile (both cores busy with
other work: each handoff of the GIL to another thread then waits for a scheduler slice).
Goals: idle, ≤ 50 µs added per cell and no more than autotime adds; loaded, ≤ 100 µs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from figures import write as write_figure

CHILD = r"""
import contextlib, io, sys, time
from IPython.core.interactiveshell import InteractiveShell
variant, cells = sys.argv[1], int(sys.argv[2])
if variant.startswith("kernel-"):  # ipykernel's shell, in process: nbcost's display channel
    from ipykernel.inprocess.manager import InProcessKernelManager  # (the comm) is open

    manager = InProcessKernelManager()
    manager.start_kernel()
    ip, variant = manager.kernel.shell, variant[len("kernel-"):]
else:
    ip = InteractiveShell.instance()
quiet = io.StringIO()  # autotime prints a line per cell; keep that out of the pipe
with contextlib.redirect_stdout(quiet):
    if variant == "hooks":  # the floor: IPython calling three hooks that do nothing
        for event in ("pre_run_cell", "post_execute", "post_run_cell"):
            ip.events.register(event, (lambda *a: None) if event != "post_execute"
                               else (lambda: None))
    elif variant != "bare":
        ip.run_cell("%load_ext " + variant, store_history=True)
    for _ in range(200):  # warm up; let one-time background start-up work finish
        ip.run_cell("x = 1", store_history=True)
time.sleep(2)
print("ready", flush=True)
for _ in sys.stdin:
    with contextlib.redirect_stdout(quiet):
        start = time.perf_counter()
        for _ in range(cells):
            ip.run_cell("x = 1", store_history=True)
        elapsed = time.perf_counter() - start
    quiet.seek(0); quiet.truncate()
    print(elapsed / cells * 1e6, flush=True)
"""

VARIANTS = {"bare": "bare", "hooks": "hooks", "autotime": "autotime", "nbcost": "nbcost",
            "kernel bare": "kernel-bare", "kernel nbcost": "kernel-nbcost"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--load", type=int, default=0, help="busy-loop processes meanwhile")
    parser.add_argument("--json", help="append the figures to this file (for make bench)")
    args = parser.parse_args()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                for _ in range(args.load)]
    try:
        best = run(args)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    added_nbcost = best["nbcost"] - best["bare"]
    added_autotime = best["autotime"] - best["bare"]
    where = f"{args.load} busy processes" if args.load else "no added load"
    print(f"{args.cells} trivial cells per round, best of {args.rounds} interleaved rounds, "
          f"{where}:")
    for name, us in best.items():
        print(f"  {name:<13} {us:8.1f} µs/cell")
    print(f"added by three empty cell hooks (the floor for nbcost's hooks): "
          f"{best['hooks'] - best['bare']:6.1f} µs/cell")
    print(f"added by autotime: {added_autotime:6.1f} µs/cell")
    goal = 100 if args.load else 50
    print(f"added by nbcost:   {added_nbcost:6.1f} µs/cell  (goal ≤ {goal}"
          f"{'' if args.load else ', and ≤ autotime'})")
    in_kernel = best["kernel nbcost"] - best["kernel bare"]
    print(f"added by nbcost in ipykernel's shell, its display channel open (what a cell pays "
          f"with the lab extension: the live badge's final message): {in_kernel:6.1f} µs/cell")
    write_figure(args.json, f"added per trivial cell in a kernel with the display channel, "
                 f"{where}", round(in_kernel, 1), "µs", "—", True,
                 "ipykernel's shell in process; each cell's final message to the lab extension")
    write_figure(args.json, f"added per trivial cell, {where}", round(added_nbcost, 1), "µs",
                  f"≤ {goal} µs" + ("" if args.load else ", and ≤ autotime's"),
                  added_nbcost <= goal and (args.load > 0 or added_nbcost <= added_autotime),
                  f"autotime adds {added_autotime:.1f} µs in the same run; three empty hooks "
                  f"{best['hooks'] - best['bare']:.1f} µs")


def run(args) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "NBCOST_HOME": home}
        children = {
            name: subprocess.Popen([sys.executable, "-c", CHILD, extension, str(args.cells)],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env=env, stderr=subprocess.DEVNULL)
            for name, extension in VARIANTS.items()
        }
        for child in children.values():
            assert child.stdout.readline().strip() == "ready"
        best = {name: float("inf") for name in children}
        for _ in range(args.rounds):
            for name, child in children.items():
                child.stdin.write("go\n")
                child.stdin.flush()
                best[name] = min(best[name], float(child.stdout.readline()))
        for child in children.values():
            child.stdin.close()
            child.wait()
    return best


if __name__ == "__main__":
    main()
