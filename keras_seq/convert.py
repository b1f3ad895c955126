"""Weight converters between the book layers and Keras's (and PyTorch's) LSTM and GRU.

The book's LSTM and GRU with `candidate_activation="tanh"` compute exactly what the usual
implementations compute, with the same fused weights:

- `keras.layers.LSTM` and the book's `LSTM` fuse [i | f | c | o]: Keras's input gate i is the
  book's g, its output gate o the book's q (`set_weights(keras_lstm.get_weights())` works as is).
- `keras.layers.GRU(reset_after=False)` fuses [z | r | h], which is the book's [u | r | (candidate)]:
  Keras's update gate z is the book's u, with the same convention h = z h(t-1) + (1-z) h̃. Keras's
  default `reset_after=True` converts to the book GRU's non-book option `reset_after=True`.
- `torch.nn.LSTM` stores `weight_ih_l0` (4H, I) and `weight_hh_l0` (4H, H) in the same order
  [i | f | g | o], transposed, and two biases that add up.
- `torch.nn.GRU` computes the candidate as tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)) (Keras's
  `reset_after=True`), which is not eq. 10.45's σ(b + U x + W (r ⊙ h)) for any weights; it converts
  to the book GRU's non-book option `GRU(reset_after=True)` (gate order [r | z | n] -> [z | r | n],
  the two biases as the rows of Keras's (2, 3 units) bias).
"""

import numpy as np

from keras_seq.layers import GRU, LSTM

def _shared_config(layer):
    config = layer.get_config()
    keep = (
        "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
        "recurrent_initializer", "bias_initializer", "kernel_regularizer", "recurrent_regularizer",
        "bias_regularizer", "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
        "recurrent_dropout", "seed", "return_sequences", "return_state", "go_backwards", "stateful",
        "unroll", "name", "trainable", "dtype",
    )
    return {k: config[k] for k in keep if k in config}


def _built(layer, input_dim):
    if not layer.built:
        layer.build((None, None, input_dim))
    return layer


def from_keras(layer):
    """A book `LSTM`/`GRU` (tanh candidate) computing what a built `keras.layers.LSTM`/`GRU` computes."""
    import keras

    if not layer.built:
        raise ValueError(f"Build or call {layer.name!r} before converting it: it has no weights yet.")
    kernel, recurrent_kernel, *bias = [np.asarray(w) for w in layer.get_weights()]
    config = _shared_config(layer)
    if isinstance(layer, keras.layers.LSTM):
        config["unit_forget_bias"] = layer.cell.unit_forget_bias
        book = LSTM(candidate_activation="tanh", **config)
    elif isinstance(layer, keras.layers.GRU):
        book = GRU(candidate_activation="tanh", reset_after=layer.cell.reset_after,
                   **{k: v for k, v in config.items() if k != "activation"})
        if config.get("activation", "tanh") != "tanh":
            raise ValueError(f"Only tanh candidates convert, got activation={config['activation']!r}.")
    else:
        raise ValueError(f"Expected a keras.layers.LSTM or keras.layers.GRU, got {type(layer).__name__}.")
    _built(book, kernel.shape[0]).set_weights([kernel, recurrent_kernel, *bias])
    return book


def to_keras(layer):
    """A `keras.layers.LSTM`/`GRU` computing what a built book layer computes.

    Only book layers with `candidate_activation="tanh"` have a Keras equivalent.
    """
    import keras

    if not layer.built:
        raise ValueError(f"Build or call {layer.name!r} before converting it: it has no weights yet.")
    if layer.cell.candidate_activation_name != "tanh":
        raise ValueError(
            "Only book layers with candidate_activation='tanh' have a Keras equivalent; "
            f"{layer.name!r} uses {layer.cell.candidate_activation_name!r}."
        )
    kernel, recurrent_kernel, *bias = [np.asarray(w) for w in layer.get_weights()]
    config = _shared_config(layer)
    if isinstance(layer, LSTM):
        if layer.cell.activation_name != "tanh":
            raise ValueError("Keras's LSTM uses one activation for the candidate and the state: tanh.")
        config["unit_forget_bias"] = layer.cell.unit_forget_bias
        out = keras.layers.LSTM(use_cudnn=False, **config)
    elif isinstance(layer, GRU):
        out = keras.layers.GRU(reset_after=layer.cell.reset_after, use_cudnn=False, **config)
    else:
        raise ValueError(f"Expected a keras_seq.layers.LSTM or GRU, got {type(layer).__name__}.")
    _built(out, kernel.shape[0]).set_weights([kernel, recurrent_kernel, *bias])
    return out


