"""Tests for training.data: caption parsing, sub-captions, loaders, shards and resume."""

from __future__ import annotations

import csv
import io
import json
import random
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from training import synthetic
from training.data import (
    BAD_RECORD,
    BAD_SHARD,
    EMPTY_CAPTION,
    MISSING_CAPTION,
    MISSING_IMAGE,
    UNREADABLE_IMAGE,
    CaptionDataset,
    SkipStats,
    SyntheticDataset,
    choose_long_captions,
    collate_captions,
    folder_records,
    load_image,
    manifest_records,
    open_dataset,
    parse_caption_json,
    parse_caption_text,
    sample_rng,
    sample_subcaption,
    split_sentences,
)
from training.shards import ShardDataset, expand_shard_spec

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def to_tensor(image: Image.Image) -> torch.Tensor:
    """A tiny stand-in for model.preprocess."""
    array = np.asarray(image.resize((8, 8)), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def image_bytes(colour: tuple[int, int, int], fmt: str = "PNG", size=(24, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def truncated_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noise.save(buf, "JPEG", quality=95)
    return buf.getvalue()[:400]


BROKEN = b"this is not an image at all"
LONG_A = "A red car. It is parked on a street. The street is wet. A man walks by. It rains."


def sentences_of(text: str) -> list[str]:
    return text.split(". ")


def is_window(sub: str, caption: str, k: int) -> bool:
    whole = split_sentences(caption)
    parts = sentences_of(sub)
    if len(whole) <= k:
        return parts == whole
    return len(parts) == k and any(whole[i : i + k] == parts for i in range(len(whole) - k + 1))


# --------------------------------------------------------------------------------------------
# captions
# --------------------------------------------------------------------------------------------


def test_split_sentences() -> None:
    text = "A cat. A dog.\nA bird</s>A fish.   The tree is 3.5 m tall.  \n\n. "
    assert split_sentences(text) == ["A cat", "A dog", "A bird", "A fish", "The tree is 3.5 m tall"]
    assert split_sentences("") == []
    assert split_sentences(" . \n ") == []


def test_sample_subcaption_picks_consecutive_sentences() -> None:
    caption = ". ".join(f"s{i}" for i in range(10)) + "."
    starts = Counter()
    for seed in range(400):
        sub = sample_subcaption(caption, random.Random(seed), 3)
        parts = sentences_of(sub)
        assert len(parts) == 3
        first = int(parts[0][1:])
        assert parts == [f"s{first}", f"s{first + 1}", f"s{first + 2}"]
        starts[first] += 1
    assert set(starts) == set(range(8))  # every window is reachable
    # A numpy Generator works as well.
    sub = sample_subcaption(caption, np.random.default_rng(1), 4)
    assert is_window(sub, caption, 4)


def test_sample_subcaption_short_or_unlimited_keeps_everything() -> None:
    assert sample_subcaption("One. Two.", random.Random(0), 3) == "One. Two"
    assert sample_subcaption(LONG_A, random.Random(0), None) == ". ".join(split_sentences(LONG_A))
    assert sample_subcaption(LONG_A, random.Random(0), 0) == ". ".join(split_sentences(LONG_A))


def test_sample_rng_is_deterministic_and_varies_by_epoch() -> None:
    a = [sample_subcaption(LONG_A, sample_rng(3, 0, i), 2) for i in range(40)]
    b = [sample_subcaption(LONG_A, sample_rng(3, 0, i), 2) for i in range(40)]
    c = [sample_subcaption(LONG_A, sample_rng(3, 1, i), 2) for i in range(40)]
    assert a == b
    assert a != c


def test_choose_long_captions() -> None:
    longs = [LONG_A, "Blue sky. White clouds. Green hills. A river.", "One sentence only."]
    picked = choose_long_captions(longs, 3, random.Random(0), 2)
    assert len(picked) == 3
    owners = [next(i for i, c in enumerate(longs) if is_window(p, c, 2)) for p in picked]
    assert sorted(owners) == [0, 1, 2]  # distinct captions when there are enough
    repeated = choose_long_captions([LONG_A], 4, random.Random(0), 2)
    assert len(repeated) == 4 and all(is_window(p, LONG_A, 2) for p in repeated)


def test_parse_caption_text_formats() -> None:
    short, longs = parse_caption_text("a red car\n\nFirst long. More.\n\nSecond\nlong one.\n")
    assert short == "a red car"
    assert longs == ["First long. More.", "Second long one."]
    short, longs = parse_caption_text("a red car\nIts long caption. Two.\r\n")
    assert (short, longs) == ("a red car", ["Its long caption. Two."])
    short, longs = parse_caption_text(LONG_A + "\n")
    assert short == "A red car" and longs == [LONG_A]
    assert parse_caption_text("  \n\n \n") is None
    assert parse_caption_json({"short": "s", "long": "l1"}) == ("s", ["l1"])
    assert parse_caption_json({"short": "", "long": ["First. Second.", " "]}) == (
        "First",
        ["First. Second."],
    )
    assert parse_caption_json({"caption": "Only. This."}) == ("Only", ["Only. This."])
    assert parse_caption_json({"short": " ", "long": []}) is None
    assert parse_caption_json(["not", "a", "dict"]) is None


def test_load_image_applies_exif_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    path = tmp_path / "rotated.jpg"
    Image.new("L", (30, 20), 128).save(path, exif=exif)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (20, 30)
    assert load_image(image_bytes((1, 2, 3))).getpixel((0, 0)) == (1, 2, 3)


# --------------------------------------------------------------------------------------------
# folder / manifests
# --------------------------------------------------------------------------------------------


def make_folder(root: Path) -> Path:
    root.mkdir()
    (root / "a.png").write_bytes(image_bytes((255, 0, 0)))
    (root / "a.txt").write_text(f"short a\n\n{LONG_A}\n\nSecond long a. With two.\n")
    (root / "b.jpg").write_bytes(image_bytes((0, 255, 0), "JPEG"))
    (root / "b.json").write_text(json.dumps({"short": "short b", "long": ["Long b. Yes."]}))
    sub = root / "sub"
    sub.mkdir()
    (sub / "c.png").write_bytes(image_bytes((0, 0, 255)))
    (sub / "c.txt").write_text("Short c. Then more about c.")
    (root / "broken.png").write_bytes(BROKEN)
    (root / "broken.txt").write_text("short broken\n\nLong broken.")
    (root / "nocaption.png").write_bytes(image_bytes((9, 9, 9)))
    (root / "empty.png").write_bytes(image_bytes((9, 9, 9)))
    (root / "empty.txt").write_text("  \n\n")
    (root / "notes.md").write_text("ignored")
    return root


def all_items(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def test_folder_records_and_skips(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "photos")
    stats = SkipStats()
    records = folder_records(root, stats=stats)
    assert [r.key for r in records] == ["a.png", "b.jpg", "broken.png", "sub/c.png"]
    assert records[0].short == "short a"
    assert records[0].long == [LONG_A, "Second long a. With two."]
    assert (records[1].short, records[1].long) == ("short b", ["Long b. Yes."])
    assert (records[3].short, records[3].long) == ("Short c", ["Short c. Then more about c."])
    assert stats.as_dict() == {MISSING_CAPTION: 1, EMPTY_CAPTION: 1}


def test_folder_dataset_skips_broken_image_at_load(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "photos")
    dataset = open_dataset(root, to_tensor, num_long=2, sentences_per_caption=2)
    assert isinstance(dataset, CaptionDataset)
    assert len(dataset) == 4
    items = all_items(dataset)
    shorts = [item[1] for item in items]
    # The broken image (index 2) is replaced by the next loadable record.
    assert shorts == ["short a", "short b", "Short c", "Short c"]
    assert dataset.stats.as_dict() == {MISSING_CAPTION: 1, EMPTY_CAPTION: 1, UNREADABLE_IMAGE: 1}
    pixels, _, longs = items[0]
    assert pixels.shape == (3, 8, 8)
    assert torch.allclose(pixels[0], torch.ones(8, 8))  # red
    assert len(longs) == 2
    sources = [LONG_A, "Second long a. With two."]
    assert sorted(any(is_window(x, s, 2) for s in sources) for x in longs) == [True, True]


def test_folder_dataset_check_images_drops_broken_upfront(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "photos")
    dataset = open_dataset(root, to_tensor, check_images=True)
    assert [r.key for r in dataset.records] == ["a.png", "b.jpg", "sub/c.png"]
    assert dataset.stats.counts[UNREADABLE_IMAGE] == 1
    assert dataset.stats.counts[MISSING_CAPTION] == 1


def make_images(root: Path) -> None:
    root.mkdir(exist_ok=True)
    (root / "img").mkdir(exist_ok=True)
    (root / "img" / "one.png").write_bytes(image_bytes((255, 0, 0)))
    (root / "img" / "two.png").write_bytes(image_bytes((0, 255, 0)))
    (root / "img" / "truncated.jpg").write_bytes(truncated_jpeg())
    (root / "img" / "nocap.png").write_bytes(image_bytes((0, 0, 255)))


def test_jsonl_manifest(tmp_path: Path) -> None:
    make_images(tmp_path)
    rows = [
        {"image": "img/one.png", "short": "one", "long": [LONG_A, "Other. Long."]},
        {"image": "img/two.png", "short": "two", "long": "Single long. For two."},
        {"image": "img/truncated.jpg", "short": "truncated", "long": "Truncated long."},
        {"image": "img/nocap.png", "short": "", "long": []},
        {"image": "img/missing.png", "short": "missing", "long": "x."},
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(2, "{not json")
    manifest = tmp_path / "data.jsonl"
    manifest.write_text("\n".join(lines) + "\n\n")

    stats = SkipStats()
    records = manifest_records(manifest, stats=stats)
    assert [r.short for r in records] == ["one", "two", "truncated"]
    assert records[0].long == [LONG_A, "Other. Long."]
    assert records[1].long == ["Single long. For two."]
    assert stats.as_dict() == {BAD_RECORD: 1, MISSING_CAPTION: 1, MISSING_IMAGE: 1}

    dataset = open_dataset(manifest, to_tensor)
    assert isinstance(dataset, CaptionDataset) and len(dataset) == 3
    shorts = [item[1] for item in all_items(dataset)]
    assert shorts == ["one", "two", "one"]  # the truncated image wraps around to index 0
    assert dataset.stats.counts[UNREADABLE_IMAGE] == 1
    assert dataset.stats.counts[MISSING_CAPTION] == 1


def test_csv_manifest(tmp_path: Path) -> None:
    make_images(tmp_path)
    manifest = tmp_path / "data.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "short", "long"])
        writer.writerow(["img/one.png", "one", f"{LONG_A}||Second long. For one."])
        writer.writerow(["img/truncated.jpg", "truncated", "Truncated long."])
        writer.writerow(["img/nocap.png", "", ""])
        writer.writerow(["img/two.png", "", "Two from long. More."])
    dataset = open_dataset(manifest, to_tensor, num_long=3)
    assert isinstance(dataset, CaptionDataset)
    assert [(r.short, r.long) for r in dataset.records] == [
        ("one", [LONG_A, "Second long. For one."]),
        ("truncated", ["Truncated long."]),
        ("Two from long", ["Two from long. More."]),
    ]
    items = all_items(dataset)
    assert [item[1] for item in items] == ["one", "Two from long", "Two from long"]
    assert all(len(item[2]) == 3 for item in items)
    assert dataset.stats.as_dict() == {MISSING_CAPTION: 1, UNREADABLE_IMAGE: 1}


def test_map_dataset_epochs_change_captions_deterministically(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "photos")
    a = open_dataset(root, to_tensor, sentences_per_caption=1)
    b = open_dataset(root, to_tensor, sentences_per_caption=1)
    captions = [a[0][2][0] for _ in range(3)]
    assert len(set(captions)) == 1 and b[0][2] == a[0][2]
    seen = set()
    for epoch in range(20):
        a.set_epoch(epoch)
        seen.add(a[0][2][0])
    assert len(seen) > 3


# --------------------------------------------------------------------------------------------
# tar shards
# --------------------------------------------------------------------------------------------


def write_shard(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for key, members in samples:
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def good_sample(name: str, shade: int) -> tuple[str, dict[str, bytes]]:
    text = f"{name}\n\nFirst of {name}. Second of {name}. Third of {name}. Fourth of {name}."
    return name, {"png": image_bytes((shade % 256, 0, 0)), "txt": text.encode()}


def make_shards(root: Path, sizes: list[int], broken: bool = True) -> tuple[list[Path], list[str]]:
    """Shards of good samples; shard 0 also holds the broken ones. Returns (paths, good keys)."""
    root.mkdir(exist_ok=True)
    paths, names = [], []
    for s, size in enumerate(sizes):
        samples = []
        for i in range(size):
            name = f"s{s}_{i:02d}"
            samples.append(good_sample(name, 10 * s + i))
            names.append(name)
        if broken and s == 0:
            samples.insert(1, ("badimage", {"png": BROKEN, "txt": b"bad\n\nBad image."}))
            samples.insert(3, ("nocaption", {"png": image_bytes((1, 1, 1))}))
            samples.insert(4, ("emptycaption", {"jpg": image_bytes((1, 1, 1)), "txt": b" \n"}))
            samples.insert(
                5,
                (
                    "jsoncap",
                    {
                        "jpg": image_bytes((2, 2, 2), "JPEG"),
                        "json": b'{"short": "jsoncap", "long": "A. B."}',
                    },
                ),
            )
            names.append("jsoncap")
        paths.append(write_shard(root / f"shard-{s:03d}.tar", samples))
    return paths, names


def shorts(items) -> list[str]:
    return [item[1] for item in items]


def test_shard_dataset_reads_and_skips(tmp_path: Path) -> None:
    paths, names = make_shards(tmp_path / "shards", [6])
    dataset = open_dataset(
        paths[0],
        to_tensor,
        num_long=2,
        sentences_per_caption=2,
        shuffle_buffer=3,
        rank=0,
        world_size=1,
    )
    assert isinstance(dataset, ShardDataset)
    items = list(dataset)
    assert sorted(shorts(items)) == sorted(names)
    assert dataset.stats.as_dict() == {UNREADABLE_IMAGE: 1, MISSING_CAPTION: 1, EMPTY_CAPTION: 1}
    for pixels, short, longs in items:
        assert pixels.shape == (3, 8, 8) and len(longs) == 2
        if short != "jsoncap":
            long = f"First of {short}. Second of {short}. Third of {short}. Fourth of {short}."
            assert all(is_window(x, long, 2) for x in longs)


def test_shard_shuffle_buffer_shuffles(tmp_path: Path) -> None:
    paths, names = make_shards(tmp_path / "shards", [30], broken=False)
    ordered = shorts(ShardDataset(paths, to_tensor, shuffle_buffer=1, rank=0, world_size=1))
    assert ordered == names  # buffer of one = stream order
    shuffled = shorts(ShardDataset(paths, to_tensor, shuffle_buffer=8, rank=0, world_size=1))
    assert sorted(shuffled) == sorted(names) and shuffled != names


@pytest.mark.parametrize("fraction", [0.2, 0.35, 0.5])
def test_truncated_shard_keeps_complete_samples(tmp_path: Path, fraction: float) -> None:
    paths, names = make_shards(tmp_path / "shards", [6], broken=False)
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: int(len(data) * fraction) + 100])
    dataset = ShardDataset(paths, to_tensor, shuffle_buffer=2, rank=0, world_size=1)
    got = shorts(dataset)
    assert 1 <= len(got) < len(names)
    assert set(got) <= set(names)
    assert dataset.stats.counts[BAD_SHARD] == 1


def test_expand_shard_spec_and_patterns(tmp_path: Path) -> None:
    paths, names = make_shards(tmp_path / "shards", [2, 2, 2], broken=False)
    spec = str(tmp_path / "shards" / "shard-{000..002}.tar")
    assert expand_shard_spec(spec) == paths
    assert expand_shard_spec(str(tmp_path / "shards" / "shard-{002,000}.tar")) == [
        paths[2],
        paths[0],
    ]
    assert expand_shard_spec(str(tmp_path / "shards" / "*.tar")) == paths
    for source in (spec, str(tmp_path / "shards" / "shard-*.tar"), tmp_path / "shards"):
        dataset = open_dataset(source, to_tensor, rank=0, world_size=1)
        assert isinstance(dataset, ShardDataset)
        assert sorted(shorts(dataset)) == sorted(names)


def new_shard_dataset(paths: list[Path]) -> ShardDataset:
    return ShardDataset(
        paths,
        to_tensor,
        num_long=2,
        sentences_per_caption=2,
        seed=5,
        shuffle_buffer=5,
        rank=0,
        world_size=1,
    )


def same_items(a, b) -> bool:
    return len(a) == len(b) and all(
        x[1] == y[1] and x[2] == y[2] and torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True)
    )


def test_shard_resume_is_exact(tmp_path: Path) -> None:
    paths, names = make_shards(tmp_path / "shards", [7, 6, 8])
    full = list(new_shard_dataset(paths))
    assert sorted(shorts(full)) == sorted(names)
    n = len(full)
    for cut in (0, 1, 4, 9, 15, n - 3, n - 1, n):
        first = new_shard_dataset(paths)
        iterator = iter(first)
        head = [next(iterator) for _ in range(cut)]
        state = json.loads(json.dumps(first.state_dict()))  # plain data
        resumed = new_shard_dataset(paths)
        resumed.load_state_dict(state)
        rest = list(resumed)
        assert same_items(head + rest, full), cut
        assert same_items(rest, full[cut:]), cut


def test_shard_next_epoch_after_full_pass(tmp_path: Path) -> None:
    paths, names = make_shards(tmp_path / "shards", [5, 5, 5], broken=False)
    dataset = new_shard_dataset(paths)
    epoch0 = shorts(dataset)
    epoch1 = shorts(dataset)
    assert dataset.epoch == 1
    assert sorted(epoch0) == sorted(epoch1) == sorted(names)
    assert epoch0 != epoch1
    other = new_shard_dataset(paths)
    other.set_epoch(1)
    assert shorts(other) == epoch1


def test_shard_state_rejects_other_layout(tmp_path: Path) -> None:
    paths, _ = make_shards(tmp_path / "shards", [4, 4], broken=False)
    dataset = new_shard_dataset(paths)
    iterator = dataset.iter_slot(0, 1)
    next(iterator)
    state = dataset.state_dict()
    resumed = new_shard_dataset(paths[:1])
    resumed.load_state_dict(state)
    with pytest.raises(ValueError):
        list(resumed)


@pytest.mark.parametrize(("world_size", "num_workers"), [(1, 1), (2, 1), (2, 3), (1, 4)])
def test_rank_and_worker_split_covers_every_sample_once(
    tmp_path: Path, world_size: int, num_workers: int
) -> None:
    paths, names = make_shards(tmp_path / "shards", [3, 5, 4, 6, 2, 4, 3])
    seen: list[str] = []
    per_slot = []
    for rank in range(world_size):
        dataset = ShardDataset(
            paths, to_tensor, seed=1, shuffle_buffer=4, rank=rank, world_size=world_size
        )
        for worker in range(num_workers):
            got = shorts(dataset.iter_slot(worker, num_workers))
            per_slot.append(got)
            seen.extend(got)
    assert Counter(seen) == Counter(names)
    assert all(per_slot)  # 7 shards, at most 6 slots: everyone gets data


def test_shard_dataset_with_dataloader_workers(tmp_path: Path) -> None:
    paths, names = make_shards(tmp_path / "shards", [4, 5, 3, 4])
    dataset = ShardDataset(paths, to_tensor, num_long=2, shuffle_buffer=3, rank=0, world_size=1)
    loader = DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collate_captions)
    seen = []
    for batch in loader:
        assert batch.pixels.shape[1:] == (3, 8, 8)
        assert len(batch.short) == len(batch.long) == batch.pixels.shape[0]
        assert all(len(longs) == 2 for longs in batch.long)
        seen.extend(batch.short)
    assert Counter(seen) == Counter(names)


# --------------------------------------------------------------------------------------------
# synthetic + batching + dispatch
# --------------------------------------------------------------------------------------------


def test_synthetic_dataset() -> None:
    dataset = open_dataset("synthetic:100:6", to_tensor, num_long=2, synthetic_size=32)
    assert isinstance(dataset, SyntheticDataset) and len(dataset) == 6
    pixels, short, longs = dataset[2]
    scene = synthetic.make_scene(102)
    assert pixels.shape == (3, 8, 8)
    assert short == scene.short_caption
    assert len(longs) == 2
    assert all(any(is_window(x, c, 3) for c in scene.long_captions) for x in longs)
    assert dataset[2][2] == longs
    assert dataset.labels()[2] == synthetic.label_index(scene)
    assert len(open_dataset("synthetic:4", to_tensor)) == 4
    epochs = set()
    for epoch in range(10):
        dataset.set_epoch(epoch)
        epochs.add(tuple(dataset[2][2]))
    assert len(epochs) > 1


def test_collate_captions() -> None:
    batch = [(torch.zeros(3, 4, 4), "a", ["x", "y"]), (torch.ones(3, 4, 4), "b", ["z", "w"])]
    pixels, short, long = collate_captions(batch)
    assert pixels.shape == (2, 3, 4, 4)
    assert short == ["a", "b"] and long == [["x", "y"], ["z", "w"]]


def test_written_scenes_load_back(tmp_path: Path) -> None:
    manifest = synthetic.write_scenes(tmp_path / "scenes", 0, 3, size=32)
    scenes = synthetic.make_scenes(0, 3)
    for source in (tmp_path / "scenes", manifest):
        dataset = open_dataset(source, to_tensor)
        assert isinstance(dataset, CaptionDataset)
        assert [(r.short, r.long) for r in dataset.records] == [
            (s.short_caption, s.long_captions) for s in scenes
        ]


def test_open_dataset_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        open_dataset(tmp_path / "nothing.jsonl", to_tensor)
    with pytest.raises(FileNotFoundError):
        open_dataset(str(tmp_path / "none-*.tar"), to_tensor)


def test_caption_dataset_captions_without_images_and_sentence_shuffling(tmp_path: Path) -> None:
    from training.data import CaptionDataset, CaptionedImage

    long = "One. Two. Three. Four. Five"
    records = [CaptionedImage(tmp_path / "missing.png", "short", [long], key="k")]
    plain = CaptionDataset(records, lambda image: image, sentences_per_caption=0)
    # captions() never opens the (missing) image and matches what __getitem__ would give
    assert plain.captions(0) == ("short", [". ".join(["One", "Two", "Three", "Four", "Five"])])
    shuffled = CaptionDataset(records, lambda image: image, sentences_per_caption=0, seed=1)
    shuffled.shuffle_sentences = True
    orders = set()
    for epoch in range(8):
        shuffled.set_epoch(epoch)
        text = shuffled.captions(0)[1][0]
        assert sorted(text.split(". ")) == sorted(["One", "Two", "Three", "Four", "Five"])
        orders.add(text)
        assert shuffled.captions(0)[1][0] == text  # seeded by (seed, epoch, index)
    assert len(orders) > 3
