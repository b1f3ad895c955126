"""Serving: a TF-Serving-compatible local gRPC and REST server, clients, and TF Serving's config files.

This package never imports model code (nothing from `keras_seq` outside `keras_seq.serving`, and
never `keras`): it serves SavedModels as TF Serving does.
"""

from keras_seq.serving.errors import ServingError


def __getattr__(name):
    # The server and client import TensorFlow; load them only when they are asked for.
    if name == "Client":
        from keras_seq.serving.client import Client

        return Client
    if name == "RestClient":
        from keras_seq.serving.rest_client import RestClient

        return RestClient
    if name == "create_server":
        from keras_seq.serving.server import create_server

        return create_server
    raise AttributeError(f"module 'keras_seq.serving' has no attribute {name!r}")


__all__ = ["Client", "RestClient", "ServingError", "create_server"]
