"""Module: the PyTorch-shaped container of parameters, so readers' habits carry over.

A :class:`Module` registers every :class:`Parameter` and sub-``Module`` assigned to it as
an attribute, so ``named_parameters()`` can walk the tree and give each weight a dotted
name (``"0.weight"``, ``"lora_a.weight"``). Those names are the keys of ``state_dict()``
and of :func:`functional_call`, which runs a module with some of its weights replaced by
other tensors — the mechanism both LoRA-style and subspace reparametrisations use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from lora_np.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as a weight; requires grad by default."""

    def __init__(self, data: Any, requires_grad: bool = True) -> None:
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped: keys the model had but the state
    dict lacked, and keys the state dict had but the model lacks."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class StateDictError(KeyError, ValueError):
    """``load_state_dict`` refused a state dict (missing/unexpected keys, wrong shapes, values
    that are not real numbers).

    A KeyError (a key is wrong) and a ValueError (bad input), so either ``except`` works.
    Nothing has been written into the model when it is raised.
    """

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class Module:
    """Base class: subclasses set Parameters and Modules as attributes and define forward.

    Parameters and submodules are ordinary attributes: ``self.weight`` in ``forward`` is a
    plain attribute lookup. Assigning one also records its *name*, in order, so the module
    can walk them (``named_parameters()``, ``children()``); the values live in one place
    only, the instance's attributes, and :attr:`_parameters` / :attr:`_modules` are views
    built from them. Assigning None to a registered name unregisters it (it becomes an
    ordinary attribute holding None). Buffers (arrays that are state but do not train)
    live in ``_buffers``.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameter_names", [])
        object.__setattr__(self, "_module_names", [])
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "training", True)

    # ----------------------------------------------------------------- registration
    @property
    def _parameters(self) -> dict[str, Parameter]:
        """This module's own parameters by name, in registration order (a new dict)."""
        return {name: self.__dict__[name] for name in self._parameter_names}

    @property
    def _modules(self) -> dict[str, Module]:
        """This module's direct submodules by name, in registration order (a new dict)."""
        return {name: self.__dict__[name] for name in self._module_names}

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameter_names" not in d:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before "
                f"assigning attribute {name!r}"
            )
        for names, kind in ((self._parameter_names, Parameter), (self._module_names, Module)):
            if name not in names:
                continue
            if isinstance(value, kind):
                d[name] = value  # replaced: keeps its place in the order (Sequential)
                return
            if value is not None:
                what = "parameter" if kind is Parameter else "submodule"
                hint = (
                    f" (to change the values, assign to .{name}.data; to run with other "
                    "tensors, use functional_call)"
                    if kind is Parameter
                    else ""
                )
                raise TypeError(
                    f"cannot assign a {type(value).__name__} to {what} {name!r} of "
                    f"{type(self).__name__}: expected a {kind.__name__} or None{hint}"
                )
            names.remove(name)  # None: no longer registered, an ordinary attribute
        self._buffers.pop(name, None)
        if isinstance(value, Parameter):
            self._parameter_names.append(name)
        elif isinstance(value, Module):
            self._module_names.append(name)
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # only called when normal lookup fails: buffers are the one kind of state that is
        # not a plain attribute
        buffers = self.__dict__.get("_buffers", {})
        if name in buffers:
            return buffers[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        if name in self._buffers:
            del self._buffers[name]
            return
        for names in (self._parameter_names, self._module_names):
            if name in names:
                names.remove(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: np.ndarray | None) -> None:
        """A non-trainable array that belongs to the module's state (saved in state_dict)."""
        self._buffers[name] = None if value is None else np.asarray(value)

    def add_module(self, name: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"add_module expects a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # ----------------------------------------------------------------- traversal
    def children(self) -> Iterator[Module]:
        d = self.__dict__
        for name in self._module_names:
            yield d[name]

    def named_children(self) -> Iterator[tuple[str, Module]]:
        d = self.__dict__
        for name in self._module_names:
            yield name, d[name]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Every module in the tree, this one first (name ``""``), with dotted names."""
        seen: set[int] = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = list(module.named_children())
            for child_name, child in reversed(children):
                stack.append((f"{name}.{child_name}" if name else child_name, child))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) for every parameter in the tree, each once."""
        seen: set[int] = set()
        for mod_name, module in self.named_modules(prefix):
            for p_name, p in module._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{p_name}" if mod_name else p_name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, module in self.named_modules():
            for b_name, b in module._buffers.items():
                if b is not None:
                    yield (f"{mod_name}.{b_name}" if mod_name else b_name), b

    def get_submodule(self, target: str) -> Module:
        """The module at dotted path ``target`` ("" is self); a clear error if absent."""
        module: Module = self
        if not target:
            return module
        for part in target.split("."):
            if part not in module._modules:
                raise AttributeError(
                    f"{type(module).__name__} has no submodule {part!r} (looking up {target!r}); "
                    f"it has {sorted(module._modules)}"
                )
            module = module._modules[part]
        return module

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``"lora_a.weight"``); a clear error if
        absent."""
        owner_name, _, name = target.rpartition(".")
        owner = self.get_submodule(owner_name)
        if name not in owner._parameter_names:
            raise AttributeError(
                f"{type(owner).__name__} has no parameter {name!r} (looking up {target!r}); "
                f"it has {list(owner._parameter_names)}"
            )
        return owner.__dict__[name]

    # ----------------------------------------------------------------- modes and grads
    def train(self, mode: bool = True) -> Module:
        """Set ``training = mode`` on this module and every submodule (Dropout reads it)."""
        if not isinstance(mode, bool):
            raise TypeError(f"train(mode) expects a bool, got {type(mode).__name__}")
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        """``train(False)``: inference mode (Dropout becomes the identity)."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze (True) every parameter in the tree; returns self."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        """Forget accumulated gradients (set every ``.grad`` to None, as PyTorch does)."""
        for p in self.parameters():
            p.grad = None

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict[str, np.ndarray]:
        """Dotted name -> a copy of each parameter's and buffer's array."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update({name: b.copy() for name, b in self.named_buffers()})
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy arrays into parameters and buffers by name.

        Everything is validated before anything is written, so on error the model is
        unchanged. With ``strict=True`` missing or unexpected keys are an error that names
        them; a shape mismatch is always an error naming the key and both shapes, and so are
        values that are not real numbers (strings, objects, complex), naming the key and the
        dtype (all raise :class:`StateDictError`). Values are cast to each parameter's dtype and
        copied, so the model never shares memory with the state dict.
        Returns the (missing, unexpected) keys, which are empty when ``strict=True``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                "load_state_dict expects a mapping of dotted names to arrays, got "
                f"{type(state_dict).__name__}"
            )
        own_params = dict(self.named_parameters())
        own_buffers = dict(self.named_buffers())
        own = set(own_params) | set(own_buffers)
        missing = sorted(own - set(state_dict))
        unexpected = sorted(set(state_dict) - own)
        staged: list[tuple[str, np.ndarray]] = []
        mismatched: list[str] = []
        not_numbers: list[str] = []
        for name, value in state_dict.items():
            if name not in own:
                continue
            target = own_params[name].data if name in own_params else own_buffers[name]
            try:
                array = np.asarray(value.data if isinstance(value, Tensor) else value)
            except (TypeError, ValueError) as err:  # e.g. a ragged nested list
                not_numbers.append(f"{name!r} (not an array: {err})")
                continue
            if array.dtype.kind not in "biuf":  # bool, ints, floats: what casts to a number
                not_numbers.append(f"{name!r} (dtype {array.dtype}; the model has {target.dtype})")
                continue
            if array.shape != target.shape:
                mismatched.append(
                    f"{name!r}: the state dict has shape {array.shape}, "
                    f"the model has {target.shape}"
                )
                continue
            staged.append((name, np.array(array, dtype=target.dtype)))
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if not_numbers:
            problems.append("values that are not real numbers for " + "; ".join(not_numbers))
        if problems:
            raise StateDictError(
                f"load_state_dict into {type(self).__name__} failed (nothing was loaded): "
                + ", ".join(problems)
            )
        for name, array in staged:
            if name in own_params:
                own_params[name].data = array
            else:
                owner, _, attr = name.rpartition(".")
                self.get_submodule(owner)._buffers[attr] = array
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- calling
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}({self.extra_repr()}"]
        if not self._modules:
            return lines[0] + ")"
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        return "\n".join(lines) + "\n)"


@contextlib.contextmanager
def _swapped_parameters(module: Module, params: Mapping[str, Tensor]) -> Iterator[None]:
    own = dict(module.named_parameters())
    swaps: list[tuple[Module, str, Any]] = []
    for name, value in params.items():
        if name not in own:
            raise KeyError(
                f"functional_call: {type(module).__name__} has no parameter {name!r}; "
                f"it has {sorted(own)}"
            )
        if not isinstance(value, Tensor):
            raise TypeError(f"functional_call: value for {name!r} must be a Tensor")
        if value.shape != own[name].shape:
            raise ValueError(
                f"functional_call: shape mismatch for {name!r}: given {value.shape}, "
                f"the parameter has {own[name].shape}"
            )
    try:
        for name, value in params.items():
            owner_name, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_name)
            swaps.append((owner, attr, owner.__dict__[attr]))
            # a computed Tensor stands in for the weight (the one store: the attribute)
            owner.__dict__[attr] = value
        yield
    finally:
        for owner, attr, original in reversed(swaps):
            owner.__dict__[attr] = original


def functional_call(module: Module, params: Mapping[str, Tensor], *args: Any, **kwargs: Any) -> Any:
    """Run ``module(*args)`` with the named parameters replaced by the given tensors.

    The replacements can be computed tensors (``θ0 + P·θ_d``, ``W + s·B·A``), so gradients
    flow through them to whatever they were computed from. The module's own parameters
    are restored afterwards, even if forward raises.
    """
    with _swapped_parameters(module, params):
        return module(*args, **kwargs)
