"""Building the real control plane's binaries from Go modules, cached by version.

kube-apiserver, kube-controller-manager and (when the machine has none) kubectl come from
`k8s.io/kubernetes` at `KUBERNETES_VERSION`, through the small module in
`scripts/control-plane-src/kube` (its go.mod pins every staging module); etcd comes from
`go.etcd.io/etcd/server/v3` through `scripts/control-plane-src/etcd`. The binaries land in
`$XDG_CACHE_HOME/gepetto/control-plane/<key>/bin`, where the key names the versions and a digest
of the Go sources, so a changed pin builds afresh and a warm machine builds nothing."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "v1.37.2"
ETCD_VERSION = "v3.6.17"

SOURCE_DIR = Path(__file__).resolve().parents[2] / "scripts" / "control-plane-src"
SERVER_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
# binary -> (module directory under SOURCE_DIR, package to build)
PACKAGES = {
    "etcd": ("etcd", "."),
    "kube-apiserver": ("kube", "./cmd/kube-apiserver"),
    "kube-controller-manager": ("kube", "./cmd/kube-controller-manager"),
    "kubectl": ("kube", "./cmd/kubectl"),
}


def version_ldflags() -> str:
    """What `make` in the kubernetes repository stamps in (`hack/lib/version.sh`); without it
    the API server reports v0.0.0-master, which kubectl refuses to parse."""
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    stamps = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "0000000000000000000000000000000000000000",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    packages = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
    return " ".join(f"-X {p}.{k}={v}" for p in packages for k, v in stamps.items())


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gepetto" / "control-plane"


def source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.rglob("*")):
        if path.is_file() and path.suffix in (".go", ".mod", ".sum"):
            digest.update(str(path.relative_to(SOURCE_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def cache_key() -> str:
    digest = hashlib.sha256(f"{source_digest()} {version_ldflags()}".encode()).hexdigest()[:12]
    return f"k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}-{digest}"


def bin_dir() -> Path:
    return cache_root() / cache_key() / "bin"


def go_command() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    fallback = Path("/usr/local/go/bin/go")
    return str(fallback) if fallback.exists() else None


@dataclass(frozen=True)
class Binaries:
    directory: Path
    kubectl: Path

    def path(self, name: str) -> Path:
        return self.directory / name


def cached() -> Binaries | None:
    """The binaries when every one is already built, else None."""
    directory = bin_dir()
    if not all((directory / name).is_file() for name in SERVER_BINARIES):
        return None
    return Binaries(directory, _kubectl(directory))


def _kubectl(directory: Path) -> Path:
    built = directory / "kubectl"
    if built.is_file():
        return built
    found = shutil.which("kubectl")
    return Path(found) if found else built


def why_unbuildable() -> str | None:
    """Why this machine cannot build the control plane, or None when it can."""
    if sys.platform != "linux":
        return f"the control plane is only built on Linux (this is {sys.platform})"
    if go_command() is None:
        return "no Go toolchain (`go` is not on PATH nor in /usr/local/go/bin)"
    if not SOURCE_DIR.is_dir():
        return f"the Go sources are missing ({SOURCE_DIR})"
    if shutil.which("openssl") is None:
        return "the `openssl` command is not installed"
    return None


def build(*, log: Path | None = None, jobs: int = 2) -> Binaries:
    """Build what is missing from the cache; returns the binaries. Raises RuntimeError with
    the tail of Go's output when a build fails."""
    reason = why_unbuildable()
    if reason is not None:
        raise RuntimeError(f"cannot build the control plane: {reason}")
    go = go_command()
    assert go is not None
    directory = bin_dir()
    directory.mkdir(parents=True, exist_ok=True)
    wanted = list(SERVER_BINARIES)
    if shutil.which("kubectl") is None:
        wanted.append("kubectl")
    env = dict(os.environ, GOFLAGS=f"-p={jobs} -trimpath -buildvcs=false", GOMAXPROCS=str(jobs))
    env["PATH"] = f"{Path(go).parent}{os.pathsep}{env.get('PATH', '')}"
    for name in wanted:
        target = directory / name
        if target.is_file():
            continue
        module, package = PACKAGES[name]
        started = time.monotonic()
        print(f"control-plane: building {name} ...", file=sys.stderr, flush=True)
        partial = directory / f".{name}.partial"
        stamp = [] if name == "etcd" else ["-ldflags", version_ldflags()]
        result = subprocess.run(
            [go, "build", *stamp, "-o", str(partial), package],
            cwd=SOURCE_DIR / module,
            env=env,
            capture_output=True,
            text=True,
        )
        if log is not None:
            with log.open("a") as out:
                out.write(result.stdout + result.stderr)
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise RuntimeError(f"go build of {name} failed:\n{tail}")
        partial.replace(target)
        print(
            f"control-plane: built {name} in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    return Binaries(directory, _kubectl(directory))
