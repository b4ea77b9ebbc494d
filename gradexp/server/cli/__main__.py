"""``python -m gradexp.server.cli``: the same as ``python -m gradexp.server``."""

from gradexp.server.cli import main

main()
