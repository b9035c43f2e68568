"""The tiny GPT's pretrained checkpoint, the name-modelling loop, and the ``tiny_lm`` experiment.

The experiment's claims are asserted on a quick run (margins chosen after quick runs with
seeds 0..4, noted next to each test); its JSON fields are also checked by
``tests/test_experiments.py`` through ``reproduce --quick``.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from lora_np.data import NAMES_SHA256, names_split
from lora_np.data.names import IGNORE
from lora_np.experiments import quick_mode, tiny_lm
from lora_np.experiments.common import jsonable
from lora_np.models import GPT, token_nll
from lora_np.models.char_lm import Sequences, cosine_schedule, nll, sample_names, train
from lora_np.models.pretrained import (
    ARCHITECTURE,
    CHECKPOINT_SHA256,
    FIRST_LOSSES,
    RECIPE,
    checkpoint_bytes,
    checkpoint_metadata,
    load_pretrained,
    pretrain,
    read_checkpoint,
)
from lora_np.train import evaluate

CHECKPOINT = (
    Path(__file__).resolve().parents[1] / "lora_np/models/checkpoints/gpt_surnames.safetensors"
)

# --------------------------------------------------------------------------- the checkpoint


def test_the_checkpoint_is_the_recipe_on_the_shipped_names() -> None:
    assert hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest() == CHECKPOINT_SHA256
    arrays, metadata = read_checkpoint()
    assert metadata["recipe"] == RECIPE
    assert metadata["architecture"] == ARCHITECTURE
    assert metadata["names_sha256"] == NAMES_SHA256
    model = load_pretrained()
    assert list(arrays) == sorted(model.state_dict())  # safetensors sorts its keys
    assert model.config() == ARCHITECTURE and model.tok_emb.weight.dtype == np.float32
    _, validation = names_split("surnames")
    measured = nll(model, Sequences.from_names(validation, model.context_length))
    assert measured == pytest.approx(metadata["validation_nll"], abs=1e-6)
    assert measured < 2.2  # far below uniform guessing, log 27 ≈ 3.30


@pytest.mark.slow
def test_the_recipe_reproduces_the_checkpoint() -> None:
    """Quick mode: the recipe's first training losses are the ones the checkpoint recorded
    when it was made. Otherwise the whole recipe runs (a minute or two) and must give the
    checkpoint's bytes exactly: every array, the metadata, the SHA-256."""
    arrays, metadata = read_checkpoint()
    if quick_mode():
        _, history = pretrain(steps=FIRST_LOSSES)
        np.testing.assert_allclose(history["loss"], metadata["first_losses"], rtol=1e-5)
        return
    model, history = pretrain()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, arrays[key], err_msg=key)
    assert checkpoint_metadata(model, history) == metadata
    payload = checkpoint_bytes(model, metadata)
    assert hashlib.sha256(payload).hexdigest() == CHECKPOINT_SHA256


def test_a_corrupt_checkpoint_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "gpt.safetensors"
    data = bytearray(CHECKPOINT.read_bytes())
    data[-1] ^= 1
    broken.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt or not the shipped checkpoint"):
        load_pretrained(broken)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_pretrained(tmp_path / "missing.safetensors")
    assert load_pretrained(broken, check_sha256=False).config() == ARCHITECTURE
    broken.write_bytes(CHECKPOINT.read_bytes()[:100])  # truncated: not even a header
    with pytest.raises(ValueError, match=r"gpt\.safetensors is not a readable safetensors"):
        load_pretrained(broken, check_sha256=False)


def test_pretrain_checks_its_steps() -> None:
    with pytest.raises(ValueError, match=r"steps must be in \[1, 4000\]"):
        pretrain(steps=0)


# --------------------------------------------------------------------------- the loop


def _small() -> tuple[GPT, Sequences]:
    model = GPT(27, 8, 8, 2, 1, rng=np.random.default_rng(0))
    return model, Sequences.from_names(["ann", "bob", "cy", "dee", "eve", "flo"], 8)


def test_train_is_deterministic_per_rng_and_learns() -> None:
    model, data = _small()
    runs = []
    for _ in range(2):
        copy_ = copy.deepcopy(model)
        history = train(copy_, data, steps=30, lr=1e-2, rng=np.random.default_rng(3), batch_size=4)
        runs.append((history["loss"], copy_.state_dict()))
    assert runs[0][0] == runs[1][0]
    for key, value in runs[0][1].items():
        np.testing.assert_array_equal(value, runs[1][1][key])
    assert np.mean(runs[0][0][-5:]) < np.mean(runs[0][0][:5]) - 0.5


