"""Tests of keras_seq.decoding against independent NumPy references.

References: greedy decoding by a plain Python loop, brute-force enumeration of every output
sequence (for beam search and its length penalty), re-scoring sampled sequences in NumPy, and
empirical frequencies for sampling. The compiled paths (tf.function with a dynamic batch and a
SavedModel round trip, jit_compile, and the JAX backend in a subprocess) are checked against the
eager results.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from _decoding_toys import (
    ToyRNN,
    ToyTable,
    all_sequences,
    check_well_formed,
    gnmt_penalty,
    np_greedy,
    np_ranked,
    np_sequence_log_prob,
)
from keras_seq import decoding

END, PAD = 1, -1  # pad -1 tells pads apart from token 0 in the outputs


def numpy_dict(outputs):
    return {key: ops.convert_to_numpy(value) for key, value in outputs.items()}


def run(decoder, model, max_length, **kwargs):
    return numpy_dict(
        decoder(
            model.step_fn,
            model.initial_state(),
            model.start,
            max_length,
            end_token=END,
            pad_token=PAD,
            **kwargs,
        )
    )


# --- Greedy search ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_matches_numpy_loop(seed):
    model = ToyRNN(seed=seed)
    out = run(decoding.greedy_search, model, 6)
    tokens, lengths, scores = np_greedy(model, 6, END, PAD)
    np.testing.assert_array_equal(out["tokens"], tokens)
    np.testing.assert_array_equal(out["lengths"], lengths)
    np.testing.assert_allclose(out["scores"], scores, rtol=1e-5, atol=1e-5)
    assert out["tokens"].dtype == np.int32 and out["lengths"].dtype == np.int32
    assert out["scores"].dtype == np.float32
    check_well_formed(out["tokens"], out["lengths"], 6, END, PAD)


def test_greedy_end_token_and_length_limit():
    # Example 0 ends after 2 tokens; example 1 never emits the end token and stops at the limit.
    probs = np.full((3, 3, 3), 0.1)
    probs[0, 0] = [0.1, 0.1, 0.8]  # start 0 -> 2
    probs[1, 2] = [0.1, 0.8, 0.1]  # then 2 -> end (1) at position 1
    probs[0, 2] = [0.8, 0.1, 0.1]  # start 2 -> 0
    probs[1:, 0] = [0.8, 0.1, 0.1]  # 0 -> 0 forever
    model = ToyTable(probs, start=[0, 2])
    out = run(decoding.greedy_search, model, 5)
    np.testing.assert_array_equal(out["tokens"], [[2, 1, PAD, PAD, PAD], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(out["lengths"], [2, 5])
    np.testing.assert_allclose(out["scores"], [2 * np.log(0.8), 5 * np.log(0.8)], rtol=1e-6)


def test_scalar_start_token_is_broadcast():
    model = ToyRNN(seed=3)
    model.start = np.zeros(3, "int32")
    out = decoding.greedy_search(model.step_fn, model.initial_state(), 0, 5, END, pad_token=PAD)
    np.testing.assert_array_equal(ops.convert_to_numpy(out["tokens"]), np_greedy(model, 5, END, PAD)[0])


def test_scores_equal_step_wise_rescoring():
    """The decoders' scores are the log-likelihoods of their outputs (score_sequences)."""
    model = ToyRNN(seed=4)
    for out in (
        run(decoding.greedy_search, model, 6),
        run(decoding.sample, model, 6, seed=5),
    ):
        rescored = decoding.score_sequences(
            model.step_fn, model.initial_state(), model.start, out["tokens"], out["lengths"]
        )
        np.testing.assert_allclose(ops.convert_to_numpy(rescored), out["scores"], rtol=1e-5, atol=1e-6)
        for b in range(3):
            expected = np_sequence_log_prob(model, b, out["tokens"][b, : out["lengths"][b]])
            np.testing.assert_allclose(out["scores"][b], expected, rtol=1e-5, atol=1e-5)


