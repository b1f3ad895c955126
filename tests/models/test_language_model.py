"""The RNN language model of Fig. 10.7-10.8: teacher forcing, end symbol, scoring and sampling."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_seq import decoding
from keras_seq.models.language_model import RNNLanguageModel, teacher_forcing_arrays

PAD, START, END = 0, 2, 3
VOCAB = 9


def make_model(cell="lstm", **kwargs):
    keras.utils.set_random_seed(1)
    kwargs.setdefault("units", 12)
    kwargs.setdefault("embedding_dim", 6)
    model = RNNLanguageModel(VOCAB, start_token=START, end_token=END, cell=cell, max_length=7, **kwargs)
    model.build()
    return model


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def test_teacher_forcing_arrays_frame_with_start_and_end():
    data = teacher_forcing_arrays([[4, 5, 6], [7]], START, END, max_length=4)
    np.testing.assert_array_equal(data["inputs"], [[2, 4, 5, 6, 0], [2, 7, 0, 0, 0]])
    np.testing.assert_array_equal(data["labels"], [[4, 5, 6, 3, 0], [7, 3, 0, 0, 0]])
    cut = teacher_forcing_arrays([[4, 5, 6]], START, END, max_length=2)
    np.testing.assert_array_equal(cut["labels"], [[4, 5, 0]])  # too long: no </s>


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_log_likelihood_is_the_sum_of_teacher_forced_step_log_probs(cell):
    model = make_model(cell, num_layers=2)
    out = model.generate(6, temperature=1.5, seed=3)
    tokens, lengths = np_(out["tokens"]), np_(out["lengths"])
    # By hand: one teacher-forced pass over [<s>, y(1), ..., y(τ)], log-softmax, pick the labels.
    inputs = np.concatenate([np.full((6, 1), START), tokens[:, :-1]], axis=1)
    log_p = np_(ops.log_softmax(model(inputs), axis=-1))
    expected = [
        sum(log_p[b, t, tokens[b, t]] for t in range(lengths[b])) for b in range(len(tokens))
    ]
    np.testing.assert_allclose(np_(model.sequence_log_probs(tokens)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np_(out["scores"]), expected, rtol=1e-5, atol=1e-4)
    # ... and the step-by-step score of keras_seq.decoding (the free-running loop).
    scored = decoding.score_sequences(
        model.decoder_step, model.initial_state(6), np.full((6,), START, "int32"), tokens, lengths
    )
    np.testing.assert_allclose(np_(scored), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np_(model.score(tokens)), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sampling_with_temperature_to_zero_is_greedy(cell):
    model = make_model(cell)
    greedy = model.generate(5, method="greedy")
    for temperature in (0.0, 1e-4):
        cold = model.generate(5, temperature=temperature, seed=11)
        np.testing.assert_array_equal(np_(cold["tokens"]), np_(greedy["tokens"]))
        np.testing.assert_allclose(np_(cold["scores"]), np_(greedy["scores"]), rtol=1e-6)


def test_sampled_sequences_end_with_the_end_symbol_or_at_the_limit():
    model = make_model("gru")
    out = model.generate(64, temperature=2.0, seed=5, max_length=7)
    tokens, lengths = np_(out["tokens"]), np_(out["lengths"])
    assert tokens.shape == (64, 7)
    assert {int(n) for n in lengths} - {7} and 7 in lengths  # both cases occur at this temperature
    for row, n in zip(tokens, lengths):
        body = row[: n - 1]
        assert END not in body and PAD not in body and START not in body  # never sampled
        assert row[n - 1] == END or n == 7
        assert (row[n:] == PAD).all()


def test_top_k_restricts_samples_and_seed_reproduces_them():
    model = make_model("lstm")
    a = model.generate(32, top_k=1, seed=1)
    np.testing.assert_array_equal(np_(a["tokens"]), np_(model.generate(32, method="greedy")["tokens"]))
    b, c = model.generate(16, seed=9), model.generate(16, seed=9)
    np.testing.assert_array_equal(np_(b["tokens"]), np_(c["tokens"]))


def test_beam_search_finds_sequences_at_least_as_probable_as_greedy():
    model = make_model("lstm")
    greedy = model.generate(1, method="greedy")
    beams = model.generate(3, method="beam", beam_width=3)
    assert np_(beams["tokens"]).shape == (3, 7)
    assert np_(beams["scores"])[0] >= np_(greedy["scores"])[0] - 1e-5
    np.testing.assert_allclose(np_(model.sequence_log_probs(beams["tokens"])), np_(beams["scores"]), atol=1e-4)


def test_learns_a_small_language():
    """Counting sequences k, k+1, ... whose start k decides the length (1-3): the model must learn
    both the next token and where to stop (the end symbol), from the data alone."""
    rng = np.random.default_rng(0)
    starts = rng.integers(4, 7, size=240)
    lengths = np.where(starts == 4, 3, np.where(starts == 5, 2, 1))  # the start decides the length
    sequences = [list(range(s, s + n)) for s, n in zip(starts, lengths)]
    data = teacher_forcing_arrays(sequences, START, END)
    model = make_model("lstm", units=24)
    model.compile(keras.optimizers.Adam(0.03),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=PAD))
    before = model.perplexity(data["labels"])
    model.fit(data["inputs"], data["labels"], epochs=25, batch_size=60, verbose=0)
    after = model.perplexity(data["labels"])
    assert after < 0.5 * before and after < 2.0, (before, after)
    valid = {tuple(s) + (END,) for s in sequences}
    out = model.generate(50, temperature=0.3, seed=2)
    tokens, n = np_(out["tokens"]), np_(out["lengths"])
    generated = [tuple(row[:k]) for row, k in zip(tokens, n)]
    assert np.mean([g in valid for g in generated]) >= 0.9, generated[:10]


def test_config_and_keras_file_round_trip(tmp_path):
    model = make_model("gru", num_layers=2, cell_options={"candidate_activation": "tanh"})
    path = tmp_path / "lm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_config() == model.get_config()
    x = np.array([[START, 4, 5, 6]], "int32")
    np.testing.assert_allclose(np_(loaded(x)), np_(model(x)), atol=1e-6)
    np.testing.assert_array_equal(np_(loaded.generate(4, seed=1)["tokens"]), np_(model.generate(4, seed=1)["tokens"]))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"units": 0}, "units"), ({"cell": "rnn"}, "cell"), ({"end_token": 12}, "end_token"),
     ({"pad_token": 3}, "pad_token")],
)
def test_bad_arguments_are_named(kwargs, match):
    args = dict(vocabulary_size=VOCAB, start_token=START, end_token=END)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        RNNLanguageModel(**args)


def test_generation_compiles_inside_tf_function():
    tf = pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow backend only")
    model = make_model("gru")
    compiled = tf.function(lambda seed: model.generate(5, temperature=0.9, top_k=4, seed=seed))
    eager = model.generate(5, temperature=0.9, top_k=4, seed=21)
    traced = compiled(tf.constant(21))
    np.testing.assert_array_equal(np_(traced["tokens"]), np_(eager["tokens"]))
    np.testing.assert_allclose(np_(traced["scores"]), np_(eager["scores"]), rtol=1e-5)
    other = compiled(tf.constant(22))  # a new seed, the same graph
    assert compiled.experimental_get_tracing_count() == 1
    assert np_(other["tokens"]).shape == (5, 7)


@pytest.mark.parametrize("method", ["greedy", "sample", "beam"])
def test_prefix_is_read_first_and_continued(method):
    model = make_model("lstm")
    prefix = [5, 7]
    out = model.generate(2, method=method, prefix=prefix, seed=4, beam_width=3, max_length=5)
    tokens, scores = np_(out["tokens"]), np_(out["scores"])
    full = np.concatenate([np.tile(prefix, (2, 1)), tokens], axis=1)
    per_step = np_(model.step_log_probs(full))
    # The scores are log P(continuation | prefix): the whole sequence's steps after the prefix.
    np.testing.assert_allclose(per_step[:, len(prefix):].sum(1), scores, atol=1e-4)
    with pytest.raises(ValueError, match="prefix"):
        model.generate(1, prefix=[START])


def test_reloads_with_its_mixed_policy(tmp_path):
    """Every sublayer takes the model's policy: saved under mixed_bfloat16, the model reloads with it
    under the global float32 policy and generates the same tokens with the same scores."""
    model = make_model("gru", num_layers=2, dtype="mixed_bfloat16")
    model.save(tmp_path / "lm.keras")
    assert keras.config.dtype_policy().name == "float32"
    loaded = keras.saving.load_model(tmp_path / "lm.keras", safe_mode=True)
    policies = {layer.name: layer.dtype_policy.name for layer in loaded._flatten_layers() if layer.weights}
    assert set(policies.values()) == {"mixed_bfloat16"}, policies
    a, b = model.generate(4, method="greedy"), loaded.generate(4, method="greedy")
    np.testing.assert_array_equal(np_(a["tokens"]), np_(b["tokens"]))
    np.testing.assert_array_equal(np_(a["scores"]), np_(b["scores"]))
