"""Registered inference backends. One file per backend; one registration line each."""

from suite.registry import BACKENDS

BACKENDS.register("eager", "suite.backends.eager:EagerBackend")
BACKENDS.register("compile", "suite.backends.compile:CompileBackend")
BACKENDS.register("onnxruntime", "suite.backends.onnxruntime:OnnxRuntimeBackend")
BACKENDS.register("openvino", "suite.backends.openvino:OpenVinoBackend")
BACKENDS.register("tensorrt", "suite.backends.tensorrt:TensorRtBackend")
BACKENDS.register("llamacpp", "suite.backends.llamacpp:LlamaCppBackend")
BACKENDS.register("ort_genai", "suite.backends.ort_genai:OrtGenaiBackend")
BACKENDS.register("openvino_genai", "suite.backends.openvino_genai:OpenVinoGenaiBackend")
BACKENDS.register("endpoint", "suite.backends.endpoint:EndpointBackend")
