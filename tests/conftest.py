import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


import pytest


@pytest.fixture(scope="session")
def cpp_binary(tmp_path_factory):
    """TensorFlow's C++ SavedModel loader (TF Serving's), compiled once per test session."""
    import cpp_loader

    if cpp_loader.find_compiler() is None:
        pytest.skip("no C++ compiler")
    binary, seconds = cpp_loader.build(str(tmp_path_factory.mktemp("cpp")))
    print(f"compiled {cpp_loader.SOURCE} in {seconds:.1f} s")
    return binary
