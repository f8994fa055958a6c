"""Run in a deployment's environment: each named user's top 10 as training's
evaluation ranks them with everything known now (training.rating.ranking.ranking_now)
and the rating champion's own blend and graph, printed as JSON {user: [[item, score]]}.

    python -m tests.helpers.ranking_now USER [USER ...]
"""

import json
import sys

from portrait.privacy.idkey import verified_id_key
from portrait.privacy.pseudonyms import pseudonymize
from portrait.settings import get_settings
from portrait.store import database
from registry import models, tracking
from training.rating.protocols import Shop
from training.rating.ranking import ranking_now


def main(users: list[str]) -> None:
    settings = get_settings()
    tracking.configure(settings)
    engine = database.engine(settings)
    key = verified_id_key(settings, engine)
    by_pseudonym = {pseudonymize(u, key): u for u in users}
    champion = models.load(models.RATING)[0].unwrap_python_model()
    spec = {"weights": champion.blend, "short_history": champion.short_history}
    ranked = ranking_now(Shop.load(engine), champion.graph, spec, list(by_pseudonym), 20)  # room for ties at 10
    print(json.dumps({by_pseudonym[p]: top for p, top in ranked.items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
