"""The machinery shared by the fast full-sequence layers.

A fast layer computes the input projection z(t) = b + U x(t) of all time steps in one matrix product
(on TensorFlow, one per chunk of steps: see `SequenceLayer.pipeline_chunks`), keeps only the recurrent
products and the gate arithmetic inside the loop (in a loop compiled by XLA, inference and JAX's
training project each step's own x(t) instead: see `in_compiled_loop`), and differentiates the loop
with a hand-written backward pass (`SequenceLayer.backward`): one step back per time step computing
the pre-activation gradients dA(t) and dh(t-1) = dA(t) Wᵀ, then the weight gradient
dW = Σ h(t-1)ᵀ dA(t) as one large product after the loop, rather than one small product per step as
automatic differentiation does. cuDNN trains the same way. The loop keeps what that pass needs
whenever a gradient is being taken (`being_differentiated`), whatever `training` says: under
`model.fit`, a custom `GradientTape` loop with or without `training=True`, `jax.grad`.

Four backend-specific pieces, all small, live here:
- `scan`: a loop over the leading (time) axis collecting per-step outputs (`tf.while_loop` reading
  each step's slice and writing TensorArrays on TensorFlow, `jax.lax.scan` on JAX, a Python loop
  elsewhere).
- `with_gradient`: attaches a hand-written gradient (`tf.custom_gradient` / `jax.custom_vjp`).
- `being_differentiated`: whether a gradient tape or JAX's differentiation is recording.
- `use_jax_cpu_flags`: the XLA flags (`JAX_CPU_XLA_FLAGS`) under which JAX runs these loops fast
  on a CPU, set when this module is imported on the JAX backend.
Everything else is `keras.ops`, so the layers run on TensorFlow and JAX alike.
"""

import os

import keras
import numpy as np
from keras import ops
from keras import tree

from keras_seq.cells.base import derivative_from_output


def no_gradient(x):
    """The zero gradient of a constant argument (None for an absent one)."""
    return None if x is None else ops.zeros_like(x)

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
    dtype = tree.flatten(init)[0].dtype
    outputs = [tf.TensorArray(dtype, size=n) for _ in range(num_outputs)]

    def body(t, carry, outputs):
        # x[t] of a leading-axis slice shares the buffer of x; a TensorArray would copy all of x.
        carry, ys = step(carry, [x[t] for x in xs])
        outputs = [ta.write(t, y) for ta, y in zip(outputs, ys)]
        return (t - 1 if reverse else t + 1), carry, outputs

    _, carry, outputs = tf.while_loop(
        lambda t, *_: (t >= 0) if reverse else (t < n),
        body,
        (n - 1 if reverse else tf.constant(0), init, outputs),
        maximum_iterations=n,  # what XLA needs to differentiate the loop (stacks of known size)
    )
    return carry, [ta.stack() for ta in outputs]


