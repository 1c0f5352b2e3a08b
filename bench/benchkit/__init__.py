"""The side-by-side benchmark behind ``python bench/run.py`` (see bench/README.md).

``harness`` runs and measures processes and prints the table, ``peers`` keeps DVC and GTO in
their own venv, ``data`` builds the inputs, ``probes`` is what child processes run, and one
module per group of scenarios: ``transfers`` (1-3), ``hashing`` (4), ``versus_gto`` (5),
``big_registry`` (6), ``sharing`` (7).
"""
