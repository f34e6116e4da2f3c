"""Checkpoint files: a save killed at any step still loads, and corrupt files say so in a line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssvae.adapters.model import checkpoint
from ssvae.adapters.model.checkpoint import (
    ARRAYS,
    META,
    STATE,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from ssvae.adapters.model.ssvae_model import JaxSsvaeModel
from ssvae.domain.model import EpochRecord
from ssvae.domain.spec import ModelSpec

SPEC = ModelSpec.from_fields(input_shape=(4,), num_classes=2, latent_dim=2, hidden_sizes=(4,))


class Killed(BaseException):
    """Stands for SIGKILL: no except clause of the code under test may catch it."""


def save(directory: Path, step: int) -> None:
    """A small checkpoint whose every array and counter says which save wrote it."""
    tree = {"w": np.full((3, 2), float(step), np.float32), "b": np.arange(step, step + 4.0)}
    save_checkpoint(
        directory,
        spec=SPEC,
        tree=tree,
        key=np.array([step, step], np.uint32),
        step=step,
        epoch=step,
        tau=np.full((SPEC.network.num_components, SPEC.network.num_classes), step, np.float32),
        extra={"fingerprint": f"save {step}"},
    )


def which_save(directory: Path) -> int:
    """The step of the complete checkpoint that loads from `directory` (every part agrees)."""
    content = load_checkpoint(directory)
    step = content.step
    assert content.epoch == step and content.meta["fingerprint"] == f"save {step}"
    np.testing.assert_array_equal(content.leaves[0], np.arange(step, step + 4.0))
    np.testing.assert_array_equal(content.leaves[1], np.full((3, 2), float(step), np.float32))
    np.testing.assert_array_equal(content.key, [step, step])
    assert content.tau is not None and np.all(content.tau == step)
    return step


def kill_at(monkeypatch: pytest.MonkeyPatch, when: int) -> list[str]:
    """From the `when`-th file-system step of a save on, every step dies (a real kill runs no
    clean-up either); a write dies after half its bytes. Returns the steps taken."""
    steps: list[str] = []

    def step(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            steps.append(name)
            if len(steps) > when:
                if name == "write":
                    path, data = args
                    Path(path).write_bytes(data[: len(data) // 2])
                if name == "state":  # orbax's folder, half written under its temporary name
                    half = Path(args[0]).with_name(f"{STATE}.orbax-checkpoint-tmp-0")
                    half.mkdir()
                    (half / "_METADATA").write_text("{")
                raise Killed(name)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(checkpoint, "_save_state", step("state", checkpoint._save_state))
    monkeypatch.setattr(checkpoint, "_write_file", step("write", checkpoint._write_file))
    monkeypatch.setattr(checkpoint.os, "replace", step("replace", os.replace))
    monkeypatch.setattr(checkpoint.shutil, "rmtree", step("rmtree", shutil.rmtree))
    monkeypatch.setattr(checkpoint.tempfile, "mkdtemp", step("mkdtemp", tempfile.mkdtemp))
    return steps


def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.MonkeyPatch.context() as counting:
        total = kill_at(counting, when=10**9)
        save(tmp_path / "probe", 1)
        save(tmp_path / "probe", 2)
    overwriting = total[total.index("replace") + 1 :]  # the second save's steps
    overwrite_steps = len(overwriting)
    # mkdtemp, orbax's arrays, meta.json, mkdtemp, 2 renames, then clean-up
    assert overwriting[:6] == ["mkdtemp", "state", "write", "mkdtemp", "replace", "replace"]
    outcomes = []
    for when in range(overwrite_steps + 1):
        directory = tmp_path / f"kill-{when}" / "checkpoint"
        save(directory, 1)
        with pytest.MonkeyPatch.context() as patch:
            kill_at(patch, when)
            with contextlib.suppress(Killed):
                save(directory, 2)
        outcomes.append(which_save(directory))
        # The next save succeeds and leaves nothing else beside the checkpoint.
        save(directory, 3)
        assert which_save(directory) == 3
        assert [p.name for p in directory.parent.iterdir()] == ["checkpoint"]
    # Killed before its first rename a save leaves the old checkpoint, after it the new one.
    first_rename = overwriting.index("replace")
    assert outcomes == [1] * (first_rename + 1) + [2] * (overwrite_steps - first_rename)


def test_a_model_loads_after_a_kill_between_the_two_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = JaxSsvaeModel(SPEC)
    directory = tmp_path / "checkpoint"
    model.save(directory)
    model.state.step = 7  # tells the second save from the first
    renames: list[str] = []
    real_replace = os.replace

    def replace_then_die(source: Any, target: Any) -> None:
        renames.append(str(target))
        if len(renames) == 2:
            raise Killed
        real_replace(source, target)

    monkeypatch.setattr(checkpoint.os, "replace", replace_then_die)
    monkeypatch.setattr(checkpoint.shutil, "rmtree", lambda *a, **k: None)  # no clean-up
    with pytest.raises(Killed):
        model.save(directory)
    assert not directory.exists()  # the state the renames leave between them
    assert JaxSsvaeModel.restore(directory).state.step == 7


def full_model() -> JaxSsvaeModel:
    """A model with every part of a checkpoint filled: tau, history, fingerprint."""
    model = JaxSsvaeModel(SPEC.evolve(prior="mixture", num_components=3))
    model.tau = np.full((3, SPEC.network.num_classes), 0.5, np.float32)
    model.history = [EpochRecord(epoch=1, metrics={"loss": 3.5, "val_loss": 4.0})]
    model.fingerprint = "f" * 32
    return model


def save_npz_v1(model: JaxSsvaeModel, directory: Path) -> None:
    """The model as format 1 wrote it: every leaf, the key and tau in an uncompressed npz."""
    tree = (model.state.params, model.state.opt_state)
    leaves = [np.asarray(leaf) for leaf in jax.tree_util.tree_leaves(jax.device_get(tree))]
    arrays = {f"leaf_{i:05d}": leaf for i, leaf in enumerate(leaves)}
    arrays["prng_key"] = np.asarray(jax.device_get(model.state.key))
    if model.tau is not None:
        arrays["tau"] = np.asarray(model.tau, np.float32)
    directory.mkdir(parents=True)
    np.savez(directory / ARRAYS, **arrays)  # type: ignore[arg-type]
    meta = {
        "format_version": 1,
        "spec": checkpoint.spec_to_json(model.spec),
        "step": model.state.step,
        "epoch": model.state.epoch,
        "num_leaves": len(leaves),
        "fingerprint": model.fingerprint,
        "history": [{"epoch": r.epoch, "metrics": dict(r.metrics)} for r in model.history],
    }
    (directory / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")


def valid_files() -> tuple[bytes, bytes]:
    """The files of a format-1 checkpoint of `full_model()`."""
    directory = Path(tempfile.mkdtemp())
    try:
        save_npz_v1(full_model(), directory / "c")
        return (directory / "c" / META).read_bytes(), (directory / "c" / ARRAYS).read_bytes()
    finally:
        shutil.rmtree(directory)


META_BYTES, ARRAY_BYTES = valid_files()


def npy_member(header: str) -> bytes:
    """An .npy member with `header` (a dict literal) and 16 bytes of data."""
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(16)


def corrupted(data: bytes, cuts: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for position, value in cuts:
        if out:
            out[position % len(out)] = value
    return bytes(out)


@st.composite
def damaged_checkpoints(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """meta.json and arrays.npz with bytes changed, cut short, or replaced by other values."""
    flips = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=4)
    meta, arrays = META_BYTES, ARRAY_BYTES
    kind = draw(st.sampled_from(["meta bytes", "meta value", "arrays bytes", "arrays member"]))
    if kind == "meta bytes":
        meta = corrupted(meta, draw(flips))[: draw(st.integers(0, len(meta)))]
    elif kind == "meta value":
        document = json.loads(meta)
        json_values = st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner),
            max_leaves=6,
        )
        record = document["history"][0]
        target = draw(st.sampled_from([document, document["spec"], record, record["metrics"]]))
        name = draw(st.sampled_from(sorted(target)))
        target[name] = draw(json_values)
        if draw(st.booleans()):
            target.pop(name)
        meta = json.dumps(document).encode()
    elif kind == "arrays bytes":
        arrays = corrupted(arrays, draw(flips))[: draw(st.integers(0, len(arrays)))]
    else:
        shape = draw(st.sampled_from(["(2**40,)", "(-4,)", "(2, 2)", "(10**30,)", "()"]))
        dtype = draw(st.sampled_from(["'<f4'", "'|O'", "'<V0'", "'>i8'", "'x'"]))
        buffer = io.BytesIO()
        compression = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
        replaced = draw(st.sampled_from(["leaf_00000.npy", "prng_key.npy", "tau.npy"]))
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            with zipfile.ZipFile(io.BytesIO(arrays)) as source:
                for info in source.infolist():
                    if info.filename != replaced:
                        archive.writestr(info.filename, source.read(info))
            archive.writestr(
                replaced,
                npy_member(f"{{'descr': {dtype}, 'fortran_order': False, 'shape': {shape}, }}"),
            )
        arrays = buffer.getvalue()
    return meta, arrays


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_checkpoints())
def test_a_damaged_checkpoint_restores_or_says_why_in_one_line(
    files: tuple[bytes, bytes],
) -> None:
    directory = Path(tempfile.mkdtemp())
    try:
        (directory / META).write_bytes(files[0])
        (directory / ARRAYS).write_bytes(files[1])
        tracemalloc.start()
        try:
            JaxSsvaeModel.restore(directory)
        except CheckpointError as error:
            message = str(error)
            assert "\n" not in message and str(directory) in message and len(message) < 600
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < 20 * 2**20  # never what a declared size asks for, only what the files hold
    finally:
        shutil.rmtree(directory)


def test_a_checkpoint_written_with_the_flat_spec_loads_and_predicts_as_it_did() -> None:
    """tests/data/checkpoint_flat_v1 was saved when ModelSpec was one flat class (meta.json
    holds the fields flat); it must load to the same spec and give the same predictions."""
    data = Path(__file__).parent.parent / "data"
    meta = json.loads((data / "checkpoint_flat_v1" / META).read_text(encoding="utf-8"))
    assert "network" not in meta["spec"] and meta["spec"]["learning_rate"] == 0.01
    model = JaxSsvaeModel.restore(data / "checkpoint_flat_v1")
    assert model.spec == ModelSpec.from_fields(
        input_shape=(4,),
        num_classes=2,
        latent_dim=2,
        hidden_sizes=(4,),
        prior="mixture",
        num_components=3,
        learning_rate=0.01,
        seed=3,
    )
    # Saving it again writes the same flat fields, so older readers still read new files.
    assert json.loads(json.dumps(checkpoint.spec_to_json(model.spec))) == meta["spec"]
    expected = json.loads((data / "checkpoint_flat_v1_predictions.json").read_text("utf-8"))
    predictions = model.predict(np.asarray(expected["x"], np.float32))
    np.testing.assert_allclose(predictions.class_probs, expected["class_probs"], rtol=1e-5)


def test_a_save_writes_orbax_and_restores_every_part(tmp_path: Path) -> None:
    model = full_model()
    model.state.step, model.state.epoch = 11, 3
    model.save(tmp_path / "c")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == [META, STATE]
    meta = json.loads((tmp_path / "c" / META).read_text(encoding="utf-8"))
    assert meta["format_version"] == checkpoint.FORMAT_VERSION == 2
    restored = JaxSsvaeModel.restore(tmp_path / "c")
    assert (restored.state.step, restored.state.epoch, restored.fingerprint) == (11, 3, "f" * 32)
    assert restored.history == model.history and restored.spec == model.spec
    np.testing.assert_array_equal(restored.tau, model.tau)
    np.testing.assert_array_equal(restored.state.key, model.state.key)
    for want, got in zip(
        jax.tree_util.tree_leaves((model.state.params, model.state.opt_state)),
        jax.tree_util.tree_leaves((restored.state.params, restored.state.opt_state)),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_a_format_1_checkpoint_restores_alike_and_is_saved_again_as_orbax(tmp_path: Path) -> None:
    model = full_model()
    save_npz_v1(model, tmp_path / "old")
    old = JaxSsvaeModel.restore(tmp_path / "old")
    x = np.random.default_rng(0).random((5, 4), np.float32)
    np.testing.assert_allclose(old.predict(x).class_probs, model.predict(x).class_probs, rtol=1e-6)
    old.save(tmp_path / "old")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [META, STATE]
    np.testing.assert_allclose(
        JaxSsvaeModel.restore(tmp_path / "old").predict(x).class_probs,
        model.predict(x).class_probs,
        rtol=1e-6,
    )


def orbax_files() -> dict[str, bytes]:
    """Every file of a format-2 checkpoint of `full_model()`, by path inside it."""
    directory = Path(tempfile.mkdtemp())
    try:
        full_model().save(directory / "c")
        return {
            str(path.relative_to(directory / "c")): path.read_bytes()
            for path in sorted((directory / "c").rglob("*"))
            if path.is_file()
        }
    finally:
        shutil.rmtree(directory)


ORBAX_FILES = orbax_files()


@st.composite
def damaged_orbax_checkpoints(draw: st.DrawFn) -> dict[str, bytes]:
    """A format-2 checkpoint with one of its files changed, cut short, emptied or removed."""
    files = dict(ORBAX_FILES)
    name = draw(st.sampled_from(sorted(files)))
    kind = draw(st.sampled_from(["flip", "cut", "remove", "json value"]))
    data = files[name]
    if kind == "flip":
        flips = st.lists(
            st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4
        )
        files[name] = corrupted(data, draw(flips))
    elif kind == "cut":
        files[name] = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    elif kind == "remove":
        del files[name]
    else:
        try:
            document = json.loads(data)
        except ValueError:
            document = None
        if isinstance(document, dict) and document:
            key = draw(st.sampled_from(sorted(document)))
            document[key] = draw(
                st.sampled_from([None, -1, 2**40, [2**40], "x", {"shape": [2**40]}, []])
            )
            files[name] = json.dumps(document).encode()
    return files


def resident_kib(field: str) -> int:
    """This process's resident memory (VmRSS) or its peak since the last reset (VmHWM)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0])


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_orbax_checkpoints())
def test_a_damaged_orbax_checkpoint_restores_or_says_why_in_one_line(
    files: dict[str, bytes],
) -> None:
    directory = Path(tempfile.mkdtemp())
    try:
        for name, data in files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(data)
        # tracemalloc cannot watch here (it crashes beside tensorstore's threads): the
        # kernel's peak resident size, reset first, bounds what the restore allocated.
        Path("/proc/self/clear_refs").write_text("5")
        before = resident_kib("VmRSS")
        try:
            JaxSsvaeModel.restore(directory)
        except CheckpointError as error:
            message = str(error)
            assert "\n" not in message and str(directory) in message and len(message) < 600
        assert resident_kib("VmHWM") - before < 200 * 1024  # never what a shape declares
    finally:
        shutil.rmtree(directory)


def test_arrays_of_another_shape_than_the_spec_are_refused_before_they_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    JaxSsvaeModel(SPEC.evolve(hidden_sizes=(512,))).save(tmp_path / "c")
    meta = json.loads((tmp_path / "c" / META).read_text(encoding="utf-8"))
    meta["spec"]["hidden_sizes"] = [4]  # the spec says small, the arrays are wide
    (tmp_path / "c" / META).write_text(json.dumps(meta), encoding="utf-8")
    read: list[str] = []
    real = checkpoint._restore_item
    monkeypatch.setattr(
        checkpoint, "_restore_item", lambda path, item, t: read.append(item) or real(path, item, t)
    )
    with pytest.raises(
        CheckpointError, match=r"array 0 has shape \(512,\), the model needs \(4,\)"
    ):
        JaxSsvaeModel.restore(tmp_path / "c")
    assert read == ["extras"]  # the key and tau only: no leaf was read
