"""Storage URLs as users write them: a bare path is SQLite, `grpc://host:port` the storage proxy,
anything else with :// an SQLAlchemy URL; and study names every storage can hold."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from study.errors import UserError

GRPC = "grpc://"
# Optuna's schema stores a study name as VARCHAR(512): PostgreSQL and MySQL refuse longer ones, SQLite
# would take them, so the limit holds for every storage and a study moves between them
MAX_STUDY_NAME = 512


def check_study_name(name: str) -> None:
    """A study name every storage can hold (the names of derived studies included)."""
    if len(name) > MAX_STUDY_NAME:
        raise UserError(f"study name {name[:40]}... is {len(name)} characters: a study name holds at most "
                        f"{MAX_STUDY_NAME}; pass a shorter --study-name")


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL (None for other databases)."""
    if not url.startswith("sqlite:"):
        return None
    return Path(url.removeprefix("sqlite:").removeprefix("///").partition("?")[0] or ":memory:")


def default_url(space_name: str) -> str:
    return f"sqlite:///runs/{space_name}.db"


def url(text: str) -> str:
    """A bare path to a .db file means SQLite; anything with :// is an SQLAlchemy URL."""
    return text if "://" in text else f"sqlite:///{text}"


def existing_url(text: str) -> str:
    """The URL of a study storage that must already exist (commands that read a finished study)."""
    found = url(text)
    path = sqlite_path(found)
    if path is not None and not path.is_file():
        raise UserError(f"{text} does not exist; pass the .db file that `python -m study run` wrote")
    return found


def redacted(url: str) -> str:
    """A URL as it may be printed: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def grpc_address(url: str) -> tuple[str, int] | None:
    """Host and port of a grpc://host:port URL (None for other storages)."""
    if not url.startswith(GRPC):
        return None
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or parts.path.strip("/") or parts.query:
        raise UserError(f"storage {url!r} is not a proxy address: write grpc://host:port, e.g. grpc://127.0.0.1:13000 "
                        "(start the proxy with `python -m study storage-proxy <database URL> --port 13000`)")
    return parts.hostname, port
