"""How long does the GUI's event loop stall while it indexes (and, optionally, fine-tunes)?

Opens the real main window (offscreen unless ``--show``), indexes a generated folder of JPEG
photos through the same ``Session`` the app uses, and meanwhile ticks a 10 ms ``QTimer`` and
runs a paragraph search every second. The late-ness of each tick is the time the event loop
could not react; the largest one is the figure that matters (the app's goal: under 100 ms).

    python bench/bench_gui_latency.py                 # 1000 photos, the bundled model
    python bench/bench_gui_latency.py --images 1000 --finetune
    python bench/bench_gui_latency.py --watch        # then copy them into a watched folder

Prints one block of numbers per phase; nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TICK_MS = 10
COPY_SCRIPT = """
import shutil, sys, pathlib
source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for path in sorted(source.iterdir()):
    shutil.copyfile(path, target / path.name)
"""


def write_photos(folder: Path, count: int, size: int) -> None:
    """``count`` synthetic scenes as JPEG files of ``size`` px (realistic decoding work)."""
    from training.synthetic import make_scene

    folder.mkdir(parents=True, exist_ok=True)
    base = [make_scene(10_000 + i).render(size) for i in range(min(count, 40))]
    for i in range(count):
        image = base[i % len(base)].rotate(i % 7, fillcolor=(i % 255, 80, 120))
        image.save(folder / f"photo_{i:05d}.jpg", quality=88)


class StallMeter:
    """Ticks a timer and records how late each tick fires."""

    def __init__(self) -> None:
        from PySide6.QtCore import QTimer

        self.delays: list[float] = []
        self.times: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer()
        self.timer.setTimerType(self.timer.timerType().PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.delays.append(max(0.0, (now - self._last) * 1000.0 - TICK_MS))
        self.times.append(now)
        self._last = now

    def start(self) -> None:
        self.delays.clear()
        self.times.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return list(self.delays)


def summary(label: str, delays: list[float], elapsed: float, extra: str = "") -> None:
    """Print the numbers of one phase."""
    if not delays:
        print(f"{label}: no ticks")
        return
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    over = sum(1 for d in delays if d > 100)
    print(
        f"{label}: {elapsed:.1f} s, {len(delays)} ticks; largest timer delay "
        f"{max(delays):.1f} ms, p99 {p99:.1f} ms, median {statistics.median(delays):.1f} ms, "
        f"ticks over 100 ms: {over}{extra}"
    )


def print_worst(meter: StallMeter, begun: float, marker: float | None = None) -> None:
    """When the three largest delays happened (seconds after the phase began)."""
    worst = sorted(zip(meter.delays, meter.times, strict=True), reverse=True)[:3]
    when = ", ".join(f"{d:.0f} ms at +{t - begun:.1f} s" for d, t in worst)
    note = f" (copying ended at +{marker:.1f} s)" if marker is not None else ""
    print(f"  largest delays: {when}{note}")


def measure_watch(
    session: Any, meter: StallMeter, searches: Any, work: Path, n: int, wait: Any
) -> None:
    """Copy ``n`` photos into a watched library folder; measure until all are indexed."""
    target = work / "watched"
    target.mkdir()
    session.add_folders([str(target)], [])

    def watching() -> bool:
        auto = session.auto_indexer
        return auto is not None and str(target) in auto.watcher.roots

    wait(watching)
    fresh: list[Any] = []
    session.libraryInfo.connect(fresh.append)
    session.refresh_info()
    wait(lambda: bool(fresh))
    expected = fresh[-1].images + n  # the photos indexed before plus the copies
    started: list[float] = []
    session.indexingStarted.connect(lambda _run: started.append(time.perf_counter()))
    meter.start()
    searches.start()
    begun = time.perf_counter()
    copier = subprocess.Popen(
        [sys.executable, "-c", COPY_SCRIPT, str(work / "photos"), str(target)]
    )
    wait(lambda: copier.poll() is not None)
    copied = time.perf_counter() - begun

    asked = [0.0]

    def all_indexed() -> bool:
        if session.busy() or session.queued_folders:
            return False
        if session.info.images < expected:
            if time.perf_counter() - asked[0] > 0.5:  # counts come from a worker thread
                asked[0] = time.perf_counter()
                session.refresh_info()
            return False
        return True

    wait(all_indexed)
    elapsed = time.perf_counter() - begun
    searches.stop()
    runs = session.auto_indexer.runs
    extra = (
        f", copying took {copied:.1f} s, all searchable {elapsed - copied:.1f} s after the last "
        f"copy, {runs} index runs started by the watcher"
    )
    summary(f"watch folders: {n} photos copied in", meter.stop(), elapsed, extra)
    print_worst(meter, begun, copied)
    if started:  # copying, the watcher's events and the quiet period, before any indexing
        before = [d for d, t in zip(meter.delays, meter.times, strict=True) if t < started[0]]
        print(
            f"  before the first index run (+{started[0] - begun:.1f} s): largest delay "
            f"{max(before, default=0.0):.1f} ms over {len(before)} ticks"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=640, help="photo edge in pixels")
    parser.add_argument("--model", default="lotlip-tiny", help="model name (default: bundled)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--finetune", action="store_true", help="also measure a fine-tune run")
    parser.add_argument("--steps", type=int, default=30, help="fine-tune steps")
    parser.add_argument("--show", action="store_true", help="use the real display")
    parser.add_argument(
        "--watch",
        action="store_true",
        help="then copy the same photos into a watched library folder (another process "
        "copies, as a file manager would) and measure until all are searchable",
    )
    parser.add_argument("--prepare", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.show:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    if args.prepare:  # the child process: heavy imports stay out of the measured process
        write_photos(Path(args.prepare) / "photos", args.images, args.size)
        return 0

    work = Path(tempfile.mkdtemp(prefix="lotlip-gui-bench-"))
    os.environ["LOTLIP_SEARCH_LIBRARY"] = str(work / "library")
    os.environ["LOTLIP_SEARCH_GUI_CONFIG"] = str(work / "gui.ini")
    os.environ.setdefault("LOTLIP_MODELS_DIR", str(work / "models"))
    print(f"writing {args.images} photos of {args.size} px to {work / 'photos'} …")
    prepare = [sys.executable, __file__, "--prepare", str(work), "--images", str(args.images)]
    subprocess.run([*prepare, "--size", str(args.size)], check=True, capture_output=True)
    model = args.model

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from app.gui.config import GuiSettings
    from app.gui.main import tune_interpreter
    from app.gui.main_window import MainWindow
    from app.gui.session import Session

    tune_interpreter()  # as the app does
    app = QApplication([sys.argv[0]])
    started = time.perf_counter()
    session = Session()
    session.set_setting("model", model)
    session.set_setting("device", "cpu")
    window = MainWindow(session, GuiSettings())
    window.show()
    app.processEvents()
    print(
        f"window shown after {1000 * (time.perf_counter() - started):.0f} ms "
        f"(torch imported yet: {'torch' in sys.modules})"
    )

    def wait(condition: object, timeout: float = 3600.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            app.processEvents()
            time.sleep(0.002)
            if time.monotonic() > deadline:
                raise TimeoutError("timed out")

    meter = StallMeter()
    meter.start()
    wait(lambda: session.choice is not None or session.model_error is not None)
    summary("model load", meter.stop(), time.perf_counter() - started)
    if session.choice is None:
        print(f"model failed to load: {session.model_error}")
        return 1
    print(f"model: {session.choice.name} on {session.choice.model.device}")

    from training.synthetic import make_scene

    query = make_scene(10_003).long_captions[0]
    searches = QTimer()
    searches.setInterval(1000)
    searches.timeout.connect(lambda: window.search_text(query))

    meter.start()
    searches.start()
    begun = time.perf_counter()
    session.add_folders([str(work / "photos")], [])
    run = session.start_indexing([str(work / "photos")], batch_size=args.batch_size)
    wait(lambda: not run.running)
    elapsed = time.perf_counter() - begun
    searches.stop()
    report = run.report
    rate = f", {report.embedded / elapsed:.1f} photos/s" if report else ""
    summary(f"indexing {args.images} photos", meter.stop(), elapsed, rate)
    print_worst(meter, begun)
    if args.watch:  # the same photos again, now copied into a watched folder
        measure_watch(session, meter, searches, work, args.images, wait)

    if args.finetune:
        from app.gui.captions import start_caption_import
        from app.gui.finetune_dialog import FinetuneDialog

        captions = work / "captions.jsonl"
        lines = []
        for i in range(min(args.images, 40)):  # the captions of the scenes photos 0..39 show
            scene = make_scene(10_000 + i)
            row = {"image": f"photos/photo_{i:05d}.jpg", "short": scene.short_caption}
            lines.append(json.dumps({**row, "long": scene.long_captions}) + "\n")
        captions.write_text("".join(lines), encoding="utf-8")
        task = start_caption_import(session, captions, show_result=False)
        wait(task.isFinished)
        dialog = FinetuneDialog(session, window)
        dialog.show()
        wait(dialog.start_button.isEnabled)
        dialog.name.setText(f"{model}-bench-{int(time.time())}")
        meter.start()
        begun = time.perf_counter()
        dialog.start(steps=args.steps)
        wait(lambda: dialog.task is None)
        summary(f"fine-tuning {args.steps} steps", meter.stop(), time.perf_counter() - begun)
        dialog.close()

    window.close()
    wait(lambda: not window.isVisible(), 120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
