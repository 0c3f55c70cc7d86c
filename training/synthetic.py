"""Procedural scenes that recreate LoTLIP's "token overshadowing" in miniature.

Every scene has a background and 2-5 shapes. Exactly one shape, the *salient* one, is large and
drawn first; the others are medium or small. Each scene carries

* a **short caption** naming only the salient shape ("a large red circle"), the kind of text a
  classic alt-text dataset would give, and
* several **long captions**: paragraphs whose sentences (joined with ". ") describe the
  background and every shape (colour, shape, size, pattern and position), in varied phrasing and
  object order.

A model trained only on the long captions tends to let the many minor details overshadow the
salient object, which is what LoTLIP's corner tokens are meant to fix; zero-shot classification
of the salient object (:func:`label_index`, :func:`zero_shot_prompts`) measures that.

Everything is a pure function of an integer seed: :func:`make_scene` with the same seed always
gives the same objects, captions and pixels. Training seeds live below
:data:`HELDOUT_SEED_OFFSET` and held-out seeds at or above it, so the two never overlap.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

logger = logging.getLogger(__name__)


# -- Vocabulary ------------------------------------------------------------------------------------
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "ring",
    "cross",
    "diamond",
    "hexagon",
)

#: Object colours: name -> sRGB. Chosen to be far apart from each other.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 32, 38),
    "orange": (246, 140, 22),
    "yellow": (246, 218, 30),
    "green": (36, 168, 64),
    "blue": (32, 84, 222),
    "purple": (128, 48, 178),
    "pink": (246, 124, 186),
    "brown": (128, 78, 38),
    "white": (250, 250, 250),
    "black": (18, 18, 18),
}

#: Background colours: name -> sRGB. Object colours too close to the background are never used.
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {
    "light grey": (204, 204, 204),
    "cream": (243, 234, 206),
    "pale blue": (196, 218, 240),
    "pale green": (204, 234, 204),
    "lavender": (222, 212, 240),
    "dark grey": (66, 66, 70),
    "navy": (28, 34, 84),
}

BACKGROUND_STYLES: tuple[str, ...] = ("plain", "gradient", "checkered")

#: Size name -> radius as a fraction of the image side (the cell of the 3x3 grid is 1/3).
SIZES: dict[str, float] = {"large": 0.16, "medium": 0.105, "small": 0.07}

PATTERNS: tuple[str, ...] = ("solid", "striped", "dotted", "outlined")

#: Named regions of a 3x3 grid: name -> (column, row).
POSITIONS: dict[str, tuple[int, int]] = {
    "top left": (0, 0),
    "top": (1, 0),
    "top right": (2, 0),
    "left": (0, 1),
    "centre": (1, 1),
    "right": (2, 1),
    "bottom left": (0, 2),
    "bottom": (1, 2),
    "bottom right": (2, 2),
}

ZERO_SHOT_TEMPLATE = "a photo of a {colour} {shape}"

#: Seeds at or above this value are held out (evaluation); training uses seeds below it.
HELDOUT_SEED_OFFSET = 10_000_000

_MIN_BACKGROUND_DISTANCE = 110.0
_NUMBER_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}

_LOCATION_PHRASES: dict[str, tuple[str, ...]] = {
    "top left": ("in the top left corner", "at the top left"),
    "top": ("at the top", "near the top edge"),
    "top right": ("in the top right corner", "at the top right"),
    "left": ("on the left", "on the left side"),
    "centre": ("in the centre", "at the centre of the picture"),
    "right": ("on the right", "on the right side"),
    "bottom left": ("in the bottom left corner", "at the bottom left"),
    "bottom": ("at the bottom", "near the bottom edge"),
    "bottom right": ("in the bottom right corner", "at the bottom right"),
}

_PATTERN_WITH: dict[str, tuple[str, ...]] = {
    "solid": ("with a solid fill", "in solid colour"),
    "striped": ("with diagonal stripes", "covered in stripes"),
    "dotted": ("with a dotted pattern", "covered in dots"),
    "outlined": ("drawn only as an outline", "shown as a thick outline"),
}

_PATTERN_STATE: dict[str, tuple[str, ...]] = {
    "solid": ("it is filled solid", "it is a solid shape"),
    "striped": ("it is striped", "it has stripes"),
    "dotted": ("it is dotted", "it has dots"),
    "outlined": ("it is outlined", "only its outline is drawn"),
}

_OBJECT_TEMPLATES: tuple[str, ...] = (
    "A {size} {pattern} {colour} {shape} sits {loc}",
    "{Loc}, there is a {size} {colour} {shape} {pattern_with}",
    "There is a {size} {colour} {shape} {loc}, and {pattern_state}",
    "{Loc} you can see a {size} {pattern} {colour} {shape}",
    "A {size} {colour} {shape} {pattern_with} is placed {loc}",
)

_INTRO_TEMPLATES: tuple[str, ...] = (
    "The image shows {count} shapes on a {background} background",
    "{Count} simple shapes are arranged on a {background} background",
    "This is a picture of {count} flat shapes over a {background} background",
)

_BACKGROUND_TEMPLATES: tuple[str, ...] = (
    "The background is {background_long}",
    "Behind the shapes, the background is {background_long}",
)

_LARGEST_TEMPLATES: tuple[str, ...] = (
    "The largest shape is the {colour} {shape}",
    "The {colour} {shape} is the biggest and most prominent shape",
    "The most prominent object is the {colour} {shape}",
)

_RELATION_TEMPLATE = "The {colour_a} {shape_a} is {relation} the {colour_b} {shape_b}"


# -- Data classes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneObject:
    """One shape in a scene; coordinates are fractions of the image side (0..1)."""

    shape: str
    colour: str
    size: str
    position: str
    pattern: str
    x: float
    y: float
    radius: float
    rotation: float = 0.0

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The object's colour as an sRGB triple."""
        return COLOURS[self.colour]

    @property
    def label(self) -> str:
        """The zero-shot class of this object: ``"{colour} {shape}"``."""
        return f"{self.colour} {self.shape}"

    def phrase(self) -> str:
        """A short noun phrase such as ``"a large red circle"``."""
        return f"a {self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Background:
    """The scene background: a named colour and a style (plain, gradient or checkered)."""

    colour: str
    style: str

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The background colour as an sRGB triple."""
        return BACKGROUND_COLOURS[self.colour]

    def short_description(self) -> str:
        """E.g. ``"plain cream"``, ``"pale blue gradient"``, ``"navy checkered"``."""
        if self.style == "plain":
            return f"plain {self.colour}"
        return f"{self.colour} {self.style}"

    def long_description(self) -> str:
        """A phrase that can follow "The background is"."""
        if self.style == "plain":
            return f"a plain, even {self.colour}"
        if self.style == "gradient":
            return f"a soft {self.colour} gradient that changes shade from top to bottom"
        return f"a faint {self.colour} checkered pattern"


@dataclass
class Scene:
    """A procedurally generated scene; ``objects[0]`` is the salient (largest) object."""

    seed: int
    background: Background
    objects: tuple[SceneObject, ...]
    long_captions: list[str] = field(default_factory=list)
    short_caption: str = ""

    @property
    def salient(self) -> SceneObject:
        """The largest, most prominent object (always drawn first)."""
        return self.objects[0]

    @property
    def label(self) -> str:
        """The zero-shot label of the salient object."""
        return self.salient.label

    def render(self, size: int = 224) -> Image.Image:
        """Draw the scene as an RGB image of ``size`` x ``size`` pixels (anti-aliased)."""
        return _render_scene(self, size)


# -- Seeds -----------------------------------------------------------------------------------------
def heldout_seeds(count: int, start: int = 0) -> range:
    """Held-out seeds: ``HELDOUT_SEED_OFFSET + start`` onwards; never overlaps training seeds."""
    if start < 0:
        raise ValueError("start must be >= 0")
    return range(HELDOUT_SEED_OFFSET + start, HELDOUT_SEED_OFFSET + start + count)


# -- Scene generation ------------------------------------------------------------------------------
def _visible_colours(background: Background) -> list[str]:
    """Object colours that stand out against the background."""
    return [
        name
        for name, rgb in COLOURS.items()
        if math.dist(rgb, background.rgb) >= _MIN_BACKGROUND_DISTANCE
    ]


def _place(rng: random.Random, position: str, radius: float) -> tuple[float, float]:
    """Centre of an object in a grid cell, jittered so it never leaves the cell."""
    col, row = POSITIONS[position]
    slack = max(0.0, 1.0 / 6.0 - radius) * 0.6
    x = (col + 0.5) / 3.0 + rng.uniform(-slack, slack)
    y = (row + 0.5) / 3.0 + rng.uniform(-slack, slack)
    return x, y


def make_scene(seed: int) -> Scene:
    """Build the scene for ``seed`` (deterministic: same seed, same scene and captions)."""
    rng = random.Random(seed)
    background = Background(
        colour=rng.choice(list(BACKGROUND_COLOURS)),
        style=rng.choice(BACKGROUND_STYLES),
    )
    colours = _visible_colours(background)
    count = rng.randint(2, 5)
    positions = rng.sample(list(POSITIONS), count)
    used_labels: set[tuple[str, str]] = set()
    objects: list[SceneObject] = []
    for i, position in enumerate(positions):
        size = "large" if i == 0 else rng.choice(("medium", "small"))
        while True:
            colour, shape = rng.choice(colours), rng.choice(SHAPES)
            if (colour, shape) not in used_labels:
                break
        used_labels.add((colour, shape))
        radius = SIZES[size] * rng.uniform(0.93, 1.0)
        x, y = _place(rng, position, radius)
        objects.append(
            SceneObject(
                shape=shape,
                colour=colour,
                size=size,
                position=position,
                pattern=rng.choice(PATTERNS),
                x=x,
                y=y,
                radius=radius,
                rotation=rng.uniform(-15.0, 15.0),
            )
        )
    scene = Scene(seed=seed, background=background, objects=tuple(objects))
    scene.short_caption = scene.salient.phrase()
    scene.long_captions = [_long_caption(scene, rng, variant) for variant in range(3)]
    return scene


def make_scenes(start_seed: int, count: int) -> list[Scene]:
    """Scenes for seeds ``start_seed .. start_seed+count-1``."""
    return [make_scene(seed) for seed in range(start_seed, start_seed + count)]


# -- Captions --------------------------------------------------------------------------------------
def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def _object_sentence(obj: SceneObject, rng: random.Random) -> str:
    loc = rng.choice(_LOCATION_PHRASES[obj.position])
    template = rng.choice(_OBJECT_TEMPLATES)
    return template.format(
        size=obj.size,
        pattern=obj.pattern,
        colour=obj.colour,
        shape=obj.shape,
        loc=loc,
        Loc=_capitalise(loc),
        pattern_with=rng.choice(_PATTERN_WITH[obj.pattern]),
        pattern_state=rng.choice(_PATTERN_STATE[obj.pattern]),
    )


def _relation(a: SceneObject, b: SceneObject) -> str:
    (ca, ra), (cb, rb) = POSITIONS[a.position], POSITIONS[b.position]
    vertical = "above" if ra < rb else "below" if ra > rb else ""
    horizontal = "to the left of" if ca < cb else "to the right of" if ca > cb else ""
    if vertical and horizontal:
        return f"{vertical} and {horizontal}"
    return vertical or horizontal


def _reading_order(objects: Iterable[SceneObject]) -> list[SceneObject]:
    return sorted(objects, key=lambda o: (POSITIONS[o.position][1], POSITIONS[o.position][0]))


def _long_caption(scene: Scene, rng: random.Random, variant: int) -> str:
    """One paraphrase; variants differ in object order (salient first, reading order, random)."""
    objects = list(scene.objects)
    if variant == 0:
        ordered = [objects[0], *_reading_order(objects[1:])]
    elif variant == 1:
        ordered = _reading_order(objects)
    else:
        ordered = objects[:]
        rng.shuffle(ordered)

    count_word = _NUMBER_WORDS[len(objects)]
    sentences = [
        rng.choice(_INTRO_TEMPLATES).format(
            count=count_word,
            Count=_capitalise(count_word),
            background=scene.background.short_description(),
        )
    ]
    if rng.random() < 0.5:
        sentences.append(
            rng.choice(_BACKGROUND_TEMPLATES).format(
                background_long=scene.background.long_description()
            )
        )
    sentences.extend(_object_sentence(obj, rng) for obj in ordered)
    if rng.random() < 0.6:
        a, b = rng.sample(objects, 2)
        sentences.append(
            _RELATION_TEMPLATE.format(
                colour_a=a.colour,
                shape_a=a.shape,
                relation=_relation(a, b),
                colour_b=b.colour,
                shape_b=b.shape,
            )
        )
    if rng.random() < 0.5:
        sentences.append(
            rng.choice(_LARGEST_TEMPLATES).format(
                colour=scene.salient.colour, shape=scene.salient.shape
            )
        )
    return ". ".join(sentences) + "."


# -- Shape twins ----------------------------------------------------------------------------------
def _label_pattern(label: str) -> re.Pattern[str]:
    return re.compile(rf"\b{re.escape(label)}\b", re.IGNORECASE)


def names_label(text: str, label: str) -> bool:
    """Whether ``text`` names the object label (``"red circle"``) as whole words."""
    return _label_pattern(label).search(text) is not None


def rename_label(text: str, old: str, new: str) -> str:
    """``text`` with every whole-word ``old`` label ("red circle") replaced by ``new``."""
    return _label_pattern(old).sub(new, text)


def swap_shape(scene: Scene, index: int, shape: str) -> Scene:
    """The same scene with object ``index`` drawn as ``shape``; its captions say so.

    Everything else (place, size, colour, pattern, rotation, the wording of every sentence)
    stays, so the scene and its twin differ only by one shape in pixels and in words. The new
    label must not be another object's: a scene's labels are unique, which keeps the captions
    unambiguous.
    """
    obj = scene.objects[index]
    if shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}")
    new = dataclasses.replace(obj, shape=shape)
    if shape == obj.shape or any(o.label == new.label for o in scene.objects):
        raise ValueError(f"the scene already has a {new.label}")
    objects = tuple(new if i == index else o for i, o in enumerate(scene.objects))
    return Scene(
        seed=scene.seed,
        background=scene.background,
        objects=objects,
        long_captions=[rename_label(c, obj.label, new.label) for c in scene.long_captions],
        short_caption=rename_label(scene.short_caption, obj.label, new.label),
    )


def free_shapes(scene: Scene, index: int) -> list[str]:
    """Shapes object ``index`` could take without repeating a label of the scene."""
    colour = scene.objects[index].colour
    taken = {o.shape for o in scene.objects if o.colour == colour}
    return [shape for shape in SHAPES if shape not in taken]


# -- Zero-shot labels ------------------------------------------------------------------------------
def label_index(scene: Scene) -> int:
    """Zero-shot class of the salient object: its index in :func:`zero_shot_prompts`."""
    return list(COLOURS).index(scene.salient.colour) * len(SHAPES) + SHAPES.index(
        scene.salient.shape
    )


def zero_shot_prompts(template: str = ZERO_SHOT_TEMPLATE) -> list[str]:
    """One prompt per zero-shot class (every colour and shape, in a fixed order); ``template``
    uses ``{colour}``/``{shape}``."""
    return [template.format(colour=colour, shape=shape) for colour in COLOURS for shape in SHAPES]


# -- Vocabulary / corpus ---------------------------------------------------------------------------
def _all_phrase_strings() -> list[str]:
    texts: list[str] = [
        *SHAPES,
        *COLOURS,
        *BACKGROUND_COLOURS,
        *BACKGROUND_STYLES,
        *SIZES,
        *PATTERNS,
        *POSITIONS,
        *_NUMBER_WORDS.values(),
        *_OBJECT_TEMPLATES,
        *_INTRO_TEMPLATES,
        *_BACKGROUND_TEMPLATES,
        *_LARGEST_TEMPLATES,
        _RELATION_TEMPLATE,
        "above below and to the left of right of",
        ZERO_SHOT_TEMPLATE,
    ]
    for table in (_LOCATION_PHRASES, _PATTERN_WITH, _PATTERN_STATE):
        for phrases in table.values():
            texts.extend(phrases)
    for name in BACKGROUND_COLOURS:
        for style in BACKGROUND_STYLES:
            background = Background(name, style)
            texts.extend([background.short_description(), background.long_description()])
    return texts


def caption_corpus(n: int = 2000, start_seed: int = 0) -> list[str]:
    """Texts for training a WordPiece vocabulary on the synthetic domain.

    Returns the long and short captions of ``n`` training scenes, every zero-shot prompt, and
    one line per phrase the generator knows, so every word a caption can contain appears.
    """
    texts: list[str] = []
    for scene in make_scenes(start_seed, n):
        texts.extend(scene.long_captions)
        texts.append(scene.short_caption)
    texts.extend(zero_shot_prompts())
    texts.extend(re.sub(r"\{[^}]*\}", " ", text).strip() for text in _all_phrase_strings())
    return texts


# -- Writing to disk -------------------------------------------------------------------------------
def scene_file_stem(seed: int) -> str:
    """File name stem used by :func:`write_scenes`, e.g. ``scene_000123``."""
    return f"scene_{seed:06d}"


def write_scenes(folder: str | Path, start_seed: int, count: int, size: int = 224) -> Path:
    """Render scenes to ``folder`` as PNG + caption sidecar, plus ``manifest.jsonl``.

    For each seed: ``scene_000123.png`` and ``scene_000123.txt``; the text sidecar holds the
    short caption on the first line, then a blank line, then the long captions separated by
    blank lines (the format :mod:`training.data` reads). Each manifest line is
    ``{"image", "short", "long", "seed", "label"}`` with ``image`` relative to the folder.
    Returns the manifest path.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.jsonl"
    with manifest.open("w", encoding="utf-8") as fh:
        for seed in range(start_seed, start_seed + count):
            scene = make_scene(seed)
            stem = scene_file_stem(seed)
            scene.render(size).save(out / f"{stem}.png")
            sidecar = scene.short_caption + "\n\n" + "\n\n".join(scene.long_captions) + "\n"
            (out / f"{stem}.txt").write_text(sidecar, encoding="utf-8")
            record = {
                "image": f"{stem}.png",
                "short": scene.short_caption,
                "long": scene.long_captions,
                "seed": seed,
                "label": scene.label,
            }
            fh.write(json.dumps(record) + "\n")
    logger.info("wrote %d synthetic scenes (%d px) to %s", count, size, out)
    return manifest


