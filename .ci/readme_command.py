"""Print a command from README.md: the first line of the code block after its marker.

``python3 .ci/readme_command.py test`` prints the line after ``<!-- .ci/run: test ... -->``.
``.ci/run`` runs what this prints, so CI runs the README's commands exactly as written.
Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_command(name: str, text: str | None = None) -> str:
    """The first line of the fenced block after the ``<!-- .ci/run: NAME ... -->`` marker."""
    text = README.read_text(encoding="utf-8") if text is None else text
    pattern = rf"^<!-- \.ci/run: {re.escape(name)}\b[^\n]*-->\n```[a-z]*\n([^\n]+)\n"
    found = re.findall(pattern, text, flags=re.MULTILINE)
    if len(found) != 1:
        msg = f"README.md must mark exactly one '{name}' command, found {len(found)}."
        raise SystemExit(msg)
    return str(found[0])


if __name__ == "__main__":
    sys.stdout.write(readme_command(sys.argv[1]) + "\n")
