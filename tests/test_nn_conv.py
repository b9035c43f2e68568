"""Tests for lora_np.nn.conv: the Conv2d layer against a direct loop, shapes, errors.
(The primitive's gradient is checked with the others in tests/test_ops.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from lora_np import Tensor, gradcheck
from lora_np.nn import Conv2d
from lora_np.nn.conv import Convolution2d


def _direct(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """out[n, o, y, x] = Σ_{c,i,j} w[o, c, i, j] · x_p[n, c, s·y + i, s·x + j] + b[o], by loops."""
    n, _, h, width = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (width + 2 * padding - kw) // stride + 1
    out = np.zeros((n, o, oh, ow))
    for y in range(oh):
        for x_ in range(ow):
            patch = xp[:, :, stride * y : stride * y + kh, stride * x_ : stride * x_ + kw]
            out[:, :, y, x_] = np.einsum("ncij,ocij->no", patch, w) + b
    return out


@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (1, 1), (2, 1), (3, 2)])
def test_forward_matches_the_definition(stride: int, padding: int) -> None:
    rng = np.random.default_rng(stride + 10 * padding)
    x, w, b = (
        rng.standard_normal((2, 3, 7, 6)),
        rng.standard_normal((4, 3, 3, 3)),
        rng.standard_normal(4),
    )
    out = Convolution2d.apply(Tensor(x), Tensor(w), Tensor(b), stride=stride, padding=padding)
    np.testing.assert_allclose(out.data, _direct(x, w, b, stride, padding), atol=1e-12)


def test_layer_shapes_init_and_gradcheck() -> None:
    layer = Conv2d(2, 5, 3, stride=2, padding=1, dtype=np.float64, rng=np.random.default_rng(0))
    assert layer.weight.shape == (5, 2, 3, 3) and layer.bias.shape == (5,)
    bound = 1 / np.sqrt(2 * 3 * 3)  # PyTorch's U(±1/√fan_in)
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.bias.data).max() <= bound
    x = Tensor(np.random.default_rng(1).standard_normal((3, 2, 8, 8)), requires_grad=True)
    assert layer(x).shape == (3, 5, 4, 4)
    assert {name for name, _ in layer.named_parameters()} == {"weight", "bias"}
    assert gradcheck(
        lambda x, w, b: Convolution2d.apply(x, w, b, stride=2, padding=1),
        [x, layer.weight, layer.bias],
    )


def test_backward_skips_what_is_not_needed() -> None:
    rng = np.random.default_rng(2)
    x = Tensor(rng.standard_normal((1, 1, 4, 4)))  # data: no gradient wanted
    w = Tensor(rng.standard_normal((2, 1, 3, 3)), requires_grad=True)
    out = Convolution2d.apply(x, w, padding=1)
    fn = out._ctx
    assert not hasattr(fn, "w")  # x needs no gradient, so w is not kept for it
    assert fn.cols.shape == (16, 9)
    out.sum().backward()
    assert x.grad is None and w.grad.shape == (2, 1, 3, 3)


@pytest.mark.parametrize(
    ("x_shape", "kwargs", "match"),
    [
        ((2, 3, 8, 8), {}, r"expected input \(N, 1, H, W\)"),
        ((2, 8, 8), {}, r"expected input \(N, 1, H, W\)"),
        ((2, 1, 2, 2), {}, "does not fit"),
    ],
)
def test_bad_input_is_named(x_shape, kwargs, match) -> None:
    layer = Conv2d(1, 2, 3, **kwargs)
    with pytest.raises(ValueError, match=match):
        layer(Tensor(np.zeros(x_shape, dtype=np.float32)))


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0, 2, 3), "in_channels must be a positive int"),
        ((1, 2, 0), "kernel_size must be a positive int"),
        ((1, 2, 3, 0), "stride must be a positive int"),
        ((1, 2, 3, 1, -1), "padding must be an int >= 0"),
    ],
)
def test_bad_settings_are_named(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        Conv2d(*args)
