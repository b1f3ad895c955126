"""keras_seq.training.data: fixed-size length buckets (what the JAX backend trains on)."""

import numpy as np
import pytest

from keras_seq.g2p.data import reverse_task
from keras_seq.training.data import make_dataset

BOUNDARIES = (5, 7, 9, 11, 14)


def _arrays_and_model(attention=False):
    import keras

    from keras_seq.g2p.model import G2P
    from keras_seq.g2p.train import _arrays

    lexicon = reverse_task(300, 3, 12, seed=0)
    g2p = G2P.create(lexicon, units=8, embedding_dim=4, max_input_length=16, attention=attention)
    g2p.model.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    return lexicon, _arrays(lexicon, g2p), g2p


def _batches(ds):
    return [(x["encoder_inputs"].numpy(), x["decoder_inputs"].numpy(), y.numpy()) for x, y in ds]


def test_fixed_lengths_pad_each_bucket_to_its_longest_pair():
    lexicon, arrays, _ = _arrays_and_model()
    # Expected shapes, from the words: a bucket's longest word and its longest target (+ </s>).
    words = [w for w, _ in lexicon]
    bucket = np.searchsorted(BOUNDARIES, [len(w) for w in words], side="right")
    longest = {b: (max(len(w) for w, k in zip(words, bucket) if k == b),
                   max(len(p[0]) + 1 for (_, p), k in zip(lexicon, bucket) if k == b)) for b in set(bucket)}
    fixed = make_dataset(arrays, 4, shuffle=True, seed=3, fixed_lengths=True)
    plain = make_dataset(arrays, 4, shuffle=True, seed=3)
    shapes = []
    for epoch in range(2):
        got, ref = _batches(fixed), _batches(plain)
        assert len(got) == len(ref)
        for (e, d, l), (e0, d0, l0) in zip(got, ref):  # the same pairs, padded further
            b = int(np.searchsorted(BOUNDARIES, (e0 != 0).sum(axis=1).max(), side="right"))
            assert e.shape[1:] == (longest[b][0],) and d.shape[1] == l.shape[1] == longest[b][1]
            np.testing.assert_array_equal(e[:, : e0.shape[1]], e0)
            np.testing.assert_array_equal(l[:, : l0.shape[1]], l0)
            np.testing.assert_array_equal(d[:, : d0.shape[1]], d0)
            assert not e[:, e0.shape[1]:].any() and not l[:, l0.shape[1]:].any()
        shapes.append({(e.shape, d.shape) for e, d, _ in got})
    assert shapes[1] <= shapes[0]  # no shape first seen in the second epoch: nothing compiles again
    assert len(shapes[0]) <= 2 * (len(BOUNDARIES) + 1)  # per bucket: full batches and its last one
    assert len({(e.shape, d.shape) for e, d, _ in _batches(plain)}) > len(shapes[0])  # per-batch padding: more shapes


@pytest.mark.parametrize("attention", [False, True])
def test_fixed_lengths_do_not_change_the_loss(attention):
    """The pads are masked (attention too): the loss of the model on fixed-length batches is that of
    per-batch padding."""
    _, arrays, g2p = _arrays_and_model(attention)
    fixed = g2p.model.evaluate(make_dataset(arrays, 32, fixed_lengths=True), verbose=0)
    plain = g2p.model.evaluate(make_dataset(arrays, 32), verbose=0)
    assert abs(fixed - plain) < 1e-5 * plain, (fixed, plain)



@pytest.mark.parametrize("fixed", [True, False])
def test_numpy_batches_batch_as_tf_data_does(fixed):
    """Without TensorFlow, `NumpyBatches` gives every epoch the batches of `make_dataset`'s
    tf.data pipeline: the same examples in each batch bucket, the same shapes and remainders
    (only the order of the shuffles differs), reshuffled at every epoch end."""
    from keras_seq.training.data import NumpyBatches

    _, arrays, _ = _arrays_and_model()

    def signature(batches):  # per batch: its shapes and the set of its rows
        out = []
        for inputs, labels in batches:
            enc, dec, lab = (np.asarray(x) for x in (inputs["encoder_inputs"], inputs["decoder_inputs"], labels))
            rows = sorted(map(tuple, np.concatenate([enc, dec, lab], 1).tolist()))
            out.append((tuple(enc.shape), tuple(dec.shape), tuple(lab.shape), tuple(rows)))
        return sorted(out)

    for drop in (False, True):  # unshuffled: the same batches exactly
        reference = signature(make_dataset(arrays, 8, fixed_lengths=fixed, drop_remainder=drop))
        numpy = NumpyBatches(arrays, 8, fixed_lengths=fixed, drop_remainder=drop)
        assert signature(numpy[i] for i in range(len(numpy))) == reference
    shapes = lambda batches: sorted((tuple(x["encoder_inputs"].shape), tuple(y.shape)) for x, y in batches)
    shuffled = NumpyBatches(arrays, 8, shuffle=True, seed=0, fixed_lengths=True)
    first = [shuffled[i] for i in range(len(shuffled))]
    shuffled.on_epoch_end()
    second = [shuffled[i] for i in range(len(shuffled))]
    assert shapes(first) == shapes(second) == shapes(make_dataset(arrays, 8, shuffle=True, fixed_lengths=True))
    assert [y.tolist() for _, y in first] != [y.tolist() for _, y in second]
