"""A folder of good pictures mixed with broken, odd and hostile files: nothing is lost."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.app.conftest import draw_image

NON_UTF8 = b"caf\xe9 latin1.jpg"  # not valid UTF-8


def png_header_only(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def make_zoo(folder: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Write the zoo; returns (good name -> expected "WxH", bad name -> expected reason word)."""
    folder.mkdir(parents=True)
    good: dict[str, str] = {}
    for fmt, ext in [("jpeg", "jpg"), ("png", "png"), ("webp", "webp"), ("bmp", "bmp"),
                     ("gif", "gif"), ("tiff", "tif")]:  # fmt: skip
        draw_image(folder / f"plain.{ext}", fmt, (48, 32), seed=len(good))
        good[f"plain.{ext}"] = "48x32"
    draw_image(folder / "UPPER.JPG", "jpeg", (40, 30), seed=11)
    good["UPPER.JPG"] = "40x30"
    draw_image(folder / "png named.jpg", "png", (30, 20), seed=12)
    good["png named.jpg"] = "30x20"

    Image.new("CMYK", (40, 24), (0, 120, 200, 10)).save(folder / "cmyk.jpg", "JPEG")
    good["cmyk.jpg"] = "40x24"
    deep = (np.arange(36 * 20, dtype=np.uint16).reshape(20, 36) * 90).astype(np.uint16)
    sixteen = Image.fromarray(deep)
    assert sixteen.mode.startswith("I;16")
    sixteen.save(folder / "sixteen_bit.png")
    good["sixteen_bit.png"] = "36x20"
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    palette.paste(1, (8, 8, 24, 24))
    palette.save(folder / "palette_alpha.png", transparency=0)
    good["palette_alpha.png"] = "32x32"
    frames = [Image.new("RGB", (24, 24), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=50)
    good["animated.gif"] = "24x24"
    rotated = Image.new("RGB", (60, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    exif.get_ifd(0x8769)[36867] = "2019:07:14 16:05:00"
    rotated.save(folder / "rotated.jpg", "JPEG", exif=exif)
    good["rotated.jpg"] = "20x60"
    draw_image(folder / "with spaces & (brackets) [1].jpeg", "jpeg", seed=13)
    good["with spaces & (brackets) [1].jpeg"] = "48x32"
    draw_image(folder / "ünïcødé 写真.png", "png", seed=14)
    good["ünïcødé 写真.png"] = "48x32"
    draw_image(os.fsencode(folder) + b"/" + NON_UTF8, "jpeg", seed=15)
    good[os.fsdecode(NON_UTF8)] = "48x32"

    bad: dict[str, str] = {}
    (folder / "empty.jpg").write_bytes(b"")
    bad["empty.jpg"] = "empty"
    (folder / "tiny.png").write_bytes(b"\x89PNG")
    bad["tiny.png"] = "bytes"
    (folder / "notes.jpg").write_text("these are my holiday notes, not a picture\n" * 3)
    bad["notes.jpg"] = "not an image"
    whole = (folder / "plain.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    bad["truncated.jpg"] = "truncated"
    png_header_only(folder / "bomb.png", 20000, 20000)
    bad["bomb.png"] = "bomb"
    garbage = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4  # JPEG magic, then noise
    (folder / "garbage.jpg").write_bytes(garbage)
    bad["garbage.jpg"] = ""
    (folder / "notes.txt").write_text("not an image and not named like one")  # ignored
    return good, bad


def test_every_good_image_indexed_every_bad_one_recorded(cli, tmp_path: Path) -> None:
    folder = tmp_path / "zoo"
    good, bad = make_zoo(folder)
    status, out, err = cli("index", str(folder), "--json", "--batch-size", "4")
    assert status == 0, err
    report = json.loads(out)
    assert report["added"] == len(good)
    assert report["failed"] == len(bad)

    from app.library.library import Library

    with Library.open(tmp_path / "library") as lib:
        rows = lib.store.rows_for(lib.store.image_ids())
        by_name = {os.path.basename(r.path): r for r in rows}
        assert set(by_name) == set(good)  # nothing lost, nothing extra
        for name, size in good.items():
            assert f"{by_name[name].width}x{by_name[name].height}" == size, name
        assert by_name["rotated.jpg"].taken_at == "2019-07-14T16:05:00"
        assert lib.store.embedding_count("micro-random") == len(good)
        # the non-UTF-8 path round-trips to the very bytes on disk
        odd = by_name[os.fsdecode(NON_UTF8)].path
        assert os.path.exists(os.fsencode(odd))
        assert os.fsencode(odd).endswith(NON_UTF8)

    status, out, err = cli("errors", "--json")
    assert status == 0
    failures = {os.path.basename(f["path"]): f["reason"] for f in json.loads(out)}
    assert set(failures) == set(bad)
    for name, word in bad.items():
        assert failures[name].strip(), name
        assert word in failures[name].lower(), (name, failures[name])

    # a second run embeds nothing, still reports the bad files, still succeeds
    status, out, err = cli("index", str(folder), "--json")
    assert status == 0, err
    again = json.loads(out)
    assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, len(good))
    assert again["failed"] == len(bad)
    assert {os.path.basename(p["path"]) for p in again["failures"]} == set(bad)


def test_a_fixed_file_is_retried_and_indexed(cli, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    broken = folder / "later.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 definitely not finished")
    status, out, _ = cli("index", str(folder), "--json")
    assert status == 0 and json.loads(out)["failed"] == 1
    draw_image(broken, "jpeg", seed=3)  # the download finished
    status, out, _ = cli("index", str(folder), "--json")
    data = json.loads(out)
    assert status == 0 and (data["added"], data["failed"]) == (1, 0)
    status, out, _ = cli("errors", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize("limit", [10_000])
def test_lotlip_guard_refuses_large_claims(tmp_path: Path, limit: int) -> None:
    """The decoder's own pixel guard (not only Pillow's) stops oversized pictures early."""
    from lotlip.transforms import ImageLoadError, load_image

    path = tmp_path / "big.png"
    png_header_only(path, 200, 100)  # 20,000 pixels: over a 10,000-pixel guard
    with pytest.raises(ImageLoadError, match="safety limit"):
        load_image(path, 32, max_pixels=limit)


def _cli_json(argv: list[str]) -> tuple[int, str]:
    """Run the CLI in this process with stdout captured (for :func:`run_unprivileged`)."""
    import contextlib
    import io

    from app.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = main(argv)
    return status, out.getvalue()


def test_unreadable_files_and_folders_are_failures(
    open_tmp: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from tests.app.conftest import RANDOM_MODEL, run_unprivileged

    models = open_tmp / "models"
    shutil.copytree(models_dir, models)
    monkeypatch.setenv("LOTLIP_MODELS_DIR", str(models))  # open to `nobody`; the child inherits it
    photos = open_tmp / "photos"
    draw_image(photos / "ok.jpg", seed=1)
    draw_image(photos / "private" / "inside.jpg", seed=2)
    draw_image(photos / "secret.jpg", seed=3)
    (photos / "private").chmod(0o000)
    (photos / "secret.jpg").chmod(0o000)
    base = ["--library", str(open_tmp / "library"), "--model", RANDOM_MODEL]

    def index_and_list() -> tuple[dict, list]:
        status, out = _cli_json([*base, "index", str(photos), "--json"])
        assert status == 0
        report = json.loads(out)
        status, out = _cli_json([*base, "errors", "--json"])
        assert status == 0
        return report, json.loads(out)

    report, errors = run_unprivileged(index_and_list)
    assert (report["added"], report["failed"]) == (1, 2)
    reasons = {os.path.relpath(e["path"], photos): e["reason"] for e in errors}
    assert set(reasons) == {"private", "secret.jpg"}
    assert all("permission denied" in r.lower() for r in reasons.values()), reasons
    assert {os.path.relpath(f["path"], photos) for f in report["failures"]} == set(reasons)

    # readable again: both are indexed and their failure records go
    (photos / "private").chmod(0o755)
    (photos / "secret.jpg").chmod(0o644)
    report, errors = run_unprivileged(index_and_list)
    assert (report["added"], report["failed"], errors) == (2, 0, [])


def test_links_that_cannot_be_resolved_or_leave_the_folder(cli, tmp_path: Path) -> None:
    photos, outside = tmp_path / "photos", tmp_path / "outside"
    draw_image(photos / "good.jpg", seed=1)
    draw_image(outside / "elsewhere.jpg", seed=2)
    os.symlink(outside / "elsewhere.jpg", photos / "out.jpg")
    os.symlink("loop_b.jpg", photos / "loop_a.jpg")
    os.symlink("loop_a.jpg", photos / "loop_b.jpg")
    os.symlink("/proc/1/root/etc/x.jpg", photos / "proc.jpg")
    status, out, err = cli("index", str(photos), "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["added"] == 1
    failed = {os.path.basename(f["path"]) for f in report["failures"]}
    assert {"loop_a.jpg", "loop_b.jpg"} <= failed
    # /proc/1/root is a failure where it cannot be resolved, else a link out of the folder
    assert report["links_outside"] == (1 if "proc.jpg" in failed else 2)
    status, out, err = cli("index", str(photos))
    assert status == 0, err
    assert f"{report['links_outside']} link(s) to outside the folder skipped" in out
    status, out, _ = cli("errors", "--json")
    assert {os.path.basename(e["path"]) for e in json.loads(out)} == failed
