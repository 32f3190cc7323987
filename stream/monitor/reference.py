"""A reference profile built from the first events of a stream, for models registered without one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stream.monitor.profiles import FeatureProfile, profile_numeric, profile_records

__all__ = ["ReferenceBuilder"]


class ReferenceBuilder:
    """Collect the first ``size`` events' features and outputs, then profile them.

    Parameters
    ----------
    size
        Number of leading events the reference is made of.
    numeric, categorical
        Feature names by kind.
    output
        Name of the output pseudo-feature (profiled as numeric), or None.
    given
        Profiles already known (e.g. from the registry); only what is missing is built: the features when
        ``given`` has none of them, the output when ``given`` lacks it.

    Examples
    --------
    >>> b = ReferenceBuilder(3, ["x"], [], "__score__", {})
    >>> b.add([{"x": 1.0}, {"x": 2.0}], np.array([0.1, 0.2]))
    (2, 2)
    >>> b.add([{"x": 3.0}, {"x": 4.0}], np.array([0.3, 0.4]))
    (1, 1)
    >>> sorted(b.profile), b.profile["x"].n, b.done
    (['__score__', 'x'], 3, True)
    """

    def __init__(
        self,
        size: int,
        numeric: Sequence[str],
        categorical: Sequence[str],
        output: str | None,
        given: Mapping[str, FeatureProfile],
    ) -> None:
        self.size = size
        self.numeric, self.categorical, self.output = list(numeric), list(categorical), output
        self.profile: dict[str, FeatureProfile] = dict(given)
        self.need_features = not any(name in given for name in (*numeric, *categorical))
        self.need_output = output is not None and output not in given
        self.records: list[Mapping[str, object]] = []
        self.outputs: list[np.ndarray] = []

    @property
    def done(self) -> bool:
        """Whether nothing is left to collect."""
        return not (self.need_features or self.need_output)

    @property
    def has_features(self) -> bool:
        """Whether the feature profiles exist (given or built)."""
        return not self.need_features

    def add(self, features: Sequence[Mapping[str, object]], outputs: np.ndarray) -> tuple[int, int]:
        """Take what is still needed from a batch; return how many leading rows went to the features and
        to the output reference (those rows are not to be counted as window data)."""
        take_f = take_o = 0
        if self.need_output:
            have = sum(a.size for a in self.outputs)
            take_o = min(len(outputs), self.size - have)
            self.outputs.append(np.asarray(outputs[:take_o], dtype=np.float64))
        if self.need_features:
            take_f = min(len(features), self.size - len(self.records))
            self.records.extend(features[:take_f])
            if len(self.records) >= self.size:
                self.profile.update(profile_records(self.records, self.numeric, self.categorical))
                self.records, self.need_features = [], False
        if self.need_output and sum(a.size for a in self.outputs) >= self.size and not self.need_features:
            assert self.output is not None
            self.profile[self.output] = profile_numeric(np.concatenate(self.outputs))
            self.outputs, self.need_output = [], False
        return take_f, take_o

    def state(self) -> dict[str, Any]:
        """Plain state for a checkpoint (records, outputs and profiles as dicts)."""
        return {
            "profile": {k: p.to_dict() for k, p in self.profile.items()},
            "need": [self.need_features, self.need_output],
            "records": [dict(r) for r in self.records],
            "outputs": [a.tolist() for a in self.outputs],
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state`."""
        self.profile = {k: FeatureProfile.from_dict(d) for k, d in state["profile"].items()}
        self.need_features, self.need_output = (bool(x) for x in state["need"])
        self.records = list(state["records"])
        self.outputs = [np.asarray(a, dtype=np.float64) for a in state["outputs"]]
