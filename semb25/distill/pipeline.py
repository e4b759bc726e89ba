"""The main job's first half: teacher scores -> student -> distillation -> run dir.

``train/distill.py`` is a thin command over :func:`distill`. A run directory
holds the best student by validation nDCG@10 (loadable with
``SemanticBM25.from_pretrained(run_dir)``), the last-step student in
``final/``, orbax checkpoints, ``metrics.jsonl``, ``train.log``, the config
used (``config.toml``), ``run.json`` (teacher, data sources, split, seed,
timings) and ``examples/``, the training examples
(:mod:`semb25.distill.example_store`): a rerun after a kill continues building
them after the last complete chunk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
import tomllib
from dataclasses import fields
from pathlib import Path

from semb25.atomic import atomic_write_json, atomic_write_text
from semb25.data import Collection, load_collection, resolve_data_root
from semb25.data.collection import IRDS_PREFIX, KNOWN_IRDS_IDS
from semb25.data.stream import (
    CandidateStream,
    load_ir_datasets_stream,
    stream_collection,
)
from semb25.distill.example_store import (
    ExampleStore,
    TeacherScorer,
    build_example_store,
)
from semb25.distill.examples import (
    BatchSampler,
    QueryGroup,
    read_score_file,
    teacher_standardisation,
)
from semb25.distill.trainer import TrainConfig, Trainer
from semb25.student import SemanticBM25, StudentConfig

log = logging.getLogger(__name__)

SECTIONS = {"name", "teacher", "data", "student", "train"}
TEACHER_FIELDS = {"id", "kind", "max_length", "batch_size"}
DATA_FIELDS = {
    "train",
    "train_ir_datasets",
    "eval",
    "eval_ir_datasets",
    "eval_max_candidates",
    "max_candidates",
    "max_queries",
    "validation_fraction",
    "cross_query_negatives",
}
CACHE_ENV = "SEMB25_CACHE"


def load_config(path: str | Path) -> dict:
    """Read a TOML run config, rejecting unknown sections and fields."""
    path = Path(path)
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"config {path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config {path}: not valid TOML ({e})") from None
    unknown = sorted(set(config) - SECTIONS)
    if unknown:
        raise ValueError(
            f"config {path}: unknown section(s) {unknown}; expected {sorted(SECTIONS)}"
        )
    for section, cls in (("student", StudentConfig), ("train", TrainConfig)):
        known = {f.name for f in fields(cls)}
        bad = sorted(set(config.get(section, {})) - known)
        if bad:
            raise ValueError(f"config {path}: [{section}] has unknown field(s) {bad}")
    for section, known in (("data", DATA_FIELDS), ("teacher", TEACHER_FIELDS)):
        bad = sorted(set(config.get(section, {})) - known)
        if bad:
            raise ValueError(
                f"config {path}: [{section}] has unknown field(s) {bad}; "
                f"known {sorted(known)}"
            )
    _check_teacher_section(config.get("teacher", {}), path)
    config["_path"] = str(path)
    return config


def _check_teacher_section(teacher: dict, path) -> None:
    """Types and ranges of ``[teacher]``, each error naming the field."""
    if not isinstance(teacher.get("id"), str) or not teacher["id"]:
        raise ValueError(f"config {path}: [teacher] needs an 'id' (a string)")
    for name in ("max_length", "batch_size"):
        value = teacher.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise ValueError(
                f"config {path}: [teacher] {name} must be an integer >= 1, "
                f"got {value!r}"
            )
    kind = teacher.get("kind")
    if kind is not None and kind not in ("cross", "bi"):
        raise ValueError(
            f"config {path}: [teacher] kind must be 'cross' or 'bi', got {kind!r}"
        )


def default_cache_path() -> Path:
    """Teacher-score cache: ``$SEMB25_CACHE`` or ``~/.cache/semb25``."""
    root = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "semb25"))
    return root / "teacher_scores.sqlite"


def _locate(data: dict, which: str, data_root=None) -> tuple[str, Path | None]:
    """The spec to load for ``which`` (a local name or path, or ``irds:<id>``)
    and the data root.

    A collection given as a path, or found under the data root, is read from
    local files. When there is no local data root at all, the config's
    ``<which>_ir_datasets`` id is used instead; a name missing from an
    existing data root is an error (a typo, not a reason to download).
    """
    spec = data[which]
    root = resolve_data_root(data_root)
    local = Path(spec).expanduser()
    if local.exists() or (root is not None and (root / spec).exists()):
        return spec, root
    if root is not None and not spec.startswith("irds:") and "/" not in spec:
        raise ValueError(
            f"[data] {which} = {spec!r}: no such folder under the data "
            f"root {root} (folders there: "
            f"{sorted(p.name for p in root.iterdir() if p.is_dir())})"
        )
    irds = data.get(f"{which}_ir_datasets")
    if not irds:
        raise ValueError(
            f"collection {spec!r}: not found under data root {root} "
            f"and no {which}_ir_datasets id in the config"
        )
    log.info(
        "%s collection: %r not found locally (data root %s); using ir_datasets %s",
        which,
        spec,
        root,
        irds,
    )
    return f"{IRDS_PREFIX}{irds}", root


def resolve_collection(data: dict, which: str, data_root=None) -> Collection:
    """The ``train`` or ``eval`` collection: local sample first, else ir_datasets
    (see :func:`_locate`)."""
    kwargs = {
        "max_candidates": data.get("max_candidates")
        if which == "train"
        else data.get("eval_max_candidates"),
        "max_queries": data.get("max_queries") if which == "train" else None,
    }
    spec, root = _locate(data, which, data_root)
    collection = load_collection(spec, root, **kwargs)
    log.info(
        "%s collection %s from %s: %d queries, %d candidate pairs",
        which,
        collection.name,
        collection.source,
        len(collection.queries),
        len(collection.pairs()),
    )
    return collection


def resolve_train_stream(data: dict, data_root=None) -> CandidateStream:
    """The training collection's candidate lists as a stream.

    Local collections are loaded (they are samples) and viewed as a stream;
    an ir_datasets one is read query by query, never whole.
    """
    kwargs = {
        "max_candidates": data.get("max_candidates"),
        "max_queries": data.get("max_queries"),
    }
    spec, root = _locate(data, "train", data_root)
    if spec.startswith(IRDS_PREFIX) or spec in KNOWN_IRDS_IDS:
        stream = load_ir_datasets_stream(spec.removeprefix(IRDS_PREFIX), **kwargs)
    else:
        stream = stream_collection(load_collection(spec, root, **kwargs))
    log.info("train collection %s from %s (streamed)", stream.name, stream.source)
    return stream


def collection_teacher_scores(
    teacher,
    collection: Collection,
    cache_path: str | Path | None = None,
    show_progress: bool = True,
) -> dict:
    """Teacher scores of every candidate pair, through the resumable store."""
    from semb25.teacher.store import ScoreStore, score_with_store

    cache_path = Path(cache_path or default_cache_path())
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    pairs = collection.pairs()
    with ScoreStore(cache_path, teacher.name) as store:
        scores = score_with_store(
            teacher,
            store,
            pairs,
            collection.queries,
            collection.docs,
            show_progress=show_progress,
        )
    return dict(zip(pairs, (float(s) for s in scores), strict=True))


def is_validation(qid: str, fraction: float, seed: int) -> bool:
    """Whether a query is held out: its seeded hash, as a number in [0, 1),
    is below ``fraction`` (decided per query, so it can be asked of a stream)."""
    digest = hashlib.sha256(f"{seed}:{qid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_queries(qids: list[str], fraction: float, seed: int) -> tuple[set, set]:
    """Deterministic train/validation split of query ids by a seeded hash."""
    val = {q for q in qids if is_validation(q, fraction, seed)}
    return set(qids) - val, val


class _FileScores:
    """Scores of a ``qid doc_id score`` file, read on first use."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.seconds = 0.0
        self._scores: dict | None = None

    def __call__(self, pairs, queries, docs) -> dict:
        if self._scores is None:
            t0 = time.perf_counter()
            self._scores = read_score_file(self.path)
            self.seconds += time.perf_counter() - t0
            log.info("teacher scores: %d read from %s", len(self._scores), self.path)
        return self._scores


