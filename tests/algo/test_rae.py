"""RAE on hand-made numbers: baseline read before update, per-(game, seat) keys, disabled mode, state."""

import json

import pytest

from spiral.algo import RoleBaselines, rae_advantages


def test_sequential_ema_reads_baseline_before_update():
    b = RoleBaselines()
    adv = rae_advantages([("kuhn", 0)] * 3, [1.0, -1.0, 1.0], b, decay=0.5)
    # b: 0 → 0.5 → -0.25 → 0.375; advantages 1-0, -1-0.5, 1-(-0.25)
    assert adv == pytest.approx([1.0, -1.5, 1.25])
    assert b.get("kuhn", 0) == pytest.approx(0.375)


def test_keys_have_separate_baselines():
    b = RoleBaselines()
    keys = [("kuhn", 0), ("kuhn", 1), ("ttt", 0), ("kuhn", 0)]
    adv = rae_advantages(keys, [1.0, -1.0, 0.5, 1.0], b, decay=0.9)
    assert adv == pytest.approx([1.0, -1.0, 0.5, 1.0 - 0.1])
    assert b.get("kuhn", 1) == pytest.approx(-0.1)
    assert b.get("ttt", 0) == pytest.approx(0.05)
    assert b.get("ttt", 1) == 0.0


def test_disabled_returns_raw_and_leaves_baselines():
    b = RoleBaselines()
    rae_advantages([("kuhn", 0)], [2.0], b, decay=0.5)
    before = b.state_dict()
    assert rae_advantages([("kuhn", 0), ("kuhn", 1)], [1.0, -1.0], b, decay=0.5, enabled=False) == [1.0, -1.0]
    assert b.state_dict() == before


def test_state_dict_round_trips_through_json():
    b = RoleBaselines()
    rae_advantages([("kuhn", 0), ("kuhn", 1), ("neg", 1)], [1.0, -1.0, 0.25], b, decay=0.95)
    restored = RoleBaselines()
    restored.load_state_dict(json.loads(json.dumps(b.state_dict())))
    assert restored.items() == b.items()
    assert rae_advantages([("kuhn", 1)], [1.0], restored, 0.95) == rae_advantages([("kuhn", 1)], [1.0], b, 0.95)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="keys"):
        rae_advantages([("kuhn", 0)], [1.0, 2.0], RoleBaselines(), 0.5)
    with pytest.raises(ValueError, match="decay"):
        rae_advantages([("kuhn", 0)], [1.0], RoleBaselines(), 1.0)
