"""The policy registry is the one list of policy names: every other list derives from it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ssvae.application.query import PREDICTED_INPUTS, PREDICTION_POLICIES, QUERY_POLICIES
from ssvae.domain.acquisition import POLICIES, AcquisitionError
from ssvae.domain.policies import (
    MAP_POLICIES,
    POLICY_NAMES,
    PROBABILITY_SCORES,
    REGISTRY,
    served_by,
)
from ssvae.domain.ports import MODEL_SCORES
from ssvae.domain.query import AcquisitionRequest, required_inputs, select
from ssvae.entrypoints.dashboard.viewmodels import map as dashboard_map


def _full_request(n: int = 40, classes: int = 3) -> AcquisitionRequest:
    """A request with every input a policy may read."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(classes), size=n)
    return AcquisitionRequest(
        serials=np.arange(n),
        k=4,
        labelled_serials=np.arange(classes),
        labelled_classes=np.arange(classes),
        probs=probs,
        features=rng.normal(size=(n, 2)),
        encodings=rng.normal(size=(n, 6)),
        inputs=rng.normal(size=(n, 5)),
        ood=rng.random(n),
        bald=rng.random(n),
        negative_elbo=rng.random(n),
        responsibilities=rng.dirichlet(np.ones(2), size=n),
    )


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_registered_policy_selects_and_needs_what_the_registry_says(name: str) -> None:
    selection = select(name, _full_request())
    assert selection.policy == name and len(selection) == 4
    assert required_inputs(name) == REGISTRY[name].needs
    for field in REGISTRY[name].needs:  # without one of its inputs it refuses, naming it
        request = _full_request()
        missing = AcquisitionRequest(
            **{**{f: getattr(request, f) for f in _fields(request)}, field: None}
        )
        with pytest.raises(AcquisitionError, match=field):
            select(name, missing)


def _fields(request: AcquisitionRequest) -> list[str]:
    import attrs

    return [f.name for f in attrs.fields(type(request))]


def test_unregistered_names_are_refused_with_the_registry_listed() -> None:
    with pytest.raises(AcquisitionError, match="choose one of random, least_confidence"):
        select("bogus", _full_request())


def test_the_probability_scores_are_the_registry_s() -> None:
    assert tuple(POLICIES) == PROBABILITY_SCORES
    assert all(set(REGISTRY[name].needs) <= {"probs"} for name in PROBABILITY_SCORES)


def test_a_map_score_is_a_probability_score_or_the_ood_score() -> None:
    for name in MAP_POLICIES:
        score = REGISTRY[name].map_score
        assert score in PROBABILITY_SCORES or score == "tau_ood"
        assert score is not None and set(REGISTRY[score].needs) <= set(REGISTRY[name].needs)


def test_the_dashboard_map_offers_the_registry_s_map_policies() -> None:
    assert dashboard_map.MAP_POLICIES == MAP_POLICIES


def test_served_by_keeps_the_policies_whose_needs_are_given() -> None:
    assert served_by(()) == ("random",)
    assert set(served_by(("probs",))) == {"random", "least_confidence", "margin", "entropy"}
    assert served_by(f for info in REGISTRY.values() for f in info.needs) == POLICY_NAMES


def test_the_application_s_lists_split_the_registry_by_model_scores() -> None:
    assert QUERY_POLICIES == POLICY_NAMES
    scored = {n for n, info in REGISTRY.items() if set(info.needs) & set(MODEL_SCORES)}
    assert scored == {"bald", "elbo"}
    assert set(PREDICTION_POLICIES) == set(POLICY_NAMES) - scored
    assert all(set(REGISTRY[n].needs) <= set(PREDICTED_INPUTS) for n in PREDICTION_POLICIES)


def test_listing_the_policy_names_loads_no_numpy() -> None:
    code = (
        "import sys\n"
        "from ssvae.domain.policies import POLICY_NAMES\n"
        "print('numpy' in sys.modules, len(POLICY_NAMES))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", str(len(REGISTRY))]
