# Copyright: meshtune contributors
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Helm chart values as dotted paths, checked against what a pinned chart reads.

Helm ignores a value key that no chart template reads, so a misspelt key costs nothing at install
and buys nothing. A values tree is therefore compared path by path with the value paths of the
pinned chart version: `global.proxy.resources.limits.cpu` is one path, and a known path ending in
`.*` is a free-form map (labels, annotations, environment variables) that takes any key below it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping

FREE_MAP_SUFFIX = ".*"


def leaf_paths(tree, prefix=""):
    """The dotted path of every leaf of `tree`, in the tree's order.

    A leaf is anything but a non-empty mapping: scalars, lists and empty mappings. A list is one
    leaf because Helm replaces lists whole; an empty mapping is one because it still sets a key.
    """
    paths = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            paths.extend(leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def is_at_or_below(path, ancestor):
    """True when `path` is `ancestor` itself or a path inside it."""
    return path == ancestor or path.startswith(ancestor + ".")


def unknown_paths(tree, known):
    """Leaf paths of `tree` that the chart does not read: not in `known`, not in a free-form map."""
    exact = set(known)
    free_maps = [entry[:-len(FREE_MAP_SUFFIX)] for entry in known if entry.endswith(FREE_MAP_SUFFIX)]
    return [path for path in leaf_paths(tree)
            if path not in exact and not any(is_at_or_below(path, free_map) for free_map in free_maps)]


def clashing_paths(tree, owned):
    """Leaf paths of `tree` that touch an `owned` path: set it, set something inside it, or
    replace a mapping that holds it (a scalar, a list or {} at one of its parents)."""
    return [path for path in leaf_paths(tree)
            if any(is_at_or_below(path, mine) or is_at_or_below(mine, path) for mine in owned)]
