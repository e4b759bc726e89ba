"""The distillation loop: jit-compiled, data-parallel, checkpointed, resumable.

Optimisation: optax AdamW with linear warmup then cosine decay
(``optax.warmup_cosine_decay_schedule``), global-norm gradient clipping, and
separate learning rates for the token embeddings (when trained) and for the
circuit's parameters (``optax.multi_transform``).

Data parallelism: the batch's query axis is split over a one-axis ``Mesh`` of
all local devices (``NamedSharding(mesh, P("data"))``) and the parameters are
replicated; XLA inserts the gradient all-reduce. On several hosts, call
``jax.distributed.initialize()`` at the top of the training script before any
JAX call: ``jax.devices()`` then lists every host's devices, and each host
must feed its own slice of the global batch (the sampler's ``step`` rows
``host_index::host_count``). On one CPU, simulate devices with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``.

Never losing a run: orbax checkpoints (params, optimiser state, step) every
``checkpoint_every`` steps and at the end; orbax writes each to a temporary
folder and renames it when complete, so a kill leaves the last good one.
Resuming restores the latest and continues; because batch ``k`` depends only
on (seed, k), the resumed run ends with the same parameters as an
uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from semb25.distill.examples import BatchSampler
from semb25.distill.losses import combined_loss

log = logging.getLogger(__name__)

# Fault injection for the resume tests: SIGKILL this process after this step.
KILL_ENV = "SEMB25_KILL_AT_STEP"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the ``[train]`` table of a config file)."""

    steps: int = 600
    queries_per_batch: int = 16
    docs_per_query: int = 16
    learning_rate: float = 3e-3
    embedding_learning_rate: float = 1e-4
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    losses: dict = field(
        default_factory=lambda: {"listwise_kl": 1.0, "margin_mse": 0.1}
    )
    temperature: float = 1.0
    checkpoint_every: int = 100
    validate_every: int = 100
    keep_checkpoints: int = 2
    seed: int = 0

    def __post_init__(self):
        from semb25.distill.losses import LOSSES

        ints = (
            "steps",
            "queries_per_batch",
            "docs_per_query",
            "warmup_steps",
            "checkpoint_every",
            "validate_every",
            "keep_checkpoints",
            "seed",
        )
        for name in ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"[train] {name}: expected an integer, got {value!r}")
        floats = (
            "learning_rate",
            "embedding_learning_rate",
            "weight_decay",
            "clip_norm",
            "temperature",
        )
        for name in floats:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"[train] {name}: expected a number, got {value!r}")
        checks = [
            (self.steps >= 1, "steps must be >= 1"),
            (self.queries_per_batch >= 1, "queries_per_batch must be >= 1"),
            (self.docs_per_query >= 2, "docs_per_query must be >= 2"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (
                self.checkpoint_every >= 1 and self.validate_every >= 1,
                "checkpoint_every and validate_every must be >= 1",
            ),
            (self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1"),
            (
                self.learning_rate > 0 and self.embedding_learning_rate >= 0,
                "learning rates must be > 0",
            ),
            (self.temperature > 0, "temperature must be > 0"),
            (self.clip_norm > 0, "clip_norm must be > 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"[train] {message}")
        unknown = sorted(set(self.losses) - set(LOSSES))
        if unknown:
            raise ValueError(
                f"[train.losses] unknown loss(es) {unknown}; known {LOSSES}"
            )
        for name, weight in self.losses.items():
            if (
                not isinstance(weight, (int, float))
                or isinstance(weight, bool)
                or weight < 0
            ):
                raise ValueError(
                    f"[train.losses] {name}: expected a weight >= 0, got {weight!r}"
                )
        if not any(float(w) for w in self.losses.values()):
            raise ValueError("[train.losses] at least one loss needs a non-zero weight")


def make_optimizer(cfg: TrainConfig, params) -> optax.GradientTransformation:
    """AdamW + warmup-cosine, clipped, embeddings on their own learning rate."""

    def schedule(peak):
        return optax.warmup_cosine_decay_schedule(
            0.0,
            peak,
            max(1, cfg.warmup_steps),
            max(cfg.steps, cfg.warmup_steps + 1),
            end_value=peak * 0.01,
        )

    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: (
            "embedding" if "embeddings" in jax.tree_util.keystr(path) else "circuit"
        ),
        params,
    )
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.multi_transform(
            {
                "circuit": optax.adamw(
                    schedule(cfg.learning_rate), weight_decay=cfg.weight_decay
                ),
                "embedding": optax.adamw(
                    schedule(cfg.embedding_learning_rate), weight_decay=0.0
                ),
            },
            labels,
        ),
    )


def data_mesh() -> Mesh:
    """A one-axis mesh over every local device, axis name ``data``."""
    return Mesh(np.array(jax.devices()), ("data",))


def _list_scores(circuit, batch):
    """Student scores ``[B, N]`` for a batch of query lists.

    The count form (a matmul with term counts) unless the circuit is
    contextual, which needs positions (``BatchSampler(positional=True)``).
    """
    if circuit.contextual:
        return circuit.contributions_for_lists(
            batch["q_tokens"], batch["q_mask"], batch["d_tokens"], batch["d_mask"]
        )["score"]
    # Rows index the batch's own vocabulary (see BatchSampler).
    tables = circuit.tables(batch["vocab"][0])
    return circuit.contributions_from_counts(
        batch["q_ids"], batch["q_mask"], batch["counts"], tables=tables
    )["score"]


class Trainer:
    """Runs distillation of a circuit on a :class:`BatchSampler`."""

    def __init__(
        self,
        circuit,
        sampler: BatchSampler,
        cfg: TrainConfig,
        run_dir: str | Path,
        mesh: Mesh | None = None,
    ):
        self.circuit, self.sampler, self.cfg = circuit, sampler, cfg
        # A contextual circuit reads documents by position, not by counts.
        sampler.positional = sampler.positional or circuit.contextual
        self.run_dir = Path(run_dir)
        self.mesh = mesh or data_mesh()
        n_dev = self.mesh.devices.size
        if cfg.queries_per_batch % n_dev:
            raise ValueError(
                f"train.queries_per_batch = {cfg.queries_per_batch} "
                f"must be a multiple of the {n_dev} devices"
            )
        self.graphdef, params, self.rest = nnx.split(circuit, nnx.Param, ...)
        self.params = nnx.to_pure_dict(params)
        self._param_template = params
        self.optimizer = make_optimizer(cfg, self.params)
        self.opt_state = self.optimizer.init(self.params)
        self.step = 0
        self._train_step = jax.jit(self._step_fn)
        self._eval_scores = jax.jit(self._scores_fn)
        self.checkpoints = ocp.CheckpointManager(
            (self.run_dir / "checkpoints").absolute(),
            options=ocp.CheckpointManagerOptions(
                max_to_keep=cfg.keep_checkpoints,
                create=True,
                enable_async_checkpointing=False,
            ),
        )

    # -- pure functions ----------------------------------------------------

    def _merge(self, params):
        state = nnx.State(self._param_template)
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self.graphdef, state, self.rest)

    def _scores_fn(self, params, batch):
        return _list_scores(self._merge(params), batch)

    def _step_fn(self, params, opt_state, batch):
        def loss_fn(p):
            scores = _list_scores(self._merge(p), batch)
            return combined_loss(
                scores,
                batch["teacher"],
                batch["where"],
                self.cfg.losses,
                self.cfg.temperature,
            )

        (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, loss, terms, optax.global_norm(grads)

    # -- state -------------------------------------------------------------

    def _shard(self, batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        sharded = NamedSharding(self.mesh, P("data"))
        replicated = NamedSharding(self.mesh, P())
        return {
            k: jax.device_put(v, replicated if k == "vocab" else sharded)
            for k, v in batch.items()
            if k != "query_index"
        }

    def save_checkpoint(self) -> None:
        self.checkpoints.save(
            self.step,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(self.params),
                opt_state=ocp.args.StandardSave(self.opt_state),
            ),
            force=True,
        )
        self.checkpoints.wait_until_finished()
        log.debug("checkpoint saved at step %d", self.step)

    def restore_latest(self) -> bool:
        """Restore the newest checkpoint; False if there is none."""
        latest = self.checkpoints.latest_step()
        if latest is None:
            return False
        restored = self.checkpoints.restore(
            latest,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(self.params),
                opt_state=ocp.args.StandardRestore(self.opt_state),
            ),
        )
        self.params, self.opt_state = restored["params"], restored["opt_state"]
        self.step = int(latest)
        log.info(
            "resumed from the checkpoint at step %d in %s",
            self.step,
            self.run_dir / "checkpoints",
        )
        return True

    def circuit_now(self):
        """The circuit with the current parameters (a new module object)."""
        return self._merge(self.params)

    def scores(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._eval_scores(self.params, self._shard(batch)))

    # -- the loop ----------------------------------------------------------

    def fit(
        self,
        validate: Callable[[object], dict] | None = None,
        on_best: Callable[[object, dict], None] | None = None,
        show_progress: bool = True,
    ) -> list[dict]:
        """Train to ``cfg.steps``; returns the metrics rows of this run.

        Args:
            validate: ``circuit -> {"nDCG@10": ..., ...}`` run every
                ``validate_every`` steps and at the end.
            on_best: called with (circuit, metrics) when validation nDCG@10
                improves (used to keep the best student).
        """
        metrics_path = self.run_dir / "metrics.jsonl"
        rows = _read_metrics(metrics_path, up_to_step=self.step)
        _write_metrics(metrics_path, rows)
        best = max((r["val"]["nDCG@10"] for r in rows if "val" in r), default=-math.inf)
        bar = tqdm(
            total=self.cfg.steps,
            initial=self.step,
            desc="distilling",
            disable=not show_progress,
            unit="step",
        )
        start, start_step = time.perf_counter(), self.step
        while self.step < self.cfg.steps:
            batch = self.sampler.batch(self.step)
            new = self._train_step(self.params, self.opt_state, self._shard(batch))
            loss = float(new[2])
            if not math.isfinite(loss):
                qids = [self.sampler.groups[i].qid for i in batch["query_index"]]
                raise NonFiniteLossError(
                    f"loss is {loss} at step {self.step + 1} (batch queries "
                    f"{qids[:8]}{'...' if len(qids) > 8 else ''}); stopped, the last "
                    f"good checkpoint in {self.run_dir / 'checkpoints'} is intact"
                )
            self.params, self.opt_state = new[0], new[1]
            self.step += 1
            row = {
                "step": self.step,
                "loss": loss,
                "grad_norm": float(new[4]),
                **{k: float(v) for k, v in new[3].items()},
            }
            elapsed = time.perf_counter() - start
            row["steps_per_second"] = (self.step - start_step) / max(elapsed, 1e-9)
            bar.set_postfix(loss=f"{loss:.4f}", sps=f"{row['steps_per_second']:.1f}")
            bar.update(1)

            last = self.step == self.cfg.steps
            if validate and (self.step % self.cfg.validate_every == 0 or last):
                row["val"] = validate(self.circuit_now())
                log.info(
                    "step %d: loss %.4f, validation %s",
                    self.step,
                    loss,
                    {k: round(v, 4) for k, v in row["val"].items()},
                )
                if row["val"]["nDCG@10"] > best and on_best:
                    best = row["val"]["nDCG@10"]
                    on_best(self.circuit_now(), row["val"])
            rows.append(row)
            _append_metrics(metrics_path, row)
            if self.step % self.cfg.checkpoint_every == 0 or last:
                self.save_checkpoint()
            if os.environ.get(KILL_ENV) == str(self.step):
                os.kill(os.getpid(), signal.SIGKILL)
        bar.close()
        return rows


def _read_metrics(path: Path, up_to_step: int) -> list[dict]:
    """Rows of an earlier (interrupted) run up to the restored step."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break  # a line cut by a kill: everything after it is lost anyway
        if row.get("step", 0) <= up_to_step:
            rows.append(row)
    return rows


def _write_metrics(path: Path, rows: list[dict]) -> None:
    from semb25.atomic import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _append_metrics(path: Path, row: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
