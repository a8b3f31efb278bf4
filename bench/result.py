"""What a measure reports: its figures, its target and whether the target was met."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """One row of the bench table. `met` is None when the target could not be judged (e.g. not measured)."""

    id: int
    title: str
    target: str
    measured: str
    met: bool | None
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return "MET" if self.met else "NOT MET" if self.met is False else "NOT JUDGED"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}
