"""Short-query augmentation for fine-tunes: several short phrasings of each picture.

A user's fine-tune set has one short caption per picture ("a large crimson disc on a teal
backdrop") and maybe a paragraph; users then search with short phrases worded in many ways.
:func:`short_phrasings` derives such phrases from a picture's own captions: templated rewrites
of the short caption ("a photo of X", "Y with X" for "X on Y", "X" alone) and short clauses cut
from the paragraphs' sentences. :class:`ShortPhrasings` swaps them in as the short caption of a
training sample, drawn per (seed, epoch, index), so the short-caption loss sees each new word in
several contexts instead of one fixed string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch.utils.data import Dataset

from .data import Sample, sample_rng, split_sentences

MAX_WORDS = 12  # longer clauses are not short queries
TEMPLATES = ("a photo of {}", "a picture of {}", "an image of {}")
# "X on Y" -> "Y with X": places where a short caption splits into object and setting
_RELATION = re.compile(r"^(?P<obj>.+?)\s+(?:on|over|against|in front of)\s+(?P<bg>.+)$", re.I)
_CLAUSE_BREAK = re.compile(r",\s*(?:and\s+|but\s+|which\s+)?|;\s*|\s+and\s+it\s+|\s+while\s+", re.I)
_LEAD_IN = re.compile(
    r"^(?:there (?:is|are)|this is|here is|the (?:image|picture|photo) shows|"
    r"you can see|we see|(?:it|this) (?:shows|depicts))\s+",
    re.I,
)
# "At the top left you can see X" -> "X"
_INNER_LEAD_IN = re.compile(r"\s+(?:you can see|we see|there (?:is|are))\s+", re.I)
# a clause about "it" or a bare place ("in the bottom left corner") names nothing on its own
_PRONOUN = re.compile(r"^(?:it|its|it's|they|their|this|that|these|those|only)\b", re.I)
_PREPOSITION = re.compile(r"^(?:in|at|on|near|along|behind|above|below|to|by|over)\b", re.I)


def _tidy(text: str) -> str:
    """Lower-case first letter, single spaces, no final full stop."""
    text = " ".join(text.split()).rstrip(" .!?")
    return text[:1].lower() + text[1:] if text else text


def caption_rewrites(short: str) -> list[str]:
    """Templated rewrites of one short caption (not including the caption itself)."""
    short = _tidy(short)
    if not short:
        return []
    rewrites = [template.format(short) for template in TEMPLATES]
    match = _RELATION.match(short)
    if match:
        obj, bg = match.group("obj"), match.group("bg")
        rewrites += [obj, f"{bg} with {obj}"]
    return rewrites


def sentence_clauses(paragraph: str) -> list[str]:
    """Short clauses of a paragraph's sentences, lead-ins ("There is") removed."""
    clauses = []
    for sentence in split_sentences(paragraph):
        for part in _CLAUSE_BREAK.split(sentence):
            part = _INNER_LEAD_IN.split(part.strip())[-1]
            part = _tidy(_LEAD_IN.sub("", part))
            words = len(part.split())
            if _PRONOUN.match(part) or (_PREPOSITION.match(part) and words <= 6):
                continue
            if 2 <= words <= MAX_WORDS:
                clauses.append(part)
    return clauses


def short_phrasings(short: str, longs: Sequence[str] = ()) -> list[str]:
    """Distinct short phrases for one picture (case-insensitive), its own short caption first."""
    candidates = [_tidy(short), *caption_rewrites(short)]
    for paragraph in longs:
        candidates += sentence_clauses(paragraph)
    seen: set[str] = set()
    unique = []
    for phrase in candidates:
        key = phrase.lower()
        if phrase and key not in seen:
            seen.add(key)
            unique.append(phrase)
    return unique


class ShortPhrasings(Dataset):
    """A caption dataset whose short caption is, now and then, another phrasing of it.

    ``phrasings[i]`` are item ``i``'s phrases (:func:`short_phrasings`, own caption first).
    Each epoch, item ``i`` keeps its own short caption with probability ``keep`` and otherwise
    gets one of the other phrases, drawn from ``(seed, epoch, i)`` (resumes reproduce it). An
    item whose dataset returned another record's caption (an unreadable image was replaced)
    keeps that caption. Passes ``set_epoch`` and ``captions`` on.
    """

    def __init__(
        self, dataset: Dataset, phrasings: Sequence[Sequence[str]], seed: int, keep: float = 0.5
    ) -> None:
        if len(phrasings) != len(dataset):  # type: ignore[arg-type]
            raise ValueError("one list of phrasings per item is needed")
        if not 0.0 <= keep <= 1.0:
            raise ValueError("keep must be a probability")
        self.dataset = dataset
        self.phrasings = [list(items) for items in phrasings]
        self.seed = seed
        self.keep = keep
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the epoch (re-draws the phrasing) and pass it on."""
        self.epoch = epoch
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.phrasings)

    def _swap(self, index: int, short: str) -> str:
        options = self.phrasings[index]
        if len(options) < 2 or _tidy(short) != options[0]:
            return short
        rng = sample_rng(self.seed, self.epoch, index, 1)  # a stream apart from the dataset's
        if rng.random() < self.keep:
            return short
        return options[1 + rng.randrange(len(options) - 1)]

    def __getitem__(self, index: int) -> Sample:
        pixels, short, longs = self.dataset[index]
        return pixels, self._swap(index, short), longs

    def captions(self, index: int) -> tuple[str, list[str]]:
        """The captions of item ``index`` this epoch, without reading its image."""
        short, longs = self.dataset.captions(index)  # type: ignore[attr-defined]
        return self._swap(index, short), longs
