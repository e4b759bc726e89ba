"""Finding the BM25 circuit in a teacher: IDF direction, matching heads, a linear
SemanticBM25 probe and model editing (Lu, Chen & Eickhoff 2025, arXiv:2502.04645).
"""

from semb25.analysis.editing import (
    EditingStudy,
    choose_edit_token,
    edit_embedding,
    edited_teacher,
    editing_study,
)
from semb25.analysis.idf_direction import IdfDirection, collection_idf, idf_direction
from semb25.analysis.matching_heads import (
    PAPER_HEADS_MINILM_L12,
    AblationStudy,
    MatchingHeads,
    ablation_study,
    matching_heads,
    separation,
)
from semb25.analysis.probe import LinearProbe, compare_student, fit_probe, pair_features

__all__ = [
    "PAPER_HEADS_MINILM_L12",
    "AblationStudy",
    "EditingStudy",
    "IdfDirection",
    "LinearProbe",
    "MatchingHeads",
    "ablation_study",
    "choose_edit_token",
    "collection_idf",
    "compare_student",
    "edit_embedding",
    "edited_teacher",
    "editing_study",
    "fit_probe",
    "idf_direction",
    "matching_heads",
    "pair_features",
    "separation",
]
