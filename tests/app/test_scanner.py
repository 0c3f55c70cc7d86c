"""Scanner: content sniffing, excludes, junk, symlinks, odd file names, change planning."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from app.library import scanner as scanner_mod
from app.library.scanner import (
    HEAD_BYTES,
    FileInfo,
    KnownFile,
    Scanner,
    ScanRoot,
    content_hash,
    plan_changes,
    sniff_format,
)
from tests.app.conftest import run_unprivileged

MIB = 1 << 20  # files of several MiB span several read chunks

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "bmp": "BMP", "webp": "WEBP",
               "tiff": "TIFF"}  # fmt: skip


def names(infos: list[FileInfo], root: Path) -> set[str]:
    return {os.path.relpath(i.path, root) for i in infos}


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("fmt", sorted(PIL_FORMATS))
def test_sniff_format_of_real_encodings(fmt: str) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, PIL_FORMATS[fmt])
    assert sniff_format(buf.getvalue()[:HEAD_BYTES]) == fmt


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heic"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "avif"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "avif"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", None),  # an mp4 video
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", None),  # a QuickTime movie
        (b"BMW is a car maker and this is text", None),
        (b"Hello, I am a plain text file.", None),
        (b"\xff\xd8", None),  # too short to tell
        (b"", None),
    ],
)
def test_sniff_format_edge_cases(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected


def test_sniffing_reads_only_the_head(
    draw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.png"
    draw(big, "png", size=(600, 600))
    reads: list[int] = []
    real_open = open

    class Spy(io.RawIOBase):
        def __init__(self, fh: io.BufferedReader) -> None:
            self.fh = fh

        def read(self, n: int = -1) -> bytes:
            reads.append(n)
            return self.fh.read(n)

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

    monkeypatch.setattr(scanner_mod, "open", lambda p, m="r": Spy(real_open(p, m)), raising=False)
    assert [i.format for i in Scanner([tmp_path])] == ["png"]
    assert reads == [HEAD_BYTES] and HEAD_BYTES <= 32


# --------------------------------------------------------------------------- choosing files


def test_images_chosen_by_content_not_name(draw, tmp_path: Path, monkeypatch) -> None:
    draw(tmp_path / "upper.JPG", "jpeg")
    draw(tmp_path / "long.jpeg", "jpeg")
    draw(tmp_path / "png_named.jpg", "png")
    draw(tmp_path / "sub" / "pic.webp", "webp")
    draw(tmp_path / "sub" / "anim.gif", "gif")
    draw(tmp_path / "sub" / "old.bmp", "bmp")
    draw(tmp_path / "sub" / "scan.TIFF", "tiff")
    draw(tmp_path / "no_extension", "png")
    draw(tmp_path / "odd.dat", "jpeg")  # unknown extension: sniffed
    (tmp_path / "fake.jpg").write_text("this is not a picture at all")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "phone.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" * 4)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 64)
    draw(tmp_path / "notes.txt", "jpeg")  # JPEG bytes, but .txt: never opened
    sniffed: list[str] = []
    real = scanner_mod.sniff_file
    monkeypatch.setattr(scanner_mod, "sniff_file", lambda p: sniffed.append(p) or real(p))

    found = list(Scanner([tmp_path]))
    by_name = {os.path.relpath(i.path, tmp_path): i for i in found}
    assert set(by_name) == {
        "upper.JPG", "long.jpeg", "png_named.jpg", "sub/pic.webp", "sub/anim.gif",
        "sub/old.bmp", "sub/scan.TIFF", "no_extension", "odd.dat", "phone.heic",
    }  # fmt: skip
    assert by_name["png_named.jpg"].format == "png"
    assert by_name["phone.heic"].format == "heic"
    assert by_name["sub/scan.TIFF"].format == "tiff"
    st = os.stat(tmp_path / "upper.JPG")
    info = by_name["upper.JPG"]
    assert (info.size, info.mtime_ns, info.root) == (st.st_size, st.st_mtime_ns, str(tmp_path))
    opened = {os.path.basename(os.fsdecode(p)) for p in sniffed}
    assert "notes.txt" not in opened and "clip.mp4" not in opened
    assert "fake.jpg" in opened


def test_excludes_hidden_and_junk(draw, tmp_path: Path) -> None:
    keep = ["a.jpg", "trips/b.jpg", "other/private/c.jpg", "deep/er/d.jpg"]
    excluded = ["trips/private/x.jpg", "skip_me/y.jpg", "trips/z_draft.jpg", "deep/er/cache/w.jpg"]
    hidden = [".hidden/h.jpg", ".h2.jpg"]
    junk = [
        ".git/objects/g.jpg", "@eaDir/a.jpg/SYNOFILE_THUMB_M.jpg", "node_modules/n.jpg",
        ".thumbnails/normal/t.png", "__pycache__/p.jpg", "$RECYCLE.BIN/r.jpg",
        ".Trash-1000/files/t.jpg", "sub/Thumbs.db", "._resource.jpg",
    ]  # fmt: skip
    for rel in keep + excluded + hidden + junk:
        draw(tmp_path / rel, "png" if rel.endswith(".png") else "jpeg")
    excludes = ["skip_me", "trips/private", "*_draft.jpg", "*/cache/"]

    sc = Scanner([ScanRoot(str(tmp_path), tuple(excludes))])
    assert names(list(sc), tmp_path) == set(keep)


@pytest.mark.parametrize(
    ("pattern", "excluded"),
    [
        # the README's example: a Screenshots folder at any depth, the top level included
        ("*/Screenshots/*", {"Screenshots/s.jpg", "phone/Screenshots/t.jpg"}),
        ("Screenshots/*", {"Screenshots/s.jpg", "phone/Screenshots/t.jpg"}),
        ("Screenshots", {"Screenshots/s.jpg", "phone/Screenshots/t.jpg"}),
        ("Screenshots/", {"Screenshots/s.jpg", "phone/Screenshots/t.jpg"}),
        # a leading "/" anchors at the indexed folder
        ("/Screenshots", {"Screenshots/s.jpg"}),
        ("/phone/Screenshots/", {"phone/Screenshots/t.jpg"}),
        ("/2020", {"2020/a.jpg"}),
        # a pattern with a "/" inside matches at any depth, whole names only
        ("trips/2020", {"trips/2020/b.jpg"}),
        ("2020", {"2020/a.jpg", "trips/2020/b.jpg"}),
        ("*.png", {"phone/p.png"}),
        ("Screenshots/t.jpg", {"phone/Screenshots/t.jpg"}),
        ("/2020/*", {"2020/a.jpg"}),
    ],
)
def test_exclude_patterns_match_at_any_depth(
    draw, tmp_path: Path, pattern: str, excluded: set[str]
) -> None:
    files = [
        "top.jpg", "Screenshots/s.jpg", "phone/Screenshots/t.jpg", "phone/p.png",
        "2020/a.jpg", "trips/2020/b.jpg", "trips/x2020/c.jpg", "ScreenshotsOld/o.jpg",
    ]  # fmt: skip
    for n, rel in enumerate(files):
        draw(tmp_path / rel, "png" if rel.endswith(".png") else "jpeg", seed=n)
    found = names(list(Scanner([ScanRoot(str(tmp_path), (pattern,))])), tmp_path)
    assert found == set(files) - excluded, pattern


def test_a_folder_only_pattern_leaves_files_of_that_name(draw, tmp_path: Path) -> None:
    draw(tmp_path / "raw" / "a.jpg")
    draw(tmp_path / "keep" / "raw", seed=2)  # a file called "raw" (sniffed by content)
    found = names(list(Scanner([ScanRoot(str(tmp_path), ("raw/",))])), tmp_path)
    assert found == {"keep/raw"}


@pytest.mark.parametrize(
    "pattern",
    ["raw", "raw/", "/raw", "*/Screenshots/*", "Screenshots/*", "*.png", "/a/b", "a/b", "x[1]"],
)
def test_rebased_patterns_mean_the_same_from_the_parent(pattern: str) -> None:
    """Excludes given for folder ``sub`` keep their meaning as patterns of its parent root."""
    from app.library.scanner import exclude_matches, rebase_pattern

    rels = [
        "raw", "raw/x.jpg", "deep/raw", "Screenshots/s.jpg", "p/Screenshots/t.jpg", "i.png",
        "d/i.png", "a/b", "q/a/b", "a/b/c.jpg", "x1", "rawer", "x[1]",
    ]  # fmt: skip
    rebased = rebase_pattern(pattern, "my sub*")
    for rel in rels:
        for is_dir in (False, True):
            inside = exclude_matches(pattern, rel, is_dir)
            from_parent = any(exclude_matches(p, f"my sub*/{rel}", is_dir) for p in rebased)
            assert inside == from_parent, (pattern, rel, is_dir, rebased)
            # and nothing outside the subfolder is touched
            assert not any(exclude_matches(p, f"other/{rel}", is_dir) for p in rebased)


def test_root_objects_with_path_and_excludes(draw, tmp_path: Path) -> None:
    class FolderLike:
        path = str(tmp_path)
        excludes = ("b*",)

    draw(tmp_path / "a.jpg")
    draw(tmp_path / "b.jpg")
    assert names(list(Scanner([FolderLike()])), tmp_path) == {"a.jpg"}


def test_nested_roots_belong_to_innermost(draw, tmp_path: Path) -> None:
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    draw(outer / "o.jpg")
    draw(inner / "i.jpg")
    found = {os.path.basename(i.path): i.root for i in Scanner([outer, inner])}
    assert found == {"o.jpg": str(outer), "i.jpg": str(inner)}
    assert len(list(Scanner([outer, outer]))) == 2  # a root listed twice is walked once


# --------------------------------------------------------------------------- symlinks


def test_symlink_loops_terminate_and_files_come_once(draw, tmp_path: Path) -> None:
    root = tmp_path / "root"
    draw(root / "a" / "one.jpg")
    draw(root / "b" / "two.jpg", seed=2)
    os.symlink(root, root / "a" / "loop_to_root")
    os.symlink(".", root / "b" / "self")
    os.symlink("../a", root / "b" / "to_a")
    os.symlink("one.jpg", root / "a" / "alias.jpg")

    sc = Scanner([root])
    found = sorted(os.path.relpath(i.path, root) for i in sc)
    assert found == ["a/one.jpg", "b/two.jpg"]  # direct paths win over link routes


def test_symlinks_never_leave_the_roots(draw, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    draw(root / "in.jpg")
    draw(outside / "secret.jpg", seed=5)
    draw(outside / "dir" / "deep.jpg", seed=6)
    os.symlink(outside, root / "link_dir")
    os.symlink(outside / "secret.jpg", root / "link_file.jpg")
    os.symlink(tmp_path / "nowhere.jpg", root / "broken.jpg")

    assert names(list(Scanner([root])), root) == {"in.jpg"}


def test_links_out_of_the_root_are_counted(draw, tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    draw(root / "in.jpg")
    draw(outside / "secret.jpg", seed=5)
    os.symlink(outside, root / "link_dir")
    os.symlink(outside / "secret.jpg", root / "link_file.jpg")
    os.symlink("in.jpg", root / "alias.jpg")  # inside: not counted as leaving
    sc = Scanner([root])
    assert names(list(sc), root) == {"in.jpg"}
    assert sc.stats.links_outside == 2
    assert sc.stats.errors == []


def test_unresolvable_links_are_errors_not_crashes(draw, tmp_path: Path) -> None:
    root = tmp_path / "root"
    draw(root / "good.jpg")
    os.symlink("loop_b", root / "loop_a.jpg")  # ELOOP
    os.symlink("loop_a.jpg", root / "loop_b")
    os.symlink("/proc/1/root/etc/x.jpg", root / "proc.jpg")  # resolving it may be refused
    os.symlink(root / "nothing_there.jpg", root / "dangling.jpg")
    sc = Scanner([root])
    assert names(list(sc), root) == {"good.jpg"}
    failed = {os.path.basename(p): reason for p, reason in sc.stats.errors}
    assert {"loop_a.jpg", "loop_b", "dangling.jpg"} <= set(failed)
    assert "symbolic link" in failed["loop_a.jpg"].lower()
    # /proc/1/root is out of the root when it resolves, an error when it does not
    assert ("proc.jpg" in failed) != (sc.stats.links_outside == 1)


def test_symlink_into_a_hidden_folder_inside_the_root_is_followed(draw, tmp_path: Path) -> None:
    root = tmp_path / "root"
    draw(root / ".stash" / "s.jpg")
    os.symlink(".stash", root / "visible")
    found = list(Scanner([root]))
    assert names(found, root) == {"visible/s.jpg"}


def test_symlink_between_roots_reports_the_real_root(draw, tmp_path: Path) -> None:
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    draw(r1 / "x.jpg")
    draw(r2 / "sub" / "y.jpg", seed=3)
    os.symlink(r2 / "sub", r1 / "link_to_r2")
    found = {os.path.relpath(i.path, tmp_path): i.root for i in Scanner([r1, r2])}
    assert found == {"r1/x.jpg": str(r1), "r2/sub/y.jpg": str(r2)}


# --------------------------------------------------------------------------- odd names


def test_non_utf8_file_name_round_trips(draw, tmp_path: Path) -> None:
    raw_dir = os.fsencode(tmp_path) + b"/d\xe9j\xe0"
    raw = raw_dir + b"/caf\xe9 \xff.jpg"
    try:
        os.mkdir(raw_dir)
        draw(raw, "jpeg")
    except (OSError, UnicodeError) as exc:  # the filesystem refuses such names
        pytest.skip(f"filesystem refuses non-UTF-8 names: {exc}")
    (info,) = list(Scanner([tmp_path]))
    assert isinstance(info.path, str)
    assert os.fsencode(info.path) == raw
    assert info.format == "jpeg" and info.size == os.stat(raw).st_size
    assert content_hash(info.path) == content_hash(raw)


# --------------------------------------------------------------------------- incomplete scans


def test_missing_root_and_cancel_mark_incomplete(draw, tmp_path: Path) -> None:
    draw(tmp_path / "here" / "a.jpg")
    gone = tmp_path / "unplugged_drive"
    sc = Scanner([tmp_path / "here", gone])
    assert len(list(sc)) == 1
    assert sc.stats.missing_roots == [str(gone)]
    assert sc.incomplete_paths == [str(gone)] and [p for p, _ in sc.stats.errors] == [str(gone)]

    for i in range(5):
        draw(tmp_path / "here" / f"b{i}.jpg", seed=i)
    calls = iter(range(100))
    sc = Scanner([tmp_path / "here"], cancel=lambda: next(calls) >= 2)
    assert len(list(sc)) <= 2
    assert sc.stats.cancelled and sc.incomplete_paths == [str(tmp_path / "here")]


def test_unreadable_files_and_folders_are_errors(draw, open_tmp: Path) -> None:
    root = open_tmp / "root"
    draw(root / "ok.jpg")
    draw(root / "locked" / "inside.jpg", seed=1)
    draw(root / "secret.jpg", seed=2)
    (root / "locked").chmod(0o000)
    (root / "secret.jpg").chmod(0o000)

    def scan_it() -> tuple[set[str], dict[str, str], list[str]]:
        sc = Scanner([root])
        found = names(list(sc), root)
        errors = {os.path.relpath(p, root): reason for p, reason in sc.stats.errors}
        return found, errors, sorted(os.path.relpath(p, root) for p in sc.incomplete_paths)

    found, errors, incomplete = run_unprivileged(scan_it)
    assert found == {"ok.jpg"}
    assert set(errors) == {"locked", "secret.jpg"}
    assert all("permission denied" in r.lower() for r in errors.values()), errors
    # neither may be taken for deleted: what the store knows there stays
    assert incomplete == ["locked", "secret.jpg"]


# --------------------------------------------------------------------------- hashing


def test_content_hash(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    payload = os.urandom(5 * MIB)
    a.write_bytes(payload)
    b.write_bytes(payload)
    assert content_hash(a) == content_hash(b) and len(content_hash(a)) == 32
    middle = bytearray(payload)
    middle[len(payload) // 2] ^= 0xFF  # inside the sampled middle block
    b.write_bytes(bytes(middle))
    assert content_hash(a) != content_hash(b)
    b.write_bytes(payload + b"x")  # size is part of the hash
    assert content_hash(a) != content_hash(b)
    small = tmp_path / "s.bin"
    small.write_bytes(b"abc" * 100)
    before = content_hash(small)
    small.write_bytes(b"abc" * 99 + b"abd")  # small files are hashed whole
    assert content_hash(small) != before


def test_content_hash_is_blake2b_of_the_whole_file(tmp_path: Path) -> None:
    """A one-byte edit anywhere, e.g. between the blocks a sampled hash would read, counts."""
    import hashlib

    path = tmp_path / "big.bin"
    payload = bytearray(os.urandom(7 * MIB))
    path.write_bytes(payload)
    assert content_hash(path) == hashlib.blake2b(payload, digest_size=16).hexdigest()
    before = content_hash(path)
    for offset in (MIB + 17, len(payload) // 2 - MIB, len(payload) - MIB - 1):
        edited = bytearray(payload)
        edited[offset] ^= 0x01  # same size, outside a start/middle/end sample
        path.write_bytes(edited)
        assert content_hash(path) != before, offset
        assert content_hash(path) == hashlib.blake2b(edited, digest_size=16).hexdigest()


# --------------------------------------------------------------------------- planning


def known_from(infos: list[FileInfo], *, embedded: bool = True) -> dict[str, KnownFile]:
    return {
        info.path: KnownFile(
            n + 1, info.path, info.size, info.mtime_ns, content_hash(info.path), 1, embedded
        )
        for n, info in enumerate(sorted(infos, key=lambda i: i.path))
    }


def bump_mtime(path: Path, seconds: int = 100) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


class Fail:
    def __init__(self, path: Path, size: int | None, mtime_ns: int | None) -> None:
        self.path, self.size, self.mtime_ns = str(path), size, mtime_ns


def test_plan_changes_classifies_everything(draw, tmp_path: Path) -> None:
    for name, seed in [("same", 1), ("edit", 2), ("touch", 3), ("move", 4), ("gone", 5)]:
        draw(tmp_path / f"{name}.jpg", seed=seed, size=(64, 40))
    draw(tmp_path / "noembed.jpg", seed=6)
    known = known_from(list(Scanner([tmp_path])))
    noembed = known[str(tmp_path / "noembed.jpg")]
    known[noembed.path] = KnownFile(noembed.id, noembed.path, noembed.size, noembed.mtime_ns,
                                    noembed.hash, 1, embedded=False)  # fmt: skip

    draw(tmp_path / "edit.jpg", seed=20, size=(64, 40))
    bump_mtime(tmp_path / "edit.jpg")
    bump_mtime(tmp_path / "touch.jpg")
    os.makedirs(tmp_path / "moved_here")
    os.rename(tmp_path / "move.jpg", tmp_path / "moved_here" / "move.jpg")
    os.remove(tmp_path / "gone.jpg")
    draw(tmp_path / "new.jpg", seed=7)
    draw(tmp_path / "broken.jpg", seed=8)
    draw(tmp_path / "retry.jpg", seed=9)
    broken, retry = os.stat(tmp_path / "broken.jpg"), os.stat(tmp_path / "retry.jpg")
    failures = [
        Fail(tmp_path / "broken.jpg", broken.st_size, broken.st_mtime_ns),
        Fail(tmp_path / "retry.jpg", retry.st_size, retry.st_mtime_ns - 1),
        Fail(tmp_path / "deleted_long_ago.jpg", 10, 10),
    ]

    plan = plan_changes(Scanner([tmp_path]), known, failures={f.path: f for f in failures})
    rel = lambda p: os.path.relpath(p, tmp_path)  # noqa: E731
    assert sorted(rel(i.path) for i in plan.new) == ["new.jpg", "retry.jpg"]
    assert [rel(i.path) for i, _ in plan.changed] == ["edit.jpg"]
    assert [rel(i.path) for i, _ in plan.touched] == ["touch.jpg"]
    assert [(rel(m.old.path), rel(m.new.path)) for m in plan.moved] == [
        ("move.jpg", "moved_here/move.jpg")
    ]
    assert plan.moved[0].old.id == known[str(tmp_path / "move.jpg")].id
    assert [rel(k.path) for k in plan.removed] == ["gone.jpg"]
    assert [rel(i.path) for i, _ in plan.missing] == ["noembed.jpg"]
    assert [rel(i.path) for i in plan.failed] == ["broken.jpg"]
    assert plan.stale_failures == [str(tmp_path / "deleted_long_ago.jpg")]
    assert plan.unchanged == 1  # same.jpg
    assert sorted(rel(i.path) for i in plan.to_embed()) == [
        "edit.jpg", "new.jpg", "noembed.jpg", "retry.jpg"
    ]  # fmt: skip
    assert plan.hashes[str(tmp_path / "moved_here" / "move.jpg")] == plan.moved[0].old.hash
    assert plan.summary()["moved"] == 1


def test_plan_changes_hashes_only_when_needed(draw, tmp_path: Path) -> None:
    draw(tmp_path / "a.jpg", seed=1)
    known = known_from(list(Scanner([tmp_path])))
    draw(tmp_path / "b.jpg", seed=2, size=(30, 30))  # no vanished file of its size
    hashed: list[str] = []
    plan = plan_changes(Scanner([tmp_path]), known, hash_fn=lambda p: hashed.append(p) or "h")
    assert [os.path.basename(i.path) for i in plan.new] == ["b.jpg"] and hashed == []


def test_plan_changes_duplicates_pair_once_and_incomplete_protects(draw, tmp_path: Path) -> None:
    draw(tmp_path / "d1.jpg", seed=4)
    draw(tmp_path / "d2.jpg", seed=4)  # identical content
    draw(tmp_path / "offline" / "o.jpg", seed=5)
    known = known_from(list(Scanner([tmp_path])))
    os.rename(tmp_path / "d1.jpg", tmp_path / "d1_renamed.jpg")
    os.remove(tmp_path / "d2.jpg")
    plan = plan_changes(
        [i for i in Scanner([tmp_path]) if "offline" not in i.path],
        known,
        incomplete=[str(tmp_path / "offline")],
    )
    assert len(plan.moved) == 1 and len(plan.removed) == 1 and not plan.new
    assert {os.path.basename(plan.moved[0].old.path)} <= {"d1.jpg", "d2.jpg"}
    assert "offline" not in plan.removed[0].path


def test_plan_changes_first_scan_is_all_new(draw, tmp_path: Path) -> None:
    for i in range(3):
        draw(tmp_path / f"{i}.png", "png", seed=i)
    plan = plan_changes(Scanner([tmp_path]), {})
    assert len(plan.new) == 3 and not plan.removed and not plan.moved and plan.unchanged == 0
