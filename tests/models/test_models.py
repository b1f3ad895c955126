"""The architectures of ch. 10 (`keras_seq.models`): each learns a small task with `fit`; the
teacher-forced pass equals the step-by-step pass fed the same previous outputs; masks, every cell
type, config round trips, `.keras` save/load, and the JAX backend in a fresh process."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.models import (
    BidirectionalTagger, ConditionalSequenceTagger, OutputRecurrentTagger, SequenceClassifier,
    SequenceTagger, VectorToSequence, EncoderDecoder, EncoderDecoderEnsemble,
)

CELLS = ["elman", "lstm", "gru"]
K = 4  # symbols in the toy tasks
RNG = np.random.default_rng(0)


def one_hot(ids, depth=K):
    return np.eye(depth, dtype="float32")[ids]


def cumulative_sum_task(n=512, steps=8):
    """x(t) a random symbol, y(t) = (x(1) + ... + x(t)) mod K = (y(t-1) + x(t)) mod K."""
    ids = RNG.integers(0, K, size=(n, steps))
    return one_hot(ids), np.cumsum(ids, axis=1) % K


def random_weights(model, scale=0.5, seed=1):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=scale, size=w.shape).astype("float32") for w in model.get_weights()])


def fit(model, x, y, epochs, learning_rate=0.02, **kwargs):
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, **kwargs)
    return history.history["loss"]


CHANCE = np.log(K)  # cross-entropy of a uniform guess over K classes

# One instance of each architecture on toy shapes, with inputs for teacher forcing (where it
# applies) and the targets. `cell` picks the recurrence where the architecture has one.
X = RNG.normal(size=(3, 6, 5)).astype("float32")
Y = RNG.integers(0, K, size=(3, 6))
CONTEXT = RNG.normal(size=(3, 5)).astype("float32")


def build(name, cell="elman"):
    if name == "tagger":
        return SequenceTagger(8, K, cell=cell), X
    if name == "bidirectional":
        return BidirectionalTagger(8, K, cell=cell), X
    if name == "classifier":
        return SequenceClassifier(8, K, cell=cell), X
    if name == "output_recurrent":
        return OutputRecurrentTagger(8, K), {"inputs": X, "targets": Y}
    if name == "conditional":
        return ConditionalSequenceTagger(8, K, cell=cell), {"inputs": X, "targets": Y}
    if name == "vector_to_sequence":
        return VectorToSequence(8, K, cell=cell, length=6), {"context": CONTEXT, "targets": Y}
    raise ValueError(name)


ARCHITECTURES = ["tagger", "output_recurrent", "classifier", "vector_to_sequence", "conditional", "bidirectional"]
WITH_CELLS = [a for a in ARCHITECTURES if a != "output_recurrent"]


# -- every cell type in every architecture -----------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("name", WITH_CELLS)
def test_every_cell_type_runs_in_every_architecture(name, cell):
    model, inputs = build(name, cell)
    outputs = keras.ops.convert_to_numpy(model(inputs))
    expected = (3, K) if name == "classifier" else (3, 6, K)
    assert outputs.shape == expected
    np.testing.assert_allclose(outputs.sum(-1), 1.0, rtol=1e-5)  # softmax outputs
    rnn = model.rnn.forward_layer if name == "bidirectional" else model.rnn
    assert type(rnn.cell).__name__.lower() == {"elman": "elmancell", "lstm": "lstmcell", "gru": "grucell"}[cell]


def test_unknown_cell_type_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown cell type 'rnn'"):
        SequenceTagger(8, K, cell="rnn")


# -- teacher forcing equals the step-by-step pass ------------------------------------------------------
def step_by_step(model, step_inputs, targets):
    """ŷ(t) computed one step at a time with `model.step`, fed the true y(t-1) (zeros at t = 1)."""
    states = model.get_initial_state(step_inputs.shape[0])
    y_prev = np.zeros((step_inputs.shape[0], K), "float32")
    outputs = []
    for t in range(step_inputs.shape[1]):
        y_hat, states = model.step(step_inputs[:, t], y_prev, states)
        outputs.append(keras.ops.convert_to_numpy(y_hat))
        y_prev = one_hot(targets[:, t])
    return np.stack(outputs, axis=1)


def test_output_recurrence_teacher_forcing_equals_step_by_step():
    model, inputs = build("output_recurrent")
    model(inputs)
    random_weights(model)
    teacher_forced = keras.ops.convert_to_numpy(model(inputs))
    np.testing.assert_allclose(teacher_forced, step_by_step(model, X, Y), rtol=1e-5, atol=1e-6)


def test_output_recurrence_step_is_the_book_equation():
    """h(t) = tanh(b + W y(t-1) + U x(t)), ŷ(t) = softmax(c + V h(t)), in NumPy."""
    model, inputs = build("output_recurrent")
    model(inputs)
    random_weights(model)
    cell = model.output_cell
    U, W, b, V, c = (keras.ops.convert_to_numpy(w) for w in (cell.U, cell.W, cell.b, cell.V, cell.c))
    y_prev = np.concatenate([np.zeros((3, 1, K), "float32"), one_hot(Y[:, :-1])], axis=1)
    o = np.tanh(b + y_prev @ W + X @ U) @ V + c
    expected = np.exp(o) / np.exp(o).sum(-1, keepdims=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(inputs)), expected, rtol=1e-5, atol=1e-6)


def test_output_recurrence_teacher_forcing_has_no_loop():
    model, inputs = build("output_recurrent")
    model(inputs)
    graph = tf.function(model.teacher_forced).get_concrete_function(
        tf.TensorSpec((None, None, 5)), tf.TensorSpec((None, None), tf.int32)
    ).graph
    op_types = {op.type for op in graph.get_operations()}
    assert not op_types & {"While", "StatelessWhile", "TensorListReserve"}


@pytest.mark.parametrize("cell", CELLS)
def test_conditional_teacher_forcing_equals_step_by_step(cell):
    model, inputs = build("conditional", cell)
    model(inputs)
    random_weights(model)
    teacher_forced = keras.ops.convert_to_numpy(model(inputs))
    np.testing.assert_allclose(teacher_forced, step_by_step(model, X, Y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_vector_to_sequence_teacher_forcing_equals_step_by_step(cell):
    model, inputs = build("vector_to_sequence", cell)
    model(inputs)
    random_weights(model)
    teacher_forced = keras.ops.convert_to_numpy(model(inputs))
    context_at_every_step = np.repeat(CONTEXT[:, None], 6, axis=1)
    np.testing.assert_allclose(teacher_forced, step_by_step(model, context_at_every_step, Y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["output_recurrent", "conditional", "vector_to_sequence"])
def test_free_running_equals_teacher_forcing_on_its_own_outputs(name):
    """Free-running feeds back argmax ŷ(t-1): the same as teacher forcing with those outputs."""
    model, inputs = build(name, "lstm")
    model(inputs)
    key = "context" if name == "vector_to_sequence" else "inputs"
    for seed in range(1, 6):  # a non-trivial check: random weights under which the outputs vary
        random_weights(model, scale=1.0, seed=seed)
        free = keras.ops.convert_to_numpy(model(inputs[key]))
        own = free.argmax(-1)
        if len(np.unique(own)) > 1:
            break
    assert len(np.unique(own)) > 1
    forced = keras.ops.convert_to_numpy(model({key: inputs[key], "targets": own}))
    np.testing.assert_allclose(free, forced, rtol=1e-5, atol=1e-6)


# -- each architecture learns a small task ------------------------------------------------------------
def accuracy(probabilities, targets):
    return float(np.mean(keras.ops.convert_to_numpy(probabilities).argmax(-1) == targets))


def test_sequence_tagger_learns_a_delay():
    """Fig. 10.3: y(t) = x(t-1) needs the hidden state to carry one step of memory."""
    ids = RNG.integers(0, K, size=(512, 8))
    x, y = one_hot(ids), np.pad(ids[:, :-1], [[0, 0], [1, 0]])
    losses = fit(SequenceTagger(16, K, cell="elman"), x, y, epochs=4)
    assert losses[-1] < 0.2 * CHANCE, losses


def test_output_recurrence_learns_a_running_sum_and_generates_it():
    """Fig. 10.4: y(t) = (y(t-1) + x(t)) mod K is exactly what output-to-hidden recurrence can carry."""
    x, y = cumulative_sum_task()
    model = OutputRecurrentTagger(32, K)
    losses = fit(model, {"inputs": x, "targets": y}, y, epochs=10)
    assert losses[-1] < 0.1 * CHANCE, losses
    x_test, y_test = cumulative_sum_task(n=64)
    assert accuracy(model.predict(x_test, verbose=0), y_test) > 0.95  # free-running


def test_sequence_classifier_learns_the_first_symbol():
    """Fig. 10.5: the class is the sequence's first symbol, remembered to the final state."""
    ids = RNG.integers(0, K, size=(512, 6))
    losses = fit(SequenceClassifier(16, K, cell="gru", cell_options={"candidate_activation": "tanh"}),
                 one_hot(ids), ids[:, 0], epochs=7)
    assert losses[-1] < 0.2 * CHANCE, losses


