"""Antibody dosing regimens written as text, composed into dose events.

In the spirit of mrgsolve's ``ev()``/``ev_days()`` and NONMEM dosing records (AMT, DUR, II, ADDL), a regimen
is one or more segments joined by ``, then`` (or ``; then``); words are case-insensitive, spacing is free::

    <amount> mg|ug|g[/kg] IV|SC [over <n> h|min] on day(s) <d>[, <d> ... and <d>]
    <amount> mg|ug|g[/kg] IV|SC [over <n> h|min] every <n> day(s)|week(s) [from day <d>] [for <n> doses] [until day <d>]
    <amount> mg|ug|g[/kg] IV|SC <n> times weekly [from day <d>] [for <n> doses] [until day <d>]

Rules:

* Days count from day 0. Listed days must increase, and each segment's doses come after the previous one's.
* After ``then`` the amount and route may be left out; they default to the previous segment's, and so does
  the infusion duration when both are left out.
* ``<n> times weekly`` is ``every 7/<n> days`` (evenly spaced), written back as given.
* ``mg/kg`` doses by body weight: each patient's dose is the amount times their weight (a drug may cap it).
* Without ``over`` the duration is ``default_duration_h[route]`` from the caller; a route without a default
  (SC, typically) leaves it unset, and an unset duration means a bolus. ``until day D`` includes day D.
* A repeating first segment without ``from day`` starts on day 0. A repeating ``then`` segment without
  ``from day`` keeps the previous segment's clock: its first dose falls one interval after the previous
  segment's FIRST dose (or the first whole number of intervals after it that lands after the previous
  segment's last dose). This is the ocrelizumab label: 300 mg on day 0 and at week 2, then 600 mg every
  6 months, the first 600 mg six months after the first 300 mg infusion, i.e. day 168, not 14 + 168 = 182.
  Ofatumumab likewise: 20 mg SC at weeks 0, 1 and 2, then every 4 weeks from week 4 (day 28).

``str(regimen)`` is canonical (amounts in mg, durations in h, whole weeks as weeks, every known duration
written out) and parses back to an equal ``Regimen``.

The parser is a small tokenizer plus recursive descent rather than a handful of regular expressions: every
token keeps its character position, so an error can say exactly where the text went wrong and what was
expected there.

>>> r = Regimen.parse("300 mg IV on days 0 and 14, then 600 mg IV every 24 weeks", default_duration_h={"IV": 3.5})
>>> [(d.day, d.amount_mg) for d in r.doses(400)]
[(0.0, 300.0), (14.0, 300.0), (168.0, 600.0), (336.0, 600.0)]
>>> str(r)
'300 mg IV over 3.5 h on days 0 and 14, then 600 mg IV over 3.5 h every 24 weeks'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple, NoReturn

from cartsim.errors import CartsimInputError

ROUTES = ("IV", "SC")
_MG_PER = {"mg": 1.0, "ug": 1e-3, "mcg": 1e-3, "g": 1e3}
_DAYS_PER = {"day": 1.0, "days": 1.0, "week": 7.0, "weeks": 7.0}
_PER_HOUR = {"h": 1.0, "hr": 1.0, "hrs": 1.0, "hour": 1.0, "hours": 1.0, "min": 60.0, "mins": 60.0,
             "minute": 60.0, "minutes": 60.0}
GRAMMAR = ("segments joined by ', then', each '<amount> mg|ug|g[/kg] IV|SC [over <n> h|min]' followed by "
           "'on day(s) <d>[, <d> and <d>]', 'every <n> days|weeks' or '<n> times weekly', then optionally "
           "'from day <d>', 'for <n> doses', 'until day <d>'")
_TOKEN = re.compile(r"(?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<word>[A-Za-z]+)|(?P<punct>[,;/])")
_EPS = 1e-9


@dataclass(frozen=True)
class Segment:
    """Either listed ``days`` or a repeat ``every_days`` (from ``start_day``, None = by the rule above)."""

    amount_mg: float
    route: str
    days: tuple[float, ...] | None = None
    every_days: float | None = None
    start_day: float | None = None
    n_doses: int | None = None
    until_day: float | None = None
    duration_h: float | None = None
    per_week: int | None = None   # written as '<n> times weekly' (every_days = 7 / per_week)
    per_kg: bool = False          # amount_mg is mg per kg of body weight

    def format(self) -> str:
        out = f"{_num(self.amount_mg)} mg{'/kg' if self.per_kg else ''} {self.route}"
        if self.duration_h is not None:
            out += f" over {_num(self.duration_h)} h"
        if self.days is not None:
            ds = [_num(d) for d in self.days]
            return out + (f" on day {ds[0]}" if len(ds) == 1 else f" on days {', '.join(ds[:-1])} and {ds[-1]}")
        assert self.every_days is not None
        if self.per_week is not None:
            out += f" {self.per_week} times weekly"
        else:
            n, unit = (self.every_days / 7, "week") if (self.every_days / 7).is_integer() else (self.every_days, "day")
            out += f" every {_num(n)} {unit}{'' if n == 1 else 's'}"
        if self.start_day is not None:
            out += f" from day {_num(self.start_day)}"
        if self.n_doses is not None:
            out += f" for {self.n_doses} dose{'' if self.n_doses == 1 else 's'}"
        if self.until_day is not None:
            out += f" until day {_num(self.until_day)}"
        return out


@dataclass(frozen=True)
class Dose:
    day: float
    amount_mg: float
    route: str
    duration_days: float
    per_kg: bool = False          # amount_mg is mg per kg of body weight

    def label(self) -> str:
        return f"{self.amount_mg:g} mg{'/kg' if self.per_kg else ''} {self.route}"


@dataclass(frozen=True)
class Regimen:
    segments: tuple[Segment, ...]

    @classmethod
    def parse(cls, text: str, *, default_duration_h: Mapping[str, float] | None = None,
              field: str = "--regimen") -> Regimen:
        if not isinstance(text, str):
            raise CartsimInputError(field, f"expected a regimen as text, got {text!r}", GRAMMAR)
        return _Parser(text, field, default_duration_h).regimen()

    def format(self) -> str:
        return ", then ".join(s.format() for s in self.segments)

    __str__ = format

    def doses(self, horizon_days: float) -> list[Dose]:
        """Doses given before ``horizon_days`` (an infusion that runs past it is kept), sorted by day."""
        out: list[Dose] = []
        for seg, first, count, _ in _windows(self.segments):
            days: Iterator[float] | tuple[float, ...]
            if seg.days is not None:
                days = seg.days
            else:
                assert seg.every_days is not None
                days = (first + k * seg.every_days for k in range(count if count is not None else 2**62))
            for day in days:
                if day >= horizon_days:
                    break
                out.append(Dose(day, seg.amount_mg, seg.route, (seg.duration_h or 0.0) / 24, seg.per_kg))
        return sorted(out, key=lambda d: d.day)

    @property
    def last_day(self) -> float | None:
        """Day of the regimen's last dose; None when it repeats without end."""
        *_, (_, _, _, last) = _windows(self.segments)
        return last

    def last_dose_day(self, horizon_days: float) -> float | None:
        doses = self.doses(horizon_days)
        return doses[-1].day if doses else None


def _num(x: float) -> str:
    """Shortest text that reads back to exactly ``x``."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _start(seg: Segment, prev_first: float | None, prev_last: float | None) -> float:
    """First dose day of a repeating segment (see the module docstring for the rule)."""
    assert seg.every_days is not None
    if seg.start_day is not None:
        return seg.start_day
    if prev_first is None or prev_last is None:
        return 0.0
    return prev_first + (math.floor((prev_last - prev_first) / seg.every_days + _EPS) + 1) * seg.every_days


def _count(seg: Segment, start: float) -> int | None:
    """Number of doses of a repeating segment; None when it repeats without end."""
    assert seg.every_days is not None
    limits = [seg.n_doses] if seg.n_doses is not None else []
    if seg.until_day is not None:
        limits.append(math.floor((seg.until_day - start) / seg.every_days + _EPS) + 1)
    return min(limits) if limits else None


def _windows(segments: tuple[Segment, ...]) -> Iterator[tuple[Segment, float, int | None, float | None]]:
    """Each segment with its first dose day, number of doses and last dose day (None = open-ended)."""
    first: float | None = None
    last: float | None = None
    count: int | None
    for i, seg in enumerate(segments):
        if i and last is None:
            raise ValueError("a segment follows one that repeats without end")
        if seg.days is not None:
            first, count, last = seg.days[0], len(seg.days), seg.days[-1]
        else:
            assert seg.every_days is not None
            first = _start(seg, first, last)
            count = _count(seg, first)
            last = None if count is None else first + (count - 1) * seg.every_days
        yield seg, first, count, last


class _Tok(NamedTuple):
    kind: str  # "num", "word", "punct" or "end"
    text: str
    pos: int


class _Parser:
    def __init__(self, text: str, field: str, defaults: Mapping[str, float] | None):
        self.text, self.field, self.i = text, field, 0
        self.defaults = {k.upper(): float(v) for k, v in (defaults or {}).items()}
        self.toks: list[_Tok] = []
        pos = 0
        while (pos := len(text) - len(text[pos:].lstrip())) < len(text):
            if (m := _TOKEN.match(text, pos)) is None:
                self.fail(pos, f"unexpected character {text[pos]!r}")
            kind = m.lastgroup or ""
            self.toks.append(_Tok(kind, m[0], pos))
            pos = m.end()
        self.toks.append(_Tok("end", "", len(text)))

    def fail(self, pos: int, message: str, allowed: str = GRAMMAR) -> NoReturn:
        raise CartsimInputError(self.field, f"{self.text!r} at position {pos}: {message}", allowed)

    def peek(self, ahead: int = 0) -> _Tok:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def expected(self, what: str, allowed: str = GRAMMAR) -> NoReturn:
        tok = self.peek()
        self.fail(tok.pos, f"expected {what}, got {repr(tok.text) if tok.kind != 'end' else 'end of text'}", allowed)

    def accept(self, *words: str) -> str | None:
        if (tok := self.peek()).kind == "word" and tok.text.lower() in words:
            self.i += 1
            return tok.text.lower()
        return None

    def expect(self, words: Mapping[str, object] | tuple[str, ...], what: str, allowed: str = GRAMMAR) -> str:
        return self.accept(*words) or self.expected(what, allowed)

    def number(self, what: str) -> tuple[float, int]:
        if (tok := self.peek()).kind != "num":
            self.expected(what)
        self.i += 1
        if not math.isfinite(value := float(tok.text)):
            self.fail(tok.pos, f"{what} must be a finite number, got {tok.text!r}")
        return value, tok.pos

    def day(self, after: float | None, listed: bool = False) -> float:
        value, pos = self.number("a day")
        if value < 0:
            self.fail(pos, f"days must be >= 0, got {_num(value)}")
        if after is not None and value <= after + _EPS:
            self.fail(pos, f"days must increase, but day {_num(value)} follows day {_num(after)}" if listed else
                      f"day {_num(value)} must come after the previous segment's last dose (day {_num(after)})")
        return value

    def regimen(self) -> Regimen:
        segments: list[Segment] = []
        first = last = None
        while True:
            segments.append(self.segment(segments[-1] if segments else None, first, last))
            *_, (_, first, _, last) = _windows(tuple(segments))
            if self.peek().kind == "end":
                return Regimen(tuple(segments))
            comma = self.peek().text in (",", ";")
            self.i += comma
            then = self.peek()
            self.expect(("then",), "'then'" if comma else "', then' or end of text")
            if last is None:
                self.fail(then.pos, "the previous segment repeats without end; limit it with 'for <n> doses' "
                          "or 'until day <d>' before 'then'")
            if self.peek().kind == "end":
                self.expected("a segment after 'then'")

    def segment(self, prev: Segment | None, prev_first: float | None, prev_last: float | None) -> Segment:
        same_amount = prev is not None and self.peek().kind != "num"
        amount_mg, per_kg = (prev.amount_mg, prev.per_kg) if prev is not None and same_amount else self.amount()
        tok = self.peek()
        same_route = prev is not None and not (tok.kind == "word" and tok.text.lower() not in ("on", "every", "over"))
        if prev is not None and same_route:
            route = prev.route
        elif tok.kind == "word" and tok.text.upper() in ROUTES:
            route, self.i = tok.text.upper(), self.i + 1
        else:
            self.expected("a route", ", ".join(ROUTES))
        duration_h: float | None
        if self.accept("over"):
            value, pos = self.number("an infusion duration")
            if value < 0:
                self.fail(pos, f"infusion duration must be >= 0, got {_num(value)}")
            duration_h = value / _PER_HOUR[self.expect(_PER_HOUR, "'h' or 'min'", "h, hours, min")]
        elif prev is not None and same_amount and same_route:
            duration_h = prev.duration_h
        else:
            duration_h = self.defaults.get(route)
        per_week = None
        if self.peek().kind == "num" and self.peek(1).text.lower() == "times":
            n, pos = self.number("a number of doses per week")
            if n < 1 or not n.is_integer():
                self.fail(pos, f"doses per week must be a whole number >= 1, got {_num(n)}")
            self.i += 1
            self.expect(("weekly",), "'weekly'")
            per_week = int(n)
        elif self.expect(("on", "every"), "'on day(s)', 'every' or '<n> times weekly'") == "on":
            self.expect(("day", "days"), "'day' or 'days'")
            days = [self.day(prev_last)]
            while self.accept("and") or (self.peek().text == "," and self.peek(1).text.lower() not in ("then", "")):
                if self.peek().text == ",":
                    self.i += 1
                    self.accept("and")
                days.append(self.day(days[-1], listed=True))
            return Segment(amount_mg, route, days=tuple(days), duration_h=duration_h, per_kg=per_kg)
        if per_week is not None:
            every = 7.0 / per_week
        else:
            every, pos = self.number("an interval")
            if every <= 0:
                self.fail(pos, f"interval must be positive, got {_num(every)}")
            every *= _DAYS_PER[self.expect(_DAYS_PER, "'days' or 'weeks'", "days, weeks")]
        start = None
        if self.accept("from"):
            self.expect(("day",), "'day'")
            start = self.day(prev_last)
        n_doses = until = None
        if self.accept("for"):
            n, pos = self.number("a number of doses")
            if n < 1 or not n.is_integer():
                self.fail(pos, f"number of doses must be a whole number >= 1, got {_num(n)}")
            self.expect(("dose", "doses"), "'doses'")
            n_doses = int(n)
        if self.accept("until"):
            self.expect(("day",), "'day'")
            until, pos = self.number("a day")
        seg = Segment(amount_mg, route, None, every, start, n_doses, until, duration_h, per_week, per_kg)
        first = _start(seg, prev_first, prev_last)
        if until is not None and until < first - _EPS:
            self.fail(pos, f"until day {_num(until)} is before the first dose (day {_num(first)})")
        return seg

    def amount(self) -> tuple[float, bool]:
        """The amount in mg, and whether it is per kg of body weight."""
        value, pos = self.number("an amount")
        if value <= 0:
            self.fail(pos, f"amount must be positive, got {_num(value)}")
        mg = value * _MG_PER[self.expect(_MG_PER, "a mass unit", ", ".join(_MG_PER))]
        if self.peek().text != "/":
            return mg, False
        self.i += 1
        self.expect(("kg",), "'kg' after '/'", "mg/kg, ug/kg, g/kg")
        return mg, True
