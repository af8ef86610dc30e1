"""The code gates run with the tests, so CI refuses what a reviewer would: lint, format, types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "app", "tests", "bench", "migrations"],
        ["ruff", "format", "--check", "app", "tests", "bench", "migrations"],
        ["mypy", "app"],
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_code_gate_passes(command: list[str]) -> None:
    result = subprocess.run(
        [str(BIN / command[0]), *command[1:]], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
