"""Training with weight projections (BinaryConnect-style), as in Merolla et al. 2016 (arXiv:1606.01981).

Each targeted tensor (the conv and linear weights of its models, the default targets by module type:
:func:`robustbench_w.engine.weights.targets.select_targets`) keeps full-precision *hidden* weights ``w``. One step of a
rule with projection ``P`` and clip bound ``C``::

    w_p  = P(w)                  re-drawn every step for a random rule (stoch, stochm)
    loss = L(f(x; w_p))          the forward and the backward pass see w_p
    w   <- w - step(dL/dw_p)     straight-through: dL/dw := dL/dw_p; the derivative of P itself (zero almost
                                 everywhere for sign) is ignored (BinaryConnect, Courbariaux et al. 2015,
                                 arXiv:1511.00363); no gradient cancellation is needed since |w| <= C
    w   <- clamp(w, -C, C)       after every step, for every rule except ``none``

Rules (:mod:`.projection`): ``none`` (ordinary training, no clipping), ``clip`` (no projection, clipping
only), or any registered distortion spec (``sign``, ``round``, ``stoch``, ``power:beta=0.5``, ...).

Scale: a projection uses ``a = C`` by default, the paper's setting (alpha = 1 on hidden weights clipped to
[-1, 1]: sign gives +-1, stoch has p = (w + 1)/2, BinaryConnect's hard sigmoid). A per-layer ``max|w|``
would make the projected values depend on one outlier weight and, while the hidden weights are small, turn
stoch into a fair coin. A spec that names its own scale (``sign:scale=max``) uses the registry's rule.
The hidden weights start uniform in [-C, C] (``init="uniform"``) so that they fill the clip range.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..datasets.base import EvalSet, load_dataset
from ..engine.passes.evaluate import Evaluator
from ..engine.runs.signals import deferred
from ..engine.weights.seeding import derive_seed
from ..engine.weights.targets import select_targets
from ..errors import InvalidValueError, WrobustError
from ..load.device import resolve_device
from .defaults import INITS, OPTIMIZERS, SCHEDULES  # noqa: F401  (the choices of --optimizer, --init, --schedule)
from .projection import RULE_NONE, Projector, parse_rule

HOLDOUT = 0.2  # the share of a dataset without splits (tensors:FILE, a flat image folder) kept for the test error
EXP_FINAL = 1e-3  # schedule "exp": the last epoch runs at lr * EXP_FINAL (BinaryConnect decays by about 1,000)


class TrainingDiverged(InvalidValueError):
    """The loss became NaN or Inf: training stops, and nothing is written."""


@dataclass(frozen=True)
class TrainConfig:
    """What ``wrobust train`` does. ``arch_kwargs`` override the architecture's training defaults;
    ``data_options`` go to the dataset loader (``data_root``, ...)."""

    dataset: str = "digits"
    arch: str = "mlp"
    projection: str = RULE_NONE
    clip: float = 1.0
    epochs: int = 40
    lr: float = 1e-2
    batch_size: int = 64
    optimizer: str = "adam"
    seed: int = 0
    init: str = "uniform"
    schedule: str = "cosine"
    weight_decay: float = 0.0
    threads: int | None = 1  # CPU threads while training (None: torch's default); see cpu_threads
    arch_kwargs: dict = field(default_factory=dict)
    data_options: dict = field(default_factory=dict)
    device: str = "auto"

    def check(self) -> None:
        _choice("--optimizer", self.optimizer, OPTIMIZERS)
        _choice("--init", self.init, INITS)
        _choice("--schedule", self.schedule, SCHEDULES)
        for flag, value, low in (("--epochs", self.epochs, 1), ("--batch-size", self.batch_size, 1)):
            if int(value) < low:
                raise InvalidValueError(f"{flag} must be at least {low}, not {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InvalidValueError(f"--lr must be a positive number, not {self.lr}")
        if self.threads is not None and self.threads < 1:
            raise InvalidValueError(f"--threads must be at least 1, not {self.threads}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InvalidValueError(f"--weight-decay must be a number >= 0, not {self.weight_decay}")


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidValueError(f"{flag} must be one of {', '.join(choices)}, not {value!r}")


@dataclass
class TrainResult:
    """The trained model (hidden weights, eval mode), how to rebuild it, and the training record."""

    model: nn.Module
    arch: str
    arch_kwargs: dict
    test: EvalSet
    record: dict
    elapsed_s: float

    def save(self, path: str | Path) -> Path:
        """Write wrobust's own checkpoint format (``sweep``, ``bits`` and ``gate`` load it as is)."""
        from ..load.checkpoints import save_checkpoint

        return save_checkpoint(path, self.model, self.arch, self.arch_kwargs, dataset=self.test.name,
                               num_classes=self.test.num_classes, input_shape=self.test.input_shape,
                               normalization=self.test.normalization, train=self.record)


