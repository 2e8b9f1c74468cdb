"""The deterministic synthetic generator: calibrated years of agency events for demos, tests and dashboards.

    events = generate(LEEDS_2019, seed=7)      # validated contract models, sorted by occurred_at
    to_jsonl(events, Path("leeds.jsonl"))      # or replay(events, publisher, speed=86400)

A scenario is data (published figures, scenarios.py); the generator is pure: the same scenario and seed
give the same events, ids included, on every machine. People are invented and pseudonymised with a fixed
demo key (ids.DEMO_PSEUDONYM_KEY), so the stream looks exactly like a real partnership's.
"""

from producers.simulate.figures import Figures, calibration_rows, figures
from producers.simulate.generator import generate
from producers.simulate.ids import DEMO_PSEUDONYM_KEY
from producers.simulate.replay import Publishes, replay, to_jsonl
from producers.simulate.scenarios import LEEDS_2019, LEICESTER_2019, SCENARIOS, Scenario

__all__ = [
    "DEMO_PSEUDONYM_KEY",
    "LEEDS_2019",
    "LEICESTER_2019",
    "SCENARIOS",
    "Figures",
    "Publishes",
    "Scenario",
    "calibration_rows",
    "figures",
    "generate",
    "replay",
    "to_jsonl",
]
