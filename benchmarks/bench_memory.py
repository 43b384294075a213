"""Models that fill the device: peak memory and time of each ``--pristine`` mode, per-block activation reuse, and
a streamed ``text:`` set (docs/large-models.md).

    python benchmarks/bench_memory.py [--windows 2] [--seq-len 64] [--layers 12] [--width 768] [--vocab 50257]
                                      [--text-mb 50] [--parts memory,blocks,text]

A GPT-2-size causal LM (12 layers x 768 wide, GPT-2's vocabulary; built from a config with random weights, no
download; the timing and memory do not depend on the weights) on the CPU, ``--windows`` random windows of
``--seq-len`` tokens in one batch. Each measurement runs in a process of its own (peak resident memory,
``VmHWM``, reset with ``/proc/self/clear_refs`` after the imports: Linux only):

- ``plain``: a plain evaluation loop, 5 passes (the clean one and 4) over the same windows: the model's
  memory plus the activations of a batch;
- ``device``, ``host``, ``none``: ``SweepRunner`` with that ``pristine`` mode, the clean pass and a 4-point
  additive-noise sweep (sigma 0.05, 0.1, 0.2, 0.3, one trial each) over the default targets (the Conv1D
  weights, 85 M of the model's 124 M parameters) and, with ``--all-weights``, every parameter. Printed: the peak
  and its ratio to the plain loop's, above the same imports; the sweep's time and its ratio to ``device``'s.
  On a CPU ``host`` is ``device`` (the host is the device), so it is measured once, as ``device``;
- per-block sweep (``--groups auto``: 12 units, one noise point each) with and without activation reuse: the
  block forwards run (counted on each block's attention), the FLOPs they stand for, and the wall time;
- ``text``: a ``--text-mb`` MB text (a seeded stream of words) read as ``text:`` with ``--limit 64`` and a
  word-level tokenizer: the peak above the imports, against the file's size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SIGMAS = [0.05, 0.1, 0.2, 0.3]


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """The current resident memory in MB; the peak is reset to it (Linux ``clear_refs``), so that
    :func:`peak_mb` measures from here."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_mb("VmRSS")


def peak_mb() -> float:
    """The peak resident memory (``VmHWM``) since the last :func:`rss_mb`, in MB."""
    return status_mb("VmHWM")


def gpt2(args):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=args.vocab, n_positions=max(args.seq_len, 64), n_embd=args.width,
                        n_layer=args.layers, n_head=args.width // 64, use_cache=False, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


def windows(args) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.windows, args.seq_len), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def plain(model, data) -> None:
    """What a user would write to evaluate the model: 5 passes, nothing kept but the loss."""
    with torch.inference_mode():
        for _ in range(1 + len(SIGMAS)):
            logits = model(**data).logits[:, :-1]
            torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                              data["input_ids"][:, 1:].reshape(-1))


def runner_for(model, data, args, **kw):
    from robustbench_w.datasets.base import EvalSet
    from robustbench_w.engine.runs.sweep import SweepRunner
    from robustbench_w.load.checkpoints import LoadedModel

    include = ("*",) if args.all_weights else ()
    return SweepRunner(LoadedModel(model, "gpt2-size", task="causal-lm"), EvalSet("windows", data, None, None),
                       batch_size=args.windows, device="cpu", include=include, **kw)


def child_memory(mode: str, args) -> dict:
    from robustbench_w.distortions import get_distortion
    from robustbench_w.engine.runs.sweep import plan

    base = rss_mb()
    model, data = gpt2(args), windows(args)
    start = time.perf_counter()
    if mode == "plain":
        plain(model, data)
    else:
        runner = runner_for(model, data, args, pristine=mode)
        start = time.perf_counter()  # the sweep itself (the clean pass ran in the set-up)
        runner.run(plan([get_distortion("noise")], SIGMAS, 1), seed=0)
    return {"mode": mode, "base_mb": base, "peak_mb": peak_mb(), "seconds": time.perf_counter() - start}


def child_blocks(reuse: bool, args) -> dict:
    from robustbench_w.distortions import get_distortion
    from robustbench_w.engine.runs.sweep import plan
    from robustbench_w.engine.weights.layers import LayerPlan, per_layer_points

    model, data = gpt2(args), windows(args)
    calls = [0]
    for block in model.transformer.h:
        block.attn.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    runner = runner_for(model, data, args, per_layer=LayerPlan(reuse=reuse, auto=True))
    points = per_layer_points(plan([get_distortion("noise")], [0.1], 1), list(runner.layers.units.values()))
    calls[0], start = 0, time.perf_counter()
    rows = runner.run(points, seed=0)
    return {"reuse": reuse, "seconds": time.perf_counter() - start, "block_forwards": calls[0],
            "units": len(runner.layers.units), "perplexities": [r["perplexity"] for r in rows]}


