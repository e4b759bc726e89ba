"""Checkpoint resolution, kind detection and the one-line loading errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from semb25.teacher import CheckpointError, load_checkpoint, load_teacher
from semb25.teacher.checkpoint import resolve_checkpoint

QUERIES = ["what do fleas eat", "how long is a flea life cycle"]
DOCS = [
    "Adult fleas feed on the blood of their host animal.",
    "The flea life cycle takes from two weeks to several months.",
]


def copy_checkpoint(source, target):
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("README.md"))
    return target


def one_line_error(directory, kind=None) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(str(directory), kind=kind)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bundled_ids_resolve_to_the_installed_wheel(minilm_dir):
    for name in ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        assert resolve_checkpoint(name) == minilm_dir


def test_kind_comes_from_the_checkpoint_and_can_be_overridden(minilm_dir, cross_dir):
    assert load_checkpoint(str(minilm_dir)).kind == "bi"
    assert load_checkpoint(str(minilm_dir)).max_seq_length == 256
    assert load_checkpoint(str(cross_dir)).kind == "cross"
    assert load_checkpoint(str(cross_dir), kind="bi").kind == "bi"


def test_unreachable_hub_gives_one_line_error_naming_local_dirs(monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args, **kwargs):
        raise LocalEntryNotFoundError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("cross-encoder/ms-marco-MiniLM-L-6-v2")
    message = str(info.value)
    assert "\n" not in message
    assert "hub is unreachable" in message and "local directory" in message


def test_wrong_shape_names_the_key_and_both_shapes(minilm_dir, tmp_path):
    directory = copy_checkpoint(minilm_dir, tmp_path / "ckpt")
    weights = load_file(str(directory / "model.safetensors"))
    key = "encoder.layer.2.intermediate.dense.weight"
    weights[key] = weights[key][:1000]
    save_file(weights, str(directory / "model.safetensors"))
    message = one_line_error(directory)
    assert key in message and "(1000, 384)" in message and "(1536, 384)" in message


def test_missing_and_unexpected_keys_are_named(minilm_dir, tmp_path):
    directory = copy_checkpoint(minilm_dir, tmp_path / "ckpt")
    weights = load_file(str(directory / "model.safetensors"))
    weights["encoder.layer.0.attention.self.kewy.weight"] = weights.pop(
        "encoder.layer.0.attention.self.key.weight"
    )
    save_file(weights, str(directory / "model.safetensors"))
    message = one_line_error(directory)
    assert "unexpected key 'encoder.layer.0.attention.self.kewy.weight'" in message
    assert "(384, 384)" in message

    del weights["encoder.layer.0.attention.self.kewy.weight"]
    save_file(weights, str(directory / "model.safetensors"))
    message = one_line_error(directory)
    assert "missing key 'encoder.layer.0.attention.self.key.weight'" in message
    assert "(384, 384)" in message


def test_bi_checkpoint_forced_to_cross_reports_the_missing_classifier(minilm_dir):
    message = one_line_error(minilm_dir, kind="cross")
    assert "missing key 'classifier.weight'" in message and "(1, 384)" in message


def test_pytorch_bin_only_checkpoint_loads_with_torch(cross_dir, tmp_path):
    import torch

    directory = copy_checkpoint(cross_dir, tmp_path / "bin")
    weights = load_file(str(directory / "model.safetensors"))
    torch.save(
        {k: torch.from_numpy(v) for k, v in weights.items()},
        directory / "pytorch_model.bin",
    )
    (directory / "model.safetensors").unlink()

    from_bin = load_teacher(str(directory), max_length=64, show_progress=False)
    from_safetensors = load_teacher(str(cross_dir), max_length=64, show_progress=False)
    np.testing.assert_allclose(
        from_bin.score(QUERIES, DOCS), from_safetensors.score(QUERIES, DOCS), atol=1e-6
    )


def test_directory_without_weights_is_a_one_line_error(minilm_dir, tmp_path):
    directory = tmp_path / "empty"
    directory.mkdir()
    shutil.copy(minilm_dir / "config.json", directory / "config.json")
    shutil.copy(minilm_dir / "modules.json", directory / "modules.json")
    assert "no model.safetensors or pytorch_model.bin" in one_line_error(directory)
