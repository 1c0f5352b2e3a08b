"""Entry points of the hooks modelbox offers: ``main(argv) -> int`` each, nothing else.

* pre-commit hooks (``.pre-commit-hooks.yaml``): :mod:`hooks.validate`, :mod:`hooks.format`,
  :mod:`hooks.no_raw_artifacts` parse the files pre-commit passes, call
  :mod:`modelbox.validate` and turn the outcome into lines on stdout and an exit code;
* Git hooks modelbox installs in a clone: :mod:`hooks.git_pre_push`, :mod:`hooks.git_refs_sync`.

``pyproject.toml`` installs each as a console script (``modelbox-hook-validate``, ...), so
they work wherever pip or pre-commit installs the project; the scripts call them through
:mod:`hooks.console`, which ends the process without Python's teardown.
"""
