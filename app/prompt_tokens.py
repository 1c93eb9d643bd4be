"""The prompt the model saw, as tokens: special tokens marked, counted per role.

The turn's own tokens stay in the worker, which is busy decoding; a short-lived
child process tokenizes instead (app.engine.prompt_tokenizer.prompt_tokens). It
loads only the model's vocabulary (llama.cpp's vocab_only: no weights, well
under a second), renders the conversation with the same chat template and
fallback as the worker, tokenizes it the same way, and sends back each token's
id, text and whether it is a special (control) token. Which role each token
belongs to comes from rendering the conversation one message at a time: where
each prefix ends in the full text.

With the turn's metrics, the first prompt_tokens_cached tokens came from the KV
cache and the rest were evaluated this turn.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.engine.prompting import Message

TEMPLATE_ROLE = "template"  # BOS and the header that asks the model to answer
ROLES = ("system", "user", "assistant", TEMPLATE_ROLE)


@dataclass
class PromptToken:
    id: int
    text: str
    special: bool
    role: str


@dataclass
class PromptTokens:
    tokens: list[PromptToken] = field(default_factory=list)
    chat_format: str = "plain"  # "template" or "plain"

    def counts(self) -> dict[str, int]:
        """Tokens per role; they add up to the prompt's token count."""
        seen = Counter(t.role for t in self.tokens)
        return {role: seen.get(role, 0) for role in ROLES}

    def split(self, cached: int) -> tuple[list[PromptToken], list[PromptToken]]:
        """(from the KV cache, evaluated this turn), given the turn's prompt_tokens_cached."""
        return self.tokens[:cached], self.tokens[cached:]


def kept_messages(messages: Sequence[Message], dropped: int) -> list[Message]:
    """The messages left after the worker dropped `dropped` of the oldest (system kept)."""
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    return system + rest[dropped:]


def role_of_offsets(boundaries: Sequence[tuple[int, str]], offset: int) -> str:
    """The role whose rendered text holds byte `offset`; past the last: the template."""
    for end, role in boundaries:
        if offset < end:
            return role
    return TEMPLATE_ROLE
