"""The map-frame layout of each family and the Path / MarkerArray an agent publishes from it."""
from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dmpc_ros.coordination.collision import CollisionAvoidance
from dmpc_ros.models.layout import PlanarLayout
from dmpc_ros.ros.visualization import FRAME, Scene, age_colour, marker_array, path_message
from dmpc_ros.scenarios import load_scenario
from builtin_interfaces.msg import Time


def test_tube_outline_of_a_box_is_its_corners() -> None:
    outline = PlanarLayout.planar([4], [(0, 1)]).tube_outline(0, np.diag([1.0, 0.5, 3.0, 3.0]))
    assert sorted(map(tuple, outline)) == sorted([(1, 0.5), (-1, 0.5), (-1, -0.5), (1, -0.5)])


@given(arrays(float, (2, 7), elements=st.floats(-1, 1)), st.floats(0, 2 * np.pi), st.sampled_from([36, 4000]))
def test_tube_outline_is_the_zonotope_up_to_its_merged_generators(generators: np.ndarray, angle: float,
                                                                   edges: int) -> None:
    """The outline's support h(d) is the zonotope's, h_Z(d) = Σ|d'g|, except where generators closer than one bin
    (2π/edges) in angle are merged into their sum: then it lies inside, by at most 2 sin(2π/edges) Σ‖g‖ (each
    generator's part across its bin's direction). A hypothesis example in CI: (1, 0.125) and (1, 0), 7° apart."""
    outline = PlanarLayout.planar([2], [(0, 1)]).tube_outline(0, generators, max_edges=edges)
    d = np.array([np.cos(angle), np.sin(angle)])
    support, exact = np.max(outline @ d), np.sum(np.abs(d @ generators))
    slack = 2 * np.sin(2 * np.pi / edges) * np.sum(np.linalg.norm(generators, axis=0))
    assert exact - slack - 1e-9 <= support <= exact + 1e-9


def test_tube_outline_of_generators_in_distinct_bins_is_exact() -> None:
    generators = np.array([[1.0, 0.0, 0.7, -0.5], [0.125, 1.0, 0.7, 0.9]])   # 7°, 90°, 45°, 119°
    outline = PlanarLayout.planar([2], [(0, 1)]).tube_outline(0, generators)
    for angle in np.linspace(0, 2 * np.pi, 181):
        d = np.array([np.cos(angle), np.sin(angle)])
        assert np.isclose(np.max(outline @ d), np.sum(np.abs(d @ generators)), atol=1e-9)


def test_a_tube_of_many_generators_gives_a_light_outline_inside_it() -> None:
    generators = np.random.default_rng(3).normal(size=(2, 300))
    outline = PlanarLayout.planar([2], [(0, 1)]).tube_outline(0, generators)
    assert len(outline) <= 36
    for angle in np.linspace(0, 2 * np.pi, 97):
        d = np.array([np.cos(angle), np.sin(angle)])
        support = np.sum(np.abs(d @ generators))
        assert 0.97 * support <= np.max(outline @ d) <= support + 1e-9


def test_family_layouts_put_the_agents_where_their_states_say() -> None:
    chain = load_scenario("mass_spring")
    layout = chain.family.layout(chain)
    assert layout.kind == "line" and len(layout.boundary(0)) == 2
    spacing = layout.anchors[1][0]
    np.testing.assert_allclose(layout.position(2, np.array([0.3, 9.0])), [2 * spacing + 0.3, 0.0])
    limit = chain.model.position_limit[2]
    assert {float(line[0, 0]) for line in layout.boundary(2)} == {2 * spacing - limit, 2 * spacing + limit}

    platoon = load_scenario("platoon")
    layout = platoon.family.layout(platoon)
    r, h = platoon.model.standstill_gap, platoon.model.time_headway
    np.testing.assert_allclose(layout.position(3, np.array([r + h * 20.0, 20.0, 0.5])), [-3 * r, 0.0])  # on its gap
    np.testing.assert_allclose(layout.position(3, np.array([r + h * 20.0 + 2.0, 20.0, 0.5])), [-3 * r - 2.0, 0.0])

    formation = load_scenario("formation")
    layout = formation.family.layout(formation)
    assert layout.kind == "plane" and layout.radius(0) == formation.model.min_distance / 2
    np.testing.assert_allclose(layout.position(1, np.array([1.0, 2.0, 3.0, 4.0])), [1.0, 2.0])

    tanks = load_scenario("water_tanks")   # no positions: agent i at x = i, first state on y
    np.testing.assert_allclose(tanks.family.layout(tanks).position(2, np.array([0.4])), [2.0, 0.4])