def build_training_examples(
    folder: str | Path,
    stream: CandidateStream,
    teacher,
    tokenizer,
    special_ids,
    data: dict,
    seed: int,
    scores_file: str | Path | None = None,
    cache_path: str | Path | None = None,
    show_progress: bool = True,
) -> tuple[ExampleStore, float]:
    """The training examples of ``[data]`` in an example store in ``folder``.

    Scores come from ``scores_file`` when given, else from the teacher through
    the score store at ``cache_path``. Returns the store and the seconds spent
    getting teacher scores.
    """
    fraction = data.get("validation_fraction", 0.1)
    fingerprint = {
        "source": stream.source,
        "max_candidates": data.get("max_candidates"),
        "max_queries": data.get("max_queries"),
        "validation_fraction": fraction,
        "teacher": teacher.name,
        "scores_file": None,
    }
    options = dict(
        vocab_size=int(teacher.token_embeddings.shape[0]),
        exclude_ids=special_ids,
        is_train=lambda qid: not is_validation(qid, fraction, seed),
        cross_query_negatives=data.get("cross_query_negatives", 0),
        seed=seed,
        total=data.get("max_queries"),
        show_progress=show_progress,
    )
    if scores_file:
        info = Path(scores_file).stat()
        fingerprint["scores_file"] = [
            str(Path(scores_file).resolve()),
            info.st_size,
            info.st_mtime_ns,
        ]
        scorer = _FileScores(scores_file)
        store = build_example_store(
            folder, stream, tokenizer, scorer, fingerprint=fingerprint, **options
        )
        return store, scorer.seconds

    from semb25.teacher.store import ScoreStore

    cache_path = Path(cache_path or default_cache_path())
    with ScoreStore(cache_path, teacher.name) as scores:
        scorer = TeacherScorer(teacher, scores)
        store = build_example_store(
            folder, stream, tokenizer, scorer, fingerprint=fingerprint, **options
        )
    return store, scorer.seconds


