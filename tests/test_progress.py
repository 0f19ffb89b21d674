"""The trial progress bar: patients per second and time left."""

import io
import re

from rich.console import Console

from cartsim.trial.config import parse_config
from cartsim.trial import stages
from cartsim.trial.executors import progress as _progress
from cartsim.trial.run import execute, prepare

CONFIG = """\
[trial]
name = "progress"
seed = 3
horizon_days = 30

[population]
n = 3
disease = "sle"

[[arm]]
name = "KYV-101"
therapy = "kyv-101"

[[arm]]
name = "no treatment"
therapy = "untreated"
"""


class Clock:
    """A clock the test advances by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _terminal() -> Console:
    return Console(file=io.StringIO(), record=True, force_terminal=True, width=140)


def test_progress_shows_patients_per_second_and_time_left():
    console, clock = _terminal(), Clock()
    with _progress(console, get_time=clock) as bar:
        task = bar.add_task("trial", total=1000)
        for _ in range(4):
            clock.now += 1.0
            bar.advance(task, 100)   # 100 patients a second, 600 to go
    text = console.export_text()
    assert "400/1000" in text
    assert "100 patients/s" in text
    assert "0:00:06 left" in text


def test_progress_before_any_rate_is_known():
    console = _terminal()
    with _progress(console, get_time=Clock()) as bar:
        bar.add_task("trial", total=10)
    text = console.export_text()
    assert "- patients/s" in text
    assert "-:--:-- left" in text


def test_progress_is_off_when_not_writing_to_a_terminal():
    assert _progress(Console(file=io.StringIO())).disable


def _restore_colorama_streams(monkeypatch) -> None:
    """numba re-initialises colorama when it formats a message, saving the current sys.stdout; inside the
    live display that is rich's proxy of pytest's capture, closed by exit time. Put colorama's back after."""
    try:
        import colorama.initialise as ci
    except ImportError:
        return
    for name in ("orig_stdout", "orig_stderr"):
        monkeypatch.setattr(ci, name, getattr(ci, name))


def test_trial_run_reports_rate_and_time_left(tmp_path, monkeypatch):
    _restore_colorama_streams(monkeypatch)
    console = _terminal()
    monkeypatch.setattr(stages, "progress", lambda: _progress(console))
    execute(prepare(parse_config(CONFIG), tmp_path / "out", chunk_size=1))
    text = console.export_text()
    assert "6/6" in text
    assert re.search(r"[\d,]+ patients/s", text)
    assert re.search(r"\d+:\d\d:\d\d left", text)
