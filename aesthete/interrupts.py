"""Ctrl-C that a fork cannot swallow.

Python raises KeyboardInterrupt from its SIGINT handler at the next line of Python that runs. Where
that line is in one of ``os.fork``'s callbacks (``logging`` registers one, and every decode pool and
DataLoader start forks), the exception is printed as "Exception ignored" and dropped: the run went on.
(The handler installed here keeps that message off the terminal too.)
A test that pressed Ctrl-C as a training epoch ended saw it about one time in five; ``score``, which
ignores a second Ctrl-C while it saves, could not be stopped at all then.

Where this code starts child processes (``score``'s decode pool, the training loaders), it holds SIGINT
back while it does (:func:`held_while_starting_children`): a Ctrl-C then reaches the main process just
after, where it is raised like any other, and reaches each child only once the child ignores it
(:func:`release_in_child`). Without that, a child forked as Ctrl-C came died of it, with a traceback, and
the main process met a broken pool or loader instead of the interrupt.

For the other forks, the handler the commands install here also records the press, and the loops that
run for long call :func:`raise_if_pressed` at each step, which raises the interrupt again if it was lost.
Whoever catches KeyboardInterrupt and goes on in the same process (``aesthete.score`` returns its
summary) calls :func:`clear`. Without :func:`install` (plain Python API use) nothing is recorded and the
calls do nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_pressed = False
_unraisablehook = sys.unraisablehook  # the one in place before install()


def install(*, once: bool = False) -> None:
    """Handle SIGINT here; with ``once``, a second Ctrl-C is ignored (``score`` is saving by then)."""
    global _unraisablehook

    def on_sigint(signum: int, frame: object) -> None:
        global _pressed
        _pressed = True
        if once:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt

    if sys.unraisablehook is not _without_interrupts:  # installed once per process, however many runs
        _unraisablehook, sys.unraisablehook = sys.unraisablehook, _without_interrupts
    signal.signal(signal.SIGINT, on_sigint)


def _without_interrupts(info: sys.UnraisableHookArgs) -> None:
    if not issubclass(info.exc_type, KeyboardInterrupt):  # that one is recorded, and raised again
        _unraisablehook(info)


def raise_if_pressed() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that was pressed and not yet handled."""
    if _pressed:
        clear()
        raise KeyboardInterrupt


def pressed() -> bool:
    """Whether a Ctrl-C was pressed and not yet handled."""
    return _pressed


def clear() -> None:
    """The interrupt is handled: forget the press."""
    global _pressed
    _pressed = False


@contextlib.contextmanager
def held_while_starting_children() -> Iterator[None]:
    """Hold SIGINT back while the block starts child processes; a Ctrl-C that comes meanwhile is raised
    as the block ends.

    Blocking SIGINT in this thread keeps it from the children, which inherit the mask. It does not keep
    it from this process: the kernel then hands a terminal's Ctrl-C to another thread (torch's, Rich's),
    and Python runs its handler in the main thread all the same, so the KeyboardInterrupt came in the
    middle of a DataLoader's start, after a worker's fork and before the loader knew of it. That worker
    outlived ``aesthete train``, holding its output open (the test that waits for it timed out on CI).
    So the main thread's handler only notes the press meanwhile, and the press is replayed at the end."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks (and no fork)
        yield
        return
    pressed_meanwhile: list[int] = []
    handler = None
    if threading.current_thread() is threading.main_thread():  # only it may set handlers (and runs them)
        handler = signal.signal(signal.SIGINT, lambda signum, frame: pressed_meanwhile.append(signum))
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        # The mask first: a press still pending comes now and is noted; the handler's KeyboardInterrupt,
        # raised once it is back, must not leave SIGINT blocked.
        signal.pthread_sigmask(signal.SIG_SETMASK, before)
        if handler is not None:
            signal.signal(signal.SIGINT, handler)
        if pressed_meanwhile:
            signal.raise_signal(signal.SIGINT)  # to this thread, as it came: the handler's answer, whatever it is


def release_in_child() -> None:
    """In a child started under :func:`held_while_starting_children`, once it ignores SIGINT: unblock it
    (a Ctrl-C held back until now is then dropped, as ignored)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold a Ctrl-C back while the block runs (a file written and the record of it: both or neither); one
    that comes meanwhile is raised as the block ends."""
    with held_while_starting_children():  # the same mask and replay; no children are started here
        yield
