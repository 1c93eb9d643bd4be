"""The KV cache's size spelled out from the model's own geometry, and what a full context did.

Every layer keeps, for every cell (one token of context), a K row and a V row
of n_kv_heads x head size elements in the cache type. llama.cpp allocates:

    layers x 2 (K and V) x KV heads x head size x bytes per element x cells

with cells = n_ctx rounded up to 256. Sliding-window layers (Gemma 2/3,
Cohere 2) only look back n_swa tokens, and llama.cpp gives them a smaller
cache: min(cells, pad256(n_swa + n_ubatch)) cells (one sequence, as here).
Quantized cache types store elements in blocks (q8_0: 32 elements in 34 bytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.models.fit import KV_CELL_PADDING, padded_cells
from app.models.gguf_file import GGUFInfo, tensor_nbytes
from app.settings import KV_CACHE_TYPES

# Which layers use the sliding window, per architecture, as llama.cpp sets it
# (set_swa_pattern(n): a layer is sliding-window unless il % n == n - 1).
SWA_PATTERNS: dict[str, int] = {"gemma2": 2, "gemma3": 6, "cohere2": 4}
DEFAULT_UBATCH = 512


@dataclass
class KvLayerGroup:
    """Layers with the same geometry and cell count."""

    layers: int
    n_kv_heads: int
    key_length: int
    value_length: int
    cells: int
    sliding_window: bool = False

    def bytes(self, type_k: str, type_v: str) -> int:
        k = tensor_nbytes(KV_CACHE_TYPES[type_k], self.n_kv_heads * self.key_length)
        v = tensor_nbytes(KV_CACHE_TYPES[type_v], self.n_kv_heads * self.value_length)
        return self.layers * (k + v) * self.cells


@dataclass
class KvGeometry:
    architecture: str
    type_k: str
    type_v: str
    cells: int  # full-attention layers' cells (n_ctx padded)
    groups: list[KvLayerGroup] = field(default_factory=list)
    note: str = ""  # what the arithmetic could not know

    @property
    def total_bytes(self) -> int:
        return sum(g.bytes(self.type_k, self.type_v) for g in self.groups)

    @property
    def bytes_per_cell(self) -> int:
        """Bytes one more token of context adds (full-attention layers only grow with it)."""
        return sum(
            g.bytes(self.type_k, self.type_v) // g.cells
            for g in self.groups
            if not g.sliding_window and g.cells
        )

    def lines(self) -> list[str]:
        """The arithmetic, one line per layer group, then the total."""
        out = []
        for g in self.groups:
            per_el = _bytes_per_element(self.type_k)
            kind = "sliding-window layers" if g.sliding_window else "layers"
            same_len = g.key_length == g.value_length and self.type_k == self.type_v
            if same_len:
                head = f"{g.key_length} head size"
                elem = f"{per_el:g} bytes ({self.type_k})"
                out.append(
                    f"{g.layers} {kind} x 2 (K and V) x {g.n_kv_heads} KV heads x {head} x "
                    f"{elem} x {g.cells} cells = {_mib(g.bytes(self.type_k, self.type_v))}"
                )
            else:
                out.append(
                    f"{g.layers} {kind} x {g.n_kv_heads} KV heads x ({g.key_length} K x "
                    f"{per_el:g} B + {g.value_length} V x {_bytes_per_element(self.type_v):g} B)"
                    f" x {g.cells} cells = {_mib(g.bytes(self.type_k, self.type_v))}"
                )
        out.append(f"total = {self.total_bytes:,} bytes = {_mib(self.total_bytes)}")
        return out


def _bytes_per_element(kv_type: str) -> float:
    block = 256  # a multiple of every ggml block size
    return tensor_nbytes(KV_CACHE_TYPES[kv_type], block) / block


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def kv_geometry(
    info: GGUFInfo,
    n_ctx: int,
    type_k: str = "f16",
    type_v: str | None = None,
    n_ubatch: int = DEFAULT_UBATCH,
) -> KvGeometry:
    """The KV cache llama.cpp allocates for this model at n_ctx, by layer group."""
    type_v = type_v or type_k
    arch = info.architecture or "llama"
    cells = padded_cells(n_ctx)
    n_layers = info.n_layers or 0
    per_layer = info.n_kv_heads_per_layer or [info.n_kv_heads or 0] * n_layers
    k_len, v_len = info.key_length or 0, info.value_length or 0
    window = info.metadata.get(f"{arch}.attention.sliding_window")
    pattern = SWA_PATTERNS.get(arch)
    note = ""
    swa_cells = cells
    if isinstance(window, int) and window > 0:
        if pattern is None:
            note = f"{arch} has a sliding window whose layer pattern is not known here"
        else:
            padded = -(-(window + n_ubatch) // KV_CELL_PADDING) * KV_CELL_PADDING
            swa_cells = min(cells, padded)
    groups: dict[tuple[int, bool], KvLayerGroup] = {}
    for il, heads in enumerate(per_layer):
        if not heads:
            continue  # a recurrent layer: no KV cache
        swa = pattern is not None and swa_cells != cells and il % pattern != pattern - 1
        key = (heads, swa)
        if key not in groups:
            groups[key] = KvLayerGroup(0, heads, k_len, v_len, swa_cells if swa else cells, swa)
        groups[key].layers += 1
    return KvGeometry(arch, type_k, type_v, cells, list(groups.values()), note)


@dataclass
class ContextFill:
    """What the context did this turn, in words a KV view can show."""

    strategy: str
    dropped_messages: int
    reevaluated_tokens: int  # prompt tokens evaluated although earlier turns had them cached
    stopped_full: bool  # the reply stopped because no cell was left

    def sentence(self) -> str:
        parts = []
        if self.dropped_messages:
            parts.append(
                f"the context was full: the {self.dropped_messages} oldest messages were left "
                f"out and {self.reevaluated_tokens} tokens of history evaluated again"
            )
        if self.stopped_full:
            parts.append("the reply stopped because every cell of the context was used")
        if not parts:
            return "The context did not fill this turn."
        return (parts[0][0].upper() + "; ".join(parts)[1:]) + "."


STRATEGY = (
    "When the history does not fit, the oldest messages (never the system prompt) are left "
    "out, and what is kept is evaluated again, because the cache held it after the dropped "
    "text; a reply that reaches the last cell stops."
)


def context_fill(
    dropped_messages: int,
    prompt_tokens_evaluated: int | None,
    kv_cells_used: int | None,
    kv_cells_total: int | None,
    stop_reason: str | None,
) -> ContextFill:
    stopped_full = (
        stop_reason == "length"
        and kv_cells_used is not None
        and kv_cells_total is not None
        and kv_cells_used >= kv_cells_total
    )
    reevaluated = (prompt_tokens_evaluated or 0) if dropped_messages else 0
    return ContextFill(STRATEGY, dropped_messages, reevaluated, stopped_full)
