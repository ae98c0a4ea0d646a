"""Rules of the code base that a reader relies on, checked over src/ so they stay true."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _self_stores(function: ast.FunctionDef) -> dict[str, int]:
    return {node.attr: node.lineno for node in ast.walk(function)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name) and node.value.id == "self"}


def test_every_attribute_a_class_sets_is_set_in_its_init():
    """An attribute first assigned in some other method is one a reader of __init__ cannot know of."""
    late = []
    for path in sorted(SRC.rglob("*.py")):
        for cls in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)):
            methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
            declared = {t.id for n in cls.body for t in (n.targets if isinstance(n, ast.Assign) else
                        [n.target] if isinstance(n, ast.AnnAssign) else []) if isinstance(t, ast.Name)}
            declared |= {m.name for m in methods}  # properties and their setters
            initial = set()
            for method in methods:
                if method.name in ("__init__", "__post_init__"):
                    initial |= set(_self_stores(method))
            for method in methods:
                if method.name not in ("__init__", "__post_init__"):
                    late += [f"{path.relative_to(SRC)}:{line} {cls.name}.{name} (first set in {method.name})"
                             for name, line in _self_stores(method).items() if name not in initial | declared]
    assert late == []


def test_our_modules_are_imported_at_the_top_unless_a_comment_says_why():
    """A function-level import of our own modules hides a dependency; each one left states its reason
    (a comment on its line or the line above: start-up time, torch, ChimeraX only)."""
    unexplained = []
    for path in sorted(SRC.rglob("*.py")):
        lines = path.read_text().splitlines()
        for function in (n for n in ast.walk(ast.parse("\n".join(lines))) if isinstance(n, ast.FunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and node.level:
                    here = " ".join(lines[node.lineno - 1:node.end_lineno])
                    above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                    if "#" not in here and not above.startswith("#"):
                        unexplained.append(f"{path.relative_to(SRC)}:{node.lineno}: {here.strip()}")
    assert unexplained == []
