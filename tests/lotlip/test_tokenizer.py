"""Tokenization rules of the reference (LOTLIP.md §2), on a small hand-made vocabulary."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lotlip.tokenizer import LoTLIPTokenizer, TokenCount

HEAD = ["[CLS]", "[Corner0]", "[Corner1]"]


def test_layout_and_ids(tiny_tokenizer: LoTLIPTokenizer, tiny_vocab: list[str]) -> None:
    tok = tiny_tokenizer
    assert tok.tokens("A photo of cats") == [*HEAD, "a", "photo", "of", "cat", "##s", "[SEP]"]
    batch = tok(["A photo of cats"], pad_to=12)
    words = ["a", "photo", "of", "cat", "##s"]
    expected = [2, len(tiny_vocab), len(tiny_vocab) + 1, *(tiny_vocab.index(w) for w in words), 3]
    assert batch.input_ids.tolist() == [expected + [0] * (12 - len(expected))]
    assert batch.input_ids.dtype == torch.long
    assert (tok.pad_id, tok.cls_id, tok.sep_id) == (0, 2, 3)


def test_corner_ids_follow_the_vocabulary(tiny_tokenizer, tiny_vocab: list[str]) -> None:
    assert tiny_tokenizer.vocab_size == len(tiny_vocab)
    assert tiny_tokenizer.corner_ids == [len(tiny_vocab), len(tiny_vocab) + 1]
    three = LoTLIPTokenizer(tiny_vocab, num_corner_tokens=3)
    assert three.corner_ids == [len(tiny_vocab) + i for i in range(3)]
    assert three.tokens("cat") == ["[CLS]", "[Corner0]", "[Corner1]", "[Corner2]", "cat", "[SEP]"]
    assert three.text_capacity == 128 - 2 - 3


def test_bert_like_special_positions(bert_vocab: list[str]) -> None:
    tok = LoTLIPTokenizer(bert_vocab)
    assert (tok.pad_id, tok.cls_id, tok.sep_id) == (0, 101, 102)
    assert tok.corner_ids == [30522, 30523]
    ids = tok(["a photo of a dog"]).input_ids[0].tolist()
    assert ids[:3] == [101, 30522, 30523] and ids[-1] == 102


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a cat. the dog. a car.", ["a", "cat", "[SEP]", "the", "dog", "[SEP]", "a", "car", "."]),
        ("a cat.the dog", ["a", "cat", ".", "the", "dog"]),  # no space after: the "." stays
        ("a cat . the dog", ["a", "cat", "[SEP]", "the", "dog"]),
        ("a cat. ", ["a", "cat", "[SEP]"]),
        ("a cat.  the dog", ["a", "cat", "[SEP]", "the", "dog"]),
        ("a cat, the dog!", ["a", "cat", ",", "the", "dog", "!"]),
    ],
)
def test_period_space_becomes_sep(tiny_tokenizer, text: str, expected: list[str]) -> None:
    assert tiny_tokenizer.tokens(text) == [*HEAD, *expected, "[SEP]"]
    assert tiny_tokenizer.count(text).word_pieces == len(expected)


def test_prepare_string(tiny_tokenizer) -> None:
    assert tiny_tokenizer.prepare("a photo") == "[Corner0] [Corner1]a photo"  # no space after
    assert tiny_tokenizer.prepare("a cat. the dog") == "[Corner0] [Corner1]a cat[SEP]the dog"
    assert tiny_tokenizer.prepare("  a \n\t cat  ") == "[Corner0] [Corner1] a cat"


def test_case_handling(tiny_tokenizer) -> None:
    tok = tiny_tokenizer
    assert tok.tokens("A BIG Red CAR") == [*HEAD, "a", "big", "red", "car", "[SEP]"]
    assert tok.tokens("Café") == [*HEAD, "cafe", "[SEP]"]  # uncased BERT strips accents
    # the corner tokens are matched case-sensitively in raw text and never lower-cased
    assert tok.tokens("[Corner0] cat") == [*HEAD, "[Corner0]", "cat", "[SEP]"]
    assert tok.tokens("[CORNER0] cat") == [*HEAD, "[", "corner", "##0", "]", "cat", "[SEP]"]
    assert tok.tokens("[corner1]") == [*HEAD, "[", "corner", "##1", "]", "[SEP]"]


def test_cleaning(tiny_tokenizer) -> None:
    tok = tiny_tokenizer
    assert tok.tokens("cat &amp;amp; dog") == [*HEAD, "cat", "&", "dog", "[SEP]"]
    assert tok.prepare("cat &amp;amp; dog").endswith("cat & dog")
    assert tok.tokens("cafÃ©") == [*HEAD, "cafe", "[SEP]"]  # ftfy repairs the mojibake
    assert tok.tokens("a\n\n cat\t\tis   big") == tok.tokens("a cat is big")
    assert tok.tokens("zebra") == [*HEAD, "[UNK]", "[SEP]"]


def test_caller_list_is_not_modified(tiny_tokenizer) -> None:
    texts = ["a cat. the dog", "x"]
    tiny_tokenizer(texts)
    assert texts == ["a cat. the dog", "x"]


@pytest.mark.parametrize(("n", "truncated"), [(123, False), (124, False), (125, True), (300, True)])
def test_truncation_keeps_final_sep(tiny_tokenizer, n: int, truncated: bool) -> None:
    tok = tiny_tokenizer
    cat = tok.vocab.index("cat")
    batch = tok([" ".join(["cat"] * n)])
    ids = batch.input_ids[0].tolist()
    kept = min(n, 124)
    assert len(ids) == kept + 4
    assert ids[:3] == [tok.cls_id, *tok.corner_ids]
    assert ids[3:-1] == [cat] * kept
    assert ids[-1] == tok.sep_id
    assert batch.word_pieces == [n] and batch.truncated == [truncated]
    assert tok.count(" ".join(["cat"] * n)) == TokenCount(n, 124, truncated)


def test_truncation_counts_pieces_and_seps(tiny_tokenizer) -> None:
    tok = tiny_tokenizer
    text = "cats. " * 60  # 60 x (cat, ##s, [SEP]) = 180 pieces
    count = tok.count(text)
    assert count == TokenCount(180, 124, True)
    ids = tok([text]).input_ids[0]
    assert len(ids) == 128 and int(ids[-1]) == tok.sep_id
    text_ids = ids[3:-1].tolist()
    assert len(text_ids) == 124
    # 41 full (cat ##s [SEP]) groups, then "cat": exactly the first 124 pieces
    cat, s = tok.vocab.index("cat"), tok.vocab.index("##s")
    assert text_ids == [cat, s, tok.sep_id] * 41 + [cat]


def test_batch_padding_and_counts(tiny_tokenizer) -> None:
    tok = tiny_tokenizer
    texts = ["cat", "a big red car on the grass", ""]
    batch = tok(texts)
    assert len(batch) == 3
    assert batch.input_ids.shape == (3, 4 + 7)
    assert batch.word_pieces == [1, 7, 0]
    assert batch.truncated == [False, False, False]
    assert batch.input_ids[2].tolist() == [2, *tok.corner_ids, 3] + [0] * 7
    assert tok("cat").input_ids.tolist() == tok(["cat"]).input_ids.tolist()
    assert tok(texts, pad_to=11).input_ids.tolist() == batch.input_ids.tolist()
    assert tok(texts, pad_to=128).input_ids.shape == (3, 128)


def test_pad_to_shorter_than_text_raises(tiny_tokenizer) -> None:
    with pytest.raises(ValueError, match="pad_to"):
        tiny_tokenizer(["a big red car on the grass"], pad_to=8)


def test_count(tiny_tokenizer) -> None:
    assert tiny_tokenizer.text_capacity == 124
    assert tiny_tokenizer.count("a photo of cats") == TokenCount(5, 124, False)
    assert tiny_tokenizer.count("") == TokenCount(0, 124, False)


def test_short_context_length(tiny_vocab: list[str]) -> None:
    tok = LoTLIPTokenizer(tiny_vocab, context_length=8)
    assert tok.text_capacity == 4
    batch = tok(["a big red car on the grass"])
    assert batch.input_ids.shape == (1, 8)
    assert tok.tokens("a big red car on the grass") == [*HEAD, "a", "big", "red", "car", "[SEP]"]
    assert batch.truncated == [True] and batch.word_pieces == [7]


def test_save_and_load_round_trip(tiny_tokenizer, tiny_vocab: list[str], tmp_path: Path) -> None:
    tiny_tokenizer.save(tmp_path / "tok")
    lines = (tmp_path / "tok" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert lines == tiny_vocab
    loaded = LoTLIPTokenizer.from_folder(tmp_path / "tok")
    assert loaded.vocab == tiny_vocab
    assert loaded.corner_ids == tiny_tokenizer.corner_ids
    texts = ["a cat. the dog", "Café &amp; cats", "cat " * 200]
    assert torch.equal(loaded(texts).input_ids, tiny_tokenizer(texts).input_ids)


def test_vocabulary_validation(tiny_vocab: list[str]) -> None:
    with pytest.raises(ValueError, match="twice"):
        LoTLIPTokenizer([*tiny_vocab, "cat"])
    with pytest.raises(ValueError, match="special"):
        LoTLIPTokenizer([t for t in tiny_vocab if t != "[SEP]"])
