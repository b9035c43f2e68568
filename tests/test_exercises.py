"""The grader, graded: every check passes its reference solution, fails the stub and known
wrong answers with the message one expects, and fails cleanly — an ExerciseError, never a
crash inside the grader — on None, a wrong shape or dtype, and code that raises.

The reference solutions are the exercise cells of the solution notebooks (tagged
``exercise:<name>``): the tests read those cells' source and run it, so the answers live
in the notebooks and nowhere in the package. The stubs are what
``tools/make_student_notebooks.py`` makes of the same cells.
"""

from __future__ import annotations

import ast
import importlib.util
import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

import lora_np
import lora_np.exercises as exercises
from lora_np import Function
from lora_np.exercises import ExerciseError, check, list_exercises
from lora_np.lora import LoRALinear
from lora_np.nn import Linear, Module
from lora_np.subspace import fwht

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location(
    "make_student_notebooks", REPO / "tools" / "make_student_notebooks.py"
)
TOOL = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TOOL)


def _solution_cells() -> dict[str, tuple[str, str]]:
    """{exercise name: (notebook stem, the exercise cell's source)} from notebooks/*.ipynb."""
    found = {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for name, cell in TOOL.exercise_cells(nbformat.read(path, as_version=4)).items():
            assert name not in found, f"exercise {name!r} has cells in two notebooks"
            found[name] = (path.stem, cell.source)
    return found


CELLS = _solution_cells()
NAMES = [info.name for info in list_exercises()]


def _run(source: str, label: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(source, label, "exec"), namespace)
    return namespace


def solution(name: str) -> Any:
    """The reference function or class of an exercise, defined without running its check."""
    source = CELLS[name][1]
    tree = ast.parse(source)
    tree.body = [node for node in tree.body if not TOOL._is_check_call(node)]
    namespace: dict[str, Any] = {}
    exec(compile(tree, f"<solution of {name}>", "exec"), namespace)
    return namespace[TOOL.checked_object(source)[1]]


def fails(name: str, fn: Any, pattern: str) -> str:
    with pytest.raises(ExerciseError, match=pattern) as caught:
        check(name, fn, verbose=False)
    message = str(caught.value)
    assert message.startswith(f"{name}: "), message
    return message


# =========================================================================== the table


def test_there_are_at_least_16_exercises_and_one_per_notebook() -> None:
    infos = list_exercises()
    assert len(infos) >= 16
    notebooks = {info.notebook[:2] for info in infos}
    assert {f"{n:02d}" for n in range(1, 11)} <= notebooks
    assert len(set(NAMES)) == len(NAMES)


def test_the_named_exercises_have_their_signatures() -> None:
    signatures = {info.name: info.signature for info in list_exercises()}
    assert signatures["matmul_vjp"] == "matmul_vjp(a, b, g) -> (ga, gb)"
    assert signatures["sum_to_shape"] == "sum_to_shape(g, shape) -> array"
    assert signatures["log_softmax_vjp"] == "log_softmax_vjp(x, g) -> gx"
    assert signatures["lora_forward"] == "lora_forward(x, W, bias, A, B, alpha, rank) -> y"
    assert signatures["lora_merge"] == "lora_merge(W, A, B, alpha, rank) -> W_merged"
    assert signatures["subspace_similarity"] == "subspace_similarity(A1, A2, i, j) -> float"
    assert signatures["fwht"] == "fwht(x) -> array"
    assert signatures["dint90"] == "dint90(dims, accuracies, baseline) -> float"


def test_every_exercise_has_one_solution_cell_in_its_own_notebook() -> None:
    assert set(CELLS) == set(NAMES)
    for info in list_exercises():
        stem, source = CELLS[info.name]
        assert stem == info.notebook, (info.name, stem)
        assert TOOL.checked_object(source)[0] == info.name
        assert "\n" not in info.statement and info.statement.endswith(".")


def test_the_command_line_count() -> None:
    assert len(exercises.list_exercises()) >= 16


# =========================================================================== solution and stub


@pytest.mark.parametrize("name", NAMES)
def test_the_solution_cell_passes_its_check(name: str, capsys: pytest.CaptureFixture) -> None:
    _run(CELLS[name][1], f"<solution cell of {name}>")  # the cell itself calls check(...)
    assert f"{name}: correct" in capsys.readouterr().out
    assert check(name, solution(name), seed=1, verbose=False) is True  # other random cases


@pytest.mark.parametrize("name", NAMES)
def test_the_stub_fails_as_not_written_yet(name: str) -> None:
    stub = TOOL.stub_source(CELLS[name][1])
    assert "NotImplementedError" in stub
    with pytest.raises(ExerciseError, match=rf"^{name}: not written yet: .* NotImplementedError"):
        _run(stub, f"<stub of {name}>")


# =========================================================================== known wrong answers


def _sum_only_prepended(g, shape):
    return g.sum(axis=tuple(range(g.ndim - len(shape))))


def _sum_mean(g, shape):
    extra = g.ndim - len(shape)
    g = g.mean(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.mean(axis=axes, keepdims=True)


def _sum_no_keepdims(g, shape):
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1))


def _class_sin(backward: Callable, save_on_class: bool = False, save: bool = True) -> type:
    class WrongSin(Function):
        def forward(self, a):
            if save_on_class:
                WrongSin.a = a  # shared by every application: the nested check sees it
            elif save:
                self.a = a
            return np.sin(a)

        def backward(self, grad):
            return backward(self, grad)

    return WrongSin


class _TensorForwardSin(Function):
    register = False

    def forward(self, a):
        self.a = a
        return lora_np.Tensor(np.sin(a))

    def backward(self, grad):
        return (grad * np.cos(self.a),)


def _forward_difference(f, x, eps):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (f(x + step) - f(x)) / eps
    return grad


def _central_over_eps(f, x, eps):
    return solution("central_difference")(f, x, eps) * 2


