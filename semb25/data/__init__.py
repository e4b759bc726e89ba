"""Collections (queries, qrels, candidates, passages) and TREC file formats."""

from semb25.data.collection import (
    KNOWN_IRDS_IDS,
    Collection,
    load_collection,
    resolve_data_root,
)
from semb25.data.trec import read_qrels, read_run, write_qrels, write_run

__all__ = [
    "KNOWN_IRDS_IDS",
    "Collection",
    "load_collection",
    "read_qrels",
    "read_run",
    "resolve_data_root",
    "write_qrels",
    "write_run",
]
