"""User-facing benchmarks (data loading, training step and budget, inference, export, face
detectors, the explorer); run one with ``python -m benchmarks.<name>`` from the repository root.
The study's screens and decision rules live in ``research/``."""