def test_keep_best_restores_the_best_evaluation() -> None:
    model, data = _small()
    history = train(
        model,
        data,
        steps=40,
        lr=0.3,  # a large step, so the curve does not only go down
        rng=np.random.default_rng(0),
        batch_size=6,
        eval_sets={"held": data},
        eval_every=5,
        keep_best="held",
    )
    best = int(np.argmin(history["held"]))
    assert history["best_step"] == history["eval_steps"][best]
    assert nll(model, data) == pytest.approx(history["held"][best], rel=1e-6)
    with pytest.raises(ValueError, match="keep_best='x' is not one of the eval_sets"):
        train(model, data, steps=1, lr=0.1, rng=np.random.default_rng(0), keep_best="x")


def test_nll_counts_every_target_once_whatever_the_batch() -> None:
    model, data = _small()
    assert data.num_tokens == 3 + 3 + 2 + 3 + 3 + 3 + 6  # letters plus one end token each
    assert nll(model, data, batch_size=1) == pytest.approx(nll(model, data), rel=1e-6)


def test_evaluate_leaves_the_padding_out_of_the_loss_and_the_accuracy() -> None:
    model, data = _small()
    for batch_size in (1, 4, 4096):  # the loss is the same however the rows are chunked
        result = evaluate(model, data.inputs, data.targets, loss=token_nll, batch_size=batch_size)
        assert result["loss"] == pytest.approx(nll(model, data), rel=1e-6)
    real = data.targets != IGNORE
    predicted = np.argmax(model(data.inputs).data, axis=-1)
    assert result["accuracy"] == np.count_nonzero((predicted == data.targets) & real) / real.sum()


def test_train_checks_eval_every() -> None:
    model, data = _small()
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="eval_every must be a positive int or None"):
            train(model, data, steps=2, lr=0.1, rng=np.random.default_rng(0), eval_every=bad)


def test_cosine_schedule_and_samples() -> None:
    schedule = cosine_schedule(1.0, 10)
    assert schedule(1) == 1.0 and schedule(6) == pytest.approx(0.5)
    assert 0 < schedule(10) < 0.03
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        cosine_schedule(1e-3, 0)
    model, _ = _small()
    names = sample_names(model, 5, np.random.default_rng(0))
    assert names == sample_names(model, 5, np.random.default_rng(0))
    assert len(names) == 5 and all(set(n) <= set("abcdefghijklmnopqrstuvwxyz") for n in names)


# --------------------------------------------------------------------------- the experiment


@pytest.fixture(scope="module")
def quick() -> dict:
    return jsonable(tiny_lm.run(quick=True, seed=0, progress=False))


