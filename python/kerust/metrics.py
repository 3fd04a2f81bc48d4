"""Metric names kerust computes (in Rust, accumulated over each epoch). Pass them to ``compile(metrics=[...])``."""

from __future__ import annotations

NAMES = (
    "accuracy",
    "acc",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "mean_squared_error",
    "mse",
    "mean_absolute_error",
    "mae",
)
