"""The grader: :func:`check`, the table of exercises, and the helpers every check shares.

A check receives the student's function (or class) wrapped in a :class:`Student`, and a
seeded random generator. It draws several cases (random shapes and values), calls the
student's code through the wrapper, validates what came back (:func:`as_array`,
:func:`as_number`, :func:`as_tuple`) and compares it with a reference computed by the
library's own tools (:func:`expect_close`). Anything wrong becomes an
:class:`ExerciseError` whose message is in the student's terms — which output, which
case, which element, expected against got, or which invariant failed — and never the
answer itself. What the student's code does (raise, return None, a wrong shape or dtype,
change its input in place) is caught by the wrapper and the validators, so the grader
itself never crashes on a student's mistake.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import re
import traceback
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lora_np import rng as rng_module
from lora_np.tensor import Tensor

#: This package's folder: traceback frames from here are the grader's, not the student's.
_GRADER_DIR = str(Path(__file__).resolve().parent)


class ExerciseError(AssertionError):
    """An exercise's check failed; the message says what is wrong, in the exercise's terms."""


@dataclass(frozen=True)
class ExerciseInfo:
    """One exercise: its name, the notebook it belongs to, its call signature and task."""

    name: str
    notebook: str
    signature: str
    statement: str

    @property
    def parameters(self) -> tuple[str, ...]:
        """The argument names of :attr:`signature` (``"f(a, b) -> c"`` gives ``("a", "b")``)."""
        inside = self.signature[self.signature.index("(") + 1 : self.signature.index(")")]
        return tuple(p.strip() for p in inside.split(",") if p.strip())


Checker = Callable[["Student", np.random.Generator], str]
_EXERCISES: dict[str, tuple[ExerciseInfo, Checker]] = {}


def exercise(name: str, notebook: str, signature: str, statement: str) -> Callable:
    """Register ``checker(student, rng) -> summary`` as the check of exercise ``name``."""

    def register(checker: Checker) -> Checker:
        if name in _EXERCISES:
            raise ValueError(f"exercise {name!r} is defined twice")
        _EXERCISES[name] = (ExerciseInfo(name, notebook, signature, statement), checker)
        return checker

    return register


def list_exercises() -> list[ExerciseInfo]:
    """Every exercise in course order (by notebook, then as the notebook meets them)."""
    infos = [info for info, _ in _EXERCISES.values()]
    return sorted(infos, key=lambda info: info.notebook)  # sorted() is stable


def exercise_info(name: str) -> ExerciseInfo:
    """The :class:`ExerciseInfo` of ``name`` (ValueError, with close names, if unknown)."""
    return _lookup(name)[0]


def _lookup(name: Any) -> tuple[ExerciseInfo, Checker]:
    if name in _EXERCISES:
        return _EXERCISES[name]
    close = difflib.get_close_matches(str(name), list(_EXERCISES), n=3)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(
        f"no exercise is named {name!r}{hint} (lora_np.exercises.list_exercises() lists them)"
    )


def check(name: str, fn: Any, *, seed: int = 0, verbose: bool = True) -> bool:
    """Check the student's answer to exercise ``name``; True, or :class:`ExerciseError`.

    ``fn`` is the function (or class) the exercise asks for. The check runs it on several
    random cases drawn from ``seed`` (the same seed gives the same cases) and compares what
    it returns with the library's own tools. ``verbose`` prints one line when it passes.
    """
    info, checker = _lookup(name)
    if fn is None or not callable(fn):
        raise ExerciseError(
            f"{name}: check needs your function itself, as in check({name!r}, {name}); "
            f"got {_describe(fn)}"
        )
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    try:
        with _random_state_kept():
            summary = checker(Student(fn, info), rng)
    except ExerciseError as error:
        raise type(error)(f"{name}: {error}") from None
    except Exception as error:  # a value the grader did not foresee: still say what happened
        where = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        raise ExerciseError(
            f"{name}: the grader could not check what your code returned: "
            f"{type(error).__name__}: {_message(error)}\n\n(where the grader stopped:)\n"
            f"{where.rstrip()}"
        ) from None
    if verbose:
        print(f"{name}: correct — {summary}")
    return True


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Leave the package generator and NumPy's global one as they were.

    Layers built during a check (the reference LoRALinear, the student's own) draw their
    initial weights from the package generator; without this, running a check in a
    notebook would change every random number the notebook draws after it.
    """
    generator = rng_module._GENERATOR
    package_state = generator.bit_generator.state
    numpy_state = np.random.get_state()
    try:
        yield
    finally:
        rng_module._GENERATOR = generator  # even if the student's code called manual_seed
        generator.bit_generator.state = package_state
        np.random.set_state(numpy_state)


