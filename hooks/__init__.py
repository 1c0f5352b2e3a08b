"""Entry points of the pre-commit hooks in ``.pre-commit-hooks.yaml``.

Each module is one hook: ``main(argv) -> int`` parses the arguments pre-commit passes (the
files to check), calls :mod:`modelbox.validate` and turns the outcome into lines on stdout
and an exit code. ``pyproject.toml`` installs them as console scripts
(``modelbox-hook-validate``, ``modelbox-hook-format``, ``modelbox-hook-no-raw-artifacts``),
so they work wherever pre-commit installs the project.
"""
