"""Benchmark: serving a SavedModel through `keras-seq serve` over gRPC and REST, and in-process.

    python bench/serving.py                                   # a toy string model (no training needed)
    python bench/serving.py --model_base_path export/g2p      # the G2P export, its newest version
    python bench/serving.py --write_results                   # also update bench/RESULTS.md, "Serving"

Through the local server on 127.0.0.1 (a separate process, started here), for batching off and on:
throughput in words/s and p50/p99 latency of single-word Predict requests sent by 1, 8 and 32
concurrent clients (each a thread with its own channel, looping for --seconds), over gRPC and over
the REST API (keep-alive `http.client` connections posting `{"inputs": {...}}`), interleaved on the
same server. In-process: the
newest version loaded with `tf.saved_model.load`, its signature called on batches of 1 and 256
words (words/s, median over rounds), and the same through the server's own session path.

Anchor (issue 4): g2p-en decodes about 1,800 words/s on one thread; targets: >= 10x that at batch
256 in-process, and p99 <= 20 ms at 8 concurrent single-word clients. Issue 18: REST p99 <= 1.5x
gRPC's at 8 clients.

    python bench/serving.py --decoding_settings [--write_results]

measures per-request decoding settings instead (issue 18): with batching on, single-word requests
from concurrent clients to (a) ``serving_default`` (beam width fixed at export), (b) ``decode`` with
every request at that beam width, sent as inputs, and (c) ``decode`` with each request its own
settings (beam width 1 to the maximum, num_results, length penalty), interleaved rounds, the
words/s of (b) and (c) as ratios to (a). Target: per-request settings cost <= 10% of throughput.
Its model: a G2P (256 units; --decoding_units) trained for a few epochs on the reversal task
(or --model_base_path, an export with a ``decode`` signature).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse
import datetime
import http.client
import json
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import numpy as np

from keras_seq.cli import import_tensorflow_quietly

import_tensorflow_quietly()  # drops the C++ runtime's start-up lines
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from keras_seq.g2p.data import read_cmudict
from keras_seq.repository_format import list_versions
from keras_seq.serving.servable import Servable
from keras_seq.serving.tensors import ndarray_to_proto

WORDS = (
    "the quick brown fox jumps over lazy dog serving recurrent network pronunciation phoneme grapheme "
    "sequence model beam search greedy decoding attention encoder decoder language speech synthesis "
    "dictionary carnegie mellon university tensor flow keras python benchmark latency throughput"
).split()
# The toy model is a test fixture: tests/serving_fixtures.py, in the repository, not in the package.
TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
BATCHING_PARAMETERS = (
    "max_batch_size {{ value: {max_batch} }} batch_timeout_micros {{ value: {timeout} }} "
    "max_enqueued_batches {{ value: 1000 }} num_batch_threads {{ value: {threads} }}"
)


def start_server(base_path, model_name, batching, batch_timeout_micros, workdir, num_batch_threads=None,
                 extra_flags=()):
    """`python -m keras_seq.serving.server` on free ports; returns (process, gRPC address, REST address)."""
    command = [
        sys.executable,
        "-m",
        "keras_seq.serving.server",
        "--port=0",
        f"--model_name={model_name}",
        f"--model_base_path={os.path.abspath(base_path)}",
        "--file_system_poll_wait_seconds=-1",
        "--rest_api_port=-1",
    ]
    if batching:
        params = os.path.join(workdir, "batching_parameters.txt")
        with open(params, "w") as f:
            f.write(
                BATCHING_PARAMETERS.format(max_batch=256, timeout=batch_timeout_micros,
                                           threads=num_batch_threads or os.cpu_count() or 1)
            )
        command += ["--enable_batching", f"--batching_parameters_file={params}"]
    command += list(extra_flags)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    address = None
    for line in process.stdout:
        match = re.search(r"Running gRPC ModelServer at ([\d.]+:\d+)", line)
        if match:
            address = match.group(1)
        match = re.search(r"Exporting HTTP/REST API at:([\d.]+:\d+)", line)
        if match and address:
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, address, match.group(1)
    raise RuntimeError(f"the server did not start (exit code {process.wait()})")


def grpc_caller(address, model_name, signature, input_key):
    """(call(i) sending the i-th word over gRPC, close): one channel, the stock stub."""
    channel = grpc.insecure_channel(address)
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
    messages = []
    for word in WORDS:
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = model_name, signature
        request.inputs[input_key].CopyFrom(ndarray_to_proto(np.array([word.encode()], dtype=object)))
        messages.append(request)

    def call(i):
        try:
            predict(messages[i % len(messages)], timeout=60)
        except grpc.RpcError as e:
            return e.code().name
        return None

    return call, channel.close


def rest_caller(address, model_name, signature, input_key):
    """(call(i) POSTing the i-th word to the REST API, close): one keep-alive HTTP connection.

    The standard library's `http.client` with TCP_NODELAY, the leanest Python client (as the gRPC
    clients use gRPC's C core): `requests` costs about 0.4 ms more CPU per call in this process.
    """
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    path = f"/v1/models/{model_name}:predict"
    headers = {"Content-Type": "application/json"}
    bodies = [json.dumps({"signature_name": signature, "inputs": {input_key: [word]}}).encode() for word in WORDS]

    def call(i):
        connection.request("POST", path, body=bodies[i % len(bodies)], headers=headers)
        response = connection.getresponse()
        response.read()
        return None if response.status == 200 else f"HTTP {response.status}"

    return call, connection.close


def run_clients(caller, clients, seconds):
    """`clients` threads send single-word requests for `seconds`; returns (words/s, p50 ms, p99 ms, errors).

    `caller()` makes one client's (call(i), close).
    """
    latencies, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(index):
        call, close = caller()
        error = call(0)  # connect before the clock starts
        if error is not None:
            barrier.abort()  # the model cannot answer: stop the run instead of waiting forever
            raise RuntimeError(error)
        barrier.wait()
        mine, i, end = [], index, time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            error = call(i)
            if error is None:
                mine.append(time.perf_counter() - started)
            else:
                with lock:
                    errors.append(error)
            i += 1
        close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        for t in threads:
            t.join()
        raise RuntimeError("a client could not get an answer; see the error above") from None
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return len(latencies) / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(errors)


def words_per_second(call, batches, rounds):
    """Median words/s of `call` over `rounds` passes through `batches`, after one warm-up call."""
    call(batches[0])
    words = sum(len(b) for b in batches)
    speeds = []
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batches:
            call(batch)
        speeds.append(words / (time.perf_counter() - started))
    return statistics.median(speeds)


def in_process(version_path, signature, input_key, batch, rounds):
    """Words/s of the signature called in-process: tf.saved_model.load, and the server's session path."""
    words = np.array([WORDS[i % len(WORDS)].encode() for i in range(batch)], dtype=object)
    function = tf.saved_model.load(version_path).signatures[signature]
    eager = words_per_second(lambda tensor: function(**{input_key: tensor}), [tf.constant(words)], rounds)
    servable = Servable.load("bench", 0, version_path)
    signature_def = servable.signature_defs[signature]
    fetches = [t.name for t in signature_def.outputs.values()]
    session = words_per_second(
        lambda w: servable.run([(signature_def.inputs[input_key].name, w)], fetches), [words], rounds
    )
    servable.retire()
    return eager, session


