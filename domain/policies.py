"""The acquisition policies by name: what each one reads and how it can be shown.

Every list of policy names derives from `REGISTRY`: the names `ssvae query` and `ssvae
simulate` accept, the policies `domain.query.select` runs, the per-sample scores of
`domain.acquisition`, the policies a set of model outputs can serve (`served_by`), and the
policies whose per-sample score can colour the dashboard's map. A new policy is one entry
here plus its implementation, and every list follows.

Standard library and attrs only: the CLI lists the names for --help without loading numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs


@attrs.frozen
class PolicyInfo:
    """One acquisition policy.

    `needs`: the `AcquisitionRequest` fields it reads. `probability_score`: it ranks each
    sample by a score of its class probabilities alone (`domain.acquisition`). `map_score`:
    the per-sample score a map of the pool can be coloured by when showing this policy (a
    probability score's name, or tau_ood); None for a policy that picks its batch jointly,
    so that no single score per sample stands for it.
    """

    name: str
    needs: tuple[str, ...]
    probability_score: bool = False
    map_score: str | None = None


def _registry(*policies: PolicyInfo) -> Mapping[str, PolicyInfo]:
    return MappingProxyType({policy.name: policy for policy in policies})


REGISTRY: Mapping[str, PolicyInfo] = _registry(
    PolicyInfo("random", (), probability_score=True, map_score="random"),
    PolicyInfo("least_confidence", ("probs",), True, "least_confidence"),
    PolicyInfo("margin", ("probs",), True, "margin"),
    PolicyInfo("entropy", ("probs",), True, "entropy"),
    PolicyInfo("tau_ood", ("ood",), map_score="tau_ood"),
    PolicyInfo("novelty", ("inputs", "encodings")),
    PolicyInfo("bald", ("bald",)),
    PolicyInfo("elbo", ("negative_elbo",)),
    PolicyInfo("kcenter", ("features",)),
    # The diverse policies rank by their uncertainty score first, so a map shows that score.
    PolicyInfo("diverse_margin", ("probs", "features"), map_score="margin"),
    PolicyInfo("diverse_entropy", ("probs", "features"), map_score="entropy"),
    PolicyInfo("cold_start", ("features",)),
    PolicyInfo("typiclust", ("encodings",)),
    PolicyInfo("typiclust_margin", ("probs", "encodings")),
)

POLICY_NAMES: tuple[str, ...] = tuple(REGISTRY)
"""Every policy, in the order lists show them."""

PROBABILITY_SCORES: tuple[str, ...] = tuple(
    name for name, info in REGISTRY.items() if info.probability_score
)
"""The policies that score each sample from its class probabilities alone."""

MAP_POLICIES: tuple[str, ...] = tuple(
    name for name, info in REGISTRY.items() if info.map_score is not None
)
"""The policies whose acquisition score can colour a map of the pool."""


def served_by(inputs: Iterable[str]) -> tuple[str, ...]:
    """The policies that need nothing beyond the request fields `inputs`, in registry order."""
    available = set(inputs)
    return tuple(name for name, info in REGISTRY.items() if set(info.needs) <= available)
