"""ONNX export, int8 quantisation, output checks and model cards (torch; the ``train`` extra).

Nothing heavy is imported here: torch, onnx and onnxruntime are imported inside the functions.
"""