def in_process_file(version_path, signature, input_key, words, batch, rounds):
    """Words/s of the signature over all of `words` in batches of `batch` (median over rounds)."""
    function = tf.saved_model.load(version_path).signatures[signature]
    batches = [
        tf.constant(np.array([w.encode() for w in words[i : i + batch]], dtype=object))
        for i in range(0, len(words), batch)
    ]
    return words_per_second(lambda tensor: function(**{input_key: tensor}), batches, rounds)


def write_toy_model(base_path):
    """Version 1 of the toy string model (regex + upper, no RNN) of tests/serving_fixtures.py."""
    sys.path.insert(0, TESTS)
    import serving_fixtures

    return serving_fixtures.write_words(base_path, 1)


def rest_to_grpc_p99(rows):
    """{(batching, clients): REST p99 / gRPC p99} for the rows measured over both."""
    p99 = {(b, p, c): value for b, p, c, _, _, value, _ in rows}
    return {(b, c): p99[(b, "rest", c)] / p99[(b, "grpc", c)] for b, p, c in p99 if p == "grpc" and (b, "rest", c) in p99}


def write_results(path, section):
    """Replaces (or appends) the `## Serving` section of bench/RESULTS.md, leaving the rest alone."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmark results\n"
    pattern = re.compile(r"^## Serving\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# --------------------------------------------------------------- per-request decoding settings


def write_decoding_model(base_path, units=64, beam_width=4):
    """Version 1 of a small G2P trained for a few seconds on the reversal task (a model whose
    outputs end, so that decoding does real work); returns its model's max_output_length."""
    import keras

    from keras_seq.export import export_saved_model
    from keras_seq.g2p import make_teacher_forcing_arrays, reverse_task
    from keras_seq.g2p.model import G2P

    keras.utils.set_random_seed(0)
    lexicon = reverse_task(1000, 3, 8, seed=1)
    g2p = G2P.create(lexicon, units=units, embedding_dim=32, attention=True, beam_width=beam_width)
    arrays = make_teacher_forcing_arrays(lexicon, g2p.characters, g2p.phonemes)
    g2p.model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0))
    g2p.model.fit({"encoder_inputs": arrays["encoder_inputs"], "decoder_inputs": arrays["decoder_inputs"]},
                  arrays["labels"], epochs=5, batch_size=64, verbose=0)
    module = g2p.serving_module()
    export_saved_model(module, base_path, signatures=module.signatures(), warmup_inputs=g2p.warmup_inputs(),
                       model_name="g2p")
    return module.beam_width, module.max_length


