"""``python -m app`` starts the desktop app."""

from __future__ import annotations

import sys

from app.gui.main import main

if __name__ == "__main__":
    sys.exit(main())
