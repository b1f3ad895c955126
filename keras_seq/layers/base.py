"""The machinery shared by the fast full-sequence layers.

A fast layer computes the input projection z(t) = b + U x(t) of all time steps in one matrix product,
keeps only the recurrent product and the gate arithmetic inside the loop, and differentiates the loop
with a hand-written backward pass (`gradient`): one step back per time step computing the
pre-activation gradients dA(t) and dh(t-1) = dA(t) Wᵀ, then the weight gradient dW = Σ h(t-1)ᵀ dA(t)
as one large product after the loop, rather than one small product per step as automatic
differentiation does. cuDNN trains the same way.

Two backend-specific pieces, both small, live here:
- `scan`: a loop over the leading (time) axis collecting per-step outputs (`tf.while_loop` with
  TensorArrays on TensorFlow, `jax.lax.scan` on JAX, a Python loop elsewhere).
- `with_gradient`: attaches a hand-written gradient (`tf.custom_gradient` / `jax.custom_vjp`).
Everything else is `keras.ops`, so the layers run on TensorFlow and JAX alike.
"""

import keras
from keras import ops
from keras import tree

from keras_seq.cells.base import derivative_from_output

# Arguments of `keras.layers.Layer` itself; every other keyword of a fast layer belongs to its cell.
_LAYER_KWARGS = (
    "name", "dtype", "trainable", "autocast", "activity_regularizer", "input_shape", "input_dim",
    "batch_input_shape", "batch_size",
)


def scan(step, init, xs, num_outputs, reverse=False):
    """Loop `carry, ys = step(carry, x)` over the leading axis of the tensors in the list `xs`.

    `ys` is a list of `num_outputs` tensors, each of the dtype of the first carried tensor. Returns
    `(carry, ys)` with each per-step output stacked along a new leading axis; `reverse=True` walks
    from the last step to the first (outputs stay in time order).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        from jax import lax

        return lax.scan(step, init, xs, reverse=reverse)
    if backend == "tensorflow":
        return _tf_scan(step, init, xs, num_outputs, reverse)
    steps = range(xs[0].shape[0] - 1, -1, -1) if reverse else range(xs[0].shape[0])
    carry, outputs = init, {}
    for t in steps:
        carry, outputs[t] = step(carry, [x[t] for x in xs])
    return carry, [ops.stack([outputs[t][i] for t in sorted(outputs)]) for i in range(num_outputs)]


def _tf_scan(step, init, xs, num_outputs, reverse):
    import tensorflow as tf

    n = tf.shape(xs[0])[0]
    inputs = [tf.TensorArray(x.dtype, size=n, element_shape=x.shape[1:]).unstack(x) for x in xs]
    dtype = tree.flatten(init)[0].dtype
    outputs = [tf.TensorArray(dtype, size=n) for _ in range(num_outputs)]

    def body(t, carry, outputs):
        carry, ys = step(carry, [ta.read(t) for ta in inputs])
        outputs = [ta.write(t, y) for ta, y in zip(outputs, ys)]
        return (t - 1 if reverse else t + 1), carry, outputs

    _, carry, outputs = tf.while_loop(
        lambda t, *_: (t >= 0) if reverse else (t < n),
        body,
        (n - 1 if reverse else tf.constant(0), init, outputs),
    )
    return carry, [ta.stack() for ta in outputs]


def with_gradient(forward, backward):
    """The function `forward(*args)[0]` differentiated by `backward(args, residuals, upstream)`.

    `forward(*args)` returns `(outputs, residuals)`: a list of output tensors and whatever the
    backward pass needs. `backward` returns one gradient per argument (zeros for constants).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.custom_gradient
        def fn(*args):
            outputs, residuals = forward(*args)

            def grad(*upstream):
                upstream = [ops.zeros_like(o) if u is None else u for u, o in zip(upstream, outputs)]
                return list(backward(args, residuals, upstream))

            return outputs, grad

        return fn
    if backend == "jax":
        import jax

        fn = jax.custom_vjp(lambda *args: forward(*args)[0])

        def fn_forward(*args):
            outputs, residuals = forward(*args)
            return outputs, (args, residuals)

        def fn_backward(saved, upstream):
            args, residuals = saved
            return tuple(backward(args, residuals, list(upstream)))

        fn.defvjp(fn_forward, fn_backward)
        return fn
    return lambda *args: forward(*args)[0]


def time_major(x):
    return ops.transpose(x, (1, 0, 2))


def sum_over_steps(a, b):
    """Σ_t a(t)ᵀ b(t) for a of shape (T, B, m) and b of shape (T, B, n): one (m, n) product."""
    return ops.matmul(ops.transpose(ops.reshape(a, (-1, a.shape[-1]))), ops.reshape(b, (-1, b.shape[-1])))


def shift_in(first, sequence):
    """[first, sequence[0], ..., sequence[T-2]]: the previous step's value at every step."""
    return ops.concatenate([first[None], sequence[:-1]], axis=0)


