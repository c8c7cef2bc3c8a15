"""``python -m jaxnn``: the ``jaxnn`` command (see :mod:`jaxnn.cli`)."""

from jaxnn.cli import main

raise SystemExit(main())
