"""How a reply's token probabilities are written in the reply_tokens table (schema 4).

In memory and on the wire a reply's tokens are {id, text, logprob, top: [{id,
text, logprob}, ...]} each (TurnFinished.tokens). Written that way, with ten
alternatives a token, they take about 625 bytes a token (measured on the
bundled model): a 500-token reply would add 300 KB to the file. Stored, each
token's text is written once per reply, keys are left out and log-probabilities
are rounded to 5 decimals (a probability's 0.001% at most; the view shows 0.1%):
about 240 bytes a token.

    {"v": 1, "texts": {"<id>": text, ...}, "tokens": [[id, logprob, [[id, logprob], ...]], ...]}
"""

from __future__ import annotations

import json
from typing import Any

FORMAT_VERSION = 1
DECIMALS = 5


def pack(tokens: list[dict[str, Any]]) -> str:
    texts: dict[str, str] = {}
    rows = []
    for token in tokens:
        texts[str(token["id"])] = token["text"]
        top = []
        for alt in token["top"]:
            texts[str(alt["id"])] = alt["text"]
            top.append([alt["id"], round(alt["logprob"], DECIMALS)])
        rows.append([token["id"], round(token["logprob"], DECIMALS), top])
    data = {"v": FORMAT_VERSION, "texts": texts, "tokens": rows}
    return json.dumps(data, separators=(",", ":"))


def unpack(text: str) -> list[dict[str, Any]] | None:
    """The tokens as pack() got them (log-probabilities rounded); None for a format
    this build does not know."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("v") != FORMAT_VERSION:
        return None
    texts: dict[str, str] = data["texts"]
    return [
        {
            "id": token,
            "text": texts[str(token)],
            "logprob": logprob,
            "top": [{"id": i, "text": texts[str(i)], "logprob": lp} for i, lp in top],
        }
        for token, logprob, top in data["tokens"]
    ]
