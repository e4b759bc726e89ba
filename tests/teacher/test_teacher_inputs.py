"""Tokenisation, odd inputs, batching, attention maps and head ablation."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from semb25.teacher import load_teacher
from semb25.teacher.teacher import bucket_length, plan_batches
from semb25.teacher.tokenization import clean_text, encode_pairs, load_tokenizer

BAD_TEXTS = [
    "",
    "   \t\n ",
    "flea " * 4000,  # 20,000 characters
    "fleas\x00 and\x07 ticks\x1b[0m \x7f",
    "lone surrogate \udcff here \ud800",
    "cat 🐈 emoji 👩‍🔬 ok",
    "什么是跳蚤 ノミとは 벼룩",
]


@pytest.fixture(scope="module")
def cross_teacher(cross_dir):
    return load_teacher(str(cross_dir), max_length=128, show_progress=False)


def test_pair_tokenisation_matches_transformers_longest_first(
    minilm_dir, dl19_pair_texts
):
    from transformers import AutoTokenizer

    queries, docs = dl19_pair_texts
    queries = [q * 6 for q in queries[:20]] + queries[20:]  # long queries truncate too
    reference = AutoTokenizer.from_pretrained(str(minilm_dir))
    tokenizer = load_tokenizer(minilm_dir)
    for max_length in (48, 128, 512):
        ref = reference(
            queries, docs, truncation="longest_first", max_length=max_length
        )
        ours = encode_pairs(tokenizer, queries, docs, max_length)
        assert ours.input_ids == ref["input_ids"]
        assert ours.token_type_ids == ref["token_type_ids"]
    assert (
        max(ours.lengths) <= 512
        and max(encode_pairs(tokenizer, queries, docs, 48).lengths) == 48
    )


def test_vocab_txt_fallback_tokenises_like_tokenizer_json(
    minilm_dir, tmp_path, dl19_pair_texts
):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)
    queries, docs = dl19_pair_texts
    fallback = encode_pairs(load_tokenizer(tmp_path), queries, docs, 128)
    assert (
        fallback.input_ids
        == encode_pairs(load_tokenizer(minilm_dir), queries, docs, 128).input_ids
    )


def test_clean_text_replaces_surrogates_and_drops_control_characters():
    assert clean_text("a\udcffb") == "a\ufffdb"
    assert clean_text("it\u00e2\x80\x99s\x00\tx\n") == "it\u00e2s\tx\n"
    assert clean_text("x" * 50, max_chars=10) == "x" * 10


@pytest.mark.parametrize("kind", ["bi", "cross"])
def test_bad_inputs_get_finite_scores(kind, bi_teacher, cross_teacher):
    teacher = bi_teacher if kind == "bi" else cross_teacher
    queries = BAD_TEXTS + ["what do fleas eat"] * len(BAD_TEXTS)
    docs = list(reversed(BAD_TEXTS)) + BAD_TEXTS
    scores = teacher.score(queries, docs)
    assert scores.shape == (2 * len(BAD_TEXTS),)
    assert np.isfinite(scores).all()
    # The 20,000-char passage is truncated, not rejected.
    long_pair = encode_pairs(teacher.tokenizer, ["q"], [BAD_TEXTS[2]], 128)
    assert long_pair.lengths == [128]


def test_bi_scores_are_dot_products_of_embeddings(bi_teacher, dl19_pair_texts):
    queries, docs = dl19_pair_texts
    emb_q, emb_d = bi_teacher.embed(queries), bi_teacher.embed(docs)
    np.testing.assert_allclose(np.linalg.norm(emb_d, axis=1), 1.0, atol=1e-5)
    expected = np.einsum("nd,nd->n", emb_q, emb_d)
    np.testing.assert_allclose(bi_teacher.score(queries, docs), expected, atol=1e-5)


def test_length_buckets_cover_every_input_with_few_shapes():
    lengths = np.random.default_rng(0).integers(5, 300, size=1000)
    plan = plan_batches(lengths, batch_size=32, bucket=32, max_length=256)
    seen = np.concatenate([idx for idx, _ in plan])
    assert sorted(seen) == list(range(1000))
    assert all(lengths[idx].max() <= padded or padded == 256 for idx, padded in plan)
    assert len({padded for _, padded in plan}) <= 256 // 32
    assert (bucket_length(1, 32, 512), bucket_length(33, 32, 512)) == (32, 64)
    assert bucket_length(700, 32, 512) == 512


def test_fine_buckets_grow_with_length_to_at_most_an_eighth_of_padding():
    # Steps of 8 up to 128 tokens, then 16 (128-255) and 32 (256-511).
    assert [bucket_length(n, 8, 512) for n in (1, 9, 100, 128, 129, 257)] == [
        8,
        16,
        104,
        128,
        144,
        288,
    ]
    padded = np.array([bucket_length(n, 8, 512) for n in range(1, 513)])
    lengths = np.arange(1, 513)
    assert np.all(padded >= lengths) and np.all(padded - lengths < 8 + lengths / 8)
    assert len(set(padded)) == 32  # versus 64 multiples of 8


@pytest.mark.slow
def test_attentions_match_transformers_eager_attentions(cross_dir, cross_teacher):
    from transformers import AutoTokenizer, BertForSequenceClassification

    queries = ["what do fleas eat", "is bm25 a neural model"]
    docs = ["Adult fleas feed on the blood of their host.", "No, BM25 is lexical."]
    tokenizer = AutoTokenizer.from_pretrained(str(cross_dir))
    model = BertForSequenceClassification.from_pretrained(
        str(cross_dir), attn_implementation="eager"
    ).eval()
    maps = cross_teacher.attentions(queries, docs)
    for (q, d), ours in zip(zip(queries, docs, strict=True), maps, strict=True):
        batch = tokenizer(q, d, return_tensors="pt")
        with torch.no_grad():
            ref = model(**batch, output_attentions=True).attentions
        ref = torch.stack(ref, dim=1)[0].numpy()  # [layers, heads, L, L]
        assert ours["attention"].shape == ref.shape == (6, 12, *ref.shape[-2:])
        assert np.abs(ours["attention"] - ref).max() <= 1e-5
        assert ours["tokens"][0] == "[CLS]" and ours["tokens"][-1] == "[SEP]"
        n_query = len(tokenizer.tokenize(q))
        assert list(ours["query_positions"]) == list(range(1, 1 + n_query))
        assert ours["tokens"][ours["doc_positions"][0] - 1] == "[SEP]"
        assert len(ours["doc_positions"]) == len(tokenizer.tokenize(d))


@pytest.mark.slow
def test_head_mean_ablation_matches_a_torch_hook_on_the_reference(
    cross_dir, cross_teacher, dl19_pair_texts
):
    from transformers import AutoTokenizer, BertForSequenceClassification

    queries, docs = (t[:8] for t in dl19_pair_texts)
    head_dim = 32
    ablate = np.zeros((6, 12), dtype=bool)
    ablate[0, 3] = ablate[4, 0] = ablate[4, 11] = True
    mean = np.random.default_rng(0).normal(size=(6, 12, head_dim)).astype(np.float32)

    # Reference: overwrite those heads' slices of the self-attention context.
    model = BertForSequenceClassification.from_pretrained(str(cross_dir)).eval()
    hooks = []
    for layer in range(6):
        heads = np.flatnonzero(ablate[layer])

        def hook(module, args, output, layer=layer, heads=heads):
            context = output[0].clone()
            for h in heads:
                context[..., h * head_dim : (h + 1) * head_dim] = torch.from_numpy(
                    mean[layer, h]
                )
            return (context, *output[1:])

        if len(heads):
            self_attention = model.bert.encoder.layer[layer].attention.self
            hooks.append(self_attention.register_forward_hook(hook))
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
        expected = model(**batch).logits[:, 0].numpy()
    for handle in hooks:
        handle.remove()

    plain = cross_teacher.score(queries, docs)
    ablated = cross_teacher.score(queries, docs, head_ablation=(ablate, mean))
    assert np.abs(ablated - expected).max() <= 1e-4
    assert np.abs(ablated - plain).max() > 1e-3  # the ablation changed something
