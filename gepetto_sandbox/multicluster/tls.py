"""A throw-away certificate authority and a server certificate for 127.0.0.1, made once per
process with the openssl CLI, so sandbox API servers speak HTTPS like a real kube-apiserver
(kubectl sends bearer tokens only over TLS)."""

from __future__ import annotations

import atexit
import base64
import functools
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class SandboxTls:
    ca_pem: bytes
    cert_file: Path
    key_file: Path

    @property
    def ca_data(self) -> str:
        """`certificate-authority-data` for a kubeconfig."""
        return base64.b64encode(self.ca_pem).decode()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def tls_available() -> bool:
    return shutil.which("openssl") is not None


@functools.cache
def sandbox_tls() -> SandboxTls:
    """One CA and one 127.0.0.1 server certificate for every sandbox cluster of the process
    (each cluster still has its own tokens)."""
    workdir = Path(tempfile.mkdtemp(prefix="gepetto-sandbox-tls-"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    ca_key, ca_crt = workdir / "ca.key", workdir / "ca.crt"
    key, csr, crt = workdir / "server.key", workdir / "server.csr", workdir / "server.crt"
    ext = workdir / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    commands = [
        ["openssl", "req", "-x509", *_EC, "-keyout", ca_key, "-out", ca_crt, "-days", "3650",
         "-subj", "/CN=gepetto-sandbox-ca",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", *_EC, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
         "-CAcreateserial", "-out", crt, "-days", "3650", "-extfile", ext],
    ]  # fmt: skip
    for command in commands:
        subprocess.run([str(c) for c in command], check=True, capture_output=True)
    return SandboxTls(ca_crt.read_bytes(), crt, key)
