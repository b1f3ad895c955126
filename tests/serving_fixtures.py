"""Toy SavedModels and certificates for the serving tests and benchmark (a test fixture: it lives
under tests/, not in the package).

The models are plain `tf.Module`s with `tf.function` signatures (no Keras), written into a TF
Serving repository the way an exporter should: into a non-numeric temporary directory, then
renamed to the version number.

- `write_half_plus_two`: `serving_default` x:float[-1] -> y = a*x + b (variables a, b), plus
  `matrix` x:float[-1,4] -> y:float[-1,2], `regress` and `classify` signatures over tf.Examples.
- `write_two_inputs`: `serving_default` a:float[-1], b:int32[-1] -> sum:float[-1], prod:float[-1].
- `write_words`: a G2P look-alike: `serving_default` words:string[-1] -> pronunciation:string[-1],
  score:float[-1], nbest:string[-1,2], nbest_scores:float[-1,2]; `greedy` the same without the
  n-best list; `tokens` ids:int32[-1,-1] -> ids:int32[-1,-1]; `echo` words -> words_bytes (the same
  strings, which TF Serving's REST API answers as `{"b64": ...}`).

As a script, `python tests/serving_fixtures.py DIR` writes the toy repository (and
`DIR/models.config`) that the contract tests expect of a real TF Serving.
"""

import os
import shutil
import tempfile

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from keras_seq.repository_format import warmup_path
from keras_seq.serving.tensors import ndarray_to_proto


def _atomic_save(module, base_path, version, signatures, warmup=None):
    """tf.saved_model.save into `.tmp-*`, optional warmup file, then rename to `<version>`."""
    os.makedirs(base_path, exist_ok=True)
    final = os.path.join(base_path, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"version {version} already exists under {base_path}")
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=base_path)
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        if warmup:
            write_warmup(tmp, warmup)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def write_warmup(version_path, requests):
    """Writes `assets.extra/tf_serving_warmup_requests`: one PredictionLog per PredictRequest."""
    path = warmup_path(version_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def predict_request(model, inputs, signature_name=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature_name
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(ndarray_to_proto(value))
    return request


class HalfPlusTwo(tf.Module):
    def __init__(self, a=0.5, b=2.0):
        super().__init__()
        self.a = tf.Variable(a, dtype=tf.float32)
        self.b = tf.Variable(b, dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def serve(self, x):
        return {"y": self.a * x + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def matrix(self, x):
        return {"y": tf.matmul(x, tf.ones([4, 2])) * self.a}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def batch_size(self, x):
        """Each row gets the size of the batch it was run in (shows server-side batching)."""
        return {"n": tf.fill(tf.shape(x), tf.shape(x)[0])}

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.float32, name="x"), tf.TensorSpec([], tf.int32, name="iterations")]
    )
    def slow(self, x, iterations):
        """Spins `iterations` times, to keep a request in flight."""
        _, total = tf.while_loop(
            lambda i, t: i < iterations, lambda i, t: (i + 1, t + tf.sin(t)), [tf.constant(0), tf.reduce_sum(x)]
        )
        return {"y": x * 0.0 + total * 0.0 + self.b}

    def _features(self, serialized):
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        return parsed["x"][:, 0]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def regress(self, inputs):
        return {"outputs": self.a * self._features(inputs) + self.b}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
    def classify(self, inputs):
        x = self._features(inputs)
        scores = tf.stack([x, 1.0 - x], axis=1)
        classes = tf.tile(tf.constant([["pos", "neg"]]), [tf.shape(x)[0], 1])
        return {"scores": scores, "classes": classes}


def write_half_plus_two(base_path, version=1, a=0.5, b=2.0, warmup=True):
    module = HalfPlusTwo(a, b)
    signatures = {
        "serving_default": module.serve,
        "matrix": module.matrix,
        "regress": module.regress,
        "classify": module.classify,
        "batch_size": module.batch_size,
        "slow": module.slow,
    }
    requests = [predict_request("half_plus_two", {"x": tf.constant([1.0, 2.0]).numpy()})] if warmup else None
    return _atomic_save(module, base_path, version, signatures, requests)


class TwoInputs(tf.Module):
    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.float32, name="a"), tf.TensorSpec([None], tf.int32, name="b")]
    )
    def serve(self, a, b):
        b = tf.cast(b, tf.float32)
        return {"sum": a + b, "prod": a * b}


def write_two_inputs(base_path, version=1):
    module = TwoInputs()
    return _atomic_save(module, base_path, version, {"serving_default": module.serve})


