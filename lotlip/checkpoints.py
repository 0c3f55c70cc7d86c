"""Checkpoint I/O: official open_clip-format ``.pt`` files and our own folder format.

Official files are read with ``torch.load(weights_only=True)`` (a pickle that would run code is
refused), unwrapped from ``{"state_dict": ...}`` and ``module.`` prefixes, converted from timm
to transformers ViT names, and loaded **strictly**: every tensor must be used and none may be
missing, unlike the reference's ``strict=False`` that hides mistakes (LOTLIP.md §8).
"""

from __future__ import annotations

import io
import logging
import pickle
import re
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as encode_safetensors

from .config import BERT_BASE_VOCAB, OFFICIAL_CONFIGS, LoTLIPConfig, TextConfig, VisionConfig
from .folders import (  # the torch-free part of the format, re-exported here
    IMAGE_TOWER_PREFIX,
    WEIGHTS_FILE,
    CheckpointError,
    checkpoint_name,
    read_folder_config,
    tower_digest,
)
from .folders import is_pretrained_folder as is_pretrained_folder
from .model import LoTLIP
from .tokenizer import LoTLIPTokenizer
from .vision import TIMM_PREFIX, timm_to_vit_state_dict

log = logging.getLogger(__name__)

IGNORED_OFFICIAL_KEYS = ("text.transformer.embeddings.position_ids",)
CUSTOM_NAME = "lotlip-custom"
_UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+)")


class UnsafeCheckpointError(CheckpointError):
    """A pickle that would execute code on load; refused."""


# -- official open_clip checkpoints --------------------------------------------------------------
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an official ``.pt`` safely and return its bare, prefix-free state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # The restricted unpickler refused the file; nothing was executed. Only call it unsafe
        # when the pickle asked for Python objects (a GLOBAL), not when it is merely garbage.
        found = _UNSAFE_GLOBAL.search(str(exc))
        if found is None and "Can only " not in str(exc):
            raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint") from exc
        what = f" (it asks for {found.group(1)})" if found else ""
        raise UnsafeCheckpointError(
            f"{path.name} contains Python objects beyond plain tensors{what} and was refused: "
            "loading it could run arbitrary code. Only load checkpoints from sources you trust, "
            "and prefer safetensors."
        ) from exc
    except (RuntimeError, EOFError, OSError, LookupError, ValueError, TypeError) as exc:
        # (a torch.load of a non-checkpoint file can fail with any of these, e.g. KeyError or
        # IndexError, both LookupErrors)
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint: {exc!r}") from exc
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path.name} does not hold a state dict of tensors")
    return {
        _strip_module(k): v for k, v in obj.items() if _strip_module(k) not in IGNORED_OFFICIAL_KEYS
    }


