"""Check the documentation (``nox -s docs``).

- every relative link in README.md, CONTRIBUTING.md, CHANGELOG.md and docs/**/*.md points at
  a file that exists;
- every ```python block parses (blocks marked ```python run are also executed, in a
  temporary directory with GRADEXP_MODE=offline, so they cannot drift from the code);
- every `gradexp <command>` shown in a ```bash/```console block is a real command
  (`gradexp <command> --help` succeeds).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\w+)?([^\n]*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+)(?:#[^)]*)?\)")
COMMAND = re.compile(r"(?:^|[\s;&|(])gradexp ((?:[a-z]+)(?: [a-z]+)?)")


def main() -> int:
    pages = [
        *(ROOT / name for name in ("README.md", "CONTRIBUTING.md", "CHANGELOG.md")),
        *sorted((ROOT / "docs").rglob("*.md")),
    ]
    problems: list[str] = []
    commands: set[str] = set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        rel = page.relative_to(ROOT)
        for target in LINK.findall(text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                problems.append(f"{rel}: broken link to {target}")
        for lang, info, body in FENCE.findall(text):
            if lang == "python":
                try:
                    ast.parse(body)
                except SyntaxError as exc:
                    problems.append(f"{rel}: python block does not parse: {exc}")
                    continue
                if "run" in info.split():
                    problems.extend(f"{rel}: {p}" for p in _run(body))
            elif lang in ("bash", "console", "sh"):
                for line in body.splitlines():
                    for match in COMMAND.finditer(line):
                        commands.add(match.group(1))
    for command in sorted(commands):
        problems.extend(_check_command(command.split()))
    for problem in problems:
        print(problem)
    print(f"checked {len(pages)} pages, {len(commands)} commands: {len(problems)} problems")
    return 1 if problems else 0


def _run(source: str) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "GRADEXP_MODE": "offline",
            "GRADEXP_DIR": tmp,
            "GRADEXP_CONFIG_DIR": tmp,
        }
        proc = subprocess.run(
            [sys.executable, "-c", source],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    if proc.returncode:
        return [f"example failed: {proc.stderr.strip().splitlines()[-1:]}"]
    return []


def _check_command(words: list[str]) -> list[str]:
    # "gradexp server user" -> try the longest prefix that is a command.
    for n in range(len(words), 0, -1):
        proc = subprocess.run(
            [sys.executable, "-m", "gradexp.cli", *words[:n], "--help"],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            return []
    return [f"`gradexp {' '.join(words)}` is shown in the docs but is not a command"]


if __name__ == "__main__":
    sys.exit(main())
