"""A 2-D convolution: the primitive :class:`Convolution2d` and the layer :class:`Conv2d`.

Shapes as in PyTorch: the input is (N, C, H, W), the weight (O, C, kh, kw), the bias (O,),
the output (N, O, OH, OW) with OH = (H + 2p − kh) // s + 1 (stride s, zero padding p).

The forward is written as one matrix product ("im2col"). Pad x with p zeros on each side
(x_p); every output position (y, x) reads one patch x_p[:, :, s·y : s·y + kh, s·x : s·x + kw];
lay each patch out as a row of C·kh·kw numbers, and the convolution is

    out[n, o, y, x] = Σ_{c,i,j} w[o, c, i, j] · x_p[n, c, s·y + i, s·x + j] + b[o]
                    = (cols · W_matᵀ)[(n, y, x), o] + b[o],

with ``cols`` the (N·OH·OW, C·kh·kw) matrix of patches and W_mat = w reshaped to
(O, C·kh·kw). A convolution is a Linear layer applied to every patch, with one weight
shared by all positions: that sharing is why a conv net has far fewer weights than a
fully connected net on the same image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lora_np.checks import is_int
from lora_np.nn import init
from lora_np.nn.module import Module, Parameter
from lora_np.rng import get_rng
from lora_np.tensor import Function, Tensor


def _output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class Convolution2d(Function):
    """out = conv2d(x, w) + b: x (N, C, H, W), w (O, C, kh, kw), b (O,) optional.

    Settings: ``stride`` s and ``padding`` p (ints, the same along both image axes).

    VJP, with G = dL/d(out) of shape (N, O, OH, OW) laid out as G_mat (N·OH·OW, O):

    * dL/dw = G_matᵀ · cols, reshaped to (O, C, kh, kw) — each weight collects G times
      the input pixel it multiplied, over all samples and positions;
    * dL/dx: d_cols = G_mat · W_mat (one row per patch), then "col2im": each patch row is
      added back onto the pixels it was read from, dx_p[n, c, s·y + i, s·x + j] +=
      d_cols[(n, y, x), (c, i, j)]; overlapping patches add up. The padding is cut off;
    * dL/db = Σ_{n,y,x} G[n, o, y, x].

    Saves ``cols`` (the patches) only if w needs a gradient, and w only if x needs one;
    the input's shape always (to undo the padding).
    """

    def __init__(self, stride: int = 1, padding: int = 0) -> None:
        for label, value, low in (("stride", stride, 1), ("padding", padding, 0)):
            if not is_int(value) or value < low:
                raise ValueError(f"Convolution2d: {label} must be an int >= {low}, got {value!r}")
        self.stride, self.padding = int(stride), int(padding)

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
        if x.ndim != 4 or w.ndim != 4:
            raise ValueError(
                f"Convolution2d: input must be (N, C, H, W) and weight (O, C, kh, kw), got "
                f"shapes {x.shape} and {w.shape}"
            )
        n, c, h, width = x.shape
        o, c_w, kh, kw = w.shape
        if c != c_w:
            raise ValueError(
                f"Convolution2d: the input has {c} channels (shape {x.shape}), but the weight "
                f"expects {c_w} (weight shape {w.shape}, i.e. (out, in, kh, kw))"
            )
        s, p = self.stride, self.padding
        oh, ow = _output_size(h, kh, s, p), _output_size(width, kw, s, p)
        if oh < 1 or ow < 1:
            raise ValueError(
                f"Convolution2d: a {kh}×{kw} kernel does not fit an {h}×{width} image with "
                f"padding {p}"
            )
        padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        # every window: (N, C, H', W', kh, kw); every s-th one: (N, C, OH, OW, kh, kw)
        windows = sliding_window_view(padded, (kh, kw), axis=(2, 3))[:, :, ::s, ::s]
        cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * kh * kw)
        out = cols @ w.reshape(o, -1).T  # (N·OH·OW, O)
        if b is not None:
            out += b
        self.x_shape, self.w_shape = x.shape, w.shape  # shapes only: tuples, not arrays
        if self.needs_input_grad[1]:
            self.cols = cols
        if self.needs_input_grad[0]:
            self.w = w
        return np.ascontiguousarray(out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2))

    def backward(self, grad: np.ndarray) -> tuple[np.ndarray | None, ...]:
        needs = self.needs_input_grad
        o = self.w_shape[0]
        g_mat = grad.transpose(0, 2, 3, 1).reshape(-1, o)  # (N·OH·OW, O)
        gx = gw = None
        if needs[1]:
            gw = (g_mat.T @ self.cols).reshape(self.w_shape)
        if needs[0]:
            gx = self._col2im(g_mat @ self.w.reshape(o, -1), grad.shape[2], grad.shape[3])
        if len(needs) == 2:
            return gx, gw
        return gx, gw, (grad.sum(axis=(0, 2, 3)) if needs[2] else None)

    def _col2im(self, d_cols: np.ndarray, oh: int, ow: int) -> np.ndarray:
        """Add each patch's gradient back onto the pixels the patch was read from."""
        n, c, h, width = self.x_shape
        _, _, kh, kw = self.w_shape
        s, p = self.stride, self.padding
        patches = d_cols.reshape(n, oh, ow, c, kh, kw)
        padded = np.zeros((n, c, h + 2 * p, width + 2 * p), dtype=d_cols.dtype)
        for i in range(kh):  # one strided slice of pixels per kernel offset (i, j)
            for j in range(kw):
                rows = slice(i, i + s * (oh - 1) + 1, s)
                columns = slice(j, j + s * (ow - 1) + 1, s)
                padded[:, :, rows, columns] += patches[..., i, j].transpose(0, 3, 1, 2)
        return padded[:, :, p : p + h, p : p + width]


class Conv2d(Module):
    """A 2-D convolution layer, shaped as PyTorch's ``nn.Conv2d`` (square kernel).

    ``weight`` (out_channels, in_channels, k, k) and ``bias`` (out_channels,), initialised
    as PyTorch does: W ~ kaiming_uniform(a=√5), i.e. U(±1/√fan_in) with
    fan_in = in_channels·k·k, and b ~ U(±1/√fan_in). Input (N, C, H, W), output
    (N, out_channels, OH, OW); see :class:`Convolution2d` for the formula and its VJP.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        bias: bool = True,
        *,
        dtype: Any = np.float32,
        rng: np.random.Generator | None = None,
    ) -> None:
        super().__init__()
        for label, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("kernel_size", kernel_size),
            ("stride", stride),
        ):
            if not is_int(value) or value < 1:
                raise ValueError(f"Conv2d: {label} must be a positive int, got {value!r}")
        if not is_int(padding) or padding < 0:
            raise ValueError(f"Conv2d: padding must be an int >= 0, got {padding!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride, self.padding = int(kernel_size), int(stride), int(padding)
        rng = get_rng(rng)
        shape = (self.out_channels, self.in_channels, self.kernel_size, self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        init.kaiming_uniform_(self.weight, a=5**0.5, rng=rng)
        if bias:
            bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size**2)
            self.bias = Parameter(np.empty((self.out_channels,), dtype=dtype))
            init.uniform_(self.bias, -bound, bound, rng=rng)
        else:
            self.bias = None

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"Conv2d: expected input (N, {self.in_channels}, H, W), got shape {x.shape}"
            )
        settings = {"stride": self.stride, "padding": self.padding}
        if self.bias is None:
            return Convolution2d.apply(x, self.weight, **settings)
        return Convolution2d.apply(x, self.weight, self.bias, **settings)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )
