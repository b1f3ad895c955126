"""Autoregressive decoding as one compiled loop: greedy search, beam search and sampling.

The same three decoders serve every generative model of keras-seq: the encoder-decoder of
Fig. 10.12 (the decoder conditioned on the encoder's context) and the RNN language model of
Fig. 10.7-10.8 (no conditioning at all). They only see the model through a *step function*.

The step function
-----------------
``step_fn(tokens, state) -> (logits, new_state)``

- ``tokens``: int32 ``[N]``, the previous output token of each row (the start token at the
  first step).
- ``state``: a nested structure (tensor, list, tuple or dict) of tensors, each with leading
  dimension ``N``. It is arbitrary: recurrent states, but also tensors that are only carried
  through, such as encoder outputs for attention and their mask. ``new_state`` must have the
  same structure, dtypes and shapes as ``state`` (the loop carries it).
- ``logits``: float ``[N, V]``, unnormalized; the decoders apply ``log_softmax`` themselves.

``N`` is the batch size ``B`` for greedy search and sampling, and ``B * beam_width`` for beam
search, whose rows are batch-major (row ``b * beam_width + k`` is beam ``k`` of example ``b``).
Users always pass the *un-tiled* initial state: `beam_search` tiles it itself with
`tile_beams`.

The decoders
------------
- `greedy_search(step_fn, initial_state, start_tokens, max_length, end_token)`
- `beam_search(step_fn, initial_state, start_tokens, max_length, end_token, beam_width=4,
  length_penalty=0.0, num_results=None)`
- `sample(step_fn, initial_state, start_tokens, max_length, end_token, temperature=1.0,
  top_k=None, seed=None)`
- `score_sequences(step_fn, initial_state, start_tokens, tokens, lengths)`: the log-probability
  of given outputs, computed step by step with the outputs fed back (teacher forcing).

Each decoder returns a dict:

- ``tokens``: int32 ``[B, max_length]`` (beam search: ``[B, K, max_length]``), the generated
  tokens after the start token; positions after the end token hold ``pad_token``.
- ``lengths``: int32 ``[B]`` (``[B, K]``), the number of generated tokens, end token included.
  A sequence that never produced ``end_token`` has length ``max_length``.
- ``scores``: float32 ``[B]`` (``[B, K]``), the sum of the log-probabilities of the generated
  tokens up to and including the end token. For beam search, the score after the length
  penalty, sorted best first; the raw sums are in ``log_probs``.

Compilation
-----------
Every decoder is a single ``keras.ops.while_loop`` over loop variables of static shape (the
output is preallocated as ``[N, max_length]`` and written one column per step), that exits
early once every row has finished. ``max_length``, ``beam_width``, ``top_k`` and
``length_penalty`` are Python numbers (static); the batch size may be dynamic. Only
``keras.ops`` are used, so the decoders run eagerly, under ``jax.jit``, inside a
``tf.function`` (also with a ``None`` batch dimension in its ``input_signature``, and with
``jit_compile=True``), and can be exported in a SavedModel: on the TensorFlow backend they
lower to standard TF ops only (columns are written with a mask rather than
``ops.slice_update``, which lowers to the XLA-only ``XlaDynamicUpdateSlice``).

Example:

```python
import numpy as np
from keras import ops
from keras_seq import decoding

# A bigram "language model": the logits of the next token depend on the previous one.
table = ops.convert_to_tensor(np.random.default_rng(0).normal(size=(5, 5)), "float32")

def step_fn(tokens, state):
    return ops.take(table, tokens, axis=0), state

state = {"unused": ops.zeros((2, 1))}  # any nested structure with leading dim B
start = ops.convert_to_tensor([0, 1], "int32")
greedy = decoding.greedy_search(step_fn, state, start, max_length=6, end_token=4)
beams = decoding.beam_search(step_fn, state, start, max_length=6, end_token=4, beam_width=3)
samples = decoding.sample(step_fn, state, start, max_length=6, end_token=4,
                          temperature=0.8, top_k=3, seed=1)
ops.shape(greedy["tokens"]), ops.shape(beams["tokens"])  # (2, 6), (2, 3, 6)
```
"""

import random as _random

from keras import ops
from keras import tree

#: The log-probability given to impossible hypotheses. Finite (unlike ``-inf``) so that sums
#: and differences stay finite, and far below any real log-probability.
NEG_INF = -1e9


# --------------------------------------------------------------------------------------------
# Small helpers shared by the decoders.
# --------------------------------------------------------------------------------------------


