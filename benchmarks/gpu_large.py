"""The large-model GPU case (``bash benchmarks/gpu_check.sh --large``): a 1 B-parameter Llama-style causal LM in
bf16, built from a config (random weights, no download), swept with each ``--pristine`` mode.

    python benchmarks/gpu_large.py [--device cuda] [--hidden 2048] [--layers 16] [--vocab 32000] [--windows 8]

For each of ``plain`` (a plain loop of 5 passes), ``device``, ``host`` and ``none`` (the clean pass and a 4-point
additive-noise sweep over the default targets): the peak memory the CUDA allocator handed out
(``max_memory_allocated``) and its ratio to the plain loop's, the sweep's time and its ratio to ``device``'s,
and whether the rows equal ``device``'s bit for bit. Skipped, saying so, when the device has no room for twice
the model (the ``device`` mode's need). On the CPU (``--device cpu``, a smoke test at small sizes) the peaks
are not measured.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

SIGMAS = [0.05, 0.1, 0.2, 0.3]


def llama(args, device: torch.device):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=max(1, args.hidden // 128),
                         max_position_embeddings=args.seq_len, use_cache=False)
    with device:
        model = LlamaForCausalLM(config).to(torch.bfloat16 if device.type == "cuda" else torch.float32)
    return model.eval()


def peak(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")


def reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def plain(model, data) -> None:
    with torch.inference_mode():
        for _ in range(1 + len(SIGMAS)):
            model(**data).logits.float().log_softmax(-1)


def sweep_mode(model, data, mode: str, args, device: torch.device) -> tuple[list[dict], float]:
    from robustbench_w.datasets.base import EvalSet
    from robustbench_w.distortions import get_distortion
    from robustbench_w.engine.runs.sweep import SweepRunner, plan
    from robustbench_w.load.checkpoints import LoadedModel

    runner = SweepRunner(LoadedModel(model, "llama-1b", task="causal-lm"), EvalSet("windows", data, None, None),
                         batch_size=args.windows, device=device, pristine=mode)
    start = time.perf_counter()
    rows = runner.run(plan([get_distortion("noise")], SIGMAS, 1), seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=16)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=512)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_large: no CUDA device (run it on a GPU machine, or --device cpu for the smoke test)")
    model = llama(args, device)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    if device.type == "cuda" and torch.cuda.mem_get_info(device)[0] < 1.2 * weights:
        print(f"skipped: {weights / 2**30:.1f} GiB of weights; the device has no room for a second copy")
        return
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, args.vocab, (args.windows, args.seq_len), generator=gen).to(device)
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    print(f"torch {torch.__version__}, {device}"
          f"{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}; "
          f"{sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters, {weights / 2**30:.2f} GiB, "
          f"{next(model.parameters()).dtype}; {args.windows} windows x {args.seq_len} tokens\n")
    reset(device)
    start = time.perf_counter()
    plain(model, data)
    results = {"plain": (None, time.perf_counter() - start, peak(device))}
    for mode in ("device", "host", "none"):
        reset(device)
        rows, seconds = sweep_mode(model, data, mode, args, device)
        results[mode] = (rows, seconds, peak(device))
    ref_rows, ref_s, _ = results["device"]
    base = results["plain"][2]
    print("| run | peak GiB | peak / plain | sweep s | s / device | rows = device's |")
    print("|---|---|---|---|---|---|")
    for mode, (rows, seconds, gib) in results.items():
        same = "" if rows is None else str(pd.DataFrame(rows).equals(pd.DataFrame(ref_rows)))
        print(f"| {mode} | {gib:.2f} | {gib / base:.2f} | {seconds:.2f} | "
              f"{'' if rows is None else f'{seconds / ref_s:.2f}'} | {same} |")


if __name__ == "__main__":
    main()
