"""The two-tower model on a tiny random BERT: training, export with its output check, serving runtime, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from finpulse.models.simulate import ClickSimulator, SimArticle, SimConfig, default_start, write_mind_logs

pytestmark = [pytest.mark.slow]

START = default_start()
WORDS = {"banks": "bank lender loan credit", "energy": "oil crude OPEC refinery", "tech": "chip software cloud AI"}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finpulse.export.testing import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def mind_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    articles = []
    for i in range(240):
        sector = list(WORDS)[i % 3]
        words = WORDS[sector].split()
        title = f"{words[i % 4]} {words[(i + 1) % 4]} news {i}"
        articles.append(SimArticle(f"{i:032x}", title, (), sector, "markets", 0, START - 86_400 + i * 1800.0))
    out = tmp_path_factory.mktemp("mind")
    write_mind_logs(ClickSimulator(articles, SimConfig(users=60, days=4), seed=1), out, START)
    return out


@pytest.fixture(scope="module")
def trained(tiny_bert: Path, mind_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finpulse.models.train_recommend import RecTrainConfig, train_recommend

    out = tmp_path_factory.mktemp("train")
    config = RecTrainConfig(base=str(tiny_bert), epochs=1.0, time_budget_s=120, trainable_layers=1, attention_dim=8,
                            history=10, batch_size=16, threads=1)
    result = train_recommend(config, mind_dir, out)
    assert result.metrics["train"]["steps"] > 0
    return out


def test_lower_plus_upper_is_the_full_encoder(tiny_bert: Path) -> None:
    import torch

    from finpulse.models.train_recommend import load_encoder, news_tower_module, tokenize_titles

    bert, tokenizer = load_encoder(str(tiny_bert))
    tower = news_tower_module(bert, 1).eval()
    ids, mask = tokenize_titles(tokenizer, ["bank loan growth", "oil falls on OPEC supply news today"], 24)
    with torch.no_grad():
        split = tower.upper(tower.lower(ids, mask), mask)
        full = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask[:, :, None].float()
        pooled = torch.nn.functional.normalize((full * m).sum(1) / m.sum(1), dim=-1)
    assert torch.allclose(split, pooled, atol=1e-5)


def test_export_check_and_runtime(trained: Path, mind_dir: Path, tmp_path: Path) -> None:
    from finpulse.export.recommend import export_recommend
    from finpulse.export.runtime.recommend import load_model
    from finpulse.models.train_recommend import load_mind

    data = load_mind(mind_dir, 1.0)
    titles = [n.title for n in list(data.news.values())[:20]]
    out = export_recommend(trained, tmp_path / "onnx", titles, eval_results=None)
    card = json.loads((out / "card.json").read_text())
    assert card["check"]["max_abs_embedding_diff"] < 1e-3
    assert "simulated" in (out / "MODEL_CARD.md").read_text()
    from finpulse.models.eval_recommend import METHODS, with_intervals

    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.8, size=(100, 4))
    evaluated = with_intervals({"popularity": base, METHODS[3]: np.clip(base * 1.3, 0, 1)})
    with_eval = export_recommend(trained, tmp_path / "onnx-eval", titles, eval_results=evaluated)
    text = (with_eval / "MODEL_CARD.md").read_text()
    tuned = evaluated[METHODS[3]]
    assert f"{tuned['ratio_to_popularity']:.2f}x popularity (95% CI {tuned['ratio_ci_low']:.2f}–" in text
    assert f"| {tuned['ndcg@10_ci_low']:.3f}–{tuned['ndcg@10_ci_high']:.3f} |" in text
    model = load_model(out, threads=1)
    assert model.encoder is not None
    emb = model.encoder.embed(titles)
    assert emb.shape == (20, model.dim)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    user = model.tower.encode(emb[:5])
    assert user.shape == (model.dim,)
    # Trained with categories (the default): the card names them and the worker adds their vectors.
    assert card["categories"] == {"categories": ["banks", "energy", "tech"], "subcategories": ["markets"]}
    assert card["check"]["max_abs_category_diff"] < 1e-3
    assert model.categories is not None and "category" in (out / "MODEL_CARD.md").read_text()
    bank, oil = model.news_vector(emb[0], ["JPM"], titles[0]), model.news_vector(emb[0], [], "crude oil")
    assert np.isclose(np.linalg.norm(bank), 1.0, atol=1e-5) and not np.allclose(bank, oil)
    # The candidate agent's batched form gives each article's vector of the one-at-a-time form.
    batched = model.news_vectors(emb[:2], [(["JPM"], titles[0]), ([], "crude oil")])
    assert np.allclose(batched[0], model.news_vector(emb[0], ["JPM"], titles[0]), atol=1e-6)
    assert np.allclose(batched[1], model.news_vector(emb[1], [], "crude oil"), atol=1e-6)


def test_export_check_catches_changed_category_vectors(trained: Path, tmp_path: Path) -> None:
    from finpulse.export.exceptions import ExportCheckError
    from finpulse.export.recommend import check_categories, export_recommend
    from finpulse.models.train_recommend import load_categories

    out = export_recommend(trained, tmp_path / "onnx", ["bank loan", "oil price"], None)
    categories = load_categories(trained)
    assert categories is not None
    emb = np.eye(categories.dim, dtype=np.float32)[:4]
    assert check_categories(categories, emb, out, 1e-3) < 1e-5
    changed = type(categories)(categories.categories, categories.category_vectors + 0.5, categories.subcategories,
                               categories.subcategory_vectors)
    with pytest.raises(ExportCheckError, match="category vectors"):
        check_categories(changed, emb, out, 1e-3)


def test_export_check_raises_a_named_error(trained: Path, mind_dir: Path, tmp_path: Path) -> None:
    from finpulse.export.exceptions import ExportCheckError
    from finpulse.export.recommend import check_outputs, export_recommend
    from finpulse.models.train_recommend import load_trained

    out = export_recommend(trained, tmp_path / "onnx", ["bank loan", "oil price"], None)
    tower, tokenizer, user, _ = load_trained(trained)
    with torch_no_grad():
        for p in tower.parameters():
            p.add_(0.5)  # the torch model no longer matches the exported graph
    with pytest.raises(ExportCheckError, match="news encoder"):
        check_outputs(tower, tokenizer, user, out, ["bank loan", "oil price"], 24)


def test_corrupt_artefact_is_refused(trained: Path, tmp_path: Path) -> None:
    from finpulse.export.recommend import export_recommend
    from finpulse.export.runtime.exceptions import ModelArtefactError
    from finpulse.export.runtime.recommend import load_model

    out = export_recommend(trained, tmp_path / "onnx", ["bank loan"], None)
    with (out / "user_tower.npz").open("ab") as f:
        f.write(b"x")
    with pytest.raises(ModelArtefactError, match="sha256"):
        load_model(out)


def test_evaluation_table(trained: Path, mind_dir: Path, tiny_bert: Path, tmp_path: Path) -> None:
    from finpulse.models.eval_recommend import (
        ATTRIBUTES,
        METHODS,
        ORACLE,
        auc,
        evaluate_recommend,
        format_table,
        mrr,
        ndcg,
        ratio_lines,
    )

    results = evaluate_recommend(mind_dir, trained, str(tiny_bert))
    assert list(results) == [*METHODS, ORACLE, ATTRIBUTES]  # simulated logs carry the simulator's truth files
    for r in results.values():
        assert 0.0 <= r["auc"] <= 1.0 and 0.0 <= r["ndcg@10"] <= 1.0 and r["impressions"] > 0
        assert r["ndcg@10_ci_low"] <= r["ndcg@10"] <= r["ndcg@10_ci_high"]
    tuned = results[METHODS[3]]
    assert tuned["ratio_ci_low"] <= tuned["ratio_to_popularity"] <= tuned["ratio_ci_high"]
    # Ranking by the simulator's own click probabilities is far better than chance.
    assert results[ORACLE]["auc"] > 0.7 and results[ORACLE]["ndcg@10"] > results["random"]["ndcg@10"]
    assert results[ATTRIBUTES]["auc"] > 0.6  # knowing what articles are about ranks well above chance
    assert len(format_table(results)) == 7
    ratio = results[METHODS[3]]["ndcg@10"] / results["popularity"]["ndcg@10"]
    assert ratio_lines(results)[0].startswith(f"fine-tuned nDCG@10 / popularity = {ratio:.2f}x (95% CI ")
    moved = tmp_path / "mind"
    moved.mkdir()
    for name in ("news.tsv", "behaviors.tsv"):
        (moved / name).write_bytes((mind_dir / name).read_bytes())
    assert list(evaluate_recommend(moved, None, str(tiny_bert))) == list(METHODS[:3])  # real MIND logs: no truth rows
    labels = np.asarray([0, 1, 0, 0])
    assert auc(labels, np.asarray([0.1, 0.9, 0.2, 0.3])) == 1.0
    assert mrr(labels, np.asarray([0.9, 0.8, 0.1, 0.0])) == 0.5
    assert ndcg(labels, np.asarray([0.1, 0.9, 0.2, 0.3]), 5) == 1.0


def torch_no_grad():  # noqa: ANN201 - a context manager from torch, imported lazily
    import torch

    return torch.no_grad()


def test_trainable_layers_beyond_the_base_train_all(tiny_bert: Path) -> None:
    from finpulse.models.exceptions import TrainingError
    from finpulse.models.train_recommend import load_encoder, news_tower_module

    bert, _ = load_encoder(str(tiny_bert))
    layers = len(bert.encoder.layer)
    assert news_tower_module(bert, layers + 3).split == 0
    assert news_tower_module(bert, 1).split == layers - 1
    assert news_tower_module(bert, 0).split == layers  # frozen encoder: only the user tower learns
    with pytest.raises(TrainingError, match="0 \\(frozen encoder\\) or more"):
        news_tower_module(bert, -1)


def test_frozen_encoder_trains_only_the_user_tower(tiny_bert: Path, mind_dir: Path, tmp_path: Path) -> None:
    import torch

    from finpulse.export.runtime.ranking import UserTower
    from finpulse.models.train_recommend import RecTrainConfig, load_encoder, load_trained, train_recommend

    config = RecTrainConfig(base=str(tiny_bert), epochs=1.0, time_budget_s=120, trainable_layers=0, attention_dim=8,
                            history=10, batch_size=16, threads=1)
    result = train_recommend(config, mind_dir, tmp_path)
    assert result.metrics["train"]["steps"] > 0
    base, _ = load_encoder(str(tiny_bert))
    tower, _, user, _ = load_trained(tmp_path)
    for (name, before), after in zip(base.state_dict().items(), tower.bert.state_dict().values(), strict=True):
        assert torch.equal(before, after), f"{name} moved although the encoder is frozen"
    untrained = UserTower.mean_pooling(user.dim)
    assert not np.allclose(user.p, untrained.p), "the user tower did not learn"


def test_training_without_categories_writes_no_category_vectors(tiny_bert: Path, mind_dir: Path, tmp_path: Path) -> None:
    from finpulse.export.recommend import export_recommend
    from finpulse.export.runtime.recommend import load_model
    from finpulse.models.train_recommend import RecTrainConfig, load_categories, train_recommend

    config = RecTrainConfig(base=str(tiny_bert), epochs=0.2, time_budget_s=60, trainable_layers=0, attention_dim=8,
                            history=10, batch_size=16, threads=1, categories=False)
    train_recommend(config, mind_dir, tmp_path / "train")
    assert load_categories(tmp_path / "train") is None
    out = export_recommend(tmp_path / "train", tmp_path / "onnx", ["bank loan"], None)
    model = load_model(out, threads=1, with_encoder=False)
    assert model.categories is None
    vector = np.arange(model.dim, dtype=np.float32)
    assert np.allclose(model.news_vector(vector, [], "bank loan"), vector / np.linalg.norm(vector))
    assert np.allclose(model.news_vectors(np.stack([vector, 2 * vector]), [([], "a"), (["JPM"], "b")]),
                       vector / np.linalg.norm(vector))
