"""The exceptions the command line turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, systemd, Slurm, Kubernetes), handled exactly like Ctrl-C."""


def one_line(exc: BaseException) -> str:
    """An exception as `Type: first line of its message`, for stored reasons and one-line errors."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"
