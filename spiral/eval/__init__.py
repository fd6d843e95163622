"""Evaluation: math and multiple-choice benchmarks, game evaluation, metrics and run reports.

Kept import-light: each submodule imports its heavy dependencies (math-verify, torch, matplotlib) itself.
"""
