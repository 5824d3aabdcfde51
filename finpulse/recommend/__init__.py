"""Recommendations: click ingestion, the click simulator, MIND-format logs, ranking and the two-tower model.

Nothing heavy is imported here: Faust, onnxruntime, torch and uvicorn are imported inside functions.
"""