class TrainProgress:
    """Callbacks of a training run (and of a grid of runs); the default does nothing (the CLI draws bars)."""

    def rule_start(self, rule: str, index: int, total: int) -> None: ...

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, epoch: int, done: int, steps: int) -> None: ...

    def epoch_end(self, epoch: int, loss: float, test_error: float) -> None: ...


def train(config: TrainConfig | None = None, progress: TrainProgress | None = None, **options) -> TrainResult:
    """Train ``config.arch`` on ``config.dataset`` under ``config.projection``; see the module docstring.
    Without a ``config``, keyword ``options`` are its fields (``rw.train(projection="stoch", epochs=5)``)."""
    config = TrainConfig(**options) if config is None else replace(config, **options)
    config.check()
    rule = parse_rule(config.projection, config.clip)
    device = resolve_device(config.device)
    train_set, test_set, measured_on = train_and_test(config)
    started = time.perf_counter()
    with cpu_threads(config.threads), deterministic(config.seed, device):
        model, arch, arch_kwargs = build_for(config.arch, train_set, config.arch_kwargs)
        model.to(device)
        projector = Projector(select_targets(model), rule)
        if config.init == "uniform":
            projector.init_uniform_(config.clip, config.seed)
        history: dict = {"test_examples": measured_on}
        try:
            fit(model, projector, train_set, test_set, config, device, progress or TrainProgress(), history)
        except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: the epochs that finished, for a partial checkpoint
            exc.partial = finish(model, arch, arch_kwargs, test_set, config, projector, device, history, started)
            raise
    return finish(model, arch, arch_kwargs, test_set, config, projector, device, history, started)


def finish(model: nn.Module, arch: str, arch_kwargs: dict, test_set: EvalSet, config: TrainConfig,
           projector: Projector, device: torch.device, history: dict, started: float) -> TrainResult:
    """The result of the epochs in ``history``; fewer than ``config.epochs``: ``record["partial"]`` says so."""
    model.eval()
    done = len(history.get("epoch_test_error", []))
    history.setdefault("test_error", history["epoch_test_error"][-1] if done else math.nan)
    history.setdefault("test_error_projected", math.nan)
    record = {**config_record(config), **history, "targets": projector.names, "device": device.type,
              "torch": str(torch.__version__), **({"partial": True, "epochs_done": done} if done < config.epochs else {})}
    return TrainResult(model, arch, arch_kwargs, test_set, record, time.perf_counter() - started)


def train_and_test(config: TrainConfig) -> tuple[EvalSet, EvalSet, str]:
    """The training and the test examples, and which examples the test error is measured on. A dataset without
    separate splits (``tensors:FILE``, a flat image folder: every split reads the same examples) is split here:
    a seeded ``HOLDOUT`` share is held out as the test set and never trained on."""
    train_set = load_dataset(config.dataset, split="train", **config.data_options)
    test_set = load_dataset(config.dataset, split="test", **config.data_options)
    if not same_examples(train_set, test_set):
        return train_set, test_set, f"the test split of {test_set.name} ({len(test_set):,} examples)"
    n = len(train_set)
    k = max(1, round(HOLDOUT * n))
    if n - k < 2:
        raise InvalidValueError(f"{train_set.name}: {n} example(s): too few to hold out a test set and train on the rest")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(config.seed, "holdout")))
    held, kept = order[:k].sort().values, order[k:].sort().values
    return (train_set.subset(kept), test_set.subset(held),
            f"{k:,} of the {n:,} examples of {train_set.name}, held out (a seeded {HOLDOUT:.0%}, --seed {config.seed}) "
            "and not trained on")


