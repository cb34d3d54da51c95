"""Sufficient statistics of one metric, exact: what the tests on means read, per arm and block (machine).

Every finite double is a whole multiple of 2**-1074, so a sum of values is kept as a whole number of 2**-1074
and a sum of squares as a whole number of 2**-2148: adding a value and taking it out again restores the sum bit
for bit, whatever the order. That is what lets the ledger index keep these per (experiment, metric, arm, block)
and update them one unit at a time (a unit whose mean changes leaves with its old mean and comes back with its
new one), and still equal a computation from the values.

* :class:`Sums`: n, Σy and Σy² of some values y; their mean and variance, each rounded once.
* :class:`Cell`: one arm's units in one block — the sums of their means, of the logs of the positive ones, and
  how many are not positive (the log scale needs them all positive).
* :class:`PairSums`: the complete pairs of a paired run — the sums of their log ratios, and how many pairs have
  a mean that is not positive.
* :class:`MetricSums`: a metric's cells of both arms, its pair sums and its error counts.

Pure: no git, no files.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

SCALE = 1074  # sums in units of 2**-1074 (squares in 2**-2148): exact for every finite double


def exact(x: float) -> int:
    """``x`` as a whole number of 2**-1074."""
    num, den = x.as_integer_ratio()
    return num << (SCALE - den.bit_length() + 1)


class Sums(NamedTuple):
    """n, Σy (in 2**-1074) and Σy² (in 2**-2148) of some values y, exactly."""

    n: int = 0
    s1: int = 0
    s2: int = 0

    @classmethod
    def of(cls, y: float) -> Sums:
        e = exact(y)
        return cls(1, e, e * e)

    def plus(self, other: Sums, sign: int = 1) -> Sums:
        return Sums(self.n + sign * other.n, self.s1 + sign * other.s1, self.s2 + sign * other.s2)

    @property
    def mean(self) -> float | None:
        return self.s1 / (self.n << SCALE) if self.n else None

    @property
    def ss(self) -> float:
        """Σ(y − ȳ)², rounded once."""
        return (self.n * self.s2 - self.s1 * self.s1) / (self.n << 2 * SCALE) if self.n else 0.0

    @property
    def var(self) -> float | None:
        """The sample variance (n − 1 in the denominator), rounded once; None below two values."""
        if self.n < 2:
            return None
        return (self.n * self.s2 - self.s1 * self.s1) / ((self.n * (self.n - 1)) << 2 * SCALE)


def sums_of(values: Iterable[float]) -> Sums:
    n = s1 = s2 = 0
    for y in values:
        e = exact(y)
        n += 1
        s1 += e
        s2 += e * e
    return Sums(n, s1, s2)


class Cell(NamedTuple):
    """One arm's units in one block: sums of their means, of the logs of the positive ones, and the count of the
    others."""

    linear: Sums = Sums()
    log: Sums = Sums()
    nonpositive: int = 0

    @classmethod
    def of(cls, x: float) -> Cell:
        if x > 0:
            return cls(Sums.of(x), Sums.of(math.log(x)), 0)
        return cls(Sums.of(x), Sums(), 1)

    def plus(self, other: Cell, sign: int = 1) -> Cell:
        return Cell(self.linear.plus(other.linear, sign), self.log.plus(other.log, sign),
                    self.nonpositive + sign * other.nonpositive)  # fmt: skip

    @property
    def n(self) -> int:
        return self.linear.n


def total(cells: Iterable[Cell]) -> Cell:
    out = Cell()
    for c in cells:
        out = out.plus(c)
    return out


def cells_of(values: Sequence[float], blocks: Sequence[str] | None = None) -> dict[str, Cell]:
    """Each block's cell of ``values`` (one block, ``""``, without ``blocks``)."""
    out: dict[str, Cell] = {}
    for i, x in enumerate(values):
        b = "" if blocks is None else blocks[i]
        out[b] = out.get(b, Cell()).plus(Cell.of(x))
    return out


class PairSums(NamedTuple):
    """The complete pairs: k, the sums of their log ratios log(t) − log(c) (of the positive ones), and how many
    pairs have a mean that is not positive."""

    log_ratio: Sums = Sums()
    nonpositive: int = 0

    @classmethod
    def of(cls, c: float, t: float) -> PairSums:
        if c > 0 and t > 0:
            return cls(Sums.of(math.log(t) - math.log(c)), 0)
        return cls(Sums(), 1)

    def plus(self, other: PairSums, sign: int = 1) -> PairSums:
        return PairSums(self.log_ratio.plus(other.log_ratio, sign), self.nonpositive + sign * other.nonpositive)

    @property
    def k(self) -> int:
        return self.log_ratio.n + self.nonpositive


def pair_sums_of(pairs: tuple[Sequence[float], Sequence[float]]) -> PairSums:
    out = PairSums()
    for c, t in zip(pairs[0], pairs[1], strict=True):
        out = out.plus(PairSums.of(c, t))
    return out


@dataclass(frozen=True)
class MetricSums:
    """A metric's sufficient statistics: each arm's cells by block (machine; ``""`` unknown), its complete pairs,
    and (errors_c, trials_c, errors_t, trials_t) over all its trials."""

    control: Mapping[str, Cell] = field(default_factory=dict)
    treatment: Mapping[str, Cell] = field(default_factory=dict)
    pairs: PairSums = field(default_factory=PairSums)
    errors: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def n(self) -> tuple[int, int]:
        return total(self.control.values()).n, total(self.treatment.values()).n


def metric_sums(control: Sequence[float], treatment: Sequence[float], machines: tuple[Sequence[str],
                Sequence[str]] | None = None, pairs: tuple[Sequence[float], Sequence[float]] | None = None,
                errors: tuple[int, int, int, int] = (0, 0, 0, 0)) -> MetricSums:  # fmt: skip
    """The sums of per-unit values (``machines`` aligned with them; ``pairs`` the complete pairs' means)."""
    return MetricSums(cells_of(control, None if machines is None else machines[0]),
                      cells_of(treatment, None if machines is None else machines[1]),
                      PairSums() if pairs is None else pair_sums_of(pairs), errors)  # fmt: skip
