"""Image loading (orientation, colour modes, draft decoding, safety) and preprocessing."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lotlip.transforms import ImageLoadError, Preprocess, load_image, resize_shortest_side


def save(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def rgb(im: Image.Image) -> np.ndarray:
    assert im.mode == "RGB"
    return np.asarray(im, dtype=np.float64)


# -- orientation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("orientation", "turns"), [(1, 0), (3, 2), (6, -1), (8, 1)])
def test_exif_orientation_is_applied(
    make_image, encode_image, orientation: int, turns: int
) -> None:
    stored = make_image(64, 40, seed=3)
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    data = encode_image(stored, "JPEG", quality=95, exif=exif.tobytes())
    loaded = rgb(load_image(io.BytesIO(data)))
    # what a viewer shows: 6 = turn 90° clockwise, 8 = 90° counter-clockwise, 3 = 180°
    expected = np.rot90(np.asarray(stored, dtype=np.float64), k=turns)
    assert loaded.shape == expected.shape
    assert np.abs(loaded - expected).mean() < 3
    if turns:  # and not simply left as stored
        unrotated = np.asarray(stored, dtype=np.float64)
        assert unrotated.shape != loaded.shape or np.abs(loaded - unrotated).mean() > 20


# -- colour modes ---------------------------------------------------------------------------------
def test_rgba_is_composited_on_white(tmp_path: Path, encode_image) -> None:
    pixels = np.array(
        [[[255, 0, 0, 0], [0, 0, 255, 255], [0, 255, 0, 128], [10, 20, 30, 64]]], dtype=np.uint8
    )
    path = save(tmp_path / "a.png", encode_image(Image.fromarray(pixels, "RGBA"), "PNG"))
    out = rgb(load_image(path))
    alpha = pixels[..., 3:].astype(np.float64) / 255
    expected = pixels[..., :3] * alpha + 255 * (1 - alpha)
    np.testing.assert_allclose(out, expected, atol=1.01)
    assert out[0, 0].tolist() == [255, 255, 255]  # fully transparent red is white, not red or black


def test_gray_alpha_is_composited_on_white(tmp_path: Path, encode_image) -> None:
    pixels = np.array([[[0, 0], [0, 255], [200, 128]]], dtype=np.uint8)
    path = save(tmp_path / "la.png", encode_image(Image.fromarray(pixels, "LA"), "PNG"))
    out = rgb(load_image(path))
    np.testing.assert_allclose(out[0, :, 0], [255, 0, 200 * 128 / 255 + 255 * 127 / 255], atol=1.01)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_white(tmp_path: Path, encode_image, fmt: str) -> None:
    im = Image.new("P", (4, 2), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))
    im.putpixel((1, 0), 1)
    im.putpixel((3, 1), 1)
    path = save(tmp_path / f"p.{fmt.lower()}", encode_image(im, fmt, transparency=0))
    assert Image.open(path).mode == "P"
    out = rgb(load_image(path))
    blue = np.zeros((2, 4), dtype=bool)
    blue[0, 1] = blue[1, 3] = True
    assert (out[blue] == [0, 0, 255]).all()
    assert (out[~blue] == [255, 255, 255]).all()  # the transparent red index


def test_cmyk_jpeg(tmp_path: Path, encode_image) -> None:
    im = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # pure red in CMYK
    path = save(tmp_path / "cmyk.jpg", encode_image(im, "JPEG", quality=95))
    assert Image.open(path).mode == "CMYK"
    out = rgb(load_image(path, 224))
    np.testing.assert_allclose(out.reshape(-1, 3).mean(0), [255, 0, 0], atol=4)


def test_16_bit_png_is_scaled_not_clipped(tmp_path: Path, encode_image) -> None:
    values = np.array([[0, 1000, 30000, 65535]], dtype=np.uint16).repeat(3, axis=0)
    path = save(tmp_path / "deep.png", encode_image(Image.fromarray(values), "PNG"))
    assert Image.open(path).mode.startswith("I")
    out = rgb(load_image(path))
    assert out.shape == (3, 4, 3)
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    np.testing.assert_allclose(out[0, :, 0], values[0] / 65535 * 255, atol=1.01)


def test_grayscale_and_rgb_pass_through(tmp_path: Path, make_image, encode_image) -> None:
    im = make_image(20, 10, seed=4)
    path = save(tmp_path / "x.png", encode_image(im, "PNG"))
    out = load_image(path)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(im))  # usable after the file closed
    gray = Image.fromarray(np.arange(200, dtype=np.uint8).reshape(10, 20), "L")
    out = rgb(load_image(save(tmp_path / "g.png", encode_image(gray, "PNG"))))
    np.testing.assert_array_equal(out[..., 1], np.asarray(gray))


# -- JPEG draft decoding --------------------------------------------------------------------------
def test_jpeg_draft_decodes_small_but_large_enough(
    tmp_path: Path, make_image, encode_image
) -> None:
    big = make_image(2000, 1500, seed=5)
    path = save(tmp_path / "big.jpg", encode_image(big, "JPEG", quality=92))
    full = load_image(path)
    assert full.size == (2000, 1500)
    for size in (224, 336, 700):
        small = load_image(path, size)
        assert min(small.size) >= size, (size, small.size)
        assert min(small.size) < 1500 and small.size[0] / small.size[1] == pytest.approx(
            4 / 3, 0.01
        )
    drafted = load_image(path, 224)
    assert max(drafted.size) <= 500  # 1/4 scale or smaller: the whole point

    pre = Preprocess(224)
    a, b = pre(drafted).flatten(), pre(full).flatten()
    assert (a - b).abs().mean() < 0.02
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.999


def test_png_is_not_drafted(tmp_path: Path, make_image, encode_image) -> None:
    path = save(tmp_path / "big.png", encode_image(make_image(900, 600), "PNG"))
    assert load_image(path, 224).size == (900, 600)


# -- refusing bad files ---------------------------------------------------------------------------
def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (8-bit RGB); its data is one row."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def test_pixel_limit(tmp_path: Path, make_image, encode_image) -> None:
    path = save(tmp_path / "x.png", encode_image(make_image(100, 100), "PNG"))
    with pytest.raises(ImageLoadError, match="bomb"):
        load_image(path, max_pixels=9_999)
    assert load_image(path, max_pixels=10_000).size == (100, 100)


@pytest.mark.parametrize(
    ("width", "height", "max_pixels"),
    [(100_000, 100_000, None), (20_000, 10_000, None), (5_000, 4_000, 10_000_000)],
)
def test_huge_header_is_refused_before_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, width: int, height: int, max_pixels: int | None
) -> None:
    path = save(tmp_path / "bomb.png", png_claiming(width, height))
    assert path.stat().st_size < 200
    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    with pytest.raises(ImageLoadError, match=r"(?i)bomb"):
        load_image(path, **kwargs)
    with monkeypatch.context() as patched:
        patched.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own guard off
        with Image.open(path) as im:
            assert im.size == (width, height)  # the header really says so
        with pytest.raises(ImageLoadError, match=r"(?i)bomb"):
            load_image(path, **kwargs)  # our guard alone


def test_truncated_jpeg(tmp_path: Path, make_image, encode_image) -> None:
    data = encode_image(make_image(300, 200), "JPEG", quality=90)
    path = save(tmp_path / "cut.jpg", data[: len(data) // 2])
    with pytest.raises(ImageLoadError):
        load_image(path)
    with pytest.raises(ImageLoadError):
        load_image(path, 64)


def test_truncated_png(tmp_path: Path, make_image, encode_image) -> None:
    data = encode_image(make_image(300, 200), "PNG")
    with pytest.raises(ImageLoadError):
        load_image(save(tmp_path / "cut.png", data[: len(data) // 2]))


@pytest.mark.parametrize("content", [b"", b"this is not an image\n"], ids=["empty", "text"])
def test_not_an_image(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(ImageLoadError):
        load_image(save(tmp_path / "x.jpg", content))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError):
        load_image(tmp_path / "missing.jpg")


# -- preprocessing --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("width", "height", "size", "expected"),
    [
        (301, 157, 224, (429, 224)),
        (157, 301, 224, (224, 429)),
        (100, 50, 224, (448, 224)),
        (33, 50, 32, (32, 48)),
        (313, 157, 224, (446, 224)),  # the long side 446.57 is truncated, as torchvision does
    ],
)
def test_shortest_side_becomes_size(width: int, height: int, size: int, expected) -> None:
    assert resize_shortest_side(Image.new("RGB", (width, height)), size).size == expected


def coordinate_image(width: int, height: int) -> Image.Image:
    """Red = x, green = y, blue = 7: every pixel says where it was."""
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    pixels = np.stack([x, y, np.full_like(x, 7)], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


@pytest.mark.parametrize(
    ("width", "height", "left", "top"),
    [
        (224, 224, 0, 0),
        (226, 224, 1, 0),
        (225, 224, 0, 0),  # offset 0.5 rounds half to even: 0
        (227, 224, 2, 0),  # offset 1.5 rounds to 2
        (224, 229, 0, 2),  # offset 2.5 rounds to 2
    ],
)
def test_center_crop_offsets(width: int, height: int, left: int, top: int) -> None:
    """No resize (the shortest side is already 224): the crop alone decides each pixel."""
    out = Preprocess(224)(coordinate_image(width, height))
    assert out.dtype == torch.float32 and out.shape == (3, 224, 224)
    pixel = (out[:, [0, 223], [0, 223]] + 1) * 127.5  # back to 0..255: top-left, bottom-right
    torch.testing.assert_close(
        pixel, torch.tensor([[left, left + 223], [top, top + 223], [7, 7]]).float()
    )


@pytest.mark.parametrize("portrait", [False, True])
def test_resize_then_centre_crop_of_a_two_tone_image(portrait: bool) -> None:
    """400x200, black left of x=200 and white right of it: resized to 448x224, the middle 224
    columns are cropped, so the edge lands in the middle of the output."""
    pixels = np.zeros((200, 400, 3), np.uint8)
    pixels[:, 200:] = 255
    if portrait:
        pixels = pixels.transpose(1, 0, 2).copy()
    out = Preprocess(224)(Image.fromarray(pixels, "RGB"))
    if portrait:
        out = out.transpose(1, 2)
    assert out.shape == (3, 224, 224)
    assert torch.equal(out[:, :, :100], -torch.ones(3, 224, 100))
    assert torch.equal(out[:, :, 124:], torch.ones(3, 224, 100))


def test_preprocess_range_and_normalization() -> None:
    pre = Preprocess(16)
    assert torch.equal(pre(Image.new("RGB", (20, 16), (255, 255, 255))), torch.ones(3, 16, 16))
    assert torch.equal(pre(Image.new("RGB", (16, 30), (0, 0, 0))), -torch.ones(3, 16, 16))
    noise = np.random.default_rng(0).integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    out = pre(Image.fromarray(noise, "RGB"))
    assert out.min() >= -1 and out.max() <= 1 and out.min() < -0.9 and out.max() > 0.9
    grey = pre(Image.new("RGB", (16, 16), (128, 0, 255)))
    torch.testing.assert_close(grey[:, 0, 0], torch.tensor([128 / 127.5 - 1, -1.0, 1.0]))


def test_preprocess_batch_and_modes(make_image) -> None:
    pre = Preprocess(32)
    images = [make_image(40, 32, seed=1), make_image(32, 64, seed=2).convert("RGBA")]
    batch = pre.batch(images)
    assert batch.shape == (2, 3, 32, 32)
    torch.testing.assert_close(batch[1], pre(images[1].convert("RGB")), rtol=0, atol=0)
