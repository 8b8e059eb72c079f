"""Exit codes of `hedged run` (and the other commands), and the start-up failures that choose them.

Why documented numbers: systemd decides from the exit status whether a restart can help
(deploy/systemd/hedged.service lists the ones it cannot in RestartPreventExitStatus=).

    0  stopped on request (SIGTERM/SIGINT)
    1  other failure (audit store unreadable or unwritable, an unexpected error)
    2  bad input: configuration, arguments, a secret that cannot be read
    3  the account is locked by another keeper (at start, or it took the lock from us while running)
    4  the exchange stayed unreachable for [keeper] start_timeout seconds (transient: a restart may help);
       for `hedged command`: the keeper did not answer over MQTT
    5  the exchange refused us at start for good: API key/permission, unknown market (fix the config)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_BAD_INPUT = 2
EXIT_LOCKED = 3
EXIT_UNREACHABLE = 4
EXIT_REFUSED = 5
EXIT_NO_ANSWER = 4  # `hedged command` only


class StartFailed(Exception):
    """The keeper could not start (or must stop: the account was taken); `str()` is the one line for the
    operator, `code` the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