def _check_static_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be a Python int >= {minimum}. Received: {name}={value!r}")


def _log_softmax(logits):
    """Normalized log-probabilities in float32, whatever the dtype of the logits."""
    return ops.log_softmax(ops.cast(logits, "float32"), axis=-1)


def _take_last(values, indices):
    """``values[n, indices[n]]`` for ``values`` ``[N, V]`` and ``indices`` ``[N]``."""
    return ops.take_along_axis(values, ops.expand_dims(indices, -1), axis=-1)[:, 0]


def _write_column(buffer, step, values):
    """``buffer[:, step] = values`` for a ``[N, L]`` buffer, with standard ops only.

    ``ops.slice_update`` would lower to ``XlaDynamicUpdateSlice`` on TensorFlow, which is not a
    standard op outside XLA; a masked select is cheap for the short buffers of decoding.
    """
    length = ops.shape(buffer)[-1]
    column = ops.equal(ops.arange(length, dtype="int32"), step)
    return ops.where(column[None, :], ops.expand_dims(values, -1), buffer)


def _prepare(initial_state, start_tokens):
    """Converts the state to tensors and the start tokens to int32 ``[B]``."""
    state = tree.map_structure(ops.convert_to_tensor, initial_state)
    start = ops.cast(ops.convert_to_tensor(start_tokens), "int32")
    if len(start.shape) == 0:
        leaves = tree.flatten(state)
        if not leaves:
            raise ValueError(
                "A scalar `start_tokens` needs a non-empty `initial_state` to read the batch "
                "size from; pass `start_tokens` of shape [batch_size] instead."
            )
        start = ops.full((ops.shape(leaves[0])[0],), start, "int32")
    elif len(start.shape) != 1:
        raise ValueError(f"`start_tokens` must have shape [batch_size]. Received shape {start.shape}")
    return state, start


def _empty_buffer(rows, max_length, pad_token):
    """An int32 ``[N, max_length]`` buffer full of ``pad_token``, ``N`` taken from ``rows``."""
    return ops.expand_dims(ops.zeros_like(rows), -1) + ops.full((1, max_length), pad_token, "int32")


def tile_beams(state, beam_width):
    """Repeats every tensor of a nested state ``beam_width`` times along the batch axis.

    Row ``b`` of the input becomes rows ``b * beam_width ... b * beam_width + beam_width - 1``
    (batch-major), the layout that `beam_search` uses for its step function.

    Args:
        state: a tensor or nested structure (list, tuple, dict) of tensors with leading
            dimension ``B``.
        beam_width: Python int, the number of beams per example.

    Returns:
        The same structure with tensors of leading dimension ``B * beam_width``.

    Example:

    >>> ops.shape(tile_beams({"h": ops.ones((2, 3))}, 4)["h"])
    (8, 3)
    """
    _check_static_int("beam_width", beam_width, 1)
    return tree.map_structure(
        lambda x: ops.repeat(ops.convert_to_tensor(x), beam_width, axis=0), state
    )


def length_penalty_factor(lengths, alpha):
    """GNMT's length normalization (Wu et al. 2016, eq. 14): ``((5 + |Y|) / 6) ** alpha``.

    Args:
        lengths: int tensor of sequence lengths (end token included).
        alpha: Python float; 0 gives 1 (no normalization).

    Returns:
        float32 tensor of the same shape as ``lengths``.
    """
    return ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, float(alpha))


def _penalized(log_probs, lengths, alpha):
    """Scores after the length penalty; `alpha` a Python float or a tensor (one per row)."""
    if isinstance(alpha, float):
        return log_probs if alpha == 0 else log_probs / length_penalty_factor(lengths, alpha)
    return log_probs / ops.power((5.0 + ops.cast(lengths, "float32")) / 6.0, alpha)


# --------------------------------------------------------------------------------------------
# Greedy search and sampling: one loop, one token rule each.
# --------------------------------------------------------------------------------------------


def _row_max_lengths(max_lengths, like):
    """int32 ``[N]`` per-row length limits (see `greedy_search`), or None."""
    if max_lengths is None:
        return None
    return ops.reshape(ops.cast(ops.convert_to_tensor(max_lengths), "int32"), ops.shape(like))


