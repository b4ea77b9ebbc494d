"""``python -m gradexp.server``: the same as ``gradexp server``."""

from gradexp.server.cli import main

main()
