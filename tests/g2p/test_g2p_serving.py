"""The real G2P export end to end: a trained model, exported, read back outside keras-seq (a fresh
Python process and TensorFlow's C++ loader) and served through the stock gRPC stubs with bad words."""

import json
import os
import subprocess
import sys

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import cpp_loader
from keras_seq.export import export_saved_model
from keras_seq.g2p import make_teacher_forcing_arrays, reverse_task
from keras_seq.g2p.model import G2P
from keras_seq.serving.server import create_server

WORDS = ["abc", "hello", "zyx", "qwerty"]


@pytest.fixture(scope="module")
def g2p_export(tmp_path_factory):
    keras.utils.set_random_seed(0)
    lexicon = reverse_task(400, 3, 6, seed=1)
    # Attention and the context at every step: every constant of the decoding loop is exported.
    g2p = G2P.create(lexicon, units=24, embedding_dim=12, attention=True, context_every_step=True,
                     candidate_activation="tanh", beam_width=3)
    arrays = make_teacher_forcing_arrays(lexicon, g2p.characters, g2p.phonemes)
    g2p.model.compile(optimizer=keras.optimizers.Adam(0.02),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    g2p.model.fit({"encoder_inputs": arrays["encoder_inputs"], "decoder_inputs": arrays["decoder_inputs"]},
                  arrays["labels"], epochs=3, batch_size=64, verbose=0)
    base = tmp_path_factory.mktemp("repo") / "g2p"
    module = g2p.serving_module()
    path = export_saved_model(module, base, signatures=module.signatures(), warmup_inputs=g2p.warmup_inputs(),
                              model_name="g2p")
    ids, rows = g2p.encode_words(WORDS), len(WORDS)
    tokens = {"input_ids": ids, "input_lengths": (ids != 0).sum(axis=1).astype(np.int32)}
    cycle = lambda values, dtype: np.resize(np.asarray(values, dtype), rows)  # noqa: E731
    decode = {"words": np.array(WORDS, object), "beam_width": cycle([1, 3, 2], np.int32),
              "num_results": cycle([1, 2, 0], np.int32), "max_length": cycle([9, 3, 5], np.int32),
              "length_penalty": cycle([0.0, 0.5, 1.0], np.float32)}
    sample = {"words": np.array(WORDS, object), "temperature": cycle([0.5, 1.0], np.float32),
              "top_k": cycle([0, 2], np.int32), "seed": np.arange(rows, dtype=np.int32),
              "max_length": cycle([9, 4], np.int32)}
    expected = {
        "serving_default": ({"words": np.array(WORDS, object)}, module.serving_default(tf.constant(WORDS))),
        "greedy": ({"words": np.array(WORDS, object)}, module.greedy(tf.constant(WORDS))),
        "tokens": (tokens, module.tokens(**{k: tf.constant(v) for k, v in tokens.items()})),
        # Per-request settings, a different one in every row.
        "decode": (decode, module.decode(tf.constant(WORDS), **{k: tf.constant(v) for k, v in decode.items() if k != "words"})),
        "sample": (sample, module.sample(tf.constant(WORDS), **{k: tf.constant(v) for k, v in sample.items() if k != "words"})),
    }
    expected = {k: (inputs, {a: v.numpy() for a, v in out.items()}) for k, (inputs, out) in expected.items()}
    return g2p, str(base), str(path), expected


def _assert_same(got, want):
    assert sorted(got) == sorted(want)
    for alias in want:
        a, b = np.asarray(got[alias]), np.asarray(want[alias])
        if b.dtype == object or b.dtype.kind == "S":
            assert [x if isinstance(x, bytes) else str(x).encode() for x in a.ravel()] == list(b.ravel()), alias
        else:
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=alias)


def test_export_decodes_like_the_python_model(g2p_export):
    g2p, _, _, expected = g2p_export
    best = g2p.predict(WORDS, method="beam", beam_width=3)
    assert [w.decode() for w in expected["serving_default"][1]["pronunciation"]] == best
    greedy = g2p.predict(WORDS, method="greedy")
    assert [w.decode() for w in expected["greedy"][1]["pronunciation"]] == greedy


_FRESH = """
import importlib.abc, json, sys
import numpy as np

class NoKerasSeq(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "keras_seq" or name.startswith("keras_seq."):
            raise ImportError("keras_seq must not be imported here")

sys.meta_path.insert(0, NoKerasSeq())
import tensorflow as tf
path, inputs, out = sys.argv[1:]
loaded = tf.saved_model.load(path)
results = {}
for signature, feed in json.loads(open(inputs).read()).items():
    feed = {k: tf.constant(v) for k, v in feed.items()}
    results[signature] = {k: v.numpy().tolist() for k, v in loaded.signatures[signature](**feed).items()}
json.dump(results, open(out, "w"), default=lambda b: b.decode())
"""


