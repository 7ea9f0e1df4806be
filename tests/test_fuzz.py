"""A seeded fuzz of scenario files: mutations of the shipped scenarios, at the level of the data
(values replaced by hostile ones, keys dropped, added or misspelt, list items repeated) and of the
text (characters and lines deleted, inserted or repeated). Every case must validate, or fail with
exit status 2 and exactly one line on stderr: no traceback, no multi-line error."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import pytest
import yaml

from suite.__main__ import main
from tests.conftest import ROOT

CASES = 400
SEED = 20261201
HOSTILE = [None, True, False, 0, -1, 1, 2**31, 2**40, 10**30, 1.5, -0.0, 1e308, float("inf"), float("-inf"),
           float("nan"), "", "x" * 300, "a\x00b", "é✓", "../../../../etc/passwd", "<script>alert(1)</script>",
           "[link](http://example.com)", "${HOME}", "%(x)s", "{name}", [], {}, [[]], [None], [True], [-1],
           list(range(60)), {"name": "x"}, {"method": "int8_dynamic"}, {"a": {"b": {"c": [1, {"d": None}]}}},
           "mlp", "eager", "digits", "int8_dynamic", "magnitude", [0.5, 0.7], "1", "0.5", "true", "null"]
TEXT_NOISE = list(":-[]{}&*!|>'\"%@`#,?\t\n ") + ["&a ", "*a", "<<: ", "!!python/object:os.system ", "\\x00"]


def paths(data, prefix=()) -> list[tuple]:
    """Every key path into a nested structure of dicts and lists."""
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += paths(value, prefix + (i,))
    return found


def parent_of(data, path: tuple):
    for part in path[:-1]:
        data = data[part]
    return data


def mutate_data(data, rng: random.Random):
    data = copy.deepcopy(data)
    path = rng.choice([p for p in paths(data) if p])
    parent, last = parent_of(data, path), path[-1]
    action = rng.randrange(5)
    if action == 0:
        parent[last] = copy.deepcopy(rng.choice(HOSTILE))
    elif action == 1:
        del parent[last]
    elif action == 2 and isinstance(parent, dict):
        parent[rng.choice(["varaints", "modle", "x", "measure", "compress", "", "name", 3])] = copy.deepcopy(rng.choice(HOSTILE))
    elif action == 3 and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif isinstance(parent, dict) and isinstance(last, str) and last:
        parent[last[:-1] or "_"] = parent.pop(last)  # a typo
    return data


def mutate_text(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        where = rng.randrange(len(text) + 1)
        action = rng.randrange(4)
        if action == 0:
            text = text[:where] + text[where + 1:]
        elif action == 1:
            text = text[:where] + rng.choice(TEXT_NOISE) + text[where:]
        elif action == 2:
            lines = text.splitlines(keepends=True)
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "".join(lines)
        else:
            lines = text.splitlines(keepends=True)
            del lines[rng.randrange(len(lines))]
            text = "".join(lines)
    return text


def cases() -> list[tuple[str, str]]:
    rng = random.Random(SEED)
    sources = sorted((ROOT / "scenarios").glob("*.yaml"))
    texts = {p.name: p.read_text() for p in sources}
    made = []
    for i in range(CASES):
        name = rng.choice(sorted(texts))
        if i % 2:
            made.append((f"{i}-text-{name}", mutate_text(texts[name], rng)))
        else:
            data = mutate_data(yaml.safe_load(texts[name]), rng)
            made.append((f"{i}-data-{name}", yaml.safe_dump(data, allow_unicode=True, sort_keys=False)))
    return made


def test_fuzzed_scenarios_validate_or_fail_in_one_line(tmp_path: Path, capsys):
    failures = []
    outcomes = {0: 0, 2: 0}
    for label, text in cases():
        path = tmp_path / f"{label}.yaml"
        path.write_text(text, encoding="utf-8")
        code = main(["validate", str(path)])  # an exception here is a bug the fuzz found
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        outcomes[code] = outcomes.get(code, 0) + 1
        if code not in (0, 2) or len(err) != (code == 2) or any("Traceback" in line for line in err):
            failures.append((label, code, err[:3]))
        elif err and not err[0].startswith(f"error: {path}"):
            failures.append((label, code, err[:1]))
    assert not failures, failures[:5]
    assert outcomes[2] > CASES // 2 and outcomes[0] > 10, outcomes  # the mutations reach both outcomes


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "scenarios").glob("*.yaml")))
def test_shipped_scenarios_still_validate(name, capsys):
    assert main(["validate", str(ROOT / "scenarios" / name)]) == 0
