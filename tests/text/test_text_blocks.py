"""keras_seq.text: vocabularies, splitting in Python and in the graph, TSV pairs, arrays, scores."""

import numpy as np
import pytest
import tensorflow as tf

from keras_seq.text import (
    Detokenizer,
    SourceTooLongError,
    Tokenizer,
    build_vocabulary,
    encode_sources,
    make_teacher_forcing_arrays,
    read_pairs,
    sequence_scores,
    split_text,
)

SOURCES = ["Hello  world", " tab\there ", "", "naïve café", "x", "日本語 テキスト"]


@pytest.mark.parametrize("split", ["chars", "words"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_graph_tokenizer_equals_python_split(split, lowercase):
    vocab = build_vocabulary(split_text(s, split, lowercase) for s in SOURCES[:4])  # some tokens unknown
    ids = Tokenizer(vocab, split=split, lowercase=lowercase)(tf.constant(SOURCES)).numpy()
    expected = [vocab.encode(split_text(s, split, lowercase)) for s in SOURCES]
    for row, want in zip(ids, expected):
        assert row[: len(want)].tolist() == want and not row[len(want):].any()
    assert (ids == 1).any()  # unknown tokens map to <unk>, not an error


def test_split_words_is_ascii_whitespace_and_chars_are_code_points():
    assert split_text(" a\tb\n c  ", "words") == ["a", "b", "c"]
    assert split_text("naïve", "chars") == ["n", "a", "ï", "v", "e"]
    with pytest.raises(ValueError, match="unknown split"):
        split_text("a", "bytes")


def test_detokenizer_equals_vocabulary_decode():
    vocab = build_vocabulary([["one", "two"], ["three"]], output=True)
    ids = np.array([[4, 5, 3, 6], [2, 6, 0, 0], [99, 4, 0, 0], [3, 4, 5, 6]], np.int32)
    for separator in (" ", ""):
        got = [s.decode() for s in Detokenizer(vocab, separator=separator)(ids).numpy()]
        assert got == [separator.join(vocab.decode(row)) for row in ids]
    assert got[0] == vocab.decode(ids[0])[0] + vocab.decode(ids[0])[1]  # stops at </s>


def test_read_pairs_collects_references_and_names_bad_lines(tmp_path):
    good = tmp_path / "good.tsv"
    good.write_text("\ufeff1984\tnineteen eighty-four\n\n1984\tone thousand nine hundred eighty-four\n"
                    "1984\tnineteen eighty-four\n2nd\tsecond\n", encoding="utf-8")
    assert read_pairs(good) == [("1984", ["nineteen eighty-four", "one thousand nine hundred eighty-four"]),
                                ("2nd", ["second"])]
    for content, message in [("a\tb\nno tab here\n", "bad.tsv:2: expected 'source<TAB>target', found no tab"),
                             ("a\tb\tc\n", "bad.tsv:1: .* found 2 tabs"),
                             ("a\tb\nc\t \n", "bad.tsv:2: empty target"),
                             ("\tb\n", "bad.tsv:1: empty source"),
                             ("\n\n", "no pairs found")]:
        (tmp_path / "bad.tsv").write_text(content, encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            read_pairs(tmp_path / "bad.tsv")
    (tmp_path / "bad.tsv").write_bytes(b"a\tb\n\xff\tc\n")
    with pytest.raises(ValueError, match="bad.tsv:2: not UTF-8"):
        read_pairs(tmp_path / "bad.tsv")
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path / "missing.tsv")


def test_encode_sources_refuses_to_cut_and_pads_empty_sources():
    vocab = build_vocabulary(["abc"])
    np.testing.assert_array_equal(encode_sources(["ab", ""], vocab), [[2, 3], [0, 0]])
    np.testing.assert_array_equal(encode_sources([""], vocab), [[0]])
    with pytest.raises(SourceTooLongError, match="'abcd' has 4 tokens; the model reads at most 3"):
        encode_sources(["ab", "abcd"], vocab, max_length=3)


def test_teacher_forcing_arrays_frame_targets_with_start_and_end():
    src, tgt = build_vocabulary(["ab"]), build_vocabulary([["x", "y"]], output=True)
    arrays = make_teacher_forcing_arrays([("ab", [("x", "y"), ("y",)])], src, tgt)
    x, y = tgt.token_to_id("x"), tgt.token_to_id("y")
    np.testing.assert_array_equal(arrays["encoder_inputs"], [[2, 3], [2, 3]])
    np.testing.assert_array_equal(arrays["decoder_inputs"], [[2, x, y], [2, y, 0]])
    np.testing.assert_array_equal(arrays["labels"], [[x, y, 3], [y, 3, 0]])
    with pytest.raises(ValueError, match="a source has 2 tokens > max_input_length=1"):
        make_teacher_forcing_arrays([("ab", [("x",)])], src, tgt, max_input_length=1)


def test_sequence_scores_take_the_closest_reference():
    scores = sequence_scores([("a", "b"), ("c",), ()], [[("a", "b")], [("d",), ("c", "e")], [("f", "g")]])
    # exact; 1 edit against ("d",), the first of the two references at distance 1; 2 deletions
    assert (scores.num_sequences, scores.sequence_errors, scores.token_edits, scores.reference_tokens) == (3, 2, 3, 5)
    assert scores.exact_match == pytest.approx(1 / 3) and scores.token_error_rate == pytest.approx(0.6)