def _central_at_a_fixed_eps(f, x, eps):
    return solution("central_difference")(f, x, 1e-6)  # eps ignored


def _five_point_stencil(f, x, eps):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[i] = eps
        grad[i] = (f(x - 2 * step) - 8 * f(x - step) + 8 * f(x + step) - f(x + 2 * step)) / (
            12 * eps
        )
    return grad


def _one_direction_for_every_column(D, d, rng):
    column = rng.standard_normal(D)
    return np.repeat((column / np.linalg.norm(column))[:, None], d, axis=1)


def _fwht_through_h(x):
    h = np.ones((1, 1))
    while h.shape[0] < len(x):  # Sylvester's construction: H_2n = [[H, H], [H, -H]]
        h = np.block([[h, h], [h, -h]])
    return h @ x


def _groups_that_change_what_trains(change: str) -> Callable:
    def groups(model, lr, ratio):
        if change == "base unfrozen":
            model.requires_grad_(True)
        else:  # the B matrices frozen, the rest in one group
            for m in model.modules():
                if isinstance(m, LoRALinear):
                    m.lora_b.weight.requires_grad = False
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]

    return groups


def _central_in_place(f, x, eps):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        x[i] += eps
        up = f(x)
        x[i] -= 2 * eps
        grad[i] = (up - f(x)) / (2 * eps)  # and x is left eps below where it was
    return grad


def _central_all_at_once(f, x, eps):
    return np.full_like(x, (f(x + eps) - f(x - eps)) / (2 * eps))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _naive_log_softmax_vjp(x, g):
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(x)  # overflows near 800
        return g - e / e.sum(axis=-1, keepdims=True) * g.sum(axis=-1, keepdims=True)


def _lora_forward_with(scaling: Callable) -> Callable:
    def lora_forward(x, W, bias, A, B, alpha, rank):
        y = x @ W.T + scaling(alpha, rank) * (x @ A.T @ B.T)
        return y if bias is None else y + bias

    return lora_forward


def _lora_forward_no_bias(x, W, bias, A, B, alpha, rank):
    return x @ W.T + (alpha / rank) * (x @ A.T @ B.T)


def _lora_forward_float64(x, W, bias, A, B, alpha, rank):
    x, W, A, B = (np.asarray(v, dtype=np.float64) for v in (x, W, A, B))
    return solution("lora_forward")(x, W, bias, A, B, alpha, rank)


def _lora_merge_in_place(W, A, B, alpha, rank):
    W += (alpha / rank) * (B @ A)
    return W


def _dense_projection_with(draw: Callable) -> Callable:
    def dense_projection(D, d, rng):
        return draw(D, d, rng)

    return dense_projection


def _fwht_stages(stages: int | None, swapped: bool = False, in_place: bool = False) -> Callable:
    def transform(x):
        y = x if in_place else x.copy()
        h, done = 1, 0
        while h < len(y) and (stages is None or done < stages):
            pairs = y.reshape(-1, 2, h)
            a, b = pairs[:, 0].copy(), pairs[:, 1].copy()
            pairs[:, 0], pairs[:, 1] = (a - b, a + b) if swapped else (a + b, a - b)
            h, done = 2 * h, done + 1
        return y

    return transform


def _fastfood_wrong(mistake: str) -> Callable:
    def transpose(g, signs, perm, gauss, scale, d):
        y = np.zeros(len(signs))
        y[: len(g)] = g
        y = (fwht(g) if mistake == "no padding" else fwht(y)) * gauss
        if mistake == "Π instead of Πᵀ":
            z = y[perm]
        else:
            z = np.empty_like(y)
            z[perm] = y
        z = fwht(z) * signs
        s = 1.0 if mistake == "no scale" else scale
        return s * (z[-d:] if mistake == "last d entries" else z[:d])

    return transpose


def _dint90_wrong(mistake: str) -> Callable:
    def dint90(dims, accuracies, baseline):
        target = baseline if mistake == "target = baseline" else 0.9 * baseline
        pairs = list(zip(dims, accuracies, strict=True))
        order = range(len(pairs) - 1, -1, -1) if mistake == "last crossing" else range(len(pairs))
        for i in order:
            d, a = pairs[i]
            reached = a > target if mistake == "> for >=" else a >= target
            crossed = reached and (mistake != "last crossing" or pairs[i - 1][1] < target)
            if not crossed:
                continue
            if i == 0 or mistake == "no interpolation":
                return float(d)
            d0, a0 = pairs[i - 1]
            t = (target - a0) / (a - a0)
            if mistake == "linear in d":
                return d0 + t * (d - d0)
            return math.exp(math.log(d0) + t * (math.log(d) - math.log(d0)))
        return None if mistake == "None for no crossing" else float("nan")

    return dint90


def _add_lora_wrong(mistake: str) -> Callable:
    def add_lora(model, targets, rank, alpha):
        if mistake != "nothing frozen":
            for p in model.parameters():
                p.requires_grad = False
        names = [n for n, m in model.named_modules() if isinstance(m, Linear)]
        for name in names if mistake == "every Linear" else targets:
            old = model.get_submodule(name)
            if mistake == "a new layer":
                new = LoRALinear(old.in_features, old.out_features, rank, alpha, bias=True)
            else:
                new = LoRALinear.from_linear(old, rank, alpha)
            if mistake == "adapters frozen":
                new.requires_grad_(False)
            setattr(model, name, new)
        return None if mistake == "no return" else model

    return add_lora


def _first_step_wrong(mistake: str) -> Callable:
    def first_step_update(x, A, G, alpha, rank, lr, optimizer):
        s = alpha / rank
        grad_B = s * G.T @ (x @ A.T)
        if optimizer == "adam" and mistake != "adam as sgd":
            step = lr * grad_B / (np.abs(grad_B) + 1e-8)
        else:
            step = lr * grad_B
        sign = 1.0 if mistake == "gradient ascent" else -1.0
        outer = 1.0 if mistake == "s once" and optimizer == "sgd" else s
        return outer * (sign * step) @ A

    return first_step_update


