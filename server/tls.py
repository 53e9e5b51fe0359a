"""TLS credentials that follow their files: a renewed certificate (cert-manager, certbot,
a rotated Kubernetes secret) is served to new connections without restarting the server.

gRPC asks :meth:`CertificateFiles.fetch` before every new connection's handshake; it
answers a new configuration only when the files changed, and only once they have stayed
unchanged for ``SETTLE`` seconds, so a certificate and key written one after the other are
never served half-updated. Connections already open keep the certificate they began with.
The metrics endpoint asks :meth:`CertificateFiles.ssl_context` the same way, per connection.
"""

from __future__ import annotations

import logging
import re
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc

log = logging.getLogger("deltacloud.server.tls")

#: Seconds the files must stay unchanged before they are served.
SETTLE = 1.0

Stamp = tuple[tuple[int, int, int], ...]
T = TypeVar("T")


class CertificateFiles:
    """The server's certificate chain and key (and, for mutual TLS, the client CA)."""

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.cert, self.key, self.client_ca = cert, key, client_ca
        try:
            self._served = self._stamp()
        except OSError:  # credentials() says which file, and why
            self._served = ()
        self._seen = self._served
        self._seen_at = time.monotonic()
        self._warned: Stamp | None = None
        self._context: ssl.SSLContext | None = None

    def _paths(self) -> list[Path]:
        return [p for p in (self.cert, self.key, self.client_ca) if p is not None]

    def _stamp(self) -> Stamp:
        stats = [path.stat() for path in self._paths()]
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def check(self) -> None:
        """Raise (ssl.SSLError, an OSError) unless the files are PEM, and the key is the
        certificate's: a pair caught mid-renewal is not served."""
        self._load_context()

    def _load_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # An encrypted key: OpenSSL would ask for its passphrase on the terminal.
        context.load_cert_chain(self.cert, self.key, password=self._no_passphrase)
        if self.client_ca is not None:
            context.load_verify_locations(self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context

    def _no_passphrase(self) -> str:
        raise ValueError(
            f"--tls-key {self.key} is encrypted: the server takes an unencrypted key (file "
            "permissions protect it)"
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The files as a Python TLS server's context (the metrics endpoint's), to ask
        before each handshake: reloaded as ``fetch`` reloads gRPC's (a client certificate
        required when there is a client CA). The first call raises as ``check`` does."""
        if self._context is None:
            self._context = self._load_context()
        else:
            self._context = self._reload(self._load_context) or self._context
        return self._context

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        self.check()
        return grpc.ssl_server_certificate_configuration(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.client_ca.read_bytes() if self.client_ca else None,
        )

    def check_each(self) -> None:
        """ValueError naming the flag of the first file that cannot be read or holds no PEM
        block of its kind: a file missing said "[Errno 2] No such file or directory", and
        a certificate and key swapped, or a key given as the client CA, OpenSSL's
        "[SSL] PEM lib" or NO_CERTIFICATE_OR_CRL_FOUND, blaming the certificate and key."""
        for flag, path, kind, block in (
            ("--tls-cert", self.cert, "certificate", "CERTIFICATE"),
            ("--tls-key", self.key, "private key", "PRIVATE KEY"),
            ("--tls-client-ca", self.client_ca, "CA certificate", "CERTIFICATE"),
        ):
            if path is None:
                continue
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ValueError(f"{flag} {path}: {exc.strerror or exc}") from None
            if not re.search(rb"-----BEGIN [A-Z0-9 ]*" + block.encode() + b"-----", data):
                raise ValueError(
                    f"{flag} {path} holds no PEM {kind} (a -----BEGIN {block}----- block)"
                )

    def credentials(self) -> grpc.ServerCredentials:
        """The server's credentials; ValueError naming the problem when the files are not
        a usable certificate and key."""
        self.check_each()
        try:
            initial = self.configuration()
        except ssl.SSLError as exc:
            raise ValueError(
                f"--tls-cert {self.cert} and --tls-key {self.key}"
                + (f" (--tls-client-ca {self.client_ca})" if self.client_ca else "")
                + f" are not a usable PEM certificate and its key: {exc.reason or exc}"
            ) from None
        except OSError as exc:  # a directory, unreadable, gone
            raise ValueError(
                f"--tls-cert {self.cert}, --tls-key {self.key}"
                + (f" or --tls-client-ca {self.client_ca}" if self.client_ca else "")
                + f" cannot be read: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
            ) from None
        return grpc.dynamic_ssl_server_credentials(
            initial,
            # gRPC documents None as "keep the current configuration"; its stubs omit it.
            self.fetch,  # type: ignore[arg-type]
            require_client_authentication=self.client_ca is not None,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each handshake: the new configuration when the files
        changed and have settled, else None (keep the current one). Never raises: a file
        missing or unreadable keeps the current certificate."""
        return self._reload(self.configuration)

    def _reload(self, load: Callable[[], T]) -> T | None:
        """``load()`` when the files changed since they were last served and have stayed
        unchanged for SETTLE seconds, else None. Never raises: files that are missing or
        not a usable certificate and key are warned of once and the current ones kept."""
        try:
            stamp = self._stamp()
            if stamp == self._served:
                return None
            now = time.monotonic()
            if stamp != self._seen:
                self._seen, self._seen_at = stamp, now
            # Settled: unchanged for SETTLE seconds, by the files' own times (a renewal
            # long done is served to the very next connection), or, should their times be
            # off, since this server first saw them so.
            newest = max(modified for _inode, modified, _size in stamp) / 1e9
            if time.time() - newest < SETTLE and now - self._seen_at < SETTLE:
                return None
            loaded = load()
        except (OSError, ValueError) as exc:
            if self._warned != self._seen:  # once per change of the files, not per connection
                self._warned = self._seen
                reason = getattr(exc, "reason", None) or type(exc).__name__
                log.warning(
                    "the TLS files changed but are not a usable certificate and key; "
                    "serving the current certificate",
                    extra={"fields": {"cert": str(self.cert), "error": str(reason)}},
                )
            return None
        self._served = stamp
        log.info("TLS certificate reloaded", extra={"fields": {"cert": str(self.cert)}})
        return loaded
