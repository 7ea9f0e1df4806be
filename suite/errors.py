"""The one family of user errors: caught once by the CLI, printed as one line, exit status 2."""


class SuiteError(Exception):
    """Bad input from the user: a scenario, a file, a name. Never a bug in suite itself."""


class ScenarioError(SuiteError):
    """An error inside a scenario file, located by the file and the key path within it."""

    def __init__(self, file: str, path: str, message: str):
        message = one_line(message)
        self.file, self.path, self.message = file, path, message
        located = f"{file}: {path}: {message}" if path else f"{file}: {message}"
        super().__init__(located)


QUOTE_LIMIT = 200


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """repr(value) for a message, cut to `limit` characters: a hostile value is not echoed whole."""
    text = repr(value) if not isinstance(value, (dict, list, tuple)) or len(value) < 100 else f"<{type(value).__name__} of {len(value):,} items>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message: enough for a one-line error."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]


class RunInterrupted(Exception):
    """Ctrl-C (or SIGTERM) during a run: what finished is saved and the run can be resumed."""

    def __init__(self, run_dir, finished: int, total: int):
        self.run_dir, self.finished, self.total = run_dir, finished, total
        super().__init__(f"interrupted after {finished} of {total} variants")


def one_line(message: str, limit: int = 600) -> str:
    """A message as one line of at most `limit` characters, whatever it quotes."""
    text = " ".join(str(message).split("\n"))
    return text if len(text) <= limit else text[:limit - 1] + "…"
