"""clients.durations: spend windows and `ago` texts."""

from __future__ import annotations

import pytest

from clients.durations import DurationError, format_ago, format_window, parse_window


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("30s", 30_000),
        ("15m", 900_000),
        ("24h", 86_400_000),
        ("7d", 604_800_000),
        ("1d12h", 129_600_000),
        (" 2H ", 7_200_000),
        ("all", 0),
        ("ALL", 0),
    ],
)
def test_parse_window(text: str, expected_ms: int) -> None:
    assert parse_window(text) == expected_ms


@pytest.mark.parametrize("text", ["", "24", "h", "3x", "1.5h", "-1h", "0h", "24h and more"])
def test_parse_window_rejects_with_a_hint(text: str) -> None:
    with pytest.raises(DurationError, match=r"duration|empty window"):
        parse_window(text)


@pytest.mark.parametrize(
    ("window_ms", "text"),
    [
        (0, "all time"),
        (86_400_000, "24h"),
        (129_600_000, "36h"),
        (2 * 86_400_000 + 3_600_000, "2d1h"),
        (90_000, "1m30s"),
    ],
)
def test_format_window(window_ms: int, text: str) -> None:
    assert format_window(window_ms) == text


@pytest.mark.parametrize(
    ("elapsed_ms", "text"),
    [
        (0, "just now"),
        (999, "just now"),
        (12_500, "12s ago"),
        (300_000, "5m ago"),
        (3 * 3_600_000 + 5, "3h ago"),
        (2 * 86_400_000, "2d ago"),
    ],
)
def test_format_ago(elapsed_ms: int, text: str) -> None:
    assert format_ago(elapsed_ms) == text