class SequenceLayer(keras.layers.RNN):
    """A `keras.layers.RNN` over a book cell, with a fast full-sequence loop.

    Subclasses set `cell_class` and implement `backward(...)` (the hand-written gradient of the
    recurrence). Everything a `keras.layers.RNN` offers — `return_sequences`, `return_state`,
    `go_backwards`, `stateful`, masks, `initial_state`, dropout, `keras.layers.Bidirectional` — works
    as in Keras; the arithmetic equals the cell's inside `keras.layers.RNN`.

    `unroll=True` (or an activation without a known derivative, for the hand-written gradient)
    falls back to Keras's generic loop over the cell, or to automatic differentiation of the fast
    loop.
    """

    cell_class = None

    def __init__(
        self,
        units,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        zero_output_for_mask=False,
        **kwargs,
    ):
        layer_kwargs = {k: kwargs.pop(k) for k in _LAYER_KWARGS if k in kwargs}
        cell = self.cell_class(
            units,
            dtype=layer_kwargs.get("dtype"),
            trainable=layer_kwargs.get("trainable", True),
            name=f"{self.cell_class.__name__.lower()}",
            **kwargs,
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            zero_output_for_mask=zero_output_for_mask,
            **layer_kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)

    # -- the fast loop -----------------------------------------------------------------------------
    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        if self.unroll:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell
        x = sequences
        if training and cell.dropout > 0:
            x = x * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), 1)
        z = time_major(cell.input_projection(x))  # b + U x(t) for every step, one product
        if mask is None:
            step_mask = ops.ones(ops.shape(z)[:2] + (1,), dtype=z.dtype)
        else:
            step_mask = ops.expand_dims(ops.cast(ops.transpose(mask), z.dtype), -1)
        if training and cell.recurrent_dropout > 0:
            recurrent_mask = cell.get_recurrent_dropout_mask(initial_state[0])
        else:
            recurrent_mask = ops.ones_like(initial_state[0])
        if self.go_backwards:
            z, step_mask = ops.flip(z, 0), ops.flip(step_mask, 0)
        recurrent_kernel = ops.copy(cell.recurrent_kernel)  # a tensor: the gradient reaches the variable through this read
        args = [z, *initial_state, recurrent_kernel, step_mask, recurrent_mask]
        if self._hand_written_gradient():
            sequences_out = with_gradient(self.forward, self.backward)(*args)
        else:
            sequences_out = self.forward(*args)[0]
        hs = sequences_out[0]
        outputs = self.output_from_hidden(hs)
        if mask is not None:
            # Masked steps repeat the last output of a valid step (zeros before the first one), or
            # are zeros with `zero_output_for_mask`: exactly as `keras.layers.RNN`.
            keep = step_mask > 0 if self.zero_output_for_mask else ops.cumsum(step_mask, axis=0) > 0
            outputs = ops.where(keep, outputs, ops.zeros_like(outputs))
        new_states = [s[-1] for s in sequences_out]
        outputs = time_major(outputs)
        return outputs[:, -1], outputs, new_states

    def output_from_hidden(self, hs):
        """The layer's outputs given the hidden states of all steps (h itself, by default)."""
        return hs

    def _hand_written_gradient(self):
        names = [getattr(self.cell, a, None) for a in self.differentiated_activations]
        return all(derivative_from_output(n) is not None for n in names)

    # The activations that `backward` differentiates, by cell attribute name.
    differentiated_activations = ()
    # How many per-step internals `cell.recurrence` returns (kept as residuals for `backward`).
    num_internals = 0

    def forward(self, z, *args):
        """Runs the recurrence over all steps; returns `(state sequences, residuals)`.

        `z` is b + U x(t) for all steps, time-major; `args` are the initial states, W, the step
        mask (T, B, 1) and the recurrent dropout mask. The state sequences carry the state forward
        through masked steps. The residuals, for `backward`, are the state sequences followed by
        the per-step internals of `cell.recurrence`.
        """
        *initial_state, recurrent_kernel, step_mask, recurrent_mask = args
        cell = self.cell

        def step(carry, inputs):
            z_t, m_t = inputs
            _, new_states, internals = cell.recurrence(z_t, carry, recurrent_kernel, recurrent_mask)
            valid = m_t > 0
            new_states = [ops.where(valid, new, old) for new, old in zip(new_states, carry)]
            return new_states, [*new_states, *internals]

        n_states = len(initial_state)
        _, ys = scan(step, list(initial_state), [z, step_mask], n_states + self.num_internals)
        return ys[:n_states], ys

    def backward(self, args, residuals, upstream):
        """The gradients of every argument of `forward` given those of its state sequences."""
        raise NotImplementedError

    # -- config ------------------------------------------------------------------------------------
    def get_config(self):
        cell_config = self.cell.get_config()
        for key in ("name", "dtype", "trainable"):
            cell_config.pop(key, None)
        config = {
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "go_backwards": self.go_backwards,
            "stateful": self.stateful,
            "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
        return {**keras.layers.Layer.get_config(self), **cell_config, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def forward_to_cell(layer_class, names):
    """Give `layer_class` read-only properties that return the cell's attributes `names`."""
    for name in names:
        setattr(layer_class, name, property(lambda self, _n=name: getattr(self.cell, _n)))
    return layer_class
