"""Starting and stopping etcd, kube-apiserver and kube-controller-manager on 127.0.0.1.

Everything lives in one state directory: certificates (`pki/`), etcd's data, each process's
log and pid file, and the admin kubeconfig. The API server runs with RBAC, client-certificate
authentication for the admin (group system:masters) and ServiceAccount tokens signed by a key
of its own; the controller manager runs the Job, garbage-collector, namespace and ServiceAccount
controllers (no scheduler: gepetto pins every pod to its node)."""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gepetto_sandbox.control_plane.binaries import Binaries
from gepetto_sandbox.control_plane.pki import Pki, make_pki

CONTROLLERS = "job,garbagecollector,namespace,serviceaccount"
PROCESSES = ("etcd", "kube-apiserver", "kube-controller-manager")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def kubeconfig_dict(
    server: str, ca: Path, *, user: str, cert: Path | None = None, key: Path | None = None,
    token: str | None = None, namespace: str = "default",
) -> dict[str, Any]:  # fmt: skip
    credentials: dict[str, str] = {}
    if cert is not None and key is not None:
        credentials = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    if token is not None:
        credentials = {"token": token}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "real", "cluster": {"server": server, "certificate-authority-data": _b64(ca)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {"name": user, "context": {"cluster": "real", "user": user, "namespace": namespace}}
        ],
        "current-context": user,
    }


