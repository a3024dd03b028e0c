"""The diagnostic's fleet-name parsing (its bound is tested with `bench.bound`'s)."""

from __future__ import annotations

import argparse

import pytest

# The diagnostic solves an LP: it needs the bench extra (numpy, scipy), as `make bench` does.
pytest.importorskip("numpy")
pytest.importorskip("scipy")

from bench.diagnose import parse_fleet


def test_fleet_names_parse_and_bad_ones_say_what_is_expected() -> None:
    assert parse_fleet("legacy12") == ("legacy", 12)
    assert parse_fleet("tee4") == ("tee", 4)
    with pytest.raises(argparse.ArgumentTypeError, match="expected tee<seed> or legacy<seed>"):
        parse_fleet("mixed4")