def _decode_one_path(step_fn, initial_state, start_tokens, max_length, end_token, pad_token, pick,
                     max_lengths=None):
    """The loop shared by greedy search and sampling.

    ``pick(logits, log_probs, step) -> tokens`` chooses the next token of every row.
    """
    _check_static_int("max_length", max_length, 1)
    state, start = _prepare(initial_state, start_tokens)
    end_token = ops.convert_to_tensor(end_token, "int32")
    max_lengths = _row_max_lengths(max_lengths, start)
    last_steps = None if max_lengths is None else max_lengths - 1

    step = ops.convert_to_tensor(0, "int32")
    buffer = _empty_buffer(start, max_length, pad_token)
    lengths = ops.zeros_like(start)
    scores = ops.zeros_like(start, dtype="float32")
    finished = ops.zeros_like(start, dtype="bool")

    def cond(step, tokens, state, buffer, lengths, scores, finished):
        return ops.logical_and(step < max_length, ops.logical_not(ops.all(finished)))

    def body(step, tokens, state, buffer, lengths, scores, finished):
        logits, state = step_fn(tokens, state)
        log_probs = _log_softmax(logits)
        next_tokens = ops.cast(pick(logits, log_probs, step), "int32")
        alive = ops.logical_not(finished)
        buffer = _write_column(buffer, step, ops.where(alive, next_tokens, pad_token))
        scores = scores + ops.where(alive, _take_last(log_probs, next_tokens), 0.0)
        lengths = lengths + ops.cast(alive, "int32")
        finished = ops.logical_or(finished, ops.equal(next_tokens, end_token))
        if last_steps is not None:  # a row's own limit ends it as the loop's end would
            finished = ops.logical_or(finished, step >= last_steps)
        # Finished rows are fed the end token (always a valid index, unlike a pad of -1).
        tokens = ops.where(finished, end_token, next_tokens)
        return step + 1, tokens, state, buffer, lengths, scores, finished

    _, _, _, buffer, lengths, scores, _ = ops.while_loop(
        cond,
        body,
        (step, start, state, buffer, lengths, scores, finished),
        maximum_iterations=max_length,
    )
    return {"tokens": buffer, "lengths": lengths, "scores": scores}


def _argmax_tokens(logits, log_probs, step):
    return ops.argmax(log_probs, axis=-1)


def greedy_search(
    step_fn, initial_state, start_tokens, max_length, end_token, pad_token=0, max_lengths=None
):
    """Greedy decoding: at every step, the most probable next token.

    Args:
        step_fn: ``step_fn(tokens, state) -> (logits, new_state)``, see the module docstring.
        initial_state: nested structure of tensors with leading dimension ``B``.
        start_tokens: int ``[B]`` (or a scalar, broadcast to the batch of ``initial_state``),
            the first input of the step function.
        max_length: Python int, the largest number of generated tokens.
        end_token: int, the token that ends a sequence.
        pad_token: int written after the end token (default 0).
        max_lengths: None, or int ``[B]``: each row's own limit (``<= max_length``), for
            per-request settings. The loop keeps its static ``max_length`` columns; a row
            stops after its own number of tokens, with the result it gets from a loop whose
            ``max_length`` is its limit (the columns after it hold pads).

    Returns:
        dict with ``tokens`` int32 ``[B, max_length]``, ``lengths`` int32 ``[B]`` and
        ``scores`` float32 ``[B]`` (sum of the log-probabilities of the generated tokens,
        end token included).

    Example:

    >>> table = ops.convert_to_tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    >>> step_fn = lambda tokens, state: (ops.take(table, tokens, axis=0), state)
    >>> out = greedy_search(step_fn, ops.zeros((1, 1)), [0], max_length=4, end_token=2)
    >>> ops.convert_to_numpy(out["tokens"]).tolist(), ops.convert_to_numpy(out["lengths"]).tolist()
    ([[1, 2, 0, 0]], [2])
    """
    return _decode_one_path(
        step_fn, initial_state, start_tokens, max_length, end_token, pad_token, _argmax_tokens,
        max_lengths=max_lengths,
    )


# --- Sampling ---------------------------------------------------------------------------------
#
# keras.random cannot take a *tensor* seed on every backend (TensorFlow accepts only an int or a
# stateful SeedGenerator), yet a loop needs a fresh stateless seed at each step, and an exported
# signature wants the seed as an input. So sampling draws its uniforms from a counter-based hash
# (MurmurHash3's 32-bit finalizer) of (seed, step, row, column) in uint32 arithmetic: stateless,
# identical on every backend, and standard integer ops only. Tokens are then drawn with the
# Gumbel-max trick: argmax(logits / T + G), G = -log(-log(U)).

_GOLDEN = 0x9E3779B9
_FMIX_1 = 0x85EBCA6B
_FMIX_2 = 0xC2B2AE35


