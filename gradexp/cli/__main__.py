"""``python -m gradexp.cli``: the ``gradexp`` command."""

from gradexp.cli import main

main()