# -- Rendering -------------------------------------------------------------------------------------
def _supersample_factor(size: int) -> int:
    if size <= 256:
        return 4
    if size <= 1024:
        return 2
    return 1


def _luminance(rgb: Sequence[int]) -> float:
    return (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0


def _mix(rgb: Sequence[int], target: Sequence[int], amount: float) -> np.ndarray:
    a = np.asarray(rgb, dtype=np.float32)
    b = np.asarray(target, dtype=np.float32)
    return a + (b - a) * amount


def _shade(rgb: Sequence[int], amount: float) -> np.ndarray:
    """Darken light colours and lighten dark ones by ``amount`` (0..1)."""
    target = (0, 0, 0) if _luminance(rgb) > 0.5 else (255, 255, 255)
    return _mix(rgb, target, amount)


def _render_background(background: Background, canvas_size: int) -> np.ndarray:
    base = np.asarray(background.rgb, dtype=np.float32)
    image = np.empty((canvas_size, canvas_size, 3), dtype=np.float32)
    image[:] = base
    if background.style == "gradient":
        other = _shade(background.rgb, 0.3)
        t = np.linspace(0.0, 1.0, canvas_size, dtype=np.float32)[:, None, None]
        image = base + (other - base) * t * np.ones((1, canvas_size, 1), dtype=np.float32)
    elif background.style == "checkered":
        cells = 8
        idx = (np.arange(canvas_size) * cells) // canvas_size
        board = (idx[:, None] + idx[None, :]) % 2 == 1
        image[board] = _shade(background.rgb, 0.1)
    return image


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    return points @ np.array([[c, s], [-s, c]], dtype=np.float64)


def _regular_polygon(sides: int, circumradius: float, start_degrees: float) -> np.ndarray:
    angles = np.radians(start_degrees + 360.0 * np.arange(sides) / sides)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * circumradius


def _shape_polygon(shape: str, r: float, inset: float) -> np.ndarray | None:
    """Vertices (relative to the centre, y down) of a polygonal shape shrunk by ``inset``."""
    if shape == "square":
        half = 0.8 * r - inset
        return None if half <= 0 else _regular_polygon(4, half * math.sqrt(2), 45.0)
    if shape == "triangle":
        apothem = 0.5 * r - inset
        if apothem <= 0:
            return None
        # Point up; shift down so the bounding box is centred.
        return _regular_polygon(3, 2 * apothem, -90.0) + np.array([0.0, 0.25 * r])
    if shape == "hexagon":
        apothem = 0.95 * r * math.cos(math.pi / 6) - inset
        return None if apothem <= 0 else _regular_polygon(6, apothem / math.cos(math.pi / 6), 0)
    if shape == "diamond":
        half_w, half_h = 0.62 * r, r
        apothem = half_w * half_h / math.hypot(half_w, half_h)
        scale = 1.0 - inset / apothem
        if scale <= 0:
            return None
        pts = np.array([[0, -half_h], [half_w, 0], [0, half_h], [-half_w, 0]], dtype=np.float64)
        return pts * scale
    if shape == "star":
        outer, inner = r, 0.45 * r
        scale = 1.0 - inset / (inner * 0.8)
        if scale <= 0:
            return None
        angles = np.radians(-90.0 + 36.0 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, outer, inner)
        pts = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        return pts * scale
    if shape == "cross":
        a, length = 0.3 * r - inset, 0.95 * r - inset
        if a <= 0 or length <= a:
            return None
        # one arm, then the same arm turned by 90 degrees three times ((x, y) -> (-y, x))
        arm = np.array([[-a, -length], [a, -length], [a, -a]], dtype=np.float64)
        quarter = np.array([[0.0, 1.0], [-1.0, 0.0]])
        return np.concatenate([arm @ np.linalg.matrix_power(quarter, k) for k in range(4)])
    raise ValueError(f"unknown shape {shape!r}")


def _draw_shape_mask(
    mask: Image.Image, shape: str, cx: float, cy: float, r: float, inset: float, rotation: float
) -> None:
    """Draw the shape (shrunk by ``inset`` pixels) into an ``L`` mask with value 255."""
    draw = ImageDraw.Draw(mask)
    if shape in ("circle", "ring"):
        outer = r - inset
        if outer <= 0:
            return
        draw.ellipse((cx - outer, cy - outer, cx + outer, cy + outer), fill=255)
        if shape == "ring":
            hole = 0.5 * r + inset
            if hole < outer:
                draw.ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=0)
            else:
                draw.ellipse((cx - outer, cy - outer, cx + outer, cy + outer), fill=0)
        return
    points = _shape_polygon(shape, r, inset)
    if points is None:
        return
    points = _rotate(points, rotation) + np.array([cx, cy])
    draw.polygon([(float(x), float(y)) for x, y in points], fill=255)


