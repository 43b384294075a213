"""Language-model metrics on next-token logits ``(batch, tokens, vocab)`` and the inputs' ``input_ids``.

Position ``t`` predicts token ``t + 1``; a prediction counts when the attention mask keeps both tokens (all of
them without a mask). No labels are needed: the text is its own target. A window whose outputs are not all
finite makes the perplexity infinite and agrees on none of its tokens.
"""

from __future__ import annotations

import math

import torch

from .base import ratio, register_metric


def exp_ratio(totals: list[float], n: int, nonfinite: int) -> float:
    if not totals[1]:
        return math.nan
    mean = totals[0] / totals[1]
    return math.exp(mean) if mean < 709 else math.inf


@register_metric("perplexity", finish=exp_ratio, kind="language", higher_is_better=False, outputs="tokens",
                 bounds=(1.0, math.inf), bad=(math.inf, None), aliases=("ppl",),
                 formula="exp(sum of -log p(next token) / number of counted tokens) over the set")
def perplexity(view, clean) -> torch.Tensor:
    """Per window: the summed next-token cross-entropy over its counted tokens, and their number."""
    logp = view.log_probs[:, :-1]
    nll = -logp.gather(-1, view.next_tokens.unsqueeze(-1)).squeeze(-1)
    counted = view.counted
    return torch.stack([(nll * counted).sum(dim=1), counted.sum(dim=1)], dim=1)


@register_metric("token-agreement", finish=ratio, kind="language", higher_is_better=True, outputs="tokens",
                 identity=1.0, bounds=(0.0, 1.0), clean=("pred",), bad=(0.0, None),
                 formula="fraction of counted next-token argmaxes equal to the clean model's")
def token_agreement(view, clean) -> torch.Tensor:
    """Per window: how many counted next-token predictions equal the clean model's, and how many count."""
    same = (view.pred[:, :-1] == clean.pred[:, :-1]).to(view.counted.dtype) * view.counted
    return torch.stack([same.sum(dim=1), view.counted.sum(dim=1)], dim=1)
