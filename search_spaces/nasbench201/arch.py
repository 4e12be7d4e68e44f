"""NAS-Bench-201 cells as strings: parsing, the official index order, isomorphism classes.

A cell is a DAG on 4 nodes; each of its 6 edges j -> i (j < i) carries one of 5 operations.
The official notation lists, node by node, the incoming edges as ``op~j``:
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""

from __future__ import annotations

import functools
import itertools
import random
import re

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# The 6 edges (to_node, from_node) in the order the string lists them.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
NUM_ARCHS = len(OPS) ** len(EDGES)  # 15,625
NUM_ISOMORPHISM_CLASSES = 6466  # the number of unique topologies in the NAS-Bench-201 paper

# NAS-Bench-201 generated its cells in this order (CellStructure.gen_all: edges as listed, ops in
# OPS order) and then shuffled them with Python's random.seed(88); the shuffled list is the API
# index order (xautodl exps/NAS-Bench-201/main.py, generate_meta_info).
_INDEX_SHUFFLE_SEED = 88

_EDGE_RE = re.compile(r"^([a-z0-9_]+)~(\d+)$")


class ArchStringError(ValueError):
    """A malformed NAS-Bench-201 architecture string."""


def format_arch(ops: tuple[str, ...]) -> str:
    """The official string for the 6 edge operations in EDGES order."""
    if len(ops) != len(EDGES):
        raise ArchStringError(f"a NAS-Bench-201 cell has {len(EDGES)} edges, got {len(ops)} operations")
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def parse_arch(text: str) -> tuple[str, ...]:
    """The 6 edge operations of an official string; ArchStringError naming what is wrong."""
    if not isinstance(text, str):
        raise ArchStringError(f"a NAS-Bench-201 architecture must be a string, got {type(text).__name__}")
    example = "e.g. '|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|'"
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise ArchStringError(f"malformed NAS-Bench-201 string {text!r}: expected 3 nodes separated by '+', "
                              f"found {len(nodes)}; {example}")
    ops: list[str] = []
    for node, part in enumerate(nodes, start=1):
        if not (part.startswith("|") and part.endswith("|") and len(part) > 1):
            raise ArchStringError(f"malformed NAS-Bench-201 string {text!r}: node {node} {part!r} must be "
                                  f"enclosed in '|'; {example}")
        edges = part[1:-1].split("|")
        if len(edges) != node:
            raise ArchStringError(f"malformed NAS-Bench-201 string {text!r}: node {node} needs {node} incoming "
                                  f"edge(s), found {len(edges)}")
        for source, edge in enumerate(edges):
            match = _EDGE_RE.match(edge)
            if not match:
                raise ArchStringError(f"malformed NAS-Bench-201 string {text!r}: edge {edge!r} of node {node} "
                                      "must look like 'op~j'")
            op, from_node = match.group(1), int(match.group(2))
            if op not in OPS:
                raise ArchStringError(f"unknown NAS-Bench-201 operation {op!r} in {text!r}; choose from "
                                      f"{', '.join(OPS)}")
            if from_node != source:
                raise ArchStringError(f"malformed NAS-Bench-201 string {text!r}: edge {edge!r} of node {node} "
                                      f"must come from node {source} (edges are listed in order ~0, ~1, ...)")
            ops.append(op)
    return tuple(ops)


@functools.lru_cache(maxsize=1)
def all_archs() -> tuple[str, ...]:
    """All 15,625 cells in the official NAS-Bench-201 index order (index 0 first)."""
    generated = [format_arch(ops) for ops in itertools.product(OPS, repeat=len(EDGES))]
    random.Random(_INDEX_SHUFFLE_SEED).shuffle(generated)
    return tuple(generated)


@functools.lru_cache(maxsize=1)
def _index_of() -> dict[str, int]:
    return {arch: i for i, arch in enumerate(all_archs())}


def arch_index(text: str) -> int:
    """The official NAS-Bench-201 index (0..15624) of a cell string."""
    return _index_of()[format_arch(parse_arch(text))]


def arch_at(index: int) -> str:
    if not 0 <= index < NUM_ARCHS:
        raise ArchStringError(f"NAS-Bench-201 index must be 0..{NUM_ARCHS - 1}, got {index}")
    return all_archs()[index]


def isomorphism_str(text: str) -> str:
    """The NAS-Bench-201 "unique string": cells that share it compute the same function.

    Each node is written as a formal sum of its incoming terms: ``none`` (or an edge from a node
    that is always zero) is ``#``, ``skip_connect`` passes the source's expression through, other
    operations wrap it as ``(expr)@op``; terms are sorted, so the order of inputs does not matter.
    This is CellStructure.to_unique_str(consider_zero=True) of NAS-Bench-201, which gives the
    paper's 6,466 classes.
    """
    ops = parse_arch(text)
    values = {0: "0"}
    for node in (1, 2, 3):
        terms = []
        for (to_node, from_node), op in zip(EDGES, ops):
            if to_node != node:
                continue
            source = values[from_node]
            if op == "none" or source == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(source)
            else:
                terms.append(f"({source})@{op}")
        values[node] = "+".join(sorted(terms))
    return values[3]
