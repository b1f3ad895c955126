"""Source ids and teacher-forcing arrays for an encoder-decoder, in NumPy."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from keras_seq.text.split import split_text
from keras_seq.text.vocabulary import END_ID, START_ID, Vocabulary

__all__ = ["SourceTooLongError", "encode_sources", "make_teacher_forcing_arrays"]


class SourceTooLongError(ValueError):
    """A source has more tokens than the model reads; nothing is cut silently."""


def encode_sources(
    sources: Sequence[str], vocabulary: Vocabulary, *, split: str = "chars", lowercase: bool = False,
    max_length: int | None = None,
) -> np.ndarray:
    """int32 ``[B, T]`` token ids of `sources`, padded with 0; T is the longest (at least 1).

    Equals the in-graph `Tokenizer` with the same settings. An empty source is a row of pads.

    Raises:
        SourceTooLongError: If a source has more than `max_length` tokens (names it).
    """
    ids = [vocabulary.encode(split_text(s, split, lowercase)) for s in sources]
    if max_length is not None:
        for text, row in zip(sources, ids):
            if len(row) > max_length:
                raise SourceTooLongError(
                    f"source {text[:40]!r}{'...' if len(text) > 40 else ''} has {len(row)} tokens; "
                    f"the model reads at most {max_length}"
                )
    out = np.zeros((len(ids), max(1, max((len(r) for r in ids), default=1))), np.int32)
    for row, row_ids in enumerate(ids):
        out[row, : len(row_ids)] = row_ids
    return out


def make_teacher_forcing_arrays(
    examples: Sequence[tuple[str, Sequence[Sequence[str]]]],
    source_vocabulary: Vocabulary,
    target_vocabulary: Vocabulary,
    *,
    split: str = "chars",
    lowercase: bool = False,
    max_input_length: int | None = None,
    max_output_length: int | None = None,
    truncate: bool = False,
) -> dict[str, np.ndarray]:
    """Padded int32 arrays for training an encoder-decoder with teacher forcing.

    One example per ``(source, target)`` pair; targets are token sequences. With
    ``z = [<s>, y_1, ..., y_n, </s>]`` the target's ids framed by start and end, the decoder
    input is ``z[:-1]`` = ``[<s>, y_1, ..., y_n]`` and the label is ``z[1:]`` =
    ``[y_1, ..., y_n, </s>]``; both are padded with 0 to ``max_output_length + 1`` steps (a
    masked loss ignores label 0).

    Args:
        examples: ``(source, [target tokens, ...])`` entries.
        source_vocabulary: The input vocabulary; sources are split with `split` / `lowercase`.
        target_vocabulary: The output vocabulary, with ``<s>`` and ``</s>``.
        max_input_length: Steps of the encoder input; default the longest source.
        max_output_length: Most tokens per target; the decoder arrays have
            ``max_output_length + 1`` steps. Default the longest target.
        truncate: If False, a source or target longer than the given maximum raises
            ValueError; if True it is truncated (the label then ends without ``</s>``).

    Returns:
        ``"encoder_inputs"`` int32 ``[N, max_input_length]``, ``"decoder_inputs"`` and
        ``"labels"`` int32 ``[N, max_output_length + 1]``, ``"word_index"`` int64 ``[N]`` (the
        example's entry in `examples`); N is the number of (source, target) pairs.
    """
    if not target_vocabulary.has_start_end:
        raise ValueError("the target vocabulary must be an output vocabulary with <s> and </s>")
    inputs, outputs, index = [], [], []
    for i, (text, targets) in enumerate(examples):
        x = source_vocabulary.encode(split_text(text, split, lowercase))
        for target in targets:
            inputs.append(x)
            outputs.append(target_vocabulary.encode(target))
            index.append(i)
    longest_in = max((len(x) for x in inputs), default=0)
    longest_out = max((len(y) for y in outputs), default=0)
    max_input_length = longest_in if max_input_length is None else max_input_length
    max_output_length = longest_out if max_output_length is None else max_output_length
    if not truncate:
        for what, longest, limit, name in [("source", longest_in, max_input_length, "max_input_length"),
                                           ("target", longest_out, max_output_length, "max_output_length")]:
            if longest > limit:
                lengths = [len(x) for x in inputs] if what == "source" else [len(y) for y in outputs]
                example = examples[index[int(np.argmax(lengths))]][0]
                raise ValueError(
                    f"a {what} has {longest} tokens > {name}={limit} (source {example[:40]!r}); raise "
                    "the limit or leave such pairs out"
                )
    n, t_dec = len(inputs), max_output_length + 1
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
    return {"encoder_inputs": encoder_inputs, "decoder_inputs": decoder_inputs, "labels": labels,
            "word_index": np.asarray(index, np.int64)}