def _phi_wrong(mistake: str) -> Callable:
    def phi(A1, A2, i, j):
        if mistake == "left singular vectors":
            U1 = np.linalg.svd(A1, full_matrices=False)[0][:, :i]
            U2 = np.linalg.svd(A2, full_matrices=False)[0][:, :j]
        elif mistake == "rows of A":
            U1, U2 = A1[:i].T, A2[:j].T
        else:
            U1 = np.linalg.svd(A1, full_matrices=False)[2][:i].T
            U2 = np.linalg.svd(A2, full_matrices=False)[2][:j].T
        overlap = U1.T @ U2
        if mistake == "max(i, j)":
            return float(np.sum(overlap**2) / max(i, j))
        if mistake == "not squared":
            return float(np.sum(np.abs(overlap)) / min(i, j))
        return float(np.sum(overlap**2) / min(i, j))

    return phi


def _amplification_wrong(mistake: str) -> Callable:
    def amplification(W, delta, r):
        U, _, Vt = np.linalg.svd(W if mistake == "U, V from W" else delta, full_matrices=False)
        projected = np.linalg.norm(U[:, :r].T @ W @ Vt[:r].T)
        norm = np.linalg.norm(delta, 2) if mistake == "spectral norm" else np.linalg.norm(delta)
        return float(projected / norm if mistake == "inverted" else norm / projected)

    return amplification


def _dora_wrong(mistake: str) -> Callable:
    def dora(W, delta, m):
        V = W if mistake == "direction of W only" else W + delta
        if mistake == "column norms":
            return m[:, None] * V / np.linalg.norm(V, axis=0, keepdims=True)
        norm = np.linalg.norm(W if mistake == "norm of W" else V, axis=1, keepdims=True)
        return (1.0 if mistake == "no magnitude" else m[:, None]) * V / norm

    return dora


def _pissa_wrong(mistake: str) -> Callable:
    def pissa(W, rank, alpha):
        s = alpha / rank
        U, S, Vt = np.linalg.svd(W, full_matrices=False)
        keep = slice(len(S) - rank, None) if mistake == "smallest singular values" else slice(rank)
        root = np.sqrt(S[keep] if mistake == "no scaling" else S[keep] / s)
        A, B = root[:, None] * Vt[keep], U[:, keep] * root
        if mistake == "all of S in B":
            A, B = Vt[keep], U[:, keep] * (S[keep] / s)
        residual = W if mistake == "no residual" else W - s * B @ A
        return A, B, residual

    return pissa


def _groups_wrong(mistake: str) -> Callable:
    def groups(model, lr, ratio):
        b_ids = {id(m.lora_b.weight) for m in model.modules() if isinstance(m, LoRALinear)}
        a_ids = {id(m.lora_a.weight) for m in model.modules() if isinstance(m, LoRALinear)}
        pool = list(model.parameters())
        if mistake != "frozen included":
            pool = [p for p in pool if p.requires_grad]
        fast_ids = a_ids if mistake == "A in the fast group" else b_ids
        if mistake == "only A and B":
            pool = [p for p in pool if id(p) in a_ids | b_ids]
        slow = [p for p in pool if id(p) not in fast_ids]
        fast = [p for p in pool if id(p) in fast_ids]
        rate = lr / ratio if mistake == "lr / ratio" else lr * ratio
        if mistake == "B twice":  # the B's in their own group, and again among all the rest
            return [{"params": fast, "lr": rate}, {"params": pool, "lr": lr}]
        result = [{"params": slow, "lr": lr}, {"params": fast, "lr": rate}]
        return result[0] if mistake == "a dict" else result

    return groups


class _WrongLoRALinear(Module):
    """A LoRA layer with one of several mistakes switched on (by default: B is random)."""

    def __init__(
        self,
        in_feats,
        out_feats,
        rank,
        alpha,
        *,
        freeze=True,
        scaling_is_alpha=False,
        names=("lora_a", "lora_b"),
        zero_b=False,
        scale_forward=True,
        return_array=False,
    ):
        super().__init__()
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha if scaling_is_alpha else alpha / rank
        self.linear = Linear(in_feats, out_feats, bias=False)
        setattr(self, names[0], Linear(in_feats, rank, bias=False))
        setattr(self, names[1], Linear(rank, out_feats, bias=False))
        self.linear.weight.requires_grad = not freeze
        if zero_b:
            getattr(self, names[1]).weight.data[:] = 0
        self._names, self._scale_forward, self._array = names, scale_forward, return_array

    def forward(self, x):
        a, b = (getattr(self, n) for n in self._names)
        out = self.linear(x) + (self.scaling if self._scale_forward else 1.0) * b(a(x))
        return out.data if self._array else out


def _lora_linear_variant(**options) -> type:
    class Variant(_WrongLoRALinear):
        def __init__(self, in_feats, out_feats, rank, alpha):
            super().__init__(in_feats, out_feats, rank, alpha, **options)

    return Variant


def _activation_bytes_wrong(mistake: str) -> Callable:
    def activation_bytes(sizes, batch, mode, rank):
        hidden = list(sizes[1:-1])
        mask = 4 if mistake == "masks as float32" else 1
        total = mask * batch * sum(hidden)
        if mistake != "no log-probabilities":
            total += 4 * batch * sizes[-1]
        if mistake == "the batch counted" and mode != "lora_fa":
            total += 4 * batch * sizes[0]
        if mode == "full":
            total += 4 * batch * sum(hidden)
            if mistake == "weights counted":
                total += 4 * sum(a * b for a, b in itertools.pairwise(sizes[1:]))
        else:
            total += 4 * batch * rank * (len(sizes) - 2)
            if mode == "lora" or mistake == "LoRA-FA keeps the inputs":
                total += 4 * batch * sum(hidden[:-1])
        return total / 1 if mistake == "a float" else total

    return activation_bytes


