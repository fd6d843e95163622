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


def test_state_baselines_start_from_the_seat_and_then_go_their_own_way():
    b = RoleBaselines()
    keys = [("kuhn", 0)] * 4
    # The Jack always loses, the King always wins: one seat baseline would give both the wrong sign half the time.
    adv = rae_advantages(keys, [-1.0, 1.0, -1.0, 1.0], b, decay=0.5, states=["J", "K", "J", "K"])
    # seat: 0 → -0.5 → 0.25 → -0.375 → 0.3125
    # J: starts at the seat's 0 → -0.5, then -0.75; K: starts at the seat's -0.5 → 0.25, then 0.625
    assert adv == pytest.approx([-1.0, 1.5, -0.5, 0.75])
    assert b.get_state("kuhn", 0, "J") == pytest.approx(-0.75)
    assert b.get_state("kuhn", 0, "K") == pytest.approx(0.625)
    assert b.get("kuhn", 0) == pytest.approx(0.3125)  # the seat's baseline is kept as with `seat`
    assert b.get_state("kuhn", 0, "Q") == b.get("kuhn", 0)  # an unseen state reads the seat's


def test_states_that_never_repeat_get_the_seat_baseline():
    keys, returns = [("neg", 1)] * 5, [0.5, -1.0, 2.0, 0.0, 1.0]
    per_seat = rae_advantages(keys, returns, RoleBaselines(), decay=0.9)
    per_state = rae_advantages(keys, returns, RoleBaselines(), decay=0.9, states=["a", "b", "c", "d", "e"])
    assert per_state == pytest.approx(per_seat)


def test_the_least_recently_used_state_goes_first():
    b = RoleBaselines(max_states=2)
    rae_advantages([("kuhn", 0)] * 3, [1.0, 1.0, 1.0], b, decay=0.5, states=["a", "b", "a"])
    rae_advantages([("kuhn", 0)], [1.0], b, decay=0.5, states=["c"])  # "b" was used least recently
    assert b.num_states() == 2
    assert b.get_state("kuhn", 0, "b") == b.get("kuhn", 0)  # dropped: reads the seat's again
    assert b.get_state("kuhn", 0, "a") != b.get("kuhn", 0)


def test_state_baselines_round_trip_and_old_checkpoints_still_load():
    b = RoleBaselines()
    rae_advantages([("kuhn", 0), ("kuhn", 1)], [1.0, -1.0], b, decay=0.9, states=["x", "y"])
    restored = RoleBaselines()
    restored.load_state_dict(json.loads(json.dumps(b.state_dict())))
    assert restored.state_dict() == b.state_dict()
    old = RoleBaselines()
    old.load_state_dict({"kuhn": {"0": 0.25, "1": -0.5}})  # the form saved before state baselines
    assert old.items() == [(("kuhn", 0), 0.25), (("kuhn", 1), -0.5)] and old.num_states() == 0


def test_state_key_is_the_same_in_another_process_and_tells_prompts_apart():
    import os
    import subprocess
    import sys

    from spiral.algo.rae import state_key

    # Checkpoints store state keys, so a resumed run (a new process, another hash seed) must compute the same ones.
    code = "from spiral.algo.rae import state_key; print(state_key([1, 2, 3]))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": "123"}).stdout.strip()
    assert other == state_key([1, 2, 3])
    assert len({state_key([1, 2, 3]), state_key([1, 23]), state_key([12, 3]), state_key([])}) == 4


def test_a_sample_without_a_state_uses_the_seat_baseline():
    b = RoleBaselines()
    adv = rae_advantages([("kuhn", 0)] * 3, [1.0, 1.0, 1.0], b, decay=0.5, states=[None, None, None])
    assert adv == pytest.approx(rae_advantages([("kuhn", 0)] * 3, [1.0, 1.0, 1.0], RoleBaselines(), decay=0.5))
    assert b.num_states() == 0
