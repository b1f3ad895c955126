"""Adam, with the same update on every backend: `Adam` (Adam's step from the summed gradient)
and `SliceAdam` (Keras's Adam as it runs on TensorFlow, embedding tables stepped from their
per-occurrence slices, reproduced on JAX).

The training loop compiles every model with one of them, so the `.keras` files it writes name
it; they live beside the models, whose loading registers them."""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["Adam", "SliceAdam"]


@keras.saving.register_keras_serializable(package="keras_seq")
class Adam(keras.optimizers.Adam):
    """Adam (Kingma & Ba, 2015; the book's Algorithm 8.7), the same update on every backend.

    On TensorFlow the gradient of an embedding table reaches the optimizer as a
    `tf.IndexedSlices` with one slice per occurrence of an id in the batch, and Keras's Adam
    updates its moments slice by slice: an id seen k times gets the square of each slice's
    gradient summed into its second moment, not the square of their sum, so its step is up to
    sqrt(k) times Adam's; and ``clipnorm`` measures the slices, not the gradient. Here such
    gradients are first summed into the dense gradient, which is what JAX differentiates to, so
    TensorFlow and JAX take Adam's step from the same gradients. Everything else is
    `keras.optimizers.Adam`, arguments included.
    """

    def apply(self, grads, trainable_variables=None):
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        return super().apply(grads, trainable_variables)


@keras.saving.register_keras_serializable(package="keras_seq")
class SliceAdam(keras.optimizers.Adam):
    """Keras's Adam with the embedding step it takes on TensorFlow, on every backend.

    On TensorFlow an embedding table's gradient is a `tf.IndexedSlices`, one slice g_i per
    occurrence of an id in the batch, and `keras.optimizers.Adam` takes it slice by slice:

        m <- beta_1 m + (1 - beta_1) sum_i g_i        (the summed gradient: Adam's first moment)
        v <- beta_2 v + (1 - beta_2) sum_i g_i^2      (the squares summed, not the square of the sum)

    and ``clipnorm`` scales the slices by their own norm, sqrt(sum_i |g_i|^2). An id seen k times
    in a batch thus moves up to sqrt(k) times Adam's step (`Adam` here sums first). That is the
    training keras-seq's TensorFlow results were made with, and it learns embeddings faster.

    On TensorFlow this class *is* Keras's Adam (nothing is overridden there). On JAX, where the
    gradient of a table is dense, the models' training step (`keras_seq.models.base.BookModel`)
    differentiates each embedding lookup once more, for the per-row sums of g_i^2, and hands them
    here, so the step is TensorFlow's. Elsewhere, and for every other weight, it is Keras's Adam.
    """

    #: Asks the models' JAX training step for the per-occurrence squares of embedding gradients.
    embedding_slices = True

    def update_step(self, gradient, variable, learning_rate):
        slices = getattr(self, "_slices", None)
        if not slices or variable.path not in slices:
            return super().update_step(gradient, variable, learning_rate)
        squares, clip_correction = slices[variable.path]
        gradient = ops.multiply(ops.cast(gradient, variable.dtype), clip_correction)
        lr = ops.cast(learning_rate, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        beta_1_power = ops.power(ops.cast(self.beta_1, variable.dtype), step)
        beta_2_power = ops.power(ops.cast(self.beta_2, variable.dtype), step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        alpha = lr * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.cast(squares, variable.dtype), v), 1 - self.beta_2))
        if self.amsgrad:
            v_hat = self._velocity_hats[index]
            self.assign(v_hat, ops.maximum(v_hat, v))
            v = v_hat
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), self.epsilon)))