def test_the_spread_over_seeds_is_the_sample_standard_deviation() -> None:
    mean, std = tiny_lm._mean_std([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(mean, [2.0, 2.0])
    np.testing.assert_array_equal(std, [1.0, 0.0])  # ddof = 1, as the intervals use
    assert tiny_lm._mean_std([[2.5]])[1].tolist() == [0.0]  # one seed: no spread


def test_target_at_forgetting_interpolates_the_first_crossing() -> None:
    source, target = [2.0, 2.2, 2.6, 2.4], [3.0, 2.5, 2.0, 1.9]
    assert tiny_lm.target_at_forgetting(source, target, 2.3) == pytest.approx(2.375)
    assert tiny_lm.target_at_forgetting(source, target, 2.0) == pytest.approx(3.0)
    assert tiny_lm.target_at_forgetting(source, target, 2.7) is None


def test_finetune_is_deterministic_and_freezes_all_but_the_adapters() -> None:
    t = tiny_lm.task()
    runs = [
        tiny_lm.finetune(t, modules=("q_proj",), rank=2, lr=1e-2, steps=10, eval_every=5, seed=4)
        for _ in range(2)
    ]
    assert runs[0]["val_nll_target"] == runs[1]["val_nll_target"]
    assert runs[0]["trainable"] == 2 * 2 * (64 + 64)
    assert t.pretrained.state_dict()["blocks.0.attn.q_proj.weight"].shape == (64, 64)
    np.testing.assert_array_equal(  # the pretrained model itself is never changed
        t.pretrained.state_dict()["lm_head.weight"],
        load_pretrained().state_dict()["lm_head.weight"],
    )


def test_quick_run_has_the_contracted_fields(quick: dict) -> None:
    seeds = len(quick["seeds"])
    assert [row["modules"] for row in quick["targets"]] == [
        ["q_proj"],
        ["k_proj"],
        ["v_proj"],
        ["o_proj"],
        ["q_proj", "v_proj"],
        ["q_proj", "k_proj"],
        ["q_proj", "k_proj", "v_proj", "o_proj"],
    ]
    assert [row["rank"] for row in quick["targets"]] == [8, 8, 8, 8, 4, 4, 2]
    assert {row["trainable"] for row in quick["targets"]} == {2 * 8 * (64 + 64)}  # one budget
    for row in quick["targets"]:
        assert len(row["val_nll_target"]) == len(row["val_nll_source"]) == seeds
    ranks = quick["ranks"]
    assert ranks["modules"] == ["q_proj", "v_proj"]
    assert len(ranks["val_nll_target"]) == len(ranks["ranks"])
    assert all(len(per_seed) == seeds for per_seed in ranks["val_nll_target"])
    full = quick["full_ft"]
    assert full["trainable"] == 104_576 and full["lr"] in full["lrs"]
    assert len(full["val_nll_target"]) == len(full["val_nll_source"]) == seeds
    assert set(quick["baseline"]) == {"val_nll_target", "val_nll_source"}
    phi = quick["phi"]
    assert phi["i"] == list(range(1, 9)) and phi["j"] == 8
    assert len(phi["q_proj"]) == len(phi["v_proj"]) == len(phi["chance"]) == 8
    assert all(len(quick["samples"][k]) == 10 for k in ("before", "lora", "full_ft"))


# quick runs, seeds 0..4: baseline 2.282 (first names) / 2.155 (surnames); every LoRA
# choice 2.117..2.200 on first names and 2.250..2.363 on surnames; full FT 1.990..1.999 on
# first names and 2.476..2.496 on surnames; full FT where it has forgotten as much as LoRA
# on q,v: 2.081..2.094, against q,v's 2.134..2.148


def test_every_lora_choice_learns_and_full_finetuning_learns_more_and_forgets_more(
    quick: dict,
) -> None:
    baseline = quick["baseline"]
    full = quick["full_ft"]
    lora_target = [np.mean(row["val_nll_target"]) for row in quick["targets"]]
    lora_source = [np.mean(row["val_nll_source"]) for row in quick["targets"]]
    assert max(lora_target) < baseline["val_nll_target"] - 0.05
    assert np.mean(full["val_nll_target"]) < min(lora_target) - 0.08
    assert np.mean(full["val_nll_source"]) > max(lora_source) + 0.05
    assert min(lora_source) > baseline["val_nll_source"]  # every choice forgets some


def test_adapting_q_or_k_alone_learns_least(quick: dict) -> None:
    """Table 5's pattern: W_q alone, W_k alone and q+k trail every choice that includes
    W_v or W_o (quick seeds 0..4: q, k, q+k 2.188..2.200, the others 2.117..2.148; the gap
    0.045..0.055)."""
    by_name = {",".join(row["modules"]): np.mean(row["val_nll_target"]) for row in quick["targets"]}
    without_v_or_o = [by_name["q_proj"], by_name["k_proj"], by_name["q_proj,k_proj"]]
    with_v_or_o = [v for k, v in by_name.items() if "v_proj" in k or "o_proj" in k]
    assert min(without_v_or_o) > max(with_v_or_o) + 0.03


def test_a_larger_rank_learns_more_here(quick: dict) -> None:
    ranks = quick["ranks"]
    means = [np.mean(v) for v in ranks["val_nll_target"]]
    assert ranks["ranks"][0] == 1 and ranks["ranks"][-1] == 64
    assert means[-1] < means[0] - 0.03  # rank 1 is not enough here (seeds 0..4: 0.049..0.068)


def test_at_equal_forgetting_full_finetuning_learns_more(quick: dict) -> None:
    """LoRA forgets less only because it learns less: full fine-tuning's own curve, where it
    has forgotten as much as LoRA on q,v, is already lower on first names."""
    qv = next(row for row in quick["targets"] if row["modules"] == ["q_proj", "v_proj"])
    at = quick["full_ft"]["val_nll_target_at_lora_forgetting"]
    assert None not in at
    assert np.mean(at) < np.mean(qv["val_nll_target"]) - 0.02


def test_phi_between_rank_8_and_64_is_far_above_chance(quick: dict) -> None:
    """Seeds 0..4: top-1 φ is 4.1..6.2 times the chance level."""
    phi = quick["phi"]
    for proj in ("q_proj", "v_proj"):
        assert phi[proj][0] > 3 * phi["chance"][0]
    assert 0.1 < phi["chance"][0] < 0.16  # E φ = max(i, j)/n = 8/64 for random subspaces


def test_plot_and_summary(quick: dict) -> None:
    assert isinstance(tiny_lm.plot(quick), Figure)
    line = tiny_lm.summary(quick)
    assert "\n" not in line and "full FT" in line