def test_vector_to_sequence_learns_to_count_from_a_class_and_generates_it():
    """Fig. 10.9: from the class c (one-hot context), generate c, c+1, c+2, ... mod K."""
    classes = RNG.integers(0, K, size=512)
    y = (classes[:, None] + np.arange(6)) % K
    model = VectorToSequence(16, K, cell="gru", length=6)
    losses = fit(model, {"context": one_hot(classes), "targets": y}, y, epochs=5)
    assert losses[-1] < 0.1 * CHANCE, losses
    generated = model.generate(one_hot(np.arange(K)))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(generated).argmax(-1),
                                  (np.arange(K)[:, None] + np.arange(6)) % K)


def test_conditional_tagger_learns_a_running_sum_and_generates_it():
    """Fig. 10.10: y(t) = (y(t-1) + x(t)) mod K; free-running must reproduce it."""
    x, y = cumulative_sum_task()
    model = ConditionalSequenceTagger(32, K, cell="lstm", cell_options={"candidate_activation": "tanh"})
    losses = fit(model, {"inputs": x, "targets": y}, y, epochs=4, learning_rate=0.05)
    assert losses[-1] < 0.1 * CHANCE, losses
    x_test, y_test = cumulative_sum_task(n=64)
    assert accuracy(model.predict(x_test, verbose=0), y_test) > 0.95


