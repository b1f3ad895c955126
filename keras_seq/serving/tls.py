"""Startup checks of an `--ssl_config_file`: its key and certificates load, and the key matches.

gRPC reads the PEM text only when the port is bound or a client connects, so a wrong or mismatched
key would otherwise show up as clients failing their handshakes. TF Serving makes no such check;
here it runs before any model loads and gives one line naming the file. `cryptography` is imported
only when TLS is configured.
"""

import datetime
import logging

log = logging.getLogger("keras_seq.serving")


def _load_certificates(x509, text, field, source):
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        certificates = []
    if not certificates:
        raise ValueError(f"{source}: {field} is not PEM certificate text (-----BEGIN CERTIFICATE-----)")
    return certificates


def _warn_if_not_valid_now(certificate, field, source, now):
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    subject = certificate.subject.rfc4514_string()
    if now < start:
        log.warning(
            "%s: the %s certificate (%s) is not valid yet: valid from %s to %s", source, field, subject, start, end
        )
    elif now > end:
        log.warning("%s: the %s certificate (%s) expired on %s (valid from %s)", source, field, subject, end, start)


def check_ssl_config(ssl, source):
    """Checks an SSLConfig; raises ValueError (one line naming `source`), warns about dates.

    Args:
        ssl: the parsed SSLConfig (server_key, server_cert, custom_ca, client_verify).
        source: how to name it in messages, e.g. "--ssl_config_file /etc/ssl.config".
    """
    if not ssl.server_key or not ssl.server_cert:
        raise ValueError(f"{source}: the SSL config needs both server_key and server_cert (PEM text)")
    if ssl.client_verify and not ssl.custom_ca:
        raise ValueError(f"{source}: client_verify needs custom_ca to verify client certificates against")
    try:
        from cryptography import x509
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization
    except ImportError:
        raise ValueError(f"{source}: checking the TLS key needs the 'cryptography' package") from None
    try:
        key = serialization.load_pem_private_key(ssl.server_key.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(
            f"{source}: server_key is not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)"
        ) from None
    chain = _load_certificates(x509, ssl.server_cert, "server_cert", source)
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if chain[0].public_key().public_bytes(*der) != key.public_key().public_bytes(*der):
        raise ValueError(
            f"{source}: server_key does not match server_cert (the certificate of "
            f"{chain[0].subject.rfc4514_string()} holds another public key)"
        )
    now = datetime.datetime.now(datetime.timezone.utc)
    for certificate in chain:
        _warn_if_not_valid_now(certificate, "server_cert", source, now)
    if ssl.custom_ca:
        for certificate in _load_certificates(x509, ssl.custom_ca, "custom_ca", source):
            _warn_if_not_valid_now(certificate, "custom_ca", source, now)
