"""The README's set-up commands: what CI runs, and what a newcomer on pip 23 can run.

``.ci/run`` reads both commands from README.md with ``.ci/readme_command.py``; these tests
pin that wiring and the shape of the commands, so that neither can drift.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
CI_RUN = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
VENV = "python3 -m venv .venv && . .venv/bin/activate && "
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu && "


def _extractor() -> ModuleType:
    path = ROOT / ".ci" / "readme_command.py"
    spec = importlib.util.spec_from_file_location("readme_command", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block_after(marker: str) -> list[str]:
    pattern = rf"^<!-- \.ci/run: {marker}\b[^\n]*-->\n```bash\n(.*?)\n```"
    match = re.search(pattern, README, re.M | re.S)
    assert match, f"no '{marker}' block in README.md"
    return match[1].splitlines()


def test_ci_runs_the_readme_test_command_as_written() -> None:
    """Bug: the README said `python -m pytest`, CI ran other commands; they drifted."""
    command = _extractor().readme_command("test")
    assert command == (
        f'{VENV}python -m pip install -U "pip>=25.1" && pip install -e ".[all,ray]" --group test '
        "&& python -m pytest"
    )
    assert 'test_command="$(python3 .ci/readme_command.py test)"' in CI_RUN
    assert 'bash -c "$test_command"' in CI_RUN


def test_the_test_command_upgrades_pip_before_using_dependency_groups() -> None:
    """Bug: `pip install ... --group test` fails on the pip 23 that `python -m venv` ships."""
    command = _extractor().readme_command("test")
    assert command.index('pip install -U "pip>=25.1"') < command.index("--group test")


def test_ci_pins_torch_before_the_readme_commands() -> None:
    pinned = CI_RUN.index('pip install --quiet "torch==2.13.0"')
    assert pinned < CI_RUN.index("python3 .ci/readme_command.py test")
    assert "2.13.0" not in _extractor().readme_command("test")


def test_quickstart_is_one_line_with_a_cpu_only_twin_after_the_cuda_warning() -> None:
    """Bug: the Quickstart pulled ~3 GB of CUDA wheels on Linux without a word."""
    default, cpu_only = _block_after("quickstart")
    assert default == _extractor().readme_command("quickstart")
    example = "python examples/langchain_retriever_chain.py"
    assert default == f'{VENV}pip install -e ".[all]" && {example}'
    assert cpu_only == default.replace(VENV, VENV + CPU_TORCH)
    warning = README.index("pulls ~3 GB of CUDA wheels")
    assert warning < README.index(default)
    assert 'quickstart="$(python3 .ci/readme_command.py quickstart)"' in CI_RUN
    assert 'HF_HUB_OFFLINE=1 bash -c "$quickstart"' in CI_RUN


def test_a_missing_marker_stops_ci() -> None:
    message = r"^README\.md must mark exactly one 'test' command, found 0\.$"
    with pytest.raises(SystemExit, match=message):
        _extractor().readme_command("test", "# no commands\n")
