"""The project files a module runs, found from its imports, and a digest of their code.

Two users, one answer:

* the pretrain checkpoint store keys a checkpoint by the code that trained it, so a run
  interrupted before a code change is never resumed after it (``simclr.core.checkpoint``);
* a test derives each stage's files from its entry point (``stages/<stage>.py``) and fails
  when dvc.yaml does not list one of them, so DVC reruns a stage whenever code it runs changes.

Imports are read from the syntax tree, nothing is executed, so an import inside a function
counts as much as one at the top of a module. The digest is taken over the syntax tree too:
comments and formatting do not count; anything that can change what runs (statements, names,
literals, docstrings) does.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "simclr"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/simclr


def _module_file(name: str, beside: Path) -> Path | None:
    """The project file of module ``name``: in the package (``simclr.core.loss`` -> src/simclr/core/loss.py) or,
    for a script, a module beside it (``stages/_local_src.py``); else None."""
    parts = name.split(".")
    if parts[0] == PACKAGE:
        base = PACKAGE_DIR.joinpath(*parts[1:])
    elif not beside.is_relative_to(PACKAGE_DIR):
        base = beside.joinpath(*parts)
    else:
        return None
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(tree: ast.AST, package: str) -> set[str]:
    """Every module an import statement anywhere in ``tree`` may load (``from m import x``: m and m.x)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{anchor}.{node.module}" if node.module else anchor
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    # importing a.b.c runs a/__init__.py and a/b/__init__.py first
    return {".".join(n.split(".")[:i]) for n in names for i in range(1, n.count(".") + 2)}


def project_imports(entry: str | Path) -> list[Path]:
    """``entry`` and every project file it imports, transitively; sorted."""
    seen: set[Path] = set()
    todo = [Path(entry).resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = ".".join((PACKAGE, *path.relative_to(PACKAGE_DIR).parent.parts)) if path.is_relative_to(PACKAGE_DIR) else ""
        for name in _imported_modules(ast.parse(path.read_text(), str(path)), package):
            found = _module_file(name, path.parent)
            if found is not None and found not in seen:
                todo.append(found)
    return sorted(seen)


def source_digest(files: list[Path]) -> str:
    """sha256 over each file's package path and syntax tree (comments and formatting excluded)."""
    h = hashlib.sha256()
    for name, path in sorted((_display_name(p), p) for p in files):
        h.update(name.encode() + b"\0")
        h.update(ast.dump(ast.parse(path.read_text(), str(path))).encode() + b"\0")
    return h.hexdigest()


def _display_name(path: Path) -> str:
    """simclr/core/loss.py for a package file (where the project lives does not matter), else the name."""
    path = path.resolve()
    return path.relative_to(PACKAGE_DIR.parent).as_posix() if path.is_relative_to(PACKAGE_DIR) else path.name
