"""``python -m lora_np demo``: train a 64-128-128-10 MLP on the digits, print its accuracy.

The whole recipe, with nothing hidden::

    X_train, y_train, X_test, y_test = digits_split()      # stratified 75/25, standardised
    model = MLP([64, 128, 128, 10], rng=rng)                # ReLU, PyTorch's default init
    fit(model, (X_train, y_train), optimizer=Adam(model.parameters(), lr=2e-3),
        epochs=20, batch_size=64, rng=rng)
    evaluate(model, X_test, y_test)                         # about 97% on the 449 test images
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from lora_np.cli.arguments import (
    add_no_progress_option,
    nonnegative_int,
    positive_float,
    positive_int,
)
from lora_np.data import digits_split
from lora_np.nn import MLP
from lora_np.optim import Adam
from lora_np.train import History, evaluate, fit

SIZES = (64, 128, 128, 10)


@dataclass
class DemoResult:
    model: MLP
    history: History
    test_accuracy: float
    test_loss: float
    n_train: int
    n_test: int
    seconds: float


def train_digits_mlp(
    *,
    epochs: int = 20,
    lr: float = 2e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
) -> DemoResult:
    """Train the demo MLP with Adam on the standard digits split; evaluate on its test set.

    ``seed`` drives the initial weights and the batch order (the split is always the one
    of :func:`lora_np.data.digits_split` with its default seed, so every run is scored on
    the same 449 test images). ``seconds`` is the wall time of the whole call.
    """
    start = time.perf_counter()
    X_train, y_train, X_test, y_test = digits_split()
    rng = np.random.default_rng(seed)
    model = MLP(list(SIZES), rng=rng)
    history = fit(
        model,
        (X_train, y_train),
        optimizer=Adam(model.parameters(), lr=lr),
        epochs=epochs,
        batch_size=batch_size,
        eval_data=(X_test, y_test),
        progress=progress,
        rng=rng,
        desc="digits MLP",
    )
    metrics = evaluate(model, X_test, y_test)
    return DemoResult(
        model=model,
        history=history,
        test_accuracy=float(metrics["accuracy"]),
        test_loss=float(metrics["loss"]),
        n_train=len(y_train),
        n_test=len(y_test),
        seconds=time.perf_counter() - start,
    )


DESCRIPTION = """\
Train a 64-128-128-10 ReLU MLP with Adam on the 8x8 digits (a stratified 75/25 split,
standardised on the training part) and print its accuracy on the 449 held-out digits.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--epochs", type=positive_int, default=20, metavar="N", help="passes over the training set"
    )
    parser.add_argument("--lr", type=positive_float, default=2e-3, help="Adam's learning rate")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=64,
        metavar="N",
        help="digits per step (one larger than the training set uses all of it)",
    )
    parser.add_argument(
        "--seed",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="drives the initial weights and batch order (N >= 0)",
    )
    add_no_progress_option(parser)


def run(args: argparse.Namespace) -> int:
    try:
        result = train_digits_mlp(
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            seed=args.seed,
            progress=not args.no_progress,
        )
    except FloatingPointError as error:  # the loss diverged; the message says what to try
        print(f"python -m lora_np demo: {error}", file=sys.stderr)
        return 1
    sizes = "-".join(str(s) for s in SIZES)
    steps = result.history.steps
    used = min(args.batch_size, result.n_train)
    batch = f"batch {used}"
    if used < args.batch_size:
        batch += f": the whole training set, as --batch-size {args.batch_size} is larger"
    print(
        f"MLP {sizes} trained with Adam (lr={args.lr:g}) for {args.epochs} "
        f"epoch{'s' if args.epochs != 1 else ''} "
        f"({steps} step{'s' if steps != 1 else ''} of {batch}) on {result.n_train} digits"
    )
    print(
        f"test accuracy: {result.test_accuracy:.2%} on {result.n_test} held-out digits "
        f"(test loss {result.test_loss:.4f}); {result.seconds:.1f} s in all"
    )
    return 0
