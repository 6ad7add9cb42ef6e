"""``python -m dropkit.bench``."""

from .cli import main

raise SystemExit(main())
