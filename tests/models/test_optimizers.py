"""keras_seq.models.Adam: Adam's step from the summed gradient of an embedding table on TensorFlow
(where the gradient is a tf.IndexedSlices with one slice per occurrence of an id), as JAX takes it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seq.models import Adam


def _step(optimizer, ids, scale=1.0):
    emb = keras.layers.Embedding(5, 2, embeddings_initializer="zeros")
    emb.build((None,))
    with tf.GradientTape() as tape:
        loss = scale * tf.reduce_sum(emb(tf.constant(ids)))
    grads = tape.gradient(loss, emb.trainable_variables)
    assert isinstance(grads[0], tf.IndexedSlices)  # what Keras's Adam gets on TensorFlow
    optimizer.apply(grads, emb.trainable_variables)
    return emb.embeddings.numpy()


def test_a_repeated_id_moves_by_the_learning_rate_as_in_adam():
    # Adam's first step moves every coordinate with a nonzero gradient by lr (m/sqrt(v) = sign(g)).
    ids = [1, 1, 1, 1, 2]
    ours = _step(Adam(0.01), ids)
    np.testing.assert_allclose(ours[1:3], -0.01, rtol=1e-4)
    np.testing.assert_array_equal(ours[[0, 3, 4]], 0.0)
    keras_own = _step(keras.optimizers.Adam(0.01), ids)  # the slices squared apart: sqrt(4) x lr
    np.testing.assert_allclose(keras_own[1], -0.02, rtol=1e-3)


def test_clipnorm_measures_the_summed_gradient():
    # Gradient of row 1: 4 * (3, 3) -> norm 16.97; clipped to 1 -> (0.707, 0.707); SGD lr 1.
    class SGD(Adam):  # Adam's gradient preparation, plain SGD's update: the clipped gradient shows
        def update_step(self, gradient, variable, learning_rate):
            variable.assign_sub(gradient * learning_rate)

    moved = _step(SGD(1.0, clipnorm=1.0), [1, 1, 1, 1], scale=3.0)
    np.testing.assert_allclose(moved[1], -np.sqrt(0.5), rtol=1e-5)


def test_saved_with_the_model_and_loaded_back(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=Adam(0.01, clipnorm=5.0), loss="mse")
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is Adam and loaded.optimizer.clipnorm == pytest.approx(5.0)
