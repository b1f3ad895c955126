"""Files of string pairs: UTF-8 TSV, one ``source<TAB>target`` pair a line.

A source may appear on several lines: each line adds one reference target (kept in file order,
exact duplicates dropped), as a dictionary lists several pronunciations of a word. Blank lines
are skipped. Everything else that is not one source, one tab and one target is an error that
names the file and the line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["Pairs", "read_pairs", "parse_pairs", "write_pairs"]

#: Sources with their reference targets, in first-seen order: ``[(source, [target, ...]), ...]``.
Pairs = list[tuple[str, list[str]]]


def parse_pairs(lines: Iterable[str], source: str = "<lines>") -> Pairs:
    """Pairs from TSV lines (see the module docstring); `source` names them in errors.

    Raises:
        ValueError: ``"FILE:LINE: ..."`` for a line without a tab, with more than one tab, or
            with an empty source or target.
    """
    pairs: dict[str, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            what = "no tab" if len(fields) == 1 else f"{len(fields) - 1} tabs"
            raise ValueError(f"{source}:{number}: expected 'source<TAB>target', found {what}: {line[:80]!r}")
        text, target = fields
        if not text.strip():
            raise ValueError(f"{source}:{number}: empty source: {line[:80]!r}")
        if not target.strip():
            raise ValueError(f"{source}:{number}: empty target for source {text[:60]!r}")
        targets = pairs.setdefault(text, [])
        if target not in targets:
            targets.append(target)
    return list(pairs.items())


def read_pairs(path: str | os.PathLike) -> Pairs:
    """Reads a UTF-8 TSV file of pairs.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: For a malformed line or bytes that are not UTF-8 (file and line named), or
            a file without any pair.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    lines = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                raise ValueError(f"{path}:{number}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]  # a byte-order mark
    pairs = parse_pairs(lines, str(path))
    if not pairs:
        raise ValueError(f"{path}: no pairs found (expected 'source<TAB>target' lines)")
    return pairs


def write_pairs(path: str | os.PathLike, pairs: Iterable[tuple[str, Sequence[str]]]) -> None:
    """Writes pairs as TSV, one line per (source, target); refuses tabs and line breaks."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for text, targets in pairs:
            for target in targets:
                for value in (text, target):
                    if any(c in value for c in "\t\r\n"):
                        raise ValueError(f"cannot write {value!r} to a TSV file: it holds a tab or line break")
                f.write(f"{text}\t{target}\n")
