"""Our JAX teacher against the PyTorch references, on real weights and text."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semb25.teacher import load_teacher
from semb25.teacher.tokenization import encode_texts

pytestmark = pytest.mark.slow


def test_bi_embeddings_and_cosines_match_sentence_transformers(
    bi_teacher, dl19_pair_texts
):
    from sentence_transformers import SentenceTransformer

    queries, docs = dl19_pair_texts
    lengths = encode_texts(bi_teacher.tokenizer, docs, 10_000).lengths
    assert sum(n > 128 for n in lengths) >= 5  # truncation is exercised

    reference = SentenceTransformer(str(bi_teacher.checkpoint_dir), device="cpu")
    reference.max_seq_length = 128
    ref_docs = reference.encode(docs, batch_size=16, show_progress_bar=False)
    ref_queries = reference.encode(queries, batch_size=16, show_progress_bar=False)

    ours = bi_teacher.embed(docs)
    assert ours.shape == (60, 384) and ours.dtype == np.float32
    assert np.abs(ours - ref_docs).max() <= 1e-4
    ref_cosines = np.einsum("nd,nd->n", ref_queries, ref_docs)
    assert np.abs(bi_teacher.score(queries, docs) - ref_cosines).max() <= 1e-4


def test_bi_teacher_reads_max_seq_length_256_from_sentence_bert_config(minilm_dir):
    teacher = load_teacher(
        "sentence-transformers/all-MiniLM-L6-v2", show_progress=False
    )
    assert teacher.kind == "bi"
    assert teacher.max_length == 256
    assert teacher.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert (teacher.n_layers, teacher.n_heads) == (6, 12)
    assert teacher.token_embeddings.shape == (30522, 384)


def test_cross_scores_match_transformers_logits(cross_dir, dl19_pair_texts):
    from transformers import AutoTokenizer, BertForSequenceClassification

    queries, docs = dl19_pair_texts
    reference = BertForSequenceClassification.from_pretrained(str(cross_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(cross_dir))
    batch = tokenizer(
        queries,
        docs,
        truncation="longest_first",
        max_length=128,
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = reference(**batch).logits[:, 0].numpy()

    teacher = load_teacher(str(cross_dir), max_length=128, show_progress=False)
    assert teacher.kind == "cross"
    ours = teacher.score(queries, docs, batch_size=16)
    assert ours.shape == (60,)
    assert np.abs(ours - logits).max() <= 1e-4
    assert logits.std() > 1e-2  # the pairs really get different scores


def test_tiny_random_cross_encoder_matches_transformers(
    minilm_dir, tmp_path, dl19_pair_texts, save_hf_dir
):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=96,
        num_labels=1,
        architectures=["BertForSequenceClassification"],
        layer_norm_eps=1e-7,
    )
    torch.manual_seed(1)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # HF init is near-zero for LayerNorm/bias: perturb it
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    save_hf_dir(model, minilm_dir, tmp_path)

    queries, docs = dl19_pair_texts
    batch = tokenizer(
        queries,
        docs,
        truncation="longest_first",
        max_length=96,
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = model(**batch).logits[:, 0].numpy()
    teacher = load_teacher(str(tmp_path), max_length=96, show_progress=False)
    assert (teacher.n_layers, teacher.n_heads) == (2, 4)
    assert np.abs(teacher.score(queries, docs) - logits).max() <= 1e-4