def make_validator(
    trainer: Trainer, sampler: BatchSampler, groups: list[QueryGroup], qrels: dict
):
    """``circuit -> {"nDCG@10", "kendall_tau"}`` on held-out queries."""
    from semb25.evaluate import evaluate_run, fidelity

    def validate(_circuit) -> dict:
        run, teacher_run = {}, {}
        for batch in sampler.full_lists(groups):
            scores = trainer.scores(batch)
            for row, gi in enumerate(batch["query_index"]):
                if gi < 0:
                    continue
                g = groups[gi]
                n = len(g.doc_ids)
                run[g.qid] = dict(
                    zip(g.doc_ids, map(float, scores[row, :n]), strict=True)
                )
                teacher_run[g.qid] = dict(
                    zip(g.doc_ids, map(float, g.teacher), strict=True)
                )
        judged = {q: qrels[q] for q in run if q in qrels}
        metrics, _ = evaluate_run(run, judged)
        ndcg = next(v for k, v in metrics.items() if k.startswith("nDCG@10"))
        fid = fidelity(run, teacher_run)
        return {"nDCG@10": float(ndcg), "kendall_tau": float(fid["kendall_tau"])}

    return validate


def distill(
    config_path: str | Path,
    data_root: str | Path | None = None,
    teacher_id: str | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    scores_file: str | Path | None = None,
    cache_path: str | Path | None = None,
    show_progress: bool = True,
) -> Path:
    """Run steps 1-3 of the main job and return the run directory.

    Args:
        config_path: a TOML config (see ``train/configs/``).
        data_root: folder of local collections (else ``$SEMB25_DATA`` or the
            shared sibling folder, else ir_datasets).
        teacher_id: overrides ``[teacher] id``.
        out: run directory (default ``runs/<config name>``).
        resume: continue from the run directory's last checkpoint.
        scores_file: precomputed ``qid doc_id score`` teacher scores to use
            instead of running the teacher.
        cache_path: the teacher-score store (default :func:`default_cache_path`).
    """
    started = time.perf_counter()
    config = load_config(config_path)
    name = config.get("name", Path(config_path).stem)
    run_dir = Path(out or Path("runs") / name)
    _prepare_run_dir(run_dir, config_path, resume)
    teacher_cfg = dict(config["teacher"])
    if teacher_id:
        teacher_cfg["id"] = teacher_id
    # Every setting is checked before any (long) teacher work starts.
    try:
        train_cfg = _train_config(config)
        student = dict(config.get("student", {}))
        if "special_ids" in student:
            ids = student["special_ids"]
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids
            ):
                raise ValueError(
                    f"student config: special_ids must be a list of integers, "
                    f"got {ids!r}"
                )
            student["special_ids"] = tuple(ids)
        student_cfg = StudentConfig(**student)
    except ValueError as e:
        raise ValueError(f"config {config['_path']}: {e}") from None
    _check_data_section(config["data"], config["_path"])

    # 1. Training examples: each query's candidates with their teacher scores
    # (cached, resumable), tokenised into an on-disk store, chunk by chunk.
    data = config["data"]
    stream = resolve_train_stream(data, data_root)
    from semb25.teacher import load_teacher

    teacher = load_teacher(
        teacher_cfg["id"],
        kind=teacher_cfg.get("kind"),
        max_length=teacher_cfg.get("max_length", 512),
        batch_size=teacher_cfg.get("batch_size", 32),
        show_progress=show_progress,
    )
    model = SemanticBM25.create(
        teacher.token_embeddings, teacher.tokenizer, student_cfg
    )
    t0 = time.perf_counter()
    store, teacher_seconds = build_training_examples(
        run_dir / "examples",
        stream,
        teacher,
        model.tokenizer,
        model.config.special_ids,
        data,
        train_cfg.seed,
        scores_file,
        cache_path,
        show_progress,
    )
    examples_seconds = time.perf_counter() - t0

    # 2. The student, its IDF direction fitted to this collection's IDF.
    stats = store.corpus_stats()
    model = SemanticBM25.create(
        teacher.token_embeddings,
        teacher.tokenizer,
        student_cfg,
        corpus=stats,
        seed=train_cfg.seed,
    )

    # 3. Distil on the training split, validate on the held-out queries.
    fraction = data.get("validation_fraction", 0.1)
    train_groups, val_groups = [], []
    for g in store:
        held_out = is_validation(g.qid, fraction, train_cfg.seed)
        (val_groups if held_out else train_groups).append(g)
    skipped = store.skipped
    mean, std = teacher_standardisation(train_groups)
    sampler = BatchSampler(
        train_groups,
        train_cfg.queries_per_batch,
        train_cfg.docs_per_query,
        model.config.max_query_len,
        model.config.max_doc_len,
        train_cfg.seed,
        mean,
        std,
        model.config.pad_id,
    )
    trainer = Trainer(model.circuit, sampler, train_cfg, run_dir)
    if resume:
        trainer.restore_latest()
    provenance = {
        "teacher": teacher.name,
        "teacher_kind": teacher.kind,
        "train_collection": stream.name,
        "source": stream.source,
        "seed": train_cfg.seed,
        "config": name,
    }
    validate = (
        make_validator(
            trainer, sampler, val_groups, stream.qrels(g.qid for g in val_groups)
        )
        if val_groups
        else None
    )

    def keep_best(circuit, metrics) -> None:
        SemanticBM25(circuit, model.tokenizer).save_pretrained(
            run_dir, {**provenance, "step": trainer.step, "validation": metrics}
        )

    log.info(
        "distilling %d training queries (%d held out) for %d steps, %d device(s)",
        len(train_groups),
        len(val_groups),
        train_cfg.steps,
        trainer.mesh.devices.size,
    )
    rows = trainer.fit(validate, keep_best, show_progress)
    final = SemanticBM25(trainer.circuit_now(), model.tokenizer)
    final.save_pretrained(run_dir / "final", {**provenance, "step": trainer.step})
    if validate is None or not (run_dir / "model.safetensors").exists():
        final.save_pretrained(run_dir, {**provenance, "step": trainer.step})

    atomic_write_json(
        run_dir / "run.json",
        {
            **provenance,
            "teacher_id": teacher_cfg["id"],
            "n_train_queries": len(train_groups),
            "n_validation_queries": len(val_groups),
            "validation_qids": sorted(g.qid for g in val_groups),
            "skipped": dict(skipped),
            "teacher_mean": mean,
            "teacher_std": std,
            "corpus": {"n_docs": stats.n_docs, "avgdl": stats.avgdl},
            "steps": trainer.step,
            "final_loss": rows[-1]["loss"] if rows else None,
            "example_store": str(store.folder),
            "n_train_pairs": sum(len(g.teacher) for g in train_groups),
            "cross_query_negatives": data.get("cross_query_negatives", 0),
            "teacher_seconds": teacher_seconds,
            "examples_seconds": examples_seconds,
            "total_seconds": time.perf_counter() - started,
        },
    )
    validated = any("val" in r for r in rows)
    log.info(
        "run directory %s: %s, final/ at step %d",
        run_dir,
        "best student by validation nDCG@10"
        if validated
        else "the final student (no validation ran)",
        trainer.step,
    )
    return run_dir


