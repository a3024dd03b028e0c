"""Run the sandbox validator as a process: ``python -m gepetto_sandbox.validator``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from gepetto_sandbox.validator.server import SandboxValidator


async def _serve(args: argparse.Namespace) -> None:
    sandbox = SandboxValidator(
        seed=args.seed, miners=args.miner, check_signatures=not args.trust_hotkey_header
    )
    if args.chutes:
        sandbox.load_generated(args.chutes, seed=args.seed)
    url = await sandbox.start(args.host, args.port)
    print(f"sandbox validator {sandbox.hotkey} listening on {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8070)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chutes", type=int, default=200, help="generated catalog size")
    parser.add_argument("--miner", action="append", default=[], help="registered miner hotkey")
    parser.add_argument("--trust-hotkey-header", action="store_true", help="skip signature checks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
