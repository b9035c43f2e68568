"""Build ``lora_np/data/datasets/digits.npz`` from scikit-learn's bundled copy of the UCI digits.

Run once, at development time, from the repository root::

    python tools/make_digits_npz.py

Where the data comes from
-------------------------
The 1,797 8×8 images are the test part ("optdigits.tes") of the UCI "Optical Recognition
of Handwritten Digits" dataset (Alpaydin & Kaynak, 1998, https://doi.org/10.24432/C50P49,
licence CC BY 4.0). scikit-learn ships that same table as
``sklearn/datasets/data/digits.csv.gz`` (one row per image: 64 pixel counts in 0..16, then
the label); this script reads that file and nothing else. scikit-learn is needed only here,
never at run time or for the tests.

What it writes
--------------
A NumPy ``.npz`` with two arrays and no pickled objects:

- ``X``: uint8, shape (1797, 64), pixel counts 0..16 (row-major 8×8 image per row);
- ``y``: uint8, shape (1797,), the digit 0..9.

The archive is written with a fixed timestamp, so running the script again gives a
byte-identical file and the SHA-256 that ``lora_np/data.py`` checks stays valid. The
script prints that SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent.parent / "lora_np" / "data" / "datasets" / "digits.npz"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


def read_sklearn_csv() -> tuple[np.ndarray, np.ndarray]:
    """Read scikit-learn's ``digits.csv.gz`` (65 comma-separated integers per row)."""
    source = resources.files("sklearn.datasets") / "data" / "digits.csv.gz"
    with resources.as_file(source) as csv_path:
        table = np.loadtxt(csv_path, delimiter=",", dtype=np.int64)
    X, y = table[:, :64], table[:, 64]
    return X, y


def check(X: np.ndarray, y: np.ndarray) -> None:
    """Sanity checks, including agreement with ``sklearn.datasets.load_digits``."""
    from sklearn.datasets import load_digits

    if X.shape != (1797, 64) or y.shape != (1797,):
        raise ValueError(f"unexpected shapes X {X.shape}, y {y.shape}")
    if X.min() < 0 or X.max() > 16 or y.min() < 0 or y.max() > 9:
        raise ValueError("pixel values must be in 0..16 and labels in 0..9")
    reference = load_digits()
    if not (np.array_equal(reference.data, X) and np.array_equal(reference.target, y)):
        raise ValueError("the CSV does not match sklearn.datasets.load_digits()")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A compressed .npz (what ``np.savez_compressed`` writes) with fixed timestamps.

    ``np.savez_compressed`` stamps each member with the current time, so the file's hash
    would change on every run; writing the same ``.npy`` members ourselves avoids that.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def main() -> None:
    X, y = read_sklearn_csv()
    check(X, y)
    payload = npz_bytes({"X": X.astype(np.uint8), "y": y.astype(np.uint8)})
    tmp = OUT.with_suffix(".npz.tmp")
    tmp.write_bytes(payload)
    tmp.replace(OUT)  # never leave a half-written file behind
    with np.load(OUT, allow_pickle=False) as data:  # round-trip check
        assert np.array_equal(data["X"], X) and np.array_equal(data["y"], y)
    print(f"wrote {OUT} ({len(payload)} bytes)")
    print(f"sha256 {hashlib.sha256(payload).hexdigest()}")
    print("class counts", np.bincount(y).tolist())


if __name__ == "__main__":
    main()
