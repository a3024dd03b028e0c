"""bench/results.json: every benchmark writes its own key and leaves the others as they are."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().with_name("results.json")


def save_results(key: str, figures: Any, path: Path = RESULTS) -> None:
    """Replace `key` in the results file (read, merge, atomic write). A file that is not valid
    JSON is an error rather than a fresh start: starting over would drop the other benchmarks'
    figures."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data[key] = figures
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
    print(f"figures written to {path} (key {key!r})")
