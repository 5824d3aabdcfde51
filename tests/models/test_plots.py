from __future__ import annotations

from pathlib import Path

from finpulse.models.plots import plot_bench, plot_confusion_matrix, plot_training_curve


def test_plots_write_pngs(tmp_path: Path) -> None:
    history = {"train": [{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}],
               "val": [{"step": 2, "loss": 0.6, "accuracy": 0.7, "macro_f1": 0.6}]}
    for path in (
        plot_training_curve(history, tmp_path / "curve.png"),
        plot_confusion_matrix([[3, 1, 0], [0, 5, 1], [0, 0, 2]], ["negative", "neutral", "positive"], tmp_path / "cm.png"),
        plot_bench([{"backend": "a", "batch_size": 1, "seq_per_s": 10.0}, {"backend": "b", "batch_size": 1, "seq_per_s": 30.0}],
                   tmp_path / "bench.png"),
    ):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