def decoding_requests(model_name, input_key, mode, beam_width, max_length, seed):
    """Single-word PredictRequests of one `mode`: "fixed" (serving_default), "same" (decode, every
    setting sent, at the export's beam width) or "mixed" (decode, each request its own settings)."""
    rng = np.random.default_rng(seed)
    requests = []
    for word in WORDS:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.inputs[input_key].CopyFrom(ndarray_to_proto(np.array([word.encode()], dtype=object)))
        if mode != "fixed":
            width = beam_width if mode == "same" else int(rng.integers(1, beam_width + 1))
            settings = {
                "beam_width": np.int32([width]),
                "num_results": np.int32([0 if mode == "same" else rng.integers(1, width + 1)]),
                "max_length": np.int32([max_length]),
                "length_penalty": np.float32([0.0 if mode == "same" else rng.choice([0.0, 0.6, 1.0])]),
            }
            request.model_spec.signature_name = "decode"
            for alias, value in settings.items():
                request.inputs[alias].CopyFrom(ndarray_to_proto(value))
        requests.append(request)
    return requests


def run_request_clients(address, requests, clients, seconds):
    """`clients` threads send `requests` (in turn, one at a time each) for `seconds`; returns
    (requests/s, p50 ms, p99 ms, errors)."""
    latencies, errors = [], []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)

    def client(index):
        channel = grpc.insecure_channel(address)
        predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
        predict(requests[index % len(requests)], timeout=60)  # connect before the clock starts
        barrier.wait()
        mine, i, end = [], index, time.perf_counter() + seconds
        while time.perf_counter() < end:
            started = time.perf_counter()
            try:
                predict(requests[i % len(requests)], timeout=60)
                mine.append(time.perf_counter() - started)
            except grpc.RpcError as e:
                with lock:
                    errors.append(e.code().name)
            i += 1
        channel.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return len(latencies) / elapsed, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), len(errors)


