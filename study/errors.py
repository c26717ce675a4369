"""The one exception the command line turns into a one-line message instead of a traceback."""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and how to fix it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (docker stop, systemd, Slurm, Kubernetes), handled exactly like Ctrl-C."""