def _causal_attention_wrong(mistake: str) -> Callable:
    def causal_attention(q, k, v):
        size, length = q.shape[-1], q.shape[-2]
        scale = {"no scale": 1.0, "scaled by sqrt(T)": np.sqrt(length)}.get(mistake, np.sqrt(size))
        scores = q @ np.swapaxes(k, -1, -2) / scale
        if mistake != "no mask":
            diagonal = 0 if mistake == "diagonal masked" else 1
            future = np.triu(np.ones((length, length), dtype=bool), k=diagonal)
            scores = np.where(future, -np.inf, scores)
        axis = -2 if mistake == "softmax over the queries" else -1
        with np.errstate(over="ignore", invalid="ignore"):  # the mistakes give inf and NaN
            if mistake != "no maximum subtracted":
                scores = scores - scores.max(axis=axis, keepdims=True)
            weights = np.exp(scores)
            weights = weights / weights.sum(axis=axis, keepdims=True)
        return weights @ v

    return causal_attention


WRONG: list[tuple[str, str, Any, str]] = [
    # (exercise, the mistake, the wrong answer, what the message must say)
    ("sum_to_shape", "summed only the prepended axes", _sum_only_prepended, r"has shape"),
    ("sum_to_shape", "mean instead of sum", _sum_mean, r"times the expected one"),
    (
        "sum_to_shape",
        "reshape instead of sum",
        lambda g, shape: g.reshape(shape),
        r"raised ValueError",
    ),
    (
        "sum_to_shape",
        "forgot keepdims",
        _sum_no_keepdims,
        r"has shape \(\d+,\), expected \(\d+, 1\)",
    ),
    (
        "matmul_vjp",
        "a transpose written as a reshape",
        lambda a, b, g: (g @ b.reshape(b.shape[1], b.shape[0]), a.T @ g),
        r"your ga .* is wrong",
    ),
    ("matmul_vjp", "a sign flip", lambda a, b, g: (-(g @ b.T), -(a.T @ g)), r"opposite sign"),
    (
        "matmul_vjp",
        "the two gradients swapped",
        lambda a, b, g: (a.T @ g, g @ b.T),
        r"your ga has shape",
    ),
    (
        "matmul_vjp",
        "gb transposed",
        lambda a, b, g: (g @ b.T, g.T @ a),
        r"your gb has shape .*b's shape",
    ),
    (
        "sin_function",
        "the derivative of cos",
        _class_sin(lambda self, g: (-g * np.sin(self.a),)),
        r"backward's gradient is wrong",
    ),
    (
        "sin_function",
        "a sign flip",
        _class_sin(lambda self, g: (-g * np.cos(self.a),)),
        r"opposite sign",
    ),
    (
        "sin_function",
        "the upstream gradient ignored",
        _class_sin(lambda self, g: (np.cos(self.a),)),
        r"backward's gradient is wrong",
    ),
    (
        "sin_function",
        "the input saved on the class",
        _class_sin(lambda self, g: (g * np.cos(type(self).a),), save_on_class=True),
        r"x.grad after backward through .* must save its own input",
    ),
    (
        "sin_function",
        "nothing saved",
        _class_sin(lambda self, g: (g * np.cos(self.a),), save=False),
        r"raised AttributeError",
    ),
    ("sin_function", "forward returns a Tensor", _TensorForwardSin, r"is a lora_np Tensor"),
    ("sin_function", "a function, not a class", lambda a: np.sin(a), r"expected your class itself"),
    ("central_difference", "forward differences", _forward_difference, r"your gradient is wrong"),
    ("central_difference", "divided by eps, not 2·eps", _central_over_eps, r"2 times the expected"),
    (
        "central_difference",
        "x changed in place",
        _central_in_place,
        r"changed its input 'x' in place",
    ),
    (
        "central_difference",
        "every entry perturbed at once",
        _central_all_at_once,
        r"your gradient is wrong",
    ),
    ("log_softmax_vjp", "the sum forgotten", lambda x, g: g - _softmax(x) * g, r"your gx is wrong"),
    (
        "log_softmax_vjp",
        "softmax without the max subtracted",
        _naive_log_softmax_vjp,
        r"NaN or infinite .* near 800",
    ),
    (
        "log_softmax_vjp",
        "summed over the first axis",
        lambda x, g: g - _softmax(x) * g.sum(axis=0, keepdims=True),
        r"your gx is wrong",
    ),
    (
        "log_softmax_vjp",
        "a sign flip",
        lambda x, g: _softmax(x) * g.sum(axis=-1, keepdims=True) - g,
        r"opposite sign",
    ),
    (
        "lora_forward",
        "the scaling forgotten",
        _lora_forward_with(lambda alpha, rank: 1.0),
        r"your y is wrong",
    ),
    (
        "lora_forward",
        "alpha·rank",
        _lora_forward_with(lambda alpha, rank: alpha * rank),
        r"your y is wrong",
    ),
    (
        "lora_forward",
        "rsLoRA's scaling",
        _lora_forward_with(lambda alpha, rank: alpha / math.sqrt(rank)),
        r"your y is wrong",
    ),
    ("lora_forward", "the bias forgotten", _lora_forward_no_bias, r"your y is wrong"),
    (
        "lora_forward",
        "A and B not transposed",
        lambda x, W, bias, A, B, alpha, rank: x @ W.T + alpha / rank * (x @ A @ B),
        r"raised ValueError|your y is wrong",
    ),
    (
        "lora_forward",
        "float32 turned into float64",
        _lora_forward_float64,
        r"dtype float64, expected float32",
    ),
    (
        "lora_vjp",
        "the scaling forgotten",
        lambda x, A, B, alpha, rank, g: ((g @ B).T @ x, g.T @ (x @ A.T)),
        r"times the expected one",
    ),
    (
        "lora_vjp",
        "gA transposed",
        lambda x, A, B, alpha, rank, g: (
            alpha / rank * x.T @ g @ B,
            alpha / rank * g.T @ (x @ A.T),
        ),
        r"your gA has shape",
    ),
    (
        "lora_vjp",
        "a sign flip",
        lambda x, A, B, alpha, rank, g: (
            -alpha / rank * (g @ B).T @ x,
            -alpha / rank * g.T @ (x @ A.T),
        ),
        r"opposite sign",
    ),
    (
        "lora_scaling",
        "the square root forgotten",
        lambda rank, alpha, rs: alpha / rank,
        r"your scaling is wrong",
    ),
    (
        "lora_scaling",
        "rank over alpha",
        lambda rank, alpha, rs: (math.sqrt(rank) if rs else rank) / alpha,
        r"your scaling is wrong",
    ),
    (
        "lora_scaling",
        "a string",
        lambda rank, alpha, rs: f"{alpha / rank}",
        r"expected one real number",
    ),
    (
        "lora_merge",
        "the scaling forgotten",
        lambda W, A, B, alpha, rank: W + B @ A,
        r"your merge changes the output: max \|Δ\| = ",
    ),
    (
        "lora_merge",
        "the update transposed",
        lambda W, A, B, alpha, rank: (
            W + alpha / rank * (B @ A).T if W.shape[0] == W.shape[1] else W + alpha / rank * (B @ A)
        ),
        r"your merge changes the output",
    ),
    ("lora_merge", "W changed in place", _lora_merge_in_place, r"changed its input 'W' in place"),
    (
        "lora_merge",
        "no adapter at all",
        lambda W, A, B, alpha, rank: W.copy(),
        r"your merge changes the output",
    ),
    (
        "lora_linear",
        "B drawn at random",
        _lora_linear_variant(),
        r"lora_b.weight is not zero at the start",
    ),
    (
        "lora_linear",
        "the base weight left trainable",
        _lora_linear_variant(freeze=False, zero_b=True),
        r"linear.weight requires a gradient",
    ),
    (
        "lora_linear",
        "scaling = alpha",
        _lora_linear_variant(zero_b=True, scaling_is_alpha=True),
        r"scaling is .*expected",
    ),
    (
        "lora_linear",
        "submodules named A and B",
        _lora_linear_variant(names=("A", "B"), zero_b=True),
        r"needs a submodule `lora_a`",
    ),
    (
        "lora_linear",
        "forward without the scaling",
        _lora_linear_variant(zero_b=True, scale_forward=False),
        r"output is wrong",
    ),
    (
        "lora_linear",
        "forward returns an array",
        _lora_linear_variant(zero_b=True, return_array=True),
        r"forward returned ndarray",
    ),
    (
        "lora_linear",
        "an instance, not the class",
        _lora_linear_variant(zero_b=True)(4, 3, 2, 8.0),
        r"expected your class itself, a subclass of lora_np.nn.Module",
    ),
    (
        "dense_projection",
        "columns not normalised",
        _dense_projection_with(lambda D, d, rng: rng.standard_normal((D, d))),
        r"column \d+ of your P has norm",
    ),
    (
        "dense_projection",
        "rows normalised",
        _dense_projection_with(
            lambda D, d, rng: (
                (P := rng.standard_normal((D, d))) / np.linalg.norm(P, axis=1, keepdims=True)
            )
        ),
        r"column \d+ of your P has norm",
    ),
    (
        "dense_projection",
        "uniform entries in [0, 1)",
        _dense_projection_with(
            lambda D, d, rng: (P := rng.random((D, d))) / np.linalg.norm(P, axis=0)
        ),
        r"mean .* excess kurtosis",
    ),
    (
        "dense_projection",
        "np.random instead of rng",
        _dense_projection_with(
            lambda D, d, rng: (P := np.random.standard_normal((D, d))) / np.linalg.norm(P, axis=0)
        ),
        r"same seed gave different P",
    ),
    (
        "dense_projection",
        "P transposed",
        _dense_projection_with(
            lambda D, d, rng: ((P := rng.standard_normal((D, d))) / np.linalg.norm(P, axis=0)).T
        ),
        r"your P has shape",
    ),
    ("fwht", "normalised by √L", lambda x: fwht(x) / math.sqrt(len(x)), r"times the expected one"),
    ("fwht", "one stage only", _fwht_stages(1), r"your H·x is wrong"),
    (
        "fwht",
        "the butterfly's outputs swapped",
        _fwht_stages(None, swapped=True),
        r"your H·x is wrong",
    ),
    (
        "fwht",
        "x transformed in place",
        _fwht_stages(None, in_place=True),
        r"changed its input 'x' in place",
    ),
    (
        "fastfood_transpose",
        "Π instead of Πᵀ",
        _fastfood_wrong("Π instead of Πᵀ"),
        r"not the transpose of P",
    ),
    (
        "fastfood_transpose",
        "the scale forgotten",
        _fastfood_wrong("no scale"),
        r"not the transpose of P",
    ),
    (
        "fastfood_transpose",
        "g not padded to L",
        _fastfood_wrong("no padding"),
        r"raised ValueError.*power of two",
    ),
    (
        "fastfood_transpose",
        "the last d entries",
        _fastfood_wrong("last d entries"),
        r"not the transpose of P",
    ),
    (
        "dint90",
        "interpolated linearly in d",
        _dint90_wrong("linear in d"),
        r"your d_int90 is wrong",
    ),
    ("dint90", "no interpolation", _dint90_wrong("no interpolation"), r"your d_int90 is wrong"),
    (
        "dint90",
        "the target is the baseline",
        _dint90_wrong("target = baseline"),
        r"your d_int90 is wrong",
    ),
    (
        "dint90",
        "the last crossing",
        _dint90_wrong("last crossing"),
        r"your d_int90 is wrong .*dips",
    ),
    (
        "dint90",
        "None when no grid point reaches it",
        _dint90_wrong("None for no crossing"),
        r"is None .*float\('nan'\)",
    ),
    (
        "add_lora",
        "nothing frozen",
        _add_lora_wrong("nothing frozen"),
        r"these parameters still train",
    ),
    (
        "add_lora",
        "every Linear adapted",
        _add_lora_wrong("every Linear"),
        r"is not a target and must stay the Linear",
    ),
    (
        "add_lora",
        "new layers instead of wrapped ones",
        _add_lora_wrong("a new layer"),
        r"the weight of layer .* changed",
    ),
    (
        "add_lora",
        "the adapters frozen too",
        _add_lora_wrong("adapters frozen"),
        r"adapter parameters do not train",
    ),
    ("add_lora", "no return", _add_lora_wrong("no return"), r"returned NoneType"),
    (
        "first_step_update",
        "SGD's s counted once",
        _first_step_wrong("s once"),
        r"times the expected one",
    ),
    (
        "first_step_update",
        "Adam treated as SGD",
        _first_step_wrong("adam as sgd"),
        r"your dW is wrong .*adam",
    ),
    (
        "first_step_update",
        "gradient ascent",
        _first_step_wrong("gradient ascent"),
        r"opposite sign",
    ),
    (
        "subspace_similarity",
        "left singular vectors",
        _phi_wrong("left singular vectors"),
        r"raised ValueError",
    ),
    ("subspace_similarity", "divided by max(i, j)", _phi_wrong("max(i, j)"), r"your φ is wrong"),
    ("subspace_similarity", "rows of A, no SVD", _phi_wrong("rows of A"), r"your φ is wrong"),
    ("subspace_similarity", "not squared", _phi_wrong("not squared"), r"your φ is wrong"),
    (
        "amplification_factor",
        "U and V from W",
        _amplification_wrong("U, V from W"),
        r"your amplification factor is wrong",
    ),
    (
        "amplification_factor",
        "the ratio inverted",
        _amplification_wrong("inverted"),
        r"your amplification factor is wrong",
    ),
    (
        "amplification_factor",
        "the spectral norm",
        _amplification_wrong("spectral norm"),
        r"your amplification factor is wrong",
    ),
    ("dora_weight", "column norms", _dora_wrong("column norms"), r"row \d+ of your W' has length"),
    (
        "dora_weight",
        "the magnitude forgotten",
        _dora_wrong("no magnitude"),
        r"row \d+ of your W' has length",
    ),
    (
        "dora_weight",
        "the norm of W, not of W + ΔW",
        _dora_wrong("norm of W"),
        r"row \d+ of your W' has length",
    ),
    ("dora_weight", "ΔW ignored", _dora_wrong("direction of W only"), r"does not point along row"),
    (
        "pissa_init",
        "the scaling forgotten",
        _pissa_wrong("no scaling"),
        r"s·B·A is not W's best rank-\d part",
    ),
    ("pissa_init", "all of S in B", _pissa_wrong("all of S in B"), r"A·Aᵀ differs from Bᵀ·B"),
    (
        "pissa_init",
        "the smallest singular values",
        _pissa_wrong("smallest singular values"),
        r"not W's best rank",
    ),
    ("pissa_init", "no residual", _pissa_wrong("no residual"), r"W_res \+ s·B·A differs from W"),
    (
        "lora_plus_param_groups",
        "A in the fast group",
        _groups_wrong("A in the fast group"),
        r"has learning rate",
    ),
    (
        "lora_plus_param_groups",
        "frozen parameters included",
        _groups_wrong("frozen included"),
        r"holds the frozen parameter",
    ),
    (
        "lora_plus_param_groups",
        "B in both groups",
        _groups_wrong("B twice"),
        r"in more than one group",
    ),
    (
        "lora_plus_param_groups",
        "lr divided by the ratio",
        _groups_wrong("lr / ratio"),
        r"has learning rate",
    ),
    (
        "lora_plus_param_groups",
        "a dict, not a list",
        _groups_wrong("a dict"),
        r"expected a list of dicts",
    ),
    ("lora_plus_param_groups", "only A and B", _groups_wrong("only A and B"), r"in no group"),
    (
        "lora_plus_param_groups",
        "the base weights unfrozen",
        _groups_that_change_what_trains("base unfrozen"),
        r"changed which parameters train \(made trainable: \['0.linear.bias', ",
    ),
    (
        "lora_plus_param_groups",
        "the B matrices frozen",
        _groups_that_change_what_trains("B frozen"),
        r"changed which parameters train \(made trainable: \[\], froze: \['0.lora_b.weight'",
    ),
    (
        "central_difference",
        "eps ignored",
        _central_at_a_fixed_eps,
        r"eps = 0.1 .*with the eps given",
    ),
    ("central_difference", "a five-point stencil", _five_point_stencil, r"with the eps given"),
    (
        "dense_projection",
        "one direction for every column",
        _one_direction_for_every_column,
        r"columns \d+ and \d+ of your P have cosine 1",
    ),
    ("fwht", "H built and multiplied", _fwht_through_h, r"allocated [\d.]+ MiB at its peak"),
    ("dint90", "> for >=", _dint90_wrong("> for >="), r"meets it exactly at its last grid point"),
    (
        "activation_bytes",
        "the input batch counted",
        _activation_bytes_wrong("the batch counted"),
        r"mode 'full'.* but the graph keeps",
    ),
    (
        "activation_bytes",
        "relu's mask counted as float32",
        _activation_bytes_wrong("masks as float32"),
        r"your count is .* bytes for sizes .* but the graph keeps",
    ),
    (
        "activation_bytes",
        "the loss's log-probabilities forgotten",
        _activation_bytes_wrong("no log-probabilities"),
        r"off by -\d",
    ),
    (
        "activation_bytes",
        "LoRA-FA keeps the layers' inputs as LoRA does",
        _activation_bytes_wrong("LoRA-FA keeps the inputs"),
        r"mode 'lora_fa', rank \d .* but the graph keeps",
    ),
    (
        "activation_bytes",
        "the weights a Linear keeps for dL/dx counted",
        _activation_bytes_wrong("weights counted"),
        r"mode 'full'.* but the graph keeps",
    ),
    (
        "activation_bytes",
        "a float",
        _activation_bytes_wrong("a float"),
        r"is float \d+\.0 for sizes .*expected a whole number \(an int",
    ),
    (
        "causal_attention",
        "no causal mask",
        _causal_attention_wrong("no mask"),
        r"your out at position \d+ changes when only the key and value at the later "
        r"position \d+ change.*sees the future",
    ),
    (
        "causal_attention",
        "the diagonal masked too (np.triu with k=0)",
        _causal_attention_wrong("diagonal masked"),
        r"NaN or infinite entries",
    ),
    (
        "causal_attention",
        "scores not divided by sqrt(d)",
        _causal_attention_wrong("no scale"),
        r"your out is wrong .*CausalAttentionFunction",
    ),
    (
        "causal_attention",
        "divided by sqrt(T) instead of sqrt(d)",
        _causal_attention_wrong("scaled by sqrt(T)"),
        r"your out is wrong",
    ),
    (
        "causal_attention",
        "softmax over the queries",
        _causal_attention_wrong("softmax over the queries"),
        r"your out (is wrong|at position)",
    ),
    (
        "causal_attention",
        "no row maximum subtracted before exp",
        _causal_attention_wrong("no maximum subtracted"),
        r"NaN or infinite entries .*with large scores \(case 6 of 6\); an overflow",
    ),
]