def child_text(args) -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from robustbench_w.datasets.text import load_text

    words = [f"w{i}" for i in range(2000)]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([" ".join(words)], trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.txt"
        rng = random.Random(0)
        with path.open("w", encoding="utf-8") as f:
            while f.tell() < args.text_mb * 1e6:
                f.write(" ".join(rng.choices(words, k=2000)) + "\n")
        size = path.stat().st_size / 1e6
        warm = Path(tmp) / "warm.txt"
        warm.write_text(" ".join(words) * 3, encoding="utf-8")
        load_text(source=str(warm), tokenizer=tokenizer, seq_len=128, limit=64)  # lazy imports and first calls
        base, start = rss_mb(), time.perf_counter()
        data = load_text(source=str(path), tokenizer=tokenizer, seq_len=128, limit=64)
        return {"file_mb": size, "windows": len(data), "base_mb": base, "peak_mb": peak_mb(),
                "seconds": time.perf_counter() - start}


def in_child(args, *extra: str) -> dict:
    argv = [sys.executable, __file__, *sys.argv[1:], "--child", *extra]
    done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_table(args) -> None:
    rows = {m: in_child(args, "memory", m) for m in ("plain", "device", "none")}
    ref = rows["plain"]
    print("| run | peak RSS MB | peak / plain | above imports MB | above / plain | sweep s | s / device |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in rows.items():
        above = r["peak_mb"] - r["base_mb"]
        ref_above = ref["peak_mb"] - ref["base_mb"]
        per = "" if mode == "plain" else f"{r['seconds'] / rows['device']['seconds']:.2f}"
        print(f"| {mode} | {r['peak_mb']:.0f} | {r['peak_mb'] / ref['peak_mb']:.2f} | {above:.0f} | "
              f"{above / ref_above:.2f} | {r['seconds']:.1f} | {per} |")
    print(f"\nnone / plain peak: {rows['none']['peak_mb'] / ref['peak_mb']:.3f} (target <= 1.10); device / plain: "
          f"{rows['device']['peak_mb'] / ref['peak_mb']:.3f} (about 2 expected where the targets are the whole "
          f"model); none / device time: {rows['none']['seconds'] / rows['device']['seconds']:.3f} (target <= 1.25)")


def blocks_table(args) -> None:
    naive, reused = in_child(args, "blocks", "naive"), in_child(args, "blocks", "reuse")
    d, t, v, n = args.width, args.seq_len, args.vocab, args.layers
    block_flops = 2 * 12 * d * d * t + 4 * t * t * d  # per window: the block's matmuls and its attention
    head_flops = 2 * d * v * t
    print("\n| per-block sweep | units | block forwards | GFLOPs (blocks + heads) | wall s |")
    print("|---|---|---|---|---|")
    for name, r in (("naive", naive), ("reuse", reused)):
        heads = r["units"]  # one pass per unit point, each runs the head
        gflops = (r["block_forwards"] * block_flops + heads * head_flops) * args.windows / 1e9
        print(f"| {name} | {r['units']} | {r['block_forwards']} | {gflops:.0f} | {r['seconds']:.1f} |")
    same = naive["perplexities"] == reused["perplexities"]
    print(f"\nreuse: {naive['seconds'] / reused['seconds']:.2f}x less wall time, "
          f"{naive['block_forwards'] / max(reused['block_forwards'], 1):.2f}x fewer block forwards; "
          f"rows identical: {same}; the head is {head_flops / (n * block_flops + head_flops):.0%} of a clean pass")


def text_line(args) -> None:
    r = in_child(args, "text")
    print(f"\ntext: {r['file_mb']:.0f} MB file, --limit 64 -> {r['windows']} windows: peak "
          f"{r['peak_mb'] - r['base_mb']:.0f} MB above the imports, {r['seconds']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=768)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--text-mb", type=float, default=50)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--all-weights", action="store_true", help="target every parameter (embeddings too)")
    parser.add_argument("--parts", default="memory,blocks,text")
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind = args.child[0]
        out = child_memory(args.child[1], args) if kind == "memory" else \
            child_blocks(args.child[1] == "reuse", args) if kind == "blocks" else child_text(args)
        print(json.dumps(out))
        return
    print(f"torch {torch.__version__}, CPU ({platform.processor() or platform.machine()}, {args.threads} threads); "
          f"GPT-2 {args.layers}x{args.width}, vocab {args.vocab}, {args.windows} windows x {args.seq_len} tokens; "
          f"targets: {'every parameter' if args.all_weights else 'default (Conv1D weights)'}\n")
    parts = args.parts.split(",")
    for name, fn in (("memory", memory_table), ("blocks", blocks_table), ("text", text_line)):
        if name in parts:
            fn(args)


if __name__ == "__main__":
    main()
