"""The terminal grid and the counts sentence of the fleet map."""

from __future__ import annotations

from gepetto_core.models.history import SlotState
from gepetto_core.render_fleet_text import STATE_CHARS, counts_text, render_fleet_grid
from gepetto_core.render_text import render_text
from gepetto_core.views import FleetMap, dump_result, load_result
from gepetto_sandbox.fleet_samples import every_state_server, sample_fleet


def test_grid_of_100_servers_fits_100_columns_in_25_lines() -> None:
    fleet = sample_fleet(100, 8)
    lines = render_fleet_grid(fleet, width=100).splitlines()
    grid = [line for line in lines if "[" in line]
    assert len(grid) == 25
    assert max(len(line) for line in lines[:-1]) <= 100
    assert grid[0].startswith("gpu-all")
    assert "[#+!~..xx]" in grid[0]


def test_counts_text_says_everything_the_map_shows() -> None:
    fleet = sample_fleet(1, 8).model_copy(update={"servers": [every_state_server()]})
    text = counts_text(fleet)
    assert text.startswith("8 GPUs on 1 servers: 1 running, 1 starting, 1 crashing, 1 backed off")
    assert "2 idle, 2 locked" in text
    assert "2 server_locked" in text and "2 unprofitable" in text and "1 server_backoff" in text
    assert "Occupancy 38%" in text


def test_fleet_map_round_trips_as_json_and_renders_as_text() -> None:
    view = FleetMap(title="fleet", fleet=sample_fleet(5, 8))
    assert load_result(dump_result(view)) == view
    text = render_text(view)
    assert STATE_CHARS[SlotState.RUNNING] in text and "running" in text