def same_examples(a: EvalSet, b: EvalSet) -> bool:
    """Whether two splits hold the same examples (a loader that has no splits reads one set for both)."""
    if len(a) != len(b) or a.named or b.named or a.x.shape != b.x.shape:
        return False
    labels = (a.y is None and b.y is None) or (a.y is not None and b.y is not None and torch.equal(a.y, b.y))
    return labels and torch.equal(a.x, b.x)


def config_record(config: TrainConfig) -> dict:
    """What a checkpoint's ``train`` record says of the configuration it was trained with (``reproduce --resume``
    compares it with the configuration it needs)."""
    rule = parse_rule(config.projection, config.clip)
    return {**_arguments(config), "rule": rule.name, "clip": rule.clip, "scale": rule.scale}


def _arguments(config: TrainConfig) -> dict:
    args = asdict(config)
    args.pop("device")
    args["data_options"] = {k: str(v) for k, v in config.data_options.items()}
    return args


@contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block, restored afterwards (``None``: left as it is).

    Training uses one CPU thread by default: the result of a float reduction depends on how it is split
    between threads, so a fixed count gives the same checkpoint for a seed on machines with different
    numbers of cores; and small models gain nothing from more threads, while on a busy machine spinning
    threads cost several times the time."""
    if threads is None:
        yield
        return
    was = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(was)


@contextmanager
def deterministic(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global generators (restored afterwards) and ask for deterministic algorithms."""
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    devices = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, "torch-global"))
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was[0], warn_only=was[1])


def build_for(arch: str, data: EvalSet, given: dict) -> tuple[nn.Module, str, dict]:
    """Build ``arch`` for ``data``: the architecture's training defaults, fitted to the input shape and
    number of classes, then ``given``. Returns the model, the canonical name and the keyword arguments."""
    from ..load.architectures import ARCHS, check_options
    from ..load.archspec import build_model

    kwargs: dict = {}
    if ":" not in arch and arch in ARCHS:
        definition = ARCHS.get(arch)
        check_options(definition, given)
        arch = definition.name
        kwargs.update(definition.train_defaults)
        kwargs.update(definition.fit(data.input_shape) if definition.fit else {})
    if data.num_classes is not None:
        kwargs["num_classes"] = data.num_classes
    kwargs.update(given)
    try:
        model = build_model(arch, **kwargs)
    except WrobustError:  # an unknown name, a file that is not there: already one clear line
        raise
    except Exception as exc:  # the architecture's code refused the options (-A) it was given
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InvalidValueError(f"--arch {arch} with -A {given or '(none)'}: {type(exc).__name__}: {first}") from exc
    check_fits(model, arch, data)
    return model, arch, kwargs


def check_fits(model: nn.Module, arch: str, data: EvalSet) -> None:
    """One forward pass on two examples: a model that does not fit the inputs is a usage error."""
    model.eval()
    try:
        with torch.no_grad():
            out = model(data.normalization.apply(data.x[:2]))
    except RuntimeError as exc:
        raise InvalidValueError(f"--arch {arch} does not fit {data.name} inputs of shape {data.input_shape}: "
                                f"{str(exc).splitlines()[0][:160]}") from exc
    if data.num_classes is not None and (out.dim() != 2 or out.shape[1] != data.num_classes):
        raise InvalidValueError(f"--arch {arch}: outputs of shape {tuple(out.shape[1:])}, "
                                f"expected {data.num_classes} classes")
    model.train()


