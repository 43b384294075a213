"""The package's layout (SPEC section 4): wings import downward only, and no two files import each other.

The import graph is read from the source with ``ast`` (imports inside functions count too): an edge goes from
a file to every file of the package that one of its import statements names.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "robustbench_w"
ROOT = "robustbench_w"
# Higher levels may import lower ones and their own level; never a higher one.
LEVELS = {
    "cli": 6, "__main__": 6,
    "paper": 5, "gate": 5,
    "report": 4,
    "bits": 3, "engine": 3,
    "load": 2, "datasets": 2,
    "distortions": 1,
    "registry": 0, "errors": 0,
}
TOP_LEVEL_FILES = {"__init__.py", "__main__.py", "registry.py", "errors.py", "bits.py", "report.py"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(module: str, path: Path) -> set[str]:
    """The package's modules that ``module`` imports."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(max(node.level - 1, 0)):
                base = base.rsplit(".", 1)[0]
            target = (f"{base}.{node.module}" if node.module else base) if node.level else (node.module or "")
            names = [target, *(f"{target}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        # ``from .x import y``: the submodule ``x.y`` when it is one, else the module ``x``
        subs = [n for n in names[1:] if n in FILES]
        found.update(subs or [n for n in names[:1] if n in FILES])
    found.discard(module)
    return found


GRAPH = {m: imported(m, p) for m, p in FILES.items()}


def level(module: str) -> int:
    if module == ROOT:
        return 0  # the package root holds the version and a lazy name map: it imports nothing (tested below)
    return LEVELS[module.split(".")[1]]


def test_only_the_named_files_stand_at_the_top():
    assert {p.name for p in PACKAGE.glob("*.py")} <= TOP_LEVEL_FILES
    for wing in ("engine", "load", "gate", "paper", "datasets", "distortions", "report", "cli"):
        assert (PACKAGE / wing / "__init__.py").is_file()


def test_every_file_belongs_to_a_level():
    for module in FILES:
        level(module)  # KeyError for a wing that the table above does not know


def test_no_import_cycles():
    """No cycle of any length: a depth-first search finds no edge back to a file on the current path."""
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(GRAPH[m]):
            if state.get(n) == 1:
                cycle = path[path.index(n):] + [n]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n, path + [n])
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])


def test_wings_import_downward_only():
    upward = [f"{a} ({level(a)}) imports {b} ({level(b)})" for a in sorted(GRAPH) for b in sorted(GRAPH[a])
              if level(b) > level(a)]
    assert not upward, "\n".join(upward)


# engine/'s sub-wings follow one point: runs -> weights -> passes (a higher number may import a lower one).
ENGINE_STAGES = {"passes": 0, "weights": 1, "runs": 2}
ENGINE_TOP = {"__init__.py", "defaults.py"}


def stage(module: str) -> int | None:
    """The stage of a module of ``engine`` (-1 for ``engine.defaults``), None outside ``engine`` or for its root."""
    parts = module.split(".")
    if len(parts) < 3 or parts[1] != "engine":
        return None
    return ENGINE_STAGES.get(parts[2], -1)


def test_engine_holds_its_stages_only():
    entries = {p.name for p in (PACKAGE / "engine").iterdir() if p.name != "__pycache__"}
    assert entries == set(ENGINE_STAGES) | ENGINE_TOP
    for name in ENGINE_STAGES:
        doc = importlib.import_module(f"{ROOT}.engine.{name}").__doc__
        assert doc and "Stage" in doc.splitlines()[0]


def test_engine_stages_import_one_way():
    back = [f"{a} imports {b}" for a in sorted(GRAPH) for b in sorted(GRAPH[a])
            if stage(a) is not None and stage(b) is not None and stage(b) > stage(a)]
    assert not back, "\n".join(back)


def test_the_stage_check_can_fail(monkeypatch):
    monkeypatch.setitem(GRAPH, f"{ROOT}.engine.passes.evaluate", {f"{ROOT}.engine.weights.perturb"})
    with pytest.raises(AssertionError, match="passes.evaluate imports"):
        test_engine_stages_import_one_way()


def test_the_root_and_the_lazy_wings_import_nothing_heavy():
    assert GRAPH[ROOT] <= {f"{ROOT}.registry"}
    code = ("import sys, robustbench_w, robustbench_w.engine, robustbench_w.load, robustbench_w.gate, "
            "robustbench_w.paper; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_cycle_check_can_fail(monkeypatch):
    monkeypatch.setitem(GRAPH, f"{ROOT}.errors", {f"{ROOT}.registry"})  # registry already imports errors
    with pytest.raises(pytest.fail.Exception, match="import cycle"):
        test_no_import_cycles()


def test_wings_and_public_api_import():
    import robustbench_w as rw

    for wing in ("engine", "load", "gate", "paper", "datasets", "distortions"):
        importlib.import_module(f"{ROOT}.{wing}")
    for name in ("effective_bits", "get_distortion", "list_distortions", "load_dataset", "load_model",
                 "register_distortion", "summarize", "sweep", "train", "reproduce", "gate", "__version__"):
        assert name in rw.__all__ and getattr(rw, name) is not None
    assert callable(rw.gate) and callable(rw.train) and callable(rw.reproduce)
    for wing in ("engine", "load", "gate", "paper", "report"):
        module = importlib.import_module(f"{ROOT}.{wing}")
        assert module.__doc__ and len(module.__doc__.splitlines()) >= 3
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{wing}.{name}"


def test_old_import_paths_still_work():
    sys.modules.pop(f"{ROOT}.data", None)
    sys.modules.pop(f"{ROOT}.checkpoints", None)
    with pytest.warns(DeprecationWarning, match="moved to robustbench_w.datasets.base"):
        from robustbench_w.data import register_dataset
    with pytest.warns(DeprecationWarning, match="moved to robustbench_w.load.checkpoints"):
        from robustbench_w.checkpoints import save_checkpoint
    from robustbench_w.datasets import register_dataset as new_register
    from robustbench_w.load import save_checkpoint as new_save

    assert register_dataset is new_register and save_checkpoint is new_save


def test_the_flat_engine_paths_of_0_1_still_import():
    sys.modules.pop(f"{ROOT}.engine.sweep", None)
    with pytest.warns(DeprecationWarning, match="moved to robustbench_w.engine.runs.sweep"):
        from robustbench_w.engine.sweep import sweep as old
    from robustbench_w.engine.runs.sweep import sweep as new

    assert old is new


def test_gate_train_and_reproduce_are_functions_of_the_api(tmp_path):
    import robustbench_w as rw

    policy = tmp_path / "p.toml"
    policy.write_text('[gate]\ndataset = "digits"\n[[gate.require]]\ndistortion = "sign"\nmax_error = 0.5\n')
    result = rw.gate("builtin:digits-mlp", policy, device="cpu")
    assert result.passed and len(result.verdicts) == 1
    trained = rw.train(dataset="digits", projection="sign", epochs=1, device="cpu")
    assert trained.record["rule"] == "sign" and trained.record["epochs"] == 1
    grid = rw.reproduce(rules=("none", "sign"), distortions=("sign",), epochs=1, trials=1, device="cpu")
    assert set(grid.rows["rule"]) == {"none", "sign"}