def test_bidirectional_tagger_learns_to_look_ahead():
    """Fig. 10.11: y(t) = x(t+1) needs the future, which only the backward states see."""
    ids = RNG.integers(0, K, size=(512, 8))
    x, y = one_hot(ids), np.concatenate([ids[:, 1:], ids[:, -1:]], axis=1)
    losses = fit(BidirectionalTagger(16, K, cell="elman"), x, y, epochs=4)
    assert losses[-1] < 0.2 * CHANCE, losses


# -- masks ---------------------------------------------------------------------------------------------
LENGTHS = np.array([6, 4, 2])
MASK = np.arange(6)[None, :] < LENGTHS[:, None]


@pytest.mark.parametrize("name,cell", [(a, c) for a in WITH_CELLS for c in CELLS] + [("output_recurrent", None)])
def test_padding_does_not_change_the_valid_steps(name, cell):
    """Each padded sequence gives, at its valid steps, what the sequence alone gives (teacher
    forced and free-running); padded input steps hold garbage."""
    model, inputs = build(name, cell)
    model(inputs)
    random_weights(model)
    garbage = dict(inputs) if isinstance(inputs, dict) else X.copy()
    key = "context" if name == "vector_to_sequence" else "inputs"
    if name != "vector_to_sequence":  # padded input steps hold garbage
        x = (garbage[key] if isinstance(garbage, dict) else garbage).copy()
        x[~MASK] = 99.0
        if isinstance(garbage, dict):
            garbage[key] = x
        else:
            garbage = x
    free_running = [garbage] if not isinstance(garbage, dict) else [garbage, {key: garbage[key]}]
    for padded in free_running:
        out = keras.ops.convert_to_numpy(model(padded, mask=MASK))
        for i, n in enumerate(LENGTHS):
            alone = keras.tree.map_structure(lambda a: a[i : i + 1, :n] if a.ndim > 1 and a.shape[1] == 6 else a[i : i + 1], padded)
            if name == "vector_to_sequence" and "targets" not in padded:
                expected = keras.ops.convert_to_numpy(model.generate(alone[key], length=n))
            else:
                expected = keras.ops.convert_to_numpy(model(alone))
            got = out[i : i + 1] if name == "classifier" else out[i : i + 1, :n]
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [a for a in ARCHITECTURES if a != "classifier"])
def test_output_mask_makes_losses_ignore_padded_steps(name):
    model, inputs = build(name)
    outputs = model(inputs, mask=MASK)  # the model passes the mask on with its outputs
    loss = keras.losses.SparseCategoricalCrossentropy()
    other = Y.copy()
    other[~MASK] = (other[~MASK] + 1) % K  # change only the padded targets
    assert float(loss(Y, outputs)) == pytest.approx(float(loss(other, outputs)))


