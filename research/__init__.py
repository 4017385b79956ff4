"""Research code of the study: screens, decision rules and the accelerator runner.

Kept apart from ``fer_helpers`` (the product: what the notebooks and the CLI use). Nothing in
``fer_helpers`` imports from here; modules here import ``fer_helpers`` like any user would.
Run a module with ``python -m research.<module>`` from the repository root.
"""
