"""The corner attention mask on a tiny BERT (LOTLIP.md §3): who sees whom, and padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lotlip.text import TextTower, corner_attention_allowed

TEXTS = [
    "a big red car on the grass. the sky is blue",
    "cat",
    "the small dog and the cat run in the house with a tree. a green sun!",
    "",
]


def expected_allowed(ids: list[list[int]], corners: int, pad: int = 0) -> torch.Tensor:
    """The mask rules written as one decision per (query, key)."""
    out = []
    for row in ids:
        n = len(row)
        matrix = []
        for q in range(n):
            line = []
            for k in range(n):
                if k == 0:  # [CLS]: itself, and every text/padding query
                    line.append(q == 0 or q > corners)
                elif k <= corners:  # a corner: only itself
                    line.append(q == k)
                else:  # text: whenever it is not padding
                    line.append(row[k] != pad)
            matrix.append(line)
        out.append(matrix)
    return torch.tensor(out, dtype=torch.bool)


def run_tower(tower: TextTower, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(last hidden state [B, L, W], slots [B, K+1, D]) of one forward of ``tower``."""
    captured = {}

    def hook(module, args, kwargs, output):
        captured["hidden"] = output.last_hidden_state

    handle = tower.transformer.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            slots = tower.forward_slots(ids)
    finally:
        handle.remove()
    return captured["hidden"], slots


@pytest.fixture
def model(make_tiny_model):
    return make_tiny_model(seed=11)


@pytest.fixture
def ids(model) -> torch.Tensor:
    return model.tokenizer(TEXTS).input_ids


def text_positions(row: torch.Tensor, corners: int = 2) -> list[int]:
    return [i for i in range(corners + 1, len(row)) if int(row[i]) != 0]


@pytest.mark.parametrize("corners", [1, 2, 3])
def test_mask_matrix_follows_the_rules(corners: int) -> None:
    ids = [
        [2, *range(40, 40 + corners), 7, 8, 9, 3, 0, 0],
        [2, *range(40, 40 + corners), 7, 3, 0, 0, 0, 0],
    ]
    allowed = corner_attention_allowed(torch.tensor(ids), corners)
    assert allowed.dtype == torch.bool
    assert torch.equal(allowed, expected_allowed(ids, corners))
    # no token attends to any corner except the corner itself
    corner_cols = allowed[:, :, 1 : corners + 1]
    eye = torch.eye(len(ids[0]), dtype=torch.bool)[:, 1 : corners + 1]
    assert torch.equal(corner_cols, eye.expand_as(corner_cols))
    # nobody attends to padding
    assert not allowed[0, :, -2:].any() and not allowed[1, :, -4:].any()


def test_mask_matches_rules_on_real_tokenization(model, ids: torch.Tensor) -> None:
    allowed = corner_attention_allowed(ids, 2)
    assert torch.equal(allowed, expected_allowed(ids.tolist(), 2))


def test_cls_and_text_ignore_corner_embeddings(model, ids: torch.Tensor) -> None:
    tower = model.text
    hidden, slots = run_tower(tower, ids)
    corner_rows = model.tokenizer.corner_ids
    assert corner_rows == [model.tokenizer.vocab_size, model.tokenizer.vocab_size + 1]
    with torch.no_grad():
        weight = tower.transformer.embeddings.word_embeddings.weight
        weight[corner_rows] = torch.randn(
            2, weight.shape[1], generator=torch.Generator().manual_seed(5)
        )
    hidden2, slots2 = run_tower(tower, ids)

    for b in range(len(TEXTS)):
        keep = [0, *text_positions(ids[b])]
        assert torch.equal(hidden2[b, keep], hidden[b, keep])
    assert torch.equal(slots2[:, 0], slots[:, 0])
    assert (slots2[:, 1:] - slots[:, 1:]).abs().amax(dim=-1).min() > 1e-3


def test_corner_token_ids_do_not_matter_to_cls(model, ids: torch.Tensor) -> None:
    hidden, slots = run_tower(model.text, ids)
    other = ids.clone()
    other[:, 1] = model.tokenizer.vocab.index("cat")
    other[:, 2] = model.tokenizer.vocab.index("dog")
    hidden2, slots2 = run_tower(model.text, other)
    for b in range(len(TEXTS)):
        keep = [0, *text_positions(ids[b])]
        assert torch.equal(hidden2[b, keep], hidden[b, keep])
    assert torch.equal(slots2[:, 0], slots[:, 0])
    assert not torch.allclose(slots2[:, 1:], slots[:, 1:], atol=1e-3)


