"""Developer sessions: ``nox -s tests lint typecheck bench docs``.

Each session installs what it needs into its own virtual environment, so a clean
checkout needs only ``pip install nox`` (``.ci/run`` does exactly that).
"""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = os.environ.get("GRADEXP_NOX_PYTHON") or None  # None: the interpreter running nox


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole test suite against a real server, databases, S3 (moto), chromium and a kernel."""
    session.install("-e", ".[server,dev,torch]")
    session.run("pytest", *(session.posargs or ["tests"]))


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (style and common bugs) and import-linter (the layers of gradexp/)."""
    session.install("ruff>=0.6", "import-linter>=2.0")
    session.run("ruff", "check", "gradexp", "tests", "benchmarks", "examples", "noxfile.py")
    session.run(
        "ruff", "format", "--check", "gradexp", "tests", "benchmarks", "examples", "noxfile.py"
    )
    # pyproject's [tool.importlinter]: imports point down the layers, function-level ones too.
    session.run("lint-imports", env={"PYTHONPATH": os.getcwd()})


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    """mypy over the package."""
    session.install("-e", ".[server,dev]", "mypy>=1.10")
    session.run("mypy")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Every benchmark under benchmarks/, each printing its figures beside a same-run baseline."""
    session.install("-e", ".[server,dev,torch]")
    session.run("python", "benchmarks/run_all.py", *session.posargs)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Check the docs: every example in docs/ and the README is run or at least parsed."""
    session.install("-e", ".[server,dev,torch]")  # docs/tensors.md runs a torch example
    session.run("python", "docs/check.py")
