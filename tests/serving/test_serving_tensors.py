"""keras_seq.serving.tensors.proto_to_ndarray's NumPy route for numeric tensors against TensorFlow's
own C++ parser (`Tensor::FromProto` through `tf.io.parse_tensor`): the same values, dtypes and
shapes for typed fields with missing, extra or no values and for `tensor_content`, and the same
refusals."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from keras_seq.serving import tensors
from keras_seq.serving.tensors import TensorParseError, proto_to_ndarray

CASES = {
    types_pb2.DT_FLOAT: ("float_val", [1.5, -2.25, 3e38]),
    types_pb2.DT_DOUBLE: ("double_val", [1e-300, 2.0, -7.5]),
    types_pb2.DT_INT32: ("int_val", [7, -2147483648, 2147483647]),
    types_pb2.DT_INT64: ("int64_val", [2**62, -5, 0]),
    types_pb2.DT_BOOL: ("bool_val", [True, False, True]),
}


def _proto(dtype, dims, values=None, content=None):
    proto = tensor_pb2.TensorProto(dtype=dtype)
    for d in dims:
        proto.tensor_shape.dim.add().size = d
    if values is not None:
        getattr(proto, CASES[dtype][0]).extend(values)
    if content is not None:
        proto.tensor_content = content
    return proto


def _tensorflow(proto):
    return tf.io.parse_tensor(proto.SerializeToString(), out_type=tf.dtypes.as_dtype(proto.dtype)).numpy()


@pytest.mark.parametrize("dtype", list(CASES))
def test_typed_fields_parse_as_tensorflow_does(dtype):
    values = CASES[dtype][1]
    for dims, given in itertools.product([[], [0], [1], [3], [2, 2], [5], [2, 0, 3]], [0, 1, 2, 3]):
        proto = _proto(dtype, dims, values[:given])
        want, got = _tensorflow(proto), proto_to_ndarray(proto)
        assert got.dtype == want.dtype and got.shape == want.shape, (dims, given)
        np.testing.assert_array_equal(got, want, err_msg=str((dims, given)))


@pytest.mark.parametrize("dtype", list(CASES))
def test_tensor_content_parses_as_tensorflow_does_and_wins_over_typed_fields(dtype):
    array = np.asarray(CASES[dtype][1][:2] * 3, tf.dtypes.as_dtype(dtype).as_numpy_dtype).reshape(2, 3)
    proto = _proto(dtype, [2, 3], values=CASES[dtype][1][2:], content=array.tobytes())
    got = proto_to_ndarray(proto)
    np.testing.assert_array_equal(got, _tensorflow(proto))
    np.testing.assert_array_equal(got, array)
    got[0, 0] = got[0, 1]  # a writable copy, not a view of the request's bytes
    bad = _proto(dtype, [2, 3], content=array.tobytes()[:-1])  # one byte short: TensorFlow's refusal
    with pytest.raises(TensorParseError):
        proto_to_ndarray(bad)
    with pytest.raises(tf.errors.OpError):
        _tensorflow(bad)


def test_numpy_route_is_taken_for_numbers(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsed with a TensorFlow op")

    monkeypatch.setattr(tensors.tf.io, "parse_tensor", refuse)
    assert proto_to_ndarray(_proto(types_pb2.DT_INT32, [2], [4, 5])).tolist() == [4, 5]