@pytest.mark.parametrize(
    ("name", "mistake", "answer", "pattern"), WRONG, ids=[f"{n}: {m}" for n, m, _, _ in WRONG]
)
def test_a_known_wrong_answer_fails_with_its_message(
    name: str, mistake: str, answer: Any, pattern: str
) -> None:
    fails(name, answer, pattern)


def test_every_exercise_rejects_at_least_one_known_wrong_answer() -> None:
    assert {name for name, *_ in WRONG} == set(NAMES)


# =========================================================================== clean failures


KINDS = {
    "array": {
        "sum_to_shape",
        "central_difference",
        "log_softmax_vjp",
        "lora_forward",
        "lora_merge",
        "dense_projection",
        "fwht",
        "fastfood_transpose",
        "first_step_update",
        "dora_weight",
        "causal_attention",
    },
    "tuple": {"matmul_vjp", "lora_vjp", "pissa_init"},
    "number": {"lora_scaling", "dint90", "subspace_similarity", "amplification_factor"},
    "count": {"activation_bytes"},
    "object": {"add_lora", "lora_plus_param_groups"},
    "class": {"sin_function", "lora_linear"},
}
FUNCTIONS = sorted(
    set().union(*(KINDS[k] for k in ("array", "tuple", "number", "count", "object")))
)


