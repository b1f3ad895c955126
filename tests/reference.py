"""NumPy references written straight from the book's equations, one time step at a time, in float64.

Independent of keras_seq: they take the weights by their book names (U^f, W^f, b^f, ...) and loop
over time with plain NumPy. Masked steps carry the state and the last valid output forward (zeros
before the first valid step), as `keras.layers.RNN` does.
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


ACTIVATIONS = {"sigmoid": sigmoid, "tanh": np.tanh, "linear": lambda a: a}


def softmax(o):
    e = np.exp(o - o.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def run(step, x, states, mask=None, go_backwards=False):
    """Loop `output, states = step(x_t, states)`; returns (outputs (B, T, n), final states)."""
    x = np.asarray(x, np.float64)
    B, T = x.shape[:2]
    mask = np.ones((B, T), bool) if mask is None else np.asarray(mask, bool)
    order = range(T - 1, -1, -1) if go_backwards else range(T)
    outputs, last = [], None
    for t in order:
        out, new_states = step(x[:, t], states)
        m = mask[:, t][:, None]
        if last is None:
            last = np.zeros_like(out)
        last = np.where(m, out, last)
        states = [np.where(m, n, s) for n, s in zip(new_states, states)]
        outputs.append(last)
    return np.stack(outputs, 1), states


def elman_step(w, activation="tanh", output_activation=None):
    """Eq. 10.8-10.11 with weights {'U', 'W', 'b'} and optionally {'V', 'c'}."""

    def step(x, states):
        (h,) = states
        a = w["b"] + h @ w["W"] + x @ w["U"]  # 10.8
        h = ACTIVATIONS[activation](a)  # 10.9
        if "V" in w:
            o = w["c"] + h @ w["V"]  # 10.10
            return (softmax(o) if output_activation == "softmax" else o), [h]  # 10.11
        return h, [h]

    return step


def output_feedback_step(w):
    """Fig. 10.4: h = tanh(b + W o(t-1) + U x), o = c + V h, output softmax(o)."""

    def step(x, states):
        (o_prev,) = states
        h = np.tanh(w["b"] + o_prev @ w["W"] + x @ w["U"])
        o = w["c"] + h @ w["V"]
        return softmax(o), [o]

    return step


def lstm_step(w, candidate="sigmoid"):
    """Eq. 10.40-10.44 with weights U_f, W_f, b_f, U_g, W_g, b_g, U, W, b, U_o, W_o, b_o."""

    def step(x, states):
        h, s = states
        f = sigmoid(w["b_f"] + x @ w["U_f"] + h @ w["W_f"])  # 10.41
        g = sigmoid(w["b_g"] + x @ w["U_g"] + h @ w["W_g"])  # 10.42
        q = sigmoid(w["b_o"] + x @ w["U_o"] + h @ w["W_o"])  # 10.44
        s = f * s + g * ACTIVATIONS[candidate](w["b"] + x @ w["U"] + h @ w["W"])  # 10.40
        h = np.tanh(s) * q  # 10.43
        return h, [h, s]

    return step


def gru_step(w, candidate="sigmoid"):
    """Eq. 10.45-10.47 with weights U_u, W_u, b_u, U_r, W_r, b_r, U, W, b."""

    def step(x, states):
        (h,) = states
        u = sigmoid(w["b_u"] + x @ w["U_u"] + h @ w["W_u"])  # 10.46
        r = sigmoid(w["b_r"] + x @ w["U_r"] + h @ w["W_r"])  # 10.47
        h = u * h + (1 - u) * ACTIVATIONS[candidate](w["b"] + x @ w["U"] + (r * h) @ w["W"])  # 10.45
        return h, [h]

    return step


def book_weights(cell, names):
    """The cell's weights by book name, as float64 NumPy arrays (read through the cell's views)."""
    return {name: np.asarray(getattr(cell, name), np.float64) for name in names}


LSTM_NAMES = ["U_f", "W_f", "b_f", "U_g", "W_g", "b_g", "U", "W", "b", "U_o", "W_o", "b_o"]
GRU_NAMES = ["U_u", "W_u", "b_u", "U_r", "W_r", "b_r", "U", "W", "b"]
ELMAN_NAMES = ["U", "W", "b"]