def _u32(value):
    return ops.convert_to_tensor(value, "uint32")


def _fmix32(h):
    """MurmurHash3's finalizer: a bijection of uint32 with full avalanche."""
    h = ops.bitwise_xor(h, ops.right_shift(h, 16))
    h = ops.multiply(h, _u32(_FMIX_1))
    h = ops.bitwise_xor(h, ops.right_shift(h, 13))
    h = ops.multiply(h, _u32(_FMIX_2))
    return ops.bitwise_xor(h, ops.right_shift(h, 16))


def _seed_tensor(seed):
    """A uint32 seed from an int, an integer tensor (scalar or per row ``[B]``), or None (a
    fresh random seed)."""
    if seed is None:
        # Drawn in Python: once per eager call, once per trace under tf.function / jax.jit.
        seed = _random.SystemRandom().randrange(2**32)
    if isinstance(seed, int):
        return _u32(seed % 2**32)
    seed = ops.convert_to_tensor(seed)
    if len(seed.shape) > 1:
        raise ValueError(f"`seed` must be an int, a scalar or a [batch_size] integer tensor. Received shape {seed.shape}")
    return ops.cast(seed, "uint32")


def _gumbel_noise(seed, step, like):
    """Standard Gumbel noise of the shape of ``like`` (``[N, V]``), a function of (seed, step).

    With a scalar seed, the counter runs over rows and columns; with one seed per row (``[N]``),
    over columns only, so that a row's noise depends on its own seed and not on its place in
    the batch (row 0 gets the same noise either way).
    """
    num_classes = ops.shape(like)[-1]
    cols = ops.cast(ops.arange(num_classes), "uint32")
    if len(seed.shape) == 1:
        counter = cols[None, :]
        seed = seed[:, None]
    else:
        rows = ops.cast(ops.arange(ops.shape(like)[0]), "uint32")
        counter = rows[:, None] * _u32(num_classes) + cols[None, :]
    key = _fmix32(ops.bitwise_xor(_fmix32(seed), ops.cast(step, "uint32") * _u32(_GOLDEN)))
    bits = _fmix32(ops.bitwise_xor(_fmix32(ops.bitwise_xor(counter, key)), key))
    # 24 random bits -> a uniform in (0, 1), never exactly 0 or 1.
    uniform = (ops.cast(ops.right_shift(bits, 8), "float32") + 0.5) * (1.0 / 2**24)
    return -ops.log(-ops.log(uniform))


def _top_k_filter(logits, k):
    """Sets every logit below the k-th largest of its row to -inf; `k` an int, or int ``[N]``
    (one per row, 0 meaning no restriction)."""
    if isinstance(k, int):
        kth = ops.top_k(logits, k)[0][:, -1:]
        return ops.where(logits < kth, float("-inf"), logits)
    ranked = ops.top_k(logits, logits.shape[-1])[0]  # each row sorted, largest first
    kth = ops.take_along_axis(ranked, ops.expand_dims(ops.maximum(k, 1) - 1, -1), axis=-1)
    return ops.where(ops.logical_and(k[:, None] > 0, logits < kth), float("-inf"), logits)


