"""The run log, point keys and shards: the parts of resumable runs that stand alone."""

from __future__ import annotations

import json
import math
import os
import signal
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robustbench_w.engine.runs import runlog
from robustbench_w.engine.runs.points import CLEAN_KEY, group_of, key_of, point_key, row_key
from robustbench_w.engine.runs.shards import Shard, parse_shard, partition, take_shard
from robustbench_w.engine.runs.signals import Interrupted, deferred, interruptible
from robustbench_w.errors import InputFileError, InvalidValueError

META = {"model": "m.pt", "model_sha256": "ab" * 32, "dataset": "digits", "split": "test", "n": 355, "seed": 0,
        "targets": ["1.weight", "3.weight"], "command": "wrobust sweep m.pt", "version": "0.1.0"}
ROWS = [{"spec": "none", "strength": math.nan, "trial": 0, "error": 0.025},
        {"spec": "addnorm", "strength": 0.1, "trial": 0, "error": 1 / 3, "loss": math.nan},
        {"spec": "clip", "strength": math.inf, "trial": 0, "error": 0.0, "eff_bits": None}]


def head(**changes) -> dict:
    return runlog.header("sweep", {**META, **changes}, ["addnorm|0.1|0", "clip|inf|0"])


def write(path, rows=ROWS, **changes) -> None:
    with runlog.RunLog(path, head(**changes)) as log:
        for r in rows:
            log.append(r)


def same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # NaN == NaN here


# ------------------------------------------------------------------ keys

def test_keys_are_exact_and_agree_between_points_and_rows():
    @dataclass
    class Dist:
        spec: str

    @dataclass
    class P:
        dist: Dist
        strength: float
        trial: int

    assert point_key("addnorm", 0.1, 2) == "addnorm|0.1|2"
    assert point_key("sign", math.nan, 0) == point_key("sign", None, 0) == "sign|nan|0"
    assert point_key("clip", math.inf, 0) == "clip|inf|0" and point_key("noise", 0.1, 0, "fc.weight").endswith("|fc.weight")
    assert point_key("a", 0.1 + 0.2, 0) != point_key("a", 0.3, 0)  # exact, not rounded
    assert key_of(P(Dist("addnorm"), 0.1, 2)) == row_key({"spec": "addnorm", "strength": 0.1, "trial": 2})
    assert group_of(P(Dist("addnorm"), 0.1, 2)) == group_of(P(Dist("addnorm"), 0.1, 0)) == "addnorm|0.1"
    assert row_key({"spec": "none", "strength": None, "trial": 0}) == CLEAN_KEY


# ------------------------------------------------------------------ the log

def test_log_round_trips_rows_exactly(tmp_path):
    path = tmp_path / "run.jsonl"
    write(path)
    contents = runlog.read_log(path)
    assert contents.header["format"] == "wrobust-log" and contents.header["version"] == runlog.VERSION
    assert contents.header["points"] == ["addnorm|0.1|0", "clip|inf|0"] and not contents.torn
    assert len(contents.rows) == 3 and all(same(a, b) for a, b in zip(contents.rows, ROWS))
    assert contents.rows[2]["strength"] == math.inf and math.isnan(contents.rows[1]["loss"])


@pytest.mark.parametrize("cut", [1, 10, -1])
def test_a_torn_last_line_is_dropped_and_cut_before_appending(tmp_path, cut):
    path = tmp_path / "run.jsonl"
    write(path)
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[:last + cut] if cut > 0 else data[:-1])  # a kill in the middle of the last line
    contents = runlog.read_log(path)
    assert contents.torn and len(contents.rows) == 2
    with runlog.RunLog(path, head(), resume=True) as log:
        log.append(ROWS[2])
    again = runlog.read_log(path)
    assert not again.torn and len(again.rows) == 3 and same(again.rows[2], ROWS[2])


