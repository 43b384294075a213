"""Counting the values of weight tensors: the arithmetic under effective bits (see :mod:`.tensor`).

Exact counts of each distinct value (per scale group: one row of a 2-D view per group), counts on a grid of
``2^B`` levels spanning ``mean +- GRID_SPAN std`` of each row, and the entropies of both (the grid's with the
Miller-Madow bias correction). NaN is never a value: it is left out of every count.
"""

from __future__ import annotations

import math

import torch

GRID_SPAN = 4.0  # the grid spans mean +- GRID_SPAN standard deviations
SAMPLE = (1 << 16) + 1  # elements sampled to find the candidate values (and to detect continuous tensors)
FEW = 4  # up to this many candidate values are counted by comparison, beyond by binary search
CHUNK = 1 << 22  # elements per step when counting grid levels (bounds the temporary memory)
STATS_SAMPLE = 1 << 22  # elements that give a row's mean and std for the grid


def entropy(counts: torch.Tensor) -> float:
    """``H = -sum p log2 p`` in bits, with ``p = counts / counts.sum()``; zero counts contribute nothing."""
    c = counts.to(torch.float64)
    c = c[c > 0]
    if c.numel() <= 1:
        return 0.0
    p = c / c.sum()
    return max(0.0, float(-(p * torch.log2(p)).sum()))


