from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from suite.__main__ import main

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--suite-backend", default=None, metavar="NAME",
                     help="run the scenarios of tests/test_scenarios.py on this backend (suite run --backend)")


@pytest.fixture(autouse=True)
def no_cache_root_left_behind():
    """An in-process run sets the cache root of the caches below the plugins (ONNX exports) for the
    process; reset it after each test, so that a later test's bare library call caches nothing
    (and exports afresh) whatever ran before it on the same worker."""
    yield
    from suite.build.weights import use_cache_root

    use_cache_root(None)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A private checkpoint cache, so tests never read or fill the user's."""
    return tmp_path / "cache"


@pytest.fixture
def write_scenario(tmp_path: Path):
    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def run_quick(tmp_path: Path, cache_dir: Path, capsys):
    """Run `suite run --quick` from this process (each variant still in its own unless `--in-process`
    is passed); return (exit status, stdout, stderr, results or None)."""
    def run(scenario: Path, *extra: str) -> tuple[int, str, str, dict | None]:
        out = tmp_path / "reports"
        status = main(["run", str(scenario), "--quick", "--out", str(out), "--cache-dir", str(cache_dir), *extra])
        captured = capsys.readouterr()
        found = sorted(out.glob("*/*/results.json"), key=lambda p: p.stat().st_mtime)
        return status, captured.out, captured.err, json.loads(found[-1].read_text()) if found else None

    return run


@pytest.fixture(scope="session")
def llama_folder(tmp_path_factory):
    """A 2-layer Llama (grouped-query attention, as SmolLM2) with a 400-token BPE of the pydoc text."""
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from models.nets.gpt2 import bpe_tokenizer
    from suite.datasets.text import TextParams, load_pydoc

    tokenizer = bpe_tokenizer(load_pydoc(TextParams()).train, 400)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id))
    folder = tmp_path_factory.mktemp("llama") / "tiny-llama"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def llama_scenario(folder: Path, variants: str, name: str) -> str:
    """A decoder scenario on the tiny Llama folder: an fp32 eager reference, then `variants`."""
    return f"""
        name: {name}
        dataset: pydoc
        model: {{name: hf_causal, path: {folder}}}
        baseline: fp32
        measure: {{generate: {{prompt_lens: [8], new_tokens: 4}}, batch_sizes: [1, 2]}}
        variants:
          - {{name: fp32}}
{variants}"""
