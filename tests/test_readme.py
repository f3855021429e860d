"""The README is the truth: its quickstart runs, its CLI table matches --help, its code runs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from projections.cli import build_parser
from projections.cli.table import SUBCOMMANDS
from tests.helpers import REPO

README = (REPO / "README.md").read_text()


def _shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def quickstart() -> tuple[str, str]:
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    demo, tests = (b.strip() for b in re.findall(r"```sh\n(.*?)```", section, flags=re.S))
    return demo, tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _demo, tests = quickstart()
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == tests


def test_ci_installs_jq_for_the_readme_checks() -> None:
    """CI has jq, so the README's jq line is run there, never skipped."""
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert any(ln.startswith("command -v jq") and "install -y -qq jq" in ln for ln in ci[:-1])


def test_quickstart_demo_on_a_fresh_copy(tmp_path: Path) -> None:
    """The first quickstart command, as written, in a clean copy of the repository."""
    demo, _tests = quickstart()
    copy = tmp_path / "checkout"
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    result = subprocess.run(
        ["bash", "-c", demo], cwd=copy, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    # The demo's story: a dedup hit, the gate refusing then passing, a refused late `derived`.
    assert "(dedup hit: True, nothing appended)" in out
    blocked = out.index("blocked (v2 active, boards not rebuilt)")
    assert blocked < out.index("boards rebuilt -> ep_001_BATCH_001: fresh (v2 active")
    assert re.search(r"a late board build for v3 is refused: .*active version is v2", out)
    root = Path(re.search(r"in (\S+)\n", out).group(1))  # type: ignore[union-attr]
    logs = sorted(root.glob("demo/ep_*/scenes/*.events.jsonl"))
    assert len(logs) == 4
    # Any JSON parser reads every line of every log (jq: test_readme_jq_audit_one_liner).
    for log in logs:
        for line in log.read_text().splitlines():
            assert json.loads(line)["batch_id"] == log.name.split(".")[0]
    # The store it leaves is usable by every other command.
    scenelog = copy / ".venv" / "bin" / "scenelog"
    show = subprocess.run(
        [
            str(scenelog),
            "--root",
            str(root),
            "--project",
            "demo",
            "show",
            "ep_001_BATCH_001",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert show.returncode == 0 and json.loads(show.stdout)["active_version"] == 2
    shutil.rmtree(root)


def test_cli_table_matches_help() -> None:
    rows = re.findall(r"^\| `scenelog ([\w-]+)[^`]*` \| (.+?) \|$", README, flags=re.M)
    assert [(name, summary) for name, summary, *_ in SUBCOMMANDS] == rows
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, summary, *_ in SUBCOMMANDS:
        assert sub.choices[name].description.lower().rstrip(".") == summary.lower()  # type: ignore[index]


@pytest.mark.parametrize("args", [[], *[[name] for name, *_ in SUBCOMMANDS]])
def test_help_ends_with_an_example(args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "projections", *args, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0
    lines = result.stdout.rstrip().splitlines()
    assert lines[-2].strip() == "Example:" and lines[-1].strip().startswith("scenelog ")


def test_python_example_runs(tmp_path: Path) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(
    shutil.which("jq") is None,
    reason="jq is not installed (.ci/run installs it; here: apt-get install jq)",
)
def test_readme_jq_audit_one_liner(tmp_path: Path) -> None:
    """The README's jq line, run against a demo store (any JSON parser must read the logs)."""
    line = next(ln for ln in README.splitlines() if ln.startswith("jq "))
    demo = subprocess.run(
        [sys.executable, "-m", "projections", "demo", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert demo.returncode == 0, demo.stderr
    logs = sorted(tmp_path.glob("demo/ep_*/scenes/*.events.jsonl"))
    expected = [json.loads(ln) for log in logs for ln in log.read_text().splitlines()]
    conforms = [e for e in expected if e["type"] == "conformed"]
    assert len(conforms) == 3
    result = subprocess.run(
        ["bash", "-c", line.replace("myshow/", "demo/")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    got = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert got == [
        {k: e[k] for k in ("batch_id", "version", "actor", "at", "reason")} for e in conforms
    ]
