"""BERT WordPiece tokenization with LoTLIP's corner tokens and caption rules.

The rules follow the reference (LOTLIP.md §2): ``". "`` becomes ``[SEP]``, ``[Corner0] [Corner1]``
is prefixed with no space, the text is cleaned (ftfy, double HTML unescape, whitespace collapse)
and encoded to at most ``context_length`` tokens, keeping the final ``[SEP]`` when truncating.
Unlike the reference we also report how many word pieces each text had and whether it was cut.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ftfy
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from .files import write_text_atomic
from .folders import VOCAB_FILE

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_WHITESPACE = re.compile(r"\s+")
SENTENCE_SEPARATOR = ". "  # what the reference turns into [SEP] (LOTLIP.md §2)
# Sentence ends for splitting a query: the tokenizer's ". " plus "!"/"?" before a space and
# line breaks, which people use as sentence ends too.
_SENTENCE_END = re.compile(r"(?<=[.!?]) +|\s*[\r\n]+\s*")


def corner_token(index: int) -> str:
    """The literal of corner token ``index`` (``[Corner0]``, ``[Corner1]``, ...)."""
    return f"[Corner{index}]"


def clean_text(text: str) -> str:
    """ftfy fix, HTML unescape twice, collapse whitespace (open_clip's ``whitespace`` clean)."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return _WHITESPACE.sub(" ", text).strip()


def split_sentences(text: str) -> list[str]:
    """Split a description into the sentences the model sees as parts of the paragraph.

    A boundary is ``". "`` (the separator the tokenizer rewrites to ``[SEP]``), ``"! "``,
    ``"? "`` or a line break. Each sentence is stripped of surrounding space and of
    trailing ``"."``; empty ones are dropped. Like the tokenizer, the rule does not know
    abbreviations: ``"e.g. a dog"`` splits after ``"e.g."``; decimals such as ``"3.5"`` do not.
    """
    sentences = []
    for part in _SENTENCE_END.split(text.strip()):
        part = part.strip().rstrip(".").rstrip()
        if part:
            sentences.append(part)
    return sentences


@dataclass(frozen=True)
class TokenCount:
    """How much of a text the model reads."""

    word_pieces: int  # text word pieces, including [SEP]s made from ". "; excludes CLS/corners/end
    capacity: int  # how many text word pieces fit
    truncated: bool


@dataclass
class TokenizedBatch:
    """Token ids padded to the longest row (or a fixed length) plus per-text counts."""

    input_ids: torch.Tensor  # int64 [B, L]
    word_pieces: list[int]
    truncated: list[bool]

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class LoTLIPTokenizer:
    """WordPiece tokenizer with corner tokens, built on the `tokenizers` library.

    Args:
        vocab: the base WordPiece vocabulary in id order (``vocab.txt`` lines).
        num_corner_tokens: corner tokens appended after the vocabulary (ids ``len(vocab) + k``).
        context_length: tokens per text including [CLS], corners and the final [SEP].

    Text is lower-cased and accents are stripped, as ``bert-base-uncased`` does.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        *,
        num_corner_tokens: int = 2,
        context_length: int = 128,
    ) -> None:
        if len(set(vocab)) != len(vocab):
            raise ValueError("the vocabulary lists some tokens twice")
        missing = [t for t in SPECIAL_TOKENS if t not in set(vocab)]
        if missing:
            raise ValueError(f"vocabulary lacks the BERT special tokens {missing}")
        self.vocab = list(vocab)
        self.num_corner_tokens = num_corner_tokens
        self.context_length = context_length
        ids = {token: i for i, token in enumerate(self.vocab)}
        tok = Tokenizer(
            models.WordPiece(vocab=ids, unk_token="[UNK]", max_input_chars_per_word=100)
        )
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.add_special_tokens(list(SPECIAL_TOKENS))
        for k in range(num_corner_tokens):
            tok.add_special_tokens([corner_token(k)])
        self._tok = tok
        self.pad_id = ids["[PAD]"]
        self.cls_id = ids["[CLS]"]
        self.sep_id = ids["[SEP]"]
        self.corner_ids = [tok.token_to_id(corner_token(k)) for k in range(num_corner_tokens)]
        expected = list(range(len(self.vocab), len(self.vocab) + num_corner_tokens))
        if self.corner_ids != expected:
            raise ValueError("corner tokens must come right after the vocabulary")
        self._prefix = " ".join(corner_token(k) for k in range(num_corner_tokens))

    # -- construction / persistence -------------------------------------------------------
    @classmethod
    def from_vocab_file(cls, path: str | Path, **kwargs: object) -> LoTLIPTokenizer:
        """Load from a BERT ``vocab.txt`` (one token per line, in id order)."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls(lines, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def from_folder(cls, folder: str | Path, **kwargs: object) -> LoTLIPTokenizer:
        """Load ``vocab.txt`` from a model or tokenizer folder."""
        return cls.from_vocab_file(Path(folder) / VOCAB_FILE, **kwargs)

    def save(self, folder: str | Path) -> None:
        """Write ``vocab.txt`` (the base vocabulary; corner tokens are re-added on load)."""
        write_text_atomic(Path(folder) / VOCAB_FILE, "\n".join(self.vocab) + "\n")

    # -- properties ------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Base vocabulary size (without corner tokens)."""
        return len(self.vocab)

    @property
    def text_capacity(self) -> int:
        """How many text word pieces a caption may have before it is truncated."""
        return self.context_length - 2 - self.num_corner_tokens

    # -- encoding --------------------------------------------------------------------------
    def prepare(self, text: str) -> str:
        """Apply the reference caption rules: ``". "`` -> [SEP], corner prefix, cleaning."""
        text = "[SEP]".join(text.split(SENTENCE_SEPARATOR))
        return clean_text(self._prefix + text)

    def encode_one(self, text: str) -> tuple[list[int], int, bool]:
        """Ids of one text (not padded) with its word-piece count and truncation flag."""
        pieces = self._tok.encode(self.prepare(text), add_special_tokens=False).ids
        n_text = len(pieces) - self.num_corner_tokens
        ids = [self.cls_id, *pieces]
        truncated = len(ids) + 1 > self.context_length
        if truncated:
            ids = ids[: self.context_length - 1]
        ids.append(self.sep_id)
        return ids, n_text, truncated

    def count(self, text: str) -> TokenCount:
        """Word pieces of ``text`` against what the model reads (for counters and warnings)."""
        _, n_text, truncated = self.encode_one(text)
        return TokenCount(n_text, self.text_capacity, truncated)

    def __call__(self, texts: str | Sequence[str], *, pad_to: int | None = None) -> TokenizedBatch:
        """Tokenize texts, padding to the longest (default) or to ``pad_to`` tokens.

        Trailing padding is masked out by the text tower, so padding to the longest text gives
        the same embeddings as padding to ``context_length``, at a fraction of the cost.
        """
        if isinstance(texts, str):
            texts = [texts]
        rows = [self.encode_one(t) for t in texts]
        length = max((len(r[0]) for r in rows), default=0)
        if pad_to is not None:
            if pad_to < length:
                raise ValueError(f"pad_to={pad_to} is shorter than the longest text ({length})")
            length = pad_to
        ids = torch.full((len(rows), length), self.pad_id, dtype=torch.long)
        for i, (row, _, _) in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return TokenizedBatch(ids, [r[1] for r in rows], [r[2] for r in rows])

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens of ``ids`` joined (for debugging and tests)."""
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def tokens(self, text: str) -> list[str]:
        """Token strings of one encoded text, specials included."""
        ids, _, _ = self.encode_one(text)
        return [self._tok.id_to_token(i) for i in ids]