def with_gradient(forward, backward):
    """The function `forward(*args)[0]` differentiated by `backward(args, residuals, upstream)`.

    `forward(*args)` returns `(outputs, residuals)`: a list of output tensors and whatever the
    backward pass needs. `backward` returns one gradient per argument (zeros for constants).
    Arguments may be None (an absent optional input: no mask, say); they get no gradient.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        def fn(*args):
            present = [a is not None for a in args]

            @tf.custom_gradient
            def differentiated(*tensors):
                full = _refill(tensors, present)
                outputs, residuals = forward(*full)

                def grad(*upstream):
                    upstream = [ops.zeros_like(o) if u is None else u for u, o in zip(upstream, outputs)]
                    grads = backward(full, residuals, upstream)
                    return [g for g, p in zip(grads, present) if p]

                return outputs, grad

            return differentiated(*[a for a in args if a is not None])

        return fn
    if backend == "jax":
        import jax

        def fn(*args):
            present = [a is not None for a in args]
            call = jax.custom_vjp(lambda *tensors: forward(*_refill(tensors, present))[0])

            def call_forward(*tensors):
                outputs, residuals = forward(*_refill(tensors, present))
                return outputs, (tensors, residuals)

            def call_backward(saved, upstream):
                tensors, residuals = saved
                grads = backward(_refill(tensors, present), residuals, list(upstream))
                return tuple(g for g, p in zip(grads, present) if p)

            call.defvjp(call_forward, call_backward)
            return call(*[a for a in args if a is not None])

        return fn
    return lambda *args: forward(*args)[0]


def being_differentiated(tensors):
    """Whether a gradient of something computed from `tensors` is being taken at this point.

    TensorFlow: whether a `tf.GradientTape` records them (eagerly, or while a `tf.function` is
    traced with the tape inside it or around its first call); TensorFlow exports no public test
    for it, so this reads `tensorflow.python.eager.record.should_record_backprop`. JAX: whether any
    is a tracer of differentiation (`LinearizeTracer` inside `jax.grad`, `jax.vjp`,
    `jax.value_and_grad`, as in Keras's training step; `JVPTracer` inside `jax.jvp` and in JAX
    before 0.5), told by its class name (JAX exports the first under no public name). Elsewhere
    False. A wrong False only costs speed (the loop is then differentiated automatically).
    """
    tensors = [t for t in tree.flatten(tensors) if t is not None]
    backend = keras.backend.backend()
    if backend == "tensorflow":
        try:
            from tensorflow.python.eager import record

            return bool(record.should_record_backprop(tensors))
        except (ImportError, AttributeError):  # a TensorFlow without it: the caller's `training` decides
            return False
    if backend == "jax":
        import jax

        return any(
            isinstance(t, jax.core.Tracer) and type(t).__name__ in ("LinearizeTracer", "JVPTracer")
            for t in tensors
        )
    return False


def in_compiled_loop():
    """Whether the layer's loop is being compiled by XLA as one program: always on JAX; on
    TensorFlow, while a `tf.function(jit_compile=True)` (or `model.fit(jit_compile=True)`) is traced.

    There inference runs fastest the way Keras's own layers loop, b + U x(t) and one product with the
    fused W inside each step (`SequenceLayer.forward_projecting`), and so does training on JAX (the
    backward pass then computes dx, dU and db after its loop, and its loop dh(t-1) = dA(t) Wᵀ as one
    product). On 2 CPU cores (bench/RESULTS.md, issue 19): the book LSTM's inference 58-72 ms on
    JAX the other way (b + U x of all steps first, W split into per-block products), 31-40 ms this
    way; under `jit_compile=True` on TensorFlow 48.5 ms against 30.6; its JAX gradient 156 against
    130 ms. TensorFlow's XLA training step was no faster this way for the LSTM and slower for the
    GRU (83 against 99 ms), and TensorFlow's executor, without XLA, is fastest the other way.
    TensorFlow exports no public test for it, so this reads its XLA control-flow context (False if
    that fails: then only speed is lost).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    import tensorflow as tf

    if tf.executing_eagerly():
        return False
    try:
        from tensorflow.python.ops import control_flow_util

        return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
    except (ImportError, AttributeError):
        return False


#: XLA flags for JAX's CPU client. XLA's CPU compiler by default orders a program's operations
#: for concurrency (`xla_cpu_enable_concurrency_optimized_scheduler`); a training step of these
#: layers is a chain of small operations (each loop step's product and gate arithmetic), and run
#: that way its threads wait on each other at every operation: on 2 shared cores (load 5-7) the
#: JAX training step of the G2P model took 1.5-1.8x its CPU time in wall time, and a bidirectional
#: LSTM's gradient 222 ms (median) against 67-72 ms with the flag off (bench/RESULTS.md, issue 21;
#: on idler cores the two orders are closer). The flag changes the order of operations, not the
#: numbers.
JAX_CPU_XLA_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)