def _object_mask(
    obj: SceneObject, r: float, cx: float, cy: float, box: tuple[int, int]
) -> Image.Image:
    mask = Image.new("L", box, 0)
    _draw_shape_mask(mask, obj.shape, cx, cy, r, 0.0, obj.rotation)
    if obj.pattern == "outlined":
        inner = Image.new("L", box, 0)
        border = max(0.2 * r, 1.5)
        _draw_shape_mask(inner, obj.shape, cx, cy, r, border, obj.rotation)
        mask = Image.fromarray(
            np.clip(np.asarray(mask, np.int16) - np.asarray(inner, np.int16), 0, 255).astype(
                np.uint8
            )
        )
    return mask


def _object_fill(
    obj: SceneObject, r: float, box: tuple[int, int], origin: tuple[int, int]
) -> np.ndarray:
    width, height = box
    fill = np.empty((height, width, 3), dtype=np.float32)
    fill[:] = np.asarray(obj.rgb, dtype=np.float32)
    if obj.pattern not in ("striped", "dotted"):
        return fill
    accent = _shade(obj.rgb, 0.55)
    # Pattern coordinates are relative to the object centre so the look does not depend on
    # where the patch starts; the period scales with the object.
    period = max(0.42 * r, 3.0)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx += origin[0]
    yy += origin[1]
    if obj.pattern == "striped":
        phase = np.mod(xx + yy, period)
        fill[phase < period * 0.38] = accent
    else:
        dx = np.mod(xx, period) - period / 2
        dy = np.mod(yy, period) - period / 2
        fill[dx * dx + dy * dy < (period * 0.24) ** 2] = accent
    return fill


