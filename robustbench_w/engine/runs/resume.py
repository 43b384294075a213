"""Running a plan's points so that nothing finished is lost: run log, resume, shards, torchrun ranks, signals.

:func:`run_resumable` wraps a :class:`~.sweep.SweepRunner` (which evaluates points) with what long runs need:

1. this job's shard of the points (``--shard I/N``, :mod:`.shards`);
2. with ``resume``, the rows already in the log (and in the logs of the other processes of an earlier
   torchrun job) are taken as they are, and only the missing points are evaluated;
3. under torchrun the remaining points are dealt out over the ranks (:mod:`.distributed`);
4. each finished point is appended to the log (:mod:`.runlog`) before the next one starts;
5. SIGINT or SIGTERM stops the run between two records (:mod:`.signals`): the outcome is partial;
6. the ranks' rows are gathered; an error on one rank becomes :class:`RankFailed` on every rank.

The rows come back in the plan's order, the clean model first, whatever order and process evaluated them;
since a point's seeds derive from the point itself, they are the rows of one uninterrupted process.

Adaptive trials (``trials``, :mod:`.trials`): the plan holds each random point's first trials; the runner
adds more while the point's interval is too wide. Rows of the log are handed to the runner as ``known``
rows, so the rule judges a resumed point on the same rows as an uninterrupted run would and asks for the
same further trials: the trial count at every point is the same. Logged trials beyond what the rule asks
for (a log written with a narrower ``--ci-width``) are not used.

Test hook (not for users): ``WROBUST_TEST_POINT_DELAY=SECONDS`` sleeps that long after each recorded point,
so that a test's kill or Ctrl-C lands in the middle of a sweep, deterministically, on a tiny model.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import EXIT_INTERNAL, InvalidValueError, RankFailed, WrobustError
from ...load.usercode import user_code_error
from . import runlog
from .distributed import World, all_gather, broadcast, current_world
from .points import CLEAN_KEY, group_of, key_of, row_group, row_key
from .shards import Shard, parse_shard, partition, take_shard
from .signals import Interrupted, deferred, interruptible

DELAY_ENV = "WROBUST_TEST_POINT_DELAY"


@dataclass(frozen=True)
class RunSetup:
    """How to run a plan: where to log (None: no log), whether to resume from it, which shard, what kind, and
    what else the log's header should keep (``extra``)."""

    log: Path | None = None
    resume: bool = False
    shard: Shard | None = None
    kind: str = "sweep"
    extra: dict = field(default_factory=dict)


def run_setup(log: str | Path | None = None, resume: bool = False, shard: str | Shard | None = None,
              kind: str = "sweep") -> RunSetup:
    """A checked :class:`RunSetup` (``--resume`` needs ``--log``; ``--shard`` is ``I/N``)."""
    if resume and log is None:
        raise InvalidValueError("--resume needs --log FILE (the run log to continue)")
    if log is not None and Path(log).suffix.lower() in (".csv", ".json", ".parquet", ".md", ".html", ".xml"):
        raise InvalidValueError(f"--log {log}: a run log is JSON lines, not a {Path(log).suffix} results file; name "
                                f"it {Path(log).with_suffix('.jsonl')} (results go to -o)")
    return RunSetup(None if log is None else Path(log), resume, None if shard is None else parse_shard(shard), kind)


@dataclass
class Outcome:
    """The rows of this job (clean first, then its points in plan order) and how they came about."""

    rows: list[dict]
    planned: int  # points of this job (its shard)
    resumed: int  # rows taken from the log
    signal: str | None  # the signal that stopped the run, if one did
    world: World
    shard: Shard | None
    grid: list[str] = field(default_factory=list)  # the keys of every point of the plan (all shards)

    @property
    def done(self) -> int:
        return len(self.rows) - 1

    @property
    def partial(self) -> bool:
        return self.signal is not None or self.done < self.planned

    def meta(self) -> dict:
        """What a results file says about the run (the whole grid only where it is needed to merge)."""
        out = {"points_planned": self.planned, "points_done": self.done, "points_resumed": self.resumed,
               "partial": self.partial, "shard": None if self.shard is None else str(self.shard),
               "world_size": self.world.size}
        if self.shard is not None or self.partial:
            out["grid"] = self.grid
        return out


def run_resumable(runner, points: Sequence, seed: int = 0, progress: Callable | None = None,
                  setup: RunSetup = RunSetup(), meta: dict | None = None, trials=None) -> Outcome:
    """Evaluate this job's missing points with ``runner`` (and, with an adaptive ``trials`` rule, the further
    trials their intervals need); see the module docstring."""
    world = current_world()
    mine = take_shard(points, setup.shard)
    grid = [key_of(p) for p in points]
    head = runlog.header(setup.kind, meta or {}, grid, shard=None if setup.shard is None else str(setup.shard),
                         **setup.extra)
    prior = _on_leader(lambda: _prior_rows(setup, head), world)
    prior = _mine(prior, mine, by_group=trials is not None)
    todo = mine if trials is not None else [p for p in mine if key_of(p) not in prior]
    part = partition(todo, world.size)[world.rank] if world.distributed else todo
    results = _on_every_rank(lambda: _evaluate(runner, part, seed, progress, setup, head, world,
                                               log_clean=CLEAN_KEY not in prior, trials=trials, prior=prior), world)
    found = {} if trials is not None else {k: r for k, r in prior.items() if k != CLEAN_KEY}
    for done, _ in results:
        found.update(done)
    signal = next((s for _, s in results if s), None)
    if world.leader and setup.log is not None:
        runlog.consolidate(setup.log)  # the other processes' logs, folded into this one
    rows = [runner.clean_row(seed)] + in_plan_order(found, mine)
    resumed = sum(1 for k in found if k in prior)
    return Outcome(rows, len(mine), resumed, signal, world, setup.shard, grid)


