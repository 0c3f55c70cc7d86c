"""``--precision``: vectors made at one precision are searched with queries at another."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli import EXIT_OK, EXIT_USAGE
from app.commands.common import PRECISION_CHOICES
from app.library.library import PRECISION_KEY, Library
from lotlip import precision as lotlip_precision
from training import synthetic


def test_cli_choices_match_the_library() -> None:
    assert PRECISION_CHOICES == lotlip_precision.PRECISION_CHOICES


def test_int8_index_is_searched_at_fp32(cli, ranking_model: str, tmp_path: Path) -> None:
    gallery = tmp_path / "scenes"
    seeds = list(synthetic.heldout_seeds(6))
    synthetic.write_scenes(gallery, seeds[0], len(seeds), size=64)
    status, _, err = cli("--precision", "int8", "index", str(gallery), model=ranking_model)
    assert status == EXIT_OK, err

    with Library.open(tmp_path / "library") as lib:
        record = lib.store.get_model(ranking_model)
    assert record is not None and record.metadata[PRECISION_KEY] == "int8"

    hits = 0
    for seed in seeds:
        paragraph = synthetic.make_scene(seed).long_captions[0]
        status, out, err = cli(
            "--precision", "fp32", "search", paragraph, "--top", "1", "--json", model=ranking_model
        )
        assert status == EXIT_OK, err
        top = json.loads(out)["results"][0]["path"]
        hits += Path(top).stem == synthetic.scene_file_stem(seed)
    assert hits >= len(seeds) - 1


def test_impossible_precision_is_a_usage_error(cli, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    status, _, err = cli("--precision", "fp16", "--device", "cpu", "index", str(tmp_path / "empty"))
    assert status == EXIT_USAGE
    assert "fp16 is for GPUs" in err
