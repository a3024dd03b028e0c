"""`gepetto demo` run as an operator would: a scripted console session on standard input, and
Ctrl-C. The autoscaler must place chutes, `scales` must answer, and nothing may be left running.
The demo runs the multi-cluster layout unless told `--layout single`; the scripted session runs
in both layouts (and, in multi, with both state sources)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

import psutil
import pytest

from tests.integration.kubectl_tool import KUBECTL, kubectl

GEPETTO = [sys.executable, "-m", "bot.main", "demo"]
REPO_ROOT = Path(__file__).resolve().parents[3]


def demo_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEPETTO_", "POSTGRESQL"))}
    env["GEPETTO_DATA_DIR"] = str(data_dir)
    return env


def leftovers(data_dir: Path) -> list[str]:
    """Processes still holding anything under the demo's data folder (the embedded server)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline[:120]}")
    return found


REDIS_SERVER = shutil.which("redis-server")
LAYOUTS = {
    "multi": ([], "multi (detected)"),
    "multi-direct": (["--source", "direct"], "multi (detected)"),
    "single": (["--layout", "single"], "single (detected)"),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
async def test_a_scripted_demo_places_chutes_and_stops_cleanly(
    service_tmp_path: Path, layout: str
) -> None:
    args, shown = LAYOUTS[layout]
    proc = await asyncio.create_subprocess_exec(
        *GEPETTO,
        *args,
        env=demo_env(service_tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen: list[str] = []
    async with asyncio.timeout(180):  # a hang detector
        # The script goes on once the autoscaler has placed chutes (was `wait 15`: a loaded
        # machine may take longer to start the demo and finish a round).
        while not (seen and "[autoscaler] active round:" in seen[-1] and " deployed" in seen[-1]):
            line = await proc.stdout.readline()
            assert line, "".join(seen)
            seen.append(line.decode())
        if layout != "single":
            await pods_through_each_context(service_tmp_path / "kubeconfig", "".join(seen))
        proc.stdin.write(b"nodes\nscales -g h100\ninsts\nautoscaler status\nquit\n")
        await proc.stdin.drain()
        proc.stdin.close()
        rest = await proc.stdout.read()
        await proc.wait()
    text = "".join(seen) + rest.decode()
    assert proc.returncode == 0, text
    assert "gepetto demo is running." in text and "KUBECONFIG=" in text
    assert f"layout:     {shown}" in text, text
    if layout == "multi":
        source = "state:      monitor" if REDIS_SERVER else "state:      direct"
        assert source in text, text
    elif layout == "multi-direct":
        assert "state:      direct" in text, text
    assert "[autoscaler] active round:" in text and " deployed" in text, text
    assert "Servers (6)" in text
    assert "Best chute x server combinations" in text  # scales answered
    assert "Chute instances" in text and "autoscaler: active" in text
    assert "demo stopped" in text
    assert "end of input" not in text  # `quit` is an ordinary stop, not the end of the script
    assert leftovers(service_tmp_path) == []
    assert not (service_tmp_path / "pgdata" / "postmaster.pid").exists()


async def pods_through_each_context(kubeconfig: Path, banner: str) -> None:
    """The hint the banner prints works: `kubectl --context SERVER` reaches that server's own
    cluster, and the chutes just deployed are there."""
    assert "kubectl --context " in banner and f"KUBECONFIG={kubeconfig}" in banner, banner
    if KUBECTL is None:
        return
    servers = re.findall(r"([\w-]+) \(\d+×", banner.split("fleet:", 1)[1].splitlines()[0])
    assert len(servers) == 6, banner
    pods = 0
    for server in servers:
        context = ("--context", server)
        code, out, err = await kubectl(kubeconfig, *context, "get", "nodes", "-o", "name")
        assert (code, out.split()) == (0, [f"node/{server}"]), err
        code, out, err = await kubectl(kubeconfig, *context, "get", "pods", "-o", "name")
        assert code == 0, err
        pods += len(out.split())
    assert pods > 0


@pytest.mark.parametrize("script", [None, "nodes\n"], ids=["dev-null", "script-without-quit"])
async def test_the_end_of_a_script_ends_the_demo(
    service_tmp_path: Path, script: str | None
) -> None:
    """A script that ends without `quit` ends the demo, as the end of a shell script does.
    /dev/null is a device the event loop cannot poll: it used to leave the demo waiting forever.
    The timeout is only a safety net; the assertions are the exit status and the output."""
    if script is None:
        stdin_path = Path(os.devnull)
    else:
        stdin_path = service_tmp_path / "script.txt"
        stdin_path.write_text(script)
    with stdin_path.open("rb") as stdin:
        proc = await asyncio.create_subprocess_exec(
            *GEPETTO,
            env=demo_env(service_tmp_path / "data"),
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
    text = out.decode()
    assert proc.returncode == 0, text
    assert "end of input: stopping the demo" in text, text
    assert "demo stopped" in text
    if script is not None:
        assert "Servers (6)" in text  # the script's command ran before the end
    assert leftovers(service_tmp_path / "data") == []


async def test_ctrl_c_stops_everything(service_tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *GEPETTO,
        env=demo_env(service_tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(120):
        while b"gepetto demo is running." not in await proc.stdout.readline():
            pass
    proc.send_signal(signal.SIGINT)
    out = await asyncio.wait_for(proc.stdout.read(), timeout=60)
    assert await proc.wait() == 0, out.decode()
    assert b"demo stopped" in out
    assert leftovers(service_tmp_path) == []


@pytest.fixture(autouse=True)
def _no_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEPETTO_SLACK_BOT_TOKEN", raising=False)


async def test_with_slack_tokens_the_demo_connects_the_bot(service_tmp_path: Path) -> None:
    from gepetto_sandbox.slack import SlackDouble
    from gepetto_sandbox.slack.signing import slash_command_payload

    slack = SlackDouble(bot_token="xoxb-demo-secret", app_token="xapp-1-demo-secret")
    base_url = await slack.start()
    env = demo_env(service_tmp_path)
    env.update(
        GEPETTO_SLACK_BOT_TOKEN="xoxb-demo-secret",
        GEPETTO_SLACK_APP_TOKEN="xapp-1-demo-secret",
        GEPETTO_SLACK_API_BASE_URL=base_url,
        GEPETTO_ROLES='{"U0OPERATOR": "operator"}',
    )
    proc = await asyncio.create_subprocess_exec(
        *GEPETTO,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await slack.wait_for_socket(timeout=90)
        ack = await slack.send_envelope(
            "slash_commands",
            slash_command_payload("nodes", response_url=slack.new_response_url()),
        )
        assert ack.payload is not None
        answer = await slack.wait_for_call("response_url", timeout=30)
        assert "h100" in str(answer.args)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        out = await asyncio.wait_for(proc.stdout.read(), timeout=60)  # type: ignore[union-attr]
        await proc.wait()
        await slack.stop()
    text = out.decode()
    assert "Slack bot connected" in text
    assert "demo-secret" not in text  # tokens never printed


async def test_the_readme_demo_command_works_as_written(service_tmp_path: Path) -> None:
    """`make demo` from the README, run in this checkout (the test run already built .venv)."""
    root = REPO_ROOT
    readme = (root / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    proc = await asyncio.create_subprocess_exec(
        "make",
        "--no-print-directory",
        "demo",
        cwd=root,
        env=demo_env(service_tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(b"nodes\nquit\n"), timeout=600)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "Servers (6)" in text and "demo stopped" in text
    assert leftovers(service_tmp_path) == []


async def test_fleet_and_report_work_on_the_sandbox_fleet(service_tmp_path: Path) -> None:
    """#26: the grid, the report over the history the demo records (every 10 s), and both
    PNGs written with --png."""
    fleet_png, report_png = service_tmp_path / "fleet.png", service_tmp_path / "report.png"
    script = (
        f"wait 35\nfleet\nreport 24h\nfleet --png {fleet_png}\nreport 24h --png {report_png}\n"
        "quit\n"
    )
    proc = await asyncio.create_subprocess_exec(
        *GEPETTO,
        env=demo_env(service_tmp_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(script.encode()), timeout=240)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "fleet · autoscaler active" in text and "# running" in text, text
    assert "GPUs on 6 servers" in text, text
    assert "fleet report, last 24h" in text and "GPU occupancy" in text, text
    assert "No fleet history" not in text, text
    for path in (fleet_png, report_png):
        assert f"wrote {path}" in text
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert leftovers(service_tmp_path) == []
