"""Adapters on disk: PEFT's layout, bit-exact round trips, and errors that change nothing."""

from __future__ import annotations

import errno
import json
import os
import re

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lora_np.lora import (
    LoRAConfig,
    RankWarning,
    apply_lora,
    io,
    load_adapter,
    lora_layers,
    lora_state_dict,
    save_adapter,
)
from lora_np.lora.io import CONFIG_NAME, WEIGHTS_NAME
from lora_np.nn import MLP, Linear, Module, ReLU, Sequential
from lora_np.tensor import Tensor

SIZES = [6, 8, 8, 3]


def _base(seed: int = 0) -> MLP:
    return MLP(SIZES, rng=np.random.default_rng(seed))


def _trained(config: LoRAConfig, seed: int = 1) -> MLP:
    """A LoRA model whose trainable values are random (as if trained)."""
    model = apply_lora(_base(), config, rng=np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    for _, p in model.named_parameters():
        if p.requires_grad:
            p.data = (p.data + rng.standard_normal(p.shape)).astype(p.dtype)
    return model


def _out(model: Module) -> np.ndarray:
    x = np.random.default_rng(9).standard_normal((4, SIZES[0])).astype(np.float32)
    return model.eval()(Tensor(x)).data


def _snapshot(model: Module) -> dict[str, np.ndarray]:
    return {n: p.data.copy() for n, p in model.named_parameters()}


CONFIGS = {
    "plain": LoRAConfig(2, 4.0, target_modules=["0", "2"]),
    "dora": LoRAConfig(2, 4.0, target_modules="all-linear", use_dora=True, dropout=0.1),
    "rslora-bias-all-save-head": LoRAConfig(
        3, 8.0, target_modules=["0", "2"], use_rslora=True, bias="all", modules_to_save=["4"]
    ),
    "lora_only-patterns": LoRAConfig(
        2,
        4.0,
        target_modules=r"[02]",
        bias="lora_only",
        rank_pattern={"2": 4},
        alpha_pattern={"0": 3.0},
    ),
}


def test_peft_key_layout_and_config(tmp_path):
    model = _trained(LoRAConfig(2, 4.0, target_modules=["0", "2"], use_dora=True))
    save_adapter(model, tmp_path)
    assert sorted(os.listdir(tmp_path)) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files left
    tensors = load_file(tmp_path / WEIGHTS_NAME)
    assert {k: v.shape for k, v in tensors.items()} == {
        "base_model.model.0.lora_A.weight": (2, 6),
        "base_model.model.0.lora_B.weight": (8, 2),
        "base_model.model.0.lora_magnitude_vector": (8,),
        "base_model.model.2.lora_A.weight": (2, 8),
        "base_model.model.2.lora_B.weight": (8, 2),
        "base_model.model.2.lora_magnitude_vector": (8,),
    }
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["peft_type"] == "LORA"
    assert (config["r"], config["lora_alpha"], config["lora_dropout"]) == (2, 4, 0.0)
    assert config["target_modules"] == ["0", "2"]
    assert config["use_dora"] is True and config["use_rslora"] is False
    assert config["bias"] == "none" and config["init_lora_weights"] is True
    assert config["rank_pattern"] == {} and config["alpha_pattern"] == {}
    assert config["modules_to_save"] is None


def test_bias_and_modules_to_save_keys(tmp_path):
    save_adapter(_trained(CONFIGS["rslora-bias-all-save-head"]), tmp_path)
    keys = set(load_file(tmp_path / WEIGHTS_NAME))
    assert keys == {
        "base_model.model.0.lora_A.weight",
        "base_model.model.0.lora_B.weight",
        "base_model.model.0.base_layer.bias",
        "base_model.model.2.lora_A.weight",
        "base_model.model.2.lora_B.weight",
        "base_model.model.2.base_layer.bias",
        "base_model.model.4.weight",
        "base_model.model.4.bias",
    }


@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trip_is_bit_exact(tmp_path, name):
    model = _trained(CONFIGS[name])
    save_adapter(model, tmp_path)
    fresh = _base()  # the same base weights, no LoRA yet: load_adapter applies it
    load_adapter(fresh, tmp_path)
    assert [n for n, _ in lora_layers(fresh)] == [n for n, _ in lora_layers(model)]
    ours, theirs = lora_state_dict(model), lora_state_dict(fresh)
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype
        np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
    np.testing.assert_array_equal(_out(fresh), _out(model))
    # loading into a model that already has matching LoRA layers works too
    again = apply_lora(_base(), CONFIGS[name])
    load_adapter(again, tmp_path)
    np.testing.assert_array_equal(_out(again), _out(model))


def test_an_adapter_whose_rank_is_above_min_in_out_round_trips(tmp_path):
    # layer "4" is (out=3, in=8): a PEFT adapter may well have r = 5 there
    config = LoRAConfig(5, 4.0, target_modules=["0", "4"])
    with pytest.warns(RankWarning):
        trained = _trained(config)
    save_adapter(trained, tmp_path / "adapter")
    with pytest.warns(RankWarning):
        loaded = load_adapter(_base(), tmp_path / "adapter")
    assert loaded[4].rank == 5
    np.testing.assert_array_equal(_out(loaded), _out(trained))


def test_pissa_adapter_round_trip(tmp_path):
    model = _trained(LoRAConfig(2, 4.0, target_modules=["0"], init="pissa"))
    save_adapter(model, tmp_path)
    assert json.loads((tmp_path / CONFIG_NAME).read_text())["init_lora_weights"] == "pissa"
    fresh = load_adapter(_base(), tmp_path)  # recomputes the residual from the same base
    np.testing.assert_allclose(_out(fresh), _out(model), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- errors


@pytest.fixture
def saved(tmp_path):
    save_adapter(_trained(CONFIGS["plain"]), tmp_path)
    return tmp_path


def _assert_fails_unchanged(directory, match, kind=ValueError):
    model = _base()
    before = _snapshot(model)
    with pytest.raises(kind, match=match):
        load_adapter(model, directory)
    assert not lora_layers(model)
    after = _snapshot(model)
    assert sorted(after) == sorted(before)
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])


