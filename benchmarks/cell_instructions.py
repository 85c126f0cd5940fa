"""What nbcost adds to every cell in machine instructions: the per-cell figure without noise.

    python benchmarks/cell_instructions.py [--json FILE]

Wall time on a shared 2-core VM moves by tens of µs a cell from one minute to the next, more
than the figures ``cell_overhead.py`` compares. Instructions do not: valgrind's cachegrind
counts them, every thread included (nbcost's spend-log writer too), with the L1 data misses
that make an instruction cost more inside a cell than in a tight loop. Each variant (bare
shell, ipython-autotime, nbcost; ipykernel's shell bare and with nbcost, its display channel
to the lab extension open) runs 200 and then 1,200 trivial cells in a fresh process; the
difference over the 1,000 extra cells is its per-cell figure, start-up cancelled out. The goal
mirrors the wall-time one: no more than autotime adds. Needs valgrind (``apt-get install
valgrind``); about three minutes.
"""

from __future__ import annotations

import argparse

from cachegrind import COUNTERS, available, per_unit
from child_shell import SHELL
from figures import write as write_figure

CHILD = r"""
import contextlib, io, sys, threading
variant, cells = sys.argv[1], int(sys.argv[2])
kind, _, extension = variant.rpartition(" ")  # "kernel nbcost": nbcost in ipykernel's shell
""" + SHELL + r"""
with contextlib.redirect_stdout(io.StringIO()):
    if extension != "bare":
        ip.run_cell(f"%load_ext {extension}", store_history=True)
        for thread in threading.enumerate():  # nbcost's tokenizer loads once, in the background
            if thread.name == "nbcost-tiktoken":
                thread.join()
    for _ in range(cells):
        ip.run_cell("x = 1", store_history=True)
    if extension == "nbcost":
        from nbcost.ipython import extension_for

        extension_for(ip).session.flush()  # the writer's work for every cell, counted
"""

CELLS = (200, 1200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="append the figures to this file (for make bench)")
    args = parser.parse_args()
    if not available():
        return
    per_cell = per_unit(CHILD, ("bare", "autotime", "nbcost", "kernel bare", "kernel nbcost"),
                        CELLS)
    added = {extension: {name: per_cell[extension][name] - per_cell["bare"][name]
                         for name in COUNTERS} for extension in ("autotime", "nbcost")}
    print(f"per trivial cell, counted by cachegrind (bare shell: "
          f"{per_cell['bare']['instructions']:,.0f} instructions):")
    for extension, figures in added.items():
        print(f"  added by {extension:<8}: {figures['instructions']:9,.0f} instructions, "
              f"{figures['L1 data misses']:7,.0f} L1 data misses")
    kernel = {name: per_cell["kernel nbcost"][name] - per_cell["kernel bare"][name]
              for name in COUNTERS}
    print(f"  added by nbcost in ipykernel's shell, its display channel open (each cell's final "
          f"message to the lab extension): {kernel['instructions']:9,.0f} instructions, "
          f"{kernel['L1 data misses']:7,.0f} L1 data misses")
    nbcost, autotime = added["nbcost"]["instructions"], added["autotime"]["instructions"]
    write_figure(args.json, "instructions added per trivial cell (cachegrind, every thread)",
                 round(nbcost), "instructions", "≤ autotime's", nbcost <= autotime,
                 f"autotime adds {autotime:,.0f}; bare shell "
                 f"{per_cell['bare']['instructions']:,.0f} a cell")
    write_figure(args.json, "instructions added per trivial cell in a kernel with the display "
                 "channel (cachegrind, every thread)", round(kernel["instructions"]),
                 "instructions", "—", None,
                 f"ipykernel's shell in process; bare "
                 f"{per_cell['kernel bare']['instructions']:,.0f} a cell")


if __name__ == "__main__":
    main()
