"""The one error type of the serving package: a gRPC status code and a message.

The server raises `ServingError` wherever TF Serving returns a non-OK status, and turns it into the
RPC's status (or, on the REST port, into `{"error": message}` with `http_status(code)`); the
clients raise it for every failed call, so code written against one side reads the same as code
written against the other.
"""

import grpc

# TF Serving cuts long status messages and marks the cut (model_servers/grpc_status_util.cc).
MAX_MESSAGE_CHARS = 1024
TRUNCATED_SUFFIX = "...TRUNCATED"


def truncate_message(message):
    """Returns `message` cut to TF Serving's limit, with its marker when it was cut."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + TRUNCATED_SUFFIX


class ServingError(Exception):
    """A failed serving call: a `grpc.StatusCode` and the status message.

    Args:
        code: a `grpc.StatusCode` (for example `grpc.StatusCode.NOT_FOUND`).
        message: the status message, as TF Serving words it.

    Example:
        >>> err = ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(m)")
        >>> err.code.name, err.message
        ('NOT_FOUND', 'Servable not found for request: Latest(m)')
    """

    def __init__(self, code, message):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


def invalid_argument(message):
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message):
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message):
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def internal(message):
    return ServingError(grpc.StatusCode.INTERNAL, message)


def resource_exhausted(message):
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def deadline_exceeded(message):
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def unavailable(message):
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


# TensorFlow's error codes are absl codes, whose numbers gRPC shares.
_CODES_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def code_from_number(number):
    """Maps an absl/TensorFlow error code number to a `grpc.StatusCode` (UNKNOWN when unmapped)."""
    return _CODES_BY_NUMBER.get(int(number), grpc.StatusCode.UNKNOWN)


def from_tensorflow_error(error):
    """Turns a `tf.errors.OpError` (or any other exception) into a `ServingError`.

    TensorFlow errors keep their code and message, as TF Serving passes Session::Run's status on;
    anything else becomes UNKNOWN with the exception's text.
    """
    if isinstance(error, ServingError):
        return error
    error_code = getattr(error, "error_code", None)
    message = getattr(error, "message", None)
    if error_code is not None and message is not None:
        return ServingError(code_from_number(error_code), message)
    return ServingError(grpc.StatusCode.UNKNOWN, str(error) or type(error).__name__)


# TF Serving's REST port answers a status with this HTTP code (model_servers/http_server.cc
# ToHTTPStatusCode); anything else is 500.
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


def http_status(code):
    """The HTTP status code of TF Serving's REST answer for a `grpc.StatusCode`."""
    return _HTTP_STATUS.get(code, 500)


def code_from_http_status(status):
    """The `grpc.StatusCode` a REST client reports for an HTTP status (the first that maps to it;
    400 is INVALID_ARGUMENT, 500 INTERNAL, 409 ABORTED); UNKNOWN when none does."""
    return _CODES_BY_HTTP.get(status, grpc.StatusCode.UNKNOWN)


_CODES_BY_HTTP = {}
for _code, _status in _HTTP_STATUS.items():
    _CODES_BY_HTTP.setdefault(_status, _code)
_CODES_BY_HTTP[500] = grpc.StatusCode.INTERNAL
