"""A `.keras` file of an encoder-decoder exports with decoding signatures over token ids: beam and
greedy search, per-request settings (``decode``, ``sample``), step-wise decoding (``encode``,
``decode_step``) and ``input_lengths`` that make any padding harmless.

References: the in-memory model's own `generate` with static settings, each row decoded in a
batch of its own, and the SignatureDef as written in ``saved_model.pb``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.cli.export import main as export_main
from keras_seq.export.audit import read_saved_model
from keras_seq.models import EncoderDecoder

IDS = np.array([[4, 5, 6], [7, 8, 0], [5, 0, 0], [6, 4, 0]], np.int32)
LENGTHS = np.array([3, 2, 1, 2], np.int32)
MAX_LENGTH = 6


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, loaded SavedModel, version path) of a tiny attention encoder-decoder."""
    tmp_path = tmp_path_factory.mktemp("tokens")
    keras.utils.set_random_seed(3)
    model = EncoderDecoder(9, 11, units=12, embedding_dim=6, start_token=2, end_token=3, pad_token=0,
                           max_output_length=MAX_LENGTH, attention=True)
    model.build()
    model.save(tmp_path / "model.keras")
    assert export_main(["--model", str(tmp_path / "model.keras"), "--base-path", str(tmp_path / "m"),
                        "--shards", "1"]) == 0
    path = str(tmp_path / "m" / "1")
    return model, tf.saved_model.load(path), path


def np_(x):
    return keras.ops.convert_to_numpy(x)


