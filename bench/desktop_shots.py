"""Real screenshots of the running app on a real X server, driven like a user would drive it.

Starts ``Xvfb`` (screen ``--size``) with the ``openbox`` window manager, indexes a gallery of
generated scenes with the CLI, starts ``python -m app`` and drives it with ``xdotool``
(keyboard and mouse): the main window with a paragraph's results, the context menu, the viewer
and the Folders panel. Each picture is the whole screen (``import -window root``), window
decorations, menus and the full-screen viewer included, so it shows what a person sees.

    python bench/desktop_shots.py                       # 1366×768 into docs/screenshots/
    python bench/desktop_shots.py --size 1024x640 --suffix -1024

Needs ``Xvfb``, ``openbox``, ``xdotool`` and ImageMagick's ``import`` (apt packages ``xvfb``,
``openbox``, ``xdotool``, ``imagemagick``) and the bundled ``lotlip-tiny`` model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUERY = (
    "A red circle in the top left corner. A blue square below it. "
    "A yellow star on the right, all on a grey background."
)


def free_display(first: int = 90) -> str:
    """An X display number no server uses yet (other sessions may run their own Xvfb)."""
    for number in range(first, first + 100):
        if (
            not Path(f"/tmp/.X{number}-lock").exists()
            and not Path(f"/tmp/.X11-unix/X{number}").exists()
        ):
            return f":{number}"
    sys.exit("no free X display number")


def run(*command: str, env: dict[str, str]) -> str:
    """Run a command on the display and return its output."""
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    parser.add_argument("--size", default="1366x768", help="screen size, WIDTHxHEIGHT")
    parser.add_argument("--suffix", default="", help="added to every file name")
    parser.add_argument("--scenes", type=int, default=60)
    args = parser.parse_args(argv)
    for tool in ("Xvfb", "openbox", "xdotool", "import"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (apt-get install xvfb openbox xdotool imagemagick)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from bench.screenshots import scratch_library
    from training.synthetic import write_scenes

    display = free_display()
    # the gallery has one damaged file: the Folders panel shows a failure
    work, gallery, _ = scratch_library(args.scenes, prefix="lotlip-desktop-")
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    phone = work / "Pictures" / "Phone"  # a second folder for the Folders panel
    write_scenes(phone, 900_000, 12, size=320)
    folders = [str(gallery), str(phone)]
    subprocess.run(
        [sys.executable, "-m", "app.cli", "--model", "lotlip-tiny", "index", *folders],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    started: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    def key(*keys: str) -> None:
        run("xdotool", "key", *keys, env=env)
        time.sleep(0.4)

    def shot(name: str, settle: float = 1.5) -> None:
        time.sleep(settle)
        path = out / f"{name}{args.suffix}.png"
        run("import", "-window", "root", str(path), env=env)
        print(f"wrote {path}")

    try:
        start("Xvfb", display, "-screen", "0", f"{args.size}x24", "-dpi", "96")
        time.sleep(1.5)
        start("openbox")
        time.sleep(1.0)
        start(sys.executable, "-m", "app")
        deadline = time.monotonic() + 60
        window = ""
        while not window and time.monotonic() < deadline:
            time.sleep(0.5)
            window = run("xdotool", "search", "--name", "^LoTLIP Search$", env=env)
        if not window:
            sys.exit("the app did not open a window")
        window = window.splitlines()[-1]
        time.sleep(15)  # the model loads (the CPU may be busy) and the first thumbnails
        run("xdotool", "windowactivate", "--sync", window, env=env)
        key("ctrl+l")
        run("xdotool", "type", "--delay", "3", QUERY, env=env)
        key("Return")
        time.sleep(5)
        for _ in range(2):  # the first click may only activate the window
            run("xdotool", "windowactivate", "--sync", window, env=env)
            run("xdotool", "mousemove", "--window", window, "300", "330", "click", "1", env=env)
            time.sleep(1)
        shot("main-window", 2.5)

        run("xdotool", "mousemove", "--window", window, "500", "330", "click", "3", env=env)
        shot("context-menu", 1.0)
        key("Escape")

        key("Return")  # the full-screen viewer
        key("Right")
        shot("viewer")
        key("Escape")

        run("xdotool", "windowactivate", "--sync", window, env=env)
        key("alt+l")  # Library ▸ Folders…
        key("f")
        shot("folders", 2.5)
        key("Escape")
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