# --- Beam search --------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_exhaustive_beam_matches_brute_force(alpha):
    """With beam_width >= V ** max_length nothing is pruned: the n-best list is exact."""
    model = ToyRNN(vocab_size=3, seed=6)
    max_length = 3
    width = 3**max_length
    out = run(decoding.beam_search, model, max_length, beam_width=width, length_penalty=alpha)
    num_valid = len(list(all_sequences(3, max_length, END)))  # 15 < 27: the rest are NEG_INF
    for b in range(3):
        ranked = np_ranked(model, b, max_length, END, alpha)
        for k, (score, log_prob, seq) in enumerate(ranked):
            assert tuple(out["tokens"][b, k, : len(seq)]) == seq
            assert out["lengths"][b, k] == len(seq)
            np.testing.assert_allclose(out["scores"][b, k], score, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(out["log_probs"][b, k], log_prob, rtol=1e-5, atol=1e-5)
        assert np.all(out["log_probs"][b, num_valid:] < decoding.NEG_INF / 2)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_width_one_is_greedy_exactly(seed):
    model = ToyRNN(vocab_size=6, seed=seed, scale=0.7)  # flat distributions: many close calls
    greedy = run(decoding.greedy_search, model, 7)
    for alpha in (0.0, 1.0):
        beam = run(decoding.beam_search, model, 7, beam_width=1, length_penalty=alpha)
        np.testing.assert_array_equal(beam["tokens"][:, 0], greedy["tokens"])
        np.testing.assert_array_equal(beam["lengths"][:, 0], greedy["lengths"])
        np.testing.assert_array_equal(beam["log_probs"][:, 0], greedy["scores"])


@pytest.mark.parametrize("seed", range(6))
def test_beam_never_worse_than_greedy(seed):
    model = ToyRNN(vocab_size=5, seed=10 + seed, scale=1.0)
    greedy = run(decoding.greedy_search, model, 6)
    for width in (2, 3):
        beam = run(decoding.beam_search, model, 6, beam_width=width)
        assert np.all(beam["scores"][:, 0] >= greedy["scores"] - 1e-6)
        check_well_formed(beam["tokens"], beam["lengths"], 6, END, PAD)


def greedy_trap():
    """Plain beam search (K=2) drops the greedy path at step 2 and ends worse than greedy.

    Tokens a=0, end=1, b=2, c=3; start token 3. Greedy: a (.36), c (.28), end (.97) = .098.
    At step 2 the two continuations of b (.34 * .5, .34 * .45) beat a->c (.36 * .28), and
    everything after them costs .25 per token.
    """
    probs = np.full((3, 4, 4), 0.25)
    probs[0, 3] = [0.36, 0.01, 0.34, 0.29]
    probs[1, 0] = [0.24, 0.24, 0.24, 0.28]
    probs[1, 2] = [0.5, 0.01, 0.45, 0.04]
    probs[2, 3] = [0.01, 0.97, 0.01, 0.01]
    return ToyTable(probs, start=[3])


def test_greedy_safeguard_on_a_trap_for_plain_beam_search():
    model = greedy_trap()
    greedy = run(decoding.greedy_search, model, 3)
    np.testing.assert_array_equal(greedy["tokens"], [[0, 3, 1]])
    plain = run(decoding.beam_search, model, 3, beam_width=2, keep_greedy=False)
    assert plain["scores"][0, 0] < greedy["scores"][0] - 0.5  # the known weakness
    kept = run(decoding.beam_search, model, 3, beam_width=2)
    np.testing.assert_array_equal(kept["tokens"][0, 0], greedy["tokens"][0])
    np.testing.assert_allclose(kept["scores"][0, 0], greedy["scores"][0], rtol=1e-6)


def test_n_best_sorted_and_num_results():
    model = ToyRNN(vocab_size=5, seed=7)
    full = run(decoding.beam_search, model, 6, beam_width=4, length_penalty=0.6)
    top2 = run(decoding.beam_search, model, 6, beam_width=4, length_penalty=0.6, num_results=2)
    assert full["tokens"].shape == (3, 4, 6) and top2["tokens"].shape == (3, 2, 6)
    assert np.all(np.diff(full["scores"], axis=1) <= 0)
    for key in full:
        np.testing.assert_array_equal(top2[key], full[key][:, :2])
    # Each hypothesis is distinct, and its scores are its own (NumPy re-scoring).
    for b in range(3):
        seqs = [tuple(full["tokens"][b, k, : full["lengths"][b, k]]) for k in range(4)]
        assert len(set(seqs)) == 4
        for k, seq in enumerate(seqs):
            log_prob = np_sequence_log_prob(model, b, seq)
            np.testing.assert_allclose(full["log_probs"][b, k], log_prob, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(
                full["scores"][b, k], log_prob / gnmt_penalty(len(seq), 0.6), rtol=1e-5, atol=1e-5
            )
    check_well_formed(full["tokens"], full["lengths"], 6, END, PAD)


def test_length_penalty_favours_longer_hypotheses():
    """"end" at once (p=.5) or "a a a a" up to the limit (p=.5*.9**3): alpha ranks the long one first."""
    probs = np.zeros((5, 2, 2))
    probs[0, 0] = [0.5, 0.5]
    probs[1:, 0] = [0.9, 0.1]
    probs[:, 1] = [0.5, 0.5]
    model = ToyTable(probs, start=[0])
    plain = run(decoding.beam_search, model, 4, beam_width=2)
    assert plain["lengths"][0, 0] == 1
    penalized = run(decoding.beam_search, model, 4, beam_width=2, length_penalty=2.0)
    # log(.5)/1 = -.69 vs (log .5 + 3 log .9)/((5+4)/6)**2 = -.45: the long one wins.
    assert penalized["lengths"][0, 0] == 4
    np.testing.assert_array_equal(penalized["tokens"][0, 0], [0, 0, 0, 0])
    np.testing.assert_allclose(penalized["scores"][0], [-0.4485, -0.6931], atol=1e-3)


def test_finished_beams_stay_finished():
    model = ToyRNN(vocab_size=3, seed=8, scale=3.0)
    out = run(decoding.beam_search, model, 8, beam_width=3)
    check_well_formed(out["tokens"], out["lengths"], 8, END, PAD)
    assert np.any(out["lengths"] < 8)  # some hypotheses did finish early


def test_tile_beams_is_batch_major():
    state = {"h": np.arange(6, dtype="float32").reshape(2, 3), "pair": (np.array([5, 7]), np.zeros((2, 1)))}
    tiled = decoding.tile_beams(state, 3)
    np.testing.assert_array_equal(ops.convert_to_numpy(tiled["h"])[:, 0], [0, 0, 0, 3, 3, 3])
    np.testing.assert_array_equal(ops.convert_to_numpy(tiled["pair"][0]), [5, 5, 5, 7, 7, 7])


def test_docstring_examples():
    import doctest

    failures, tried = doctest.testmod(decoding, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0


def test_invalid_arguments():
    model = ToyRNN()
    with pytest.raises(ValueError, match="num_results"):
        run(decoding.beam_search, model, 4, beam_width=2, num_results=3)
    with pytest.raises(ValueError, match="max_length"):
        run(decoding.greedy_search, model, 0)
    with pytest.raises(ValueError, match="top_k"):
        run(decoding.sample, model, 4, top_k=0)


# --- Sampling -----------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.0, 1e-6])
def test_sampling_at_temperature_zero_is_greedy(temperature):
    model = ToyRNN(vocab_size=6, seed=9)
    greedy = run(decoding.greedy_search, model, 7)
    out = run(decoding.sample, model, 7, temperature=temperature, seed=1)
    np.testing.assert_array_equal(out["tokens"], greedy["tokens"])
    np.testing.assert_allclose(out["scores"], greedy["scores"], rtol=1e-6)
    tensor_zero = run(decoding.sample, model, 7, temperature=ops.convert_to_tensor(0.0), seed=1)
    np.testing.assert_array_equal(tensor_zero["tokens"], greedy["tokens"])


def one_step_model(batch):
    probs = np.array([0.05, 0.1, 0.15, 0.3, 0.4])
    return ToyTable(probs[None, None, :].repeat(5, axis=1), start=np.zeros(batch, "int32")), probs


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (2.0, None), (0.5, None), (1.0, 2)])
def test_sampling_distribution(temperature, top_k):
    model, probs = one_step_model(8000)
    out = run(decoding.sample, model, 1, temperature=temperature, top_k=top_k, seed=11)
    expected = probs ** (1.0 / temperature)
    if top_k is not None:
        expected[np.argsort(probs)[:-top_k]] = 0.0
    expected /= expected.sum()
    freq = np.bincount(out["tokens"][:, 0], minlength=5) / 8000
    np.testing.assert_allclose(freq, expected, atol=0.02)  # ~4 standard errors
    # Scores are log-probabilities under the untempered model.
    np.testing.assert_allclose(out["scores"], np.log(probs[out["tokens"][:, 0]]), rtol=1e-5)


def test_sampling_seeds_and_well_formed_sequences():
    model = ToyRNN(vocab_size=5, seed=12, scale=1.0)
    a = run(decoding.sample, model, 8, seed=3, temperature=1.3)
    b = run(decoding.sample, model, 8, seed=3, temperature=1.3)
    c = run(decoding.sample, model, 8, seed=4, temperature=1.3)
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert not np.array_equal(a["tokens"], c["tokens"])
    check_well_formed(a["tokens"], a["lengths"], 8, END, PAD)
    for b_ in range(3):
        expected = np_sequence_log_prob(model, b_, a["tokens"][b_, : a["lengths"][b_]])
        np.testing.assert_allclose(a["scores"][b_], expected, rtol=1e-5, atol=1e-5)
    topk = run(decoding.sample, model, 8, seed=3, top_k=1)  # top-1 is greedy
    np.testing.assert_array_equal(topk["tokens"], np_greedy(model, 8, END, PAD)[0])


# --- Per-row settings: one loop over the maxima, each row as if decoded alone ------------------


def run_alone(decoder, model, b, max_length, **kwargs):
    """Row `b` decoded in a batch of its own, with static settings."""
    state = {"h": model.h0[b : b + 1], "memory": (model.memory[b : b + 1], model.mask[b : b + 1])}
    return numpy_dict(decoder(model.step_fn, state, model.start[b : b + 1], max_length, end_token=END,
                              pad_token=PAD, **kwargs))


@pytest.mark.parametrize("seed", [0, 3])
def test_per_row_beam_settings_equal_each_row_alone(seed):
    model = ToyRNN(vocab_size=6, batch_size=4, seed=seed, scale=0.8)
    widths, lengths, alphas = [1, 3, 2, 4], [7, 3, 5, 6], [0.0, 1.0, 0.6, 0.0]
    mixed = run(decoding.beam_search, model, 7, beam_width=4, num_results=1, beam_widths=np.int32(widths),
                max_lengths=np.int32(lengths), length_penalty=np.float32(alphas))
    for b, (w, m, alpha) in enumerate(zip(widths, lengths, alphas)):
        alone = run_alone(decoding.beam_search, model, b, m, beam_width=w, num_results=1, length_penalty=alpha)
        np.testing.assert_array_equal(mixed["tokens"][b, 0, :m], alone["tokens"][0, 0])
        assert (mixed["tokens"][b, 0, m:] == PAD).all()
        np.testing.assert_array_equal(mixed["lengths"][b], alone["lengths"][0])
        np.testing.assert_allclose(mixed["scores"][b], alone["scores"][0], rtol=1e-6)
    # Every row at the maxima: exactly the static search.
    full = run(decoding.beam_search, model, 7, beam_width=4, beam_widths=np.full(4, 4, "int32"),
               max_lengths=np.full(4, 7, "int32"), length_penalty=np.zeros(4, "float32"))
    static = run(decoding.beam_search, model, 7, beam_width=4)
    for key in static:
        np.testing.assert_array_equal(full[key], static[key])


def test_per_row_greedy_and_sampling_settings_equal_each_row_alone():
    model = ToyRNN(vocab_size=6, batch_size=3, seed=5, scale=1.0)
    lengths = np.int32([2, 6, 4])
    greedy = run(decoding.greedy_search, model, 6, max_lengths=lengths)
    width_one = run(decoding.beam_search, model, 6, beam_width=3, beam_widths=np.ones(3, "int32"), max_lengths=lengths)
    np.testing.assert_array_equal(width_one["tokens"][:, 0], greedy["tokens"])
    np.testing.assert_array_equal(width_one["log_probs"][:, 0], greedy["scores"])
    temperatures, top_ks, seeds = np.float32([0.7, 0.0, 1.5]), np.int32([2, 0, 0]), np.int32([11, 12, 11])
    mixed = run(decoding.sample, model, 6, max_lengths=lengths, temperature=temperatures, top_k=top_ks, seed=seeds)
    for b in range(3):
        m = int(lengths[b])
        alone = run_alone(decoding.sample, model, b, m, temperature=float(temperatures[b]),
                          top_k=int(top_ks[b]) or None, seed=int(seeds[b]))
        np.testing.assert_array_equal(mixed["tokens"][b, :m], alone["tokens"][0])
        np.testing.assert_allclose(mixed["scores"][b], alone["scores"][0], rtol=1e-6)
        greedy_alone = run_alone(decoding.greedy_search, model, b, m)
        np.testing.assert_array_equal(greedy["tokens"][b, :m], greedy_alone["tokens"][0])


# --- Compiled: tf.function with a dynamic batch, SavedModel, XLA, JAX ---------------------------

TOY = dict(vocab_size=5, units=4, memory_length=3, batch_size=5, seed=13)


def decode_all(model, start, h, memory, mask, seed):
    """All three decoders on the toy model, as one function to trace."""
    state = {"h": h, "memory": (memory, mask)}
    greedy = decoding.greedy_search(model.step_fn, state, start, 6, END, pad_token=PAD)
    beam = decoding.beam_search(
        model.step_fn, state, start, 6, END, beam_width=3, length_penalty=0.6, num_results=2, pad_token=PAD
    )
    sampled = decoding.sample(model.step_fn, state, start, 6, END, temperature=0.9, top_k=3, seed=seed, pad_token=PAD)
    return {
        **{f"greedy_{k}": v for k, v in greedy.items()},
        **{f"beam_{k}": v for k, v in beam.items()},
        **{f"sample_{k}": v for k, v in sampled.items()},
    }


def toy_inputs(model, batch):
    return (model.start[:batch], model.h0[:batch], model.memory[:batch], model.mask[:batch], np.int32(21))


def assert_same(actual, expected):
    assert actual.keys() == expected.keys()
    for key in expected:
        if "tokens" in key or "lengths" in key:
            np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)
        else:
            np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-5, err_msg=key)


