"""Short-phrasing augmentation on hand-made captions (training.augment)."""

from __future__ import annotations

import pytest
from torch.utils.data import Dataset

from training.augment import ShortPhrasings, caption_rewrites, sentence_clauses, short_phrasings

SHORT = "A crimson disc on a teal backdrop."
PARAGRAPH = (
    "There is a large crimson disc at the top left, and it is striped. "
    "In the bottom right corner, there is a small amber tile. "
    "At the centre you can see a tiny ivory hoop with dots."
)


def test_rewrites_of_an_object_on_a_background() -> None:
    assert caption_rewrites(SHORT) == [
        "a photo of a crimson disc on a teal backdrop",
        "a picture of a crimson disc on a teal backdrop",
        "an image of a crimson disc on a teal backdrop",
        "a crimson disc",
        "a teal backdrop with a crimson disc",
    ]
    assert caption_rewrites("Two dogs.") == [
        "a photo of two dogs", "a picture of two dogs", "an image of two dogs"
    ]  # fmt: skip
    assert caption_rewrites("  ") == []


def test_clauses_drop_lead_ins_pronouns_and_bare_places() -> None:
    assert sentence_clauses(PARAGRAPH) == [
        "a large crimson disc at the top left",  # "it is striped": names nothing
        "a small amber tile",  # "In the bottom right corner": a bare place
        "a tiny ivory hoop with dots",  # "At the centre you can see ..."
    ]
    long_sentence = "A " + "very " * 12 + "big disc."
    assert sentence_clauses(long_sentence) == []  # not a short query


def test_phrasings_put_the_own_caption_first_without_repeats() -> None:
    phrasings = short_phrasings(SHORT, [PARAGRAPH, PARAGRAPH.upper()])
    assert phrasings[0] == "a crimson disc on a teal backdrop"
    assert len(phrasings) == 1 + 5 + 3  # the upper-case copy adds nothing
    assert len({p.lower() for p in phrasings}) == len(phrasings)


class Pairs(Dataset):
    """Items (index, short caption, [long]) with an epoch."""

    def __init__(self, shorts: list[str]) -> None:
        self.shorts = shorts
        self.epochs: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return len(self.shorts)

    def __getitem__(self, index: int) -> tuple[int, str, list[str]]:
        return index, self.shorts[index], ["long"]

    def captions(self, index: int) -> tuple[str, list[str]]:
        return self.shorts[index], ["long"]


def test_the_dataset_swaps_short_captions_per_epoch_reproducibly() -> None:
    shorts = [SHORT, "a hoop", "an ivory tile"]
    phrasings = [short_phrasings(SHORT, [PARAGRAPH]), ["a hoop"], ["something else", "x y"]]
    data = ShortPhrasings(Pairs(shorts), phrasings, seed=0)
    drawn = []
    for epoch in range(40):
        data.set_epoch(epoch)
        drawn.append(data.captions(0)[0])
        assert data[0] == (0, drawn[-1], ["long"])  # both paths agree
        assert data.captions(1)[0] == "a hoop"  # nothing else to say
        # not the phrasings' own caption (another record was substituted): left alone
        assert data.captions(2)[0] == "an ivory tile"
    assert data.dataset.epochs == list(range(40))
    assert SHORT in drawn and 10 <= drawn.count(SHORT) <= 30  # kept about half the time
    assert set(drawn) - {SHORT} <= set(phrasings[0][1:]) and len(set(drawn)) > 4
    again = ShortPhrasings(Pairs(shorts), phrasings, seed=0)
    again.set_epoch(7)
    assert again.captions(0)[0] == drawn[7]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="one list"):
        ShortPhrasings(Pairs([SHORT]), [], seed=0)
    with pytest.raises(ValueError, match="probability"):
        ShortPhrasings(Pairs([SHORT]), [[SHORT]], seed=0, keep=2.0)
