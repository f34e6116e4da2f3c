"""The composition root: adapters chosen by configuration, overridden by fakes in tests."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any, Generic, Protocol, get_type_hints

import numpy as np
import pytest
from dependency_injector import providers
from fakes import InMemoryDataSource, InMemoryLabelStore

from ssvae.application import container as container_module
from ssvae.application.bootstrap import bootstrap
from ssvae.application.container import Container
from ssvae.application.settings import AppSettings, DataSettings, LabelSettings, SettingsError
from ssvae.domain.errors import LabelError
from ssvae.domain.labels import ClassVocabulary

VOCABULARY = ClassVocabulary(("ok", "warning", "error"))


def _fake_source() -> InMemoryDataSource:
    rng = np.random.default_rng(0)
    x = rng.random((12, 4)).astype(np.float32)
    return InMemoryDataSource(VOCABULARY, x, rng.integers(0, 3, 12), x[:5], np.zeros(5, np.int64))


def test_services_run_on_fakes_through_the_real_container(tmp_path: Path) -> None:
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "never-written.csv")))
    source = _fake_source()
    store = InMemoryLabelStore(VOCABULARY, source.serials("train"))
    with app.data_source.override(source), app.label_store.override(store):
        summary = app.dataset_service().summarise()
        app.label_service().set([1], "error", source="test")
        app.label_service().set([2], "error", source="test")
        app.label_service().undo(source="test")  # one batch: the second set
        with pytest.raises(LabelError, match="12"):
            app.label_service().set([12], "ok", source="test")
    assert [s.samples for s in summary.splits] == [12, 5]
    assert dict(store.load()) == {1: "error"}
    assert not (tmp_path / "never-written.csv").exists()


def test_the_fake_vocabulary_reaches_the_real_label_store(tmp_path: Path) -> None:
    app = bootstrap(AppSettings(labels=LabelSettings(path=tmp_path / "labels.parquet")))
    with app.data_source.override(_fake_source()):
        app.label_service().set([3], "warning", source="test")
        assert type(app.label_store()).__name__ == "ParquetLabelStore"
        assert dict(app.label_service().labels()) == {3: "warning"}


def test_settings_reject_bad_values_with_one_clear_message() -> None:
    with pytest.raises(SettingsError, match=r"'cifar'.*mnist"):
        DataSettings(name="cifar")
    with pytest.raises(SettingsError, match="train_path"):
        DataSettings(kind="vectors")
    with pytest.raises(SettingsError, match="format"):
        LabelSettings(format="xlsx")


def test_building_the_container_does_no_io(tmp_path: Path) -> None:
    settings = AppSettings(
        data=DataSettings(directory=tmp_path / "missing", cache_dir=tmp_path / "cache"),
        labels=LabelSettings(path=tmp_path / "labels.csv"),
    )
    bootstrap(settings)
    assert list(tmp_path.iterdir()) == []


def _port_members(port: type) -> set[str]:
    """The public methods and properties a Protocol asks for (its bases' too)."""
    return {
        name
        for base in port.__mro__
        if base not in (object, Protocol, Generic)
        for name in vars(base)
        if not name.startswith("_")
    }


def _adapter_target(provider: providers.Provider[Any]) -> Any:
    """What an adapter provider's `adapter("module:attribute")` imports when it first builds."""
    module_name, _, attribute = provider.provides.__qualname__.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def _typed_adapter_providers() -> list[tuple[str, type, providers.Provider[Any]]]:
    """(name, port, provider) for each provider whose annotation names a port Protocol; a
    selector's choices count under the selector's port."""
    typed = []
    for name, annotation in Container.__annotations__.items():
        match = re.fullmatch(r"providers\.\w+\[(\w+)\]", annotation)
        if match is None:
            continue
        port = getattr(container_module, match.group(1))
        provider = getattr(Container, name)
        choices = (
            provider.providers.values() if isinstance(provider, providers.Selector) else [provider]
        )
        typed += [(name, port, choice) for choice in choices if hasattr(choice, "provides")]
    return typed


def test_each_typed_provider_builds_an_adapter_with_its_ports_members() -> None:
    # mypy trusts a provider's annotation (the application may not import the adapter), so this
    # checks it against the adapter that the provider's import path names.
    typed = _typed_adapter_providers()
    checked = set()
    for name, port, provider in typed:
        target = _adapter_target(provider)
        if inspect.isfunction(target) and "__call__" in vars(port):
            wanted = set(inspect.signature(port.__call__).parameters) - {"self"}
            assert wanted <= set(inspect.signature(target).parameters), name
        else:
            built = target if inspect.isclass(target) else get_type_hints(target)["return"]
            missing = {m for m in _port_members(port) if not hasattr(built, m)}
            assert not missing, f"{name}: {built.__name__} lacks {sorted(missing)} of {port}"
        checked.add(name)
    assert {"label_store", "data_source", "model_repository", "embed_text_file"} <= checked
