"""The MiniLM teacher in JAX: checkpoint loading, tokenisation, scoring, caching."""

from semb25.teacher.bert import Bert, BertConfig, bert_forward
from semb25.teacher.checkpoint import (
    CheckpointError,
    load_checkpoint,
    resolve_checkpoint,
)
from semb25.teacher.store import ScoreStore, score_with_store
from semb25.teacher.teacher import Teacher, load_teacher

__all__ = [
    "Bert",
    "BertConfig",
    "CheckpointError",
    "ScoreStore",
    "Teacher",
    "bert_forward",
    "load_checkpoint",
    "load_teacher",
    "resolve_checkpoint",
    "score_with_store",
]
