"""Developer sessions: ``nox -s tests lint typecheck js bench docs``.

Each session installs what it needs into its own virtual environment, so a clean
checkout needs only ``pip install nox`` (``.ci/run`` does exactly that); ``js`` also needs
Node.js 20 or later and npm, which install the pinned TypeScript into ``node_modules/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = os.environ.get("GRADEXP_NOX_PYTHON") or None  # None: the interpreter running nox


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite against a real server, databases, S3 (moto), chromium and a kernel."""
    session.install("-e", ".[server,dev,torch,integrations]")
    session.run("pytest", *(session.posargs or ["tests"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (style and common bugs) and import-linter (the layers in pyproject.toml)."""
    session.install("ruff>=0.6", "import-linter>=2.17")
    session.run("ruff", "check", "gradexp", "tests", "benchmarks", "examples", "noxfile.py")
    session.run(
        "ruff", "format", "--check", "gradexp", "tests", "benchmarks", "examples", "noxfile.py"
    )
    # Reads gradexp/ from the working directory; nothing needs installing.
    session.run("lint-imports", "--no-cache", env={"PYTHONPATH": os.getcwd()})


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over the package."""
    session.install("-e", ".[server,dev]", "mypy>=1.10")
    session.run("mypy")


@nox.session(python=False)
def js(session: nox.Session) -> None:
    """The web UI's JavaScript: type checking (tsc over `// @ts-check` modules) and unit tests.

    The UI ships as plain ES modules with no build step; this only checks them.
    """
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            session.error(
                f"{tool} not found: install Node.js 20 or later (with npm) to run this session"
            )
    session.run("npm", "ci" if Path("package-lock.json").exists() else "install", external=True)
    session.run("npx", "--no-install", "tsc", "-p", "tsconfig.json", external=True)
    # Files by name: `node --test DIR` and glob arguments mean different things across Node
    # versions, a list of files means the same in all of them.
    tests = sorted(str(p) for p in Path("tests/js").glob("*.test.mjs"))
    session.run("node", "--test", *tests, external=True)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every benchmark under benchmarks/, each printing its figures beside a same-run baseline."""
    session.install("-e", ".[server,dev,torch,integrations]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Check the docs: every example in docs/ and the README is run or at least parsed."""
    # docs/tensors.md runs a torch example, docs/integrations/ one per framework
    session.install("-e", ".[server,dev,torch,integrations]")
    session.run("python", "docs/check.py")