def test_masking_layer_mask_reaches_the_model_in_fit():
    """A `keras.layers.Masking` before the model: padded steps neither change outputs nor the loss."""
    ids = RNG.integers(0, K, size=(64, 8))
    lengths = RNG.integers(3, 9, size=64)
    x, y = one_hot(ids), ids.copy()
    x[np.arange(8)[None] >= lengths[:, None]] = 0.0
    inputs = keras.Input((None, K))
    model = keras.Model(inputs, SequenceTagger(8, K, cell="gru")(keras.layers.Masking(0.0)(inputs)))
    model.compile(loss="sparse_categorical_crossentropy")
    y_other = y.copy()
    y_other[np.arange(8)[None] >= lengths[:, None]] = 0
    assert model.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y_other, verbose=0))
    model.fit(x, y, epochs=1, verbose=0)


# -- config and saving ---------------------------------------------------------------------------------
SAVE_CASES = [("tagger", "lstm"), ("output_recurrent", "elman"), ("classifier", "gru"),
              ("vector_to_sequence", "lstm"), ("conditional", "gru"), ("bidirectional", "gru")]


@pytest.mark.parametrize("name,cell", SAVE_CASES)
def test_config_round_trip(name, cell):
    model, _ = build(name, cell)
    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(model)
    assert serialized["registered_name"].startswith("keras_seq>")
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


@pytest.mark.parametrize("name,cell", SAVE_CASES)
def test_keras_file_save_and_load(name, cell, tmp_path):
    model, inputs = build(name, cell)
    model(inputs)
    random_weights(model)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs)),
                               keras.ops.convert_to_numpy(model(inputs)), rtol=1e-6, atol=1e-7)
    if isinstance(inputs, dict):  # the free-running pass too
        key = "context" if name == "vector_to_sequence" else "inputs"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(inputs[key])),
                                   keras.ops.convert_to_numpy(model(inputs[key])), rtol=1e-6, atol=1e-7)