def test_every_exercise_has_a_kind() -> None:
    every = [name for names in KINDS.values() for name in names]
    assert sorted(every) == sorted(NAMES)


def _wrong_shape(value: Any) -> Any:
    if isinstance(value, tuple):
        return (_wrong_shape(value[0]), *value[1:])
    if isinstance(value, float):
        return np.array([value, value])
    return np.append(np.asarray(value).ravel(), 0.0)


def _wrong_dtype(value: Any) -> Any:
    if isinstance(value, tuple):
        return (_wrong_dtype(value[0]), *value[1:])
    if isinstance(value, float):
        return str(value)
    return np.asarray(value).astype(np.float32)


def _wrapped(name: str, change: Callable[[Any], Any]) -> Callable:
    reference = solution(name)

    def answer(*args):
        return change(reference(*args))

    return answer


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_function_returning_none_fails_cleanly(name: str) -> None:
    fails(name, lambda *args: None, r"is None|returned NoneType|are None")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_function_that_raises_shows_its_own_traceback(name: str) -> None:
    def broken(*args):
        raise ValueError("deliberate")

    message = fails(name, broken, r"your broken raised ValueError: deliberate")
    assert "Traceback of your code" in message
    assert "test_exercises.py" in message and "in broken" in message
    assert "grader.py" not in message and "lora_np/exercises" not in message


