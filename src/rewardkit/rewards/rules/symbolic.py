"""Bounded symbolic comparison for the math rule: math-verify/sympy run in persistent helper
processes that the caller waits on with a deadline and kills on timeout.

sympy cannot be interrupted inside a thread, and math-verify's own timeouts use ``signal.alarm``
(main thread only), so neither is a real bound from an RL trainer's worker threads or processes.
A helper process is: the caller polls its pipe (works in any thread), kills it when the deadline
passes, and the next call starts a fresh one.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

#: address-space limit of a helper process (a runaway sympy gets MemoryError, not the machine)
HELPER_MEMORY_BYTES = 3 * 1024**3
#: at most this many helper processes per calling process (threads beyond it wait for a free one)
MAX_HELPERS = max(1, os.cpu_count() or 1)
HELPER_STARTUP_SECONDS = 60.0


# ------------------------------------------------------------------------- symbolic (in helper)
def _symbolic_equal(gold: str, pred: str) -> tuple[bool | None, str | None]:
    """math-verify comparison; runs inside a helper process only (it may take unbounded time)."""
    import sympy
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    from .numbers import approximates, parse_number, terminates

    from latex2sympy2_extended.latex2sympy2 import NormalizationConfig

    # units=False: the math rule has already dropped the units its policy knows (18 dollars, 5 cm);
    # math-verify's own list would also drop a variable (7 t, 10 m, 8 ab -> 7, 10, 8)
    normalization = NormalizationConfig(basic_latex=True, units=False, malformed_operators=True, nits=True, boxed="all", equations=False)
    config = [LatexExtractionConfig(normalization_config=normalization), ExprExtractionConfig()]
    g = parse(f"${gold}$", extraction_config=config, parsing_timeout=None)
    if not g:
        return None, "gold answer could not be parsed"
    p = parse(f"${pred}$", extraction_config=config, parsing_timeout=None)
    if not p:
        return False, "answer could not be parsed as math"
    # the rounding allowance against a constant with no finite decimal form (sqrt(2)/2, pi, 1/3)
    for dec_text, other in ((pred, g[0]), (gold, p[0])):
        m = re.fullmatch(r"-?\d*\.(\d{3,})", dec_text.replace(" ", ""))
        if m and isinstance(other, sympy.Expr) and other.is_number and other.is_real:
            places = len(m.group(1))
            dec = parse_number(dec_text)
            if other.is_rational is False:
                value = Fraction(str(sympy.N(other, places + 20)))
                return approximates(dec[0], places, value) if dec else False, None
            if other.is_Rational and not terminates(Fraction(int(other.p), int(other.q))):
                return approximates(dec[0], places, Fraction(int(other.p), int(other.q))) if dec else False, None
    if verify(g, p, timeout_seconds=None):
        return True, None
    # math-verify reads an inequality answer against an interval gold but not the other way round:
    # x >= 5 and [5, oo) are the same set either way
    relations = [isinstance(side[0], sympy.core.relational.Relational) and not isinstance(side[0], sympy.Eq) for side in (g, p)]
    sets = [isinstance(side[0], sympy.Set) for side in (g, p)]
    if relations[0] and sets[1] or relations[1] and sets[0]:
        return bool(verify(p, g, timeout_seconds=None)), None
    return False, None


def _helper_main() -> None:
    """Loop of a helper process: one JSON request per stdin line, one JSON reply per stdout line."""
    import logging
    import resource

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray prints must not corrupt the protocol
    logging.disable(logging.WARNING)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (HELPER_MEMORY_BYTES, HELPER_MEMORY_BYTES))
    except (ValueError, OSError):
        pass
    parent = os.getppid()

    def orphan_watch() -> None:  # a helper never outlives its caller
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=orphan_watch, daemon=True).start()
    _symbolic_equal("\\frac{1}{2}", "0.5")  # warm up sympy/antlr before saying ready
    reply.write("ready\n")
    for line in sys.stdin:
        request = json.loads(line)
        try:
            equal, reason = _symbolic_equal(request["gold"], request["pred"])
        except MemoryError:
            equal, reason = None, "symbolic comparison ran out of memory"
        except RecursionError:
            equal, reason = None, "symbolic comparison hit the recursion limit"
        except Exception as err:  # noqa: BLE001 - reported, never raised into the caller
            equal, reason = None, f"symbolic comparison raised {type(err).__name__}"
        reply.write(json.dumps({"equal": equal, "reason": reason}) + "\n")


# --------------------------------------------------------------------------------- helper pool
class HelperTimeout(Exception):
    pass


class HelperDied(Exception):
    pass


class _Helper:
    """One persistent helper process and its pipes."""

    def __init__(self) -> None:
        src = str(Path(__file__).resolve().parents[3])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        code = "from rewardkit.rewards.rules.symbolic import _helper_main; _helper_main()"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, env=env, close_fds=True,
        )
        self._buffer = b""
        try:
            if self._read_line(HELPER_STARTUP_SECONDS) != b"ready":
                raise HelperDied("helper did not start")
        except Exception:
            self.kill()
            raise

    def _read_line(self, seconds: float) -> bytes:
        deadline = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        poller = select.poll()  # not select.select: it fails for descriptors above 1023
        poller.register(fd, select.POLLIN | select.POLLHUP)
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise HelperTimeout()
            if poller.poll(max(1, int(left * 1000))):
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise HelperDied(f"helper exited (code {self.proc.poll()})")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def ask(self, gold: str, pred: str, seconds: float) -> tuple[bool | None, str | None]:
        data = (json.dumps({"gold": gold, "pred": pred}) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.proc.stdin.fileno(), data) :]
        except OSError as err:
            raise HelperDied(f"helper pipe closed ({err})") from err
        answer = json.loads(self._read_line(seconds))
        return answer["equal"], answer["reason"]

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class _HelperPool:
    """Helpers shared by all threads of one process; a thread borrows one per comparison."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[_Helper] = []
        self.count = 0
        self.cond = threading.Condition()

    def compare(self, gold: str, pred: str, seconds: float) -> tuple[bool | None, str | None]:
        helper = self._acquire()
        healthy = False
        try:
            result = helper.ask(gold, pred, seconds)
            healthy = True
            return result
        except HelperTimeout:
            return None, f"timeout: symbolic comparison took longer than {seconds:g}s (helper killed)"
        except HelperDied as err:
            return None, f"symbolic helper died: {err}"
        finally:
            self._release(helper, healthy)

    def _acquire(self) -> _Helper:
        with self.cond:
            while not self.idle and self.count >= self.size:
                self.cond.wait()
            if self.idle:
                return self.idle.pop()
            self.count += 1
        try:
            return _Helper()
        except BaseException:
            with self.cond:
                self.count -= 1
                self.cond.notify()
            raise

    def _release(self, helper: _Helper, healthy: bool) -> None:
        if not healthy:
            helper.kill()
        with self.cond:
            if healthy:
                self.idle.append(helper)
            else:
                self.count -= 1
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            helpers, self.idle = self.idle, []
            self.count -= len(helpers)
        for helper in helpers:
            helper.kill()


_POOL: _HelperPool | None = None
_POOL_LOCK = threading.Lock()
_INHERITED: list[_HelperPool] = []  # a forked child's copy of the parent's pool: kept, never used


def _pool() -> _HelperPool:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = _HelperPool(MAX_HELPERS)
        return _POOL


def _after_fork_in_child() -> None:
    """A forked worker (e.g. RuleReward's process pool) must not talk to its parent's helpers:
    close its copies of their pipes and start its own pool on first use."""
    global _POOL, _POOL_LOCK
    _POOL_LOCK = threading.Lock()
    if _POOL is not None:
        for helper in _POOL.idle:
            for pipe in (helper.proc.stdin, helper.proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        _INHERITED.append(_POOL)
        _POOL = None


def shutdown_helpers() -> None:
    """Stop this process's helper processes (they are restarted on the next symbolic comparison)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown_helpers)
