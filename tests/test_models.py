"""Every reference model: shapes, finite outputs, a training step that lowers the loss, and a
save/load round trip that reproduces its outputs exactly. (Your-own-model forms: test_byo.py.)"""

import io

import pytest
import torch
import torch.nn.functional as F

from suite.errors import SuiteError
from suite.registry import DATASETS, MODELS

# Classifiers; generative decoders (task "generate") have their own tests in test_decoders.py.
REFERENCE_MODELS = [name for name in MODELS.names()
                    if MODELS.get(name).dataset is not None and MODELS.get(name).task == "classify"]


@pytest.fixture(scope="module", params=REFERENCE_MODELS)
def model_and_data(request):
    spec = MODELS.get(request.param)
    dataset_spec = DATASETS.get(spec.dataset)
    try:
        data = dataset_spec.load(dataset_spec.Params())
        torch.manual_seed(0)
        return spec, spec.build(spec.Params(), data), data
    except SuiteError as missing:  # an optional extra (e.g. bert) is not installed
        pytest.skip(str(missing))


def test_forward_shape_and_finite(model_and_data):
    _, model, data = model_and_data
    model.eval()
    with torch.inference_mode():
        out = model(data.test.x[:7])
    assert out.shape == (7, data.num_classes)
    assert torch.isfinite(out).all()


def test_one_training_step_lowers_the_loss(model_and_data):
    _, model, data = model_and_data
    x, y = data.test.x[:8], data.test.y[:8]  # small: ResNet-50 at 224x224 is among them
    model.eval()  # dropout off, so the two losses are comparable
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = F.cross_entropy(model(x), y)
    assert after < before


def test_save_load_round_trip_is_exact(model_and_data):
    spec, model, data = model_and_data
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    twin = spec.build(spec.Params(), data)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval(), twin.eval()
    with torch.inference_mode():
        assert torch.equal(model(data.test.x[:16]), twin(data.test.x[:16]))
