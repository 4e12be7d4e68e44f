"""NAS-Bench-201: strings and index order, isomorphism classes, the network builder, the space."""

from search_spaces.nasbench201.arch import (EDGES, NUM_ARCHS, NUM_ISOMORPHISM_CLASSES, OPS, ArchStringError,
                                            all_archs, arch_at, arch_index, format_arch, isomorphism_str,
                                            parse_arch)
from search_spaces.nasbench201.model import NB201Network
from search_spaces.nasbench201.space import NASBench201Space

__all__ = ["EDGES", "NUM_ARCHS", "NUM_ISOMORPHISM_CLASSES", "OPS", "ArchStringError", "NASBench201Space",
           "NB201Network", "all_archs", "arch_at", "arch_index", "format_arch", "isomorphism_str", "parse_arch"]