def test_saved_after_fit_and_trained_further(tmp_path):
    """A compiled, trained model reloads with its optimizer and keeps training."""
    x, y = cumulative_sum_task(n=64)
    model = ConditionalSequenceTagger(8, K, cell="gru")
    fit(model, {"inputs": x, "targets": y}, y, epochs=1)
    path = str(tmp_path / "trained.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    loaded.fit({"inputs": x, "targets": y}, y, epochs=1, verbose=0)


# -- the JAX backend ----------------------------------------------------------------------------------
JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, keras
    from keras_seq.models import (BidirectionalTagger, ConditionalSequenceTagger, OutputRecurrentTagger,
                                  SequenceClassifier, SequenceTagger, VectorToSequence)
    assert keras.backend.backend() == "jax"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 5, 3)).astype("float32")
    y = rng.integers(0, 4, size=(16, 5))
    mask = np.arange(5)[None] < rng.integers(1, 6, size=(16, 1))
    for model, inputs, targets in [
        (SequenceTagger(8, 4, cell="lstm"), x, y),
        (BidirectionalTagger(8, 4, cell="gru"), x, y),
        (SequenceClassifier(8, 4, cell="elman"), x, y[:, 0]),
        (OutputRecurrentTagger(8, 4), {"inputs": x, "targets": y}, y),
        (ConditionalSequenceTagger(8, 4, cell="lstm"), {"inputs": x, "targets": y}, y),
        (VectorToSequence(8, 4, cell="gru", length=5), {"context": x[:, 0], "targets": y}, y),
    ]:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(inputs, targets, epochs=1, verbose=0)
        model(inputs, mask=None if isinstance(model, (SequenceClassifier, VectorToSequence)) else mask)
        if isinstance(inputs, dict):
            free = model.predict(inputs["inputs" if "inputs" in inputs else "context"], verbose=0)
            assert free.shape == (16, 5, 4), free.shape
    print("ok")
    """
)


@pytest.mark.slow
def test_jax_backend_fits_and_runs_free():
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


# -- small pieces and errors ---------------------------------------------------------------------------
def test_previous_outputs_shift_the_targets_one_step_right():
    from keras_seq.models.base import previous_outputs

    y_prev = keras.ops.convert_to_numpy(previous_outputs(np.array([[2, 0, 3]]), K))
    np.testing.assert_array_equal(y_prev, [[np.zeros(K), one_hot(2), one_hot(0)]])


def test_vector_to_sequence_without_targets_needs_a_length():
    model = VectorToSequence(8, K)
    with pytest.raises(ValueError, match="length"):
        model(CONTEXT)
    assert tuple(model.generate(CONTEXT, length=3).shape) == (3, 3, K)


def test_unknown_input_keys_are_a_clear_error():
    model, _ = build("conditional")
    with pytest.raises(ValueError, match="'inputs'"):
        model({"x": X, "targets": Y})


def test_output_recurrence_refuses_dropout():
    with pytest.raises(ValueError, match="dropout"):
        OutputRecurrentTagger(8, K, cell_options={"dropout": 0.1})


def test_encoder_decoder_reloads_with_its_mixed_policy(tmp_path):
    """A model built under mixed_bfloat16 reloads under the global float32 policy with the same
    policy in every layer, and decodes exactly as before saving (the G2P `load` contract)."""
    model = EncoderDecoder(12, 9, start_token=2, end_token=3, units=8, embedding_dim=4, attention=True,
                           dtype="mixed_bfloat16")
    model.build()
    path = tmp_path / "m.keras"
    model.save(path)
    assert keras.config.dtype_policy().name == "float32"
    loaded = keras.saving.load_model(path, safe_mode=True)
    policies = {layer.name: layer.dtype_policy.name for layer in loaded._flatten_layers() if layer.weights}
    assert set(policies.values()) == {"mixed_bfloat16"}, policies
    ids = np.array([[4, 5, 6, 0], [7, 8, 0, 0]], "int32")
    a, b = model.generate(ids, method="greedy"), loaded.generate(ids, method="greedy")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a["tokens"]), keras.ops.convert_to_numpy(b["tokens"]))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a["scores"]), keras.ops.convert_to_numpy(b["scores"]))


@pytest.mark.parametrize("make", [
    lambda: SequenceTagger(8, 3, cell="gru", dtype="mixed_bfloat16"),
    lambda: BidirectionalTagger(8, 3, dtype="mixed_bfloat16"),
    lambda: SequenceClassifier(8, 3, dtype="mixed_bfloat16"),
    lambda: ConditionalSequenceTagger(8, 3, dtype="mixed_bfloat16"),
    lambda: OutputRecurrentTagger(8, 3, dtype="mixed_bfloat16"),
], ids=["tagger", "bidirectional", "classifier", "conditional", "output_recurrent"])
def test_models_reload_with_their_mixed_policy(tmp_path, make):
    """Every model's sublayers take the model's policy, so it survives a save and load under the
    global float32 policy."""
    model = make()
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    inputs = {"inputs": x, "targets": np.zeros((2, 5), "int32")} if "Conditional" in type(model).__name__ \
        or "OutputRecurrent" in type(model).__name__ else x
    model(inputs)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    policies = {layer.name: layer.dtype_policy.name for layer in loaded._flatten_layers() if layer.weights}
    assert set(policies.values()) == {"mixed_bfloat16"}, policies


# -- the encoder-decoder's context at every decoder step (Fig. 10.12) -----------------------------------


def test_context_every_step_matches_numpy_elman_encoder_decoder():
    """With `context_every_step`, decoder step t reads [E y(t-1); tanh(C W_C + b_C)] and starts
    from C: the teacher-forced logits equal an Elman encoder-decoder written in NumPy from
    eq. 10.8-10.10, padding included."""
    model = EncoderDecoder(7, 6, start_token=2, end_token=3, units=5, embedding_dim=3, cell="elman",
                           bidirectional_encoder=False, context_every_step=True)
    model.build()
    random_weights(model)
    x = np.array([[4, 5, 6, 1], [6, 4, 0, 0]], "int32")
    y_in = np.array([[2, 4, 5], [2, 5, 0]], "int32")
    logits = keras.ops.convert_to_numpy(model({"encoder_inputs": x, "decoder_inputs": y_in}))

    def numpy(w):
        return keras.ops.convert_to_numpy(w)

    def elman_step(cell, x_t, h):  # h(t) = tanh(b + W h(t-1) + U x(t))
        return np.tanh(numpy(cell.bias) + h @ numpy(cell.recurrent_kernel) + x_t @ numpy(cell.kernel))

    source, target = numpy(model.source_embedding.embeddings), numpy(model.target_embedding.embeddings)
    for row in range(len(x)):
        h = np.zeros(5, "float32")
        for token in x[row][x[row] != 0]:
            h = elman_step(model.encoder[0].cell, source[token], h)
        context = np.tanh(h @ numpy(model.context_projection.kernel) + numpy(model.context_projection.bias))
        for t, token in enumerate(y_in[row][y_in[row] != 0]):
            h = elman_step(model.decoder[0].cell, np.concatenate([target[token], context]), h)
            want = numpy(model.output_layer.bias) + h @ numpy(model.output_layer.kernel)
            np.testing.assert_allclose(logits[row, t], want, rtol=1e-5, atol=1e-5)


def _encoder_decoder(seed, **settings):
    """A small EncoderDecoder with random weights that never emits the pad id (random weights
    could, and the teacher-forced pass skips pads, so scores would not compare)."""
    model = EncoderDecoder(12, 9, start_token=2, end_token=3, units=8, embedding_dim=4, **settings)
    model.build()
    random_weights(model, scale=0.8, seed=seed)
    bias = keras.ops.convert_to_numpy(model.output_layer.bias)
    bias[0] = -100.0
    model.output_layer.bias.assign(bias)
    return model


@pytest.mark.parametrize("settings", [
    dict(cell="lstm"),
    dict(cell="gru", attention=True),
    dict(cell="elman", bidirectional_encoder=False, encoder_layers=2, decoder_layers=2),
], ids=["lstm", "gru-attention", "elman-stacked"])
def test_context_every_step_decodes_as_it_is_trained(settings):
    """Greedy decoding's scores equal the teacher-forced scores of its output, beam width 1 is
    greedy, and the model reloads from a `.keras` file decoding identically."""
    model = _encoder_decoder(1, context_every_step=True, **settings)
    x = np.random.default_rng(0).integers(4, 12, (4, 6)).astype("int32")
    x[1, 3:] = 0
    greedy = {k: keras.ops.convert_to_numpy(v) for k, v in model.generate(x, method="greedy", max_length=7).items()}
    labels = greedy["tokens"]
    previous = np.concatenate([np.full((4, 1), 2), labels[:, :-1]], axis=1).astype("int32")
    teacher_forced = keras.ops.convert_to_numpy(model.sequence_log_probs(x, previous, labels))
    np.testing.assert_allclose(greedy["scores"], teacher_forced, rtol=1e-5, atol=1e-5)
    beam = model.generate(x, method="beam", beam_width=1, max_length=7)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(beam["tokens"])[:, 0], labels)

    config = model.get_config()
    assert config["context_every_step"] is True
    assert EncoderDecoder.from_config(config).get_config() == config


def test_context_every_step_is_off_by_default_and_saved(tmp_path):
    plain = EncoderDecoder(12, 9, start_token=2, end_token=3, units=8, embedding_dim=4)
    plain.build()
    assert plain.get_config()["context_every_step"] is False
    assert not any("context_projection" in w.path for w in plain.weights)

    model = EncoderDecoder(12, 9, start_token=2, end_token=3, units=8, embedding_dim=4, context_every_step=True)
    model.build()
    assert {w.path.split("/")[-2:][0] for w in model.weights if "context_projection" in w.path} == {"context_projection"}
    random_weights(model, scale=0.8)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    ids = np.array([[4, 5, 6, 0], [7, 8, 9, 10]], "int32")
    a, b = model.generate(ids, method="beam", beam_width=3), loaded.generate(ids, method="beam", beam_width=3)
    for key in ("tokens", "scores"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a[key]), keras.ops.convert_to_numpy(b[key]))


# -- ensembles of encoder-decoders ---------------------------------------------------------------------


ENSEMBLE_INPUTS = np.array([[4, 5, 6, 7, 0], [8, 9, 10, 11, 4], [5, 0, 0, 0, 0]], "int32")


def _numpy_dict(out):
    return {k: keras.ops.convert_to_numpy(v) for k, v in out.items()}


def test_ensemble_of_copies_decodes_like_the_model():
    """Two members with the same weights: the mean of equal log-probabilities is the model's own, so
    greedy and beam search return the same tokens and scores as the model alone."""
    model = _encoder_decoder(1, attention=True, context_every_step=True)
    copy = EncoderDecoder.from_config(model.get_config())
    copy.build()
    copy.set_weights(model.get_weights())
    ensemble = EncoderDecoderEnsemble([model, copy])
    for kwargs in [dict(method="greedy"), dict(method="beam", beam_width=3, num_results=2)]:
        want, got = _numpy_dict(model.generate(ENSEMBLE_INPUTS, **kwargs)), _numpy_dict(ensemble.generate(ENSEMBLE_INPUTS, **kwargs))
        np.testing.assert_array_equal(got["tokens"], want["tokens"])
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-5)


def test_ensemble_next_output_is_the_normalized_geometric_mean():
    """The ensemble's scores, step by step and teacher-forced, are those of the normalized
    geometric mean of the members' distributions, computed here in NumPy from each member."""
    members = [_encoder_decoder(1), _encoder_decoder(2, cell="gru", attention=True),
               _encoder_decoder(3, cell="elman", bidirectional_encoder=False, context_every_step=True)]
    ensemble = EncoderDecoderEnsemble(members)
    greedy = _numpy_dict(ensemble.generate(ENSEMBLE_INPUTS, method="greedy", max_length=6))
    labels = greedy["tokens"]
    previous = np.concatenate([np.full((3, 1), 2), labels[:, :-1]], axis=1).astype("int32")
    inputs = {"encoder_inputs": ENSEMBLE_INPUTS, "decoder_inputs": previous}

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    mean = np.mean([log_softmax(keras.ops.convert_to_numpy(m(inputs)).astype("float64")) for m in members], axis=0)
    picked = np.take_along_axis(log_softmax(mean), labels[..., None], axis=-1)[..., 0]
    want = np.where(labels != 0, picked, 0.0).sum(axis=1)
    np.testing.assert_allclose(greedy["scores"], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ensemble.sequence_log_probs(ENSEMBLE_INPUTS, previous, labels)),
                               want, rtol=1e-4, atol=1e-4)
    beam = _numpy_dict(ensemble.generate(ENSEMBLE_INPUTS, method="beam", beam_width=1, max_length=6))
    np.testing.assert_array_equal(beam["tokens"][:, 0], labels)


