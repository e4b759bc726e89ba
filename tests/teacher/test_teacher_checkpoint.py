"""Checkpoint resolution, kind detection and the one-line loading errors."""

from __future__ import annotations

import json
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
    message = one_line_error(directory)
    assert "no model.safetensors, model.safetensors.index.json or" in message


def shard_checkpoint(source, target, n_shards):
    """Copy a checkpoint with its model.safetensors split into n_shards files."""
    directory = copy_checkpoint(source, target)
    weights = load_file(str(directory / "model.safetensors"))
    (directory / "model.safetensors").unlink()
    weight_map = {}
    for i, names in enumerate(np.array_split(sorted(weights), n_shards), start=1):
        shard = f"model-{i:05d}-of-{n_shards:05d}.safetensors"
        save_file({k: weights[k] for k in names}, str(directory / shard))
        weight_map.update(dict.fromkeys(names, shard))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return directory


def test_sharded_safetensors_score_exactly_as_the_single_file(minilm_dir, tmp_path):
    directory = shard_checkpoint(minilm_dir, tmp_path / "sharded", 3)
    index = json.loads((directory / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) == 3
    assert not (directory / "model.safetensors").exists()

    sharded = load_teacher(str(directory), max_length=64, show_progress=False)
    single = load_teacher(str(minilm_dir), max_length=64, show_progress=False)
    assert sharded.kind == "bi" and sharded.max_length == 64
    scores = sharded.score(QUERIES, DOCS)
    np.testing.assert_array_equal(scores, single.score(QUERIES, DOCS))
    assert scores[0] > 0.3  # related texts: a real cosine, not zeros


def test_transformers_sharded_cross_encoder_loads(cross_dir, tmp_path):
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification.from_pretrained(str(cross_dir))
    directory = tmp_path / "hf_sharded"
    model.save_pretrained(directory, max_shard_size="40MB")  # transformers' layout
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(cross_dir / name, directory / name)
    assert not (directory / "model.safetensors").exists()
    assert len(list(directory.glob("model-*-of-*.safetensors"))) >= 2

    sharded = load_teacher(str(directory), max_length=64, show_progress=False)
    single = load_teacher(str(cross_dir), max_length=64, show_progress=False)
    assert sharded.kind == "cross"
    np.testing.assert_array_equal(
        sharded.score(QUERIES, DOCS), single.score(QUERIES, DOCS)
    )


def test_missing_shard_is_a_one_line_error_naming_it(minilm_dir, tmp_path):
    directory = shard_checkpoint(minilm_dir, tmp_path / "sharded", 3)
    (directory / "model-00002-of-00003.safetensors").unlink()
    message = one_line_error(directory)
    assert "model.safetensors.index.json" in message
    assert "shard 'model-00002-of-00003.safetensors'" in message
    assert "not found" in message


def test_index_name_missing_from_its_shard_is_named(minilm_dir, tmp_path):
    directory = shard_checkpoint(minilm_dir, tmp_path / "sharded", 2)
    index_file = directory / "model.safetensors.index.json"
    index = json.loads(index_file.read_text())
    key = "encoder.layer.0.attention.self.key.weight"
    assert index["weight_map"][key] == "model-00001-of-00002.safetensors"
    index["weight_map"][key] = "model-00002-of-00002.safetensors"  # wrong shard
    index_file.write_text(json.dumps(index))
    message = one_line_error(directory)
    assert "model-00002-of-00002.safetensors: no tensor" in message
    assert repr(key) in message
