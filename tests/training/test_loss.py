"""The LoTLIP loss and the order of its text slots (LOTLIP.md §4)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from lotlip.model import LoTLIP
from training.loss import gather_features, lotlip_loss, select_text_slots
from training.train import caption_texts, captions_per_sample, training_slots

pytestmark = pytest.mark.usefixtures("single_thread")


# -- an independent reference ----------------------------------------------------------------------
def reference_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    has_short: bool,
    short_weight: float,
    long_weight: float,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(w_short * L_0 + w_long * sum_{i>=1} L_i) / T, written out with loops (float64).

    L_i is the symmetric InfoNCE of slot i: the mean over images of -log softmax over texts of
    the matching pair, and the mean over texts of -log softmax over images, averaged.
    """
    batch, slots, _ = text.shape
    scale = torch.exp(logit_scale)
    img = [image[b] / torch.sqrt((image[b] ** 2).sum()) for b in range(batch)]
    per_slot = []
    for t in range(slots):
        txt = [text[b, t] / torch.sqrt((text[b, t] ** 2).sum()) for b in range(batch)]
        logits = [[scale * (img[i] * txt[j]).sum() for j in range(batch)] for i in range(batch)]

        def neg_log_softmax(row: list[torch.Tensor], target: int) -> torch.Tensor:
            top = max(float(v.detach()) for v in row)
            log_norm = top + torch.log(sum(torch.exp(v - top) for v in row))
            return log_norm - row[target]

        image_to_text = sum(neg_log_softmax(logits[i], i) for i in range(batch)) / batch
        columns = [[logits[i][j] for i in range(batch)] for j in range(batch)]
        text_to_image = sum(neg_log_softmax(columns[j], j) for j in range(batch)) / batch
        per_slot.append((image_to_text + text_to_image) / 2)
    total = 0.0
    for t, value in enumerate(per_slot):
        weight = short_weight if (has_short and t == 0) else long_weight
        total = total + weight * value
    return total / slots, per_slot


def random_inputs(batch: int, slots: int, dim: int, seed: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, dim, generator=gen, dtype=torch.float64)
    text = torch.randn(batch, slots, dim, generator=gen, dtype=torch.float64)
    # make the matching pairs a little closer so the loss is not just log(batch)
    text = text + 0.7 * image[:, None, :]
    scale = torch.tensor(math.log(1 / 0.07) - 0.4, dtype=torch.float64)
    return image, text, scale


@pytest.mark.parametrize(
    ("has_short", "short_weight", "long_weight"),
    [(True, 1.0, 1.0), (True, 0.3, 1.7), (False, 2.0, 0.5)],
)
def test_lotlip_loss_matches_hand_written_reference(
    has_short: bool, short_weight: float, long_weight: float
) -> None:
    image, text, scale = random_inputs(batch=5, slots=7, dim=6, seed=3)
    leaves = [x.clone().requires_grad_(True) for x in (image, text, scale)]
    total, per_slot = lotlip_loss(
        *leaves,
        has_short=has_short,
        short_weight=short_weight,
        long_weight=long_weight,
    )
    total.backward()

    ref_leaves = [x.clone().requires_grad_(True) for x in (image, text, scale)]
    ref_total, ref_slots = reference_loss(
        *ref_leaves, has_short=has_short, short_weight=short_weight, long_weight=long_weight
    )
    ref_total.backward()

    assert per_slot.shape == (7,)
    assert not per_slot.requires_grad
    expected_slots = torch.stack(ref_slots).detach()
    torch.testing.assert_close(per_slot.double(), expected_slots, rtol=1e-5, atol=1e-6)
    assert float(total.detach()) == pytest.approx(float(ref_total.detach()), rel=1e-5)
    for ours, ref in zip(leaves, ref_leaves, strict=True):
        torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-4, atol=1e-6)
    # the weights really matter: slot 0 is weighted on its own only when there is a short caption
    if has_short and short_weight != long_weight:
        plain = (per_slot.sum() / 7).item()
        assert abs(float(total.detach()) - plain) > 1e-3


def test_loss_is_small_for_aligned_pairs_and_large_for_shuffled_ones() -> None:
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(8, 16, generator=gen)
    text = image[:, None, :].repeat(1, 3, 1)
    big_scale = torch.tensor(math.log(100.0))
    aligned, _ = lotlip_loss(image, text, big_scale)
    shuffled, _ = lotlip_loss(image, text[torch.roll(torch.arange(8), 1)], big_scale)
    assert float(aligned) < 0.05
    assert float(shuffled) > math.log(8)


def test_gather_is_a_no_op_in_one_process() -> None:
    image, text, scale = random_inputs(batch=4, slots=3, dim=5, seed=1)
    features = torch.randn(4, 5)
    assert gather_features(features) is features
    with_gather, _ = lotlip_loss(image, text, scale, gather=True)
    without, _ = lotlip_loss(image, text, scale, gather=False)
    assert torch.equal(with_gather, without)


