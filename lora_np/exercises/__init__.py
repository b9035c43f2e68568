"""The student track: exercises you write in the notebooks, checked by the course's own tools.

Each exercise asks for one function (or class) with a fixed signature, NumPy arrays in and
NumPy arrays out. ``check(name, your_function)`` runs it on several random cases (random
shapes and values, drawn from a seed) and compares what it returns with the library:
gradients with central differences (:func:`lora_np.numerical_grad`, in float64, against a
random upstream gradient, as :func:`lora_np.gradcheck` does), a LoRA layer with
:class:`lora_np.lora.LoRALinear`, a transform with :func:`lora_np.subspace.fwht`, and so
on — or with the invariants that define the answer ("the merged layer computes what the
LoRA layer computes"). It returns True, or raises :class:`ExerciseError` saying what is
wrong in the exercise's terms (which output, which case, which element, expected against
got), never the answer itself. If your code raises, returns None, or returns the wrong
shape or dtype, the error says so and shows your own traceback.

::

    from lora_np.exercises import check, list_exercises

    def matmul_vjp(a, b, g):
        ...
        return ga, gb

    check("matmul_vjp", matmul_vjp)  # True, or an ExerciseError that says what is wrong

``list_exercises()`` gives every exercise with its notebook, signature and one-line
statement. The notebooks in ``notebooks/student/`` hold the same exercises as stubs.
"""

from lora_np.exercises import (  # noqa: F401  (importing a module registers its exercises)
    attention,
    autograd,
    gradients,
    intrinsic_dimension,
    lora_layer,
    memory,
    rank,
    scaling,
    variants,
    what_lora_learns,
)
from lora_np.exercises.grader import (
    ExerciseError,
    ExerciseInfo,
    check,
    exercise_info,
    list_exercises,
)

__all__ = [
    "ExerciseError",
    "ExerciseInfo",
    "check",
    "exercise_info",
    "list_exercises",
]