@pytest.mark.slow  # 13 s; the C++ loader test below is the default suite's independent loader
def test_every_signature_runs_the_same_in_a_fresh_process_without_keras_seq(g2p_export, tmp_path):
    _, _, path, expected = g2p_export
    feeds = {sig: {k: v.tolist() for k, v in inputs.items()} for sig, (inputs, _) in expected.items()}
    (tmp_path / "in.json").write_text(json.dumps(feeds))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", _FRESH, path, str(tmp_path / "in.json"), str(tmp_path / "out.json")],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads((tmp_path / "out.json").read_text())
    for signature, (_, outputs) in expected.items():
        _assert_same({k: np.array(v, dtype=object if outputs[k].dtype == object else None) for k, v in got[signature].items()},
                     outputs)


def test_every_signature_runs_the_same_in_tensorflows_cpp_loader(g2p_export, cpp_binary):
    _, _, path, expected = g2p_export
    for signature, (inputs, outputs) in expected.items():
        feed = {k: v.astype(bytes) if v.dtype == object else v for k, v in inputs.items()}
        _assert_same(cpp_loader.run_signature(cpp_binary, path, signature, feed), outputs)


def _request(words):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "g2p"
    request.inputs["words"].CopyFrom(tf.make_tensor_proto(words, dtype=tf.string))
    return request


def test_server_answers_bad_words_and_keeps_serving(g2p_export):
    g2p, base, _, expected = g2p_export
    server, port = create_server(model_name="g2p", model_base_path=base, port=0)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        nasty = [b"", b"\xff\xfe\x80 not utf-8", "日本語".encode(), b"a" * 1_000_000, b"ab!?#@", b"ABC"]
        response = stub.Predict(_request(nasty), timeout=120)
        pronunciations = tf.make_ndarray(response.outputs["pronunciation"])
        assert pronunciations.shape == (len(nasty),)
        # Out-of-vocabulary characters become <unk> (never an error); the answer is the model's own.
        assert pronunciations[4].decode() == g2p.predict(["ab!?#@"], beam_width=3)[0]
        assert pronunciations[5] == expected["serving_default"][1]["pronunciation"][0]  # "ABC" reads as "abc"
        empty = stub.Predict(_request(np.array([], object)), timeout=30)
        assert tf.make_ndarray(empty.outputs["pronunciation"]).shape == (0,)
        with pytest.raises(grpc.RpcError) as error:
            bad = predict_pb2.PredictRequest()
            bad.model_spec.name = "g2p"
            bad.inputs["words"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0], np.float32)))
            stub.Predict(bad, timeout=30)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "string" in error.value.details()
        # The server is still up and answers like the in-memory model.
        ok = stub.Predict(_request(np.array(WORDS, object)), timeout=30)
        _assert_same({a: tf.make_ndarray(ok.outputs[a]) for a in ok.outputs}, expected["serving_default"][1])
    finally:
        server.stop(grace=1)


def _letters(count, seed):
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(1, 9))) for _ in range(count)]


def test_export_decodes_a_large_batch_in_shards_like_the_python_model(g2p_export):
    """37 words (an uneven cut into two parts) through the export: every word's n-best list and
    scores equal the in-memory model's one-loop decoding, in the input's order."""
    g2p, _, path, _ = g2p_export
    words = _letters(37, seed=3)
    loaded = tf.saved_model.load(path)
    out = loaded.signatures["serving_default"](words=tf.constant(words))
    want = [d.pronunciations for d in g2p.predict_details(words, method="beam", beam_width=3, num_results=3)]
    assert [[b.decode() for b in row] for row in out["nbest"].numpy()] == [[" ".join(p) for p, _ in w] for w in want]
    np.testing.assert_allclose(out["nbest_scores"].numpy(), [[s for _, s in w] for w in want], atol=1e-4)
    greedy = loaded.signatures["greedy"](words=tf.constant(words))
    want = [d.pronunciations for d in g2p.predict_details(words, method="greedy")]
    assert [b.decode() for b in greedy["pronunciation"].numpy()] == [" ".join(w[0][0]) for w in want]
    np.testing.assert_allclose(greedy["score"].numpy(), [w[0][1] for w in want], atol=1e-4)
    ids = g2p.encode_words(words)
    tokens = loaded.signatures["tokens"](input_ids=tf.constant(ids), input_lengths=tf.constant((ids != 0).sum(axis=1).astype(np.int32)))
    np.testing.assert_array_equal(tokens["output_ids"].numpy(), g2p.decode_ids(ids, beam_width=3, num_results=3)["tokens"])