def test_ensemble_saves_and_reloads(tmp_path):
    ensemble = EncoderDecoderEnsemble([_encoder_decoder(1), _encoder_decoder(2, attention=True)])
    ensemble.save(tmp_path / "e.keras")
    loaded = keras.saving.load_model(tmp_path / "e.keras", safe_mode=True)
    assert type(loaded) is EncoderDecoderEnsemble and len(loaded.members) == 2
    a = _numpy_dict(ensemble.generate(ENSEMBLE_INPUTS, method="beam", beam_width=3))
    b = _numpy_dict(loaded.generate(ENSEMBLE_INPUTS, method="beam", beam_width=3))
    for key in ("tokens", "scores"):
        np.testing.assert_array_equal(a[key], b[key])


def test_ensemble_refuses_members_that_do_not_fit():
    model = _encoder_decoder(1)
    with pytest.raises(ValueError, match="at least two members"):
        EncoderDecoderEnsemble([model])
    with pytest.raises(TypeError, match="Member 1 is a SequenceTagger"):
        EncoderDecoderEnsemble([model, SequenceTagger(8, K)])
    other = EncoderDecoder(12, 10, start_token=2, end_token=3, units=8)
    with pytest.raises(ValueError, match="Member 1 has output_vocabulary_size=10 but member 0 has 9"):
        EncoderDecoderEnsemble([model, other])
