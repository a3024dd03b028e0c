"""`python -m gepetto_sandbox.control_plane build|up|down|status` (scripts/control-plane).

build   build (or find cached) etcd, kube-apiserver, kube-controller-manager [, kubectl]
up      start them in the state directory, make the `chutes` namespace and gepetto's
        ServiceAccount, start a fake kubelet, print the kubeconfig paths
down    stop everything `up` started
status  what runs, with its memory
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gepetto_sandbox.cluster.fleet import build_fleet
from gepetto_sandbox.control_plane import binaries as building
from gepetto_sandbox.control_plane.bootstrap import (
    SERVICE_ACCOUNT,
    apply_rbac,
    ensure_namespace,
    ensure_runtime_class,
    service_account_token,
)
from gepetto_sandbox.control_plane.cluster import admin_client
from gepetto_sandbox.control_plane.kubelet import FakeKubelet
from gepetto_sandbox.control_plane.launch import ControlPlane


def default_state_dir() -> Path:
    return building.cache_root() / "run"


def _say(message: str) -> None:
    print(f"control-plane: {message}", file=sys.stderr, flush=True)


def cmd_build(_: argparse.Namespace) -> int:
    found = building.cached()
    if found is not None:
        _say(f"cached in {found.directory}")
        return 0
    reason = building.why_unbuildable()
    if reason is not None:
        _say(f"CANNOT BUILD: {reason}")
        return 2
    started = time.monotonic()
    log = building.cache_root() / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    binaries = building.build(log=log)
    _say(f"built in {time.monotonic() - started:.0f} s into {binaries.directory}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    binaries = building.cached()
    if binaries is None:
        _say("not built yet: run `scripts/control-plane build` first")
        return 2
    plane = ControlPlane(binaries, args.state_dir)
    if any(plane.running().values()):
        _say(f"already up in {args.state_dir} (run `down` first)")
        return 1
    started = time.monotonic()
    plane.up()
    token = asyncio.run(_bootstrap(plane))
    gepetto = args.state_dir / "gepetto.kubeconfig"
    config = plane.token_kubeconfig(
        token, f"system:serviceaccount:chutes:{SERVICE_ACCOUNT}", "chutes"
    )
    gepetto.write_text(json.dumps(config, indent=2))
    kubelet_log = (args.state_dir / "kubelet.log").open("ab")
    kubelet = subprocess.Popen(
        [sys.executable, "-m", "gepetto_sandbox.control_plane", "kubelet", str(args.state_dir)],
        stdout=kubelet_log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (args.state_dir / "kubelet.pid").write_text(str(kubelet.pid))
    _say(f"up in {time.monotonic() - started:.1f} s ({plane.server})")
    print(f"export KUBECONFIG={plane.admin_kubeconfig_path}   # admin (system:masters)")
    print(f"# gepetto's ServiceAccount: {gepetto}")
    return 0


async def _bootstrap(plane: ControlPlane) -> str:
    api = await admin_client(plane.admin_kubeconfig())
    try:
        for namespace in ("default", "chutes"):
            await ensure_namespace(api, namespace)
        await ensure_runtime_class(api)
        await apply_rbac(api, "chutes")
        return await service_account_token(api, "chutes")
    finally:
        await api.close()


def cmd_kubelet(args: argparse.Namespace) -> int:
    """The fake kubelet of `up`, in its own process until SIGTERM."""
    binaries = building.cached()
    assert binaries is not None
    plane = ControlPlane(binaries, args.state_dir)

    async def run() -> None:
        api = await admin_client(plane.admin_kubeconfig())
        kubelet = FakeKubelet(api, build_fleet(seed=0), pki_dir=plane.pki.directory)
        await kubelet.start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await kubelet.stop()
        await api.close()

    asyncio.run(run())
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    pid_file = args.state_dir / "kubelet.pid"
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        pid_file.unlink()
    binaries = building.cached() or building.Binaries(building.bin_dir(), Path("kubectl"))
    ControlPlane(binaries, args.state_dir).down()
    _say("down")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    binaries = building.cached()
    if binaries is None:
        reason = building.why_unbuildable()
        _say(f"not built ({reason or 'run `scripts/control-plane build`'})")
        return 1
    plane = ControlPlane(binaries, args.state_dir)
    rss = plane.rss_mib()
    for name, pid in plane.running().items():
        state = f"pid {pid}, {rss.get(name, 0):.0f} MiB" if pid else "stopped"
        print(f"{name:24} {state}")
    print(f"binaries: {binaries.directory}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="control-plane", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "up", "down", "status", "kubelet"):
        command = sub.add_parser(name)
        if name != "build":
            command.add_argument("state_dir", nargs="?", type=Path, default=default_state_dir())
    args = parser.parse_args(argv)
    handlers = {
        "build": cmd_build,
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "kubelet": cmd_kubelet,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
