"""Per-request decoding settings, step-wise decoding and batching-safe token inputs, served by
`keras-seq serve` and called with the stock gRPC stubs (`keras_seq.serving.Client`).

One tiny string-to-string export is served twice: alone (every request its own `Session::Run`)
and with server-side batching that pads variable-length inputs as TF Serving does
(`pad_variable_length_inputs`). References: the unbatched server's answer to each request alone,
and the served ``greedy`` signature for a greedy search run by the client over ``encode`` and
``decode_step``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import threading

import grpc
import keras
import numpy as np
import pytest

import serving_fixtures
from keras_seq.export import export_saved_model
from keras_seq.seq2seq.model import TextSeq2Seq, examples_from_pairs
from keras_seq.serving import Client, RestClient, ServingError
from keras_seq.serving.batching import BatchingOptions, pad_variable_length
from keras_seq.serving.client import main as client_main
from keras_seq.serving.config import ModelServerConfig
from keras_seq.serving.server import create_server

SOURCES = ["abc", "ba", "cabd", "d", "dcba", "bb"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """(plain client, batching client, batching server, max_length) over one export; the
    repository also holds `old`, an export made before per-request settings."""
    keras.utils.set_random_seed(1)
    pairs = [("abc", ["cba"]), ("bad", ["dab"]), ("dcab", ["bacd"]), ("a", ["a"])]
    app = TextSeq2Seq.create(examples_from_pairs(pairs), units=8, embedding_dim=4, attention=True, beam_width=3,
                             max_output_length=5)
    root = tmp_path_factory.mktemp("decoding")
    module = app.serving_module(shards=1)
    # The audit and warmup of such exports are tested in tests/export and tests/g2p; here they would
    # only add half a minute.
    export_saved_model(module, root / "s2s", signatures=module.signatures(), model_name="s2s", audit=False)
    serving_fixtures.write_words(str(root / "old"))
    config = ModelServerConfig()
    for name in ("s2s", "old"):
        config.model_config_list.config.add(name=name, base_path=str(root / name), model_platform="tensorflow")
    plain, plain_port = create_server(model_config=config, port=0, file_system_poll_wait_seconds=-1, rest_api_port=-1)
    options = BatchingOptions(max_batch_size=64, batch_timeout_micros=300_000, num_batch_threads=1,
                              pad_variable_length_inputs=True)
    batching, batching_port = create_server(model_config=config, port=0, file_system_poll_wait_seconds=-1,
                                            enable_batching=True, batching=options)
    with Client(f"127.0.0.1:{plain_port}", timeout=60) as a, Client(f"127.0.0.1:{batching_port}", timeout=60) as b:
        a.rest_port = plain.rest_port
        yield a, b, batching, app.model.max_output_length
    plain.stop(0)
    batching.stop(0)


def concurrently(calls):
    """Runs every zero-argument call in its own thread, all at once; returns their results."""
    results, errors, barrier = [None] * len(calls), [], threading.Barrier(len(calls))

    def run(i):
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:2]
    return results


def test_client_side_greedy_search_over_encode_and_decode_step_is_the_served_greedy(servers):
    client, _, _, max_length = servers
    state = client.predict("s2s", {"inputs": SOURCES}, signature_name="encode")
    start, end = state.pop("start_tokens"), state.pop("end_tokens")
    assert not state.pop("too_long").any()
    rows = len(SOURCES)
    tokens, scores, finished, outputs = start, np.zeros(rows, np.float32), np.zeros(rows, bool), []
    for _ in range(max_length):
        if finished.all():
            break
        step = client.predict("s2s", {"previous_tokens": tokens, **state}, signature_name="decode_step")
        log_probs = step.pop("log_probs")
        state.update(step)  # the new recurrent state; the attention's memory stays
        best = log_probs.argmax(axis=-1).astype(np.int32)
        scores += np.where(finished, np.float32(0), log_probs[np.arange(rows), best])
        outputs.append(np.where(finished, 0, best).astype(np.int32))
        finished |= best == end
        tokens = np.where(finished, end, best).astype(np.int32)
    text = client.predict("s2s", {"output_ids": np.stack(outputs, axis=1)}, signature_name="detokenize")["outputs"]
    served = client.predict("s2s", {"inputs": SOURCES}, signature_name="greedy")
    assert text.tolist() == served["outputs"].tolist()
    np.testing.assert_allclose(scores, served["score"], rtol=1e-5)


def test_requests_with_different_settings_merge_and_each_gets_its_own_result(servers):
    plain, batching_client, batching_server, _ = servers
    settings = [dict(beam_width=1), dict(beam_width=3, num_results=2), dict(beam_width=2, max_length=3),
                dict(beam_width=3, length_penalty=1.0, num_results=3), dict(max_length=2), {}]
    alone = [plain.predict("s2s", {"inputs": [s]}, signature_name="decode", **kw) for s, kw in zip(SOURCES, settings)]
    before = batching_server.scheduler.batches_run
    merged = concurrently([lambda s=s, kw=kw: batching_client.predict("s2s", {"inputs": [s]}, signature_name="decode",
                                                                       **kw) for s, kw in zip(SOURCES, settings)])
    assert batching_server.scheduler.batches_run - before < len(SOURCES), "the requests were never merged"
    for want, got in zip(alone, merged):
        assert got["nbest"].tolist() == want["nbest"].tolist()
        np.testing.assert_allclose(got["nbest_scores"], want["nbest_scores"], rtol=1e-5, atol=1e-6)
    greedy = plain.predict("s2s", {"inputs": SOURCES[:1]}, signature_name="greedy")
    assert alone[0]["outputs"].tolist() == greedy["outputs"].tolist()  # beam width 1 is greedy search
    assert [len([b for b in row if b]) <= 2 for row in alone[1]["nbest"]]  # num_results=2: two outputs at most
    # The defaults (no settings at all, left to the SignatureDef) are serving_default's answer.
    default = plain.predict("s2s", {"inputs": SOURCES}, signature_name="decode")
    served = plain.predict("s2s", {"inputs": SOURCES})
    for key in served:
        assert default[key].tolist() == served[key].tolist(), key


def test_a_multi_row_request_with_one_setting_batches(servers):
    """The client sends the settings not given with the export's defaults, one per row: a
    request of several rows still merges under batching (its inputs all have its rows)."""
    plain, batching_client, _, _ = servers
    got = batching_client.predict("s2s", {"inputs": SOURCES}, beam_width=2)
    want = plain.predict("s2s", {"inputs": SOURCES}, signature_name="decode",
                         beam_width=[2] * len(SOURCES), num_results=0, max_length=5, length_penalty=0.0)
    assert got["nbest"].tolist() == want["nbest"].tolist()


def test_out_of_range_settings_are_invalid_argument(servers):
    client = servers[0]
    for settings, message in [(dict(beam_width=4), "`beam_width` must be between 1 and 3"),
                              (dict(beam_width=2, num_results=3), "`num_results` must be between 1 and the beam_width"),
                              (dict(max_length=99), "`max_length` must be between 1 and 5")]:
        with pytest.raises(ServingError) as info:
            client.predict("s2s", {"inputs": ["ab"]}, **settings)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert message in info.value.message


def test_old_exports_keep_serving_and_say_they_take_no_settings(servers):
    client = servers[1]
    assert client.predict("old", ["ab"])["pronunciation"].tolist() == [b"A B"]
    with pytest.raises(ServingError, match="has no 'decode' signature"):
        client.predict("old", ["ab"], beam_width=2)


def test_tokens_of_different_widths_and_paddings_batch_to_each_rows_own_result(servers):
    """Rows of different widths, padded by the client with arbitrary values and then by the
    batcher with each request's first id, decode as each row alone and unpadded."""
    plain, batching_client, batching_server, _ = servers
    ids = [np.array([[3, 4, 5]], np.int32), np.array([[5, 4, 9, 9, 9]], np.int32), np.array([[4]], np.int32),
           np.array([[5, 3, 3, 5, 4, 2, 2]], np.int32)]
    lengths = [3, 2, 1, 4]
    alone = [plain.predict("s2s", {"input_ids": row[:, :n], "input_lengths": [n]}, signature_name="tokens")
             for row, n in zip(ids, lengths)]
    before = batching_server.scheduler.batches_run
    merged = concurrently([lambda row=row, n=n: batching_client.predict(
        "s2s", {"input_ids": row, "input_lengths": [n]}, signature_name="tokens") for row, n in zip(ids, lengths)])
    assert batching_server.scheduler.batches_run - before < len(ids), "the requests were never merged"
    for want, got in zip(alone, merged):
        np.testing.assert_array_equal(got["output_ids"], want["output_ids"])
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-5, atol=1e-6)