def test_corners_do_not_see_each_other(model, ids: torch.Tensor) -> None:
    _, slots = run_tower(model.text, ids)
    with torch.no_grad():
        weight = model.text.transformer.embeddings.word_embeddings.weight
        noise = torch.randn(weight.shape[1], generator=torch.Generator().manual_seed(3))
        weight[model.tokenizer.corner_ids[1]] += noise  # only corner 1 changes
    _, slots2 = run_tower(model.text, ids)
    assert torch.equal(slots2[:, 0], slots[:, 0])
    assert torch.equal(slots2[:, 1], slots[:, 1])
    assert (slots2[:, 2] - slots[:, 2]).abs().amax(dim=-1).min() > 1e-3


def test_cls_and_corners_see_the_text(model, ids: torch.Tensor) -> None:
    _, slots = run_tower(model.text, ids)
    other = ids.clone()
    other[0, 3] = model.tokenizer.vocab.index("house")  # first text word of the first caption
    _, slots2 = run_tower(model.text, other)
    assert ((slots2[0] - slots[0]).abs().amax(dim=-1) > 1e-4).all()  # CLS, c0 and c1 all move
    assert torch.equal(slots2[1:], slots[1:])  # the other captions are untouched


def test_trailing_padding_never_changes_real_tokens(model) -> None:
    batch = model.tokenizer(TEXTS[:3])
    base = batch.input_ids
    lengths = (base != 0).sum(dim=1)
    hidden, slots = run_tower(model.text, base)
    for pad_to in (base.shape[1] + 1, base.shape[1] + 17, 128):
        padded = torch.zeros(len(base), pad_to, dtype=torch.long)
        padded[:, : base.shape[1]] = base
        hidden2, slots2 = run_tower(model.text, padded)
        for b, n in enumerate(lengths.tolist()):
            torch.testing.assert_close(hidden2[b, :n], hidden[b, :n], rtol=0, atol=1e-5)
        torch.testing.assert_close(slots2, slots, rtol=0, atol=1e-5)


def test_real_tokens_do_change_the_output(model) -> None:
    """Control for the padding test: a non-pad token appended at the end is seen."""
    base = model.tokenizer(["a big red car"]).input_ids
    longer = torch.cat([base, torch.tensor([[model.tokenizer.vocab.index("sky")]])], dim=1)
    _, slots = run_tower(model.text, base)
    _, slots2 = run_tower(model.text, longer)
    assert (slots2 - slots).abs().max() > 1e-3


def test_padding_to_longest_equals_padding_to_128(model) -> None:
    short = model.tokenizer(TEXTS)
    full = model.tokenizer(TEXTS, pad_to=128)
    assert short.input_ids.shape[1] < 128 and full.input_ids.shape[1] == 128
    assert torch.equal(full.input_ids[:, : short.input_ids.shape[1]], short.input_ids)
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_text(short.input_ids), model.encode_text(full.input_ids), rtol=0, atol=1e-5
        )
        torch.testing.assert_close(
            model.encode_text_slots(short.input_ids),
            model.encode_text_slots(full.input_ids),
            rtol=0,
            atol=1e-5,
        )


def test_embed_texts_batch_equals_one_at_a_time(model) -> None:
    texts = [*TEXTS, "x " * 300, "cat", "a dog. a cat. a car"]  # mixed lengths, a truncated one
    together = model.embed_texts(texts, batch_size=3)
    alone = np.concatenate([model.embed_texts([t]) for t in texts])
    assert together.shape == (len(texts), model.embed_dim) and together.dtype == np.float32
    np.testing.assert_allclose(together, alone, rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.abs(together[0] - together[2]).max() > 1e-3  # different texts, different vectors
    np.testing.assert_array_equal(together[1], together[5])  # "cat" twice, same vector


def test_eager_and_sdpa_attention_agree(model, ids: torch.Tensor) -> None:
    bert = model.text.transformer
    assert bert.config._attn_implementation == "sdpa"
    hidden_sdpa, slots_sdpa = run_tower(model.text, ids)
    bert.set_attn_implementation("eager")
    assert bert.config._attn_implementation == "eager"
    hidden_eager, slots_eager = run_tower(model.text, ids)
    torch.testing.assert_close(slots_eager, slots_sdpa, rtol=0, atol=1e-5)
    real = ids != 0
    torch.testing.assert_close(hidden_eager[real], hidden_sdpa[real], rtol=0, atol=1e-5)
