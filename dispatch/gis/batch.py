"""Surge dispatch: assign many waiting cases at once by min-cost bipartite matching.

Each case may go to one of its k nearest eligible providers. A provider with
`capacity - load` free places becomes that many slot columns, the s-th slot
costing the load term at utilisation (load + s) / capacity, so the matching
spreads work exactly as the per-case score would. Every case also has its own
"unassigned" column costing `UNASSIGNED + priority weight * (5 - priority)`:
the optimum assigns as many cases as the slots allow, leaves the least urgent
ones waiting, and minimises the summed dispatch score.

Small problems use `scipy.optimize.linear_sum_assignment` on a dense matrix;
large ones (a dense matrix would not fit) the sparse LAPJVsp solver
`scipy.sparse.csgraph.min_weight_full_bipartite_matching`. Both are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from dispatch.gis.nearest import (
    DispatchWeights,
    FloatArray,
    IntArray,
    NearestQuery,
    ProviderSnapshot,
    StatusChange,
    ecef,
    gaussian_radius,
    has_bit,
)

UNASSIGNED = 1.0e6
DENSE_LIMIT = 4_000_000  # cells of the dense cost matrix


@dataclass(frozen=True, slots=True)
class WaitingCase:
    """A case waiting for a provider: where, which skill, which district, how urgent."""

    case_id: str
    lat: float
    lon: float
    skill: str | None = None
    district: str | None = None
    priority: int = 3
    preferred_skills: frozenset[str] = frozenset()

    def query(self, k: int) -> NearestQuery:
        """The single-case nearest query this case stands for."""
        return NearestQuery(
            self.lat,
            self.lon,
            k=k,
            skill=self.skill,
            district=self.district,
            preferred_skills=self.preferred_skills,
        )


@dataclass(frozen=True, slots=True)
class Assignment:
    """One case given to one provider, with its distance and dispatch score."""

    case_id: str
    provider_id: str
    distance_m: float
    score: float


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The outcome of a batch: assignments, and the cases left waiting."""

    assignments: tuple[Assignment, ...]
    unassigned: tuple[str, ...]

    def status_changes(self, snapshot: ProviderSnapshot) -> tuple[StatusChange, ...]:
        """The providers' new loads, for `ProviderIndexHolder.set_status`."""
        added: dict[str, int] = {}
        for a in self.assignments:
            added[a.provider_id] = added.get(a.provider_id, 0) + 1
        return tuple(StatusChange(pid, load=snapshot.status(pid)[1] + n) for pid, n in sorted(added.items()))


@dataclass(frozen=True, slots=True)
class _Edges:
    """Candidate (case row, provider position) pairs with distance and score sans load."""

    row: IntArray
    provider: IntArray
    distance_m: FloatArray
    base: FloatArray


def _rows_for_group(
    snapshot: ProviderSnapshot, cases: Sequence[WaitingCase], rows: IntArray, k: int
) -> tuple[IntArray, IntArray, FloatArray]:
    """Edges of cases sharing one skill and district: one vectorised tree query."""
    first = cases[int(rows[0])].query(k)
    selection = snapshot.layout.tree(first.skill, first.district)
    if selection is None or selection[0].kd.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    tree, mask = selection
    fetch = min(tree.kd.size, snapshot.first_fetch(k, first))
    points = ecef([cases[r].lat for r in rows], [cases[r].lon for r in rows]).reshape(-1, 3)
    chord, local = tree.kd.query(points, fetch, mask)
    found = local < tree.kd.size  # False: masked out, fewer members than fetched
    index = tree.members[np.where(found, local, 0)]
    ok = snapshot.open[index] & found
    keep = ok & (np.cumsum(ok, axis=1) <= k)
    short = np.flatnonzero((keep.sum(axis=1) < k) & (fetch < tree.kd.size) & found[:, -1])
    keep[short] = False
    r, c = np.nonzero(keep)
    out_rows, out_idx, out_chord = [rows[r]], [index[r, c]], [chord[r, c]]
    for j in short.tolist():  # too few eligible among the first few: ask the full search
        positions, chords, _ = snapshot.search(selection, points[j : j + 1], cases[rows[j]].query(k))
        out_rows.append(np.full(len(positions), rows[j]))
        out_idx.append(np.array(positions, dtype=np.int64))
        out_chord.append(np.array(chords, dtype=np.float64))
    return np.concatenate(out_rows), np.concatenate(out_idx), np.concatenate(out_chord)


def candidate_edges(
    snapshot: ProviderSnapshot, cases: Sequence[WaitingCase], weights: DispatchWeights, k: int
) -> _Edges:
    """Each case's k nearest eligible providers, as edges of the bipartite graph."""
    groups: dict[tuple[str | None, str | None], list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault((case.skill, case.district), []).append(i)
    parts = [_rows_for_group(snapshot, cases, np.array(rows, dtype=np.int64), k) for rows in groups.values()]
    if not parts:
        return _Edges(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0))
    row = np.concatenate([p[0] for p in parts])
    provider = np.concatenate([p[1] for p in parts])
    chord = np.sqrt(np.concatenate([p[2] for p in parts]))  # the tree reports squared chords
    two_r = 2.0 * np.array([gaussian_radius(c.lat) for c in cases])[row]
    distance = two_r * np.arcsin(np.minimum(chord / np.maximum(two_r, 1.0), 1.0))
    base = (weights.distance / 1000.0) * distance + _skill_term(snapshot, cases, row, provider, weights)
    return _Edges(row, provider, distance, base)


