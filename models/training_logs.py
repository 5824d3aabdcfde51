"""The simulated MIND-format logs the default recommender build trains and is evaluated on.

They are made once per artifacts dir with a fixed seed, and remade when the parameters that made them differ from
the wanted ones (recorded in :data:`PARAMETERS_FILE` beside them): a build always reads the logs its documented
figures came from.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PARAMETERS_FILE = "simulation.json"


@dataclass(frozen=True)
class LogParameters:
    """What a simulation of training logs depends on, besides the headline CSV."""

    users: int = 4500
    days: float = 7.0
    seed: int = 7
    article_limit: int = 6000

    def as_json(self, csv_file: Path) -> str:
        """The record of logs made from ``csv_file`` (by name: the data dir may move)."""
        return json.dumps({**asdict(self), "csv": csv_file.name}, sort_keys=True)


#: The default build's logs: 4,500 users hold out about 2,700 scorable impressions; a third of the users gives the
#: two-tower model a third of the clicks to learn from and a lower nDCG@10 (docs/experiments/recommender.md).
DEFAULT_LOGS = LogParameters()

#: The headlines simulated readers choose among, under the settings' data dir (FINPULSE_MODEL__DATA_DIR).
HEADLINES_CSV = Path("twitter-financial-news-sentiment") / "sent_train.csv"


def recorded_parameters(mind_dir: Path) -> str | None:
    """The parameters recorded with the logs of ``mind_dir``, or None (none recorded, or no logs)."""
    marker = mind_dir / PARAMETERS_FILE
    if not ((mind_dir / "behaviors.tsv").is_file() and (mind_dir / "news.tsv").is_file() and marker.is_file()):
        return None
    return marker.read_text(encoding="utf-8").strip()


def ensure_logs(mind_dir: Path, csv_file: Path, parameters: LogParameters = DEFAULT_LOGS) -> bool:
    """Simulate the logs of ``parameters`` into ``mind_dir`` unless they are there already; True when made now."""
    from finpulse.models.simulate import ClickSimulator, SimConfig, articles_from_csv, default_start, write_mind_logs

    wanted = parameters.as_json(csv_file)
    found = recorded_parameters(mind_dir)
    if found == wanted:
        return False
    if (mind_dir / "behaviors.tsv").is_file():
        logger.info("the simulated logs in %s were made with %s, not %s: simulating them again", mind_dir,
                    found or "unrecorded parameters", wanted)
    start = default_start()
    articles = articles_from_csv(csv_file, start, parameters.days, parameters.seed, limit=parameters.article_limit)
    simulator = ClickSimulator(articles, SimConfig(users=parameters.users, days=parameters.days), parameters.seed)
    n_news, n_impressions = write_mind_logs(simulator, mind_dir, start)
    (mind_dir / PARAMETERS_FILE).write_text(wanted + "\n", encoding="utf-8")
    logger.info("simulated %d impressions over %d articles into %s", n_impressions, n_news, mind_dir)
    return True
