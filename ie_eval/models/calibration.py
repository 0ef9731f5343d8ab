"""An affine calibration of the critic's scores, in the file format of ReasonEdit's public code.

ReasonEdit (`IntMeGroup/ReasonEdit`, core/calibration.py, `AffineScoreCalibrator`) reads
`calibration.json` next to the model:

    {"calibration_type": "affine_per_dimension",
     "coefficients": {dim: {"slope": a, "intercept": b}, ...}, "metadata": {...}}

and serves clip01(a * raw + b) per dimension. `fit_affine` fits (a, b) by least squares from head
scores to targets on [0, 1] (our MOS targets are ECDF-probit, so the target is their percentile
Phi(mos)); with a > 0 the map keeps the order, so SRCC only moves where clipping creates ties.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CALIBRATION_NAME = "calibration.json"
CALIBRATION_TYPE = "affine_per_dimension"


@dataclass
class AffineCalibration:
    """Per-dimension slope and intercept, applied as clip01(slope * raw + intercept)."""

    coefficients: dict[str, tuple[float, float]]
    metadata: dict = field(default_factory=dict)

    def apply(self, dims: Sequence[str], scores: Sequence[Sequence[float]]) -> list[list[float]]:
        missing = [d for d in dims if d not in self.coefficients]
        if missing:
            raise ValueError(f"calibration has no coefficients for {missing}")
        return [[min(1.0, max(0.0, self.coefficients[d][0] * float(v) + self.coefficients[d][1]))
                 for d, v in zip(dims, row, strict=True)] for row in scores]

    def to_json(self) -> dict:
        return {
            "calibration_type": CALIBRATION_TYPE,
            "coefficients": {d: {"slope": a, "intercept": b} for d, (a, b) in self.coefficients.items()},
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: Mapping, where: str) -> AffineCalibration:
        if data.get("calibration_type") != CALIBRATION_TYPE:
            raise ValueError(f"{where}: calibration_type must be {CALIBRATION_TYPE!r}, got {data.get('calibration_type')!r}")
        coefficients = {}
        for dim, values in dict(data.get("coefficients") or {}).items():
            try:
                slope, intercept = float(values["slope"]), float(values["intercept"])
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{where}: coefficients.{dim} needs numeric slope and intercept") from err
            if not (math.isfinite(slope) and math.isfinite(intercept)):
                raise ValueError(f"{where}: coefficients.{dim} is not finite")
            coefficients[dim] = (slope, intercept)
        return cls(coefficients, dict(data.get("metadata") or {}))

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / CALIBRATION_NAME
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> AffineCalibration | None:
        """The export's calibration, or None when it has none."""
        path = Path(directory) / CALIBRATION_NAME
        if not path.is_file():
            return None
        return cls.from_json(json.loads(path.read_text()), str(path))


def fit_affine(dims: Sequence[str], scores: np.ndarray, targets: np.ndarray, metadata: dict | None = None) -> AffineCalibration:
    """Least-squares slope and intercept per dimension from (N, D) raw scores to (N, D) targets."""
    if scores.shape != targets.shape or scores.shape[1] != len(dims) or scores.shape[0] < 2:
        raise ValueError(f"fit_affine: (N >= 2, {len(dims)}) scores and targets, got {scores.shape} and {targets.shape}")
    coefficients = {}
    for index, dim in enumerate(dims):
        slope, intercept = np.polyfit(scores[:, index], targets[:, index], deg=1)
        coefficients[dim] = (float(slope), float(intercept))
    return AffineCalibration(coefficients, dict(metadata or {}))
