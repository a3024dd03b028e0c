"""The fleet map and report PNGs on fixed fleets: they decode, have the layout's size, every
state's colour is where the layout put that state, and 100 servers x 8 GPUs stay legible."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from PIL import Image

from gepetto_core.models.history import STATE_ORDER, SlotState
from gepetto_core.render_png import (
    CELL,
    FONT_PX,
    NAME_CHARS,
    REPORT_SIZE,
    STATE_COLOURS,
    fleet_layout,
    render_fleet_png,
    render_report_png,
)
from gepetto_core.services.fleet_report import fleet_report
from gepetto_sandbox.fleet_samples import T0, every_state_server, sample_fleet, sample_history


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image.convert("RGB")


@pytest.fixture(scope="module")
def big_fleet_png() -> tuple[bytes, object]:
    fleet = sample_fleet(100, 8)
    return render_fleet_png(fleet), fleet


def test_fleet_png_decodes_at_the_layout_size(big_fleet_png: tuple[bytes, object]) -> None:
    png, fleet = big_fleet_png
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    layout = fleet_layout(fleet)  # type: ignore[arg-type]
    image = _decode(png)
    assert image.size == (layout.width, layout.height)


def test_every_slot_shows_its_state_colour(big_fleet_png: tuple[bytes, object]) -> None:
    """All 800 slots of the 100-server fleet, read back from the pixels. The corner of a slot
    is sampled: chute names are drawn across the middle of a run."""
    png, fleet = big_fleet_png
    layout = fleet_layout(fleet)  # type: ignore[arg-type]
    image = _decode(png)
    seen: set[SlotState] = set()
    for server, boxes in zip(fleet.servers, layout.slots, strict=True):  # type: ignore[attr-defined]
        states = [run.state for run in server.slots()]
        assert [state for _, state in boxes] == states
        for box, state in boxes:
            assert image.getpixel((box.x + 2, box.y + 2)) == _rgb(STATE_COLOURS[state]), (
                server.name,
                state,
            )
            seen.add(state)
    assert seen == set(STATE_ORDER), "the fixed fleet shows every state"


def test_the_every_state_server_in_slot_order() -> None:
    """One server, slot i in a known state: the colours along its row, left to right."""
    server = every_state_server()
    fleet = sample_fleet(1, 8).model_copy(update={"servers": [server]})
    image = _decode(render_fleet_png(fleet))
    boxes = fleet_layout(fleet).slots[0]
    expected = [
        SlotState.RUNNING,
        SlotState.STARTING,
        SlotState.CRASHING,
        SlotState.BACKED_OFF,
        SlotState.IDLE,
        SlotState.IDLE,
        SlotState.LOCKED,
        SlotState.LOCKED,
    ]
    got = [image.getpixel(box.centre) for box, _ in boxes]
    assert got == [_rgb(STATE_COLOURS[s]) for s in expected]


def test_legend_shows_one_swatch_per_state(big_fleet_png: tuple[bytes, object]) -> None:
    png, fleet = big_fleet_png
    layout = fleet_layout(fleet)  # type: ignore[arg-type]
    image = _decode(png)
    assert [state for _, state in layout.legend] == list(STATE_ORDER)
    for box, state in layout.legend:
        assert image.getpixel(box.centre) == _rgb(STATE_COLOURS[state])


def test_100_servers_by_8_gpus_stay_legible(big_fleet_png: tuple[bytes, object]) -> None:
    """Legible means: 4 columns of 25 servers, GPU squares of 18 px, no type under 8 px, every
    server name whole, a chute or reason drawn only where it fits its run, and an image that
    a laptop shows at full size (<= 1,400 x 800 px)."""
    _, fleet = big_fleet_png
    layout = fleet_layout(fleet)  # type: ignore[arg-type]
    assert layout.columns == 4
    assert CELL >= 16 and FONT_PX >= 8
    assert layout.width <= 1400 and layout.height <= 800
    assert all(len(s.name) <= NAME_CHARS for s in fleet.servers)  # type: ignore[attr-defined]
    assert [name for name, _, _ in layout.names] == [s.name for s in fleet.servers]  # type: ignore[attr-defined]
    labelled = [run for run in layout.runs if run.label is not None]
    assert labelled, "some chute names fit"
    assert all(len(run.label or "") * 5.2 + 4 <= run.box.w for run in labelled)
    # No two slots overlap, and columns keep apart.
    boxes = [box for row in layout.slots for box, _ in row]
    cells = {(b.x, b.y) for b in boxes}
    assert len(cells) == 800


def test_rendering_is_deterministic() -> None:
    fleet = sample_fleet(10, 8)
    assert render_fleet_png(fleet) == render_fleet_png(fleet)


def test_report_png_decodes_with_its_charts() -> None:
    rows = [r.totals() for r in sample_history(300, servers=10, every=timedelta(minutes=4))]
    report = fleet_report(rows, "24h", T0 + timedelta(hours=24))
    image = _decode(render_report_png(report))
    assert image.size == REPORT_SIZE
    colours = {c for _, c in image.getcolors(maxcolors=1 << 20) or []}
    for state in (SlotState.RUNNING, SlotState.STARTING, SlotState.CRASHING, SlotState.IDLE):
        assert _rgb(STATE_COLOURS[state]) in colours, state


def test_an_empty_report_still_renders() -> None:
    report = fleet_report([], "7d", T0)
    assert _decode(render_report_png(report)).size == REPORT_SIZE