@pytest.mark.parametrize("name", sorted(KINDS["array"] | KINDS["tuple"] | KINDS["number"]))
def test_a_wrong_shape_fails_cleanly(name: str) -> None:
    expected = r"expected one real number" if name in KINDS["number"] else r"has shape"
    fails(name, _wrapped(name, _wrong_shape), expected)


@pytest.mark.parametrize("name", sorted(KINDS["array"] | KINDS["tuple"] | KINDS["number"]))
def test_a_wrong_dtype_fails_cleanly(name: str) -> None:
    expected = r"expected one real number" if name in KINDS["number"] else r"dtype float32"
    fails(name, _wrapped(name, _wrong_dtype), expected)


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda n: np.array([n, n]), r"is an array of shape \(2,\) .*expected a whole number"),
        (lambda n: np.float32(n), r"is float32 .*expected a whole number"),
        (lambda n: str(n), r"is str '\d+'.*expected a whole number"),
        (lambda n: np.int64(n), None),  # a NumPy integer is an int
    ],
)
def test_a_count_is_a_whole_number(change: Callable[[int], Any], pattern: str | None) -> None:
    answer = _wrapped("activation_bytes", change)
    if pattern is None:
        assert check("activation_bytes", answer, verbose=False) is True
    else:
        fails("activation_bytes", answer, pattern)


