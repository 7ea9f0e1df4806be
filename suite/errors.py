"""The one family of user errors: caught once by the CLI, printed as one line, exit status 2."""

import re


class SuiteError(Exception):
    """Bad input from the user: a scenario, a file, a name. Never a bug in suite itself.

    `details`: the whole text behind the one-line message (a backend's own error), for the log."""

    def __init__(self, message: str = "", details: str | None = None):
        super().__init__(message)
        self.details = details


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
    big = isinstance(value, (dict, list, tuple)) and len(value) >= 100
    text = f"<{type(value).__name__} of {len(value):,} items>" if big else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message: enough for a one-line error."""
    return (str(exc).strip().splitlines() or [""])[0][:limit]


SOURCE_LOCATION = re.compile(r"(?:/|\b)[\w.+/-]*\.(?:h|hpp|hh|c|cc|cpp|cxx):\d+:?")
NOISE_LINE = re.compile(r"^(?:Exception from|Check '.*' failed at)\s*:?$")


def backend_message(text: str, limit: int = 300) -> str:
    """What a native library said, without its source locations and C++ signatures, in one line:
    ONNX Runtime's "[ONNXRuntimeError] : 1 : FAIL : ... model_load_utils.h:46 void f(...) Opset 30
    is ..." becomes "Opset 30 is ...", OpenVINO's "Exception from src/...cpp:84:" lines go."""
    kept = []
    for line in str(text).splitlines():
        line = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", line.strip())
        line = re.sub(r"Load model from \S+ failed:", "", line)
        line = drop_locations(line).strip()
        if line and not NOISE_LINE.match(line):
            kept.append(line)
    return one_line(" ".join(" ".join(kept).split()) or first_line(Exception(text)), limit)


def drop_locations(line: str) -> str:
    """The line less each source location and the C++ signature that follows one."""
    while (found := SOURCE_LOCATION.search(line)) is not None:
        rest = line[found.end():]
        signature = re.match(r"\s*[\w:<>,*&~ ]*?\w+::~?\w+\(", rest)
        if signature:
            depth, end = 1, signature.end()
            while end < len(rest) and depth:
                depth += {"(": 1, ")": -1}.get(rest[end], 0)
                end += 1
            rest = re.sub(r"^\s*const\b", "", rest[end:])
        line = line[:found.start()] + " " + rest.lstrip()
    return line


class RunInterrupted(Exception):
    """Ctrl-C (or SIGTERM) during a run: what finished is saved and the run can be resumed."""

    def __init__(self, run_dir, finished: int, total: int):
        self.run_dir, self.finished, self.total = run_dir, finished, total
        super().__init__(f"interrupted after {finished} of {total} variants")


def one_line(message: str, limit: int = 600) -> str:
    """A message as one line of at most `limit` characters, whatever it quotes."""
    text = " ".join(str(message).split("\n"))
    return text if len(text) <= limit else text[:limit - 1] + "…"