def _check_data_section(data: dict, path: str) -> None:
    """Types and ranges of ``[data]``, each error naming the field."""
    if not isinstance(data.get("train"), str):
        raise ValueError(f"config {path}: [data] train must name a collection")
    fraction = data.get("validation_fraction", 0.1)
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ValueError(
            f"config {path}: [data] validation_fraction must be in "
            f"[0, 1), got {fraction!r}"
        )
    negatives = data.get("cross_query_negatives", 0)
    if not isinstance(negatives, int) or isinstance(negatives, bool) or negatives < 0:
        raise ValueError(
            f"config {path}: [data] cross_query_negatives must be an integer "
            f">= 0, got {negatives!r}"
        )
    for name in ("max_candidates", "max_queries"):
        value = data.get(name)
        if value is not None and (not isinstance(value, int) or value < 2):
            raise ValueError(
                f"config {path}: [data] {name} must be an integer >= 2, got {value!r}"
            )


def _train_config(config: dict) -> TrainConfig:
    train = dict(config.get("train", {}))
    return TrainConfig(**train)


def _prepare_run_dir(run_dir: Path, config_path, resume: bool) -> None:
    """Refuse to overwrite an earlier run unless resuming it with the same config."""
    text = Path(config_path).read_text(encoding="utf-8")
    saved = run_dir / "config.toml"
    if (run_dir / "checkpoints").exists() and not resume:
        raise FileExistsError(
            f"run directory {run_dir}: already holds a run; pass "
            "--resume to continue it or --out for a new one"
        )
    if resume and saved.is_file() and saved.read_text(encoding="utf-8") != text:
        raise ValueError(
            f"run directory {run_dir}: config.toml differs from "
            f"{config_path}; resume with the config the run started with"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, text)


def remove_run(run_dir: Path) -> None:
    """Delete a run directory (used by the demo to start cold)."""
    shutil.rmtree(run_dir, ignore_errors=True)