def sample(
    step_fn,
    initial_state,
    start_tokens,
    max_length,
    end_token,
    temperature=1.0,
    top_k=None,
    seed=None,
    pad_token=0,
    max_lengths=None,
):
    """Ancestral sampling from the model, with temperature and top-k.

    At each step the next token is drawn from ``softmax(logits / temperature)`` restricted to
    the ``top_k`` most probable tokens. A temperature of exactly 0 is greedy search; as the
    temperature goes to 0 the samples tend to greedy search.

    Args:
        step_fn: ``step_fn(tokens, state) -> (logits, new_state)``, see the module docstring.
        initial_state: nested structure of tensors with leading dimension ``B``.
        start_tokens: int ``[B]`` (or a scalar), the first input of the step function.
        max_length: Python int, the largest number of generated tokens.
        end_token: int, the token that ends a sequence.
        temperature: Python float >= 0, or a float tensor, scalar or ``[B]`` (one per row);
            <= 0 means greedy.
        top_k: Python int or None (no restriction), or an int ``[B]`` tensor (one per row,
            0 meaning no restriction).
        seed: int, integer tensor (scalar, or ``[B]``: one seed per row, e.g. inputs of an
            exported signature), or None. The same seed gives the same samples, on every
            backend; with one seed per row, a row's sample depends on its seed only, not on
            the other rows. None draws a seed in Python: under ``tf.function`` or ``jax.jit``
            that happens once per trace, so pass the seed as a tensor argument there to get
            fresh samples per call.
        pad_token: int written after the end token (default 0).
        max_lengths: None or int ``[B]``, each row's own limit (see `greedy_search`).

    Returns:
        dict with ``tokens`` int32 ``[B, max_length]``, ``lengths`` int32 ``[B]`` and
        ``scores`` float32 ``[B]``: the log-probabilities of the sampled tokens under the
        *untempered*, unrestricted model.

    Example:

    >>> table = ops.convert_to_tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    >>> step_fn = lambda tokens, state: (ops.take(table, tokens, axis=0), state)
    >>> out = sample(step_fn, ops.zeros((3, 1)), [0, 0, 0], 4, end_token=2, seed=7)
    >>> ops.shape(out["tokens"])
    (3, 4)
    """
    static_top_k = top_k is None or isinstance(top_k, int)
    if top_k is not None and static_top_k:
        _check_static_int("top_k", top_k, 1)
    if not static_top_k:
        top_k = ops.cast(ops.convert_to_tensor(top_k), "int32")
    greedy = isinstance(temperature, (int, float)) and temperature <= 0
    if greedy:
        return greedy_search(step_fn, initial_state, start_tokens, max_length, end_token, pad_token,
                             max_lengths=max_lengths)
    seed = _seed_tensor(seed)
    static_temperature = isinstance(temperature, (int, float))
    if not static_temperature:
        temperature = ops.cast(ops.convert_to_tensor(temperature), "float32")
        if len(temperature.shape) == 1:
            temperature = temperature[:, None]

    def pick(logits, log_probs, step):
        if static_temperature:
            scaled = log_probs / float(temperature)
        else:
            # A tensor temperature <= 0 falls back to the argmax (a safe 1 avoids 0-division).
            safe = ops.where(temperature > 0, temperature, 1.0)
            scaled = log_probs / safe
        vocab_size = log_probs.shape[-1]
        if not static_top_k:
            scaled = _top_k_filter(scaled, top_k)
        elif top_k is not None and (vocab_size is None or top_k < vocab_size):
            scaled = _top_k_filter(scaled, top_k)
        drawn = ops.argmax(scaled + _gumbel_noise(seed, step, scaled), axis=-1)
        if static_temperature:
            return drawn
        sampled_rows = temperature > 0 if len(temperature.shape) == 0 else temperature[:, 0] > 0
        return ops.where(sampled_rows, drawn, ops.argmax(log_probs, axis=-1))

    return _decode_one_path(
        step_fn, initial_state, start_tokens, max_length, end_token, pad_token, pick,
        max_lengths=max_lengths,
    )


# --------------------------------------------------------------------------------------------
# Beam search.
# --------------------------------------------------------------------------------------------


def _flat_rows(beams, beam_width):
    """``[B, n]`` beam indices -> ``[B * n]`` rows of the batch-major ``[B * beam_width]`` layout."""
    offsets = ops.arange(ops.shape(beams)[0], dtype="int32") * beam_width
    return ops.reshape(beams + offsets[:, None], (-1,))


def _gather_rows(structure, rows):
    """Reorders the rows of every tensor of a nested structure (beams follow their parents)."""
    return tree.map_structure(lambda x: ops.take(x, rows, axis=0), structure)


def _keep_greedy_candidate(top, step_log_probs, is_greedy, beam_width, vocab_size, live_ranks=None,
                           not_last=None):
    """Makes sure the greedy path's next candidate is among the selected ``top`` [B, K].

    The greedy path is the one beam whose every token was the argmax of its step. If its best
    extension did not make the top K, it replaces the K-th (worst) selection; since it scored
    no better than that one, the selection stays sorted. With per-row beam widths, only the
    `live_ranks` ``[B, K]`` count and the worst live one is where `not_last` ``[B, K]`` is False.
    Returns (top, greedy candidate [B]).
    """
    greedy_beam = ops.argmax(ops.cast(ops.reshape(is_greedy, (-1, beam_width)), "int32"), axis=-1)
    greedy_beam = ops.cast(greedy_beam, "int32")
    best_tokens = ops.cast(ops.argmax(step_log_probs, axis=-1), "int32")
    best_tokens = ops.reshape(best_tokens, (-1, beam_width))
    greedy_token = _take_last(best_tokens, greedy_beam)
    candidate = greedy_beam * vocab_size + greedy_token
    if live_ranks is None:
        present = ops.any(ops.equal(top, candidate[:, None]), axis=-1)
        not_last = (ops.arange(beam_width) < beam_width - 1)[None, :]
    else:
        present = ops.any(ops.logical_and(ops.equal(top, candidate[:, None]), live_ranks), axis=-1)
    top = ops.where(ops.logical_or(present[:, None], not_last), top, candidate[:, None])
    return top, candidate