# =========================================================================== the student's code


class Student:
    """The student's function or class, called so that whatever it does becomes a clear error."""

    def __init__(self, obj: Any, info: ExerciseInfo) -> None:
        self.obj = obj
        self.info = info
        self.label = getattr(obj, "__name__", info.name)

    def __call__(self, *args: Any, where: str = "") -> Any:
        """Call the student's function with copies of ``args``; check none was changed."""
        self._check_signature(len(args))
        originals = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in args]
        passed = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        result = run_student(lambda: self.obj(*passed), self.label, where)
        for index, (original, now) in enumerate(zip(originals, passed, strict=True)):
            if original is not None and not _same_array(original, now):
                raise ExerciseError(
                    f"your {self.label} changed its input {self._arg_name(index)} in place"
                    f"{where}; leave the inputs as they are and build a new array (or work "
                    "on a copy: x = x.copy())"
                )
        return result

    def _check_signature(self, count: int) -> None:
        try:
            signature = inspect.signature(self.obj)
        except (TypeError, ValueError):  # a builtin without a signature: just call it
            return
        try:
            signature.bind(*range(count))
        except TypeError:
            raise ExerciseError(
                f"your {self.label} has the signature {self.label}{signature}, but the "
                f"exercise calls it as {self.info.signature}"
            ) from None

    def _arg_name(self, index: int) -> str:
        names = self.info.parameters
        return repr(names[index]) if index < len(names) else f"number {index + 1}"


def run_student(thunk: Callable[[], Any], what: str, where: str = "") -> Any:
    """Run student code; its exceptions become an :class:`ExerciseError` with its traceback."""
    try:
        return thunk()
    except ExerciseError:
        raise
    except NotImplementedError:
        raise ExerciseError(
            f"not written yet: {what} raises NotImplementedError. Replace the "
            "`raise NotImplementedError(...)` line with your code, then run the cell again."
        ) from None
    except (KeyboardInterrupt, GeneratorExit):
        raise
    except BaseException as error:  # SystemExit too: a student's exit() is the student's
        raise ExerciseError(
            f"your {what} raised {type(error).__name__}: {_message(error)}{where}\n\n"
            f"{student_traceback(error)}"
        ) from None


def _message(error: BaseException) -> str:
    """``str(error)``, or a note saying it cannot be shown (its ``__str__`` raised)."""
    try:
        return str(error)
    except Exception:
        return "(its message cannot be shown: its __str__ raised)"


