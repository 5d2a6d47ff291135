"""The built-in geometries: a deterministic synthetic L5PC and the tiny ball-and-stick cell (plain data).

Both are :class:`~biophys.morphology.Morphology` records with their axon not yet replaced; the same call always
returns the same geometry, recorded by its generator version.
"""

from __future__ import annotations

import numpy as np

from biophys.morphology import REGION_PREFIX, REGIONS, Morphology, SectionGeometry, point_at

SYNTHETIC_VERSION = "synthetic-l5pc/1"
BALL_AND_STICK_VERSION = "ball-and-stick/1"
_SYNTHETIC_SEED = 20110101  # fixed: the synthetic cell is one specific cell, not a random draw


class _TreeBuilder:
    """Grows sections as straight-ish polylines; names them per region in creation order (depth first)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.sections: list[SectionGeometry] = []
        self.count = dict.fromkeys(REGIONS, 0)

    def add(self, region: str, parent: SectionGeometry, parent_x: float, direction, length_um: float,
            diam_start_um: float, diam_end_um: float, wiggle: float = 0.15) -> SectionGeometry:
        """A section of ``length_um`` starting at ``parent(parent_x)``, heading along ``direction``.

        Points every ~10 µm; the heading drifts by ``wiggle`` (radians-ish) per point for tortuosity, and the
        diameter tapers linearly.
        """
        n = max(2, int(round(length_um / 10.0)) + 1)
        heading = np.asarray(direction, dtype=float)
        heading /= np.linalg.norm(heading)
        step = length_um / (n - 1)
        xyz = [point_at(parent.points, parent_x)[:3]]
        for _ in range(n - 1):
            heading = heading + wiggle * self.rng.normal(size=3)
            heading /= np.linalg.norm(heading)
            xyz.append(xyz[-1] + step * heading)
        diam = np.linspace(diam_start_um, diam_end_um, n)
        sec = SectionGeometry(f"{REGION_PREFIX[region]}[{self.count[region]}]", region, parent.name, parent_x,
                              np.column_stack([np.array(xyz), diam]))
        self.count[region] += 1
        self.sections.append(sec)
        return sec

    def branch(self, region: str, parent: SectionGeometry, direction, diam_um: float, order: int,
               max_order: int, inner_length, terminal_length, p_branch: float, spread: float) -> None:
        """A binary subtree: each section bifurcates with probability ``p_branch`` until ``max_order``."""
        terminal = order >= max_order or self.rng.random() > p_branch
        length = self.rng.uniform(*(terminal_length if terminal else inner_length))
        end_diam = max(0.4, diam_um * (0.85 if terminal else 0.9))
        sec = self.add(region, parent, 1.0, direction, length, diam_um, end_diam)
        if terminal:
            return
        base = sec.points[-1, :3] - sec.points[-2, :3]
        base /= np.linalg.norm(base)
        child_diam = max(0.4, end_diam * 0.63)  # ≈ Rall's 3/2 power rule for two equal daughters
        for sign in (1.0, -1.0):
            d = _rotate_away(base, sign * spread, self.rng)
            self.branch(region, sec, d, child_diam, order + 1, max_order, inner_length, terminal_length,
                        p_branch, spread)


def synthetic_l5pc() -> Morphology:
    """A deterministic L5PC-like morphology for offline use (axon not yet replaced; no reconstructed axon).

    Built from typical thick-tufted layer-5 morphometrics, scaled like Hay et al. 2011's cell1: a 23.2 µm ×
    13.5 µm soma; 8 basal trees of binary branches (66 sections, ≈ 5.6 mm, radial reach ≈ 230 µm); an apical
    trunk of 8 sections rising ≈ 800 µm along +y and tapering 3.5 → 1.8 µm, with an oblique tree at each of the
    first 6 trunk branch points, and a tuft of 3 primary branches from the trunk's end (53 apical sections,
    ≈ 6.2 mm, farthest tip ≈ 1.24 mm from the trunk base). 599 dendritic segments (286 basal, 313 apical) under
    the nseg rule. The nexus is the trunk's last section at x = 0.9 (≈ 780 µm from the soma). Diameters are
    chosen so that the membrane area (≈ 28,500 µm²), and with the L5PC biophysics the somatic input resistance,
    rest and f–I curve, come close to cell1's. The same call always returns the same geometry (fixed seed),
    recorded as ``SYNTHETIC_VERSION``.
    """
    rng = np.random.default_rng(_SYNTHETIC_SEED)
    tree = _TreeBuilder(rng)
    soma_pts = np.array([[0.0, -11.6, 0.0, 13.5], [0.0, 0.0, 0.0, 13.5], [0.0, 11.6, 0.0, 13.5]])
    soma = SectionGeometry("soma[0]", "soma", None, 0.0, soma_pts)
    tree.sections.append(soma)
    tree.count["soma"] = 1

    for k in range(8):
        angle = 2 * np.pi * (k + 0.3 * rng.random()) / 8
        direction = np.array([np.cos(angle), -0.6 - 0.3 * rng.random(), np.sin(angle)])
        primary = tree.add("basal", soma, 0.5, direction, rng.uniform(15, 30), 1.8, 1.5)
        base = direction / np.linalg.norm(direction)
        for sign in (1.0, -1.0):
            tree.branch("basal", primary, _rotate_away(base, sign * 0.5, rng), 0.9, 1, 3,
                        inner_length=(30, 60), terminal_length=(90, 150), p_branch=0.55, spread=0.45)

    trunk_diam = np.linspace(3.5, 1.8, 9)
    parent, parent_x = soma, 0.5
    for k in range(8):
        trunk = tree.add("apical", parent, parent_x, [0.0, 1.0, 0.0], rng.uniform(90, 110),
                         trunk_diam[k], trunk_diam[k + 1], wiggle=0.03)
        if k < 6:
            angle = rng.uniform(0, 2 * np.pi)
            oblique_dir = np.array([np.cos(angle), 0.5, np.sin(angle)])
            tree.branch("apical", trunk, oblique_dir, 1.1, 1, 3, inner_length=(50, 90),
                        terminal_length=(110, 170), p_branch=0.7, spread=0.5)
        parent, parent_x = trunk, 1.0
    nexus = (trunk.name, 0.9)
    for k in range(3):
        angle = 2 * np.pi * k / 3 + 0.3 * rng.random()
        tree.branch("apical", trunk, [np.cos(angle), 1.0, np.sin(angle)], 1.8, 1, 4,
                    inner_length=(60, 110), terminal_length=(130, 200), p_branch=0.85, spread=0.4)

    return Morphology(_region_ordered(tree.sections), nexus, {"kind": "synthetic", "generator": SYNTHETIC_VERSION})


def ball_and_stick() -> Morphology:
    """The tiny demo cell (axon not yet replaced): a 20 µm × 20 µm soma, two 100 µm basal dendrites, a 200 µm
    apical trunk splitting into two 60 µm tuft branches. 27 dendritic segments (54 synapses) under the nseg
    rule; nexus at the trunk's x = 0.9."""
    soma = SectionGeometry("soma[0]", "soma", None, 0.0,
                           np.array([[0.0, -10.0, 0.0, 20.0], [0.0, 10.0, 0.0, 20.0]]))

    def straight(name, region, parent, start, end, d0, d1):
        return SectionGeometry(name, region, parent, 0.5 if parent == "soma[0]" else 1.0,
                               np.array([[*start, d0], [*end, d1]], dtype=float))

    b, t = 100 / np.sqrt(2), 60 / np.sqrt(2)  # 100 µm basal and 60 µm tuft branches at 45°
    sections = (
        soma,
        straight("dend[0]", "basal", "soma[0]", (0, 0, 0), (b, -b, 0), 1.5, 1.0),
        straight("dend[1]", "basal", "soma[0]", (0, 0, 0), (-b, -b, 0), 1.5, 1.0),
        straight("apic[0]", "apical", "soma[0]", (0, 0, 0), (0, 200, 0), 3.0, 2.0),
        straight("apic[1]", "apical", "apic[0]", (0, 200, 0), (t, 200 + t, 0), 1.2, 0.8),
        straight("apic[2]", "apical", "apic[0]", (0, 200, 0), (-t, 200 + t, 0), 1.2, 0.8),
    )
    return Morphology(sections, ("apic[0]", 0.9), {"kind": "ball-and-stick", "generator": BALL_AND_STICK_VERSION})


def _region_ordered(sections: list[SectionGeometry]) -> tuple[SectionGeometry, ...]:
    """Sections ordered soma, basal, apical, axon, each region in creation (depth-first, index) order.

    Names were given per region in creation order, so parents still precede their children."""
    return tuple(s for region in REGIONS for s in sections if s.region == region)


def _rotate_away(direction: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """``direction`` turned by ``angle`` (radians) about a random axis perpendicular to it."""
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    axis = np.cross(direction, rng.normal(size=3))
    axis /= np.linalg.norm(axis)
    return direction * np.cos(angle) + np.cross(axis, direction) * np.sin(angle)

