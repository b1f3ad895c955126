"""The G2P export with a dictionary (`keras-seq export --dictionary --lexicon FILE`): a lookup table
from an asset, checked against `G2P.predict_details`, in TensorFlow's C++ loader (TF Serving's) and
through `keras-seq serve` with the stock gRPC stubs, where ``use_dictionary`` may be left out; and its
``text`` signature (sentences, numbers written out in the graph) against `G2P.pronounce_text`, there
too and with `keras-seq predict --signature_name text`.

Slow (one export with the whole CMU dictionary, about a minute on 2 cores, and the C++ loader)."""

import re

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import cpp_loader
from keras_seq.cli.export import main as export_main
from keras_seq.export import audit_saved_model
from keras_seq.g2p.data import parse_cmudict_lines, write_cmudict
from keras_seq.g2p.model import G2P
from keras_seq.serving.client import main as client_main
from keras_seq.serving.server import create_server

ARPABET = "HELLO  HH AH0 L OW1\nHELLO  HH EH0 L OW1\nWORLD  W ER1 L D\nTOMATO  T AH0 M EY1 T OW2\nZYX  Z IH1 K S\n"
# In the CMU dictionary, in a user lexicon, neither, empty, in another case, and overridden.
WORDS = ["hello", "kerasseq", "zzqxj", "", "TOMATO", "world"]
pytestmark = pytest.mark.slow

USER = [("kerasseq", [("K", "EH", "R", "AH", "S")]), ("world", [("W", "ER", "L", "D", "Z")])]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """An untrained G2P (the CMU dictionary, no stress) exported through the CLI with a user lexicon."""
    tmp = tmp_path_factory.mktemp("dictionary")
    keras.utils.set_random_seed(0)
    g2p = G2P.create(parse_cmudict_lines(ARPABET.splitlines()), units=8, embedding_dim=4, beam_width=3,
                     dictionary="cmudict")
    g2p.save(tmp / "model")
    write_cmudict(USER, tmp / "user.dict")
    assert export_main(["--model", str(tmp / "model"), "--base-path", str(tmp / "repo" / "g2p"),
                        "--lexicon", str(tmp / "user.dict")]) == 0
    g2p.add_lexicon(tmp / "user.dict")
    return g2p, tmp / "repo" / "g2p", tmp / "repo" / "g2p" / "1"


def _strings(array):
    return [x.decode() for x in np.asarray(array).ravel()]


def test_export_answers_dictionary_words_as_predict_details(exported):
    g2p, _, path = exported
    assert audit_saved_model(str(path)) == []  # standard CPU ops only
    assert (path / "assets" / "dictionary.tsv").is_file()
    signatures = tf.saved_model.load(str(path)).signatures
    for use in ([True, False, True, True, False, True], [True]):
        rows = use * len(WORDS) if len(use) == 1 else use
        want = g2p.predict_details(WORDS, beam_width=3, num_results=3, use_dictionary=rows)
        out = signatures["serving_default"](words=tf.constant(WORDS), use_dictionary=tf.constant(use))
        assert out["from_dictionary"].numpy().tolist() == [w.source == "dictionary" for w in want]
        assert _strings(out["pronunciation"]) == [" ".join(w.pronunciations[0][0]) for w in want]
        nbest = np.asarray(_strings(out["nbest"]), object).reshape(len(WORDS), 3)
        for row, w in zip(nbest, want):
            prons = [" ".join(p) for p, _ in w.pronunciations][:3]
            assert list(row) == prons + [""] * (3 - len(prons))
        np.testing.assert_allclose(out["score"].numpy(), [w.pronunciations[0][1] for w in want], atol=1e-4)
        greedy = signatures["greedy"](words=tf.constant(WORDS), use_dictionary=tf.constant(use))
        want = g2p.predict_details(WORDS, method="greedy", use_dictionary=rows)
        assert _strings(greedy["pronunciation"]) == [" ".join(w.pronunciations[0][0]) for w in want]
    assert _strings(out["pronunciation"])[1] == "K EH R AH S"  # the user lexicon's word
    assert _strings(out["pronunciation"])[5] == "W ER L D Z"   # overrides the CMU dictionary's
    # The plain module's other signatures come along, model only (per-request settings, step-wise).
    assert {"decode", "sample", "tokens", "encode", "decode_step", "detokenize"} <= set(signatures)
    plain = signatures["decode"](words=tf.constant(WORDS), beam_width=tf.constant([3]), num_results=tf.constant([1]),
                                 max_length=tf.constant([g2p.model.max_output_length]),
                                 length_penalty=tf.constant([0.0]))
    want = g2p.predict_details(WORDS, beam_width=3, use_dictionary=False)
    assert _strings(plain["pronunciation"]) == [" ".join(w.pronunciations[0][0]) for w in want]


