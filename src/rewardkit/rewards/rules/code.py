"""Code unit-test reward: the fraction of the ``tests`` column that the completion's code passes,
run in the sandbox of :mod:`.sandbox` (see there for the isolation layers and what they contain)."""
from __future__ import annotations

import ast
from typing import Any

from .base import Verdict
from .sandbox import MAX_OUTPUT, SandboxResult, run_program, sandbox_info

__all__ = ["MAX_OUTPUT", "SandboxResult", "check_code", "extract_code", "prepare_tests", "run_sandboxed", "sandbox_info"]

PYTHON_LANGS = {"python", "py", "python3", "py3"}


def extract_code(text: str, blocks: str = "last") -> tuple[str | None, str]:
    """The program in a completion and where it came from: the last (``blocks="all"``: all,
    concatenated) fenced python block, else plain ``` blocks, else the whole text if it parses.
    An unclosed final fence (a truncated generation) counts as a block."""
    if blocks not in ("last", "all"):
        raise ValueError(f"blocks must be 'last' or 'all', got {blocks!r}")
    found: list[tuple[str, str]] = []  # (language, body)
    lang, body = None, []
    for line in text.splitlines():
        stripped = line.strip()
        if lang is None:
            if stripped.startswith("```"):
                lang, body = (stripped[3:].strip().split() or [""])[0].lower(), []
        elif stripped.startswith("```") and not stripped.strip("`"):
            found.append((lang, "\n".join(body)))
            lang = None
        else:
            body.append(line)
    if lang is not None:
        found.append((lang, "\n".join(body)))
    for wanted, source in ((PYTHON_LANGS, "python_block"), ({""}, "plain_block")):
        chosen = [b for lng, b in found if lng in wanted and b.strip()]
        if chosen:
            return ("\n\n".join(chosen) if blocks == "all" else chosen[-1]), source
    if not found and text.strip() and _parses(text):
        return text, "text"
    return None, "none"


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except Exception:  # SyntaxError, ValueError (NUL bytes), RecursionError, MemoryError
        return False
    return True


def prepare_tests(tests: Any, entry_point: str | None = None) -> tuple[str, Any, int]:
    """``(mode, payload, total)`` for the sandbox, or ValueError saying why the tests are unusable.

    A list holds one test per entry. A string is test code: each top-level ``assert`` is a test and
    other statements are setup; without top-level asserts the whole string is one test (HumanEval's
    ``def check(candidate)`` is called with ``entry_point`` when it is given and not already called).
    A string holding a Python list of strings is read as that list."""
    if tests is None:
        raise ValueError("no tests given")
    if isinstance(tests, str):
        try:
            tree = ast.parse(tests)
        except Exception as err:
            raise ValueError(f"the tests do not parse: {type(err).__name__}: {err}") from None
        if len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[0].value, (ast.List, ast.Tuple)):
            try:
                listed = ast.literal_eval(tree.body[0].value)
            except ValueError:
                listed = None
            if isinstance(listed, (list, tuple)) and all(isinstance(t, str) for t in listed):
                return prepare_tests(list(listed), entry_point)
        if not tree.body:
            raise ValueError("no tests given (empty test code)")
        asserts = sum(isinstance(node, ast.Assert) for node in tree.body)
        if not asserts and entry_point:
            defines = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body)
            calls = any(isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and getattr(n.value.func, "id", None) == "check" for n in tree.body)
            if defines and not calls:
                if not entry_point.isidentifier():
                    raise ValueError(f"entry_point {entry_point!r} is not an identifier")
                tests = f"{tests}\n\ncheck({entry_point})\n"
        return "script", tests, max(asserts, 1)
    if isinstance(tests, (list, tuple)):
        if not tests:
            raise ValueError("no tests given (empty list)")
        for i, test in enumerate(tests):
            if not isinstance(test, str):
                raise ValueError(f"test {i} is {type(test).__name__}, not a string of test code")
            try:
                ast.parse(test)
            except Exception as err:
                raise ValueError(f"test {i} does not parse: {type(err).__name__}: {err}") from None
        return "list", list(tests), len(tests)
    raise ValueError(f"unsupported tests format: {type(tests).__name__} (want a list of test snippets or a string of test code)")


# --------------------------------------------------------------------------- the check


def check_code(completion: str, *, tests: Any, entry_point: str | None = None, timeout: float = 5.0, memory_mb: int = 512, blocks: str = "last") -> Verdict:
    """Fraction of ``tests`` passed by the completion's code. ``None`` only when undecidable (no
    code, no usable tests, the sandbox itself failing); code that runs and fails scores 0."""
    try:
        mode, payload, total = prepare_tests(tests, entry_point)
    except ValueError as err:
        return Verdict(None, str(err))
    code, source = extract_code(completion, blocks)
    if code is None:
        return Verdict(None, "no code found", {"status": "no_code", "total": total})
    res = run_program(code, mode, payload, total, timeout, memory_mb, audit=True, max_output=4096)
    info = {"passed": res.passed, "total": total, "status": res.status, "error": res.error, "per_test": res.per_test, "code_from": source}
    if res.status == "sandbox_error":
        return Verdict(None, res.reason, {**info, "passed": None})
    return Verdict(res.passed / total, res.reason if res.status != "ok" else None, info)


def run_sandboxed(code: str, timeout: float = 5.0, memory_mb: int = 512, *, tests: Any = None, entry_point: str | None = None, audit: bool = True, max_output: int = MAX_OUTPUT) -> SandboxResult:
    """Run ``code`` (then ``tests``, if given) in the sandbox; time this for the per-call overhead.
    ``audit=False`` drops the audit hook, to test what the OS-level layers alone contain."""
    if tests is None:
        mode, payload, total = "list", [], 0
    else:
        mode, payload, total = prepare_tests(tests, entry_point)
    return run_program(code, mode, payload, total, timeout, memory_mb, audit=audit, max_output=max_output)
