"""Dataset names: the canonical names and the older spellings still accepted."""
from __future__ import annotations

#: datasets that need no files (generated, or shipped inside an installed package)
OFFLINE = ("mnist1d", "shapes", "digits")
#: datasets read from files (found on disk, downloaded only with ``download=True``)
REAL = ("mnist", "fashion-mnist", "cifar10", "cifar100")
#: the canonical names
DATASETS = OFFLINE + REAL
#: other accepted spellings -> canonical name
ALIASES = {"fashionmnist": "fashion-mnist", "fashion_mnist": "fashion-mnist"}


def canonical_name(name: str) -> str:
    """The canonical name of dataset ``name`` (``"fashionmnist"`` -> ``"fashion-mnist"``).

    Raises ``ValueError`` listing the known names for anything else.
    """
    if name in DATASETS:
        return name
    if isinstance(name, str) and name in ALIASES:
        return ALIASES[name]
    raise ValueError(f"data={name!r} is not a known dataset: expected one of {', '.join(DATASETS)} "
                     f"(aliases: {', '.join(f'{a} = {c}' for a, c in ALIASES.items())})")
