"""Adam with one update on every backend.

The training loop compiles every model with it, so the `.keras` files it writes name it; it
lives beside the models, whose loading registers it."""

from __future__ import annotations

import keras

__all__ = ["Adam"]


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
