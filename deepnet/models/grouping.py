"""Build a :class:`LayerMap` from ordered name-prefix rules, so each family states its grouping as
data (which module prefixes form the embedding, each middle group, the head) instead of code."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from deepnet.models.registry import LayerMap

# Normalization layers: what ``sgd_freeze_embed_not_ln`` leaves trainable inside the embedding.
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def matches(name: str, prefixes: list[str]) -> bool:
    """True when ``name`` is one of ``prefixes`` or lies under one (``prefix + "."``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def norm_parameter_names(model: nn.Module) -> set[str]:
    """Names of the parameters owned directly by normalization modules (see ``NORM_TYPES``)."""
    return {
        f"{mod_name}.{p_name}" if mod_name else p_name
        for mod_name, module in model.named_modules()
        if isinstance(module, NORM_TYPES)
        for p_name, _ in module.named_parameters(recurse=False)
    }


def layer_map_from_prefixes(
    model: nn.Module,
    *,
    embed: list[str],
    stem: list[str],
    middle: list[tuple[str, list[str]]],
    head: list[str],
) -> LayerMap:
    """Assign every parameter of ``model`` to the first rule whose prefixes match it.

    Rules are tried in the order embed, middle (in the given bottom -> top order), head; middle
    groups that match no parameter (e.g. a ``proj`` rule on a model without projection) are
    dropped. ``stem`` must select a subset of ``embed``; ``embed_norm`` is derived from the module
    types. Raises ``ValueError`` naming any parameter that no rule matches.
    """
    rules: list[tuple[str, list[str]]] = [("embed", embed), *middle, ("head", head)]
    assigned: dict[str, list[str]] = {label: [] for label, _ in rules}
    unmatched = []
    for name, _ in model.named_parameters():
        label = next((lab for lab, prefixes in rules if matches(name, prefixes)), None)
        if label is None:
            unmatched.append(name)
        else:
            assigned[label].append(name)
    if unmatched:
        raise ValueError(f"no layer-map rule matches parameters {unmatched[:8]} (of {len(unmatched)})")
    norms = norm_parameter_names(model)
    embed_names = assigned["embed"]
    kept = [(label, assigned[label]) for label, _ in middle if assigned[label]]
    return LayerMap(
        embed=embed_names,
        embed_norm=[n for n in embed_names if n in norms],
        middle=[names for _, names in kept],
        head=assigned["head"],
        stem=[n for n in embed_names if matches(n, stem)],
        middle_labels=[label for label, _ in kept],
    )


@dataclass(frozen=True)
class ViTNames:
    """Where a vision-transformer implementation keeps each part of the SGD paper's grouping.

    ``blocks`` is the prefix of the transformer blocks (``{blocks}.{i}``); ``attn`` / ``mlp`` are the
    module names, inside one block, of its attention and MLP sub-layers with their norms and layer
    scales; the rest are module prefixes under the classifier.
    """

    embed: list[str]
    stem: list[str]
    tokens: list[str]
    blocks: str
    attn: list[str]
    mlp: list[str]
    final_norm: list[str]
    proj: list[str]


def vit_layer_map(model: nn.Module, depth: int, names: ViTNames) -> LayerMap:
    """Layer map of a classifier around a ViT with ``depth`` blocks: embedding (patch embedding and
    any pre-norm, Appendix A), tokens, each block's attention and MLP as separate middle groups
    bottom -> top, final norm, projection, head."""
    blocks = []
    for i in range(depth):
        block = f"{names.blocks}.{i}"
        blocks.append((f"block{i}.attn", [f"{block}.{m}" for m in names.attn]))
        blocks.append((f"block{i}.mlp", [f"{block}.{m}" for m in names.mlp]))
    return layer_map_from_prefixes(
        model,
        embed=names.embed,
        stem=names.stem,
        middle=[("tokens", names.tokens), *blocks, ("final_norm", names.final_norm), ("proj", names.proj)],
        head=["head"],
    )