def value_counts(x: torch.Tensor, max_distinct: float | None = None) -> torch.Tensor | None:
    """How often each distinct value of the flat tensor ``x`` occurs (NaNs are not values), or ``None`` when
    there are more than ``max_distinct`` distinct values.

    A strided sample gives the candidate values (and shows most continuous tensors at once); the whole tensor
    is then counted against them (one comparison pass per value for a few values, a binary search
    otherwise), and only the values the sample missed are sorted."""
    limit = math.inf if max_distinct is None else max_distinct
    size = SAMPLE if limit == math.inf else max(SAMPLE, 2 * int(min(limit, 1 << 20)) + 1)
    if x.numel() <= size:
        return _unique_counts(x, limit)
    sample = _unique_counts(x[:: x.numel() // size][:size], limit, values=True)
    if sample is None:
        return None  # the sample alone has too many values
    counts = _count_candidates(x, sample)
    return counts if len(counts) <= limit else None


def _unique_counts(x: torch.Tensor, limit: float = math.inf, values: bool = False) -> torch.Tensor | None:
    """Counts (or the sorted values) of the distinct values of ``x`` by a full sort; NaNs left out."""
    v, c = torch.unique(x, return_counts=True)
    keep = ~torch.isnan(v)
    v, c = v[keep], c[keep]
    if len(c) > limit:
        return None
    return v if values else c


def _count_candidates(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Counts of the sorted values ``v`` in ``x``, followed by those of the values of ``x`` not in ``v``."""
    if 0 < len(v) <= FEW:
        counts = torch.stack([torch.count_nonzero(torch.eq(x, value)) for value in v])
        if int(counts.sum()) == x.numel():  # else some value (or NaN) was missed: search below
            return counts
    if len(v) == 0:
        return _unique_counts(x)
    idx = torch.searchsorted(v, x).clamp_(max=len(v) - 1)
    miss = v[idx] != x
    counts = torch.bincount(idx.masked_fill_(miss, len(v)), minlength=len(v) + 1)
    if int(counts[-1]) == 0:
        return counts[:-1]
    return torch.cat([counts[:-1], _unique_counts(x[miss])])


def exact_counts(rows: torch.Tensor, limit: float = math.inf) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The count of each distinct value of each row and the row it belongs to, ``(counts, rows of the counts)``;
    ``None`` when a row has more than ``limit`` distinct values. NaNs are not values."""
    if rows.shape[0] == 1:
        counts = value_counts(rows[0], limit)
        return None if counts is None else (counts, torch.zeros_like(counts))
    if limit < math.inf and value_counts(rows[0], limit) is None:
        return None  # the first group alone has too many values: no need to sort the others
    s = rows.sort(dim=1).values  # NaNs sort last
    valid = ~torch.isnan(s)
    new = valid.clone()
    new[:, 1:] &= s[:, 1:] != s[:, :-1]  # the first element of each run of equal values
    flat = new.reshape(-1)
    run = torch.cumsum(flat, 0) - 1
    counts = torch.bincount(run[valid.reshape(-1)], minlength=int(flat.sum()))
    owner = torch.nonzero(flat).squeeze(1) // rows.shape[1]
    if int(torch.bincount(owner, minlength=rows.shape[0]).max()) > limit:
        return None
    return counts, owner


def grid_counts(rows: torch.Tensor, resolution: int) -> torch.Tensor:
    """Counts, shape ``(rows, L)``, of the values of each row on ``L = 2^resolution`` levels of width
    ``2 * GRID_SPAN * std / L`` spanning ``mean +- GRID_SPAN * std`` of the row's finite values: level
    ``k = floor((x - mean) / (2 * GRID_SPAN * std) * L + L / 2)``, clamped to ``[0, L)`` (infinities and
    outliers fall in the end levels; NaNs are not counted). A constant row fills the middle level."""
    levels = 1 << resolution
    mean, std, finite = row_stats(rows)
    step = torch.where(std > 0, levels / (2 * GRID_SPAN * std), torch.zeros_like(std))
    base = levels / 2 - mean * step  # level = floor(base + step * x)
    n_rows, cols = rows.shape
    width = levels if finite else levels + 1  # NaNs get a level of their own, dropped at the end
    counts = torch.zeros(n_rows, width, dtype=torch.long, device=rows.device)
    code_type = torch.uint8 if width <= 256 and n_rows == 1 else torch.int32 if n_rows * width < 2**31 else torch.long
    per = max(1, CHUNK // max(cols, 1))
    for r0 in range(0, n_rows, per):
        block = slice(r0, r0 + per)
        for c0 in range(0, cols, CHUNK):
            part = rows[block, c0:c0 + CHUNK]
            if not finite:  # infinities go to the end levels (0 * inf would be NaN for a constant row)
                big = torch.finfo(part.dtype).max
                part = torch.nan_to_num(part, nan=math.nan, posinf=big, neginf=-big)
            y = _levels(part, base[block], step[block]).clamp_(0, levels - 0.5)  # truncated below: floor
            codes = (y if finite else y.nan_to_num_(nan=float(levels))).to(code_type)
            if len(part) > 1:
                codes += torch.arange(len(part), device=rows.device, dtype=code_type).unsqueeze(1) * width
            counts[block] += torch.bincount(codes.reshape(-1), minlength=len(part) * width).reshape(-1, width)
    return counts[:, :levels]


def _levels(part: torch.Tensor, base: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """``base + step * x`` per row, in one pass (scalars for a single row: the fastest kernel)."""
    if len(part) == 1:
        return torch.add(part.new_tensor(float(base[0])), part, alpha=float(step[0]))
    return torch.addcmul(base.unsqueeze(1), part, step.unsqueeze(1))


def row_stats(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Mean and standard deviation of the finite values of each row (0 for a row without any), and whether
    all values are finite. Above ``STATS_SAMPLE`` elements the statistics come from evenly spaced columns
    (a deterministic sample; the standard deviation is then within a fraction of a percent)."""
    lo, hi = torch.aminmax(rows, dim=1)
    finite = bool(torch.isfinite(lo).all() and torch.isfinite(hi).all())
    stride = -(-rows.numel() // STATS_SAMPLE)
    x = rows[:, ::stride] if stride > 1 else rows
    if finite:
        std, mean = torch.std_mean(x, dim=1, correction=0)
        return mean, std, True
    ok = torch.isfinite(x)
    n = ok.sum(dim=1).clamp_(min=1)
    mean = torch.where(ok, x, 0).sum(dim=1) / n
    var = torch.where(ok, x - mean.unsqueeze(1), 0).square().sum(dim=1) / n
    return mean, var.sqrt(), False


def group_entropy(counts: torch.Tensor, owner: torch.Tensor, groups: int):
    """``(entropy, values, distinct values)`` of each group from the counts of its distinct values."""
    c = counts.to(torch.float64)
    n = torch.zeros(groups, dtype=torch.float64, device=c.device).index_add_(0, owner, c)
    p = c / n[owner]
    h = torch.zeros_like(n).index_add_(0, owner, -torch.special.xlogy(p, p) / math.log(2))
    k = torch.bincount(owner, minlength=groups)
    return h.clamp_(min=0), n, k


def grid_entropy(counts: torch.Tensor, resolution: int):
    """``(entropy, values, occupied levels)`` of each row of grid counts, Miller-Madow corrected, at most B."""
    c = counts.to(torch.float64)
    n = c.sum(dim=1)
    p = c / n.clamp(min=1).unsqueeze(1)
    k = (counts > 0).sum(dim=1)
    h = -torch.special.xlogy(p, p).sum(dim=1) / math.log(2)
    h = h + (k - 1).clamp(min=0) / (2 * n.clamp(min=1) * math.log(2))
    return h.clamp_(0, resolution), n, k