def test_truncated_file(saved):
    path = saved / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:-20])
    _assert_fails_unchanged(saved, f"{WEIGHTS_NAME}: not a readable safetensors")


def test_corrupt_header(saved):
    path = saved / WEIGHTS_NAME
    data = bytearray(path.read_bytes())
    data[8:20] = b"\x00garbage!!\xff\xfe"
    path.write_bytes(bytes(data))
    _assert_fails_unchanged(saved, "not a readable safetensors")


def test_missing_key(saved):
    tensors = load_file(saved / WEIGHTS_NAME)
    del tensors["base_model.model.2.lora_B.weight"]
    save_file(tensors, saved / WEIGHTS_NAME)
    _assert_fails_unchanged(saved, r"missing key 'base_model\.model\.2\.lora_B\.weight'")


def test_unexpected_key(saved):
    tensors = load_file(saved / WEIGHTS_NAME)
    tensors["base_model.model.4.lora_A.weight"] = np.zeros((2, 8), np.float32)
    save_file(tensors, saved / WEIGHTS_NAME)
    _assert_fails_unchanged(saved, r"unexpected key 'base_model\.model\.4\.lora_A\.weight'")


def test_shape_mismatch(saved):
    tensors = load_file(saved / WEIGHTS_NAME)
    tensors["base_model.model.0.lora_A.weight"] = np.zeros((2, 5), np.float32)
    save_file(tensors, saved / WEIGHTS_NAME)
    _assert_fails_unchanged(saved, r"'base_model\.model\.0\.lora_A\.weight' has shape \(2, 5\)")


def test_wrong_peft_type_and_bad_json(saved):
    path = saved / CONFIG_NAME
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "peft_type": "IA3"}))
    _assert_fails_unchanged(saved, f"{CONFIG_NAME}: peft_type must be 'LORA', got 'IA3'")
    path.write_text(json.dumps({**config, "fan_in_fan_out": True}))
    _assert_fails_unchanged(saved, "'fan_in_fan_out' = True is a PEFT option lora_np does not")
    path.write_text(json.dumps({**config, "target_modules": ["9"]}))
    _assert_fails_unchanged(saved, "does not fit this model.*'9' matches no module")
    path.write_text("{not json")
    _assert_fails_unchanged(saved, "not valid JSON")