def fit(model: nn.Module, projector: Projector, train_set: EvalSet, test_set: EvalSet, config: TrainConfig,
        device: torch.device, progress: TrainProgress, history: dict | None = None) -> dict:
    """The epochs: per-epoch learning rate, mean training loss and test error (of the hidden weights), filled
    into ``history`` epoch by epoch (an interrupted run keeps the epochs that finished)."""
    x = train_set.normalization.apply(train_set.x).to(device)
    y = train_set.y.to(device)
    evaluator = Evaluator(model, test_set, 1024, device)
    opt = make_optimizer(config, model)
    sched = make_scheduler(config, opt)
    shuffle = torch.Generator().manual_seed(derive_seed(config.seed, "shuffle"))
    draws = torch.Generator(device=device).manual_seed(derive_seed(config.seed, "projection"))
    history = {} if history is None else history
    lrs, losses, errors = (history.setdefault(k, []) for k in ("epoch_lr", "loss", "epoch_test_error"))
    for epoch in range(config.epochs):
        batches = batch_indices(len(x), config.batch_size, shuffle)
        progress.epoch_start(epoch, config.epochs, len(batches))
        loss = run_epoch(model, projector, opt, x, y, batches, draws, lambda i: progress.step(epoch, i, len(batches)))
        check_converging(loss, epoch, config)
        error = test_error(model, evaluator)
        with deferred():  # an epoch is recorded whole, or not at all
            lrs.append(opt.param_groups[0]["lr"])
            losses.append(loss)
            errors.append(error)
        progress.epoch_end(epoch, losses[-1], errors[-1])
        if sched is not None:
            sched.step()
    projected = test_error(model, evaluator, projector, torch.Generator(device=device).manual_seed(
        derive_seed(config.seed, "test-projection")))
    history.update(test_error=errors[-1], test_error_projected=projected)
    return history


def check_converging(loss: float, epoch: int, config: TrainConfig) -> None:
    """Stop a run whose loss is no longer finite (NaN or Inf): its weights are not a model worth a checkpoint."""
    if not math.isfinite(loss):
        raise TrainingDiverged(f"training diverged: the loss is {loss} in epoch {epoch + 1} of {config.epochs} "
                               f"(--lr {config.lr:g} too high?); no checkpoint written")


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning rate per epoch (stepped after each): ``constant``; ``cosine`` from ``lr`` towards 0;
    ``exp``: ``lr * EXP_FINAL^(e / (epochs - 1))`` at epoch ``e``, so the last epoch runs at ``lr * EXP_FINAL``
    (BinaryConnect's exponential decay, Courbariaux et al. 2015)."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs)
    if config.schedule == "exp" and config.epochs > 1:
        return torch.optim.lr_scheduler.ExponentialLR(opt, EXP_FINAL ** (1 / (config.epochs - 1)))
    return None


def batch_indices(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A seeded shuffle cut into batches; a last batch of one example is dropped (batch norm needs two)."""
    batches = list(torch.randperm(n, generator=generator).split(batch_size))
    return batches[:-1] if len(batches) > 1 and len(batches[-1]) == 1 else batches


def run_epoch(model: nn.Module, projector: Projector, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              batches: list[torch.Tensor], draws: torch.Generator, report=None) -> float:
    """One pass over the batches; returns the mean training loss (of the projected model)."""
    model.train()
    total = torch.zeros((), device=x.device, dtype=torch.float64)
    count = 0
    for i, idx in enumerate(batches):
        idx = idx.to(x.device)
        total += train_step(model, projector, opt, x[idx], y[idx], draws) * len(idx)
        count += len(idx)
        if report is not None:
            report(i + 1)
    return float(total) / max(count, 1)


def train_step(model: nn.Module, projector: Projector, opt: torch.optim.Optimizer, xb: torch.Tensor,
               yb: torch.Tensor, draws: torch.Generator | None = None) -> torch.Tensor:
    """One straight-through step: loss and gradients at ``P(w)``, update of ``w``, then ``clamp(w, -C, C)``."""
    with deferred():  # a signal waits for the step to end: the hidden weights are never left half-updated
        with projector.projected(draws):
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
        projector.clip_()
    return loss.detach()


def test_error(model: nn.Module, evaluator: Evaluator, projector: Projector | None = None,
               draws: torch.Generator | None = None) -> float:
    """Test error of the hidden weights, or of one projection of them (``nan`` for a rule without one)."""
    if projector is not None and projector.rule.projection is None:
        return math.nan
    model.eval()
    try:
        if projector is None:
            return evaluator.run().error
        with projector.projected(draws):
            return evaluator.run().error
    finally:
        model.train()
