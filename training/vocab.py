"""Train a small BERT-style WordPiece vocabulary for small models (e.g. the bundled one)."""

from __future__ import annotations

import string
from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from lotlip.tokenizer import SPECIAL_TOKENS


def build_wordpiece_vocab(corpus: Iterable[str], vocab_size: int = 1024) -> list[str]:
    """A lower-cased WordPiece vocabulary learned from ``corpus``.

    The BERT special tokens come first ([PAD] = 0, as the corner mask expects) and every ASCII
    letter, digit and punctuation mark is present, so any English text still tokenizes (into
    smaller pieces) instead of collapsing to [UNK].
    """
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    alphabet = list(string.ascii_lowercase + string.digits + string.punctuation)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=alphabet,
        min_frequency=1,
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    by_id = sorted(tok.get_vocab().items(), key=lambda item: item[1])
    vocab = [token for token, _ in by_id]
    for char in alphabet:  # continuation pieces for every character, so nothing becomes [UNK]
        for piece in (char, "##" + char):
            if piece not in vocab:
                vocab.append(piece)
    return vocab