def use_jax_cpu_flags():
    """Adds `JAX_CPU_XLA_FLAGS` to the environment's ``XLA_FLAGS`` on the JAX backend; returns
    whether they are in effect.

    XLA reads ``XLA_FLAGS`` once, when JAX starts its CPU client (at its first computation), so
    this runs when `keras_seq.layers` is imported. A flag that ``XLA_FLAGS`` already names keeps
    the user's value; once JAX has started, nothing changes (False). Other backends: False.
    """
    if keras.backend.backend() != "jax":
        return False
    flags = os.environ.get("XLA_FLAGS", "").split()
    named = {f.split("=", 1)[0] for f in flags}
    missing = [f for f in JAX_CPU_XLA_FLAGS if f.split("=", 1)[0] not in named]
    try:
        from jax._src.xla_bridge import backends_are_initialized  # JAX has no public test for it
    except ImportError:  # a JAX without it: assume it has started (setting them now would not apply)
        return False
    if missing and not backends_are_initialized():
        flags += missing
        os.environ["XLA_FLAGS"] = " ".join(flags)
    return all(f in flags for f in JAX_CPU_XLA_FLAGS)


use_jax_cpu_flags()


def _refill(tensors, present):
    """The argument list with None where `present` is False, given the present tensors in order."""
    tensors = iter(tensors)
    return [next(tensors) if p else None for p in present]


def time_major(x):
    return ops.transpose(x, (1, 0, 2))


def sum_over_steps(a, b):
    """Σ_t a(t)ᵀ b(t) for a of shape (T, B, m) and b of shape (T, B, n): one (m, n) product."""
    return ops.matmul(ops.transpose(ops.reshape(a, (-1, a.shape[-1]))), ops.reshape(b, (-1, b.shape[-1])))