class ControlPlane:
    """One control plane in `state_dir`. `up()` returns once /readyz answers ok."""

    def __init__(
        self,
        binaries: Binaries,
        state_dir: Path,
        pki_dir: Path | None = None,
        *,
        outlive_caller: bool = True,
    ) -> None:
        """`pki_dir` (default: inside `state_dir`) may be shared by many control planes.
        With `outlive_caller` false (tests) they are stopped when the calling interpreter
        exits, even if nobody called `down` (an interrupted run); only SIGKILL skips that."""
        self.binaries = binaries
        self.state_dir = state_dir
        self._outlive_caller = outlive_caller
        self.pki: Pki = Pki(pki_dir or state_dir / "pki")
        self._ports_file = state_dir / "ports.json"

    # -- paths and addresses ------------------------------------------------------------
    @property
    def ports(self) -> Ports:
        return Ports(**json.loads(self._ports_file.read_text()))

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.apiserver}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.etcd_client}"

    @property
    def admin_kubeconfig_path(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    def admin_kubeconfig(self, namespace: str = "default") -> dict[str, Any]:
        return kubeconfig_dict(
            self.server, self.pki.ca, user="admin",
            cert=self.pki.cert("admin"), key=self.pki.key("admin"), namespace=namespace,
        )  # fmt: skip

    def token_kubeconfig(self, token: str, user: str, namespace: str) -> dict[str, Any]:
        return kubeconfig_dict(
            self.server, self.pki.ca, user=user, token=token, namespace=namespace
        )

    def log_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"

    def _pid_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.pid"

    # -- lifecycle ----------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._outlive_caller:
            atexit.register(self.down)
        make_pki(self.pki.directory)
        ports = Ports.pick()
        self._ports_file.write_text(json.dumps(ports.__dict__))
        self.admin_kubeconfig_path.write_text(json.dumps(self.admin_kubeconfig(), indent=2))
        deadline = time.monotonic() + timeout
        self._spawn("etcd", self._etcd_args(ports))
        self._wait(f"{self.etcd_url}/health", deadline, "etcd")
        self._spawn("kube-apiserver", self._apiserver_args(ports))
        self._wait(f"{self.server}/readyz", deadline, "kube-apiserver")
        self._spawn("kube-controller-manager", self._controller_manager_args(ports))
        self._wait(
            f"https://127.0.0.1:{ports.controller_manager}/healthz", deadline,
            "kube-controller-manager", verify=False,
        )  # fmt: skip

    def down(self) -> None:
        for name in reversed(PROCESSES):
            pid_file = self._pid_path(name)
            if not pid_file.exists():
                continue
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                for _ in range(100):
                    os.kill(pid, 0)  # raises once it is gone
                    _reap(pid)
                    time.sleep(0.05)
                os.kill(pid, signal.SIGKILL)
                _reap(pid)
            pid_file.unlink()

    def running(self) -> dict[str, int | None]:
        """Each process's pid while it runs, else None."""
        states: dict[str, int | None] = {}
        for name in PROCESSES:
            pid_file = self._pid_path(name)
            pid = int(pid_file.read_text()) if pid_file.exists() else None
            if pid is not None:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    pid = None
            states[name] = pid
        return states

    def rss_mib(self) -> dict[str, float]:
        """Resident memory of each running process (from /proc)."""
        sizes: dict[str, float] = {}
        for name, pid in self.running().items():
            if pid is None:
                continue
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes[name] = int(line.split()[1]) / 1024
        return sizes

    # -- processes ----------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        with self.log_path(name).open("ab") as log:
            process = subprocess.Popen(
                [str(self.binaries.path(name)), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # no terminal signals from the caller's session
                env=dict(os.environ, GOMAXPROCS=os.environ.get("GEPETTO_CP_GOMAXPROCS", "2")),
            )
        self._pid_path(name).write_text(str(process.pid))

    def _wait(self, url: str, deadline: float, name: str, *, verify: bool = True) -> None:
        context = ssl.create_default_context(cafile=str(self.pki.ca))
        if not verify:
            context = ssl._create_unverified_context()
        else:
            context.load_cert_chain(str(self.pki.cert("admin")), str(self.pki.key("admin")))
        last = "no answer"
        while time.monotonic() < deadline:
            if self.running()[name] is None:
                raise RuntimeError(f"{name} exited; the end of its log:\n{self._tail(name)}")
            try:
                with urllib.request.urlopen(url, context=context, timeout=5) as answer:
                    body = answer.read().decode()
                    if answer.status == 200 and body.strip().startswith(("ok", "{")):
                        return
                    last = body[:200]
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready at {url}: {last}\n{self._tail(name)}")

    def _tail(self, name: str, lines: int = 25) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path(name).read_text().splitlines()[-lines:])
        return ""

    def _etcd_args(self, ports: Ports) -> list[str]:
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        client = f"http://127.0.0.1:{ports.etcd_client}"
        return [
            "--name=gepetto-test",
            f"--data-dir={self.state_dir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=gepetto-test={peer}",
            "--unsafe-no-fsync",  # a throw-away test store
            "--log-level=warn",
        ]

    def _apiserver_args(self, ports: Ports) -> list[str]:
        pki = self.pki
        return [
            f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # A loopback address cannot back the `kubernetes` Service's endpoints; nothing in
            # the tests reaches the API server through that Service.
            "--endpoint-reconciler-type=none",
            f"--secure-port={ports.apiserver}",
            f"--cert-dir={self.state_dir / 'apiserver-certs'}",
            f"--tls-cert-file={pki.cert('apiserver')}",
            f"--tls-private-key-file={pki.key('apiserver')}",
            f"--client-ca-file={pki.ca}",
            "--authorization-mode=Node,RBAC",
            "--anonymous-auth=false",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki.path('service-account.pub')}",
            f"--service-account-signing-key-file={pki.key('service-account')}",
            "--api-audiences=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
            f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
            f"--kubelet-certificate-authority={pki.ca}",
            "--kubelet-preferred-address-types=InternalIP",
            "--allow-privileged=true",
            "--profiling=false",
            # ConfigMap watches are served by etcd itself, so a compaction there expires
            # their old resource versions (tests/integration/kube: the 410 test).
            "--watch-cache-sizes=configmaps#0",
            "--v=0",
        ]

    def _controller_manager_args(self, ports: Ports) -> list[str]:
        return [
            f"--kubeconfig={self.admin_kubeconfig_path}",
            f"--controllers={CONTROLLERS}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.controller_manager}",
            f"--root-ca-file={self.pki.ca}",
            f"--cert-dir={self.state_dir / 'controller-manager-certs'}",
            "--concurrent-gc-syncs=5",
            "--v=0",
        ]


def _reap(pid: int) -> None:
    """Collect our own exited child (a no-op for processes of an earlier `up`)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
