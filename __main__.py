"""``python -m mapscribe …`` (and ``torchrun … -m mapscribe caption …``): the command line."""

from .model.cli.main import main

raise SystemExit(main())