# -- slot layout ----------------------------------------------------------------------------------
def text_slot_layout(num_captions: int, corners: int, has_short: bool = True) -> list[str]:
    """The slot order LOTLIP.md §4 describes: short [CLS], then per long caption CLS + corners."""
    names = ["short"] if has_short else []
    for j in range(num_captions - int(has_short)):
        names += [f"long{j}.cls", *(f"long{j}.corner{k}" for k in range(corners))]
    return names


def labelled_slots(batch: int, captions: int, corners: int) -> torch.Tensor:
    """[B, N, K+1, 3] where entry (b, n, k) holds the vector (b, n, k)."""
    grid = torch.zeros(batch, captions, corners + 1, 3)
    for b in range(batch):
        for n in range(captions):
            for k in range(corners + 1):
                grid[b, n, k] = torch.tensor([b, n, k], dtype=torch.float32)
    return grid


def slot_origin(name: str, has_short: bool) -> tuple[int, int]:
    """(caption index, slot index) of a layout name: short -> (0, CLS); longJ.* -> caption J+1."""
    if name == "short":
        return 0, 0
    caption, part = name.split(".")
    index = int(caption.removeprefix("long")) + int(has_short)
    return index, 0 if part == "cls" else 1 + int(part.removeprefix("corner"))


@pytest.mark.parametrize("has_short", [True, False])
def test_select_text_slots_follows_the_layout(has_short: bool) -> None:
    batch, captions, corners = 2, 3, 2
    selected = select_text_slots(labelled_slots(batch, captions, corners), has_short=has_short)
    names = text_slot_layout(captions, corners, has_short=has_short)
    assert selected.shape == (batch, len(names), 3)
    assert len(names) == (7 if has_short else 9)
    for b in range(batch):
        for t, name in enumerate(names):
            n, k = slot_origin(name, has_short)
            assert selected[b, t].tolist() == [b, n, k], name


@pytest.mark.parametrize(
    ("mode", "num_long", "expected"),
    [
        ("short", 2, [(0, 0)]),
        ("long", 2, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]),
        ("long+short", 2, [(0, 0), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]),
        ("long+short", 1, [(0, 0), (1, 0), (1, 1), (1, 2)]),
    ],
)
def test_training_slots_per_caption_mode(
    mode: str, num_long: int, expected: list[tuple[int, int]]
) -> None:
    captions = captions_per_sample(mode, num_long)
    out = training_slots(labelled_slots(2, captions, 2), mode)
    assert out.shape == (2, len(expected), 3)
    for b in range(2):
        assert [tuple(int(x) for x in v[1:]) for v in out[b]] == expected
        assert all(int(v[0]) == b for v in out[b])


def test_caption_texts_order_matches_captions_per_sample() -> None:
    shorts = ["s0", "s1"]
    longs = [["a0", "b0"], ["a1"]]
    assert caption_texts(shorts, longs, "long+short", 2) == ["s0", "a0", "b0", "s1", "a1", "a1"]
    assert caption_texts(shorts, longs, "long", 2) == ["a0", "b0", "a1", "a1"]
    assert caption_texts(shorts, longs, "short", 2) == ["s0", "s1"]
    # no long caption at all: the short caption stands in, so the slot count stays fixed
    assert caption_texts(["s"], [[]], "long+short", 2) == ["s", "s", "s"]
    for mode in ("short", "long", "long+short"):
        assert len(caption_texts(shorts, longs, mode, 3)) == 2 * captions_per_sample(mode, 3)


def test_slots_from_the_model_put_each_caption_cls_where_the_layout_says(
    make_model: Callable[..., LoTLIP],
) -> None:
    """Slot 'longJ.cls' is exactly what inference embeds for long caption J (encode_text)."""
    model = make_model(seed=4, layers=1)
    texts = [
        "a large red circle",
        "The image shows two shapes. A large red circle sits at the top.",
        "A small blue square is near the bottom edge. The background is plain cream.",
    ]
    ids = model.tokenizer(texts).input_ids
    with torch.no_grad():
        slots = model.encode_text_slots(ids)  # [N, K+1, D]
        cls = model.encode_text(ids)  # [N, D]
        selected = select_text_slots(slots[None])[0]  # one sample with N = 3 captions
    names = text_slot_layout(3, model.config.text.num_corner_tokens)
    assert selected.shape[0] == len(names) == 7
    torch.testing.assert_close(selected[names.index("short")], cls[0])
    torch.testing.assert_close(selected[names.index("long0.cls")], cls[1])
    torch.testing.assert_close(selected[names.index("long1.cls")], cls[2])
    torch.testing.assert_close(selected[names.index("long1.corner1")], slots[2, 2])
    # corner outputs are distinct vectors, not copies of the [CLS] one
    assert not torch.allclose(selected[names.index("long0.corner0")], cls[1])
