"""The paper's benchmarks in the reference layout (training.benchmarks, ``evaluate --benchmark``).

Each fixture writes a few rendered scenes and captions in one benchmark's public layout; the
loaders must find every pair in the reference order, with the reference caption handling.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lotlip.model import LoTLIP
from training.benchmarks import (
    PUBLISHED,
    load_benchmark,
    paper_table,
    reference_caption,
    run_benchmark,
)
from training.cli import main
from training.data import load_image
from training.evaluate import recall_at_k
from training.synthetic import make_scene

pytestmark = pytest.mark.usefixtures("single_thread")


@functools.cache
def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    make_scene(seed).render(32).save(buffer, format="JPEG")
    return buffer.getvalue()


def picture(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg(seed))
    return path


def caption(seed: int) -> str:
    return make_scene(seed).long_captions[0]


def test_reference_caption_splits_on_every_period_newline_and_eos() -> None:
    text = "A red disc. It costs 3.5 coins\nA second line</s>  the end.  "
    assert reference_caption(text) == "A red disc. It costs 3. 5 coins. A second line. the end"
    assert reference_caption("...\n\n") == ""


def write_urban1k(root: Path) -> list[tuple[str, str]]:
    pairs = []
    for seed in (2, 0, 1):
        name = f"{seed}"
        picture(root / "image" / f"{name}.jpg", seed)
        (root / "caption").mkdir(parents=True, exist_ok=True)
        (root / "caption" / f"{name}.txt").write_text(caption(seed) + "\nsecond line ignored\n")
        pairs.append((f"{name}.jpg", caption(seed)))
    return sorted(pairs)


def write_dci(root: Path) -> list[tuple[str, str]]:
    base = root / "densely_captioned_images"
    (base / "annotations").mkdir(parents=True)
    splits = {"train": ["a.json", "b.json"], "test": ["c.json"]}
    pairs = []
    for seed, name in enumerate(("a.json", "b.json", "c.json")):
        image = f"sa_{seed}.jpg"
        picture(base / "photos" / image, seed)
        short, extra = make_scene(seed).short_caption, caption(seed)
        anno = {"image": image, "short_caption": short, "extra_caption": extra}
        (base / "annotations" / name).write_text(json.dumps(anno))
        pairs.append((image, f"{short}\n{extra}"))
    (base / "splits.json").write_text(json.dumps(splits))
    return pairs


def write_iiw(root: Path) -> list[tuple[str, str]]:
    pairs = []
    parts = (("DOCCI_Test", "docci", "image"), ("IIW-400", "docci_aar", "image/key"))
    parts += (("DCI_Test", "dci", "image"),)
    seed = 0
    for part, folder, field in parts:
        rows = []
        for _ in range(2):
            stem = f"img{seed}"
            picture(root / folder / f"{stem}.jpg", seed)
            name = stem if field == "image/key" else f"{stem}.jpg"  # keys lack the suffix
            rows.append({field: name, "IIW": caption(seed)})
            pairs.append((f"{folder}/{stem}.jpg", caption(seed)))
            seed += 1
        annotations = root / "imageinwords" / part
        annotations.mkdir(parents=True)
        (annotations / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pairs


def write_docci(root: Path) -> list[tuple[str, str]]:
    rows, pairs = [], []
    for seed, split in enumerate(("train", "test", "qual_dev", "test", "test")):
        image = f"test_{seed:05d}.jpg"
        picture(root / "images" / image, seed)
        rows.append({"example_id": seed, "split": split, "image_file": image})
        rows[-1]["description"] = caption(seed)
        if split == "test":
            pairs.append((image, caption(seed)))
    (root / "docci_descriptions.jsonlines").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pairs


def write_sharegpt4v(root: Path, count: int) -> list[tuple[str, str]]:
    entries, pairs = [], []
    for seed in range(count):
        image = f"sa_0000{seed % 2}/images/sa_{seed}.jpg"
        picture(root / image, seed % 7)
        question = {"from": "human", "value": "<image>\nDescribe this picture."}
        answer = {"from": "gpt", "value": caption(seed % 7) + f" Number {seed}."}
        entries.append({"id": f"sa_{seed}", "image": image, "conversations": [question, answer]})
        pairs.append((image, answer["value"]))
    (root / "share4v").mkdir(parents=True, exist_ok=True)
    (root / "share4v" / "share4v_sam_10k.json").write_text(json.dumps(entries))
    return pairs


WRITERS: dict[str, Callable[[Path], list[tuple[str, str]]]] = {
    "urban1k": write_urban1k,
    "dci": write_dci,
    "iiw": write_iiw,
    "docci": write_docci,
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_loader_reads_its_layout_in_reference_order(tmp_path: Path, name: str) -> None:
    expected = WRITERS[name](tmp_path)
    pairs = load_benchmark(name, tmp_path)
    assert [path.name for path in pairs.images] == [Path(image).name for image, _ in expected]
    assert all(path.is_file() for path in pairs.images)
    assert pairs.texts == [reference_caption(text) for _, text in expected]
    assert all(". " in text and "." not in text.replace(". ", "") for text in pairs.texts)


def test_sharegpt4v_takes_the_first_1k_entries(tmp_path: Path) -> None:
    expected = write_sharegpt4v(tmp_path, 1001)
    pairs = load_benchmark("sharegpt4v-1k", tmp_path)
    assert len(pairs.texts) == 1000
    assert pairs.texts[999] == reference_caption(expected[999][1])
    assert pairs.images[999] == tmp_path / expected[999][0]
    with pytest.raises(ValueError, match="fewer than 10000"):
        load_benchmark("sharegpt4v-10k", tmp_path)


def test_missing_pieces_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"splits\.json"):
        load_benchmark("dci", tmp_path)
    write_urban1k(tmp_path)
    (tmp_path / "image" / "1.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"1 of 3 images missing.*1\.jpg"):
        load_benchmark("urban1k", tmp_path)
    with pytest.raises(ValueError, match="unknown benchmark"):
        load_benchmark("coco", tmp_path)


def test_run_benchmark_scores_the_model_embeddings(
    tmp_path: Path, make_model: Callable[..., LoTLIP]
) -> None:
    write_iiw(tmp_path)
    pairs = load_benchmark("iiw", tmp_path)
    model = make_model(seed=2, spread=0.1)
    metrics = run_benchmark(model, pairs, batch_size=4)  # 6 pictures: two image batches
    images = model.embed_images([load_image(path) for path in pairs.images])
    expected = recall_at_k(model.embed_texts(pairs.texts) @ images.T)
    assert metrics == pytest.approx({"n": 6.0, **expected})


def test_evaluate_benchmark_prints_the_paper_table(
    tmp_path: Path, saved_model: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_urban1k(tmp_path / "urban")
    model = saved_model(seed=1, spread=0.1)
    argv = ["evaluate", "--model", str(model), "--benchmark", "urban1k"]
    assert main([*argv, "--data", str(tmp_path / "urban"), "--device", "cpu"]) == 0
    table = capsys.readouterr().out
    assert "Urban-1k" in table and "(3 pairs)" in table
    paper = next(line for line in table.splitlines() if line.startswith("LoTLIP-B/16"))
    assert paper.split()[-2:] == ["88.80", "84.80"]
    assert main([*argv, "--data", str(tmp_path / "urban"), "--device", "cpu", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["published_lotlip_b16"] == {"i2t_r1": 0.888, "t2i_r1": 0.848}
    assert payload["metrics"]["n"] == 3
    assert main([*argv, "--device", "cpu"]) == 2  # no --data
    assert "--benchmark needs --data" in capsys.readouterr().err


def test_paper_table_for_every_published_benchmark() -> None:
    metrics = {"n": 10.0, **{f"{d}_r{k}": 0.5 for d in ("i2t", "t2i") for k in (1, 5, 10)}}
    for name, (i2t, t2i) in PUBLISHED.items():
        table = paper_table(name, metrics, "mine")
        assert f"{i2t:7.2f} {t2i:7.2f}" in table
        assert "mine" in table and "50.00" in table
    assert "      -       -" in paper_table("docci", metrics, "mine")
    assert np.isclose(PUBLISHED["dci"][0], 64.11)
