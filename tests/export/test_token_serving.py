"""A `.keras` file of an encoder-decoder exports with decoding signatures over token ids."""

import keras
import numpy as np
import tensorflow as tf

from keras_seq.cli.export import main as export_main
from keras_seq.models import EncoderDecoder


def test_keras_file_of_an_encoder_decoder_exports_beam_and_greedy_decoding(tmp_path, capsys):
    keras.utils.set_random_seed(3)
    model = EncoderDecoder(9, 11, units=12, embedding_dim=6, start_token=2, end_token=3, pad_token=0,
                           max_output_length=6, attention=True)
    model.build()
    model.save(tmp_path / "model.keras")
    assert export_main(["--model", str(tmp_path / "model.keras"), "--base-path", str(tmp_path / "m"),
                        "--shards", "1"]) == 0
    loaded = tf.saved_model.load(capsys.readouterr().out.strip())
    assert set(loaded.signatures) == {"serving_default", "greedy"}
    ids = np.array([[4, 5, 6], [7, 8, 0], [5, 0, 0]], np.int32)
    beam = loaded.signatures["serving_default"](input_ids=tf.constant(ids))
    expected = model.generate(ids, method="beam", beam_width=4)
    np.testing.assert_array_equal(beam["output_ids"].numpy(), keras.ops.convert_to_numpy(expected["tokens"]))
    np.testing.assert_allclose(beam["scores"].numpy(), keras.ops.convert_to_numpy(expected["scores"]), atol=1e-5)
    greedy = loaded.signatures["greedy"](input_ids=tf.constant(ids))
    np.testing.assert_array_equal(greedy["output_ids"].numpy(),
                                  keras.ops.convert_to_numpy(model.generate(ids, method="greedy")["tokens"]))