class Words(tf.Module):
    """A G2P look-alike: the 'pronunciation' of a word is its letters, upper-cased and spaced."""

    def __init__(self, tag=""):
        super().__init__()
        self.bias = tf.Variable(0.0)
        self.tag = tag

    def _pronounce(self, words):
        spaced = tf.strings.regex_replace(tf.strings.upper(words), "(.)", r"\1 ")
        return tf.strings.strip(spaced + self.tag)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
    def serve(self, words):
        best = self._pronounce(words)
        score = -tf.cast(tf.strings.length(words), tf.float32) + self.bias
        return {
            "pronunciation": best,
            "score": score,
            "nbest": tf.stack([best, tf.strings.lower(best)], axis=1),
            "nbest_scores": tf.stack([score, score - 1.0], axis=1),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
    def greedy(self, words):
        return {"pronunciation": self._pronounce(words), "score": -tf.cast(tf.strings.length(words), tf.float32)}

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name="ids")])
    def tokens(self, ids):
        return {"ids": ids + 1}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
    def echo(self, words):
        """The words back, under an alias that TF Serving's REST API answers in base64 (`_bytes`)."""
        return {"words_bytes": words}


def write_words(base_path, version=1, tag="", warmup=True):
    module = Words(" " + tag if tag else "")
    signatures = {"serving_default": module.serve, "greedy": module.greedy, "tokens": module.tokens}
    signatures["echo"] = module.echo
    requests = None
    if warmup:
        import numpy as np

        requests = [predict_request("g2p", {"words": np.array([b"warm", b"up"], dtype=object)})]
    return _atomic_save(module, base_path, version, signatures, requests)


def write_half_written(base_path, version, source_version_path):
    """A version directory with `saved_model.pb` but no variables (an interrupted copy)."""
    path = os.path.join(base_path, str(version))
    os.makedirs(path)
    shutil.copy(os.path.join(source_version_path, "saved_model.pb"), path)
    return path


def write_corrupt(base_path, version):
    """A version directory whose `saved_model.pb` is garbage."""
    path = os.path.join(base_path, str(version))
    os.makedirs(os.path.join(path, "variables"))
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"\x08\x96\x01 this is not a SavedModel \xff\xfe")
    return path


def make_certificates(directory, common_name="127.0.0.1"):
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files.

    Returns a dict of paths: ca_cert, server_key, server_cert, client_key, client_cert, and a second,
    unrelated CA's client pair (rogue_key, rogue_cert).
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def certificate(subject, subject_key, issuer, issuer_key, ca=False, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    def write(filename, data):
        path = os.path.join(directory, filename)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_pem(k):
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def cert_pem(c):
        return c.public_bytes(serialization.Encoding.PEM)

    ca_key, rogue_ca_key = key(), key()
    ca = certificate("keras-seq test CA", ca_key, "keras-seq test CA", ca_key, ca=True)
    server_key, client_key, rogue_key = key(), key(), key()
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server = certificate(common_name, server_key, "keras-seq test CA", ca_key, san=san)
    client = certificate("client", client_key, "keras-seq test CA", ca_key)
    rogue = certificate("rogue", rogue_key, "rogue CA", rogue_ca_key)
    return {
        "ca_cert": write("ca.pem", cert_pem(ca)),
        "server_key": write("server.key", key_pem(server_key)),
        "server_cert": write("server.pem", cert_pem(server)),
        "client_key": write("client.key", key_pem(client_key)),
        "client_cert": write("client.pem", cert_pem(client)),
        "rogue_key": write("rogue.key", key_pem(rogue_key)),
        "rogue_cert": write("rogue.pem", cert_pem(rogue)),
    }


def write_toy_repository(root):
    """The repository the contract tests expect: `half_plus_two` (versions 1 and 2), `g2p` and
    `two_inputs`, plus a `models.config` for a real TF Serving mounted at the same path.

    Returns the ModelServerConfig.
    """
    from keras_seq.serving import config as config_lib

    write_half_plus_two(os.path.join(root, "half_plus_two"), 1, a=0.5, b=2.0)
    write_half_plus_two(os.path.join(root, "half_plus_two"), 2, a=1.0, b=3.0)
    write_words(os.path.join(root, "g2p"), 1)
    write_two_inputs(os.path.join(root, "two_inputs"), 1)
    config = config_lib.ModelServerConfig()
    for name in ("half_plus_two", "g2p", "two_inputs"):
        model = config.model_config_list.config.add(
            name=name, base_path=os.path.join(os.path.abspath(root), name), model_platform="tensorflow"
        )
        if name == "half_plus_two":
            model.model_version_policy.all.SetInParent()
            model.version_labels["stable"] = 1
            model.version_labels["canary"] = 2
    from google.protobuf import text_format

    with open(os.path.join(root, "models.config"), "w", encoding="utf-8") as f:
        f.write(text_format.MessageToString(config))
    return config


if __name__ == "__main__":
    # python tests/serving_fixtures.py DIR: writes the toy repository for a real TF Serving.
    import sys

    write_toy_repository(sys.argv[1])
    print(f"wrote {sys.argv[1]}/models.config")
