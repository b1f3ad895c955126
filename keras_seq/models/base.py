"""What the models of `keras_seq.models` share: choosing the recurrent layer, the output layer,
shifting targets for teacher forcing, and the free-running loop that feeds a model its own outputs.
"""

import keras
from keras import ops

from keras_seq.cells.lstm import GATE_ORDER, GATE_ORDER_KEY, from_config_in_gate_order
from keras_seq.layers import sequence_layer_class
from keras_seq.layers.base import scan
from keras_seq.models.optimizers import jax_train_step_with_slices


class BookModel(keras.Model):
    """Base of the models of `keras_seq.models`: their configs say in which gate order their LSTM
    weights are saved (`lstm_gate_order`, Keras's [i|f|c|o]).

    A model's config does not hold its layers' configs (the model makes them from its own
    arguments), so it carries the mark itself: a config without it was saved by keras-seq before
    the LSTM's weights moved to Keras's order, and the model is made inside
    `keras_seq.cells.lstm.legacy_gate_order()`, so that its LSTM cells reorder the weights they load.
    """

    def get_config(self):
        return {**super().get_config(), GATE_ORDER_KEY: GATE_ORDER}

    def train_step(self, *args):
        # On JAX, `SliceAdam` needs the per-occurrence squares of the embedding gradients, which
        # only a training step that differentiates the lookups can give (TensorFlow gives them as
        # tf.IndexedSlices).
        if keras.backend.backend() == "jax" and getattr(
                getattr(self.optimizer, "inner_optimizer", self.optimizer), "embedding_slices", False):
            return jax_train_step_with_slices(self, *args)
        return super().train_step(*args)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        def build(config):
            return super(BookModel, cls).from_config(config, custom_objects=custom_objects)

        return from_config_in_gate_order(build, config, legacy=GATE_ORDER_KEY not in config)


def recurrent_layer(cell, units, cell_options=None, **kwargs):
    """The fast layer of the cell type named `cell` (`ElmanRNN`, `LSTM`, `GRU`, or any layer
    registered with `keras_seq.layers.register_sequence_layer`).

    `cell_options` are further arguments of the cell (e.g. `{"candidate_activation": "tanh"}`,
    `{"dropout": 0.1}`); `kwargs` are those of `keras.layers.RNN` (`return_sequences`, ...).
    A model passes `dtype=self.dtype_policy` to every sublayer it makes, so that a model saved
    under a mixed policy reloads with it in every layer.
    """
    return sequence_layer_class(cell)(units, **dict(cell_options or {}), **kwargs)


def output_layer(output_units, output_activation, name="output_layer", dtype=None):
    """o(t) = c + V h(t), ŷ(t) = output_activation(o(t)) (eq. 10.10-10.11): V is the kernel, c the bias."""
    return keras.layers.Dense(output_units, activation=output_activation, name=name, dtype=dtype)


def check_keys(keys, key):
    """A ValueError unless the input dict has `key` and at most "targets" besides."""
    if key not in keys or set(keys) - {key, "targets"}:
        raise ValueError(
            f"Expected inputs {{'{key}': ..., 'targets': ...}} ('targets' optional), got keys "
            f"{sorted(keys)}."
        )


def split_inputs(inputs, key):
    """`(inputs[key], inputs.get("targets"))` for a dict, `(inputs, None)` for a single tensor."""
    if isinstance(inputs, dict):
        check_keys(inputs, key)
        return inputs[key], inputs.get("targets")
    return inputs, None


def input_shapes(input_shape, key):
    """The shapes of `inputs[key]` and of the targets (None if absent), from a build shape."""
    if isinstance(input_shape, dict):
        check_keys(input_shape, key)
        return tuple(input_shape[key]), input_shape.get("targets")
    return tuple(input_shape), None


def step_mask_of(mask):
    """The (batch, time) mask of the sequence input, from a mask given as a tensor or a dict."""
    if isinstance(mask, dict):
        mask = mask.get("inputs", mask.get("targets"))
    return mask


def previous_outputs(targets, output_units, dtype="float32"):
    """y(t-1) for every step t as one-hot vectors, zeros at the first step (teacher forcing).

    `targets` holds class indices, shape (batch, time); the result has shape
    (batch, time, output_units): [0, y(1), ..., y(T-1)].
    """
    y = ops.one_hot(ops.cast(targets, "int32"), output_units, dtype=dtype)
    return ops.pad(y[:, :-1], [[0, 0], [1, 0], [0, 0]])


class FeedbackModel(BookModel):
    """Base of the models whose previous output y(t-1) enters the hidden units (Fig. 10.4-10.10).

    Subclasses implement `get_initial_state(batch_size)` and `step(x, y_prev, states)`, one step of
    their recurrence given the step's input and the previous output as a one-hot vector; in
    training they feed the true y(t-1) for all steps at once (teacher forcing, Fig. 10.6).
    `free_run` loops over `step` feeding back the model's own most probable output instead.
    """

    def free_run(self, step_inputs, mask=None):
        """Free-running pass (Fig. 10.6, test time): ŷ(t) for every step, with y(t-1) = argmax ŷ(t-1).

        `step_inputs` are the inputs of every step, shape (batch, time, features). Masked steps
        (mask False) keep the state and the fed-back output of the last valid step. One compiled
        loop (the fast layers' `scan`: `tf.while_loop` or `jax.lax.scan`); returns ŷ of shape (batch, time, output_units).
        """
        dtype = self.compute_dtype
        batch_size = ops.shape(step_inputs)[0]
        y0 = ops.zeros((batch_size, self.output_units), dtype=dtype)
        carry = [y0, list(self.get_initial_state(batch_size))]
        xs = [ops.transpose(step_inputs, (1, 0, 2))]
        if mask is not None:
            xs.append(ops.expand_dims(ops.transpose(ops.cast(mask, "bool")), -1))
        # (`keras.ops.scan` would need the per-step outputs to have the carry's structure.)

        def body(carry, x):
            y_prev, states = carry
            y_hat, new_states = self.step(x[0], y_prev, states)
            y_fed = ops.one_hot(ops.argmax(y_hat, axis=-1), self.output_units, dtype=dtype)
            if mask is not None:
                y_fed = ops.where(x[1], y_fed, y_prev)
                new_states = [ops.where(x[1], new, old) for new, old in zip(new_states, states)]
            return [y_fed, list(new_states)], [y_hat]

        _, (y_hats,) = scan(body, carry, xs, 1)
        return ops.transpose(y_hats, (1, 0, 2))