@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        ("return None", r"Sin.forward returned is None"),
        ("raise ValueError('deliberate')", r"raised ValueError: deliberate"),
        ("return np.sin(a).ravel()[:-1] if a.ndim else np.sin(a)", r"has shape"),
        ("return np.sin(a).astype(np.float32)", r"dtype float32"),
    ],
)
def test_a_primitive_whose_forward_misbehaves_fails_cleanly(body: str, pattern: str) -> None:
    namespace = {"np": np, "Function": Function}
    exec(
        "class Sin(Function):\n    register = False\n\n    def forward(self, a):\n"
        f"        self.a = a\n        {body}\n\n    def backward(self, grad):\n"
        "        return (grad * np.cos(self.a),)\n",
        namespace,
    )
    fails("sin_function", namespace["Sin"], pattern)


def test_a_module_that_raises_or_returns_none_fails_cleanly() -> None:
    class Broken(Module):
        def __init__(self, in_feats, out_feats, rank, alpha):
            raise ValueError("deliberate")

    fails("lora_linear", Broken, r"raised ValueError: deliberate")
    reference = solution("lora_linear")

    class ReturnsNone(reference):
        def forward(self, x):
            return None

    fails("lora_linear", ReturnsNone, r"forward returned NoneType")


def test_a_value_no_check_foresaw_still_gives_an_exercise_error() -> None:
    fails(
        "lora_plus_param_groups",
        lambda model, lr, ratio: [{"params": 5, "lr": lr}],
        r"the grader could not check what your code returned: TypeError",
    )


def test_groups_written_as_pytorch_allows_pass() -> None:
    def fast_b(model):
        return [m.lora_b.weight for m in model.modules() if isinstance(m, LoRALinear)]

    def no_lr_in_the_slow_group(model, lr, ratio):
        fast = {id(p) for p in fast_b(model)}
        slow = [p for p in model.parameters() if p.requires_grad and id(p) not in fast]
        return [{"params": slow}, {"params": fast_b(model), "lr": ratio * lr}]

    def generators_and_single_tensors(model, lr, ratio):
        fast = {id(p) for p in fast_b(model)}
        slow = (p for p in model.parameters() if p.requires_grad and id(p) not in fast)
        return [{"params": slow, "lr": lr}] + [
            {"params": p, "lr": ratio * lr} for p in fast_b(model)
        ]

    assert check("lora_plus_param_groups", no_lr_in_the_slow_group, verbose=False)
    assert check("lora_plus_param_groups", generators_and_single_tensors, verbose=False)


def test_student_code_that_exits_or_cannot_print_its_error_is_still_the_students() -> None:
    class UnprintableError(Exception):
        def __str__(self):
            raise RuntimeError("no")

    class Odd(BaseException):
        pass

    def raises(error):
        def matmul_vjp(a, b, g):
            raise error

        return matmul_vjp

    fails("matmul_vjp", raises(SystemExit(3)), r"your matmul_vjp raised SystemExit: 3")
    fails("matmul_vjp", raises(Odd("odd")), r"your matmul_vjp raised Odd: odd")
    fails(
        "matmul_vjp",
        raises(UnprintableError()),
        r"raised UnprintableError: \(its message cannot be shown",
    )


def test_a_masked_array_is_named_not_a_grader_crash() -> None:
    def masked(a, b, g):
        return np.ma.masked_array(g @ b.T, mask=True), np.ma.masked_array(a.T @ g, mask=True)

    fails("matmul_vjp", masked, r"is a numpy.ma.MaskedArray .*expected a plain NumPy array")


def test_a_near_miss_shows_enough_digits_to_see_the_difference() -> None:
    message = fails(
        "lora_scaling",
        lambda rank, alpha, rs: np.float32(alpha / (math.sqrt(rank) if rs else rank)),
        r"agree to 6 significant digits",
    )
    expected, got = re.search(r"expected (\S+) .*got (\S+)\.", message).groups()
    assert expected != got


def test_a_wrong_signature_is_named() -> None:
    fails("matmul_vjp", lambda a, b: (a, b), r"has the signature .*\(a, b\).*matmul_vjp\(a, b, g\)")


def test_check_needs_a_known_name_and_a_callable() -> None:
    with pytest.raises(ValueError, match=r"did you mean 'matmul_vjp'"):
        check("matmul_vpj", solution("matmul_vjp"))
    fails("fwht", None, r"check needs your function itself")
    fails("fwht", solution("fwht")(np.ones(4)), r"check needs your function itself")


def test_a_check_leaves_the_random_generators_as_they_were() -> None:
    generator = lora_np.manual_seed(123)
    np.random.seed(7)
    check("lora_linear", solution("lora_linear"), verbose=False)  # builds layers: draws

    def reseeding(D, d, rng):  # a student's code that reseeds both global generators
        lora_np.manual_seed(99)
        np.random.seed(1)
        return solution("dense_projection")(D, d, rng)

    check("dense_projection", reseeding, verbose=False)
    assert lora_np.get_rng() is generator
    assert generator.integers(10**9) == np.random.default_rng(123).integers(10**9)
    assert np.random.randint(10**9) == np.random.RandomState(7).randint(10**9)


def test_the_same_seed_gives_the_same_cases_and_another_seed_other_ones() -> None:
    seen: list[tuple[int, ...]] = []

    def recorder(a, b, g):
        seen.append(a.shape + b.shape)
        return solution("matmul_vjp")(a, b, g)

    for seed in (0, 0, 1):
        check("matmul_vjp", recorder, seed=seed, verbose=False)
    runs = [seen[i * 5 : (i + 1) * 5] for i in range(3)]
    assert runs[0] == runs[1] != runs[2]


def test_a_message_names_the_element_but_does_not_print_the_answer() -> None:
    def slightly_wrong(a, b, g):
        ga, gb = solution("matmul_vjp")(a, b, g)
        ga = ga.copy()
        ga[0, 0] += 1.0
        return ga, gb

    message = fails(
        "matmul_vjp", slightly_wrong, r"1 of \d+ entries differ; the worst at index \(0, 0\)"
    )
    assert message.count("expected") == 1 and "[" not in message  # one number, not an array