def _mine(prior: dict[str, dict], mine: Sequence, by_group: bool) -> dict[str, dict]:
    """The logged rows that belong to this job: the clean row and its points' rows (with adaptive trials, every
    row of its points' groups: the runner decides which it uses)."""
    if by_group:
        groups = {group_of(p) for p in mine}
        return {k: r for k, r in prior.items() if k == CLEAN_KEY or row_group(r) in groups}
    wanted = {key_of(p) for p in mine} | {CLEAN_KEY}
    return {k: r for k, r in prior.items() if k in wanted}


def in_plan_order(found: dict[str, dict], points: Sequence) -> list[dict]:
    """The rows of ``found`` (by key) in the order of the plan's groups, each group's trials in order; rows of
    trials beyond the plan (adaptive trials) sit with their group."""
    rank = {}
    for p in points:
        rank.setdefault(group_of(p), len(rank))
    chosen = [r for r in found.values() if row_group(r) in rank]
    return sorted(chosen, key=lambda r: (rank[row_group(r)], int(r.get("trial", 0))))


def _prior_rows(setup: RunSetup, head: dict) -> dict[str, dict]:
    """Rows already logged by this run (its log and those of its other processes), by point key."""
    if not setup.resume or setup.log is None:
        return {}
    rows: dict[str, dict] = {}
    for path in runlog.family(setup.log):
        contents = runlog.read_log(path)
        runlog.check_compatible(contents, head)
        for row in contents.rows:
            rows.setdefault(row_key(row), row)
    return rows


def _evaluate(runner, part: Sequence, seed: int, progress, setup: RunSetup, head: dict, world: World,
              log_clean: bool, trials=None, prior: dict | None = None) -> tuple[dict[str, dict], str | None]:
    """Evaluate ``part``, logging each point; stop at SIGINT/SIGTERM. Returns the rows and the signal, if any.
    With ``trials`` the rows are those the runner used: the logged ones it was given (``prior``) and the new."""
    done: dict[str, dict] = {}
    log = None if setup.log is None else runlog.RunLog(runlog.rank_path(setup.log, world.rank), head, setup.resume)
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)

    def known(point) -> dict | None:
        row = (prior or {}).get(key_of(point))
        if row is not None:
            done[key_of(point)] = row
        return row

    try:
        with interruptible():
            if log is not None and log_clean and world.leader:
                log.append(runner.clean_row(seed))
            runner.run(part, seed, progress, on_row=lambda p, r: _record(p, r, log, done, delay), trials=trials,
                       known=known if trials is not None and prior else None)
    except Interrupted as exc:
        return done, exc.signal_name
    finally:
        if log is not None:
            log.close()
    return done, None


def _record(point, row: dict, log: runlog.RunLog | None, done: dict, delay: float = 0.0) -> None:
    with deferred():  # the log line and the row: both or neither
        if log is not None:
            log.append(row)
        done[key_of(point)] = row
    if delay > 0:
        time.sleep(delay)  # test hook, see the module docstring


def _on_leader(fn: Callable, world: World):
    """``fn()`` on rank 0, its result (or its error, as :class:`RankFailed`) on every rank."""
    if not world.distributed:
        return fn()
    value, error = _attempt(fn) if world.leader else (None, None)
    value, error = broadcast((value, error), world)  # type: ignore[misc]
    if error:
        raise RankFailed(f"rank 0: {error[0]}", error[1], silent=not world.leader)
    return value


def _on_every_rank(fn: Callable, world: World) -> list:
    """``fn()`` on every rank, the results of all ranks on every rank; the first rank's error raised on all."""
    if not world.distributed:
        return [fn()]
    results = all_gather(_attempt(fn), world)
    for rank, (_, error) in enumerate(results):
        if error:
            raise RankFailed(f"rank {rank}: {error[0]}", error[1], silent=not world.leader)
    return [value for value, _ in results]


def _attempt(fn: Callable) -> tuple[object, tuple[str, int] | None]:
    try:
        return fn(), None
    except WrobustError as exc:
        return None, (str(exc), exc.exit_code)
    except Exception as exc:  # the user's model code, a bug, a crash on one rank: the others must hear of it
        mine = user_code_error(exc)
        if mine is not None:
            return None, (str(mine), mine.exit_code)
        return None, (f"internal error: {type(exc).__name__}: {exc}", EXIT_INTERNAL)