def sum_over_previous_steps(first, sequence, b):
    """Σ_t a(t-1)ᵀ b(t) where a(-1) = `first` and a(t) = `sequence[t]`: the weight gradient of a
    recurrent product, dW = Σ_t h(t-1)ᵀ dA(t), without building the shifted sequence."""
    return ops.matmul(ops.transpose(first), b[0]) + sum_over_steps(sequence[:-1], b[1:])


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

    The base takes `units`, `keras.layers.RNN`'s arguments and `use_cudnn` explicitly and passes
    every other keyword to the cell (those of `keras.layers.Layer`, such as `name` and `dtype`, to
    both); the concrete layers (`LSTM`, `GRU`, `ElmanRNN`) spell out every argument of their Keras
    counterparts, so that their signatures show them.
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
        use_cudnn="auto",
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
        if use_cudnn not in ("auto", True, False):
            raise ValueError(
                f"Argument `use_cudnn` must be one of 'auto', True, False (as in Keras), got {use_cudnn!r}."
            )
        self.use_cudnn = use_cudnn
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if self.use_cudnn is True:
            # Keras raises this where it cannot use cuDNN; the book layers never do (their own loop
            # runs on every device), so `True` is never possible.
            raise ValueError(
                f"use_cudnn=True was specified, but {type(self).__name__} of keras_seq has no cuDNN "
                "implementation: it runs its own loop on every device. Pass use_cudnn='auto' or False."
            )
        return super().call(sequences, mask=mask, training=training, initial_state=initial_state)

    # -- the fast loop -----------------------------------------------------------------------------
    # On TensorFlow, inside a `tf.function` (as in `model.fit`), the backward loop is compiled with
    # XLA, which fuses each step's elementwise arithmetic into a few loops and writes dA(t) in place.
    # The forward loop is not: TensorFlow runs its independent per-block products at once on several
    # cores, which XLA does not, and it is faster so, with or without residuals. Neither are the
    # large products around the loops (U x, dW, dU): TensorFlow's matrix product is faster than XLA's
    # at these sizes. Inference (training=False, what `model.export` saves) thus stays plain
    # TensorFlow ops that serve anywhere.
    jit_compile_backward = True

    # On TensorFlow, a sequence of known length runs in up to `pipeline_chunks` chunks of consecutive
    # steps, each with its own input projection (still one large product per chunk) and its own loop,
    # the states carried from one to the next. TensorFlow's executor runs independent ops at once, so
    # it projects the next chunk while the loop runs over this one, and on the training path computes
    # a chunk's weight gradients while the backward loop runs over the chunk before it. JAX (one XLA
    # program) gains nothing from it and always runs one chunk.
    pipeline_chunks = 4

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tree.is_nested(mask):
            mask = mask[0]
        if self.unroll:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        cell = self.cell
        x = sequences
        if training and cell.dropout > 0:
            x = x * ops.expand_dims(cell.get_dropout_mask(sequences[:, 0, :]), 1)
        x = time_major(x)
        # Under a mixed-precision policy the recurrence itself runs in float32: h(t) and the LSTM's
        # s(t) accumulate over many steps, and in bfloat16 (8-bit mantissa) s + 0.1 stalls at 32.
        # The products U x and V h keep the policy's compute dtype.
        state_dtype = "float32" if self.compute_dtype in ("bfloat16", "float16") else self.compute_dtype
        states = [ops.cast(s, state_dtype) for s in initial_state]
        step_mask = None  # no mask: no step is skipped, and the loop does not test for it
        if mask is not None:
            step_mask = ops.expand_dims(ops.cast(ops.transpose(mask), state_dtype), -1)
        recurrent_mask = None
        if training and cell.recurrent_dropout > 0:
            recurrent_mask = ops.cast(cell.get_recurrent_dropout_mask(states[0]), state_dtype)
        if self.go_backwards:
            x = ops.flip(x, 0)
            step_mask = None if step_mask is None else ops.flip(step_mask, 0)
        # A tensor: the gradient reaches the variable through this read.
        recurrent_kernel = ops.cast(ops.copy(cell.recurrent_kernel), state_dtype)
        # The hand-written backward pass whenever a gradient is being taken (training or not: a
        # custom loop may differentiate `layer(x)` without `training=True`); then the loop keeps
        # its residuals. Inference keeps none.
        hand_written = self._hand_written_gradient() and (
            training or being_differentiated([x, recurrent_kernel, *states])
        )
        # Without a mask, only `return_sequences` needs h(t) of every step; the last is h(T).
        keep_sequence = hand_written or self.return_sequences or mask is not None
        # A loop compiled by XLA runs as Keras's own layers do, b + U x(t) and one product for all
        # blocks inside each step (see `in_compiled_loop`): on JAX always, on TensorFlow under
        # `jit_compile=True` for inference (its XLA training step is no faster so). TensorFlow's
        # executor projects a chunk of steps in one product first.
        per_step = in_compiled_loop() and (not hand_written or keras.backend.backend() == "jax")
        hs = []
        for start, stop in [(0, None)] if per_step else self._chunks(x.shape[0]):
            chunk_mask = None if step_mask is None else step_mask[start:stop]
            if per_step:
                forward, backward = self.forward_projecting, self.backward_projecting
                args = [x, *states, recurrent_kernel, chunk_mask, recurrent_mask, *self._input_weights(x.dtype)]
            else:
                forward, backward = self.forward, self.backward
                z = ops.cast(self._input_projection(x[start:stop]), state_dtype)  # b + U x(t), one product
                args = [z, *states, recurrent_kernel, chunk_mask, recurrent_mask]
            if hand_written:
                chunk_hs, *states = with_gradient(forward, backward)(*args)
            else:
                outs, _ = forward(*args, keep_residuals=False, keep_sequence=keep_sequence)
                chunk_hs, *states = outs if keep_sequence else [outs[0][None], *outs]
            hs.append(chunk_hs)
        last_hs = hs[-1]
        hs = ops.concatenate(hs, axis=0) if keep_sequence and len(hs) > 1 else hs[-1]
        outputs = self.output_from_hidden(ops.cast(hs, self.compute_dtype))
        if mask is not None:
            # Masked steps repeat the last output of a valid step (zeros before the first one), or
            # are zeros with `zero_output_for_mask`: exactly as `keras.layers.RNN`.
            keep = step_mask > 0 if self.zero_output_for_mask else ops.cumsum(step_mask, axis=0) > 0
            outputs = ops.where(keep, outputs, ops.zeros_like(outputs))
            last_output = outputs[-1]
        else:
            last_output = self.output_from_hidden(ops.cast(last_hs[-1], self.compute_dtype))
        return last_output, time_major(outputs), states

    def _chunks(self, steps):
        """`(start, stop)` of each chunk of steps (one chunk, `(0, None)`, for an unknown length)."""
        if not steps or keras.backend.backend() != "tensorflow":
            return [(0, None)]
        size = -(-steps // max(1, min(self.pipeline_chunks, steps)))  # ceil: chunks of equal size
        return [(start, min(start + size, steps)) for start in range(0, steps, size)]

    def _input_weights(self, dtype):
        """`[U, b]` as tensors of `dtype` (b None without a bias): the gradient reaches the
        variables through these reads."""
        cell = self.cell
        bias = ops.cast(ops.copy(cell.bias), dtype) if cell.use_bias else None
        return [ops.cast(ops.copy(cell.kernel), dtype), bias]

    def _input_projection(self, x):
        """b + U x(t) for the time-major x as one 2-D product (TensorFlow then adds b inside it)."""
        z = self.cell.input_projection(ops.reshape(x, (-1, x.shape[-1])))
        return ops.reshape(z, (ops.shape(x)[0], -1, z.shape[-1]))

    def output_from_hidden(self, hs):
        """The layer's outputs given the hidden states of all steps (h itself, by default)."""
        return hs

    def _hand_written_gradient(self):
        names = [getattr(self.cell, a, None) for a in self.differentiated_activations]
        return all(derivative_from_output(n) is not None for n in names)

    def _backward_loop(self, loop):
        """`loop`, XLA-compiled on TensorFlow inside a `tf.function` (see `jit_compile_backward`)."""
        if not self.jit_compile_backward or keras.backend.backend() != "tensorflow":
            return loop
        import tensorflow as tf

        if tf.executing_eagerly():
            return loop
        return tf.function(loop, jit_compile=True, autograph=False)

    # The activations that `backward` differentiates, by cell attribute name.
    differentiated_activations = ()
    # Which states entering each step, by index, `backward` needs (s(t-1) for the LSTM, say).
    kept_previous_states = ()
    # How many of the per-step internals of `cell.recurrence` `backward` needs.
    num_internals = 0

    def forward_projecting(self, x, *args, keep_residuals=True, keep_sequence=True):
        """`forward` given the time-major input x, followed in `args` by U and b (b None without a
        bias): each step computes its own b + U x(t) (the loop of `in_compiled_loop`)."""
        *args, kernel, bias = args
        return self.forward(
            x, *args, keep_residuals=keep_residuals, keep_sequence=keep_sequence,
            project_each_step=(kernel, bias),
        )

    def backward_projecting(self, args, residuals, upstream):
        """The gradients of `forward_projecting`'s arguments: `backward`'s, then through z = b + U x
        dx = dz Uᵀ, dU = Σ_t x(t)ᵀ dz(t) and db = Σ_t dz(t), each one product or sum after the loop."""
        x, *args, kernel, bias = args
        dz, *grads = self.backward([None, *args], residuals, upstream)  # `backward` never reads z
        dz = ops.cast(dz, x.dtype)  # each step's z went from x's dtype to the state's
        dx = ops.reshape(ops.matmul(ops.reshape(dz, (-1, dz.shape[-1])), ops.transpose(kernel)), ops.shape(x))
        d_bias = None if bias is None else ops.sum(dz, axis=(0, 1))
        return [dx, *grads, sum_over_steps(x, dz), d_bias]

    def forward(self, z, *args, keep_residuals=True, keep_sequence=True, project_each_step=False):
        """Runs the recurrence over all steps; returns `(outputs, residuals)`.

        `z` is b + U x(t) for all steps, time-major; `args` are the initial states, W, the step
        mask (T, B, 1) and the recurrent dropout mask (each mask None when there is none). The
        outputs are h(t) of every step (unless `keep_sequence=False`) followed by the final states;
        through masked steps the states carry forward. `keep_residuals=False` (inference) keeps
        nothing else. The residuals, for `backward`, are h(t) of every step, the states
        `kept_previous_states` entering every step, the first `num_internals` per-step internals of
        `cell.recurrence`, and the final states.

        `project_each_step=(U, b)` (see `forward_projecting`): `z` is the time-major input x itself,
        and each step computes its b + U x(t) and one product with the fused W for all blocks.
        """
        *initial_state, recurrent_kernel, step_mask, recurrent_mask = args
        cell = self.cell
        if project_each_step:
            state_dtype, (kernel, bias) = initial_state[0].dtype, project_each_step
            z = [z]
        else:
            # Split once for all steps (into the blocks that `cell.recurrence` uses), not in every step.
            recurrent_kernel = cell.split_recurrent_kernel(recurrent_kernel)
            z = tree.flatten(cell.split_input_projection(z))

        def step(carry, inputs):
            z_t = inputs[: len(z)]
            if project_each_step:
                z_t = ops.cast(cell.input_projection(z_t[0], kernel, bias), state_dtype)
            else:
                z_t = z_t[0] if len(z) == 1 else tuple(z_t)
            _, states, internals = cell.recurrence(z_t, carry, recurrent_kernel, recurrent_mask)
            if step_mask is not None:
                valid = inputs[len(z)] > 0
                states = [ops.where(valid, new, old) for new, old in zip(states, carry)]
            if not keep_residuals:
                return states, [states[0]] if keep_sequence else []
            kept = [carry[i] for i in self.kept_previous_states]
            return states, [states[0], *kept, *internals[: self.num_internals]]

        xs = z if step_mask is None else [*z, step_mask]
        n_outputs = 1 + len(self.kept_previous_states) + self.num_internals if keep_residuals else int(keep_sequence)
        final_states, ys = scan(step, list(initial_state), xs, n_outputs)
        return [*ys[:1], *final_states], [*ys, *final_states]

    def backward(self, args, residuals, upstream):
        """The gradients of every argument of `forward` given those of its outputs.

        `backward_steps` walks back through the steps for the pre-activation gradients dA(t) (which
        are those of z) and the initial states' gradients; `recurrent_kernel_gradient` then
        computes dW from all steps at once.
        """
        *_, step_mask, recurrent_mask = args
        dz, *d_initial_state = self._backward_loop(self.backward_steps)(args, residuals, upstream)
        dW = self.recurrent_kernel_gradient(args, residuals, dz)
        return [dz, *d_initial_state, dW, no_gradient(step_mask), no_gradient(recurrent_mask)]

    def backward_steps(self, args, residuals, upstream):
        """`[dz, *d_initial_state]`: dA(t) = dz(t) of every step and the initial states' gradients."""
        raise NotImplementedError

    def recurrent_kernel_gradient(self, args, residuals, dz):
        """dW = Σ_t h_in(t-1)ᵀ dA(t), h_in being h after recurrent dropout, as one product."""
        h0, recurrent_mask, hs = args[1], args[-1], residuals[0]
        if recurrent_mask is not None:
            h0, hs = h0 * recurrent_mask, hs * recurrent_mask
        return sum_over_previous_steps(h0, hs, dz)

    def set_weights(self, weights):
        """Sets the weights (Keras's: `set_weights(keras_layer.get_weights())` of the Keras
        counterpart); a ValueError names both lists of shapes when they do not map."""
        want = [tuple(w.shape) for w in self.weights]
        got = [tuple(np.shape(w)) for w in weights]
        if want != got:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} holds weights of shapes {want} "
                f"({[w.name for w in self.weights]}), but got weights of shapes {got}. Keras's "
                "SimpleRNN, LSTM and GRU weights map onto ElmanRNN without `output_units`, LSTM, and "
                "GRU with the same `units`, input size and `reset_after`."
            )
        super().set_weights(weights)

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
            "use_cudnn": self.use_cudnn,
        }
        return {**keras.layers.Layer.get_config(self), **cell_config, **config}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


#: The cell's initializers, regularizers and constraints, which Keras's recurrent layers expose.
KERAS_WEIGHT_SETTINGS = (
    "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
    "recurrent_regularizer", "bias_regularizer", "kernel_constraint", "recurrent_constraint",
    "bias_constraint",
)


def forward_to_cell(layer_class, names):
    """Give `layer_class` read-only properties that return the cell's attributes `names`."""
    for name in names:
        setattr(layer_class, name, property(lambda self, _n=name: getattr(self.cell, _n)))
    return layer_class
