"""Build ``lora_np/data/datasets/census_names.txt.gz`` from the PyPI package ``names`` 0.3.0.

Run once, at development time, from the repository root::

    pip download names==0.3.0 --no-deps --no-binary :all: -d /tmp/names_pkg
    python tools/make_names_data.py /tmp/names_pkg/names-0.3.0.tar.gz

Where the data comes from
-------------------------
``names`` 0.3.0 (Trey Hunner, MIT licence, https://github.com/treyhunner/names) ships three
name lists from the 1990 US Census, which are US-government works in the public domain:
``names/dist.all.last`` (88,799 surnames), ``names/dist.female.first`` (4,275 female first
names) and ``names/dist.male.first`` (1,219 male first names). Each line is
``NAME  frequency%  cumulative%  rank``, most frequent first. This script reads those three
files from the source archive (nothing else, and it never imports the package) and checks
the archive's SHA-256 first, so it only ever converts that exact release.

What it writes
--------------
A gzip-compressed UTF-8 text file: one header line, then three sections, each a line
``[<list>] <source file> <count>`` followed by that many names, one per line, lower-cased,
in the census order (most frequent first); the frequency columns are dropped. Every name
is made of the letters a-z only (checked). The gzip header carries no file name and a zero
timestamp, so running the script again (with the same zlib) gives a byte-identical file
and the SHA-256 that ``lora_np/data/names.py`` checks stays valid. The script prints that
SHA-256.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import re
import tarfile
from pathlib import Path

#: SHA-256 of ``names-0.3.0.tar.gz`` as PyPI serves it.
SDIST_SHA256 = "726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671"

#: (section name, file inside the archive, number of names it must hold)
LISTS = (
    ("surnames", "names-0.3.0/names/dist.all.last", 88_799),
    ("female", "names-0.3.0/names/dist.female.first", 4_275),
    ("male", "names-0.3.0/names/dist.male.first", 1_219),
)

HEADER = (
    "# 1990 US Census name lists (public domain), from the PyPI package names 0.3.0 "
    "(MIT); lower-cased, most frequent first"
)

OUT = Path(__file__).resolve().parent.parent / "lora_np" / "data" / "datasets"
OUT_FILE = OUT / "census_names.txt.gz"

_LINE = re.compile(r"^([A-Z]+)\s+\d+\.\d+\s+\d+\.\d+\s+\d+$")


def read_list(archive: tarfile.TarFile, member: str, expected: int) -> list[str]:
    """The names of one census file, lower-cased, in file order; checked line by line."""
    handle = archive.extractfile(member)
    if handle is None:
        raise ValueError(f"{member} is not a regular file in the archive")
    names = []
    for number, line in enumerate(handle.read().decode("ascii").splitlines(), start=1):
        match = _LINE.match(line.strip())
        if match is None:
            raise ValueError(f"{member}, line {number}: unexpected format {line!r}")
        names.append(match.group(1).lower())
    if len(names) != expected or len(set(names)) != expected:
        raise ValueError(f"{member}: expected {expected} distinct names, got {len(names)}")
    return names


def build_text(sdist: Path) -> str:
    """The file's text, from the source archive at ``sdist`` (its SHA-256 checked first)."""
    digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise ValueError(f"{sdist} has SHA-256 {digest}, expected names-0.3.0's {SDIST_SHA256}")
    lines = [HEADER]
    with tarfile.open(sdist, "r:gz") as archive:
        for section, member, expected in LISTS:
            names = read_list(archive, member, expected)
            lines.append(f"[{section}] {Path(member).name} {len(names)}")
            lines.extend(names)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sdist", type=Path, help="path to names-0.3.0.tar.gz")
    args = parser.parse_args()
    payload = gzip.compress(build_text(args.sdist).encode("utf-8"), compresslevel=9, mtime=0)
    tmp = OUT_FILE.with_suffix(".gz.tmp")
    tmp.write_bytes(payload)
    tmp.replace(OUT_FILE)  # never leave a half-written file behind
    print(f"wrote {OUT_FILE} ({len(payload)} bytes)")
    print(f"sha256 {hashlib.sha256(payload).hexdigest()}")


if __name__ == "__main__":
    main()
