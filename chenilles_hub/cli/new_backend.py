"""``chenilles new-backend NAME``: start a chain backend from the template.

The generated project (``chenilles-NAME/``) is complete from the start: a small account
chain in Python with a real channel contract (``ledger.py``), the backend that drives it,
the entry point, and a test module running the hub's conformance suite. A backend author
replaces the ledger with the chain's client and keeps the suite green. The template lives
in ``chenilles_hub/templates/backend`` (files ending in ``.tmpl``; ``__NAME__``, ``__PKG__``
``__TITLE__`` and ``__SYMBOL__`` are replaced, in paths too).
"""

from __future__ import annotations

import re
import sys
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

import click

from .root import main

_NAME = re.compile(r"[a-z][a-z0-9]{1,30}")


def render_backend(name: str, directory: Path) -> Path:
    """Write the template for backend ``name`` under ``directory``; return the project."""
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{name!r}: a backend name is 2 to 31 lower-case letters and digits, "
            "starting with a letter (it names the package chenilles_NAME)"
        )
    project = directory / f"chenilles-{name}"
    if project.exists():
        raise FileExistsError(f"{project} exists already")
    words = {
        "__NAME__": name,
        "__PKG__": f"chenilles_{name}",
        "__TITLE__": name.capitalize(),
        "__SYMBOL__": name[:4].upper(),
    }

    def fill(text: str) -> str:
        for key, value in words.items():
            text = text.replace(key, value)
        return text

    def copy(source: Traversable, target: Path) -> None:
        for entry in source.iterdir():
            if entry.is_dir():
                copy(entry, target / fill(entry.name))
            elif entry.name.endswith(".tmpl"):
                path = target / fill(entry.name.removesuffix(".tmpl"))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(fill(entry.read_text(encoding="utf-8")), encoding="utf-8")

    copy(resources.files("chenilles_hub") / "templates" / "backend", project)
    return project


@main.command("new-backend")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to create chenilles-NAME/.",
)
def new_backend_command(name: str, directory: str) -> None:
    """Create chenilles-NAME/, a chain backend project from the template: it installs
    (pip install -e), is listed by `chenilles backends` and passes the conformance suite."""
    try:
        project = render_backend(name, Path(directory))
    except (ValueError, FileExistsError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"created {project}")
    click.echo(f"  pip install -e '{project}[test]' && (cd {project} && pytest)")
