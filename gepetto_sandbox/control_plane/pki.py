"""Certificates and keys of the test control plane, made with the `openssl` command line.

One CA signs the API server's serving certificate (127.0.0.1 only), the admin's client
certificate (group system:masters), the API server's client certificate for kubelets, and
the fake kubelet's serving certificate. A separate RSA key signs ServiceAccount tokens."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

DAYS = "3650"


@dataclass(frozen=True)
class Pki:
    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def ca(self) -> Path:
        return self.path("ca.crt")

    def cert(self, name: str) -> Path:
        return self.path(f"{name}.crt")

    def key(self, name: str) -> Path:
        return self.path(f"{name}.key")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)


def make_pki(target: Path) -> Pki:
    """Everything once; an existing directory is reused as it is (the keys take seconds on a
    busy machine). Made aside and renamed into place, so concurrent callers agree."""
    pki = Pki(target)
    if target.is_dir():
        return pki
    target.parent.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=".pki-", dir=target.parent))
    _make_all(directory)
    try:
        directory.rename(target)
    except OSError:  # another process got there first
        shutil.rmtree(directory, ignore_errors=True)
    return pki


def _make_all(directory: Path) -> None:
    pki = Pki(directory)
    _openssl("genrsa", "-out", "ca.key", "2048", cwd=directory)
    _openssl(
        "req", "-x509", "-new", "-nodes", "-key", "ca.key", "-days", DAYS,
        "-subj", "/CN=gepetto-test-ca", "-out", "ca.crt", cwd=directory,
    )  # fmt: skip
    _signed(pki, "apiserver", "/CN=kube-apiserver", server=True)
    _signed(pki, "kubelet", "/CN=fake-kubelet", server=True)
    _signed(pki, "admin", "/O=system:masters/CN=admin")
    _signed(pki, "apiserver-kubelet-client", "/O=system:masters/CN=kube-apiserver-kubelet")
    _signed(pki, "controller-manager", "/CN=system:kube-controller-manager")
    _openssl("genrsa", "-out", "service-account.key", "2048", cwd=directory)
    _openssl(
        "rsa", "-in", "service-account.key", "-pubout", "-out", "service-account.pub",
        cwd=directory,
    )  # fmt: skip


def _signed(pki: Pki, name: str, subject: str, *, server: bool = False) -> None:
    directory = pki.directory
    extensions = directory / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    lines = [
        "basicConstraints=CA:FALSE",
        "keyUsage=digitalSignature,keyEncipherment",
        f"extendedKeyUsage={usage}",
    ]
    if server:
        lines.append("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes")
    extensions.write_text("\n".join(lines) + "\n")
    _openssl("genrsa", "-out", f"{name}.key", "2048", cwd=directory)
    _openssl(
        "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", DAYS, "-extfile", extensions.name, "-out", f"{name}.crt",
        cwd=directory,
    )  # fmt: skip
