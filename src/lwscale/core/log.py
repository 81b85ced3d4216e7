"""The default ``log`` of every function that can report progress: it says nothing."""


def quiet(msg: str) -> None:
    """A log that drops its message (the CLI passes a real one)."""
