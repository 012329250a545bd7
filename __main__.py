"""``python -m mapscribe …`` (and ``torchrun … -m mapscribe caption …``): the command line."""

from .model.cli.main import exit_with, main

exit_with(main())