def call(loaded, name, **inputs):
    return {k: v.numpy() for k, v in loaded.signatures[name](**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def settings(rows, beam_width=4, num_results=0, max_length=MAX_LENGTH, length_penalty=0.0):
    return dict(beam_width=np.full(rows, beam_width, np.int32), num_results=np.full(rows, num_results, np.int32),
                max_length=np.full(rows, max_length, np.int32),
                length_penalty=np.full(rows, length_penalty, np.float32))


def test_keras_file_of_an_encoder_decoder_exports_beam_and_greedy_decoding(exported):
    model, loaded, _ = exported
    assert set(loaded.signatures) == {"serving_default", "greedy", "decode", "sample", "encode", "decode_step"}
    beam = call(loaded, "serving_default", input_ids=IDS, input_lengths=LENGTHS)
    expected = model.generate(IDS, method="beam", beam_width=4)
    np.testing.assert_array_equal(beam["output_ids"], np_(expected["tokens"]))
    np.testing.assert_allclose(beam["scores"], np_(expected["scores"]), atol=1e-5)
    greedy = call(loaded, "greedy", input_ids=IDS, input_lengths=LENGTHS)
    np.testing.assert_array_equal(greedy["output_ids"], np_(model.generate(IDS, method="greedy")["tokens"]))


def test_settings_are_optional_inputs_with_the_exports_defaults(exported):
    """The SignatureDefs list a default for every new input (TF Serving feeds it when a request
    leaves the input out), so requests of the old form keep working."""
    signatures = read_saved_model(exported[2]).meta_graphs[0].signature_def
    defaults = {name: {k: tf.make_ndarray(v).tolist() for k, v in signatures[name].defaults.items()}
                for name in ("serving_default", "decode", "sample")}
    assert defaults["serving_default"] == {"input_lengths": [-1]}
    assert defaults["decode"] == {"input_lengths": [-1], "beam_width": [4], "num_results": [0],
                                  "max_length": [MAX_LENGTH], "length_penalty": [0.0]}
    assert defaults["sample"] == {"input_lengths": [-1], "temperature": [1.0], "top_k": [0], "seed": [-1],
                                  "max_length": [MAX_LENGTH]}
    assert set(signatures["serving_default"].inputs) == {"input_ids", "input_lengths"}


def test_decode_with_the_defaults_is_serving_default(exported):
    _, loaded, _ = exported
    want = call(loaded, "serving_default", input_ids=IDS, input_lengths=LENGTHS)
    got = call(loaded, "decode", input_ids=IDS, input_lengths=LENGTHS, **settings(len(IDS)))
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_rows_with_different_settings_get_what_each_gets_alone(exported):
    model, loaded, _ = exported
    widths, results, lengths, alphas = [1, 3, 2, 4], [1, 2, 0, 3], [6, 3, 5, 4], [0.0, 1.0, 0.6, 0.0]
    mixed = call(loaded, "decode", input_ids=IDS, input_lengths=LENGTHS, beam_width=np.int32(widths),
                 num_results=np.int32(results), max_length=np.int32(lengths), length_penalty=np.float32(alphas))
    greedy = np_(model.generate(IDS, method="greedy")["tokens"])
    for b, (w, n, m, alpha) in enumerate(zip(widths, results, lengths, alphas)):
        n = n or w
        row = IDS[b : b + 1, : LENGTHS[b]]
        alone = model.generate(row, method="beam", beam_width=w, num_results=n, max_length=m, length_penalty=alpha)
        np.testing.assert_array_equal(mixed["output_ids"][b, :n, :m], np_(alone["tokens"])[0])
        np.testing.assert_array_equal(mixed["lengths"][b, :n], np_(alone["lengths"])[0])
        np.testing.assert_allclose(mixed["scores"][b, :n], np_(alone["scores"])[0], rtol=1e-5)
        assert (mixed["output_ids"][b, n:] == 0).all() and (mixed["scores"][b, n:] == 0).all()
        if w == 1:  # beam width 1 is greedy search
            np.testing.assert_array_equal(mixed["output_ids"][b, 0], greedy[b])


def test_sample_rows_depend_on_their_own_seed_only(exported):
    _, loaded, _ = exported
    temperature, top_k, seed = np.float32([0.8, 1.5, 0.0, 1.0]), np.int32([3, 0, 0, 2]), np.int32([5, 6, 7, 5])
    inputs = dict(input_ids=IDS, input_lengths=LENGTHS, max_length=np.full(4, MAX_LENGTH, np.int32))
    mixed = call(loaded, "sample", temperature=temperature, top_k=top_k, seed=seed, **inputs)
    for b in range(4):
        alone = call(loaded, "sample", input_ids=IDS[b : b + 1], input_lengths=LENGTHS[b : b + 1],
                     temperature=temperature[b : b + 1], top_k=top_k[b : b + 1], seed=seed[b : b + 1],
                     max_length=np.int32([MAX_LENGTH]))
        np.testing.assert_array_equal(mixed["output_ids"][b], alone["output_ids"][0])
    greedy = call(loaded, "greedy", input_ids=IDS, input_lengths=LENGTHS)
    np.testing.assert_array_equal(mixed["output_ids"][2], greedy["output_ids"][2])  # temperature 0
    other = call(loaded, "sample", temperature=np.full(4, 1.5, np.float32), top_k=np.zeros(4, np.int32),
                 seed=np.int32([1, 2, 3, 4]), **inputs)
    again = call(loaded, "sample", temperature=np.full(4, 1.5, np.float32), top_k=np.zeros(4, np.int32),
                 seed=np.int32([1, 2, 3, 4]), **inputs)
    np.testing.assert_array_equal(other["output_ids"], again["output_ids"])


@pytest.mark.parametrize("name, value, message", [
    ("beam_width", [5], "`beam_width` must be between 1 and 4"),
    ("beam_width", [0], "`beam_width` must be between 1 and 4"),
    ("num_results", [3], "`num_results` must be between 1 and the beam_width of its row"),
    ("max_length", [MAX_LENGTH + 1], f"`max_length` must be between 1 and {MAX_LENGTH}"),
    ("length_penalty", [-0.5], "`length_penalty` must be a number >= 0"),
    ("beam_width", [1, 2], "`beam_width` must have one value, or one per row"),
])
def test_out_of_range_settings_are_invalid_arguments(exported, name, value, message):
    _, loaded, _ = exported
    inputs = {**settings(len(IDS), beam_width=2), name: np.asarray(value, np.float32 if name == "length_penalty"
                                                                     else np.int32)}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(loaded, "decode", input_ids=IDS, input_lengths=LENGTHS, **inputs)


def test_input_lengths_make_any_padding_harmless(exported):
    """Rows padded with other values and to other widths (as a batcher pads) decode as unpadded."""
    _, loaded, _ = exported
    want = call(loaded, "serving_default", input_ids=IDS, input_lengths=LENGTHS)
    padded = np.pad(IDS, [(0, 0), (0, 4)], constant_values=7)
    padded[1, 2], padded[3, 2] = 8, 5  # not pads: ignored past the row's length
    got = call(loaded, "serving_default", input_ids=padded, input_lengths=LENGTHS)
    np.testing.assert_array_equal(got["output_ids"], want["output_ids"])
    np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-6)
    counted = call(loaded, "serving_default", input_ids=IDS, input_lengths=np.full(len(IDS), -1, np.int32))
    np.testing.assert_array_equal(counted["output_ids"], want["output_ids"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="`input_lengths` must be between 0 and the width"):
        call(loaded, "greedy", input_ids=IDS, input_lengths=np.int32([4, 1, 1, 1]))


def test_encode_and_decode_step_run_greedy_search_in_the_client(exported):
    _, loaded, _ = exported
    state = call(loaded, "encode", input_ids=IDS, input_lengths=LENGTHS)
    start, end = state.pop("start_tokens"), state.pop("end_tokens")
    assert {"rnn_0_0", "rnn_0_1", "memory", "memory_mask", "keys"} <= set(state)
    tokens, scores, finished, outputs = start, np.zeros(len(IDS), np.float32), np.zeros(len(IDS), bool), []
    for _ in range(MAX_LENGTH):
        step = call(loaded, "decode_step", previous_tokens=tokens, **state)
        log_probs = step.pop("log_probs")
        state.update(step)
        best = log_probs.argmax(axis=-1).astype(np.int32)
        scores += np.where(finished, 0.0, log_probs[np.arange(len(IDS)), best])
        outputs.append(np.where(finished, 0, best))
        finished |= best == end
        tokens = np.where(finished, end, best)
    greedy = call(loaded, "greedy", input_ids=IDS, input_lengths=LENGTHS)
    np.testing.assert_array_equal(np.stack(outputs, axis=1), greedy["output_ids"])
    np.testing.assert_allclose(scores, greedy["scores"], rtol=1e-6)