def from_torch_lstm_state_dict(state_dict, **layer_kwargs):
    """A book `LSTM` (tanh candidate) from a one-layer `torch.nn.LSTM(batch_first=True)` state dict.

    `state_dict` maps `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0` to tensors or arrays.
    """
    get = _torch_state(state_dict, "LSTM")
    w_ih, w_hh = get("weight_ih_l0"), get("weight_hh_l0")
    units = w_hh.shape[1]
    has_bias = "bias_ih_l0" in state_dict
    book = LSTM(units, candidate_activation="tanh", use_bias=has_bias, **layer_kwargs)
    weights = [w_ih.T, w_hh.T]
    if has_bias:
        weights.append(get("bias_ih_l0") + get("bias_hh_l0"))
    _built(book, w_ih.shape[1]).set_weights(weights)
    return book


def to_torch_lstm_state_dict(layer):
    """The `torch.nn.LSTM` state dict (NumPy arrays; `torch.from_numpy` them) of a book `LSTM`."""
    if not isinstance(layer, LSTM) or layer.cell.candidate_activation_name != "tanh":
        raise ValueError("Only a keras_seq.layers.LSTM with candidate_activation='tanh' converts to torch.")
    kernel, recurrent_kernel, *bias = [np.asarray(w) for w in layer.get_weights()]
    state = {
        "weight_ih_l0": kernel.T.copy(),
        "weight_hh_l0": recurrent_kernel.T.copy(),
    }
    if bias:
        state["bias_ih_l0"] = bias[0].copy()
        state["bias_hh_l0"] = np.zeros_like(bias[0])
    return state


def _torch_state(state_dict, kind):
    """`get(key)` reading a one-layer, one-direction torch RNN state dict as NumPy arrays."""
    def get(key):
        value = state_dict[key]
        return np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value)

    missing = [k for k in ("weight_ih_l0", "weight_hh_l0") if k not in state_dict]
    if missing:
        raise ValueError(f"Not a torch.nn.{kind} state dict: missing {missing}.")
    if any(k.endswith("_l1") or "reverse" in k for k in state_dict):
        raise ValueError(f"Only one-layer, one-direction torch {kind}s convert; split stacked ones first.")
    return get


def from_torch_gru_state_dict(state_dict, **layer_kwargs):
    """A book `GRU(reset_after=True, candidate_activation="tanh")` (Keras's default GRU, not the
    book's eq. 10.45) from a one-layer `torch.nn.GRU(batch_first=True)` state dict."""
    get = _torch_state(state_dict, "GRU")
    w_ih, w_hh = get("weight_ih_l0"), get("weight_hh_l0")
    to_keras = [1, 0, 2]  # torch [r | z | n] -> Keras's and the book's [z | r | n] = [u | r | c]

    def reorder(array):
        blocks = np.split(array, 3, axis=-1)
        return np.concatenate([blocks[i] for i in to_keras], axis=-1)

    has_bias = "bias_ih_l0" in state_dict
    book = GRU(w_hh.shape[1], candidate_activation="tanh", reset_after=True, use_bias=has_bias, **layer_kwargs)
    weights = [reorder(w_ih.T), reorder(w_hh.T)]
    if has_bias:
        weights.append(np.stack([reorder(get("bias_ih_l0")), reorder(get("bias_hh_l0"))]))
    _built(book, w_ih.shape[1]).set_weights(weights)
    return book
