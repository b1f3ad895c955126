"""TensorProto <-> NumPy, the way TF Serving reads requests and writes responses.

Requests are parsed by TensorFlow's own C++ `Tensor::FromProto` (reached through
`tf.io.parse_tensor`), so every quirk of TF Serving's parsing is kept: missing values are padded
with the last one, extra values are dropped, `tensor_content` wins over typed fields, and a
negative dim, an unset dtype or a `tensor_content` of the wrong length is rejected.

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


class TensorParseError(ValueError):
    """A TensorProto that TensorFlow's `Tensor::FromProto` rejects."""


def proto_to_ndarray(proto):
    """Parses a TensorProto as TF Serving does; raises `TensorParseError` where it would fail.

    String tensors come back as object arrays of `bytes` (never decoded: any byte string is valid).
    """
    if proto.dtype == types_pb2.DT_INVALID:
        raise TensorParseError("dtype is not set")
    try:
        dtype = tf.dtypes.as_dtype(proto.dtype)
    except TypeError as e:
        raise TensorParseError(str(e)) from None
    if dtype in (tf.resource, tf.variant) or dtype._is_ref_dtype:
        raise TensorParseError(f"dtype {dtype.name} cannot be sent in a request")
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
