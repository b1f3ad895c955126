"""Toy models and NumPy references for tests/decoding/test_decoding.py (backend-agnostic, no pytest).

Imported by the test module and by the JAX subprocess it starts, so it only uses NumPy and
`keras.ops` and reads no backend at import time.
"""

import itertools

import numpy as np
from keras import ops


class ToyRNN:
    """A small Elman-style decoder with a carried "encoder memory", in NumPy and keras.ops.

    h' = tanh(E[token] + h W + c),   c = masked mean of memory rows,   logits = scale * h' U.

    The state is nested, ``{"h": [N, H], "memory": ([N, M, H], mask [N, M])}``: the memory and
    its mask are only carried through, as an attention decoder's encoder outputs would be, and
    make every example's distribution different (so wrongly tiled or gathered beams show up).
    """

    def __init__(self, vocab_size=4, units=5, memory_length=3, batch_size=3, scale=2.0, seed=0):
        rng = np.random.default_rng(seed)
        self.vocab_size = vocab_size
        self.embedding = rng.normal(size=(vocab_size, units)).astype("float32")
        self.recurrent = (0.6 * rng.normal(size=(units, units))).astype("float32")
        self.output = (scale * rng.normal(size=(units, vocab_size))).astype("float32")
        self.h0 = (0.5 * rng.normal(size=(batch_size, units))).astype("float32")
        self.memory = rng.normal(size=(batch_size, memory_length, units)).astype("float32")
        mask = np.ones((batch_size, memory_length), "float32")
        mask[0, -1] = 0.0
        self.mask = mask
        self.start = (np.arange(batch_size) % vocab_size).astype("int32")

    # --- keras.ops ---------------------------------------------------------------------------

    def initial_state(self):
        return {"h": self.h0, "memory": (self.memory, self.mask)}

    def step_fn(self, tokens, state):
        memory, mask = state["memory"]
        context = ops.sum(memory * mask[:, :, None], axis=1) / ops.sum(mask, axis=1, keepdims=True)
        h = ops.tanh(
            ops.take(ops.convert_to_tensor(self.embedding), tokens, axis=0)
            + ops.matmul(state["h"], ops.convert_to_tensor(self.recurrent))
            + context
        )
        logits = ops.matmul(h, ops.convert_to_tensor(self.output))
        return logits, {"h": h, "memory": (memory, mask)}

    # --- NumPy (float64), one example at a time ------------------------------------------------

    def np_initial(self, b):
        return self.h0[b].astype("float64")

    def np_step(self, b, token, h):
        """(log-probabilities [V], new h) for example ``b``."""
        m = self.mask[b]
        context = (self.memory[b] * m[:, None]).sum(0) / m.sum()
        h = np.tanh(self.embedding[token] + h @ self.recurrent + context)
        logits = h @ self.output.astype("float64")
        logits = logits - logits.max()
        return logits - np.log(np.exp(logits).sum()), h


class ToyTable:
    """logits = log(table[position, previous token]); the state is the position counter.

    Handy to write down a distribution by hand (e.g. a case where plain beam search loses to
    greedy search).
    """

    def __init__(self, probs, start):
        probs = np.asarray(probs, "float64")
        self.num_positions, self.vocab_size = probs.shape[0], probs.shape[-1]
        self.log_table = np.log(probs).reshape(-1, self.vocab_size).astype("float32")
        self.np_log_probs = np.log(probs)
        self.start = np.asarray(start, "int32")

    def initial_state(self):
        return {"position": np.zeros_like(self.start)}

    def step_fn(self, tokens, state):
        position = state["position"]
        index = ops.minimum(position, self.num_positions - 1) * self.vocab_size + tokens
        logits = ops.take(ops.convert_to_tensor(self.log_table), index, axis=0)
        return logits, {"position": position + 1}

    def np_initial(self, b):
        return 0

    def np_step(self, b, token, position):
        row = self.np_log_probs[min(position, self.num_positions - 1), token]
        return row - np.log(np.exp(row).sum()), position + 1


# --- References ---------------------------------------------------------------------------------


def np_greedy(model, max_length, end_token, pad_token):
    """Greedy decoding by a plain Python loop: (tokens [B, L], lengths [B], scores [B])."""
    batch = len(model.start)
    tokens = np.full((batch, max_length), pad_token, "int64")
    lengths = np.zeros(batch, "int64")
    scores = np.zeros(batch)
    for b in range(batch):
        state, previous = model.np_initial(b), int(model.start[b])
        for t in range(max_length):
            log_probs, state = model.np_step(b, previous, state)
            previous = int(np.argmax(log_probs))
            tokens[b, t], lengths[b], scores[b] = previous, t + 1, scores[b] + log_probs[previous]
            if previous == end_token:
                break
    return tokens, lengths, scores


def np_sequence_log_prob(model, b, sequence):
    state, previous, total = model.np_initial(b), int(model.start[b]), 0.0
    for token in sequence:
        log_probs, state = model.np_step(b, previous, state)
        total += log_probs[token]
        previous = int(token)
    return total


def all_sequences(vocab_size, max_length, end_token):
    """Every valid output: ends with end_token (nowhere earlier), or has max_length tokens."""
    others = [v for v in range(vocab_size) if v != end_token]
    for length in range(1, max_length + 1):
        for body in itertools.product(others, repeat=length - 1):
            yield body + (end_token,)
    yield from itertools.product(others, repeat=max_length)


def gnmt_penalty(length, alpha):
    return ((5.0 + length) / 6.0) ** alpha


def np_ranked(model, b, max_length, end_token, alpha=0.0):
    """All valid outputs of example ``b`` ranked by penalized score: [(score, log_prob, seq)]."""
    ranked = []
    for seq in all_sequences(model.vocab_size, max_length, end_token):
        log_prob = np_sequence_log_prob(model, b, seq)
        ranked.append((log_prob / gnmt_penalty(len(seq), alpha), log_prob, seq))
    ranked.sort(key=lambda item: -item[0])
    return ranked


def check_well_formed(tokens, lengths, max_length, end_token, pad_token):
    """Sequences end at their first end token or at max_length; pads after the end."""
    tokens = np.asarray(tokens).reshape(-1, max_length)
    lengths = np.asarray(lengths).reshape(-1)
    for row, length in zip(tokens, lengths):
        assert 1 <= length <= max_length
        body = list(row[:length])
        assert end_token not in body[:-1], (row, length)
        if length < max_length:
            assert body[-1] == end_token, (row, length)
        assert np.all(row[length:] == pad_token), (row, length)