@pytest.mark.parametrize("shards, batch, parts", [(2, 37, [18, 19]), (3, 7, [2, 2, 3]), (2, 4, [2, 2]), (2, 3, [3]), (3, 5, [5]),
                                                  (1, 40, [40]), (2, 0, [0])])
def test_batches_of_at_least_two_words_per_shard_are_cut_into_shards(g2p_export, monkeypatch, shards, batch, parts):
    g2p, _, _, _ = g2p_export
    module = g2p.serving_module(shards=shards)
    words = _letters(batch, seed=4)
    want = g2p.predict(words, method="greedy")
    sizes, generate = [], g2p.model.generate
    monkeypatch.setattr(g2p.model, "generate", lambda rows, **kw: sizes.append(int(rows.shape[0])) or generate(rows, **kw))
    out = module._greedy(tf.constant(words, tf.string))  # eagerly: tf.cond runs only the branch taken
    assert sizes == parts
    assert [b.decode() for b in out["pronunciation"].numpy()] == want


@pytest.mark.parametrize("shards", [0, -1, 1.5, True, "2"])
def test_shards_must_be_a_positive_integer(g2p_export, shards):
    with pytest.raises(ValueError, match="`shards` must be an integer >= 1"):
        g2p_export[0].serving_module(shards=shards)


def test_export_input_ids_are_as_wide_as_the_longest_word_and_empty_words_decode(g2p_export):
    """The graph's tokenization pads like `G2P.encode_words` (no extra encoder step); a batch of only
    empty words, or of zero-width ids, still decodes, to empty pronunciations."""
    g2p, _, path, _ = g2p_export
    module = g2p.serving_module()
    words = ["abc", "a", ""]
    np.testing.assert_array_equal(module._ids(tf.constant(words))[0].numpy(), g2p.encode_words(words))
    loaded = tf.saved_model.load(path)
    for name in ("serving_default", "greedy"):
        out = loaded.signatures[name](words=tf.constant(["", ""]))
        assert out["pronunciation"].numpy().tolist() == [b"", b""], name
    out = loaded.signatures["tokens"](input_ids=tf.zeros([2, 0], tf.int32), input_lengths=tf.zeros([2], tf.int32))
    assert out["output_ids"].shape[:2] == (2, 3) and out["lengths"].shape == (2, 3)


@pytest.mark.slow  # 30 s: -m slow keeps the default suite under 15 minutes
def test_an_ensemble_exports_and_decodes_like_the_python_ensemble(g2p_export, tmp_path, cpp_binary):
    """`G2P.ensemble` of the trained model and another one: the SavedModel's signatures give the
    in-memory ensemble's n-best lists and scores (the members' loop states and constants are all
    in the exported loop), in Python and in TensorFlow's C++ loader (every member's variables
    restored)."""
    from keras_seq.models import EncoderDecoder

    g2p, _, _, _ = g2p_export
    other = EncoderDecoder.from_config({**g2p.model.get_config(), "attention": False, "context_every_step": False})
    other.build()
    other.set_weights([w * 0.5 for w in other.get_weights()])
    ensemble = G2P.ensemble([g2p, G2P(other, g2p.characters, g2p.phonemes)])
    module = ensemble.serving_module()
    path = export_saved_model(module, tmp_path / "g2p", signatures=module.signatures(), model_name="g2p")
    loaded = tf.saved_model.load(str(path))
    words = _letters(9, seed=5)
    out = loaded.signatures["serving_default"](words=tf.constant(words))
    want = [d.pronunciations for d in ensemble.predict_details(words, method="beam", beam_width=3, num_results=3)]
    assert [[b.decode() for b in row] for row in out["nbest"].numpy()] == [[" ".join(p) for p, _ in w] for w in want]
    np.testing.assert_allclose(out["nbest_scores"].numpy(), [[s for _, s in w] for w in want], atol=1e-4)
    solo = [d.pronunciations for d in g2p.predict_details(words, method="beam", beam_width=3, num_results=3)]
    assert [[s for _, s in w] for w in want] != [[s for _, s in w] for w in solo]  # the second member counts
    outputs = {k: v.numpy() for k, v in out.items()}
    _assert_same(cpp_loader.run_signature(cpp_binary, str(path), "serving_default", {"words": np.array(words, bytes)}),
                 outputs)
