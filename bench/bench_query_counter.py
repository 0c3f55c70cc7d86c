"""The query box's word-piece counter on a very long text: count all of it, or its start only.

    python bench/bench_query_counter.py [--words 5000] [--repeat 5]

Prints the median time of one counter update (count + where the cut starts) both ways and
their ratio, measured in this one run with the bundled ``lotlip-tiny`` tokenizer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from common import timed

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--words", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from PySide6.QtWidgets import QApplication

    import lotlip
    from app.gui.query import QueryEdit, WordPieceCounter, cut_offset

    app = QApplication.instance() or QApplication([])
    count = lotlip.load("lotlip-tiny", device="cpu").tokenizer.count
    text = " ".join(
        f"a small red circle near blue square {i} on grey." for i in range(args.words // 10)
    )
    editor = QueryEdit()
    counter = WordPieceCounter(editor)
    counter.set_counter(count)
    editor.set_text(text)

    def whole() -> None:  # what a counter that reads the whole text costs
        result = count(text)
        cut_offset(text, count, truncated=result.truncated)

    full = 1000 * statistics.median(timed(whole) for _ in range(args.repeat))
    head = 1000 * statistics.median(timed(counter.update_count) for _ in range(args.repeat))
    print(
        f"{len(text.split())} words: whole text {full:.1f} ms, start only {head:.1f} ms, "
        f"ratio {full / head:.1f}x  ({counter.text()})"
    )
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
