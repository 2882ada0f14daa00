"""Ctrl-C that a fork cannot swallow.

Python raises KeyboardInterrupt from its SIGINT handler at the next line of Python that runs. Where
that line is in one of ``os.fork``'s callbacks (``logging`` registers one, and every decode pool and
DataLoader start forks), the exception is printed as "Exception ignored" and dropped: the run went on.
(The handler installed here keeps that message off the terminal too.)
A test that pressed Ctrl-C as a training epoch ended saw it about one time in five; ``score``, which
ignores a second Ctrl-C while it saves, could not be stopped at all then.

So the handler the commands install here also records the press, and the loops that run for long call
:func:`raise_if_pressed` at each step, which raises the interrupt again if it was lost. Whoever catches
KeyboardInterrupt and goes on in the same process (``aesthete.score`` returns its summary) calls
:func:`clear`. Without :func:`install` (plain Python API use) nothing is recorded and the calls do nothing.
"""

from __future__ import annotations

import signal
import sys

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