def beam_search(
    step_fn,
    initial_state,
    start_tokens,
    max_length,
    end_token,
    beam_width=4,
    length_penalty=0.0,
    num_results=None,
    pad_token=0,
    keep_greedy=True,
    beam_widths=None,
    max_lengths=None,
):
    """Beam search: the ``beam_width`` best hypotheses extended in parallel, n-best out.

    At every step each live beam proposes all V tokens; a finished beam proposes only itself
    (extended with a pad, at no cost), so finished hypotheses compete with live ones until
    the end. The K best candidates (by length-penalized score) survive. Only beam 0 starts
    live (the others start at a log-probability of ``NEG_INF``, already finished), so the
    first step does not pick K copies of the same token. The loop exits early once all beams
    have finished.

    With ``keep_greedy`` (the default), the greedy path is never dropped from the beam: when
    its next candidate is not among the K best, it takes the K-th place. Plain beam search can
    lose the greedy hypothesis early and end with a worse sequence than greedy search; with
    this safeguard the best result is never worse than greedy search, and ``beam_width=1`` is
    greedy search exactly (tokens and scores). The safeguard changes nothing when the greedy
    path is among the K best anyway, which is the common case.

    Args:
        step_fn: ``step_fn(tokens, state) -> (logits, new_state)``, called on ``B * beam_width``
            rows (batch-major), see the module docstring.
        initial_state: nested structure of tensors with leading dimension ``B``, *not* tiled:
            it is tiled per beam here (`tile_beams`).
        start_tokens: int ``[B]`` (or a scalar), the first input of the step function.
        max_length: Python int, the largest number of generated tokens.
        end_token: int, the token that ends a sequence.
        beam_width: Python int K >= 1.
        length_penalty: Python float alpha >= 0 of GNMT (Wu et al. 2016): the score of a
            hypothesis is ``log_prob / ((5 + length) / 6) ** alpha``; 0 ranks by log-prob.
            Or a float ``[B]`` tensor: one alpha per row.
        num_results: Python int <= beam_width, how many hypotheses to return per example
            (default: beam_width).
        pad_token: int written after the end token (default 0).
        keep_greedy: keep the greedy path in the beam (see above).
        beam_widths: None, or int ``[B]`` with ``1 <= beam_widths <= beam_width``: each row's
            own width, for per-request settings. The loop keeps its static ``beam_width`` slots;
            a row only keeps its first ``beam_widths[b]`` selections alive (the others are
            never selected again), which gives the result of a search with that static width:
            the same candidates, ranked the same way. Its columns past its width come last,
            with ``log_probs`` of about ``NEG_INF``.
        max_lengths: None, or int ``[B]`` (``<= max_length``): each row's own length limit
            (see `greedy_search`).

    Returns:
        dict, sorted best first along the second axis, with n = num_results:
        ``tokens`` int32 ``[B, n, max_length]``, ``lengths`` int32 ``[B, n]``,
        ``scores`` float32 ``[B, n]`` (after the length penalty) and ``log_probs`` float32
        ``[B, n]`` (raw sums of log-probabilities). When fewer than n distinct hypotheses
        exist (tiny vocabularies), the rest have ``log_probs`` of about ``NEG_INF``.

    Example:

    >>> table = ops.convert_to_tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    >>> step_fn = lambda tokens, state: (ops.take(table, tokens, axis=0), state)
    >>> out = beam_search(step_fn, ops.zeros((1, 1)), [0], 4, end_token=2, beam_width=3)
    >>> ops.shape(out["tokens"]), ops.shape(out["scores"])
    ((1, 3, 4), (1, 3))
    """
    _check_static_int("max_length", max_length, 1)
    _check_static_int("beam_width", beam_width, 1)
    num_results = beam_width if num_results is None else num_results
    _check_static_int("num_results", num_results, 1)
    if num_results > beam_width:
        raise ValueError(
            f"`num_results` must be <= beam_width={beam_width}. Received: num_results={num_results}"
        )
    if isinstance(length_penalty, (int, float)):
        if length_penalty < 0:
            raise ValueError(f"`length_penalty` must be a Python float >= 0. Received: {length_penalty!r}")
        alpha = float(length_penalty)
    else:  # one per row, repeated per beam below
        alpha = ops.cast(ops.convert_to_tensor(length_penalty), "float32")
    state, start = _prepare(initial_state, start_tokens)
    end_token = ops.convert_to_tensor(end_token, "int32")
    if not isinstance(alpha, float):
        alpha = tile_beams(ops.reshape(alpha, ops.shape(start)), beam_width)
    max_lengths = _row_max_lengths(max_lengths, start)
    if max_lengths is not None:
        max_lengths = tile_beams(max_lengths, beam_width)

    state = tile_beams(state, beam_width)
    tokens = tile_beams(start, beam_width)
    # The beam index of every row: 0, 1, ..., K-1, 0, 1, ...
    beam_index = ops.reshape(
        ops.zeros_like(start)[:, None] + ops.arange(beam_width, dtype="int32")[None, :], (-1,)
    )
    first = ops.equal(beam_index, 0)
    # Per-row settings. Every op of the loop's body runs at every step, and so does the carrying
    # of every tensor the body reads from outside (a loop variable of its own): the body reads
    # few of them, and derives the rest with cheap ops.
    live = last_ranks = stop_steps = alpha_column = None
    if beam_widths is not None:  # slot k of row b is live when k < beam_widths[b]
        widths = ops.reshape(ops.cast(ops.convert_to_tensor(beam_widths), "int32"), ops.shape(start))
        live = beam_index < tile_beams(widths, beam_width)
        last_ranks = (widths - 1)[:, None]  # [B, 1], the rank of a row's worst live selection
    if max_lengths is not None or live is not None:
        # The last step of every slot: its row's length limit, and for a slot past its row's
        # width none at all (-1: finished from the start, it never stops the loop).
        stop_steps = ops.full_like(beam_index, max_length - 1) if max_lengths is None else max_lengths - 1
        if live is not None:
            stop_steps = ops.where(live, stop_steps, -1)
    if not isinstance(alpha, float):
        alpha_column = alpha[:, None]
    log_probs = ops.where(first, 0.0, NEG_INF)
    finished = ops.logical_not(first)
    is_greedy = first
    lengths = ops.zeros_like(tokens)
    buffer = _empty_buffer(tokens, max_length, pad_token)
    step = ops.convert_to_tensor(0, "int32")

    def cond(step, tokens, state, buffer, lengths, log_probs, finished, is_greedy):
        return ops.logical_and(step < max_length, ops.logical_not(ops.all(finished)))

    def body(step, tokens, state, buffer, lengths, log_probs, finished, is_greedy):
        logits, state = step_fn(tokens, state)
        step_log_probs = _log_softmax(logits)  # [N, V]
        vocab_size = step_log_probs.shape[-1]
        if vocab_size is None:
            raise ValueError("beam_search needs logits with a static vocabulary size [N, V].")
        # A finished beam proposes only itself; the end token's column carries that proposal.
        stay = ops.where(ops.arange(vocab_size) == end_token, 0.0, NEG_INF)
        step_log_probs = ops.where(finished[:, None], stay[None, :], step_log_probs)
        candidate_log_probs = log_probs[:, None] + step_log_probs  # [N, V]
        candidate_lengths = lengths + ops.cast(ops.logical_not(finished), "int32")  # [N]
        candidate_scores = _penalized(
            candidate_log_probs, candidate_lengths[:, None], alpha if alpha_column is None else alpha_column
        )
        live_ranks = not_last = None
        if live is not None:  # a slot past its row's width proposes nothing
            ranks = ops.arange(beam_width, dtype="int32")[None, :]
            live_ranks, not_last = ranks <= last_ranks, ops.not_equal(ranks, last_ranks)  # [B, K]
            candidate_scores = ops.where(ops.reshape(live_ranks, (-1, 1)), candidate_scores, float("-inf"))

        flat_scores = ops.reshape(candidate_scores, (-1, beam_width * vocab_size))
        top = ops.cast(ops.top_k(flat_scores, beam_width)[1], "int32")  # [B, K], best first
        if keep_greedy:
            top, greedy_candidate = _keep_greedy_candidate(
                top, step_log_probs, is_greedy, beam_width, vocab_size, live_ranks, not_last
            )
            # (With per-row widths, a copy of the candidate past a row's width comes after the
            # live one, which `argmax` finds first.)
            is_greedy = ops.reshape(ops.equal(top, greedy_candidate[:, None]), (-1,))

        rows = _flat_rows(top // vocab_size, beam_width)  # [N], the parent of each new beam
        new_tokens = ops.reshape(top % vocab_size, (-1,))
        log_probs = ops.reshape(
            ops.take_along_axis(
                ops.reshape(candidate_log_probs, (-1, beam_width * vocab_size)), top, axis=-1
            ),
            (-1,),
        )
        was_finished = ops.take(finished, rows, axis=0)
        lengths = ops.take(candidate_lengths, rows, axis=0)
        buffer = _write_column(
            ops.take(buffer, rows, axis=0), step, ops.where(was_finished, pad_token, new_tokens)
        )
        finished = ops.logical_or(was_finished, ops.equal(new_tokens, end_token))
        if stop_steps is not None:  # a row's own limit ends it as the loop's end would
            finished = ops.logical_or(finished, step >= stop_steps)
        state = _gather_rows(state, rows)
        return step + 1, new_tokens, state, buffer, lengths, log_probs, finished, is_greedy

    _, _, _, buffer, lengths, log_probs, _, _ = ops.while_loop(
        cond,
        body,
        (step, tokens, state, buffer, lengths, log_probs, finished, is_greedy),
        maximum_iterations=max_length,
    )

    # Final ranking by penalized score (already the loop's order; sorting again is cheap).
    if live is not None:  # what the slots past a row's width hold ranks last, as impossible
        log_probs = ops.where(live, log_probs, NEG_INF)
    scores = _penalized(log_probs, lengths, alpha)
    if live is None:
        scores, order = ops.top_k(ops.reshape(scores, (-1, beam_width)), num_results)
        rows = _flat_rows(ops.cast(order, "int32"), beam_width)
    else:  # the live slots first
        order = ops.top_k(ops.reshape(ops.where(live, scores, float("-inf")), (-1, beam_width)), num_results)[1]
        rows = _flat_rows(ops.cast(order, "int32"), beam_width)
        scores = ops.reshape(ops.take(scores, rows, axis=0), (-1, num_results))
    buffer, lengths, log_probs = _gather_rows((buffer, lengths, log_probs), rows)
    return {
        "tokens": ops.reshape(buffer, (-1, num_results, max_length)),
        "lengths": ops.reshape(lengths, (-1, num_results)),
        "scores": scores,
        "log_probs": ops.reshape(log_probs, (-1, num_results)),
    }


# --------------------------------------------------------------------------------------------
# Scoring given outputs.
# --------------------------------------------------------------------------------------------


def score_sequences(step_fn, initial_state, start_tokens, tokens, lengths):
    """Log-probability of given output sequences, step by step with the outputs fed back.

    The step-wise counterpart of a teacher-forced pass: ``score = sum_{t < length}
    log P(y_t | start, y_1..y_{t-1})``. The decoders' ``scores`` are these values for the
    sequences they return, which makes it a check of a model's parallel (teacher-forced)
    scoring too.

    Args:
        step_fn: ``step_fn(tokens, state) -> (logits, new_state)``.
        initial_state: nested structure of tensors with leading dimension ``B``.
        start_tokens: int ``[B]`` (or a scalar), the first input of the step function.
        tokens: int ``[B, T]``, the outputs (after the start token).
        lengths: int ``[B]``, how many of them count (``<= T``).

    Returns:
        float32 ``[B]``.

    Example:

    >>> table = ops.convert_to_tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
    >>> step_fn = lambda tokens, state: (ops.take(table, tokens, axis=0), state)
    >>> out = greedy_search(step_fn, ops.zeros((1, 1)), [0], 4, end_token=2)
    >>> s = score_sequences(step_fn, ops.zeros((1, 1)), [0], out["tokens"], out["lengths"])
    """
    state, start = _prepare(initial_state, start_tokens)
    tokens = ops.cast(ops.convert_to_tensor(tokens), "int32")
    lengths = ops.cast(ops.convert_to_tensor(lengths), "int32")
    num_steps = tokens.shape[-1]
    scores = ops.zeros_like(start, dtype="float32")

    def body(step, carry):
        inputs, state, scores = carry
        logits, state = step_fn(inputs, state)
        counted = step < lengths
        # Past a sequence's end, use its last token rather than a possibly invalid pad.
        targets = ops.where(counted, ops.take(tokens, step, axis=1), inputs)
        scores = scores + ops.where(counted, _take_last(_log_softmax(logits), targets), 0.0)
        inputs = targets
        return inputs, state, scores

    _, _, scores = ops.fori_loop(0, num_steps, body, (start, state, scores))
    return scores
