"""Language-model sweep overhead: ``wrobust``'s engine against a plain loop computing the same perplexity.

    python benchmarks/bench_lm.py [--device cpu|cuda] [--repeats 5] [--windows 64] [--vocab 8192]

A GPT-2 built from a config (no download: random weights; the timing does not depend on them) evaluates
windows of 128 tokens, the last ones padded and masked. Both sides do the same work per point: draw additive
Gaussian noise for every Conv1D weight (sigma * max|w|), write it in place, one pass computing the
next-token cross-entropy over the tokens the attention mask keeps, ``exp`` of its mean (the perplexity),
and restore the weights. The ratio (engine time / plain time, best of ``--repeats``) is the number to
watch: the target is <= 1.05 (SPEC 6). The clean perplexities of both are printed: they must agree.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch
import torch.nn.functional as F

from robustbench_w.datasets.base import EvalSet
from robustbench_w.distortions import get_distortion
from robustbench_w.engine.runs.sweep import SweepRunner, plan
from robustbench_w.load.checkpoints import LoadedModel

SIGMAS = [0.05, 0.1, 0.2]
TRIALS = 3
SEQ_LEN = 128


def gpt2(vocab: int, device: torch.device):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=vocab, n_positions=SEQ_LEN, n_embd=128, n_layer=2, n_head=4, use_cache=False,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).to(device).eval()


def windows(n: int, vocab: int, device: torch.device) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (n, SEQ_LEN), generator=gen)
    mask = torch.ones_like(ids)
    mask[-2:, SEQ_LEN // 2:] = 0  # the last windows padded, as the end of a text is
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def plain_loop(model, data: dict[str, torch.Tensor], batch: int) -> float:
    """What a careful user would write by hand; returns the clean perplexity."""
    targets = [m.weight for m in model.modules() if type(m).__name__ == "Conv1D"]
    pristine = [w.detach().clone() for w in targets]
    scales = [w.abs().max() for w in pristine]
    ids, mask = data["input_ids"], data["attention_mask"]

    @torch.inference_mode()
    def perplexity() -> float:
        nll, count = 0.0, 0.0
        for i in range(0, len(ids), batch):
            x, m = ids[i:i + batch], mask[i:i + batch]
            logits = model(input_ids=x, attention_mask=m).logits[:, :-1]
            counted = (m[:, 1:] * m[:, :-1]).float()
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
            nll += (loss * counted.reshape(-1)).sum()
            count += counted.sum()
        return math.exp(float(nll / count))

    clean = perplexity()
    for k, sigma in enumerate(SIGMAS):
        for t in range(TRIALS):
            with torch.no_grad():
                for j, (w, w0, a) in enumerate(zip(targets, pristine, scales)):
                    g = torch.Generator(device=w0.device).manual_seed(1000 * k + 10 * t + j)
                    w.copy_(w0 + sigma * a * torch.randn(w0.shape, generator=g, device=w0.device))
            perplexity()
            with torch.no_grad():
                for w, w0 in zip(targets, pristine):
                    w.copy_(w0)
    return clean


def engine(model, data: dict[str, torch.Tensor], batch: int, device: torch.device) -> float:
    """The same points through wrobust's sweep engine; returns the clean perplexity."""
    runner = SweepRunner(LoadedModel(model, "bench", task="causal-lm"), EvalSet("bench", data, None, None),
                         batch_size=batch, device=device)
    rows = runner.run(plan([get_distortion("noise")], SIGMAS, TRIALS), seed=0)
    return rows[0]["perplexity"]


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def best_of(fns, repeats: int, device: torch.device) -> list[float]:
    """The best time of each function over ``repeats`` rounds, the functions taking turns within a round (so
    that a change of machine load between them does not decide the ratio)."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            t.append(timed(fn, device))
    return [min(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    model, data = gpt2(args.vocab, device), windows(args.windows, args.vocab, device)
    ours_clean, plain_clean = engine(model, data, args.batch, device), plain_loop(model, data, args.batch)
    plain, ours = best_of([lambda: plain_loop(model, data, args.batch), lambda: engine(model, data, args.batch, device)],
                          args.repeats, device)
    points = len(SIGMAS) * TRIALS + 1
    print(f"torch {torch.__version__}, {device} ({where}); clean perplexity: wrobust {ours_clean:.6f}, "
          f"plain {plain_clean:.6f}\n")
    print("| workload | windows | points | plain ms/point | wrobust ms/point | ratio |")
    print("|---|---|---|---|---|---|")
    print(f"| GPT-2 2x128, vocab {args.vocab}, {SEQ_LEN} tokens | {args.windows} | {points} | "
          f"{1000 * plain / points:.1f} | {1000 * ours / points:.1f} | {ours / plain:.3f} |")


if __name__ == "__main__":
    main()
