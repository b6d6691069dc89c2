"""A TLS key pair on disk that servers pick up again when it changes, without a restart.

cert-manager, ``sidetrace webhook certs`` and a Secret volume replace the
files in place (Kubernetes swaps a symlink, so both change at once). Servers
ask ``KeyPairFiles.changed()`` (a ``stat`` of each file) and reload only a pair
that loads: a key that does not match its certificate keeps the old pair.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass, field

log = logging.getLogger(__name__)
WATCH_INTERVAL_S = 5.0


def _signature(path: str) -> tuple[int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, 0, 0)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class KeyPairFiles:
    """A PEM certificate (chain) file and its private key file."""

    cert: str
    key: str
    _seen: tuple = field(default=(), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _now(self) -> tuple:
        return (_signature(self.cert), _signature(self.key))

    def read(self) -> tuple[bytes, bytes]:
        """``(key PEM, certificate PEM)``, checked to belong together; remembers what it read."""
        with self._lock:
            seen = self._now()
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert, self.key)
            with open(self.key, "rb") as key, open(self.cert, "rb") as cert:
                pair = key.read(), cert.read()
            self._seen = seen
            return pair

    def changed(self) -> bool:
        return self._now() != self._seen

    def reloaded(self) -> tuple[bytes, bytes] | None:
        """The new pair if the files changed and load, else ``None`` (keep serving the old)."""
        if not self.changed():
            return None
        try:
            pair = self.read()
        except (OSError, ssl.SSLError) as exc:
            log.warning("TLS files %s / %s changed but do not load (%s): keeping the old pair",
                        self.cert, self.key, exc)  # fmt: skip
            self._seen = self._now()  # retry only after the next change
            return None
        log.info("TLS certificate %s reloaded", self.cert)
        return pair


def watch_ssl_context(
    context: ssl.SSLContext,
    files: KeyPairFiles,
    stop: threading.Event,
    interval_s: float = WATCH_INTERVAL_S,
) -> threading.Thread:
    """Reload ``files`` into ``context`` when they change: new handshakes use the new pair."""
    files.read()

    def run() -> None:
        while not stop.wait(interval_s):
            if files.reloaded() is not None:
                try:
                    context.load_cert_chain(files.cert, files.key)
                except (OSError, ssl.SSLError) as exc:
                    log.warning("TLS reload of %s failed: %s", files.cert, exc)

    thread = threading.Thread(target=run, name="tls-reload", daemon=True)
    thread.start()
    return thread