def _strip_module(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


HEAD_WIDTH = 64  # every ViT and BERT size the official towers come from uses 64-wide heads


def infer_official_config(sd: dict[str, torch.Tensor], name: str | None = None) -> LoTLIPConfig:
    """Derive the architecture from tensor shapes, named ``name`` (default ``lotlip-custom``).

    Shapes say what a checkpoint *is built like*, never which model it is: a fine-tune of the
    B/16 release has exactly its shapes. The name always comes from the caller (see
    :func:`checkpoint_name`).
    Shapes do not show the number of attention heads: when they equal an official architecture
    its config gives them; otherwise the towers are assumed to use 64-wide heads (as ViT and
    BERT do), and a width that is not a multiple of 64 is refused as ambiguous.
    """
    try:
        width = sd[TIMM_PREFIX + "cls_token"].shape[-1]
        patch = sd[TIMM_PREFIX + "patch_embed.proj.weight"].shape[-1]
        positions = sd[TIMM_PREFIX + "pos_embed"].shape[1]
        vis_layers = _count_layers(sd, TIMM_PREFIX + "blocks.")
        mlp = sd[TIMM_PREFIX + "blocks.0.mlp.fc1.weight"].shape[0]
        words = sd["text.transformer.embeddings.word_embeddings.weight"]
        text_positions = sd["text.transformer.embeddings.position_embeddings.weight"].shape[0]
        types = sd["text.transformer.embeddings.token_type_embeddings.weight"].shape[0]
        text_layers = _count_layers(sd, "text.transformer.encoder.layer.")
        text_mlp = sd["text.transformer.encoder.layer.0.intermediate.dense.weight"].shape[0]
        embed_dim = sd["text.proj.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"not a LoTLIP checkpoint: tensor {exc} is missing") from exc
    grid = round((positions - 1) ** 0.5)
    corners = words.shape[0] - BERT_BASE_VOCAB
    if corners < 1:
        raise CheckpointError(
            f"the word embedding has {words.shape[0]} rows; a LoTLIP checkpoint has "
            f"{BERT_BASE_VOCAB} + corner tokens"
        )
    shapes = LoTLIPConfig(
        name=name or CUSTOM_NAME,
        vision=VisionConfig(
            image_size=grid * patch, patch_size=patch, width=width, layers=vis_layers, mlp_dim=mlp
        ),
        text=TextConfig(
            vocab_size=BERT_BASE_VOCAB,
            num_corner_tokens=corners,
            width=words.shape[1],
            layers=text_layers,
            mlp_dim=text_mlp,
            max_positions=text_positions,
            type_vocab_size=types,
        ),
        embed_dim=embed_dim,
    )
    for official in OFFICIAL_CONFIGS.values():
        if _same_architecture(
            official, _with_heads(shapes, official.vision.heads, official.text.heads)
        ):
            return replace(official, name=shapes.name)
    return _with_heads(shapes, _heads(width, "image"), _heads(words.shape[1], "text"))


def _with_heads(config: LoTLIPConfig, vision: int, text: int) -> LoTLIPConfig:
    return replace(
        config, vision=replace(config.vision, heads=vision), text=replace(config.text, heads=text)
    )


def _same_architecture(a: LoTLIPConfig, b: LoTLIPConfig) -> bool:
    return a.vision == b.vision and a.text == b.text and a.embed_dim == b.embed_dim


def _heads(width: int, tower: str) -> int:
    if width % HEAD_WIDTH:
        raise CheckpointError(
            f"cannot tell how many attention heads the {width}-wide {tower} tower has (the "
            f"shapes do not say, and {width} is not a multiple of {HEAD_WIDTH}); save the model "
            "in our folder format, whose config.json records them"
        )
    return width // HEAD_WIDTH


def _count_layers(sd: dict[str, torch.Tensor], prefix: str) -> int:
    return len({k[len(prefix) :].split(".")[0] for k in sd if k.startswith(prefix)})


def official_to_ours(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official key layout -> our module's state dict (only the vision tower is renamed)."""
    vision = {k: v for k, v in sd.items() if k.startswith(TIMM_PREFIX)}
    rest = {k: v for k, v in sd.items() if not k.startswith(TIMM_PREFIX)}
    return {**timm_to_vit_state_dict(vision), **rest}


def _uninitialized_model(config: LoTLIPConfig, tokenizer: LoTLIPTokenizer) -> LoTLIP:
    """A model whose weights are about to be overwritten: skip random init (20 s for B/16)."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return LoTLIP(config, tokenizer)


def load_state_strict(model: LoTLIP, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every tensor of ``state`` into ``model``; anything missing or extra is an error."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if wrong:
            k = wrong[0]
            details.append(
                f"{len(wrong)} shape mismatches (e.g. {k}: {tuple(state[k].shape)} vs "
                f"{tuple(expected[k].shape)})"
            )
        raise CheckpointError(f"{source} does not match the model: " + "; ".join(details))
    model.load_state_dict(state, strict=True)


def load_official(path: str | Path, tokenizer: LoTLIPTokenizer, name: str | None = None) -> LoTLIP:
    """Build a model from an official open_clip ``.pt`` and its BERT tokenizer (float32, CPU).

    ``name`` defaults to :func:`checkpoint_name` of the file (never to a release's name).
    """
    sd = read_state_dict(path)
    config = infer_official_config(sd, name or checkpoint_name(path))
    tokenizer = LoTLIPTokenizer(
        tokenizer.vocab,
        num_corner_tokens=config.text.num_corner_tokens,
        context_length=config.text.context_length,
    )
    try:
        ours = official_to_ours(sd)
    except KeyError as exc:  # a visual.trunk.* tensor the ViT conversion does not know
        raise CheckpointError(f"{Path(path).name} does not match the model: {exc}") from exc
    model = _uninitialized_model(config, tokenizer)
    load_state_strict(model, ours, Path(path).name)
    model.metadata = {"source": str(path), "format": "open_clip"}
    return model.eval()


# -- our own format ------------------------------------------------------------------------------
def load_pretrained(folder: str | Path, *, name: str | None = None) -> LoTLIP:
    """Load a model folder written by :meth:`LoTLIP.save` (weights via safetensors).

    ``name``: what the model is called (the name it is installed under); default: the name
    saved in its config.
    """
    folder = Path(folder)
    config, metadata = read_folder_config(folder)
    if name and name != config.name:
        config = replace(config, name=name)
    tokenizer = LoTLIPTokenizer.from_folder(
        folder,
        num_corner_tokens=config.text.num_corner_tokens,
        context_length=config.text.context_length,
    )
    model = _uninitialized_model(config, tokenizer)
    try:
        state = load_file(str(folder / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{folder / WEIGHTS_FILE} is unreadable: {exc}") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    load_state_strict(model, state, str(folder))
    model.metadata = {**metadata, "path": str(folder)}
    return model.eval()


def model_image_tower_fingerprint(model: LoTLIP) -> str:
    """:func:`lotlip.folders.tower_digest` of a loaded model's image tower: the value
    :func:`lotlip.folders.image_tower_fingerprint` reads from the folder :meth:`LoTLIP.save`
    writes (the tensors go through the same safetensors encoding, in memory)."""
    state = {
        key: value.detach().to("cpu").contiguous()
        for key, value in model.state_dict().items()
        if key.startswith(IMAGE_TOWER_PREFIX)
    }
    return tower_digest(io.BytesIO(encode_safetensors(state)))