@pytest.mark.parametrize(
    "field, value",
    [
        ("layers_to_transform", 0),  # a layer index: 0 is not "unset"
        ("alora_invocation_tokens", [1, 2]),  # a PEFT option lora_np has never heard of
        ("lora_bias", True),
    ],
)
def test_a_peft_option_lora_np_does_not_implement_is_refused(saved, field, value):
    path = saved / CONFIG_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    _assert_fails_unchanged(saved, f"'{field}' = {re.escape(repr(value))} is a PEFT option")


def test_options_left_unset_and_peft_metadata_load(saved):
    path = saved / CONFIG_NAME
    extra = {"alora_invocation_tokens": None, "layers_to_transform": [], "exclude_modules": "",
             "lora_bias": False, "peft_version": "0.21.2", "qalora_group_size": 16,
             "megatron_core": "megatron.core"}  # fmt: skip
    path.write_text(json.dumps({**json.loads(path.read_text()), **extra}))
    assert lora_layers(load_adapter(_base(), saved))


def _safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]]) -> bytes:
    """A safetensors file written by hand (any dtype name): an 8-byte header length, the
    JSON header with each tensor's dtype, shape and byte range, then the bytes."""
    header, data = {}, b""
    for key, (dtype, shape, raw) in tensors.items():
        header[key] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data


def test_a_bfloat16_adapter_loads_widened_exactly(saved):
    tensors = load_file(saved / WEIGHTS_NAME)
    bf16, expected = {}, {}
    for key, array in tensors.items():  # keep each float32's top 16 bits: a bfloat16
        top = (array.astype(np.float32).view(np.uint32) >> 16).astype("<u2")
        bf16[key] = ("BF16", list(array.shape), top.tobytes())
        expected[key] = (top.astype(np.uint32) << 16).view(np.float32)
    (saved / WEIGHTS_NAME).write_bytes(_safetensors_bytes(bf16))
    params = dict(load_adapter(_base(), saved).named_parameters())
    for name, key in (
        ("0.lora_a.weight", "0.lora_A.weight"),
        ("2.lora_b.weight", "2.lora_B.weight"),
    ):
        np.testing.assert_array_equal(params[name].data, expected[f"base_model.model.{key}"])
        assert not np.array_equal(params[name].data, tensors[f"base_model.model.{key}"])  # rounded


def test_a_tensor_of_a_dtype_numpy_cannot_read_is_named(saved):
    fp8 = {"base_model.model.0.lora_A.weight": ("F8_E4M3", [2], b"ab")}
    (saved / WEIGHTS_NAME).write_bytes(_safetensors_bytes(fp8))
    _assert_fails_unchanged(saved, r"'base_model\.model\.0\.lora_A\.weight' has dtype F8_E4M3")


def _nested(seed: int = 0) -> Module:
    """A model where the name "0" is also a suffix of "2.0": a list entry "0" catches both."""
    rng = np.random.default_rng(seed)
    return Sequential(
        Linear(6, 8, rng=rng), ReLU(), Sequential(Linear(8, 8, rng=rng)), Linear(8, 3, rng=rng)
    )


def test_names_that_a_list_would_read_too_widely_are_saved_exactly(tmp_path):
    model = apply_lora(_nested(), LoRAConfig(2, 4.0, target_modules="0|3", rank_pattern={"3": 1}))
    model.get_parameter("0.lora_b.weight").data += 1.0
    save_adapter(model, tmp_path)
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["target_modules"] == "0|3" and config["rank_pattern"] == {"^3": 1}
    fresh = load_adapter(_nested(), tmp_path)
    assert [name for name, _ in lora_layers(fresh)] == ["0", "3"]  # not "2.0"
    x = Tensor(np.ones((2, 6), np.float32))
    np.testing.assert_array_equal(fresh(x).data, model(x).data)
    # without a clash the names stay a plain list
    save_adapter(_trained(CONFIGS["plain"]), tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / CONFIG_NAME).read_text())["target_modules"] == [
        "0",
        "2",
    ]


