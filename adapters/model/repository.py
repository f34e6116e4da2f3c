"""`JaxModelRepository`: creates, saves and loads SSVAE models behind the ModelRepository port.

Importing this module and constructing the repository do no JAX work (not even importing
jax): the application's composition root can build it cheaply, and JAX starts on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssvae.domain.errors import SsvaeError
from ssvae.domain.model import SsvaeModel, TrainingCallback
from ssvae.domain.spec import ModelSpec

if TYPE_CHECKING:
    from ssvae.adapters.model.ssvae_model import JaxSsvaeModel as JaxSsvaeModel


def __getattr__(name: str) -> Any:
    """`JaxSsvaeModel` stays importable from here, loaded (with JAX) only when asked for."""
    if name == "JaxSsvaeModel":
        return _model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _model_class() -> type[JaxSsvaeModel]:
    from ssvae.adapters.model.ssvae_model import JaxSsvaeModel

    return JaxSsvaeModel


class JaxModelRepository:
    """Creates, saves and loads `JaxSsvaeModel`s; construction does no JAX work."""

    def __init__(self, callbacks: Sequence[TrainingCallback] = ()) -> None:
        self.callbacks = tuple(callbacks)

    def create(self, spec: ModelSpec) -> SsvaeModel:
        """A fresh model for `spec`, seeded by spec.training.seed."""
        return _model_class()(spec, self.callbacks)

    def save(self, model: SsvaeModel, directory: Path) -> None:
        """Checkpoint `model` into `directory` atomically."""
        model_class = _model_class()
        if not isinstance(model, model_class):
            raise SsvaeError(
                f"cannot save a {type(model).__name__} with the JAX repository; "
                "use the repository that created it"
            )
        model.save(directory)

    def load(self, directory: Path) -> SsvaeModel:
        """The model checkpointed in `directory`, ready to predict or train further."""
        return _model_class().restore(directory, self.callbacks)
