"""The static checks are part of the suite: ruff (lint and format) and mypy, configured in pyproject.toml, find
nothing. A finding fails here with the tools' own output, so the fix is the same as running them by hand. Every
`noqa` and `type: ignore` left in the code says why on its own line."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.tooling


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=280)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{args[0]} took longer than {exc.timeout} s", pytrace=False)


def _require(module: str) -> None:
    found = _run(module, "--version")
    if found.returncode != 0:
        pytest.fail(
            f"{module} is not installed in {sys.executable}: install the test extras "
            f"(pip install -e '.[test]', which ./dev.sh test does)\n{found.stderr}",
            pytrace=False,
        )


def test_ruff_finds_nothing() -> None:
    _require("ruff")
    result = _run("ruff", "check", "--no-cache", "--output-format", "concise", "src", "tests")
    assert result.returncode == 0, f"ruff check src tests:\n{result.stdout}{result.stderr}"


def test_ruff_format_changes_nothing() -> None:
    _require("ruff")
    result = _run("ruff", "format", "--check", "--no-cache", "src", "tests", "bench")
    assert result.returncode == 0, f"ruff format --check src tests bench (run `ruff format` to fix):\n{result.stdout}"


def test_mypy_finds_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    _require("mypy")
    # Beside pytest's numbered temporary folders, which it prunes: the cache outlives the run, so mypy only
    # rechecks what changed (a cold run takes minutes on a busy machine, a warm one seconds).
    cache = tmp_path_factory.getbasetemp().parent / "temoin-mypy-cache"
    result = _run("mypy", "--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache))
    assert result.returncode == 0, f"mypy (the [tool.mypy] packages of pyproject.toml):\n{result.stdout}{result.stderr}"


# A suppression, then what follows it on the line: its reason, at least one word of three letters or more.
_SUPPRESSION = re.compile(r"#\s*(noqa(?::\s*[A-Z0-9, ]+)?|type:\s*ignore(?:\[[a-z0-9_,\- ]+\])?)(.*)$")
_WORD = re.compile(r"[A-Za-z]{3,}")


def test_every_noqa_and_type_ignore_says_why() -> None:
    bare = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for folder in ("src", "tests")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if (found := _SUPPRESSION.search(line)) and not _WORD.search(found.group(2))
    ]
    assert not bare, (
        "a noqa or type: ignore without its reason (write why on the same line, e.g. "
        "`# noqa: S310 - a test's own URL`), or fix the code so it needs none:\n" + "\n".join(bare)
    )