def test_a_pissa_adapter_and_plain_layers_are_not_mixed(tmp_path, saved):
    save_adapter(
        _trained(LoRAConfig(2, 4.0, target_modules=["0", "2"], init="pissa")), tmp_path / "p"
    )
    plain = apply_lora(_base(), LoRAConfig(2, 4.0, target_modules=["0", "2"]))
    with pytest.raises(
        ValueError, match=r"layer '0' has init='kaiming', the adapter has init='pissa'"
    ):
        load_adapter(plain, tmp_path / "p")
    pissa = apply_lora(_base(), LoRAConfig(2, 4.0, target_modules=["0", "2"], init="pissa"))
    with pytest.raises(
        ValueError, match=r"layer '0' has init='pissa', the adapter has init='kaiming'"
    ):
        load_adapter(pissa, saved)
    gaussian = apply_lora(_base(), LoRAConfig(2, 4.0, target_modules=["0", "2"], init="gaussian"))
    assert load_adapter(gaussian, saved) is gaussian  # the values come from the file either way


def test_missing_files(tmp_path):
    _assert_fails_unchanged(tmp_path, "no adapter config", FileNotFoundError)


def test_mismatched_existing_layers_are_refused(saved):
    model = apply_lora(_base(), LoRAConfig(2, 4.0, target_modules=["0", "2"], use_dora=True))
    before = _snapshot(model)
    with pytest.raises(ValueError, match="has use_dora=True, the adapter has False"):
        load_adapter(model, saved)
    for key, value in _snapshot(model).items():
        np.testing.assert_array_equal(value, before[key])


def test_save_without_lora_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no LoRA layers"):
        save_adapter(_base(), tmp_path)


def test_overwrite_is_atomic_and_leaves_no_temp_files(tmp_path):
    save_adapter(_trained(CONFIGS["plain"], seed=1), tmp_path)
    second = _trained(CONFIGS["plain"], seed=5)
    save_adapter(second, tmp_path)
    assert sorted(os.listdir(tmp_path)) == [CONFIG_NAME, WEIGHTS_NAME]
    np.testing.assert_array_equal(_out(load_adapter(_base(), tmp_path)), _out(second))


