"""The package's shape: data flows one way, and the engine needs NumPy alone.

The layers, from the bottom up (a module may import from its own unit and from any unit
of a lower layer, never from a higher layer or from a neighbour on its own layer):

0. the engine and small helpers: ``tensor``, ``ops``, ``gradcheck``, ``graph_memory``,
   ``rng``, ``checks``, ``files``, ``progress`` (and ``lora_np/__init__.py``, which only
   re-exports them)
1. ``nn``          2. ``optim``          3. ``data``          4. ``train``
5. ``models``, ``lora``, ``subspace``
6. ``exercises``, ``experiments``
7. ``cli`` (and ``__main__``)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lora_np"

ENGINE = ("tensor", "ops", "gradcheck", "graph_memory", "rng", "checks", "files", "progress")
LAYERS: list[list[str]] = [
    ["engine"],
    ["nn"],
    ["optim"],
    ["data"],
    ["train"],
    ["models", "lora", "subspace"],
    ["exercises", "experiments"],
    ["cli"],
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """``lora_np.lora.layer`` -> ``lora``; the engine's modules (and the package) -> engine."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ENGINE:
        return "engine"
    if parts[1] == "__main__":
        return "cli"
    return parts[1]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(p for p in parts if p != "__init__")


def imported_modules(path: Path) -> set[str]:
    """Every ``lora_np`` module that the file imports, anywhere in it (inside functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # "from lora_np import nn" imports the subpackage lora_np.nn
            if node.module == "lora_np":
                found.update(f"lora_np.{alias.name}" for alias in node.names)
    return {m for m in found if m == "lora_np" or m.startswith("lora_np.")}


def wrong_way_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        here = unit_of(source)
        for target in sorted(imported_modules(path)):
            there = unit_of(target)
            if there not in RANK:  # e.g. "from lora_np import Tensor": a name, not a unit
                continue
            if there == here or RANK[there] < RANK[here]:
                continue
            problems.append(f"{source} ({here}, layer {RANK[here]}) imports {target} ({there})")
    return problems


def test_every_unit_of_the_package_has_a_layer() -> None:
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert units <= set(RANK), f"units without a layer: {sorted(units - set(RANK))}"


def test_imports_flow_one_way() -> None:
    problems = wrong_way_imports()
    assert not problems, "imports that run against the layers:\n" + "\n".join(problems)


def test_the_checker_sees_a_wrong_way_import(tmp_path: Path, monkeypatch) -> None:
    """The checker itself: a file in nn that imports lora is reported."""
    fake = tmp_path / "lora_np"
    (fake / "nn").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "nn" / "__init__.py").write_text("")
    (fake / "nn" / "bad.py").write_text("def f():\n    from lora_np.lora import LoRALinear\n")
    (fake / "lora").mkdir()
    (fake / "lora" / "__init__.py").write_text("from lora_np.nn import bad\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert wrong_way_imports() == [
        "lora_np.nn.bad (nn, layer 1) imports lora_np.lora (lora)",
    ]


# ----------------------------------------------------------------------------- NumPy alone

#: Run in a fresh interpreter in which the optional libraries cannot be imported.
BLOCKED = ("matplotlib", "safetensors", "tqdm", "nbformat", "nbclient", "threadpoolctl")
NUMPY_ONLY = f"""
import sys
for name in {BLOCKED!r}:
    sys.modules[name] = None  # "import name" now raises ImportError
import numpy as np
import lora_np, lora_np.gradcheck
from lora_np import Tensor, gradcheck
a = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
assert gradcheck(lambda a: (a @ a.T).tanh().sum(), [a])
from lora_np.data import digits_split
from lora_np.lora import LoRAConfig, apply_lora
from lora_np.nn import MLP
from lora_np.optim import Adam
from lora_np.subspace import SubspaceModel
from lora_np.train import evaluate, fit
X, y, X_test, y_test = digits_split()
model = apply_lora(MLP([64, 32, 10]), LoRAConfig(rank=2, alpha=4, target_modules=["0"]))
params = [p for p in model.parameters() if p.requires_grad]
fit(model, (X, y), optimizer=Adam(params, lr=1e-2), steps=5, progress=False)
SubspaceModel(MLP([64, 8, 10]), d=10, projection="fastfood")
print("numpy alone:", sorted(k for k in {BLOCKED!r} if sys.modules.get(k) is not None))
"""


def test_engine_layers_lora_and_subspace_run_with_numpy_alone() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NUMPY_ONLY], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "numpy alone: []" in done.stdout


@pytest.mark.parametrize("library", ["safetensors", "tqdm", "matplotlib"])
def test_the_blocking_is_real(library: str) -> None:
    """Blocking a library in the child makes importing it fail (so the test above means
    something)."""
    code = f"import sys; sys.modules[{library!r}] = None; import {library}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0 and f"import of {library} halted" in done.stderr