def decoding_in_process(version_path, input_key, beam_width, max_length, calls=300):
    """Median ms of `serving_default` and of `decode` (every setting at the export's values) on
    batches of 1, 8 and 32 words, in-process (`tf.saved_model.load`), calls alternating one by one."""
    loaded = tf.saved_model.load(version_path)
    fixed, decode = loaded.signatures["serving_default"], loaded.signatures["decode"]
    rows = []
    for batch in (1, 8, 32):
        words = tf.constant([WORDS[i % len(WORDS)] for i in range(batch)])
        settings = {"beam_width": tf.fill([batch], beam_width), "num_results": tf.zeros([batch], tf.int32),
                    "max_length": tf.fill([batch], max_length), "length_penalty": tf.zeros([batch])}
        calls_of = {"fixed": lambda: fixed(**{input_key: words}), "same": lambda: decode(**{input_key: words}, **settings)}
        times = {mode: [] for mode in calls_of}
        for mode in calls_of:  # warm up
            calls_of[mode]()
        for i in range(calls):
            for mode in (("fixed", "same") if i % 2 else ("same", "fixed")):
                started = time.perf_counter()
                calls_of[mode]()
                times[mode].append(time.perf_counter() - started)
        fixed_ms, same_ms = (statistics.median(times[m]) * 1000 for m in ("fixed", "same"))
        rows.append((batch, fixed_ms, same_ms))
        print(f"in-process batch {batch:>2}: serving_default {fixed_ms:.2f} ms, decode {same_ms:.2f} ms, "
              f"ratio {fixed_ms / same_ms:.3f}", flush=True)
    return rows


def decoding_settings_main(args, argv):
    """The --decoding_settings mode: fixed-setting export vs per-request settings, batching on."""
    workdir = tempfile.mkdtemp(prefix="bench-decoding-")
    modes = ("fixed", "same", "mixed")
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    try:
        base_path, label = args.model_base_path, args.model_base_path
        if base_path is None:
            base_path = os.path.join(workdir, "g2p")
            beam_width, max_length = write_decoding_model(base_path, units=args.decoding_units)
            label = (f"G2P, units {args.decoding_units}, attention, beam width {beam_width}, max_output_length {max_length}, "
                     "trained 5 epochs on the reversal task (bench/serving.py write_decoding_model)")
        else:
            signature = Servable.load("bench", 0, list_versions(base_path)[max(list_versions(base_path))])
            defaults = signature.signature_defs["decode"].defaults
            beam_width = int(tf.make_ndarray(defaults["beam_width"])[0])
            max_length = int(tf.make_ndarray(defaults["max_length"])[0])
            signature.retire()
        process, address, _ = start_server(base_path, args.model_name, True, args.batch_timeout_micros, workdir,
                                           args.num_batch_threads, args.server_flag)
        results = {(mode, c): [] for mode in modes for c in args.clients.split(",")}
        try:
            requests = {mode: decoding_requests(args.model_name, args.input_key, mode, beam_width, max_length, seed=0)
                        for mode in modes}
            for round_ in range(args.decoding_rounds):
                for clients in args.clients.split(","):
                    for mode in modes if round_ % 2 == 0 else reversed(modes):  # interleaved, order alternating
                        speed, p50, p99, errors = run_request_clients(address, requests[mode], int(clients), args.seconds)
                        results[(mode, clients)].append((speed, p50, p99, errors))
                        print(f"round {round_} {mode:>5} clients {clients:>2}: {speed:7.1f} words/s  p50 {p50:6.2f} ms"
                              f"  p99 {p99:6.2f} ms  errors {errors}", flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
        version_path = list_versions(base_path)[max(list_versions(base_path))]
        in_process_rows = decoding_in_process(version_path, args.input_key, beam_width, max_length)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    rows = []
    for clients in args.clients.split(","):
        fixed = statistics.median(r[0] for r in results[("fixed", clients)])
        for mode in modes:
            runs = results[(mode, clients)]
            speed = statistics.median(r[0] for r in runs)
            rows.append((clients, mode, speed, speed / fixed, statistics.median(r[1] for r in runs),
                         statistics.median(r[2] for r in runs), sum(r[3] for r in runs)))
            print(f"clients {clients:>2} {mode:>5}: {speed:7.1f} words/s = {speed / fixed:.3f} x fixed", flush=True)
    if args.write_results:
        command = "python bench/serving.py " + " ".join(argv if argv is not None else sys.argv[1:])
        load_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        names = {"fixed": "`serving_default` (fixed at export)", "same": "`decode`, every setting sent, same beam width",
                 "mixed": "`decode`, each request its own settings"}
        lines = [
            "## Serving: per-request decoding settings (issue 18), "
            + (f"{args.decoding_units}-unit model" if args.model_base_path is None else args.model_base_path),
            "",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; `uptime` at the start: "
            f"{load_before}; at the end: {load_after}",
            f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other work), no GPU, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}",
            f"- Command: `{command.strip()}`",
            f"- Model: {label}.",
            f"- `keras-seq serve` with batching on (max_batch_size 256, batch_timeout_micros {args.batch_timeout_micros}), "
            f"single-word requests, {args.seconds:g} s per run, {args.decoding_rounds} interleaved rounds (medians). "
            "Mixed settings: beam width 1 to the maximum, num_results up to it, length penalty 0, 0.6 or 1, "
            "random per request; max_length the export's. Target: per-request settings cost <= 10% of throughput.",
            "",
            "| clients | signature | words/s | ratio to fixed | p50 ms | p99 ms | errors |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        lines += [f"| {c} | {names[m]} | {w:.1f} | {r:.3f} | {p50:.1f} | {p99:.1f} | {e} |"
                  for c, m, w, r, p50, p99, e in rows]
        lines += ["", "The graphs alone, in-process (`tf.saved_model.load`, median ms per call, the two signatures "
                  "called in turn): the cost of per-row settings without the server's per-input work.", "",
                  "| batch | `serving_default` ms | `decode` ms (same settings, sent) | ratio (speed) |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {b} | {f:.2f} | {d:.2f} | {f / d:.3f} |" for b, f, d in in_process_rows]
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
        write_section(path, lines[0], "\n".join(lines) + "\n\n")
        print(f"wrote {lines[0]!r} in {path}")
    return 0