def test_interrupted_save_keeps_the_old_files(tmp_path, monkeypatch):
    first = _trained(CONFIGS["plain"], seed=1)
    save_adapter(first, tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in (CONFIG_NAME, WEIGHTS_NAME)}

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("lora_np.files.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_adapter(_trained(CONFIGS["plain"], seed=5), tmp_path)
    assert sorted(os.listdir(tmp_path)) == [CONFIG_NAME, WEIGHTS_NAME]  # temp file removed
    for name, data in before.items():
        assert (tmp_path / name).read_bytes() == data


# --------------------------------------------------------------------------- whole or nothing


def _fail_on_second_write(monkeypatch):
    """Make save_adapter's second file write fail (a full disk, a Ctrl-C) part way."""
    real = io.write_atomic
    calls = []

    def write_atomic(path, write, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:

            def half(file):
                write(file)  # the bytes went out, then the disk filled up before the sync
                raise OSError(errno.ENOSPC, "No space left on device")

            return real(path, half, *args, **kwargs)
        return real(path, write, *args, **kwargs)

    monkeypatch.setattr(io, "write_atomic", write_atomic)
    return calls


def test_a_save_that_fails_at_the_second_file_leaves_the_old_adapter_loadable(
    tmp_path, monkeypatch
):
    folder = tmp_path / "adapter"
    first, second = _trained(CONFIGS["plain"], seed=1), _trained(CONFIGS["plain"], seed=5)
    save_adapter(first, folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = _fail_on_second_write(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        save_adapter(second, folder)
    assert len(calls) == 2  # the first file was written in full, the second failed
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(os.listdir(tmp_path)) == ["adapter"]  # no staging folder left
    np.testing.assert_array_equal(_out(load_adapter(_base(), folder)), _out(first))


def test_a_save_that_fails_at_the_second_file_leaves_no_new_folder(tmp_path, monkeypatch):
    _fail_on_second_write(monkeypatch)
    with pytest.raises(OSError, match="No space left"):
        save_adapter(_trained(CONFIGS["plain"]), tmp_path / "adapter")
    assert os.listdir(tmp_path) == []  # neither a half-written adapter nor a staging folder


def _die_at_rename(monkeypatch, number: int) -> None:
    """The process dies at the ``number``-th folder rename (nothing after it runs)."""
    real, seen = os.rename, []

    class Died(BaseException):
        pass

    def rename(src, dst):
        seen.append(dst)
        if len(seen) == number:
            raise Died
        real(src, dst)

    monkeypatch.setattr("lora_np.files.os.rename", rename)
    return Died


@pytest.mark.parametrize(
    ("rename", "loads"),
    [(1, "old"), (2, "old"), (3, "new")],
    ids=["before-staged-complete", "before-old-moved-away", "between-the-two-renames"],
)
def test_a_save_that_dies_between_renames_leaves_an_adapter_that_loads(
    tmp_path, monkeypatch, rename, loads
):
    # renames: 1 staging -> .adapter.new (complete), 2 adapter -> .adapter.old,
    # 3 .adapter.new -> adapter
    folder = tmp_path / "adapter"
    old, new = _trained(CONFIGS["plain"], seed=1), _trained(CONFIGS["plain"], seed=5)
    save_adapter(old, folder)
    died = _die_at_rename(monkeypatch, rename)
    with pytest.raises(died):
        save_adapter(new, folder)
    monkeypatch.undo()
    assert (folder.exists()) == (rename != 3)  # only between the two renames is it missing
    expected = {"old": old, "new": new}[loads]
    np.testing.assert_array_equal(_out(load_adapter(_base(), folder)), _out(expected))
    # the next save cleans up (and finishes an interrupted swap first)
    third = _trained(CONFIGS["plain"], seed=7)
    save_adapter(third, folder)
    assert sorted(os.listdir(tmp_path)) == ["adapter"]
    assert sorted(os.listdir(folder)) == [CONFIG_NAME, WEIGHTS_NAME]
    np.testing.assert_array_equal(_out(load_adapter(_base(), folder)), _out(third))


@pytest.mark.parametrize("rename", [1, 2, 3])
def test_a_rename_that_fails_is_rolled_back_to_the_old_adapter(tmp_path, monkeypatch, rename):
    folder = tmp_path / "adapter"
    old = _trained(CONFIGS["plain"], seed=1)
    save_adapter(old, folder)
    real, seen = os.rename, []

    def rename_fails(src, dst):
        seen.append(dst)
        if len(seen) == rename:
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        real(src, dst)

    monkeypatch.setattr("lora_np.files.os.rename", rename_fails)
    with pytest.raises(PermissionError):
        save_adapter(_trained(CONFIGS["plain"], seed=5), folder)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["adapter"]
    np.testing.assert_array_equal(_out(load_adapter(_base(), folder)), _out(old))


def test_saving_over_a_file_is_a_clear_error_naming_it(tmp_path):
    path = tmp_path / "adapter.safetensors"
    path.write_bytes(b"not mine to overwrite")
    with pytest.raises(
        NotADirectoryError, match=rf"save_adapter: {re.escape(str(path))} is a file"
    ):
        save_adapter(_trained(CONFIGS["plain"]), path)
    assert path.read_bytes() == b"not mine to overwrite"
    assert os.listdir(tmp_path) == ["adapter.safetensors"]
    with pytest.raises(NotADirectoryError, match=r"load_adapter: .*adapter\.safetensors is a file"):
        load_adapter(_base(), path)


def test_other_files_in_the_folder_and_its_permissions_are_kept(tmp_path):
    folder = tmp_path / "adapter"
    save_adapter(_trained(CONFIGS["plain"], seed=1), folder)
    (folder / "README.md").write_text("my notes")
    (folder / "runs").mkdir()
    (folder / "runs" / "log.txt").write_text("epoch 1")
    folder.chmod(0o750)
    second = _trained(CONFIGS["plain"], seed=5)
    save_adapter(second, folder)
    assert (folder / "README.md").read_text() == "my notes"
    assert (folder / "runs" / "log.txt").read_text() == "epoch 1"
    assert folder.stat().st_mode & 0o777 == 0o750
    np.testing.assert_array_equal(_out(load_adapter(_base(), folder)), _out(second))


# --------------------------------------------------------------------------- merged layers


def test_loading_into_merged_layers_is_refused_and_changes_nothing(saved):
    model = apply_lora(_base(), CONFIGS["plain"], rng=np.random.default_rng(3))
    model[0].merge()
    before = _snapshot(model)
    with pytest.raises(RuntimeError, match=r"layers \['0'\] are merged.*unmerge\(\) them first"):
        load_adapter(model, saved)
    for key, value in _snapshot(model).items():
        np.testing.assert_array_equal(value, before[key])
    model[0].unmerge()
    load_adapter(model, saved)  # unmerged, it loads
    np.testing.assert_array_equal(_out(model), _out(load_adapter(_base(), saved)))