SIGNATURE = [
    tf.TensorSpec([None], tf.int32, name="start_tokens"),
    tf.TensorSpec([None, TOY["units"]], tf.float32, name="h"),
    tf.TensorSpec([None, TOY["memory_length"], TOY["units"]], tf.float32, name="memory"),
    tf.TensorSpec([None, TOY["memory_length"]], tf.float32, name="mask"),
    tf.TensorSpec([], tf.int32, name="seed"),
]


def test_tf_function_dynamic_batch_and_saved_model(tmp_path):
    model = ToyRNN(**TOY)
    module = tf.Module()
    module.decode = tf.function(lambda *args: decode_all(model, *args), input_signature=SIGNATURE)
    tf.saved_model.save(module, str(tmp_path))
    reloaded = tf.saved_model.load(str(tmp_path))
    graph = module.decode.get_concrete_function().graph.as_graph_def()
    op_types = {node.op for node in graph.node}
    for function in graph.library.function:
        op_types |= {node.op for node in function.node_def}
    assert "While" in op_types or "StatelessWhile" in op_types
    assert not [op for op in op_types if op.startswith("Xla")], "non-standard TF ops in the graph"
    for batch in (2, 5):
        inputs = toy_inputs(model, batch)
        eager = numpy_dict(decode_all(model, *inputs))
        assert eager["beam_tokens"].shape == (batch, 2, 6)
        assert_same(numpy_dict(module.decode(*inputs)), eager)
        assert_same(numpy_dict(reloaded.decode(*inputs)), eager)