def test_a_last_line_of_garbage_counts_as_torn_but_damage_inside_is_an_error(tmp_path):
    path = tmp_path / "run.jsonl"
    write(path)
    path.write_bytes(path.read_bytes() + b"\x00\x00\x00\n")  # what a machine crash can leave
    assert runlog.read_log(path).torn and len(runlog.read_log(path).rows) == 3
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join(lines[:2] + [b"{oops"] + lines[2:]))
    with pytest.raises(InputFileError, match="line 3 is not a JSON object"):
        runlog.read_log(path)


def test_a_header_torn_in_half_starts_the_log_afresh(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(head())[:30])
    with runlog.RunLog(path, head(), resume=True) as log:
        log.append(ROWS[0])
    contents = runlog.read_log(path)
    assert contents.header is not None and len(contents.rows) == 1


def test_an_existing_log_needs_resume_and_a_foreign_file_is_refused(tmp_path):
    path = tmp_path / "run.jsonl"
    write(path)
    with pytest.raises(InputFileError, match="pass --resume"):
        runlog.RunLog(path, head())
    other = tmp_path / "rows.jsonl"
    other.write_text('{"spec": "none"}\n')
    with pytest.raises(InputFileError, match="not a wrobust run log"):
        runlog.read_log(other)
    with pytest.raises(InputFileError, match="does not exist"):
        runlog.RunLog(tmp_path / "no" / "run.jsonl", head())


@pytest.mark.parametrize("change,words", [
    ({"seed": 1}, "seed 0 vs 1"),
    ({"model_sha256": "cd" * 32}, "model sha256 abababababab vs cdcdcdcdcdcd"),
    ({"dataset": "mnist"}, "dataset digits vs mnist"),
    ({"n": 100}, "dataset size 355 vs 100"),
    ({"targets": ["1.weight"]}, "targets"),
])
def test_resuming_another_runs_log_names_what_differs(tmp_path, change, words):
    path = tmp_path / "run.jsonl"
    write(path)
    with pytest.raises(InputFileError, match="belongs to another run") as exc:
        runlog.RunLog(path, head(**change), resume=True)
    assert words in str(exc.value) and "\n" not in str(exc.value)


def test_same_model_under_another_path_is_the_same_run():
    assert runlog.differences(head(), head(model="/elsewhere/m.pt")) == []
    assert runlog.differences(head(model_sha256=None), head(model="b.pt", model_sha256=None)) == ["model m.pt vs b.pt"]


def test_a_newer_log_version_is_refused(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps({**head(), "version": runlog.VERSION + 1}) + "\n")
    with pytest.raises(InputFileError, match="newer"):
        runlog.read_log(path)


def test_rank_logs_are_found_and_folded_into_the_main_log(tmp_path):
    path = tmp_path / "run.jsonl"
    assert runlog.rank_path(path, 0) == path and runlog.rank_path(path, 3).name == "run.rank3.jsonl"
    write(path, ROWS[:2])
    write(runlog.rank_path(path, 1), ROWS[1:])
    (tmp_path / "run.rankx.jsonl").write_text("not ours")
    assert [p.name for p in runlog.family(path)] == ["run.jsonl", "run.rank1.jsonl"]
    runlog.consolidate(path)
    assert [p.name for p in runlog.family(path)] == ["run.jsonl"]
    assert [row_key(r) for r in runlog.read_log(path).rows] == [row_key(r) for r in ROWS]


# ------------------------------------------------------------------ shards

@pytest.mark.parametrize("text", ["3/2", "0/2", "1/0", "2", "a/b", "-1/2", "1/2/3"])
def test_bad_shards_are_usage_errors(text):
    with pytest.raises(InvalidValueError, match="--shard"):
        parse_shard(text)


def test_shard_text():
    assert parse_shard(" 2 / 4 ") == Shard(2, 4) and str(Shard(2, 4)) == "2/4"


@dataclass(frozen=True)
class _Dist:
    spec: str


@dataclass(frozen=True)
class _Point:
    dist: _Dist
    strength: float
    trial: int


