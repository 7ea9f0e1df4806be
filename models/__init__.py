"""The reference model zoo. One file per family, registering its models here, one line each.

The registration files hold parameters, training recipes and a build function only; the torch
code lives in models/nets/ and is imported when a model is built, so listing models and
validating scenarios never imports torch.
"""

from suite.registry import MODELS

MODELS.register("mlp", "models.mlp:SPEC")
MODELS.register("cnn", "models.cnn:SPEC")
MODELS.register("resnet", "models.resnet:CIFAR")
MODELS.register("resnet_imagenet", "models.resnet:IMAGENET")
MODELS.register("lstm", "models.lstm:SPEC")
MODELS.register("torchscript", "models.byo:TORCHSCRIPT")
MODELS.register("exported", "models.byo:EXPORTED")
MODELS.register("factory", "models.byo:FACTORY")
MODELS.register("bert", "models.bert:PRETRAINED")
MODELS.register("bert_small", "models.bert:SMALL")
MODELS.register("hf_folder", "models.byo:HF_FOLDER")
MODELS.register("onnx_file", "models.onnx_file:SPEC")
MODELS.register("busy", "models.busy:SPEC")
MODELS.register("gpt2", "models.gpt2:SMALL")
MODELS.register("gpt2_random", "models.gpt2:RANDOM")
MODELS.register("smollm2", "models.causal_lm:SMOLLM2")
MODELS.register("hf_causal", "models.causal_lm:HF_CAUSAL")
MODELS.register("gguf", "models.causal_lm:GGUF")