def write_section(path, title, section):
    """Replaces (or appends) the section headed `title` in bench/RESULTS.md, leaving the rest alone."""
    text = open(path, encoding="utf-8").read()
    pattern = re.compile(rf"^{re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_base_path", help="model repository (default: a toy string model written to a temp dir)")
    p.add_argument("--model_name", default="g2p")
    p.add_argument("--signature", default="serving_default")
    p.add_argument("--input_key", default="words")
    p.add_argument("--clients", default="1,8,32")
    p.add_argument("--protocols", default="grpc,rest", help="grpc, rest or both (interleaved per client count)")
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each client run")
    p.add_argument("--batch_timeout_micros", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=20, help="in-process timing rounds")
    p.add_argument("--num_batch_threads", type=int, default=None, help="batching threads (default: the cores)")
    p.add_argument("--server_flag", action="append", default=[],
                   help="another server flag, e.g. --server_flag=--tensorflow_intra_op_parallelism=1 (repeatable)")
    p.add_argument("--words", help="also decode every word of this CMUdict-format file in-process, in batches of 256 "
                   "(median of up to 3 passes)")
    p.add_argument("--in_process_only", action="store_true", help="skip the server runs")
    p.add_argument("--write_results", action="store_true", help="update the Serving section of bench/RESULTS.md")
    p.add_argument("--decoding_settings", action="store_true",
                   help="measure per-request decoding settings under batching instead (see above)")
    p.add_argument("--decoding_rounds", type=int, default=3, help="interleaved rounds of --decoding_settings")
    p.add_argument("--decoding_units", type=int, default=256,
                   help="units of the model --decoding_settings trains (default 256, G2P's)")
    args = p.parse_args(argv)
    if args.decoding_settings:
        return decoding_settings_main(args, argv)

    workdir = tempfile.mkdtemp(prefix="bench-serving-")
    try:
        base_path, model_label = args.model_base_path, args.model_base_path
        if base_path is None:
            base_path = os.path.join(workdir, "g2p")
            write_toy_model(base_path)
            model_label = "toy string model (tests/serving_fixtures.py write_words: regex + upper, no RNN)"
        versions = list_versions(base_path)
        if not versions:
            raise SystemExit(f"no numeric version directory under {base_path}")
        version_path = versions[max(versions)]

        rows = []
        protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
        load = os.getloadavg()
        for batching in () if args.in_process_only else (False, True):
            process, grpc_address, rest_address = start_server(
                base_path, args.model_name, batching, args.batch_timeout_micros, workdir, args.num_batch_threads,
                args.server_flag,
            )
            callers = {
                "grpc": lambda: grpc_caller(grpc_address, args.model_name, args.signature, args.input_key),
                "rest": lambda: rest_caller(rest_address, args.model_name, args.signature, args.input_key),
            }
            try:
                for clients in (int(c) for c in args.clients.split(",")):
                    for protocol in protocols:
                        words_s, p50, p99, errors = run_clients(callers[protocol], clients, args.seconds)
                        rows.append((batching, protocol, clients, words_s, p50, p99, errors))
                        print(
                            f"batching {'on ' if batching else 'off'} {protocol:<4} clients {clients:>2}: "
                            f"{words_s:8.0f} words/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errors}",
                            flush=True,
                        )
            finally:
                process.terminate()
                process.wait(timeout=60)
        for (b, c), r in rest_to_grpc_p99(rows).items():
            print(f"REST p99 / gRPC p99, batching {'on' if b else 'off'}, {c} clients: {r:.2f}", flush=True)
        speeds = []
        for batch in (1, 256):
            eager, session = in_process(version_path, args.signature, args.input_key, batch, args.rounds)
            speeds.append((batch, eager, session))
            print(
                f"in-process batch {batch:>3}: {eager:10.0f} words/s (tf.saved_model.load), "
                f"{session:10.0f} words/s (server session path)",
                flush=True,
            )
        file_speed = None
        if args.words:
            words = [word for word, _ in read_cmudict(args.words)]
            file_speed = in_process_file(version_path, args.signature, args.input_key, words, 256, min(args.rounds, 3))
            print(f"in-process, all {len(words)} words of {args.words} in batches of 256: {file_speed:.0f} words/s",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    if args.write_results:
        command = "python bench/serving.py " + " ".join(argv if argv is not None else sys.argv[1:])
        lines = [
            "## Serving",
            "",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- Machine: {platform.machine()}, {os.cpu_count()} CPU cores (shared with other work), no GPU, "
            f"Python {platform.python_version()}, TensorFlow {tf.__version__}, grpcio {grpc.__version__}",
            f"- Command: `{command.strip()}`",
            f"- Load average (1, 5, 15 min) at the start: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}",
            f"- Model: {model_label}, signature `{args.signature}`, version {max(versions)}",
            "- Server: `keras-seq serve` in its own process on 127.0.0.1; clients are threads of the benchmark "
            f"process, one single-word Predict at a time each, {args.seconds:g} s per row; batching on = "
            f"max_batch_size 256, batch_timeout_micros {args.batch_timeout_micros}, num_batch_threads "
            f"{args.num_batch_threads or os.cpu_count()}; other server flags: {' '.join(args.server_flag) or 'none'}.",
            "- Clients: gRPC, the stock stub on one channel each; REST, one keep-alive `http.client` connection each "
            "(TCP_NODELAY) posting `{\"signature_name\": ..., \"inputs\": {...}}`; the two protocols alternate "
            "per client count on the same server.",
            "",
            "| batching | protocol | clients | words/s | p50 ms | p99 ms | errors |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {'on' if b else 'off'} | {'REST' if p == 'rest' else 'gRPC'} | {c} | {w:.0f} | {p50:.2f} | {p99:.2f} | {e} |"
            for b, p, c, w, p50, p99, e in rows
        ]
        ratios = rest_to_grpc_p99(rows)
        if ratios:
            lines += ["", "REST p99 / gRPC p99 (issue 18 target at 8 clients: <= 1.5): " + ", ".join(
                f"batching {'on' if b else 'off'}, {c} clients: {r:.2f}" for (b, c), r in ratios.items()
            ) + "."]
        lines += [
            "",
            "In-process (median of rounds):",
            "",
            "| batch | words/s, `tf.saved_model.load` | words/s, server session path |",
            "|---:|---:|---:|",
        ]
        lines += [f"| {b} | {e:.0f} | {s:.0f} |" for b, e, s in speeds]
        if file_speed is not None:
            lines += ["", f"All {len(words)} words of `{args.words}` in batches of 256, in-process: {file_speed:.0f} words/s."]
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
        write_results(path, "\n".join(lines) + "\n\n")
        print(f"wrote the Serving section of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