def _skill_term(
    snapshot: ProviderSnapshot,
    cases: Sequence[WaitingCase],
    row: IntArray,
    provider: IntArray,
    w: DispatchWeights,
) -> FloatArray:
    term = np.zeros(len(row))
    for i, case in enumerate(cases):
        if not case.preferred_skills:
            continue
        sel = np.flatnonzero(row == i)
        have = np.zeros(len(sel))
        for skill in case.preferred_skills:
            b = snapshot.layout.skill_ids.get(skill)
            if b is not None:
                have += has_bit(snapshot.layout.skill_bits, provider[sel], b)
        term[sel] = w.skill * (1.0 - have / len(case.preferred_skills))
    return term


def _slots(
    snapshot: ProviderSnapshot, edges: _Edges, weights: DispatchWeights
) -> tuple[IntArray, IntArray, IntArray, FloatArray]:
    """Expand edges into (row, slot column, edge, cost) arrays, one entry per free place."""
    providers, inverse, demand = np.unique(edges.provider, return_inverse=True, return_counts=True)
    free = np.minimum(snapshot.layout.capacity[providers] - snapshot.load[providers], demand).clip(min=0)
    first_col = np.concatenate(([0], np.cumsum(free)[:-1])).astype(np.int64)
    per_edge = free[inverse]
    e = np.repeat(np.arange(len(edges.row)), per_edge)
    s = np.arange(len(e)) - np.repeat(np.cumsum(per_edge) - per_edge, per_edge)
    p = edges.provider[e]
    utilisation = (snapshot.load[p] + s) / np.maximum(snapshot.layout.capacity[p], 1)
    cost = edges.base[e] + weights.load * utilisation
    return edges.row[e], first_col[inverse[e]] + s, e, cost


def _solve(
    shape: tuple[int, int],
    rows: IntArray,
    cols: IntArray,
    cost: FloatArray,
    waiting: FloatArray,
    dense: bool | None,
) -> IntArray:
    """The column matched to each row (column >= shape[1] means unassigned)."""
    n_rows, n_cols = shape
    if dense if dense is not None else n_rows * (n_cols + n_rows) <= DENSE_LIMIT:
        matrix = np.full((n_rows, n_cols + n_rows), 10.0 * UNASSIGNED * max(n_rows, 1))
        matrix[rows, cols] = cost
        matrix[np.arange(n_rows), n_cols + np.arange(n_rows)] = waiting
        r, c = linear_sum_assignment(matrix)
    else:
        all_rows = np.concatenate((rows, np.arange(n_rows)))
        all_cols = np.concatenate((cols, n_cols + np.arange(n_rows)))
        weights = np.concatenate((cost, waiting)) + 1.0  # strictly positive: no edge is an explicit zero
        graph = csr_matrix((weights, (all_rows, all_cols)), shape=(n_rows, n_cols + n_rows))
        r, c = min_weight_full_bipartite_matching(graph)
    matched = np.empty(n_rows, dtype=np.int64)
    matched[r] = c
    return matched


def _result(
    snapshot: ProviderSnapshot,
    cases: Sequence[WaitingCase],
    edges: _Edges,
    slots: tuple[IntArray, IntArray, IntArray, FloatArray],
    matched: IntArray,
    n_cols: int,
) -> BatchResult:
    rows, cols, edge, cost = slots
    keys = rows * (n_cols + 1) + cols
    order = np.argsort(keys)
    assigned = np.flatnonzero(matched < n_cols)
    hit = order[np.searchsorted(keys, assigned * (n_cols + 1) + matched[assigned], sorter=order)]
    providers = snapshot.layout.providers
    assignments = tuple(
        Assignment(cases[r].case_id, providers[p].id, d, s)
        for r, p, d, s in zip(
            assigned.tolist(),
            edges.provider[edge[hit]].tolist(),
            edges.distance_m[edge[hit]].tolist(),
            cost[hit].tolist(),
            strict=True,
        )
    )
    unassigned = tuple(cases[r].case_id for r in np.flatnonzero(matched >= n_cols).tolist())
    return BatchResult(assignments, unassigned)


def assign_batch(
    snapshot: ProviderSnapshot,
    cases: Sequence[WaitingCase],
    weights: DispatchWeights | None = None,
    *,
    k: int = 8,
    dense: bool | None = None,
) -> BatchResult:
    """Assign waiting cases to providers at minimum total cost (see module doc)."""
    w = weights or DispatchWeights()
    if not cases:
        return BatchResult((), ())
    edges = candidate_edges(snapshot, cases, w, k)
    slots = _slots(snapshot, edges, w)
    rows, cols, _, cost = slots
    n_cols = int(cols.max()) + 1 if len(cols) else 0
    waiting = UNASSIGNED + w.priority * (5.0 - np.clip([c.priority for c in cases], 1, 4))
    matched = _solve((len(cases), n_cols), rows, cols, cost, waiting, dense)
    return _result(snapshot, cases, edges, slots, matched, n_cols)