def test_path_and_markers_of_a_scene() -> None:
    layout = PlanarLayout.planar([4, 4, 4], [(0, 1)] * 3, radius=0.25)
    predicted = np.column_stack([np.linspace(0, 1, 11), np.zeros(11)])
    scene = Scene(1, predicted, {0: (np.array([0.0, 1.0]), 0.0), 2: (np.array([1.0, 1.0]), 10.0)})
    stamp = Time(sec=5, nanosec=500_000_000)
    path = path_message(scene, stamp, 0.1)
    assert path.header.frame_id == FRAME and len(path.poses) == 11
    assert abs(path.poses[3].header.stamp.sec + path.poses[3].header.stamp.nanosec * 1e-9 - 5.8) < 1e-6
    assert path.poses[3].pose.orientation.w == 1.0   # heading along +x
    markers = {m.ns: m for m in marker_array(scene, layout, stamp, 0.1,
                                                   layout.tube_outline(1, np.diag([0.1, 0.1, 1, 1]))).markers}
    assert set(markers) == {"position", "label", "safety_radius", "tube", "links"}
    assert all(m.header.frame_id == FRAME for m in markers.values())
    assert markers["safety_radius"].scale.x == 0.5
    assert len(markers["tube"].points) == 11 * 4 * 2   # one square per predicted point, as line segments
    fresh, stale = markers["links"].colors[0], markers["links"].colors[2]
    assert fresh.g > 0.7 > fresh.r and stale.r > 0.8 > stale.g   # coloured by the age of the last plan
    assert age_colour(0.15, 0.1).r > fresh.r


positions = arrays(float, (3, 2), elements=st.floats(-3, 3))


@given(positions, st.floats(0.1, 1.0))
def test_the_halfplanes_an_agent_draws_are_those_it_keeps(p: np.ndarray, d: float) -> None:
    """own_halfplanes is agent 1's share of the plant-wide half-planes at one predicted step; its markers lie on
    their boundaries, and a robot at least d from its partner is on its own side."""
    collision = CollisionAvoidance(((0, 1), (1, 2)), d)
    rows = collision.own_halfplanes(1, p[1], {0: p[0], 2: p[2]})
    expected = [(a, b) for agent, k, a, b in collision.halfplanes(np.stack([p, p])) if agent == 1 and k == 1]
    assert len(rows) == 2
    for (a, b), (a_ref, b_ref) in zip(rows, expected):
        np.testing.assert_array_equal(a, a_ref)
        assert b == b_ref
    for j, (a, b) in zip((0, 2), rows):
        if np.linalg.norm(p[1] - p[j]) >= d:
            assert a @ p[1] <= b + 1e-9
    scene = Scene(1, np.stack([p[1], p[1]]), {}, tuple(rows))
    lines = {m.ns: m for m in marker_array(scene, PlanarLayout.planar([2] * 3, [(0, 1)] * 3, d / 2),
                                           Time(), 0.1).markers}["collision_halfplanes"]
    ends = np.array([[q.x, q.y] for q in lines.points]).reshape(2, 2, 2)
    for (a, b), segment in zip(rows, ends):
        np.testing.assert_allclose(segment @ a, [b, b], atol=1e-9)
        assert np.isclose(np.linalg.norm(segment[1] - segment[0]), max(2 * d, 1.0))
