"""Model files the suite reads and writes for backends: the ONNX export and reader."""