def _render_scene(scene: Scene, size: int) -> Image.Image:
    if size < 8:
        raise ValueError("size must be at least 8 pixels")
    factor = _supersample_factor(size)
    canvas_size = size * factor
    canvas = Image.fromarray(
        np.clip(np.rint(_render_background(scene.background, canvas_size)), 0, 255).astype(
            np.uint8
        ),
        "RGB",
    )
    for obj in scene.objects:  # salient first, smaller objects drawn over it
        r = obj.radius * canvas_size
        cx, cy = obj.x * canvas_size, obj.y * canvas_size
        x0 = max(0, math.floor(cx - r) - 2)
        y0 = max(0, math.floor(cy - r) - 2)
        x1 = min(canvas_size, math.ceil(cx + r) + 2)
        y1 = min(canvas_size, math.ceil(cy + r) + 2)
        box = (x1 - x0, y1 - y0)
        mask = _object_mask(obj, r, cx - x0, cy - y0, box)
        origin = (x0 - round(cx), y0 - round(cy))
        fill = _object_fill(obj, r, box, origin)
        patch = Image.fromarray(np.clip(np.rint(fill), 0, 255).astype(np.uint8), "RGB")
        canvas.paste(patch, (x0, y0), mask)
    if factor > 1:
        canvas = canvas.reduce(factor)
    return canvas
