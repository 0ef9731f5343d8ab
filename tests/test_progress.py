"""Progress bars: every item comes through unchanged, and a bar is drawn only on a terminal unless turned off."""

import io

import pytest
from rich.console import Console

from ie_eval.progress import NO_PROGRESS_ENV, track


@pytest.fixture(autouse=True)
def progress_allowed(monkeypatch):
    monkeypatch.delenv(NO_PROGRESS_ENV, raising=False)


def terminal(buffer: io.StringIO) -> Console:
    return Console(file=buffer, force_terminal=True, width=100)


def test_off_a_terminal_the_iterable_itself_comes_back_and_nothing_is_drawn():
    items, buffer = [3, 1, 2], io.StringIO()
    assert track(items, "scoring", console=Console(file=buffer)) is items
    assert buffer.getvalue() == ""


def test_on_a_terminal_a_bar_is_drawn_and_every_item_comes_through_in_order():
    items, buffer = [{"a": 1}, None, "z", 0.5], io.StringIO()
    assert list(track(items, "checking images", console=terminal(buffer))) == items
    drawn = buffer.getvalue()
    assert "checking images" in drawn and "4/4" in drawn  # the total is the list's length


def test_a_generator_without_a_length_is_counted_against_the_given_total():
    buffer = io.StringIO()
    assert list(track((i * i for i in range(5)), "critiquing", total=5, console=terminal(buffer))) == [0, 1, 4, 9, 16]
    assert "5/5" in buffer.getvalue()


def test_the_env_switch_turns_bars_off_even_on_a_terminal(monkeypatch):
    monkeypatch.setenv(NO_PROGRESS_ENV, "1")
    items, buffer = [1, 2], io.StringIO()
    assert track(items, "scoring", console=terminal(buffer)) is items
    assert buffer.getvalue() == ""
