"""semb25: an interpretable neural reranker, BM25 in form, a cross-encoder in quality.

>>> import semb25                                             # doctest: +SKIP
>>> model = semb25.SemanticBM25.from_pretrained("runs/demo")  # doctest: +SKIP
>>> model.rerank("how long is the life cycle of a flea", passages)  # doctest: +SKIP
"""

from importlib import import_module

__version__ = "0.1.0"

# Heavy submodules load on first use, so `import semb25` stays fast.
_LAZY = {
    "SemanticBM25": "semb25.student",
    "StudentConfig": "semb25.student",
    "Explanation": "semb25.student",
    "DocIndex": "semb25.student",
    "ScoreStore": "semb25.teacher.store",
    "BM25Index": "semb25.bm25",
    "load_teacher": "semb25.teacher",
    "Teacher": "semb25.teacher",
    "load_collection": "semb25.data",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'semb25' has no attribute {name!r}")
