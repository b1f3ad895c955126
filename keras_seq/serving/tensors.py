"""TensorProto <-> NumPy, the way TF Serving reads requests and writes responses.

Requests are parsed by TensorFlow's own C++ `Tensor::FromProto` (reached through
`tf.io.parse_tensor`), so every quirk of TF Serving's parsing is kept: missing values are padded
with the last one, extra values are dropped, `tensor_content` wins over typed fields, and a
negative dim, an unset dtype or a `tensor_content` of the wrong length is rejected. String tensors
given as `string_val` (every text model's input) take a direct route with the same rules that
copies each string once, instead of four times (serialize, parse, tensor, NumPy): a 60 MiB word
would otherwise cost ~250 MB before the model sees it. Float, double, int32, int64 and bool
tensors (ids, lengths, per-request decoding settings) are read with NumPy by the same rules: an
eager TensorFlow op per tensor would cost about 0.1 ms per input of every request.

`estimated_bytes` tells, from the TensorProto alone, how much memory the parsed tensor will take,
so the server can refuse a request that expands (a shape of 10^9 with one value is a valid,
tiny TensorProto) before parsing it. Reading a protobuf field's size is not free with the upb
protobuf runtime: `ByteSize()` serializes the message (two transient copies of a 60 MiB word)
and reading a string copies it; so the server leaves the given strings out of the estimate
(`given_strings=False`) and counts them on the parsed array (`given_string_bytes`), where they
cost nothing more.

Responses use the typed value fields (`float_val`, `int64_val`, `string_val`, ...), as
`Tensor::AsProtoField` writes them; `tensor_content` is not used.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

# dtype -> (TensorProto field, how one NumPy element becomes a field value)
_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}
_HALF_TYPES = (types_pb2.DT_HALF, types_pb2.DT_BFLOAT16)
_COMPLEX_FIELDS = {types_pb2.DT_COMPLEX64: "scomplex_val", types_pb2.DT_COMPLEX128: "dcomplex_val"}


# sizeof(tensorflow::tstring): every element of a string tensor takes this much, plus its bytes
# when longer than the 22 that fit inline.
TSTRING_BYTES = 24
_MAX_ELEMENTS = 2**63 - 1  # FromProto refuses shapes whose element count overflows int64
_MAX_RANK = 254


class TensorParseError(ValueError):
    """A TensorProto that TensorFlow's `Tensor::FromProto` rejects."""


def _plain_shape(proto):
    """(dims, elements) of a shape FromProto accepts as it is, or None (left to TensorFlow)."""
    shape = proto.tensor_shape
    if shape.unknown_rank or len(shape.dim) > _MAX_RANK:
        return None
    dims, elements = [], 1
    for dim in shape.dim:
        if dim.size < 0:
            return None
        dims.append(dim.size)
        elements *= dim.size
    if elements > _MAX_ELEMENTS:
        return None
    return dims, elements


def has_given_strings(proto):
    """Whether `proto` is a DT_STRING tensor given as `string_val` (the route of `given_string_bytes`)."""
    return proto.dtype == types_pb2.DT_STRING and not proto.tensor_content and len(proto.string_val) > 0


def given_string_bytes(array, proto):
    """The bytes of the strings `proto` gives (padded copies excluded), counted on `array`, the
    result of `proto_to_ndarray(proto)`, without copying any string again."""
    return sum(len(v) for v in array.reshape(-1)[: len(proto.string_val)])


def estimated_bytes(proto, given_strings=True):
    """The memory the tensor of `proto` takes once parsed, computed without parsing it.

    Fixed-size dtypes take elements x dtype size (whatever the request carries: missing values are
    padded); strings take `TSTRING_BYTES` per element plus their bytes, the padded copies of the
    last value included. A proto that TensorFlow would reject (bad shape or dtype) counts as 0 so
    that its parse error is reported.

    With `given_strings=False`, the bytes of the strings given in `string_val` are left out (the
    padded copies of the last one still count): the caller adds `given_string_bytes` once parsed.
    Counting them here costs a serialization of `proto` (`ByteSize()`).
    """
    shape = _plain_shape(proto)
    if shape is None or proto.dtype == types_pb2.DT_INVALID:
        return 0
    elements = shape[1]
    numeric = _NUMPY_FIELDS.get(proto.dtype)
    if numeric is not None:  # the dtypes of ids and settings, without TensorFlow's DType objects
        return elements * numeric[1].itemsize
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError:
        return 0
    if dtype != tf.string:
        try:
            return elements * dtype.size
        except (TypeError, ValueError):  # resource, variant: rejected when parsed
            return 0
    if elements == 0:
        return 0
    total = elements * TSTRING_BYTES
    if proto.tensor_content:
        return total + len(proto.tensor_content)
    given = len(proto.string_val)
    if given == 0:
        return total
    # The given strings are at most the proto's size; each element beyond them is another copy of
    # the last string.
    if given_strings:
        total += proto.ByteSize()
    if elements > given:
        total += (elements - given) * len(proto.string_val[given - 1])
    return total


def _strings_to_ndarray(proto, dims, elements):
    """A DT_STRING `string_val` tensor as FromProto reads it, each string copied once."""
    values = proto.string_val
    given = len(values)
    array = np.empty(elements, dtype=object)
    if elements and given == 0:
        array[:] = b""
    elif elements:
        kept = min(given, elements)
        array[:kept] = values[:kept]
        if elements > kept:
            array[kept:] = values[given - 1]
    return array.reshape(dims)