def test_padding_is_tf_servings():
    """Each tensor is padded at the end of every inner dimension, with its own first element."""
    a, b = np.array([[7, 1]], np.int32), np.array([[2, 3, 4], [5, 6, 8]], np.int32)
    padded = pad_variable_length([a, b])
    assert padded[0].tolist() == [[7, 1, 7]] and padded[1] is b
    words = pad_variable_length([np.array([[b"x"]], object), np.array([[b"y", b"z"]], object)])
    assert words[0].tolist() == [[b"x", b"x"]]
    with pytest.raises(ServingError, match="Got empty tensor in batch of non-empty tensors."):
        pad_variable_length([np.zeros((1, 0), np.int32), b])


def test_the_cli_takes_decoding_settings(servers, capsys):
    client = servers[0]
    assert client_main(["--server", client.target, "--model", "s2s", "--input_key", "inputs", "--beam-width", "2",
                        "--num-results", "2", "--max-length", "4", "abc", "ba"]) == 0
    printed = capsys.readouterr().out
    want = client.predict("s2s", {"inputs": ["abc", "ba"]}, beam_width=2, num_results=2, max_length=4)
    assert want["nbest"][0][0].decode() in printed and "nbest" in printed


def test_the_rest_client_takes_decoding_settings_too(servers):
    client = servers[0]
    with RestClient(f"127.0.0.1:{client.rest_port}", timeout=60) as rest:
        got = rest.predict("s2s", {"inputs": SOURCES}, beam_width=2, num_results=1)
    want = client.predict("s2s", {"inputs": SOURCES}, beam_width=2, num_results=1)
    assert got["nbest"].tolist() == want["nbest"].tolist()
