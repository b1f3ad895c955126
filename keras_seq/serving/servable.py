"""One loaded version of a SavedModel, loaded and run the way TF Serving does it.

TF Serving's default predictor loads a SavedModel with TensorFlow's SavedModel loader into a
session and runs `Session::Run` with the signature's tensor names as feeds and fetches. This
module does the same from Python: the TF1 loader (`tf.compat.v1.saved_model.loader.load`, which
also runs a TF2 model's `__saved_model_init_op`) into a `tf.compat.v1.Session` of its own graph,
and `Session::Run` reached directly with NumPy feeds. Going through `Session::Run` itself (not
Python's `Session.run`, which casts feeds to the placeholder's dtype and checks static shapes) keeps
TF Serving's errors: a wrong dtype gives `Expects arg[0] to be float but int32 is provided`, a wrong
shape gives the kernel's own message.

Nothing here imports model code: any SavedModel with a `serve` MetaGraph can be served.
"""

import logging
import threading

import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.python.client import pywrap_tf_session
from tensorflow.python.util import deprecation

from keras_seq.serving import errors

log = logging.getLogger("keras_seq.serving")

DEFAULT_TAGS = ("serve",)
_CANCELLED = "The server is shutting down: this request was cancelled at the end of the shutdown grace period"


class Servable:
    """A SavedModel version in memory: its MetaGraph, graph and session.

    Args:
        name: the model name it is served under.
        version: the integer version.
        path: the version directory.
        meta_graph: the loaded `MetaGraphDef`.
        graph: the `tf.Graph` the MetaGraph was imported into.
        session: the `tf.compat.v1.Session` that runs it.

    Requests hold the servable with `acquire()`/`release()`; `retire()` closes the session once
    the last request holding it has finished, so an unload never cuts a running request short.
    `cancel()` is for a shutdown whose grace period has run out: it closes the session at once,
    which cancels its running `Session::Run` calls (TensorFlow stops them between operations and
    loop iterations); they and any later run get UNAVAILABLE.
    """

    def __init__(self, name, version, path, meta_graph, graph, session):
        self.name = name
        self.version = version
        self.path = path
        self.meta_graph = meta_graph
        self.graph = graph
        self.session = session
        self.signature_defs = dict(meta_graph.signature_def)
        self._outputs_by_name = {}
        self._lock = threading.Lock()
        self._in_flight = 0
        self._retired = False
        self._closed = False
        self._cancelled = False

    @classmethod
    def load(cls, name, version, path, tags=DEFAULT_TAGS, session_config=None):
        """Loads the SavedModel at `path`; raises `ServingError` with TensorFlow's status."""
        graph = tf.Graph()
        session = tf.compat.v1.Session(graph=graph, config=session_config)
        try:
            with graph.as_default(), deprecation.silence():
                meta_graph = tf.compat.v1.saved_model.loader.load(session, list(tags), path)
        except Exception as e:  # any failure to load is the version's status, never a crash
            session.close()
            raise errors.from_tensorflow_error(e) from None
        return cls(name, version, path, meta_graph, graph, session)

    def _tf_output(self, tensor_name):
        output = self._outputs_by_name.get(tensor_name)
        if output is None:
            try:
                output = self.graph.get_tensor_by_name(tensor_name)._as_tf_output()
            except (KeyError, ValueError) as e:
                raise errors.ServingError(errors.grpc.StatusCode.NOT_FOUND, str(e)) from None
            self._outputs_by_name[tensor_name] = output
        return output

    def run(self, feeds, fetches, timeout_ms=None):
        """Runs `Session::Run`.

        Args:
            feeds: list of (tensor name, NumPy array).
            fetches: list of tensor names.
            timeout_ms: optional run timeout (TF Serving passes the client deadline on).

        Returns:
            A list of NumPy arrays, one per fetch.
        """
        feed_dict = {self._tf_output(name): value for name, value in feeds}
        fetch_list = [self._tf_output(name) for name in fetches]
        options = None
        if timeout_ms:
            run_options = config_pb2.RunOptions(timeout_in_ms=max(1, int(timeout_ms)))
            options = pywrap_tf_session.TF_NewBufferFromString(run_options.SerializeToString())
        try:
            if self._cancelled:
                raise errors.unavailable(_CANCELLED)
            return self.session._call_tf_sessionrun(options, feed_dict, fetch_list, [], None)
        except tf.errors.OpError as e:
            if self._cancelled:
                raise errors.unavailable(_CANCELLED) from None
            raise errors.from_tensorflow_error(e) from None
        finally:
            if options is not None:
                pywrap_tf_session.TF_DeleteBuffer(options)

    def acquire(self):
        """Marks one more request using this servable; False if it is already retired."""
        with self._lock:
            if self._retired:
                return False
            self._in_flight += 1
            return True

    def release(self):
        with self._lock:
            self._in_flight -= 1
            close = self._retired and self._in_flight == 0
        if close:
            self._close()

    def retire(self):
        """Stops new requests; the session closes when the last running request releases it."""
        with self._lock:
            self._retired = True
            close = self._in_flight == 0
        if close:
            self._close()

    def cancel(self):
        """Closes the session now, cancelling the runs in flight (see the class docstring)."""
        with self._lock:
            self._retired = True
            self._cancelled = True
        self._close()

    def _close(self):
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.session.close()
