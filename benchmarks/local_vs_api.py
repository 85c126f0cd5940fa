"""A local model's measured price per million tokens next to API prices (docs/local-models.md).

On a machine with an NVIDIA GPU and PyTorch::

    PYTHONPATH=src python3 benchmarks/local_vs_api.py [--model PATH] [--rate USD_PER_GPU_HOUR]

generates with transformers in two windows, the way a notebook would: one batched (the GPU kept
busy) and one request at a time with a pause between (a GPU that mostly waits), and prints for
each the measured $/Mtok (input and output), output tokens/s and GPU busy share from nbcost's
local meter, then the same tokens priced on API models with the break-even busy share.

The model is ``--model`` (a local path; nothing is downloaded) or, by default, a GPT-2-small
shaped model with random weights: its speed and cost per token are those of a real 124M model,
its text is noise. Without a GPU it runs a tiny GPT-2 on the CPU over nbcost's fake NVML (from
``tests/``) and says so: the figures then only show the arithmetic. Exits 2 without PyTorch.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_MODELS = ("gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "claude-haiku-4-5", "gemini-2.5-flash")


def build_model(path: str | None, cuda: bool):
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

    if path:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    elif cuda:  # GPT-2 small's shape
        model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12, vocab_size=50257,
                                           n_positions=1024))
    else:
        model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=1000,
                                           n_positions=256))
    model = model.eval()
    if cuda:
        model = model.to("cuda", dtype=torch.float16)
    return model


def gpu_meter(cuda: bool):
    """The real GPU meter, or on a CPU machine the fake NVML with this process holding a fake
    H200 that is busy while generate() runs."""
    from nbcost.meters.gpu import GpuMeter

    if cuda:
        return GpuMeter(), None
    sys.path.insert(0, str(ROOT / "tests"))
    from fake_nvml import FakeGpu, live_meter

    fake = FakeGpu("GPU-fake-h200").process(os.getpid(), time.time() - 5)
    return live_meter(fake, tick_s=0.1), fake


def generate(model, batch: int, prompt_len: int, new_tokens: int, fake, cuda: bool) -> None:
    import torch

    vocab = model.config.vocab_size
    ids = torch.randint(1, vocab - 1, (batch, prompt_len))
    if cuda:
        ids = ids.cuda()
    started = time.time()
    with torch.no_grad():
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                       min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    if cuda:
        torch.cuda.synchronize()
    if fake is not None:  # the fake GPU was busy while the CPU generated
        fake.busy(started, time.time())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a local model folder (default: random GPT-2 small)")
    parser.add_argument("--rate", type=Decimal, help="USD per GPU-hour (default: nbcost's table)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    parser.add_argument("--new", type=int, default=128, help="new tokens per sequence")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        print("needs PyTorch and transformers: pip install torch transformers")
        return 2
    cuda = torch.cuda.is_available()
    if not cuda:
        print("No CUDA GPU: a tiny GPT-2 on the CPU over the fake NVML (the figures only show "
              "the arithmetic; run on a GPU machine for real ones).\n")
        args.batch, args.prompt, args.new = min(args.batch, 8), min(args.prompt, 32), min(args.new, 16)

    from nbcost.config import Settings
    from nbcost.display.format import format_per_mtok, format_usd
    from nbcost.ledger import read_log
    from nbcost.meters.llm import LlmMeter
    from nbcost.meters.selfhosted.compare import local_compare_report
    from nbcost.session import Session

    model = build_model(args.model, cuda)
    generate(model, 2, 8, 4, None, cuda)  # warm-up (kernels, caches), outside any window
    meter, fake = gpu_meter(cuda)
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(data_dir=Path(home), user="bench", gpu_rate_usd_per_hour=args.rate)
        session = Session(settings=settings, meters=[meter, LlmMeter()])
        try:
            windows = []
            info = session.open_window("cell", label="batched", execution_count=1)
            generate(model, args.batch, args.prompt, args.new, fake, cuda)
            windows.append(session.close_window(info.id))
            info = session.open_window("cell", label="one at a time", execution_count=2)
            for _ in range(4):
                generate(model, 1, args.prompt, args.new, fake, cuda)
                time.sleep(0.5)  # a person, or a client, between requests
            windows.append(session.close_window(info.id))
            session.flush()
            events = read_log(session.ledger_path).events
        finally:
            session.close()
            gc.collect()

    device = ", ".join(windows[0].meters["gpu"].detail.get("devices") or ["no GPU"])
    print(f"model: {args.model or 'random GPT-2 ' + ('small' if cuda else 'tiny')}; GPU: {device}"
          f"{' (fake)' if fake else ''}\n")
    print(f"{'window':<14} {'tokens in/out':>15} {'GPU cost':>10} {'busy':>6} {'out tok/s':>10} "
          f"{'$/Mtok in':>12} {'$/Mtok out':>12}")
    for record in windows:
        local = record.meters["local"]
        q, d = local.quantities, local.detail
        print(f"{record.info.label:<14} {q['input_tokens']:>7,}/{q['output_tokens']:<7,} "
              f"{format_usd(d.get('gpu_cost_usd')):>10} "
              f"{q.get('gpu_busy_share', 0) * 100:>5.0f}% {q.get('output_tokens_per_s', 0):>10,.0f} "
              f"{format_per_mtok(d.get('input_usd_per_mtok')):>12} "
              f"{format_per_mtok(d.get('output_usd_per_mtok')):>12}")
    print()
    print(local_compare_report(events, list(API_MODELS), None, settings)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
