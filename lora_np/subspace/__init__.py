"""Random-subspace training, θ = θ0 + P·θ_d, and the intrinsic dimension (Li et al. 2018).

* :mod:`~lora_np.subspace.projections` — the random maps P (dense, sparse, Fastfood), each
  a primitive with its VJP;
* :mod:`~lora_np.subspace.model` — :class:`SubspaceModel`, a model whose only trainable
  weights are θ_d;
* :mod:`~lora_np.subspace.intrinsic_dimension` — :func:`intrinsic_dimension` (accuracy
  against d, and d_int90) and :func:`crossing_dimension`.
"""

from lora_np.subspace.intrinsic_dimension import (
    DIRECT_LR,
    SUBSPACE_LR,
    crossing_dimension,
    intrinsic_dimension,
)
from lora_np.subspace.model import SubspaceModel
from lora_np.subspace.projections import (
    PROJECTIONS,
    DenseProjection,
    FastfoodProjection,
    Projection,
    SparseProjection,
    fwht,
    hadamard,
    make_projection,
)

__all__ = [
    "DIRECT_LR",
    "PROJECTIONS",
    "SUBSPACE_LR",
    "DenseProjection",
    "FastfoodProjection",
    "Projection",
    "SparseProjection",
    "SubspaceModel",
    "crossing_dimension",
    "fwht",
    "hadamard",
    "intrinsic_dimension",
    "make_projection",
]