def test_dictionary_export_in_tensorflows_cpp_loader(exported, cpp_binary):
    g2p, _, path = exported
    feed = {"words": np.array(WORDS, bytes), "use_dictionary": np.array([True])}
    got = cpp_loader.run_signature(cpp_binary, str(path), "serving_default", feed)
    want = g2p.predict_details(WORDS, beam_width=3)
    assert got["from_dictionary"].tolist() == [w.source == "dictionary" for w in want]
    assert _strings(got["pronunciation"]) == [" ".join(w.pronunciations[0][0]) for w in want]


def _request(words, use_dictionary=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "g2p"
    request.inputs["words"].CopyFrom(tf.make_tensor_proto(words, dtype=tf.string))
    if use_dictionary is not None:
        request.inputs["use_dictionary"].CopyFrom(tf.make_tensor_proto(use_dictionary, dtype=tf.bool))
    return request


def test_served_use_dictionary_is_optional_and_per_row(exported):
    g2p, base, _ = exported
    server, port = create_server(model_name="g2p", model_base_path=str(base), port=0)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        default = stub.Predict(_request(WORDS), timeout=120)  # TF Serving feeds the signature's default
        assert tf.make_ndarray(default.outputs["from_dictionary"]).tolist() == [True, True, False, False, True, True]
        per_row = stub.Predict(_request(["hello", "hello"], [False, True]), timeout=60)
        assert tf.make_ndarray(per_row.outputs["from_dictionary"]).tolist() == [False, True]
        assert _strings(tf.make_ndarray(per_row.outputs["pronunciation"]))[0] == g2p.predict(
            ["hello"], beam_width=3, use_dictionary=False)[0]
        with pytest.raises(grpc.RpcError) as error:  # neither one value nor one per row
            stub.Predict(_request(["a", "b", "c"], [True, False]), timeout=60)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "use_dictionary must have one value" in error.value.details()
    finally:
        server.stop(grace=1)


def test_export_without_a_dictionary_keeps_its_signatures(exported, tmp_path, capsys):
    g2p, _, _ = exported
    plain = g2p.serving_module()
    out = plain.serving_default(tf.constant(["hello"]))
    assert sorted(out) == ["nbest", "nbest_scores", "pronunciation", "score", "too_long"]
    assert sorted(g2p.serving_module(dictionary=True).greedy(tf.constant(["a"]), tf.constant([True]))) == [
        "from_dictionary", "pronunciation", "score", "too_long"]
    ipa = G2P.create([("cat", [("k", "æ", "t")])], units=4, embedding_dim=2)
    ipa.save(tmp_path / "ipa")
    assert export_main(["--model", str(tmp_path / "ipa"), "--base-path", str(tmp_path / "x"), "--dictionary"]) == 1
    assert "has no dictionary" in capsys.readouterr().err


# -- the text signature ----------------------------------------------------------------------------

# Every kind of token; words of the CMU dictionary, of the user lexicon and of neither; too long words;
# punctuation only; nothing.
TEXTS = ["In 1984, I read 3 books.", "", "  ", "?! #", "$3.50 and £0.05 for the 2nd time: 50% of 1,000,000!",
         "Don't KERASSEQ zzqxj-world 1.05 3.0 0th 21st 101st 1100 2009 2099 2100 007",
         "supercalifragilisticexpialidocious 123456789012345 " + "x" * 40, "٣ books\u00a0and 4thly",
         "€1 $0 $1,000.999"]


def _check_text_rows(g2p, texts, use, out):
    """`out` (the text signature's outputs) row by row against `G2P.pronounce_text`."""
    for i, (text, u) in enumerate(zip(texts, use)):
        want = g2p.pronounce_text(text, beam_width=3, use_dictionary=u)
        n = int(np.asarray(out["num_words"])[i])
        assert n == len(want), text
        assert _strings(out["words"][i])[:n] == [w.word for w in want], text
        assert _strings(out["tokens"][i])[:n] == [w.text for w in want], text
        assert _strings(out["pronunciations"][i])[:n] == [" ".join(w.phonemes) for w in want], text
        assert _strings(out["sources"][i])[:n] == [w.source for w in want], text
        assert set(_strings(out["words"][i])[n:]) <= {""} and set(_strings(out["sources"][i])[n:]) <= {""}
        assert _strings(out["pronunciation"])[i] == " | ".join(" ".join(w.phonemes) for w in want if w.phonemes)


def test_text_signature_pronounces_as_pronounce_text(exported):
    g2p, _, path = exported
    text = tf.saved_model.load(str(path)).signatures["text"]
    use = [True, False, True] * 3  # per row (the user lexicon's word, row 5: from the dictionary)
    out = text(texts=tf.constant(TEXTS), use_dictionary=tf.constant(use))
    _check_text_rows(g2p, TEXTS, use, out)
    assert {"dictionary", "model", "punctuation", "too_long"} <= set(_strings(out["sources"]))
    assert "K EH R AH S" in _strings(out["pronunciations"][5])  # the user lexicon's word
    none = text(texts=tf.constant([], tf.string), use_dictionary=tf.constant([True]))
    assert none["words"].shape == (0, 0) and none["pronunciation"].shape == (0,)
    broken = text(texts=tf.constant([b"caf\xe9 \xff 3"]), use_dictionary=tf.constant([True]))  # not UTF-8
    assert _strings(broken["words"][0])[-1] == "three"
    with pytest.raises(tf.errors.InvalidArgumentError, match="use_dictionary must have one value"):
        text(texts=tf.constant(["a", "b", "c"]), use_dictionary=tf.constant([True, False]))


def test_text_signature_in_tensorflows_cpp_loader(exported, cpp_binary):
    g2p, _, path = exported
    texts = TEXTS[:2] + TEXTS[4:6]
    feed = {"texts": np.array([t.encode() for t in texts], object), "use_dictionary": np.array([True])}
    got = cpp_loader.run_signature(cpp_binary, str(path), "text", feed)
    _check_text_rows(g2p, texts, [True] * len(texts), got)


def test_text_through_keras_seq_serve_and_predict(exported, capsys):
    g2p, base, _ = exported
    server, port = create_server(model_name="g2p", model_base_path=str(base), port=0)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = "g2p", "text"
        request.inputs["texts"].CopyFrom(tf.make_tensor_proto(TEXTS[:2], dtype=tf.string))  # use_dictionary: left out
        response = stub.Predict(request, timeout=120)
        _check_text_rows(g2p, TEXTS[:2], [True, True], {k: tf.make_ndarray(v) for k, v in response.outputs.items()})
        assert client_main(["--server", f"127.0.0.1:{port}", "--model", "g2p", "--signature_name", "text",
                            TEXTS[0]]) == 0
        printed = capsys.readouterr().out
        want = g2p.pronounce_text(TEXTS[0])
        assert f"pronunciation: {' | '.join(' '.join(w.phonemes) for w in want if w.phonemes)}" in printed
        for w in want:  # a row per word: token, word, pronunciation, source
            if w.phonemes:
                row = rf"^  {re.escape(w.text)} +{re.escape(w.word)} +{re.escape(' '.join(w.phonemes))} +{w.source}$"
                assert re.search(row, printed, re.M), (w, printed)
    finally:
        server.stop(grace=1)
