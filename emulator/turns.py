"""The server's turn, as the app sees it.

On local storage the server runs the app for one request at a time (see :class:`emulator.serving.Server`)
and lends each request a callable under :data:`LEAVE_TURN` that gives its turn up. The app calls
:func:`leave_turn` before work that takes long without needing the interpreter for others (a bcrypt
comparison, hashing a whole upload), so that no request makes the others wait for it.
"""

from __future__ import annotations

import typing as t

#: The WSGI environ key of the callable that gives up the request's turn; absent without turns.
LEAVE_TURN = "emulator.leave_turn"


def leave_turn(environ: t.Mapping[str, t.Any]) -> None:
    """Give up the request's turn, if the server gave it one."""
    leave = environ.get(LEAVE_TURN)
    if leave is not None:
        leave()
