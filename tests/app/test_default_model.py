"""Which model a library without a model setting loads (one rule for the CLI and the GUI)."""

from __future__ import annotations

from app.library.models import default_model
from lotlip import registry


def test_default_model_prefers_the_best_installed_official_model_else_the_bundled_one() -> None:
    bundled = registry.BUNDLED_MODEL
    assert default_model([]) == (bundled, "bundled")
    assert default_model([bundled, "my-fine-tune"]) == (bundled, "bundled")
    assert default_model([bundled, "lotlip-vit-b32"]) == ("lotlip-vit-b32", "best installed")
    both = ["lotlip-vit-b32", bundled, "lotlip-vit-b16"]
    assert default_model(both) == ("lotlip-vit-b16", "best installed")  # B/16 reads finer
