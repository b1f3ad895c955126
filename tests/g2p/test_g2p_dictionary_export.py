"""The G2P export with a dictionary (`keras-seq export --dictionary --lexicon FILE`): a lookup table
from an asset, checked against `G2P.predict_details`, in TensorFlow's C++ loader (TF Serving's) and
through `keras-seq serve` with the stock gRPC stubs, where ``use_dictionary`` may be left out.

Slow (one export with the whole CMU dictionary, about a minute on 2 cores, and the C++ loader)."""

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
