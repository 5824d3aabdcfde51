"""onnxruntime session options of the models that run inside a streaming worker."""

from __future__ import annotations

from typing import Any


def worker_session_options(threads: int, *, allow_spinning: bool, denormal_as_zero: bool) -> Any:
    """Options of a CPU session that shares the worker's cores with its event loop and Kafka clients.

    - ``allow_spinning``: spinning intra-op threads answer the next run a little sooner but burn the cores the
      worker's event loop, Kafka clients and co-located servers need (``finpulse bench pipeline``, spinning vs not:
      model alone 747 vs 629 texts/s, end to end 286 vs 362 docs/s).
    - ``denormal_as_zero``: padded positions of the attention scores hold the dtype's minimum; exp() of those
      underflows through denormals, which x86 handles slowly. Without flush-to-zero the int8 sentiment model's
      Softmax took 18% of a batch-32 run (ORT profile), with it ~0%; logits are bit-identical on twitter-fin valid.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    options.add_session_config_entry("session.set_denormal_as_zero", "1" if denormal_as_zero else "0")
    options.log_severity_level = 3
    return options
