"""The one "is this path inside that folder" rule (app.library.paths)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.library.paths import absolute, innermost, is_within, is_within_any
from app.library.store import Folder


@pytest.mark.parametrize(
    ("path", "folder", "inside"),
    [
        ("/photos", "/photos", True),
        ("/photos/2020/a.jpg", "/photos", True),
        ("/photos/2020", "/photos/2020", True),
        ("/photos2020/a.jpg", "/photos", False),  # same start, other folder
        ("/photos-old", "/photos", False),
        ("/photo", "/photos", False),
        ("/photos", "/photos/2020", False),  # a parent is not inside its child
        ("/photos/trips/2020", "/photos/2020", False),
        ("/a/b", "/", True),
        ("/", "/", True),
    ],
)
def test_separators_and_prefixes(path: str, folder: str, inside: bool) -> None:
    assert is_within(path, folder) is inside


@pytest.mark.parametrize(
    ("path", "folder"),
    [("/photos/a.jpg", "/photos/"), ("/photos/", "/photos"), ("/photos//", "/photos/")],
)
def test_trailing_separators_do_not_matter(path: str, folder: str) -> None:
    assert is_within(path, folder)


@pytest.mark.skipif(os.name == "nt", reason="POSIX file names are case-sensitive")
def test_case_is_exact_on_posix() -> None:
    assert not is_within("/Photos/a.jpg", "/photos")
    assert not is_within("/photos/a.jpg", "/PHOTOS")


def test_non_utf8_bytes_and_their_text_spelling() -> None:
    folder = b"/data/caf\xe9"  # latin-1, not valid UTF-8
    inside = folder + b"/\xff.jpg"
    assert is_within(inside, folder)
    assert not is_within(b"/data/caf\xe9s/x.jpg", folder)
    # the same paths as surrogate-escaped text give the same answers
    assert is_within(os.fsdecode(inside), os.fsdecode(folder))
    assert not is_within(os.fsdecode(b"/data/caf\xe9s/x.jpg"), os.fsdecode(folder))


def test_symlinks_are_judged_by_spelling_until_resolved(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "elsewhere"
    root.mkdir()
    outside.mkdir()
    link = root / "link"
    link.symlink_to(outside)
    # lexically the link lies in the root; its target does not
    assert is_within(str(link), str(root))
    assert not is_within(os.path.realpath(link), os.path.realpath(root))
    # and a link from outside into the root resolves to inside it
    back = outside / "back"
    back.symlink_to(root / "sub", target_is_directory=True)
    (root / "sub").mkdir()
    assert not is_within(str(back), str(root))
    assert is_within(os.path.realpath(back), os.path.realpath(root))


def test_any() -> None:
    assert is_within_any("/b/x", ["/a", "/b"])
    assert not is_within_any("/c/x", ["/a", "/b"])
    assert not is_within_any("/c/x", [])


def test_innermost_folder_holds_the_path_most_closely() -> None:
    outer, inner, other = (Folder(i, p, (), "") for i, p in enumerate(["/p", "/p/2020", "/p2"]))
    folders = [inner, other, outer]
    assert innermost("/p/2020/a.jpg", folders) is inner
    assert innermost("/p/2020", folders) is inner
    assert innermost("/p/2021/b.jpg", folders) is outer
    assert innermost("/p20/c.jpg", folders) is None
    assert innermost("/p/2020/a.jpg", ["/p", "/p/2020/", "/p2"]) == "/p/2020/"  # plain paths too


def test_absolute_spells_a_path_as_the_library_stores_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert absolute(Path("a") / ".." / "b.jpg") == str(tmp_path / "b.jpg")  # lexical
    raw = os.fsencode(str(tmp_path)) + b"/caf\xe9"  # not UTF-8: kept byte for byte
    assert os.fsencode(absolute(os.fsdecode(raw))) == raw
