"""Data for the experiments: the 8×8 digits, splits, batches, and the teacher–student task.

* :mod:`~lora_np.data.digits` — the shipped digits (:func:`load_digits`,
  :func:`digits_split`) and :func:`mirror_digits`;
* :mod:`~lora_np.data.splits` — :func:`train_test_split`, :class:`Standardizer`;
* :mod:`~lora_np.data.batching` — :func:`batches`, the mini-batches :func:`lora_np.train.fit`
  draws;
* :mod:`~lora_np.data.teacher_student` — random teachers and a planted rank-k shift, a
  fine-tuning task whose intrinsic rank is known;
* :mod:`~lora_np.data.names` — the 1990 US Census names as character sequences
  (:func:`load_names`, :func:`names_split`, :func:`encode_names`), the tiny GPT's text.

Arrays here are plain NumPy (features float32, labels int64); wrap them in
:class:`lora_np.Tensor` when feeding a model. The shipped files and their licences are in
``lora_np/data/datasets/``.
"""

from lora_np.data.batching import batches, check_samples, num_batches
from lora_np.data.digits import (
    DIGITS_CITATION,
    DIGITS_CLASS_COUNTS,
    DIGITS_SHA256,
    digits_split,
    load_digits,
    mirror_digits,
)
from lora_np.data.names import (
    NAMES_SHA256,
    encode_names,
    load_names,
    names_split,
)
from lora_np.data.splits import Standardizer, standardize, train_test_split
from lora_np.data.teacher_student import (
    DEFAULT_SHIFT_SIZE,
    PlantedShift,
    TeacherStudentTask,
    make_teacher,
    paired_datasets,
    planted_shift,
    teacher_dataset,
    teacher_labels,
    teacher_logits,
    teacher_student_task,
)

__all__ = [
    "DEFAULT_SHIFT_SIZE",
    "DIGITS_CITATION",
    "DIGITS_CLASS_COUNTS",
    "DIGITS_SHA256",
    "NAMES_SHA256",
    "PlantedShift",
    "Standardizer",
    "TeacherStudentTask",
    "batches",
    "check_samples",
    "digits_split",
    "encode_names",
    "load_digits",
    "load_names",
    "make_teacher",
    "mirror_digits",
    "names_split",
    "num_batches",
    "paired_datasets",
    "planted_shift",
    "standardize",
    "teacher_dataset",
    "teacher_labels",
    "teacher_logits",
    "teacher_student_task",
    "train_test_split",
]