def test_tf_jit_compile():
    model = ToyRNN(**TOY)
    compiled = tf.function(lambda *args: decode_all(model, *args), jit_compile=True)
    inputs = toy_inputs(model, 5)
    assert_same(numpy_dict(compiled(*inputs)), numpy_dict(decode_all(model, *inputs)))


def test_jax_backend_jit():
    """Under KERAS_BACKEND=jax (a subprocess: the backend is fixed at import), jax.jit gives
    the same outputs as TensorFlow eagerly, sampling included (the sampler's RNG is backend-free)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    here = os.path.dirname(os.path.abspath(__file__))
    tests_dir = os.path.dirname(here)  # tests/, where the shared helpers are
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    code = (
        "import json, sys\n"
        f"sys.path[:0] = [{tests_dir!r}, {here!r}]\n"
        "import jax, numpy as np, keras\n"
        "assert keras.backend.backend() == 'jax'\n"
        "from _decoding_toys import ToyRNN\n"
        "import test_decoding as t\n"
        f"model = ToyRNN(**{TOY!r})\n"
        "inputs = t.toy_inputs(model, 4)\n"
        "out = jax.jit(lambda *a: t.decode_all(model, *a))(*inputs)\n"
        "print('RESULT' + json.dumps({k: np.asarray(v).tolist() for k, v in out.items()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    jax_out = {k: np.asarray(v) for k, v in json.loads(lines[-1][len("RESULT"):]).items()}
    model = ToyRNN(**TOY)
    assert_same(jax_out, numpy_dict(decode_all(model, *toy_inputs(model, 4))))
    np.testing.assert_array_equal(jax_out["greedy_tokens"], np_greedy(model, 6, END, PAD)[0][:4])
