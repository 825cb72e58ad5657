"""The one electrode resolver: signal labels -> the 19 referential potentials the network reads.

Every reader of EEG (preprocess, cache, `szflow detect`, the corpus summary, live streaming) asks
`resolve_montage(labels)` which signals to read and how to combine them.

Labels. `parse_label` normalises a label: case, an `EEG ` prefix, trailing dots and padding
(`Fp1.`, `C3..`), the 10-10 names of four 10-20 sites (T7=T3, T8=T4, P7=T5, P8=T6), a numeric
duplicate tag (`T8-P8-1`). A label is then either referential, `X`, `X-REF`, `X-LE`, `X-AR`,
`X-AVG`, ... (a `REFERENCE_SUFFIXES` entry), or a bipolar derivation `A-B`.

The derivation graph. Nodes are electrodes (any name: FT9 and A1 too) plus one node `REF` that
stands for the recording reference; a referential channel X is the edge X-REF, a derivation A-B
the edge A-B. With v the unknown node potentials and D the incidence matrix (one row per edge,
+1 at A, -1 at B), the signals are s = D v. D has one null vector per connected component (the
component's indicator: a constant added to every node of it changes no derivation), so the
potentials are known up to one constant per component, and the least-squares solution
v = pinv(D) s is exact for noiseless, consistent derivations (and averages redundant, noisy ones).
The component holding the most of the 19 electrodes is the reference frame: its electrodes are
*present*, every other electrode is *missing*. Its constant is fixed by setting REF to 0 when REF is
in it (so an all-referential recording maps each electrode to its own signal, unchanged), else by
the mean of its present electrodes; the common average reference over present electrodes that
preprocessing applies afterwards removes whatever constant was chosen. Nodes outside the 19 with
one edge (EKG1-REF, PHOTIC, a lone A1-REF) carry no information about the 19 and are pruned first,
so their signals are never read. The result is one (19, n_sources) matrix: potentials = matrix @
signals, rows of missing electrodes zero. The signal chain applies it after resampling every
signal to the common rate (`szflow.signal.chain`), so signals recorded at different rates combine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from szflow.config import ELECTRODES

# Modified-combinatorial (10-10) names of the same four temporal/parietal sites.
ALIASES: dict[str, str] = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}
# Second halves of a label that name the recording reference rather than an electrode: TUSZ
# (REF, LE, AR), average references (AVG, AV, CAR), linked ears/mastoids.
REFERENCE_SUFFIXES = frozenset({"REF", "LE", "AR", "AVG", "AV", "CAR", "REFERENCE", "A1A2", "M1M2", "LINKED"})
# The node that stands for the recording's reference.
REFERENCE_NODE = "REF"
_ELECTRODE_SET = frozenset(ELECTRODES)
_ROW = {name: i for i, name in enumerate(ELECTRODES)}
# Entries of the least-squares map this close to an integer are that integer (a tree's map is 0/+-1).
_INTEGER_TOLERANCE = 1e-9
_PREFIX = re.compile(r"^EEG[\s:_]+")
_DUPLICATE_TAG = re.compile(r"-\d+$")


def _node(text: str) -> str:
    name = text.strip().rstrip(".").strip()
    return ALIASES.get(name, name)


def parse_label(label: str) -> tuple[str, str] | None:
    """(A, B) nodes of the derivation a label records, B = REFERENCE_NODE for a referential one;
    None for a label that names no derivation (empty, '-')."""
    text = _PREFIX.sub("", label.strip().upper()).strip().rstrip(".").strip()
    if text.count("-") == 2:
        text = _DUPLICATE_TAG.sub("", text)  # CHB-MIT-style repeats: T8-P8-0, T8-P8-1
    first, sep, second = text.partition("-")
    first, second = _node(first), _node(second)
    if not first:
        return None
    if not sep or not second or second.replace(" ", "") in REFERENCE_SUFFIXES:
        return first, REFERENCE_NODE
    return first, second


def electrode_name(label: str) -> str | None:
    """The 10-20 electrode a referential label names (`EEG FP1-REF`, `Fp1.`, `T7-LE`), else None.

    A bipolar derivation (`FP1-F7`) is not one electrode: None.
    """
    parsed = parse_label(label)
    if parsed is None or parsed[1] != REFERENCE_NODE or parsed[0] not in _ELECTRODE_SET:
        return None
    return parsed[0]


@dataclass(frozen=True)
class ElectrodeMontage:
    """How the 19 electrodes' potentials come from a recording's signals.

    `sources` are the signal indices to read; potentials (19, n) = `matrix` (19, len(sources)) @
    signals (len(sources), n), up to a constant that the common average reference over `present`
    electrodes removes. Rows of missing electrodes are zero.
    """

    labels: tuple[str, ...]
    sources: tuple[int, ...]
    matrix: np.ndarray
    present: np.ndarray
    direct: tuple[str, ...]
    derived: tuple[str, ...]
    missing: tuple[str, ...]
    _selection: tuple[int, ...] | None = field(default=None, repr=False)

    @property
    def n_present(self) -> int:
        return int(self.present.sum())

    @property
    def source_labels(self) -> list[str]:
        return [self.labels[i] for i in self.sources]

    def apply(self, signals: np.ndarray) -> np.ndarray:
        """(19, n) float32 potentials of (len(sources), n) float32 source signals (all at one rate).

        When the sources are the 19 electrodes in order, read directly, this is `signals` itself
        (no copy: the caller's array, which the common average reference then changes in place).
        """
        if self._selection == tuple(range(len(ELECTRODES))) and signals.dtype == np.float32:
            return signals
        out = np.zeros((len(ELECTRODES), signals.shape[1]), dtype=np.float32)
        if self._selection is not None:
            # Each present electrode is one source, unchanged: a copy, no arithmetic.
            rows = np.flatnonzero(self.present)
            out[rows] = signals[list(self._selection)]
        else:
            np.matmul(self.matrix, signals, out=out)
        return out

    def report(self) -> dict:
        """The montage report: electrodes read directly, reconstructed from derivations, missing."""
        return {"direct": list(self.direct), "derived": list(self.derived), "missing": list(self.missing),
                "n_present": self.n_present, "signals": self.source_labels}

    def summary_line(self) -> str:
        """One line: how many electrodes of each kind, naming the derived and missing ones."""
        parts = [f"{len(self.direct)} direct"]
        parts.append(f"{len(self.derived)} derived" + (f" ({' '.join(self.derived)})" if self.derived else ""))
        parts.append(f"{len(self.missing)} missing" + (f" ({' '.join(self.missing)})" if self.missing else ""))
        return ", ".join(parts)

    def presence_string(self) -> str:
        """The presence mask as 19 '0'/'1' characters in ELECTRODES order (the cache index column)."""
        return presence_string(self.present)

    def refusal(self, min_electrodes: int) -> str | None:
        """Why a recording with this montage cannot be used (fewer than `min_electrodes` present), else None."""
        if self.n_present >= min_electrodes:
            return None
        plural = "s" if len(self.missing) > 1 else ""
        return (f"missing electrode{plural} {', '.join(self.missing)}: {self.n_present} of {len(ELECTRODES)} "
                f"present, fewer than preprocess.min_electrodes {min_electrodes} (signals: {', '.join(self.labels)})")


def presence_string(present: np.ndarray) -> str:
    """A (19,) presence mask as '0'/'1' characters."""
    return "".join("1" if p else "0" for p in np.asarray(present, dtype=bool))


def parse_presence(text: str) -> np.ndarray:
    """The (19,) bool mask of a `presence_string`."""
    if len(text) != len(ELECTRODES) or set(text) - {"0", "1"}:
        raise ValueError(f"presence mask {text!r} is not {len(ELECTRODES)} characters of 0/1")
    return np.array([c == "1" for c in text], dtype=bool)


def _edges(labels: list[str]) -> list[tuple[str, str, int]]:
    """(A, B, signal index) of every usable derivation: the first signal per unordered pair."""
    seen: set[frozenset[str]] = set()
    edges = []
    for index, label in enumerate(labels):
        parsed = parse_label(label)
        if parsed is None or parsed[0] == parsed[1]:
            continue
        key = frozenset(parsed)
        if key not in seen:
            seen.add(key)
            edges.append((parsed[0], parsed[1], index))
    return edges


def _prune_leaves(edges: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """Drop, repeatedly, edges to a node outside the 19 that has no other edge."""
    while True:
        degree: dict[str, int] = {}
        for a, b, _ in edges:
            degree[a] = degree.get(a, 0) + 1
            degree[b] = degree.get(b, 0) + 1
        kept = [(a, b, i) for a, b, i in edges
                if not any(degree[n] == 1 and n not in _ELECTRODE_SET for n in (a, b))]
        if len(kept) == len(edges):
            return kept
        edges = kept


def _components(edges: list[tuple[str, str, int]]) -> list[set[str]]:
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for a, b, _ in edges:
        parent[root(a)] = root(b)
    groups: dict[str, set[str]] = {}
    for node in list(parent):
        groups.setdefault(root(node), set()).add(node)
    return list(groups.values())


def resolve_montage(labels: list[str] | tuple[str, ...]) -> ElectrodeMontage:
    """The montage of a recording whose signals carry `labels` (a pure function of the labels)."""
    labels = tuple(labels)
    edges = _prune_leaves(_edges(list(labels)))
    frame: set[str] = set()
    best = 0
    for component in _components(edges):
        count = len(component & _ELECTRODE_SET)
        # Ties: the component holding the earlier electrode of ELECTRODES, so the result is stable.
        if count > best or (count == best and count and min(_ROW[n] for n in component & _ELECTRODE_SET)
                            < min(_ROW[n] for n in frame & _ELECTRODE_SET)):
            frame, best = component, count
    used = [(a, b, i) for a, b, i in edges if a in frame]
    present = np.array([name in frame for name in ELECTRODES], dtype=bool)
    direct = tuple(n for n in ELECTRODES if any(a == n and b == REFERENCE_NODE for a, b, _ in used))
    derived = tuple(n for n in ELECTRODES if n in frame and n not in direct)
    missing = tuple(n for n in ELECTRODES if n not in frame)
    # Sources: the direct electrodes' own signals first, in ELECTRODES order, then the rest in file order.
    direct_edge = {a: i for a, b, i in used if b == REFERENCE_NODE and a in direct}
    order = [direct_edge[n] for n in direct] + sorted(i for a, b, i in used if direct_edge.get(a) != i)
    sources = tuple(order)
    matrix = np.zeros((len(ELECTRODES), len(sources)), dtype=np.float32)
    if used:
        nodes = sorted(frame)
        column = {node: j for j, node in enumerate(nodes)}
        position = {i: k for k, i in enumerate(sources)}
        incidence = np.zeros((len(used), len(nodes)))
        for a, b, i in used:
            incidence[position[i], column[a]] = 1.0
            incidence[position[i], column[b]] = -1.0
        solve = np.linalg.pinv(incidence)  # (nodes, edges): v = solve @ s
        if REFERENCE_NODE in column:
            solve -= solve[column[REFERENCE_NODE]]
        else:
            solve -= solve[[column[n] for n in ELECTRODES if n in frame]].mean(axis=0)
        rounded = np.round(solve)
        solve = np.where(np.abs(solve - rounded) < _INTEGER_TOLERANCE, rounded, solve)
        for name in ELECTRODES:
            if name in frame:
                matrix[_ROW[name]] = solve[column[name]]
    selection = None
    rows = matrix[present]
    if len(rows) and np.all((rows == 0) | (rows == 1)) and np.all(rows.sum(axis=1) == 1):
        selection = tuple(int(j) for j in rows.argmax(axis=1))
    return ElectrodeMontage(labels=labels, sources=sources, matrix=matrix, present=present, direct=direct,
                            derived=derived, missing=missing, _selection=selection)


def without(montage: ElectrodeMontage, names: Iterable[str]) -> ElectrodeMontage:
    """The montage of the same signals with electrodes `names` taken off the cap.

    Every signal that records one of them (its referential channel, each derivation it is a pole
    of) is left unread and the rest is resolved again, so an electrode reachable only through a
    removed one goes missing too. `sources` still index the recording's signals (`labels` are
    kept), so the result reads the same file. `names` are 10-20 electrodes (10-10 aliases accepted);
    ValueError for any other name.
    """
    removed = {_node(name.strip().upper()) for name in names}
    unknown = sorted(removed - _ELECTRODE_SET)
    if unknown:
        raise ValueError(f"not electrodes of the 10-20 montage: {', '.join(unknown)}")
    kept = []
    for label in montage.labels:
        parsed = parse_label(label)
        kept.append("" if parsed is not None and removed & set(parsed) else label)
    return replace(resolve_montage(kept), labels=montage.labels)
