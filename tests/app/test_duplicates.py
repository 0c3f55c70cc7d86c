"""Near-duplicate grouping: the grouping rule and the picture signature by hand, calibration on
a hand-made case, the calibrated values on generated copies with the bundled model, and folding
in a real search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from app.library import duplicates
from app.library.duplicates import (
    SIGNATURE_LIMIT,
    SIGNATURE_SIDE,
    Differences,
    difference,
    group_indices,
    labels_of,
    load_signature,
    pair_scores,
    signature,
)
from app.library.indexer import Indexer
from app.library.models import load_model
from app.library.search import Searcher
from lotlip import registry


def unit(*rows: tuple[float, ...]) -> np.ndarray:
    v = np.asarray(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_grouping_is_complete_linkage_in_rank_order() -> None:
    a, b, c = np.radians([0.0, 20.0, 40.0])  # a~b and b~c at cos 0.94, a~c only 0.77
    vectors = unit(
        (np.cos(a), np.sin(a)), (np.cos(b), np.sin(b)), (np.cos(c), np.sin(c)), (-1.0, 0.0)
    )
    assert group_indices(vectors, 0.9) == [[0, 1], [2], [3]]  # c does not chain onto a via b
    assert group_indices(vectors, 0.7) == [[0, 1, 2], [3]]
    assert group_indices(vectors, 0.999) == [[0], [1], [2], [3]]


def test_confirmation_needs_one_member_and_picks_the_best_confirmed_group() -> None:
    a, b = np.radians([0.0, 10.0])
    vectors = unit((np.cos(a), np.sin(a)), (np.cos(b), np.sin(b)), (1.0, 0.0), (1.0, 0.0))
    allowed = {(0, 2), (1, 3), (2, 3)}

    def confirm(i: int, j: int) -> bool:
        return (min(i, j), max(i, j)) in allowed

    # 0 and 1 are close (cos 0.985) but unconfirmed: two groups. Row 2 equals 0 -> joins 0.
    # Row 3 equals 0 and 2 too, but only 2 confirms it: one member is enough.
    assert group_indices(vectors, 0.9, confirm) == [[0, 2, 3], [1]]
    allowed.discard((2, 3))  # now only 1 confirms 3: the less similar group, still above 0.9
    assert group_indices(vectors, 0.9, confirm) == [[0, 2], [1, 3]]
    allowed.discard((1, 3))
    assert group_indices(vectors, 0.9, confirm) == [[0, 2], [1], [3]]
    assert group_indices(vectors, 0.999, lambda i, j: True) == [[0, 2, 3], [1]]


def flat(colour: tuple[int, int, int] = (200, 180, 150)) -> Image.Image:
    return Image.new("RGB", (SIGNATURE_SIDE, SIGNATURE_SIDE), colour)


def with_block(x: int, y: int, side: int, colour=(20, 60, 200)) -> Image.Image:
    image = flat()
    ImageDraw.Draw(image).rectangle((x, y, x + side - 1, y + side - 1), fill=colour)
    return image


def test_difference_by_hand() -> None:
    plain = signature(flat())
    # a 6x6 block of a colour found nowhere within 3 cells of it in the other picture: its 36
    # cells differ; the plain picture's cells all find the background within 3 cells
    assert difference(plain, signature(with_block(20, 20, 6))) == pytest.approx(36 / 48**2)
    # moved by 3 cells (the shift tolerance): nothing differs; moved by 6: it does
    block = signature(with_block(10, 10, 10))
    assert difference(block, signature(with_block(13, 13, 10))) == 0.0
    assert difference(block, signature(with_block(16, 10, 10))) > 0.0
    # 10 % darker everywhere: brightness is matched first
    darker = ImageEnhance.Brightness(with_block(10, 10, 10)).enhance(0.9)
    assert difference(block, signature(darker)) == 0.0
    assert difference(block, block) == 0.0


def photo(path: Path, extra: bool = False, size: tuple[int, int] = (900, 600)) -> Path:
    image = Image.new("RGB", size, (90, 140, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((300, 150, 600, 450), fill=(230, 200, 40))
    if extra:  # a small second object: another photo of the same subject
        draw.rectangle((60, 60, 160, 160), fill=(200, 30, 30))
    image.save(path, quality=90)
    return path


def test_signature_of_files_copies_and_a_different_photo(tmp_path: Path) -> None:
    original = photo(tmp_path / "original.jpg")
    with Image.open(original) as im:
        im.resize((300, 200)).save(tmp_path / "small.jpg", quality=30)
        im.crop((20, 10, 880, 590)).save(tmp_path / "cropped.png")
    other = photo(tmp_path / "other.jpg", extra=True)
    base = load_signature(original)
    assert base is not None and base.shape == (SIGNATURE_SIDE, SIGNATURE_SIDE, 3)
    for name in ("small.jpg", "cropped.png"):
        assert difference(base, load_signature(tmp_path / name)) <= SIGNATURE_LIMIT, name
    assert difference(base, load_signature(other)) > SIGNATURE_LIMIT
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    assert load_signature(tmp_path / "broken.jpg") is None
    assert load_signature(tmp_path / "missing.jpg") is None
    differences = Differences([base, None])
    assert differences(0, 1) == np.inf and not differences.confirm()(0, 1)


def test_calibrate_picks_the_centre_of_the_best_region() -> None:
    # an original, its copy (cosine 0.95), another original, and a look-alike of the first
    # (cosine 0.9 to it, 0.855 to the copy) whose picture differs
    vectors = unit(
        (1.0, 0.0, 0.0), (0.95, np.sqrt(0.0975), 0.0), (0, 0, 1), (0.9, 0, np.sqrt(0.19))
    )
    groups = [0, 0, 1, 2]
    same, other = signature(flat()), signature(with_block(0, 0, 30))
    grid = (0.80, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96)
    # vectors alone: perfect for thresholds in (0.855, 0.95], grid 0.86..0.94: centre 0.90
    assert duplicates.calibrate([(vectors, groups, None)], grid) == (0.90, SIGNATURE_LIMIT)
    # the signature rejects the look-alike: perfect up to 0.95, grid 0.80..0.94: centre 0.88;
    # both limits are perfect, the first is taken
    sets = [(vectors, groups, [same, same, other, other])]
    assert duplicates.calibrate(sets, grid, (0.01, 0.02)) == (0.88, 0.01)


def test_pair_scores_by_hand() -> None:
    # truth: {0,1,2} {3}; predicted: {0,1} {2,3} -> pairs predicted (0,1),(2,3): 1 right of 2;
    # true pairs (0,1),(0,2),(1,2): 1 found of 3
    assert pair_scores([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx((0.5, 1 / 3))
    assert pair_scores([0, 1, 2], [0, 1, 2]) == (1.0, 1.0)
    assert labels_of([[0, 2], [1]], 3) == [0, 1, 0]


@pytest.fixture(scope="module")
def tiny():
    if not registry.is_installed(registry.BUNDLED_MODEL):
        pytest.fail("the bundled lotlip-tiny must ship with the repository")
    return load_model(registry.BUNDLED_MODEL, "cpu")


def test_default_threshold_groups_every_generated_set(tiny) -> None:
    """24 originals x 4 copies + 20 similar scenes, on sets the values were not calibrated on
    (bench/bench_duplicates.py calibrates on sets 0-4): precision and recall >= 0.95 on each
    set, not only on average (with the vectors alone these three gave 0.900 / 0.942,
    0.882 / 0.933 and 0.941 / 0.933)."""
    for start in (7, 9, 16):
        data = duplicates.calibration_set(start=start)
        vectors = duplicates.embed_set(tiny, data)
        order = np.random.default_rng(start).permutation(len(vectors))
        groups = [data.groups[i] for i in order]
        signatures = duplicates.set_signatures(data)
        found = duplicates.evaluate(
            vectors[order], groups, duplicates.DEFAULT_THRESHOLD, [signatures[i] for i in order]
        )
        assert found.precision >= 0.95 and found.recall >= 0.95, (start, found)


def test_search_folds_near_copies(library, tiny, tmp_path: Path) -> None:
    data = duplicates.calibration_set(originals=4, copies=3, similar=4, start=9)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, image in enumerate(data.images):
        image.save(photos / f"{i:03d}_g{data.groups[i]}.png")
    Indexer(library, tiny, batch_size=16).run([photos])
    searcher = Searcher(library, tiny)
    text = "A large shape on a background"
    flat = searcher.search(text, top=30)
    grouped = searcher.search(text, top=30, group_duplicates=True)
    assert len(flat.results) == len(data.images) == 20
    assert len(grouped.results) < len(flat.results)
    members = [[r, *r.duplicates] for r in grouped.results]
    assert sorted(m.id for group in members for m in group) == sorted(r.id for r in flat.results)
    true_group = {r.id: Path(r.path).stem.split("_g")[1] for r in flat.results}
    found = [g for g in members if len(g) > 1]
    assert found and all(len({true_group[m.id] for m in g}) == 1 for g in found)
    assert grouped.as_dict()["results"][0].get("duplicates", []) == [
        d.as_dict() for d in grouped.results[0].duplicates
    ]


def test_search_does_not_fold_a_photo_it_cannot_read(library, tiny, tmp_path: Path) -> None:
    data = duplicates.calibration_set(originals=1, copies=3, similar=0, start=11)
    photos = tmp_path / "photos"
    photos.mkdir()
    paths = []
    for i, image in enumerate(data.images):
        paths.append(photos / f"{i}.png")
        image.save(paths[-1])
    Indexer(library, tiny, batch_size=16).run([photos])
    searcher = Searcher(library, tiny)
    before = searcher.search("A large shape", top=10, group_duplicates=True)
    assert [1 + len(r.duplicates) for r in before.results] == [4]
    paths[2].unlink()  # gone since indexing: its picture cannot confirm it is a copy
    after = Searcher(library, tiny).search("A large shape", top=10, group_duplicates=True)
    alone = [r for r in after.results if not r.duplicates]
    assert [Path(r.path).name for r in alone] == ["2.png"]
    assert sorted(1 + len(r.duplicates) for r in after.results) == [1, 3]
