"""User-facing benchmarks and the study's screening scripts; run one with
``python -m benchmarks.<name>`` from the repository root."""
