"""The exceptions the command line turns into a one-line message instead of a traceback."""


CPU_OUT_OF_MEMORY = "can't allocate memory"  # in the message of torch's CPU allocator when it runs out


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, systemd, Slurm, Kubernetes), handled exactly like Ctrl-C."""


def one_line(exc: BaseException) -> str:
    """An exception as `Type: first line of its message`, for stored reasons and one-line errors."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def out_of_memory(exc: BaseException) -> bool:
    """torch's allocation failures: OutOfMemoryError on GPUs, a plain RuntimeError from the CPU allocator
    (told apart by name and message here, so that the command line needs no torch import to say it)."""
    return isinstance(exc, RuntimeError) and (type(exc).__name__ == "OutOfMemoryError" or CPU_OUT_OF_MEMORY in str(exc))
