"""Save and load a student: versioned config JSON, safetensors, tokenizer.

A student directory holds ``semb25_config.json``, ``model.safetensors`` and
``tokenizer.json``; nothing in it is executed or unpickled when loading.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from flax import nnx
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from semb25.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from semb25.student.circuit import SemanticBM25Circuit
from semb25.student.config import CONFIG_FILE, StudentConfig

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
HUB_FILES = [CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE]


def circuit_arrays(circuit: SemanticBM25Circuit) -> dict[str, np.ndarray]:
    """Every variable of the circuit as ``{"dotted.path": array}``."""
    flat = nnx.to_flat_state(nnx.state(circuit))
    return {".".join(map(str, path)): np.asarray(var.get_value()) for path, var in flat}


def save_student(
    directory: str | Path,
    circuit: SemanticBM25Circuit,
    tokenizer_json: str,
    extra_config: dict | None = None,
) -> Path:
    """Write config, weights and tokenizer to ``directory`` (each atomically)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = circuit_arrays(circuit)
    atomic_write_bytes(directory / WEIGHTS_FILE, save_safetensors(arrays))
    atomic_write_text(directory / TOKENIZER_FILE, tokenizer_json)
    config = circuit.config.to_dict()
    if extra_config:
        config["provenance"] = extra_config
    atomic_write_json(directory / CONFIG_FILE, config)
    log.info("saved student to %s (%d arrays)", directory, len(arrays))
    return directory


def resolve_student_dir(path_or_id: str | Path) -> Path:
    """A local student directory, or a hub id downloaded with huggingface_hub."""
    path = Path(path_or_id)
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file() and (path / "student").is_dir():
            path = path / "student"
        return path
    if path.exists():
        raise ValueError(f"student {path}: expected a directory holding {CONFIG_FILE}")
    if str(path_or_id).count("/") != 1 or str(path_or_id).startswith((".", "/")):
        raise FileNotFoundError(f"student {path}: no such directory")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(path_or_id), allow_patterns=HUB_FILES))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise ConnectionError(
            f"student {path_or_id}: not a local directory and the Hugging Face hub "
            f"is unreachable ({type(e).__name__}); pass a local student directory"
        ) from None


def load_student(directory: Path) -> tuple[StudentConfig, SemanticBM25Circuit]:
    """Rebuild the circuit from ``directory``; clear errors on bad files."""
    config = StudentConfig.load(directory / CONFIG_FILE)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"student weights {weights_path}: file not found")
    try:
        arrays = load_safetensors(weights_path.read_bytes())
    except (SafetensorError, ValueError) as e:
        raise ValueError(
            f"student weights {weights_path}: unreadable, truncated or not "
            f"safetensors ({e})"
        ) from None

    emb = arrays.get("embeddings")
    if emb is None:
        raise ValueError(f"student weights {weights_path}: missing key 'embeddings'")
    circuit = SemanticBM25Circuit(config, emb, rngs=nnx.Rngs(0), initialise=False)
    expected = circuit_arrays(circuit)
    missing = sorted(set(expected) - set(arrays))
    unexpected = sorted(set(arrays) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"student weights {weights_path}: missing keys {missing}, "
            f"unexpected keys {unexpected} for config {directory / CONFIG_FILE}"
        )
    for key, ref in expected.items():
        if arrays[key].shape != ref.shape:
            raise ValueError(
                f"student weights {weights_path}: key '{key}' has shape "
                f"{arrays[key].shape}, config expects {ref.shape}"
            )

    state = nnx.state(circuit)
    flat = nnx.to_flat_state(state)
    for path, var in flat:
        var.set_value(np.asarray(arrays[".".join(map(str, path))]))
    nnx.update(circuit, nnx.from_flat_state(flat))
    return config, circuit