def grid(groups: list[tuple[str, int]]) -> list[_Point]:
    """One group per (spec, trials), strengths 0, 1, ... per spec."""
    points, strengths = [], {}
    for spec, trials in groups:
        s = strengths[spec] = strengths.get(spec, -1) + 1
        points += [_Point(_Dist(spec), float(s), t) for t in range(trials)]
    return points


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 6)), max_size=25), st.integers(1, 5))
def test_shards_cover_the_grid_once_keep_groups_whole_and_balance_cost(groups, parts):
    points = grid(groups)
    shards = partition(points, parts)
    assert len(shards) == parts and partition(points, parts) == shards  # deterministic
    assert sorted(map(key_of, sum(shards, []))) == sorted(map(key_of, points))
    owner = {group_of(p): i for i, s in enumerate(shards) for p in s}
    assert all(owner[group_of(p)] == i for i, s in enumerate(shards) for p in s)
    for s in shards:  # each shard keeps the plan's order
        assert [points.index(p) for p in s] == sorted(points.index(p) for p in s)
    loads = [len(s) for s in shards]
    biggest = max((t for _, t in groups), default=0)
    assert max(loads) - min(loads) <= biggest  # greedy, heaviest first: within one group of each other


def test_shards_balance_by_cost_not_by_count():
    points = grid([("a", 1), ("a", 1), ("a", 1), ("a", 1), ("b", 4)])  # 4 single points, one group of 4
    first, second = partition(points, 2)
    assert len(first) == 4 and len(second) == 4  # not 3 groups against 2
    heavy = partition(points, 2, cost=lambda p: 10.0 if p.dist.spec == "a" else 1.0)
    assert sorted(len(s) for s in heavy) == [2, 6]
    assert take_shard(points, None) == points and take_shard(points, Shard(1, 1)) == points


# ------------------------------------------------------------------ signals

def test_a_signal_raises_interrupted_and_the_old_handler_comes_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as exc:
        with interruptible():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10**6):  # the handler runs between two bytecodes
                pass
    assert exc.value.signal_name == "SIGTERM" and isinstance(exc.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_signal_inside_deferred_waits_for_the_block_to_end():
    recorded = []
    with pytest.raises(Interrupted):
        with interruptible():
            with deferred():
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(10**5):
                    pass
                recorded.append("row and log line")
            recorded.append("next point")  # never reached
    assert recorded == ["row and log line"]


# ------------------------------------------------------------------ torchrun's environment

def test_the_world_comes_from_torchruns_environment(monkeypatch):
    from robustbench_w.engine.runs.distributed import World, all_gather, broadcast, current_world

    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert current_world() == World(0, 1, 0) and not current_world().distributed
    assert all_gather("x", current_world()) == ["x"] and broadcast("y", current_world()) == "y"
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    world = current_world()
    assert world == World(2, 4, 0) and world.distributed and not world.leader
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(InvalidValueError, match="RANK=4 does not fit WORLD_SIZE=4"):
        current_world()
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(InvalidValueError, match="integers"):
        current_world()


def test_an_error_on_one_rank_is_raised_on_every_rank_and_said_by_rank_0(monkeypatch):
    from robustbench_w.engine.runs import resume
    from robustbench_w.engine.runs.distributed import World
    from robustbench_w.errors import RankFailed

    gathered = []
    monkeypatch.setattr(resume, "all_gather", lambda obj, world: gathered.append(obj) or [obj, (None, ("boom", 2))])
    with pytest.raises(RankFailed, match="^rank 1: boom$") as exc:
        resume._on_every_rank(lambda: "rows", World(0, 2, 0))
    assert gathered == [("rows", None)] and exc.value.exit_code == 2 and not exc.value.silent

    def crash():
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(resume, "all_gather", lambda obj, world: [(None, None), obj])
    with pytest.raises(RankFailed, match="rank 1: internal error: ZeroDivisionError") as exc:
        resume._on_every_rank(crash, World(1, 2, 1))
    assert exc.value.exit_code == 3 and exc.value.silent  # rank 0 says it