def student_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without the grader's own frames: the student's code."""
    frames = [
        f
        for f in traceback.extract_tb(error.__traceback__)
        if not f.filename.startswith(_GRADER_DIR)
    ]
    lines = ["Traceback of your code (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines).rstrip()


def _same_array(a: np.ndarray, b: Any) -> bool:
    return (
        isinstance(b, np.ndarray)
        and a.shape == b.shape
        and a.dtype == b.dtype
        and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    )


# =========================================================================== validating results


def _describe(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, Tensor):
        return f"a lora_np Tensor of shape {value.shape}"
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{type(value).__name__} {text}"


def as_array(
    value: Any,
    what: str,
    *,
    shape: tuple[int, ...],
    dtype: Any = np.float64,
    where: str = "",
    shape_note: str = "",
    none_hint: str = "is a `return` missing?",
) -> np.ndarray:
    """``value`` as an ndarray of the expected shape and dtype, with finite entries.

    ``what`` names the value for the message ("your ga"); ``shape_note`` says where the
    expected shape comes from ("a's shape").
    """
    if value is None:
        raise ExerciseError(f"{what} is None{where}: {none_hint}")
    if isinstance(value, Tensor):
        raise ExerciseError(
            f"{what} is a lora_np Tensor{where}; this exercise works on NumPy arrays "
            "(use t.data for a Tensor's array)"
        )
    if isinstance(value, np.generic) and np.issubdtype(value.dtype, np.number):
        value = np.asarray(value)  # a 0-d result of a NumPy reduction
    if isinstance(value, np.ndarray) and type(value) is not np.ndarray:
        raise ExerciseError(
            f"{what} is a {type(value).__module__}.{type(value).__name__}{where}; expected a "
            "plain NumPy array (np.asarray(...); for a masked array, .filled(...))"
        )
    if not isinstance(value, np.ndarray):
        raise ExerciseError(
            f"{what} is {_describe(value)}{where}; expected a NumPy array of shape {shape}"
        )
    if value.shape != tuple(shape):
        note = f" ({shape_note})" if shape_note else ""
        raise ExerciseError(f"{what} has shape {value.shape}, expected {tuple(shape)}{note}{where}")
    expected_dtype = np.dtype(dtype)
    if value.dtype != expected_dtype:
        hint = (
            "; integer arithmetic somewhere? (np.zeros(..., dtype=int), or an int array "
            "filled with floats)"
            if value.dtype.kind in "iub"
            else ""
        )
        raise ExerciseError(
            f"{what} has dtype {value.dtype}, expected {expected_dtype} (the dtype of the "
            f"inputs){hint}{where}"
        )
    if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
        bad = int(np.sum(~np.isfinite(value)))
        raise ExerciseError(
            f"{what} has {bad} NaN or infinite entries (of {value.size}){where}; an overflow, "
            "or a division by zero?"
        )
    return value


def as_class(value: Any, base: type, expected: str) -> type:
    """``value`` if it is a class derived from ``base`` (the student passed the class, not
    an instance or a function); ``expected`` names it, e.g. ``"lora_np.nn.Module"``."""
    if not (isinstance(value, type) and issubclass(value, base)):
        raise ExerciseError(f"expected your class itself, a subclass of {expected}, got {value!r}")
    return value


def as_tuple(value: Any, what: str, names: Sequence[str], where: str = "") -> tuple[Any, ...]:
    """``value`` as a tuple (or list) of ``len(names)`` items, e.g. ``(ga, gb)``."""
    expected = f"a tuple of {len(names)}, ({', '.join(names)})"
    if value is None:
        raise ExerciseError(f"{what} is None{where}: expected {expected}; is a `return` missing?")
    if not isinstance(value, (tuple, list)):
        raise ExerciseError(f"{what} is {_describe(value)}{where}; expected {expected}")
    if len(value) != len(names):
        raise ExerciseError(
            f"{what} has {len(value)} item(s){where}; expected {expected}, in that order"
        )
    return tuple(value)


def as_number(value: Any, what: str, where: str = "", none_hint: str = "") -> float:
    """``value`` as a Python float: a real number (Python or NumPy, or a 0-d array)."""
    if value is None:
        raise ExerciseError(
            f"{what} is None{where}: expected a number{none_hint or '; is a `return` missing?'}"
        )
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ExerciseError(
            f"{what} is {_describe(value)}{where}; expected one real number (a float)"
        )
    return float(value)


def as_int(value: Any, what: str, where: str = "", none_hint: str = "") -> int:
    """``value`` as a Python int: a whole number given as a Python or NumPy integer (or a
    0-d integer array), not a float, however whole."""
    if value is None:
        raise ExerciseError(
            f"{what} is None{where}: expected an int{none_hint or '; is a `return` missing?'}"
        )
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ExerciseError(
            f"{what} is {_describe(value)}{where}; expected a whole number (an int: integer "
            "arithmetic, // rather than /)"
        )
    return int(value)


# =========================================================================== comparing


def expect_close(
    got: np.ndarray,
    expected: np.ndarray,
    what: str,
    where: str = "",
    *,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    reference: str = "",
) -> None:
    """Raise unless ``|got − expected| <= atol + rtol·|expected|`` everywhere.

    The message names the worst element with its expected and actual value, how many
    elements are off, and a hint when the error has a recognisable pattern (all zeros,
    the opposite sign, a constant factor, a transpose, the right numbers misplaced).
    ``reference`` says where the expected values come from.
    """
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    error = np.abs(got - expected)
    allowed = atol + rtol * np.abs(expected)
    if np.all(error <= allowed):
        return
    excess = np.where(np.isnan(error), np.inf, error - allowed)
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape) if excess.ndim else ()
    at = f" at index {tuple(int(i) for i in worst)}" if excess.ndim else ""
    count = int(np.sum(~(error <= allowed)))
    source = f" ({reference})" if reference else ""
    which = f"{count} of {error.size} entries differ; the worst{at}: " if error.size > 1 else ""
    want, have = float(expected[worst]), float(got[worst])
    digits = 6 if f"{want:.6g}" != f"{have:.6g}" else 17  # enough digits to show they differ
    message = (
        f"{what} is wrong{where}: {which}expected {want:.{digits}g}{source}, got {have:.{digits}g}."
    )
    hint = _pattern_hint(got, expected, rtol, atol)
    if digits == 17:
        hint = (
            "They agree to 6 significant digits but not to the accuracy needed: float32 "
            "arithmetic somewhere, or a small term of the formula left out?"
        )
    raise ExerciseError(message + (f" {hint}" if hint else ""))


def expect_number(
    got: float,
    expected: float,
    what: str,
    where: str = "",
    *,
    rtol: float = 1e-9,
    atol: float = 1e-12,
    reference: str = "",
) -> None:
    """:func:`expect_close` for one number; NaN must meet NaN."""
    if np.isnan(expected) or np.isnan(got):
        if np.isnan(expected) and np.isnan(got):
            return
        source = f" ({reference})" if reference else ""
        raise ExerciseError(
            f"{what} is wrong{where}: expected {expected:.6g}{source}, got {got:.6g}"
        )
    expect_close(
        np.array(got), np.array(expected), what, where, rtol=rtol, atol=atol, reference=reference
    )


def _pattern_hint(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str:
    def close(a: np.ndarray, b: np.ndarray) -> bool:
        return bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))

    if not np.all(np.isfinite(got)) or expected.size == 0 or not np.any(expected):
        return ""
    if not np.any(got):
        return "Your result is all zeros."
    if close(got, -expected):
        return "Every entry has the opposite sign: a sign error?"
    big = np.abs(expected) > 1e-6 * np.max(np.abs(expected))
    ratios = got[big] / expected[big]
    factor = float(np.mean(ratios)) if ratios.size else 1.0
    if (
        expected.size > 1
        and np.ptp(ratios) <= 1e-6 * np.max(np.abs(ratios))
        and f"{factor:.6g}" != "1"
    ):
        return f"Every entry is {factor:.6g} times the expected one: a missing or extra factor?"
    if got.ndim == 2 and got.shape[0] == got.shape[1] and close(got, expected.T):
        return "Your result is the transpose of the expected one."
    if expected.size > 1 and close(np.sort(got, axis=None), np.sort(expected, axis=None)):
        return (
            "These are the right numbers in the wrong places: a reshape where a transpose "
            "is needed, or the wrong axis?"
        )
    return ""


def shape_text(**arrays: Any) -> str:
    """`` (a of shape (3, 4), b (4, 5))``: the case, for messages."""
    parts = []
    for index, (name, value) in enumerate(arrays.items()):
        shape = np.shape(value)
        parts.append(f"{name} of shape {shape}" if index == 0 else f"{name} {shape}")
    return " (" + ", ".join(parts) + ")"


def words(text: str) -> str:
    """Collapse the whitespace of a multi-line statement into one line."""
    return re.sub(r"\s+", " ", text).strip()


def case_text(index: int, cases: Sequence[Any]) -> str:
    """`` (case 2 of 6)`` for the case at ``index`` of ``cases``."""
    return f" (case {index + 1} of {len(cases)})"
