"""The student: the SemanticBM25 circuit, its explanations, save and load."""

from semb25.student.circuit import SemanticBM25Circuit, fit_idf_to_corpus
from semb25.student.config import StudentConfig
from semb25.student.explain import Explanation, TermExplanation
from semb25.student.index import DocIndex
from semb25.student.model import SemanticBM25

__all__ = [
    "DocIndex",
    "Explanation",
    "SemanticBM25",
    "SemanticBM25Circuit",
    "StudentConfig",
    "TermExplanation",
    "fit_idf_to_corpus",
]
