"""``python -m daemon`` is the ``postroom`` command."""

from daemon.cli import main

raise SystemExit(main())