# Numeric dtypes that every request's settings and ids use: parsed with NumPy, by FromProto's rules.
# dtype -> (typed field, NumPy dtype in the machine's byte order, the same little-endian)
_NUMPY_FIELDS = {
    dtype: (field, np.dtype(numpy_type), np.dtype(numpy_type).newbyteorder("<"))
    for dtype, field, numpy_type in [
        (types_pb2.DT_FLOAT, "float_val", np.float32),
        (types_pb2.DT_DOUBLE, "double_val", np.float64),
        (types_pb2.DT_INT32, "int_val", np.int32),
        (types_pb2.DT_INT64, "int64_val", np.int64),
        (types_pb2.DT_BOOL, "bool_val", np.bool_),
    ]
}


def _numbers_to_ndarray(proto, dims, elements):
    """A numeric tensor of `_NUMPY_FIELDS` as FromProto reads it, or None (left to TensorFlow).

    `tensor_content` (little-endian, of exactly the tensor's size) wins over the typed field; in
    the typed field missing values repeat the last one and extra ones are dropped (none: zeros).
    """
    field, native, little = _NUMPY_FIELDS[proto.dtype]
    if proto.tensor_content:
        if len(proto.tensor_content) != elements * little.itemsize:
            return None  # TensorFlow's error message
        return np.frombuffer(proto.tensor_content, little).astype(native, copy=True).reshape(dims)
    values = getattr(proto, field)
    given = len(values)
    if given == elements:  # every value given (a request's usual case)
        return np.fromiter(values, native, given).reshape(dims)
    array = np.zeros(elements, native)
    if elements and given:
        kept = min(given, elements)
        array[:kept] = values[:kept]
        array[kept:] = values[given - 1]
    return array.reshape(dims)


def proto_to_ndarray(proto):
    """Parses a TensorProto as TF Serving does; raises `TensorParseError` where it would fail.

    String tensors come back as object arrays of `bytes` (never decoded: any byte string is valid).
    """
    if proto.dtype in _NUMPY_FIELDS:  # an eager TensorFlow op per tensor costs ~0.1 ms a request
        shape = _plain_shape(proto)
        array = _numbers_to_ndarray(proto, *shape) if shape is not None and shape[1] < 2**31 else None
        if array is not None:
            return array
    if proto.dtype == types_pb2.DT_INVALID:
        raise TensorParseError("dtype is not set")
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError as e:
        raise TensorParseError(str(e)) from None
    if dtype in (tf.resource, tf.variant) or dtype._is_ref_dtype:
        raise TensorParseError(f"dtype {dtype.name} cannot be sent in a request")
    if dtype == tf.string and not proto.tensor_content:
        shape = _plain_shape(proto)
        if shape is not None:
            return _strings_to_ndarray(proto, *shape)
    try:
        tensor = tf.io.parse_tensor(proto.SerializeToString(), out_type=dtype)
        return tensor.numpy()
    except (tf.errors.OpError, ValueError, TypeError) as e:
        raise TensorParseError(getattr(e, "message", str(e))) from None


def dtype_of(array):
    """The TensorFlow DataType enum of a NumPy array (object and bytes arrays are DT_STRING)."""
    if array.dtype.kind in ("O", "S", "U"):
        return types_pb2.DT_STRING
    return tf.dtypes.as_dtype(array.dtype).as_datatype_enum


def ndarray_to_proto(array, dtype=None):
    """Writes a NumPy array into a TensorProto with typed value fields, as TF Serving answers.

    Args:
        array: the array (object arrays hold `bytes` or `str`; `str` is UTF-8 encoded).
        dtype: the DataType enum to declare; by default derived from the array.
    """
    array = np.asarray(array)
    dtype = dtype_of(array) if dtype is None else dtype
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for size in array.shape:
        proto.tensor_shape.dim.add().size = int(size)
    flat = array.ravel()
    if dtype in _FIELDS:
        field = getattr(proto, _FIELDS[dtype])
        if dtype == types_pb2.DT_STRING:
            field.extend(v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in flat)
        else:
            field.extend(flat.tolist())
    elif dtype in _HALF_TYPES:
        proto.half_val.extend(flat.view(np.uint16).tolist())
    elif dtype in _COMPLEX_FIELDS:
        interleaved = np.stack([flat.real, flat.imag], axis=-1).ravel()
        getattr(proto, _COMPLEX_FIELDS[dtype]).extend(interleaved.tolist())
    else:
        # Quantized and other rare types: TensorFlow's own encoder.
        proto.CopyFrom(tf.make_tensor_proto(array))
    return proto


def as_request_array(value):
    """Turns client-side input (NumPy, lists, Python strings) into an array ready to send."""
    if isinstance(value, (str, bytes)):
        value = [value]
    array = np.asarray(value)
    if array.dtype.kind == "U":
        array = np.vectorize(lambda s: s.encode("utf-8"), otypes=[object])(array)
    elif array.dtype.kind == "S":
        array = array.astype(object)
    elif array.dtype == np.float64 and not isinstance(value, np.ndarray):
        # Python floats are meant as DT_FLOAT, the dtype of almost every model input.
        array = array.astype(np.float32)
    elif array.dtype == np.int64 and not isinstance(value, np.ndarray):
        array = array.astype(np.int32)
    return array
