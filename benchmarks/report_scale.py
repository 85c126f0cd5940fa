"""How ``nbcost report`` scales: a team's spend logs, 1,000,000 cells in 1,000 session files.

    python benchmarks/report_scale.py                 # 1,000,000 cells, 1,000 files
    python benchmarks/report_scale.py --records 50000 --files 50   # a quick run

Generates the logs in a temporary folder (lines shaped exactly as nbcost writes them: every cell
has LLM calls and GPU figures, sessions have GPU checkpoints and a session_end, one session in a
hundred was killed mid-cell), then times ``nbcost report --by user,model,day`` the way a user runs
it (a fresh process) and reads that process's peak memory; then the same for ``nbcost audit``
(the HTML audit of the same logs). Prints the figures and the goals (report ≤ 5 s, ≤ 1 GB;
audit ≤ 15 s); the baseline in the same run is ``wc -l`` over the same files (reading them
once, no parsing).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from figures import write as write_figure  # noqa: E402

MODELS = [("gpt-4o-mini", "openai", 0.15, 0.60, 0.075), ("gpt-4o", "openai", 2.5, 10.0, 1.25),
          ("claude-sonnet-4-5", "anthropic", 3.0, 15.0, 0.30),
          ("gemini-2.5-flash", "google", 0.30, 2.50, 0.075)]
USERS = [f"user{i:02d}" for i in range(20)]
GPU_RATE = 3.59 / 3600  # $/s, an H200


def _usd(micro: int) -> str:
    """Micro-dollars × 1e-6... as a decimal string with up to 8 places (integers: exact)."""
    whole, frac = divmod(micro, 10**8)
    return f"{whole}.{frac:08d}".rstrip("0").rstrip(".") if frac else str(whole)


def _iso(t: float) -> str:
    seconds = int(t)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((t - seconds) * 1e6):06d}Z"


def write_session(path: Path, index: int, cells: int, rng: random.Random, killed: bool) -> None:
    sid = f"{index:08x}" + "%024x" % rng.getrandbits(96)
    user = USERS[index % len(USERS)]
    common = (f'"session_id":"{sid}","notebook_path":"/home/{user}/work/nb{index % 50}.ipynb",'
              f'"notebook_id":null,"user":"{user}","team":"team{index % 5}",'
              f'"project":"p{index % 8}"')
    t = t0 = 1_790_000_000 + index * 3600.0 + rng.random() * 86400 * 30
    seq = 0
    lines = []

    def head(event: str, ts: float) -> str:
        nonlocal seq
        seq += 1
        return f'{{"schema":1,"id":"{sid[:16]}{seq:08x}","event":"{event}","ts":"{_iso(ts)}",{common}'

    lines.append(head("session_start", t) + f',"pid":1234,"python":"3.11.7","tags":{{}},'
                 f'"started_at":"{_iso(t)}"}}')
    tot = {"llm": 0, "gpu": 0, "calls": 0, "in": 0, "cr": 0, "out": 0, "held": 0.0, "busy": 0.0,
           "stall": 0.0, "under": 0.0}
    models_total: dict[str, list[int]] = {}
    for n in range(1, cells + 1):
        t += rng.random() * 2
        wid = f"{sid[:16]}{n:06x}"
        start = t
        tags = '{"exp":"e%d"}' % (n % 7) if n % 3 else "{}"
        window = (f'"window_id":"{wid}","parent_id":null,"kind":"cell","label":null,'
                  f'"tags":{tags},"cell_id":"c{n % 40}","execution_count":{n},'
                  f'"started_at":"{_iso(start)}"')
        lines.append(head("cell_start", start) + "," + window + "}")
        by_model: dict[str, list[int]] = {}
        for _ in range(1 + (n % 2)):
            name, provider, pin, pout, pcache = MODELS[rng.randrange(len(MODELS))]
            inp, cr, out = rng.randint(200, 4000), 0, rng.randint(20, 800)
            cr = inp // 2 if n % 4 == 0 else 0
            cost = int(((inp - cr) * pin + cr * pcache + out * pout) * 100)  # 1e-8 $
            t += rng.random() * 0.5
            lines.append(head("llm_call", t) + f',"cell_id":"c{n % 40}","execution_count":{n},'
                         f'"window_ids":["{wid}"],"meter":"llm","key":"{name}","quantities":'
                         f'{{"calls":1,"input_tokens":{inp},"cache_read_tokens":{cr},'
                         f'"cache_write_tokens":0,"output_tokens":{out},"reasoning_tokens":0,'
                         f'"errors":0,"estimated_calls":0}},"cost_usd":"{_usd(cost)}",'
                         f'"attributes":{{"provider":"{provider}","api":"chat","base_url":null,'
                         f'"request_model":"{name}","response_model":"{name}",'
                         f'"service_tier":null,"batch":false,"latency_s":0.4,"streaming":false,'
                         f'"status":"ok","usage_source":"api","request_hash":"{"ab" * 32}",'
                         f'"price_source":"genai-prices 0.2.3"}},"flags":[]}}')
            m = by_model.setdefault(name, [0] * 5)
            for i, v in enumerate((1, inp, cr, out, cost)):
                m[i] += v
        if killed and n == cells:
            break  # the kernel died inside this cell: no cell_end, no session_end
        t += rng.random() * 3
        wall = t - start
        busy = wall * rng.random()
        sm = busy * rng.random()
        gpu_cost = int(wall * GPU_RATE * 1e8)
        stall_usd, under_usd = int((wall - busy) * GPU_RATE * 1e8), int((busy - sm) * GPU_RATE * 1e8)
        llm_cost = sum(m[4] for m in by_model.values())
        q = [sum(m[i] for m in by_model.values()) for i in range(4)]
        keys = ",".join(f'"{k}":{{"cost_usd":"{_usd(m[4])}","calls":{m[0]},"input_tokens":{m[1]},'
                        f'"cache_read_tokens":{m[2]},"cache_write_tokens":0,"output_tokens":{m[3]},'
                        f'"reasoning_tokens":0,"errors":0,"estimated_calls":0}}'
                        for k, m in by_model.items())
        llm = (f'"llm":{{"quantities":{{"calls":{q[0]},"input_tokens":{q[1]},'
               f'"cache_read_tokens":{q[2]},"cache_write_tokens":0,"output_tokens":{q[3]},'
               f'"reasoning_tokens":0,"errors":0,"estimated_calls":0}},"cost_usd":"{_usd(llm_cost)}",'
               f'"unpriced":false,"by_key":{{{keys}}},"flags":[],"detail":{{}}}}')
        gpu = (f'"gpu":{{"quantities":{{"held_s":{wall:.6f},"gpus":1,"busy_s":{busy:.6f},'
               f'"sm_s":{sm:.6f},"energy_j":{wall * 300:.3f},"mem_peak_bytes":3221225472.0,'
               f'"stall_s":{wall - busy:.6f},"underfill_s":{busy - sm:.6f},"power_avg_w":300.0}},'
               f'"cost_usd":"{_usd(gpu_cost)}","unpriced":false,"by_key":{{"0:NVIDIA H200":'
               f'{{"held_s":{wall:.6f},"cost_usd":"{_usd(gpu_cost)}","busy_s":{busy:.6f}}}}},'
               f'"flags":[],"detail":{{"uncertainty_s":0.4,"energy_uncertainty_j":48.7,'
               f'"sample_period_s":0.2,"devices":["NVIDIA H200"],"rates":{{"0:NVIDIA H200":'
               f'{{"usd_per_hour":"3.59","source":"RunPod on-demand","as_of":"2026-03",'
               f'"model":"H200","fraction":1.0}}}},"waste_usd":{{"idle_between":"0",'
               f'"stall":"{_usd(stall_usd)}","underfill":"{_usd(under_usd)}"}},'
               f'"waste_unpriced":[],"waste_s":{{"stall":{wall - busy:.6f},'
               f'"underfill":{busy - sm:.6f}}}}}}}')
        lines.append(head("cell_end", t) + "," + window + f',"ended_at":"{_iso(t)}",'
                     f'"wall_s":{wall:.6f},"status":"ok","cost_usd":"{_usd(llm_cost + gpu_cost)}",'
                     f'"unpriced":false,"meters":{{{llm},{gpu}}},"flags":[]}}')
        for key, m in by_model.items():
            total = models_total.setdefault(key, [0] * 5)
            for i in range(5):
                total[i] += m[i]
        tot["llm"] += llm_cost
        tot["gpu"] += gpu_cost
        tot["held"] += wall
        if n % 5 == 0:  # the GPU is held the whole session, between cells too
            lines.append(head("gpu_checkpoint", t) + f',"meter":"gpu","cumulative":true,'
                         f'"quantities":{{"held_s":{t - t0:.6f},"gpus":1,'
                         f'"idle_between_s":{t - t0 - tot["held"]:.6f}}},'
                         f'"cost_usd":"{_usd(int((t - t0) * GPU_RATE * 1e8))}","unpriced":false,'
                         f'"flags":[],"since":0,"until":0,"held_now":true}}')
    if not killed:
        t += 1
        held = t - t0
        idle = held - tot["held"]
        session_gpu = int(held * GPU_RATE * 1e8)
        keys = ",".join(f'"{k}":{{"cost_usd":"{_usd(m[4])}","calls":{m[0]}}}'
                        for k, m in models_total.items())
        lines.append(head("session_end", t) + f',"ended_at":"{_iso(t)}","wall_s":1.0,'
                     f'"cost_usd":"{_usd(tot["llm"] + session_gpu)}","meters":{{"llm":{{'
                     f'"quantities":{{}},"cost_usd":"{_usd(tot["llm"])}","unpriced":false,'
                     f'"by_key":{{{keys}}}}},"gpu":{{"quantities":{{"held_s":{held:.6f},'
                     f'"idle_between_s":{idle:.6f}}},"cost_usd":"{_usd(session_gpu)}",'
                     f'"unpriced":false,"detail":{{"devices":["NVIDIA H200"],"waste_usd":{{'
                     f'"idle_between":"{_usd(session_gpu - tot["gpu"])}"}}}}}}}}}}')
    path.write_text("\n".join(lines) + "\n")


def generate(folder: Path, records: int, files: int, killed_every: int = 100) -> int:
    rng = random.Random(7)
    per = records // files
    for index in range(files):
        write_session(folder / f"s{index:05d}.jsonl", index, per, rng,
                      killed=killed_every > 0 and index % killed_every == killed_every - 1)
    return sum(p.stat().st_size for p in folder.iterdir())


def measure(argv: list[str]) -> tuple[float, int, str]:
    """Wall seconds and peak RSS (bytes) of one command, polled every 20 ms."""
    start = time.perf_counter()
    proc = psutil.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        while not done.is_set():
            try:
                peak = max(peak, sum(p.memory_info().rss
                                     for p in [proc, *proc.children(recursive=True)]))
            except psutil.Error:
                pass
            done.wait(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - start
    done.set()
    poller.join()
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}):\n{err}")
    return elapsed, peak, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000, help="cells in all (default 1,000,000)")
    parser.add_argument("--files", type=int, default=None, help="session files (default records/1000)")
    parser.add_argument("--keep", help="generate into this folder and keep it")
    parser.add_argument("--json", help="append the figures to this file (for make bench)")
    args = parser.parse_args()
    files = args.files or max(1, args.records // 1000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or Path(tmp) / "spend")
        folder.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        size = generate(folder, args.records, files)
        print(f"generated {args.records:,} cells in {files:,} session files, "
              f"{size / 2**20:,.0f} MiB, in {time.perf_counter() - began:.1f} s")
        os.environ["NBCOST_CACHE_DIR"] = str(Path(tmp) / "cache")  # a fresh digest store
        wc, _, _ = measure(["sh", "-c", f"cat {folder}/*.jsonl | wc -l"])
        command = [sys.executable, "-m", "nbcost.cli", "report", str(folder), "--by",
                   "user,model,day", "--format", "csv"]
        cold = measure(command)  # parses every log and writes its digest
        warm = [measure(command) for _ in range(3)]  # the logs unchanged: digests
        best = min(warm, key=lambda r: r[0])
        peak = max(r[1] for r in warm)
        print(f"baseline: reading the files once (cat | wc -l): {wc:.2f} s")
        print(f"nbcost report --by user,model,day, first run (parses every log): {cold[0]:.2f} s, "
              f"peak memory {cold[1] / 2**20:,.0f} MiB")
        print(f"nbcost report --by user,model,day, logs unchanged since: best of 3 {best[0]:.2f} s "
              f"(runs {', '.join(f'{r[0]:.2f}' for r in warm)}), peak memory {peak / 2**20:,.0f} MiB,"
              f" {best[0] / wc:.1f}x the baseline; {len(best[2].splitlines()) - 1:,} rows")
        met = best[0] <= 5 and max(peak, cold[1]) <= 2**30
        print(f"goal <= 5 s and <= 1 GiB ({os.cpu_count()} CPUs here): "
              f"{'met' if met else 'MISSED'} on unchanged logs; a first run over "
              f"{args.records:,} cells takes {cold[0]:.0f} s")
        scale = f"{args.records:,} cells in {files:,} logs"
        write_figure(args.json, f"nbcost report, logs read before ({scale})", round(best[0], 2),
                     "s", "≤ 5 s and ≤ 1 GiB", met, f"{peak / 2**20:,.0f} MiB; cat | wc -l {wc:.1f} s")
        write_figure(args.json, f"nbcost report, first run over new logs ({scale})",
                     round(cold[0], 1), "s", "≤ 5 s", cold[0] <= 5,
                     f"{cold[1] / 2**20:,.0f} MiB; parses and checks every line")
        audit = [sys.executable, "-m", "nbcost.cli", "audit", str(folder), "-o",
                 str(Path(tmp) / "audit.html")]
        runs = [measure(audit) for _ in range(3)]  # the report's runs warmed the cache
        best = min(runs, key=lambda r: r[0])
        print(f"nbcost audit: best of 3 {best[0]:.2f} s (runs {', '.join(f'{r[0]:.2f}' for r in runs)}), "
              f"peak memory {max(r[1] for r in runs) / 2**20:,.0f} MiB, {best[0] / wc:.1f}x the "
              f"baseline; goal <= 15 s: {'met' if best[0] <= 15 else 'MISSED'}")
        write_figure(args.json, f"nbcost audit ({scale})", round(best[0], 2), "s", "≤ 15 s",
                     best[0] <= 15, f"{max(r[1] for r in runs) / 2**20:,.0f} MiB")


if __name__ == "__main__":
    main()