def _occurrence_take():
    """``take(table, shadow, ids)``: ``table[ids]``, whose gradient for `shadow` (zeros of the
    table's shape, unused in the forward pass) is the per-row sum of the squared gradients of the
    looked-up rows, sum_i g_i^2; for `table` it is the usual sum_i g_i. JAX only."""
    import jax
    import jax.numpy as jnp

    @jax.custom_vjp
    def take(table, shadow, ids):
        return jnp.take(table, ids, axis=0)

    def forward(table, shadow, ids):
        return take(table, shadow, ids), (table, shadow, ids)

    def backward(residuals, g):
        table, shadow, ids = residuals
        ids = ids.reshape(-1)
        g = g.reshape(ids.shape[0], -1).astype(jnp.float32)
        d_table = jnp.zeros(table.shape, jnp.float32).at[ids].add(g).astype(table.dtype)
        d_shadow = jnp.zeros(shadow.shape, jnp.float32).at[ids].add(g * g).astype(shadow.dtype)
        return d_table, d_shadow, None

    take.defvjp(forward, backward)
    return take


def jax_train_step_with_slices(model, state, data):
    """Keras's JAX training step (`JAXTrainer.train_step` of Keras's JAX backend) for a
    model compiled with `SliceAdam`: also the per-occurrence squares of each embedding table's
    gradient, clipped as TensorFlow clips a `tf.IndexedSlices`, handed to the optimizer.

    It follows Keras's own step and calls two of its private methods (`Layer._flatten_layers`,
    `JAXTrainer._update_metrics_variables`); tests/models/test_optimizers.py and the slow
    same-batches test of tests/training/test_jax_training.py fail if Keras changes under it."""
    import jax
    import jax.numpy as jnp

    trainable, non_trainable, optimizer_variables, metrics_variables = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    tables = {id(layer.embeddings): layer for layer in model._flatten_layers()
              if isinstance(layer, keras.layers.Embedding) and layer.trainable and not layer.quantization_mode}
    at = [i for i, v in enumerate(model.trainable_variables) if id(v) in tables]
    layers = [tables[id(model.trainable_variables[i])] for i in at]
    take = _occurrence_take()

    def loss(trainable, shadows):
        patched = []
        try:
            for layer, shadow in zip(layers, shadows):
                object.__setattr__(layer, "call", _lookup(layer, shadow, take))
                patched.append(layer)
            return model.compute_loss_and_updates(trainable, non_trainable, metrics_variables, x, y, sample_weight,
                                                  training=True, optimizer_variables=optimizer_variables)
        finally:
            for layer in patched:
                object.__delattr__(layer, "call")

    shadows = [jnp.zeros(trainable[i].shape, jnp.float32) for i in at]
    (_, aux), (grads, squares) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(trainable, shadows)
    unscaled_loss, y_pred, non_trainable, metrics_variables = aux

    optimizer = model.optimizer
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    scale = 1.0
    if inner is not optimizer:  # a LossScaleOptimizer (mixed_float16): the squares carry its scale twice
        scale = optimizer_variables[[id(v) for v in optimizer.variables].index(id(optimizer.dynamic_scale))]
    slices = {}
    for i, s in zip(at, squares):
        s = s / (scale * scale)
        correction = 1.0
        if inner.clipnorm:  # TensorFlow's clip of the slices, in place of Keras's clip of the sum
            c = inner.clipnorm
            g = grads[i].astype(jnp.float32) / scale
            sliced = c / jnp.maximum(jnp.sqrt(jnp.sum(s)), c)
            summed = c / jnp.maximum(jnp.sqrt(jnp.sum(g * g)), c)
            s, correction = s * sliced * sliced, sliced / summed
        slices[model.trainable_variables[i].path] = (s, correction)
    inner._slices = slices
    try:
        trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads, trainable)
    finally:
        inner._slices = None
    logs, metrics_variables = model._update_metrics_variables(metrics_variables, unscaled_loss, x, y, y_pred,
                                                              sample_weight)
    return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)


def _lookup(layer, shadow, take):
    def call(inputs):
        if inputs.dtype not in ("int32", "int64"):
            inputs = ops.cast(inputs, "int32")
        return ops.cast(take(ops.convert_to_tensor(layer.embeddings), shadow, inputs), layer.compute_dtype)

    return call
